//! `study report` end to end: small studies really run by `study run`
//! (a kind × l_max × seed sweep and a random search on synthetic crystals),
//! then reported; every table number is recomputed here from the database
//! with plain SQL and an independent t interval, and compared to the CSV.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::Connection;

const STUDY: &str = env!("CARGO_BIN_EXE_study");

const SWEEP: &str = r#"
name: tiny_sweep
seed: 3
dataset: {synthetic: {size: 40, seed: 2}, split: {train: 0.6, valid: 0.2, test: 0.2}}
model: {em_dim: 4, layers: 1, mul: 2, num_basis: 4, radial_neurons: 8}
training: {epochs: 2, batch_size: 8, patience: 2}
sweep:
  values:
    kind: [equivariant, scalar]
    lmax: [0, 1, 2]
    seed: [0, 1]
resources: {devices: cpu, cpu_threads_per_trial: 1, trials_per_device: 2}
mode: deterministic
"#;

const SEARCH: &str = r#"
name: tiny_search
seed: 5
dataset: {synthetic: {size: 40, seed: 2}, split: {train: 0.6, valid: 0.2, test: 0.2}}
model: {em_dim: 4, layers: 1, lmax: 1, mul: 2, num_basis: 4, radial_neurons: 8}
training: {epochs: 2, batch_size: 8, patience: 2}
phases:
  - name: random
    sampler: {type: random}
    n_trials: 4
    space:
      lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
      mul: {type: int, low: 2, high: 4}
resources: {devices: cpu, cpu_threads_per_trial: 1, trials_per_device: 2}
"#;

fn study(args: &[&str]) -> Output {
    let out = Command::new(STUDY).args(args).env("RAYON_NUM_THREADS", "1").output().unwrap();
    out
}

fn run_study(dir: &Path, text: &str) -> PathBuf {
    let file = dir.join("study.yaml");
    std::fs::write(&file, text).unwrap();
    let results = dir.join("results");
    let out = study(&["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    results
}

/// CSV rows as header → cell maps (no quoted commas in the checked tables).
fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_owned).collect();
    lines.map(|l| header.iter().cloned().zip(l.split(',').map(str::to_owned)).collect()).collect()
}

/// Mean and 95 % half-width with two values: Student t with one degree of
/// freedom is the Cauchy distribution, t(0.975; 1) = tan(0.475 π).
fn mean_ci(values: &[f64]) -> (f64, Option<f64>) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let ci = match values.len() {
        1 => None,
        2 => {
            let sd = ((values[0] - mean).powi(2) + (values[1] - mean).powi(2)).sqrt();
            Some((0.475 * std::f64::consts::PI).tan() * sd / n.sqrt())
        }
        _ => panic!("the test study has at most two seeds per cell"),
    };
    (mean, ci)
}

fn close(csv: &str, want: f64) -> bool {
    let got: f64 = csv.parse().unwrap_or(f64::NAN);
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

/// (kind, lmax) → [(trial value, metrics)] of COMPLETE trials, by SQL.
type Cells = BTreeMap<(String, i64), Vec<(f64, BTreeMap<String, f64>)>>;

fn cells_from_db(db: &Path) -> Cells {
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut cells = Cells::new();
    let mut trials = conn.prepare("SELECT id, value FROM trials WHERE state = 'COMPLETE'").unwrap();
    let rows: Vec<(i64, f64)> =
        trials.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    for (id, value) in rows {
        let kind: String = conn
            .query_row("SELECT str_value FROM trial_params WHERE trial = ?1 AND name = 'kind'", [id], |r| {
                r.get(0)
            })
            .unwrap();
        let lmax: i64 = conn
            .query_row("SELECT int_value FROM trial_params WHERE trial = ?1 AND name = 'lmax'", [id], |r| {
                r.get(0)
            })
            .unwrap();
        let mut stmt = conn.prepare("SELECT name, value FROM trial_metrics WHERE trial = ?1").unwrap();
        let metrics =
            stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
        cells.entry((kind, lmax)).or_default().push((value, metrics));
    }
    cells
}

fn metric_values(cell: &[(f64, BTreeMap<String, f64>)], metric: &str) -> Vec<f64> {
    cell.iter().filter_map(|(_, m)| m.get(metric).copied()).collect()
}

/// Compares `<key>_mean/_ci95/_n` of a CSV row with values from the database.
fn check_estimate(row: &BTreeMap<String, String>, key: &str, values: &[f64]) {
    if values.is_empty() {
        assert_eq!(row[&format!("{key}_mean")], "", "{key}: no value, empty cell");
        return;
    }
    let (mean, ci) = mean_ci(values);
    assert!(close(&row[&format!("{key}_mean")], mean), "{key}: {} vs {mean}", row[&format!("{key}_mean")]);
    match ci {
        Some(ci) => assert!(
            close(&row[&format!("{key}_ci95")], ci),
            "{key} ci: {} vs {ci}",
            row[&format!("{key}_ci95")]
        ),
        None => assert_eq!(row[&format!("{key}_ci95")], ""),
    }
    assert_eq!(row[&format!("{key}_n")], values.len().to_string());
}

/// A PNG of reasonable size with real content: many pixels off the background.
fn check_png(path: &Path) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    assert!(image.width() >= 400 && image.height() >= 300, "{} is too small", path.display());
    let background = *image.get_pixel(0, 0);
    let inked = image.pixels().filter(|p| **p != background).count();
    assert!(inked * 100 > image.pixels().len(), "{} is blank ({inked} inked pixels)", path.display());
}

fn check_svg(path: &Path, labels: &[&str]) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.contains("<svg"), "{}", path.display());
    for label in labels {
        assert!(text.contains(label), "{} has the label {label:?}", path.display());
    }
}

#[test]
fn a_sweep_report_matches_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let results = run_study(dir.path(), SWEEP);
    let out = study(&["report", "tiny_sweep", "--results", results.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = results.join("tiny_sweep/report");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("The study is finished: 12 trials"), "{md}");
    assert!(md.contains("| 0 | — |"), "equivariant l_max 0 is infeasible: {md}");
    assert!(md.contains("cannot produce the 2e part"), "and says why");
    for name in ["ablation", "best", "crystal_systems", "unphysical", "trials", "failures", "metadata"] {
        assert!(md.contains(&format!("<!-- table: {name} -->")), "{name} in report.md");
        let tex = std::fs::read_to_string(report.join(format!("tables/{name}.tex"))).unwrap();
        assert!(tex.contains("\\toprule") && tex.contains("\\bottomrule"), "{name}.tex");
        assert!(!tex.contains("ε") && !tex.contains("±"), "{name}.tex is escaped");
    }

    let cells = cells_from_db(&results.join("tiny_sweep/study.db"));
    assert_eq!(cells.values().map(Vec::len).sum::<usize>(), 10, "10 COMPLETE trials, 2 infeasible");
    assert!(!cells.contains_key(&("equivariant".to_owned(), 0)));
    let conn = Connection::open(results.join("tiny_sweep/study.db")).unwrap();
    let with_predictions: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM trials t JOIN trial_artifacts a ON a.trial = t.id
             WHERE t.state = 'COMPLETE' AND a.kind = 'test_predictions'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(with_predictions, 10, "every COMPLETE trial recorded its test predictions");

    // Table 2: one row per l_max, mean ± CI per kind and metric.
    let ablation = read_csv(&report.join("tables/ablation.csv"));
    assert_eq!(ablation.len(), 3);
    for row in &ablation {
        let lmax: i64 = row["setting"].parse().unwrap();
        for kind in ["equivariant", "scalar"] {
            let cell = cells.get(&(kind.to_owned(), lmax)).map(Vec::as_slice).unwrap_or(&[]);
            for metric in ["test_eps_poly_mae", "test_anisotropy_mae"] {
                check_estimate(row, &format!("{metric}_{kind}"), &metric_values(cell, metric));
            }
        }
    }
    assert!(ablation[0]["notes"].contains("2e"), "the reason of the infeasible cell");

    // Per crystal system: each kind's best l_max by the mean objective.
    let best_lmax = |kind: &str| {
        cells
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|((_, l), c)| (*l, c.iter().map(|(v, _)| v).sum::<f64>() / c.len() as f64))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
            .0
    };
    let systems = read_csv(&report.join("tables/crystal_systems.csv"));
    assert_eq!(systems.len(), 7);
    for row in &systems {
        let system = &row["crystal_system"];
        for kind in ["equivariant", "scalar"] {
            let cell = &cells[&(kind.to_owned(), best_lmax(kind))];
            for metric in ["test_eps_poly_mae", "test_anisotropy_mae"] {
                check_estimate(
                    row,
                    &format!("{metric}_{kind}"),
                    &metric_values(cell, &format!("{metric}_{system}")),
                );
            }
        }
    }
    let best = read_csv(&report.join("tables/best.csv"));
    assert_eq!(best[0]["setting"], best_lmax("equivariant").to_string());
    assert_eq!(best[1]["setting"], best_lmax("scalar").to_string());

    let metadata = std::fs::read_to_string(report.join("tables/metadata.csv")).unwrap();
    assert!(metadata.contains("train 24, val 8, test 8"), "{metadata}");
    assert!(metadata.contains("40 read, 40 kept"), "{metadata}");
    check_figures(
        &report,
        &md,
        &[
            ("sweep_eps_poly_mae", &["l_max", "test ε_poly MAE", "equivariant", "scalar"]),
            ("sweep_anisotropy_mae", &["l_max", "test a_r MAE"]),
            ("systems_eps_poly_mae", &["cubic", "triclinic", "test ε_poly MAE"]),
            ("systems_anisotropy_mae", &["cubic", "test a_r MAE"]),
            ("parity_eps_poly", &["ε_poly"]),
        ],
    );
}

/// The named figures were drawn, are linked from report.md, and their SVGs
/// carry the axis labels given.
fn check_figures(report: &Path, md: &str, drawn: &[(&str, &[&str])]) {
    for (stem, labels) in drawn {
        assert!(md.contains(&format!("(figures/{stem}.png)")), "{stem} linked from report.md");
        check_png(&report.join(format!("figures/{stem}.png")));
        check_svg(&report.join(format!("figures/{stem}.svg")), labels);
    }
}

#[test]
fn a_search_report_lists_its_top_trials() {
    let dir = tempfile::tempdir().unwrap();
    let results = run_study(dir.path(), SEARCH);
    let out_dir = dir.path().join("elsewhere");
    let out = study(&["report", "--results", results.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let conn = Connection::open(results.join("tiny_search/study.db")).unwrap();
    let mut stmt =
        conn.prepare("SELECT number, value FROM trials WHERE state = 'COMPLETE' ORDER BY value").unwrap();
    let want: Vec<(i64, f64)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    let top = read_csv(&out_dir.join("tables/top_trials.csv"));
    assert_eq!(top.len(), want.len());
    for (row, (number, value)) in top.iter().zip(&want) {
        assert_eq!(row["trial"], number.to_string());
        assert!(close(&row["objective"], *value));
        let lr: f64 = conn
            .query_row(
                "SELECT p.float_value FROM trial_params p JOIN trials t ON p.trial = t.id
                 WHERE t.number = ?1 AND p.name = 'lr'",
                [number],
                |r| r.get(0),
            )
            .unwrap();
        assert!(close(&row["param_lr"], lr));
    }
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    for name in ["top_trials", "crystal_systems", "phases", "metadata"] {
        assert!(md.contains(&format!("<!-- table: {name} -->")), "{name}");
    }
    check_figures(
        &out_dir,
        &md,
        &[
            ("history", &["val_loss"]),
            ("importance", &["lr", "mul"]),
            ("parallel", &["lr", "mul", "val_loss"]),
            ("parity_eps_poly", &["ε_poly"]),
        ],
    );
}

#[test]
fn an_unfinished_study_is_reported_with_what_is_missing() {
    use anisostudy::hpo::{ParamValue, Params, TrialState, TrialStore};
    use anisostudy::storage::{Database, NewStudy};
    let dir = tempfile::tempdir().unwrap();
    let study_dir = dir.path().join("results/half");
    std::fs::create_dir_all(&study_dir).unwrap();
    let config = "name: half\nsweep:\n  values:\n    kind: [equivariant, scalar]\n    lmax: [1, 2]\n";
    let new = NewStudy {
        name: "half".into(),
        direction: anisostudy::hpo::Direction::Minimize,
        objectives: Vec::new(),
        seed: 0,
        config: config.into(),
    };
    let mut store = Database::open(study_dir.join("study.db")).unwrap().create_study(&new).unwrap();
    let params = |kind: &str, lmax: i64| -> Params {
        [("kind".to_owned(), ParamValue::Str(kind.into())), ("lmax".to_owned(), ParamValue::Int(lmax))].into()
    };
    let done = store.create_trial(0, &params("equivariant", 1), TrialState::Running).unwrap();
    let metrics = [("test_eps_poly_mae".to_owned(), 0.25), ("test_anisotropy_mae".to_owned(), 0.5)].into();
    store.finish_trial(done, TrialState::Complete, Some(1.0), &metrics).unwrap();
    store.create_trial(0, &params("scalar", 1), TrialState::Running).unwrap();
    let failed = store.create_trial(0, &params("equivariant", 2), TrialState::Running).unwrap();
    store.fail_trial(failed, "exited with code 137 (killed: out of memory?)").unwrap();
    drop(store);

    let out = study(&["report", "half", "--results", dir.path().join("results").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let md = std::fs::read_to_string(study_dir.join("report/report.md")).unwrap();
    assert!(md.contains("**Incomplete:**") && md.contains("was interrupted"), "{md}");
    assert!(
        md.contains("2 trials finished of 4 planned (1 COMPLETE, 0 PRUNED, 1 FAILED, 1 RUNNING, 0 WAITING)"),
        "{md}"
    );
    assert!(md.contains("| 1 | **0.250 (n = 1)** | — |"), "{md}");
    assert!(md.contains("not finished yet (1 trial(s) running or waiting)"), "{md}");
    assert!(md.contains("exited with code 137"), "{md}");
    assert!(md.contains("no trial yet"), "scalar l_max 2 has not started: {md}");
}

#[test]
fn bad_input_names_the_path_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let out = study(&["report", "--results", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nowhere") && err.contains("--results"), "{err}");

    let out = study(&["report", "nosuch", "--results", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"));

    // A study folder that exists, and an --out below a regular file.
    let results = dir.path().join("results");
    std::fs::create_dir_all(results.join("s")).unwrap();
    let db = anisostudy::storage::Database::open(results.join("s/study.db")).unwrap();
    let new = anisostudy::storage::NewStudy {
        name: "s".into(),
        direction: anisostudy::hpo::Direction::Minimize,
        objectives: Vec::new(),
        seed: 0,
        config: "name: s\n".into(),
    };
    db.create_study(&new).unwrap();
    let file = dir.path().join("a_file");
    std::fs::write(&file, "").unwrap();
    let out_dir = file.join("report");
    let out =
        study(&["report", "s", "--results", results.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a_file/report") && err.contains("--out"), "{err}");
}

const PARETO: &str = r#"
name: tiny_pareto
seed: 5
dataset: {synthetic: {size: 40, seed: 2}, split: {train: 0.6, valid: 0.2, test: 0.2}}
model: {em_dim: 4, layers: 1, lmax: 1, mul: 2, num_basis: 4, radial_neurons: 8}
training: {epochs: 2, batch_size: 8, patience: 2}
objective:
  - {metric: val_eps_poly_mae, direction: minimize}
  - {metric: num_params, direction: minimize}
phases:
  - name: random
    sampler: {type: random}
    n_trials: 6
    space:
      lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
      mul: {type: int, low: 2, high: 6}
resources: {devices: cpu, cpu_threads_per_trial: 1, trials_per_device: 2}
"#;

/// The built-in trainer with two objectives (an error and the model's
/// size): each trial's values are its recorded metrics, and the report
/// has the Pareto set (recomputed here from the database), its front, the
/// hypervolume history and the importance for each objective.
#[test]
fn a_report_of_several_objectives_shows_the_pareto_set() {
    let dir = tempfile::tempdir().unwrap();
    let results = run_study(dir.path(), PARETO);
    let out_dir = dir.path().join("report");
    let out = study(&["report", "--results", results.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let conn = Connection::open(results.join("tiny_pareto/study.db")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT t.number, json_extract(t.objective_values, '$[0]'), json_extract(t.objective_values, '$[1]'),
                    (SELECT value FROM trial_metrics m WHERE m.trial = t.id AND m.name = 'val_eps_poly_mae'),
                    (SELECT value FROM trial_metrics m WHERE m.trial = t.id AND m.name = 'num_params')
             FROM trials t WHERE t.state = 'COMPLETE' ORDER BY t.number",
        )
        .unwrap();
    let rows: Vec<(i64, f64, f64, f64, f64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 6);
    let measured: i64 = conn
        .query_row(
            "SELECT count(*) FROM trial_metrics WHERE name = 'inference_edges_per_s' AND value > 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(measured, 6, "every trial measures its inference speed");
    for &(number, error, size, metric_error, metric_size) in &rows {
        assert_eq!((error, size), (metric_error, metric_size), "trial {number}: the values are its metrics");
    }
    let dominated = |a: &(i64, f64, f64, f64, f64)| {
        rows.iter().any(|b| b.1 <= a.1 && b.2 <= a.2 && (b.1 < a.1 || b.2 < a.2))
    };
    let mut want: Vec<&(i64, f64, f64, f64, f64)> = rows.iter().filter(|r| !dominated(r)).collect();
    want.sort_by(|a, b| a.1.total_cmp(&b.1));
    let set = read_csv(&out_dir.join("tables/pareto_set.csv"));
    assert_eq!(set.len(), want.len());
    for (row, r) in set.iter().zip(&want) {
        assert_eq!(row["trial"], r.0.to_string());
        assert!(close(&row["objective_val_eps_poly_mae"], r.1) && close(&row["objective_num_params"], r.2));
    }
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("<!-- table: pareto_set -->"));
    check_figures(
        &out_dir,
        &md,
        &[
            ("pareto_front", &["val_eps_poly_mae", "num_params", "Pareto set"]),
            ("hypervolume", &["hypervolume"]),
            ("importance_0", &["lr", "mul"]),
            ("importance_1", &["lr", "mul"]),
        ],
    );
}
