//! Writing a study's report folder: `report.md` (status, tables, figures,
//! trials, metadata), each table as `tables/<name>.csv` and
//! `tables/<name>.tex`, and the figures as `figures/<stem>.png` and `.svg`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::collect::StudyData;
use super::search;
use super::sweep::Sweep;
use super::tables::{Cell, Column, Table};
use crate::error::InputError;
use crate::hpo::TrialState;
use crate::storage::Definition;

/// A table format `--format` may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `report.md`: every table and figure in one Markdown file.
    Md,
    /// `tables/<name>.csv`.
    Csv,
    /// `tables/<name>.tex` (booktabs).
    Latex,
}

/// What to write.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    pub formats: Vec<Format>,
    /// Draw the figures (PNG and SVG).
    pub figures: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { formats: vec![Format::Md, Format::Csv, Format::Latex], figures: true }
    }
}

/// A figure of the report: drawn (its PNG and SVG, relative to the report
/// folder) or skipped with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureEntry {
    pub title: String,
    pub drawn: Result<(PathBuf, PathBuf), String>,
}

/// What a report consists of before it is written.
#[derive(Debug, Clone)]
pub struct Report {
    pub title: String,
    /// Paragraphs on whether the study is finished, above the tables.
    pub status: Vec<String>,
    pub results: Vec<Table>,
    pub trials: Vec<Table>,
    pub metadata: Table,
    pub figures: Vec<FigureEntry>,
}

/// The files written.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub figures_drawn: usize,
    pub figures_skipped: usize,
}

/// Creates `out` and checks it can be written to: an [`InputError`] naming it otherwise.
pub fn prepare_out_dir(out: &Path) -> Result<()> {
    let unwritable = |e: std::io::Error| {
        InputError::new(out.display().to_string(), format!("cannot write the report here: {e}"))
            .with_hint("give a writable folder with --out DIR")
    };
    std::fs::create_dir_all(out).map_err(unwritable)?;
    let probe = out.join(".write-test");
    std::fs::write(&probe, b"").map_err(unwritable)?;
    std::fs::remove_file(&probe).ok();
    Ok(())
}

/// Builds the tables of `data` (and draws its figures into `out/figures`
/// when `figures`), ready to write.
pub fn build(data: &StudyData, out: &Path, figures: bool) -> Result<Report> {
    let mut results = Vec::new();
    if data.is_sweep() {
        let sweep = Sweep::new(data);
        results.push(sweep.ablation_table());
        results.push(sweep.best_table());
        if data.complete().any(|t| t.metrics.keys().any(|k| k.starts_with("test_count_"))) {
            results.push(sweep.systems_table());
        }
        if data.complete().any(|t| t.metrics.contains_key("test_unphysical")) {
            results.push(sweep.unphysical_table());
        }
    } else if !data.objectives().is_empty() {
        results.push(search::pareto_table(data));
        results.push(search::phases_table(data));
    } else {
        results.push(search::top_trials_table(data));
        results.extend(search::best_systems_table(data));
        results.push(search::phases_table(data));
    }
    let figures = if figures {
        let dir = out.join("figures");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        super::plots::draw(data, &dir)
            .into_iter()
            .map(|mut f| {
                // Links in report.md are relative to the report folder.
                f.drawn = f.drawn.map(|(png, svg)| (relative(&png, out), relative(&svg, out)));
                f
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Report {
        title: format!("Study report: {}", data.info.name),
        status: status(data),
        results,
        trials: trial_tables(data),
        metadata: metadata_table(data),
        figures,
    })
}

fn relative(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base).map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

/// Writes the report of `data` into `out` in `options`' formats.
pub fn write_report(data: &StudyData, out: &Path, options: &ReportOptions) -> Result<Written> {
    prepare_out_dir(out)?;
    let report = build(data, out, options.figures)?;
    let mut files = Vec::new();
    let tables_dir = out.join("tables");
    let all_tables: Vec<&Table> =
        report.results.iter().chain(&report.trials).chain(std::iter::once(&report.metadata)).collect();
    for (format, extension) in [(Format::Csv, "csv"), (Format::Latex, "tex")] {
        if !options.formats.contains(&format) {
            continue;
        }
        std::fs::create_dir_all(&tables_dir)
            .with_context(|| format!("cannot create {}", tables_dir.display()))?;
        for table in &all_tables {
            let path = tables_dir.join(format!("{}.{extension}", table.name));
            let text = if format == Format::Csv { table.to_csv() } else { table.to_latex() };
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
            files.push(path);
        }
    }
    if options.formats.contains(&Format::Md) {
        let path = out.join("report.md");
        std::fs::write(&path, to_markdown(&report, options))
            .with_context(|| format!("cannot write {}", path.display()))?;
        files.push(path);
    }
    let figures_drawn = report.figures.iter().filter(|f| f.drawn.is_ok()).count();
    for figure in &report.figures {
        if let Ok((png, svg)) = &figure.drawn {
            files.push(out.join(png));
            files.push(out.join(svg));
        }
    }
    Ok(Written {
        dir: out.to_path_buf(),
        files,
        figures_drawn,
        figures_skipped: report.figures.len() - figures_drawn,
    })
}

/// `report.md`.
pub fn to_markdown(report: &Report, options: &ReportOptions) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", report.title);
    for paragraph in &report.status {
        let _ = writeln!(md, "{paragraph}\n");
    }
    let formats: Vec<&str> = [(Format::Csv, "CSV"), (Format::Latex, "LaTeX")]
        .iter()
        .filter(|(f, _)| options.formats.contains(f))
        .map(|(_, name)| *name)
        .collect();
    if !formats.is_empty() {
        let _ = writeln!(
            md,
            "Every table is also in `tables/` as {} (file name = table name).\n",
            formats.join(" and ")
        );
    }
    let _ = writeln!(md, "## Results\n");
    for table in &report.results {
        let _ = writeln!(md, "<!-- table: {} -->\n{}", table.name, table.to_markdown());
    }
    if options.figures {
        let _ = writeln!(md, "## Figures\n");
        if report.figures.is_empty() {
            let _ = writeln!(md, "No figure applies to this study.\n");
        }
        for figure in &report.figures {
            match &figure.drawn {
                Ok((png, svg)) => {
                    let (png, svg) = (png.display(), svg.display());
                    let _ = writeln!(
                        md,
                        "**{}** ([PNG]({png}), [SVG]({svg}))\n\n![{}]({png})\n",
                        figure.title, figure.title
                    );
                }
                Err(why) => {
                    let _ = writeln!(md, "**{}**: skipped — {why}\n", figure.title);
                }
            }
        }
    }
    let _ = writeln!(md, "## Trials\n");
    for table in &report.trials {
        let _ = writeln!(md, "<!-- table: {} -->\n{}", table.name, table.to_markdown());
    }
    let _ = writeln!(
        md,
        "## Study\n\n<!-- table: {} -->\n{}",
        report.metadata.name,
        report.metadata.to_markdown()
    );
    md
}

/// How many trials the study's plan runs in all, when fixed: the product of
/// a sweep's value lists, or the sum of the phases' budgets.
fn planned_trials(data: &StudyData) -> Option<u64> {
    if let Some(values) = data.config_at(&["sweep", "values"]).and_then(|v| v.as_mapping()) {
        return values.values().map(|v| v.as_sequence().map(|s| s.len() as u64)).product();
    }
    data.phases.iter().map(|p| p.budget).sum()
}

/// Whether the study is finished, and what the tables are made of.
fn status(data: &StudyData) -> Vec<String> {
    let open = data.count(TrialState::Running) + data.count(TrialState::Waiting);
    let finished = data.trials.iter().filter(|t| t.trial.state.is_finished()).count();
    let planned = planned_trials(data);
    let of = planned.map_or(String::new(), |p| format!(" of {p} planned"));
    let counts = state_counts(data);
    let mut out = Vec::new();
    let complete_run = open == 0 && planned.is_none_or(|p| finished as u64 >= p);
    if complete_run {
        out.push(format!("The study is finished: {} trials ({counts}).", data.trials.len()));
    } else {
        let how = match crate::storage::lock::lock_holder(&data.dir) {
            Some(holder) => format!("is still running (controller {holder})"),
            None => "was interrupted (no controller runs it; `study run` resumes it)".to_owned(),
        };
        out.push(format!(
            "**Incomplete:** the study {how}. {finished} trials finished{of} ({counts}). \
             The tables use the {} COMPLETE trials; RUNNING and WAITING trials are left out, and so \
             are PRUNED and FAILED ones (reasons under Trials).",
            data.count(TrialState::Complete)
        ));
    }
    out
}

fn state_counts(data: &StudyData) -> String {
    let parts: Vec<String> =
        TrialState::REPORT_ORDER.iter().map(|s| format!("{} {}", data.count(*s), s.name())).collect();
    parts.join(", ")
}

/// Trials by state, and the failure reasons with the trials they ended.
fn trial_tables(data: &StudyData) -> Vec<Table> {
    let states = TrialState::REPORT_ORDER;
    let mut by_state = Table::new(
        "trials",
        "Trials by state",
        vec![Column::new("state", "state"), Column::new("trials", "trials")],
    );
    for state in states {
        by_state.rows.push(vec![Cell::text(state.name()), Cell::number(data.count(state) as f64)]);
    }
    let mut tables = vec![by_state];
    let mut reasons: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for t in data.trials.iter().filter(|t| t.trial.state == TrialState::Failed) {
        let reason = t.fail_reason.clone().unwrap_or_else(|| "no reason given".to_owned());
        reasons.entry(reason).or_default().push(t.trial.number);
    }
    if !reasons.is_empty() {
        let mut failures = Table::new(
            "failures",
            "Failed trials by reason",
            vec![
                Column::new("reason", "reason"),
                Column::new("count", "count"),
                Column::new("trials", "trials"),
            ],
        );
        for (reason, numbers) in reasons {
            let list: Vec<String> = numbers.iter().map(u64::to_string).collect();
            failures.rows.push(vec![
                Cell::text(reason.lines().next().unwrap_or("").trim()),
                Cell::number(numbers.len() as f64),
                Cell::text(list.join(" ")),
            ]);
        }
        tables.push(failures);
    }
    tables.push(definitions_table(data));
    tables
}

/// Every definition the study ran under, the trials created under each and
/// what changed from the one before.
fn definitions_table(data: &StudyData) -> Table {
    let mut table = Table::new(
        "definitions",
        "Study definitions",
        vec![
            Column::new("revision", "revision"),
            Column::new("recorded", "recorded"),
            Column::new("trials", "trials"),
            Column::new("version", "version"),
            Column::new("changes", "changes from the revision before"),
        ],
    );
    let next = data.trials.last().map_or(0, |t| t.trial.number + 1);
    let ranges = Definition::trial_ranges(&data.definitions, next);
    for (d, range) in data.definitions.iter().zip(ranges) {
        let changes = d.change_texts();
        table.rows.push(vec![
            Cell::number(f64::from(d.revision)),
            Cell::text(d.created.to_string()),
            Cell::text(range),
            Cell::text(&d.version),
            Cell::text(if changes.is_empty() { "—".to_owned() } else { changes.join("; ") }),
        ]);
    }
    if data.definitions.iter().any(|d| d.accepted) {
        table.notes.push(
            "`accepted:` changes alter what earlier trials mean; the study went on with `--accept-changes`."
                .to_owned(),
        );
    }
    table
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 120.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

/// Study, data, software and timing facts, as key–value rows.
fn metadata_table(data: &StudyData) -> Table {
    let mut table = Table::new(
        "metadata",
        "Study metadata",
        vec![Column::new("key", "what"), Column::new("value", "value")],
    );
    let mut put = |key: &str, value: String| table.rows.push(vec![Cell::text(key), Cell::text(value)]);
    let info = &data.info;
    put("study", info.name.clone());
    put("folder", data.dir.display().to_string());
    put("seed", info.seed.to_string());
    let direction = match data.direction() {
        crate::hpo::Direction::Minimize => "minimize",
        crate::hpo::Direction::Maximize => "maximize",
    };
    put("objective", format!("{direction} {}", data.objective_name()));
    put("created", info.created.to_string());
    let phases: Vec<String> = data.phases.iter().map(|p| p.name.clone()).collect();
    put("phases", phases.join(", "));
    match data.attrs.get("dataset") {
        Some(d) => {
            put("dataset", d["source"].as_str().unwrap_or("?").to_owned());
            let c = &d["cleaning"];
            put(
                "cleaning",
                format!(
                    "{} read, {} kept; dropped: {} with a diagonal element below the minimum, {} with ε_poly above the maximum, {} repeated",
                    c["frames_read"], c["kept"], c["diagonal_below_min"], c["eps_poly_above_max"], c["duplicates"]
                ),
            );
            let s = &d["split"];
            let how = match d["split_file"].as_str() {
                Some(file) => format!(" (split file {file})"),
                None => " (random split)".to_owned(),
            };
            put("split", format!("train {}, val {}, test {}{how}", s[0], s[1], s[2]));
        }
        None => {
            let described = data
                .config_at(&["dataset"])
                .filter(|v| !v.is_null())
                .and_then(|v| serde_yaml::to_string(v).ok())
                .map(|text| text.trim().replace('\n', "; "));
            put("dataset", described.unwrap_or_else(|| "none (a `command` objective)".to_owned()));
            put(
                "cleaning",
                "not recorded (the study was run by an older build, or has no dataset)".to_owned(),
            );
        }
    }
    put("trials", state_counts(data));
    let durations = data.durations();
    if durations.is_empty() {
        put("wall time per trial", "no COMPLETE trial".to_owned());
    } else {
        let mean = durations.iter().sum::<Duration>() / durations.len() as u32;
        let (min, max) = (durations.iter().min().unwrap(), durations.iter().max().unwrap());
        put(
            "wall time per trial",
            format!(
                "mean {}, min {}, max {} ({} COMPLETE trials)",
                seconds(mean),
                seconds(*min),
                seconds(*max),
                durations.len()
            ),
        );
    }
    let first = data.trials.iter().filter_map(|t| t.started).min();
    let last = data.trials.iter().filter_map(|t| t.finished).max();
    if let (Some(first), Some(last)) = (first, last) {
        put("study wall time", format!("{} (first start to last finish)", seconds(last.since(first))));
    }
    let devices: std::collections::BTreeSet<&str> =
        data.trials.iter().filter_map(|t| t.device.as_deref()).collect();
    put("devices", devices.into_iter().collect::<Vec<_>>().join(", "));
    put("report by", format!("anisostudy {}", env!("CARGO_PKG_VERSION")));
    table
}
