//! A screen's files: `ranked.csv` (every ranked structure, one row each),
//! `top.extxyz` (the top N structures with their predictions, ready for a
//! DFPT workflow), `report.md` with its figures under `figures/`, and
//! `screen.json` (the ensemble, the options and the counts).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use super::{Candidate, Member, RankBy, ScreenOptions, Screened};
use crate::crystal::io::write_extxyz_frame;
use crate::e3::sym3::anisotropy_ratio_checked;
use crate::storage::export::write_record;

/// The six independent components, in column order.
const COMPONENTS: [(&str, usize, usize); 6] =
    [("xx", 0, 0), ("yy", 1, 1), ("zz", 2, 2), ("xy", 0, 1), ("xz", 0, 2), ("yz", 1, 2)];

fn cell(v: Option<f64>) -> String {
    v.map(|v| format!("{v:?}")).unwrap_or_default()
}

/// The columns of `ranked.csv`.
pub fn header() -> Vec<String> {
    let mut h: Vec<String> = ["rank", "file", "frame", "id", "formula", "atoms", "crystal_system", "score"]
        .map(String::from)
        .to_vec();
    h.extend(
        [
            "eps_poly",
            "eps_poly_spread",
            "anisotropy",
            "anisotropy_spread",
            "birefringence",
            "eig1",
            "eig2",
            "eig3",
            "unphysical",
            "unphysical_members",
        ]
        .map(String::from),
    );
    for prefix in ["eps", "spread"] {
        h.extend(COMPONENTS.iter().map(|(c, _, _)| format!("{prefix}_{c}")));
    }
    h.extend(["ref_eps_poly", "ref_anisotropy"].map(String::from));
    h
}

fn record(rank: usize, c: &Candidate, files: &[PathBuf], by: RankBy) -> Vec<String> {
    let s = &c.stats;
    let mut r = vec![
        rank.to_string(),
        files[c.file].display().to_string(),
        c.frame.to_string(),
        c.id.clone().unwrap_or_default(),
        c.formula.clone(),
        c.atoms.to_string(),
        c.system.map(|s| s.name().to_owned()).unwrap_or_default(),
        cell(by.score(s)),
        cell(Some(s.eps_poly)),
        cell(Some(s.eps_poly_spread)),
        cell(s.anisotropy),
        cell(s.anisotropy_spread),
        cell(s.birefringence),
        cell(Some(s.eigenvalues[0])),
        cell(Some(s.eigenvalues[1])),
        cell(Some(s.eigenvalues[2])),
        s.unphysical.to_string(),
        s.unphysical_members.to_string(),
    ];
    for m in [&s.mean, &s.spread] {
        r.extend(COMPONENTS.iter().map(|&(_, i, j)| cell(Some(m[i][j]))));
    }
    r.push(cell(c.reference.as_ref().map(crate::e3::sym3::eps_poly)));
    r.push(cell(c.reference.as_ref().and_then(anisotropy_ratio_checked)));
    r
}

/// How well the ranking finds the structures whose own tensors (the file's
/// reference) rank highest: of the top `n` by prediction, how many are in
/// the top `n` by reference, against `n²/M` expected by chance.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlap {
    pub n: usize,
    pub found: usize,
    pub of: usize,
    pub chance: f64,
}

/// [`Overlap`] of the ranking by `by` (anisotropy and ε_poly only, whose
/// reference value the file's tensor gives), over the candidates that have
/// a reference tensor; `None` when there are none or the ranking has no
/// reference counterpart.
pub fn overlap(ranked: &[Candidate], by: RankBy, n: usize) -> Option<Overlap> {
    let reference = |c: &Candidate| -> Option<f64> {
        let t = c.reference.as_ref()?;
        match by {
            RankBy::Anisotropy => anisotropy_ratio_checked(t),
            RankBy::EpsPoly => Some(crate::e3::sym3::eps_poly(t)),
            _ => None,
        }
    };
    let with: Vec<(&Candidate, f64)> = ranked.iter().filter_map(|c| reference(c).map(|r| (c, r))).collect();
    if with.is_empty() || n == 0 {
        return None;
    }
    let n = n.min(with.len());
    let predicted: Vec<(usize, usize)> = with.iter().take(n).map(|(c, _)| (c.file, c.frame)).collect();
    let mut by_reference = with.clone();
    by_reference.sort_by(|a, b| b.1.total_cmp(&a.1));
    let found = by_reference.iter().take(n).filter(|(c, _)| predicted.contains(&(c.file, c.frame))).count();
    Some(Overlap { n, found, of: with.len(), chance: (n * n) as f64 / with.len() as f64 })
}

/// What [`write`] wrote.
pub struct Written {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Everything a screen's report says besides the screen itself.
pub struct About<'a> {
    pub study: &'a str,
    pub why: &'a str,
    pub members: &'a [Member],
    pub files: &'a [PathBuf],
    pub options: &'a ScreenOptions,
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map(|v| format!("{v:.decimals$}")).unwrap_or_else(|| "—".to_owned())
}

/// Writes the screen's files into `dir` (created if needed).
pub fn write(dir: &Path, screened: &Screened, about: &About) -> Result<Written> {
    let figures_dir = dir.join("figures");
    std::fs::create_dir_all(&figures_dir)
        .with_context(|| format!("cannot create {}", figures_dir.display()))?;
    let top = about.options.top.min(screened.ranked.len());
    let mut files = vec![write_csv(dir, screened, about)?, write_top_extxyz(dir, screened, about)?];
    let mut figure_lines = Vec::new();
    let (line, figure) = anisotropy_histogram(&figures_dir, screened);
    figure_lines.push(line);
    files.extend(figure);
    if about.members.len() > 1 {
        let (line, figure) = anisotropy_against_spread(&figures_dir, screened, about.options.by, top);
        figure_lines.push(line);
        files.extend(figure);
    }
    files.push(write_report(dir, screened, about, top, &figure_lines)?);
    files.push(write_summary(dir, screened, about, top)?);
    Ok(Written { dir: dir.to_path_buf(), files })
}

/// A file to write into, with the path in the error.
fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(std::io::BufWriter::new(file))
}

/// `ranked.csv`: every ranked structure, one row each.
fn write_csv(dir: &Path, screened: &Screened, about: &About) -> Result<PathBuf> {
    let csv = dir.join("ranked.csv");
    let mut out = create(&csv)?;
    write_record(&mut out, &header())?;
    for (k, c) in screened.ranked.iter().enumerate() {
        write_record(&mut out, &record(k + 1, c, about.files, about.options.by))?;
    }
    out.flush()?;
    Ok(csv)
}

/// `top.extxyz`: the top structures, each with its predictions.
fn write_top_extxyz(dir: &Path, screened: &Screened, about: &About) -> Result<PathBuf> {
    let xyz = dir.join("top.extxyz");
    let mut out = create(&xyz)?;
    for (k, (c, frame)) in screened.ranked.iter().zip(&screened.top).enumerate() {
        write_extxyz_frame(&mut out, frame, &extxyz_info(k + 1, c, about.files))?;
    }
    out.flush()?;
    Ok(xyz)
}

/// The extxyz info keys of the structure ranked `rank`.
fn extxyz_info(rank: usize, c: &Candidate, files: &[PathBuf]) -> Vec<(String, String)> {
    let s = &c.stats;
    let numbers =
        |m: &[[f64; 3]; 3]| m.iter().flatten().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(" ");
    let mut extra = vec![
        ("rank".to_owned(), rank.to_string()),
        ("formula".to_owned(), c.formula.clone()),
        ("dielectric_pred".to_owned(), numbers(&s.mean)),
        ("dielectric_pred_spread".to_owned(), numbers(&s.spread)),
        ("eps_poly_pred".to_owned(), format!("{:?}", s.eps_poly)),
        ("eps_poly_pred_spread".to_owned(), format!("{:?}", s.eps_poly_spread)),
        ("unphysical".to_owned(), if s.unphysical { "T" } else { "F" }.to_owned()),
        ("source".to_owned(), format!("{}:{}", files[c.file].display(), c.frame)),
    ];
    if let Some(a) = s.anisotropy {
        extra.push(("anisotropy_pred".to_owned(), format!("{a:?}")));
    }
    if let Some(a) = s.anisotropy_spread {
        extra.push(("anisotropy_pred_spread".to_owned(), format!("{a:?}")));
    }
    if let Some(system) = c.system {
        extra.push(("crystal_system".to_owned(), system.name().to_owned()));
    }
    extra
}

/// The figure of the predicted a_r's distribution: the report's line for
/// it, and its files (none where it could not be drawn; the line says why).
fn anisotropy_histogram(figures_dir: &Path, screened: &Screened) -> (String, Vec<PathBuf>) {
    let ratios: Vec<f64> = screened.ranked.iter().filter_map(|c| c.stats.anisotropy).collect();
    match crate::report::figures::histogram(
        figures_dir,
        "anisotropy_distribution",
        "Predicted anisotropy ratio",
        "a_r (ensemble mean tensor)",
        &ratios,
        30,
    ) {
        Ok(f) => ("![Predicted a_r](figures/anisotropy_distribution.png)".to_owned(), vec![f.png, f.svg]),
        Err(err) => (format!("(No a_r distribution: {err}.)"), Vec::new()),
    }
}

/// The figure of the predicted a_r against the ensemble's spread, the top
/// `top` marked; as [`anisotropy_histogram`].
fn anisotropy_against_spread(
    figures_dir: &Path,
    screened: &Screened,
    by: RankBy,
    top: usize,
) -> (String, Vec<PathBuf>) {
    let points: Vec<(f64, f64, bool)> = screened
        .ranked
        .iter()
        .enumerate()
        .filter_map(|(k, c)| Some((c.stats.anisotropy?, c.stats.anisotropy_spread?, k < top)))
        .collect();
    let marked = format!("top {top} by {}", by.name());
    match crate::report::figures::scatter(
        figures_dir,
        "anisotropy_vs_spread",
        "Predicted a_r against the ensemble's spread",
        "a_r (ensemble mean tensor)",
        "a_r spread over the models",
        &points,
        ("screened", &marked),
    ) {
        Ok(f) => (
            "![Predicted a_r against spread](figures/anisotropy_vs_spread.png)".to_owned(),
            vec![f.png, f.svg],
        ),
        Err(err) => (format!("(No a_r-against-spread figure: {err}.)"), Vec::new()),
    }
}

/// `report.md`: the models, the counts, the top `top` and the figures.
fn write_report(
    dir: &Path,
    screened: &Screened,
    about: &About,
    top: usize,
    figure_lines: &[String],
) -> Result<PathBuf> {
    let mut md = String::new();
    md.push_str(&format!("# Screen of {} structures with study {}\n\n", screened.counts.read, about.study));
    md.push_str(&models_table(about));
    md.push_str(&counts_section(screened, about, top));
    md.push_str(&top_table(screened, about, top));
    for line in figure_lines {
        md.push_str(line);
        md.push_str("\n\n");
    }
    let report = dir.join("report.md");
    std::fs::write(&report, md).with_context(|| format!("cannot write {}", report.display()))?;
    Ok(report)
}

/// The report's table of the ensemble's models.
fn models_table(about: &About) -> String {
    let mut md = format!(
        "Models: {}, {} model(s):\n\n| trial | objective | parameters |\n|---:|---:|---|\n",
        about.why,
        about.members.len()
    );
    for m in about.members {
        md.push_str(&format!("| {} | {:.6} | {} |\n", m.trial, m.value, m.params));
    }
    md
}

/// The report's counts: read, ranked, dropped and why, and the overlap with
/// the reference tensors where the files hold them.
fn counts_section(screened: &Screened, about: &About, top: usize) -> String {
    let counts = &screened.counts;
    let by = about.options.by;
    let names: Vec<String> = about.files.iter().map(|f| format!("`{}`", f.display())).collect();
    let mut md = format!(
        "\nStructures: {} read from {}; {} ranked by {} ({:.1} s, {:.1} structures/s on {} thread(s)).\n",
        counts.read,
        names.join(", "),
        counts.ranked,
        by.name(),
        screened.seconds,
        counts.read as f64 / screened.seconds.max(1e-9),
        about.options.threads
    );
    let dropped = [
        (counts.too_many_atoms, "more atoms than --max-atoms"),
        (counts.other_system, "another crystal system than --systems"),
        (counts.outside_eps_poly, "predicted ε_poly outside --min/--max-eps-poly"),
        (counts.unphysical, "unphysical prediction (--physical-only)"),
        (counts.failed, "no graph could be built"),
    ];
    for (n, why) in dropped.iter().filter(|(n, _)| *n > 0) {
        md.push_str(&format!("- {n} dropped: {why}\n"));
    }
    let unphysical = screened.ranked.iter().filter(|c| c.stats.unphysical).count();
    md.push_str(&format!(
        "- {unphysical} ranked structure(s) with an unphysical mean prediction (an eigenvalue < 1)\n"
    ));
    if let Some(o) = overlap(&screened.ranked, by, top) {
        md.push_str(&format!(
            "\nThe files hold reference tensors for {} ranked structures: {} of the top {} by prediction are in the top {} by reference (chance: {:.1}).\n",
            o.of, o.found, o.n, o.n, o.chance
        ));
    }
    md
}

/// The report's table of the top `top` structures, and what its columns mean.
fn top_table(screened: &Screened, about: &About, top: usize) -> String {
    let mut md = format!(
        "\n## Top {top} by {}\n\n| rank | id | formula | system | atoms | a_r | ± | ε_poly | ± | Δn | unphysical |\n|---:|---|---|---|---:|---:|---:|---:|---:|---:|---|\n",
        about.options.by.name()
    );
    for (k, c) in screened.ranked.iter().take(top).enumerate() {
        let s = &c.stats;
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {} | {} |\n",
            k + 1,
            c.id.clone().unwrap_or_else(|| format!("{}:{}", about.files[c.file].display(), c.frame)),
            c.formula,
            c.system.map(|s| s.name()).unwrap_or("?"),
            c.atoms,
            fmt(s.anisotropy, 3),
            fmt(s.anisotropy_spread, 3),
            s.eps_poly,
            s.eps_poly_spread,
            fmt(s.birefringence, 3),
            if s.unphysical { "yes" } else { "" }
        ));
    }
    md.push_str(
        "\n± is the sample standard deviation over the models; a_r, ε_poly and Δn = √λ_max − √λ_min are those of the models' mean tensor. Every ranked structure is in `ranked.csv`, the top ones with their structures and predicted tensors in `top.extxyz`.\n\n",
    );
    md
}

/// `screen.json`: the ensemble, the options and the counts.
fn write_summary(dir: &Path, screened: &Screened, about: &About, top: usize) -> Result<PathBuf> {
    let by = about.options.by;
    let counts = &screened.counts;
    let summary = json!({
        "study": about.study,
        "models": about.members.iter().map(|m| json!({"trial": m.trial, "value": m.value, "params": m.params, "checkpoint": m.checkpoint})).collect::<Vec<_>>(),
        "why": about.why,
        "files": about.files,
        "by": by.name(),
        "top": top,
        "threads": about.options.threads,
        "seconds": screened.seconds,
        "counts": {
            "read": counts.read, "ranked": counts.ranked, "too_many_atoms": counts.too_many_atoms,
            "other_system": counts.other_system, "outside_eps_poly": counts.outside_eps_poly,
            "unphysical": counts.unphysical, "failed": counts.failed,
        },
        "overlap": overlap(&screened.ranked, by, top).map(|o| json!({"n": o.n, "found": o.found, "of": o.of, "chance": o.chance})),
    });
    let path = dir.join("screen.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
