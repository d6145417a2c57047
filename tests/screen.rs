//! `study screen` and `study predict --study` against a real study: a small
//! sweep over seeds trains three models, and the screen's ensemble mean,
//! spreads and ranking are checked against a hand computation from each
//! model's own predictions (`study predict --study … --trial N`).
//!
//! `a_screen_of_the_mp_test_split_finds_its_most_anisotropic_crystals` needs
//! the shared Materials Project file and a few minutes of training; it is
//! ignored by default:
//!
//!     cargo test --release --test screen -- --ignored --nocapture

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anisostudy::crystal::io::{read_structures, write_extxyz_file, ExtxyzOptions, Frame};
use anisostudy::storage::export::parse_csv;
use serde_json::Value;

const STUDY: &str = env!("CARGO_BIN_EXE_study");

fn run(args: &[&str], cwd: &Path) -> Output {
    let out = Command::new(STUDY).args(args).current_dir(cwd).output().expect("study starts");
    assert!(
        out.status.success(),
        "study {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

const TINY: &str = "name: tiny
seed: 3
dataset:
  synthetic: {size: 120, seed: 1}
model: {em_dim: 8, layers: 1, lmax: 2, mul: 4, num_basis: 6, radial_neurons: 8}
training: {epochs: 3, batch_size: 8, patience: 5}
objective: {metric: val_loss, direction: minimize}
sweep:
  values:
    seed: [0, 1, 2]
resources: {devices: cpu, cpu_threads_per_trial: 1}
mode: deterministic
";

/// Column `name` of CSV records (the first is the header).
fn column<'a>(records: &'a [Vec<String>], name: &str) -> Vec<&'a str> {
    let k = records[0].iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"));
    records[1..].iter().map(|r| r[k].as_str()).collect()
}

fn numbers(records: &[Vec<String>], name: &str) -> Vec<f64> {
    column(records, name).iter().map(|v| v.parse().unwrap()).collect()
}

fn sample_sd(values: &[f64]) -> f64 {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() as f64 - 1.0)).sqrt()
}

/// Each member's predicted tensors, by frame, from `study predict --study --trial`.
fn member_tensors(dir: &Path, trial: u64, structures: &Path) -> Vec<[[f64; 3]; 3]> {
    let trial = trial.to_string();
    let args = [
        "predict",
        "--study",
        "tiny",
        "--results",
        "res",
        "--trial",
        &trial,
        "--structures",
        structures.to_str().unwrap(),
    ];
    let out = run(&args, dir);
    let predictions: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    predictions
        .iter()
        .map(|p| {
            let t = &p["tensor"];
            std::array::from_fn(|i| std::array::from_fn(|j| t[i][j].as_f64().unwrap()))
        })
        .collect()
}

#[test]
fn a_screen_ranks_by_the_ensemble_mean_and_reports_its_spread_as_computed_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.yaml"), TINY).unwrap();
    run(&["run", "tiny.yaml", "--results", "res"], d);
    run(&["data", "synth", "--n", "12", "--seed", "5", "--out", "all.extxyz"], d);
    // Structures to screen have no tensor: the file's are dropped.
    let mut frames: Vec<Frame> = read_structures(d.join("all.extxyz"), &ExtxyzOptions::default()).unwrap();
    for f in &mut frames {
        f.dielectric = None;
    }
    let structures = d.join("screen.extxyz");
    write_extxyz_file(&structures, &frames).unwrap();

    let out = run(
        &[
            "screen",
            "tiny",
            "--results",
            "res",
            "--structures",
            "screen.extxyz",
            "--top",
            "4",
            "--threads",
            "2",
            "--batch",
            "5",
        ],
        d,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("screened 12 structures"), "{text}");
    let records = parse_csv(&std::fs::read_to_string(d.join("res/tiny/screen/ranked.csv")).unwrap());
    assert_eq!(records.len(), 13, "a row per structure");

    // The ensemble is the sweep's one cell: all three seeds.
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("res/tiny/screen/screen.json")).unwrap())
            .unwrap();
    let trials: Vec<u64> =
        summary["models"].as_array().unwrap().iter().map(|m| m["trial"].as_u64().unwrap()).collect();
    assert_eq!(trials, vec![0, 1, 2]);

    let members: Vec<Vec<[[f64; 3]; 3]>> =
        trials.iter().map(|&t| member_tensors(d, t, &structures)).collect();
    let frame_of = numbers(&records, "frame");
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + b.abs());
    let mut expected_ar = Vec::new();
    for (row, &frame) in frame_of.iter().enumerate() {
        let frame = frame as usize;
        let per: Vec<[[f64; 3]; 3]> = members.iter().map(|m| m[frame]).collect();
        for (name, i, j) in
            [("xx", 0, 0), ("yy", 1, 1), ("zz", 2, 2), ("xy", 0, 1), ("xz", 0, 2), ("yz", 1, 2)]
        {
            let values: Vec<f64> = per.iter().map(|t| t[i][j]).collect();
            let mean = values.iter().sum::<f64>() / 3.0;
            assert!(close(numbers(&records, &format!("eps_{name}"))[row], mean), "frame {frame} {name}");
            assert!(
                close(numbers(&records, &format!("spread_{name}"))[row], sample_sd(&values)),
                "frame {frame} {name}"
            );
        }
        let polys: Vec<f64> = per.iter().map(|t| (t[0][0] + t[1][1] + t[2][2]) / 3.0).collect();
        assert!(close(numbers(&records, "eps_poly")[row], polys.iter().sum::<f64>() / 3.0));
        assert!(close(numbers(&records, "eps_poly_spread")[row], sample_sd(&polys)));
        // a_r of the mean tensor, from its eigenvalues as written.
        let eig: Vec<f64> = ["eig1", "eig2", "eig3"].iter().map(|e| numbers(&records, e)[row]).collect();
        let trace = eig.iter().sum::<f64>() / 3.0;
        assert!(close(trace, numbers(&records, "eps_poly")[row]), "eigenvalues sum to the trace");
        let ar = column(&records, "anisotropy")[row];
        if eig[0] > 0.0 {
            assert!(close(ar.parse().unwrap(), eig[2] / eig[0]));
            expected_ar.push(eig[2] / eig[0]);
        } else {
            assert_eq!(ar, "", "a_r undefined without a positive smallest eigenvalue");
        }
        assert_eq!(column(&records, "unphysical")[row] == "true", eig[0] < 1.0);
    }
    // Ranked by a_r, highest first, undefined last.
    let mut sorted = expected_ar.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(expected_ar, sorted);
    assert_eq!(numbers(&records, "rank"), (1..=12).map(f64::from).collect::<Vec<_>>());

    // top.extxyz holds the top 4 structures, readable back, with the predicted tensor.
    let top = read_structures(d.join("res/tiny/screen/top.extxyz"), &ExtxyzOptions::default()).unwrap();
    assert_eq!(top.len(), 4);
    for (k, f) in top.iter().enumerate() {
        assert_eq!(f.structure, frames[frame_of[k] as usize].structure);
    }
    let pred = read_structures(
        d.join("res/tiny/screen/top.extxyz"),
        &ExtxyzOptions { dielectric_key: "dielectric_pred".into(), require_dielectric: true },
    )
    .unwrap();
    assert!(close(pred[0].dielectric.unwrap()[0][0], numbers(&records, "eps_xx")[0]));
    let report = std::fs::read_to_string(d.join("res/tiny/screen/report.md")).unwrap();
    assert!(report.contains("## Top 4 by anisotropy"), "{report}");
    assert!(d.join("res/tiny/screen/figures/anisotropy_distribution.png").is_file());
    let drawable = column(&records, "anisotropy")
        .iter()
        .zip(column(&records, "anisotropy_spread"))
        .any(|(a, s)| !a.is_empty() && !s.is_empty());
    assert_eq!(d.join("res/tiny/screen/figures/anisotropy_vs_spread.svg").is_file(), drawable, "{report}");

    // The same screen on one thread, from pymatgen JSON records without a tensor, is the same.
    let json: Vec<Value> = frames
        .iter()
        .map(|f| {
            let sites: Vec<Value> = f
                .structure
                .numbers
                .iter()
                .zip(&f.structure.positions)
                .map(|(&z, p)| serde_json::json!({"species": [{"element": anisostudy::crystal::elements::symbol(z), "occu": 1}], "xyz": p}))
                .collect();
            serde_json::json!({"structure": {"lattice": {"matrix": f.structure.lattice}, "sites": sites}, "material_id": f.id})
        })
        .collect();
    std::fs::write(d.join("screen.json"), serde_json::to_string_pretty(&json).unwrap()).unwrap();
    run(
        &[
            "screen",
            "tiny",
            "--results",
            "res",
            "--structures",
            "screen.json",
            "--threads",
            "1",
            "--out",
            "one",
        ],
        d,
    );
    let again = parse_csv(&std::fs::read_to_string(d.join("one/ranked.csv")).unwrap());
    for name in ["frame", "eps_poly", "anisotropy", "spread_xy"] {
        assert_eq!(column(&again, name), column(&records, name), "{name}");
    }

    // Filters: size and crystal system before predicting, ε_poly after.
    let atoms = numbers(&records, "atoms");
    let out = run(
        &[
            "screen",
            "tiny",
            "--results",
            "res",
            "--structures",
            "screen.extxyz",
            "--max-atoms",
            "3",
            "--out",
            "small",
        ],
        d,
    );
    let small = parse_csv(&std::fs::read_to_string(d.join("small/ranked.csv")).unwrap());
    assert_eq!(
        small.len() - 1,
        atoms.iter().filter(|&&n| n <= 3.0).count(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let systems = column(&records, "crystal_system");
    run(
        &[
            "screen",
            "tiny",
            "--results",
            "res",
            "--structures",
            "screen.extxyz",
            "--systems",
            "cubic,hexagonal",
            "--out",
            "sys",
        ],
        d,
    );
    let sys = parse_csv(&std::fs::read_to_string(d.join("sys/ranked.csv")).unwrap());
    assert_eq!(sys.len() - 1, systems.iter().filter(|s| ["cubic", "hexagonal"].contains(s)).count());
    assert!(column(&sys, "crystal_system").iter().all(|s| ["cubic", "hexagonal"].contains(s)));
    let polys = numbers(&records, "eps_poly");
    let median = {
        let mut p = polys.clone();
        p.sort_by(f64::total_cmp);
        p[6]
    };
    let min = median.to_string();
    run(
        &[
            "screen",
            "tiny",
            "--results",
            "res",
            "--structures",
            "screen.extxyz",
            "--min-eps-poly",
            &min,
            "--physical-only",
            "--out",
            "eps",
        ],
        d,
    );
    let eps = parse_csv(&std::fs::read_to_string(d.join("eps/ranked.csv")).unwrap());
    let unphysical = column(&records, "unphysical");
    let kept = polys.iter().zip(&unphysical).filter(|(p, u)| **p >= median && **u == "false").count();
    assert_eq!(eps.len() - 1, kept);

    // `study predict --study` with --best is the best trial's checkpoint.
    let best = run(
        &["predict", "--study", "tiny", "--results", "res", "--best", "--structures", "screen.extxyz"],
        d,
    );
    let summary_best = summary["models"]
        .as_array()
        .unwrap()
        .iter()
        .min_by(|a, b| a["value"].as_f64().unwrap().total_cmp(&b["value"].as_f64().unwrap()))
        .unwrap()["trial"]
        .as_u64()
        .unwrap();
    let checkpoint = format!("res/tiny/trials/{summary_best}/checkpoint");
    let direct = run(&["predict", "--checkpoint", &checkpoint, "--structures", "screen.extxyz"], d);
    assert_eq!(best.stdout, direct.stdout);
}

#[test]
fn bad_screens_are_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.yaml"), TINY.replace("seed: [0, 1, 2]", "seed: [0]")).unwrap();
    run(&["run", "tiny.yaml", "--results", "res"], d);
    std::fs::write(d.join("bad.extxyz"), "2\nLattice=\"4 0 0 0 4 0 0 0 4\"\nNa 0 0 0\n").unwrap();
    let out = Command::new(STUDY)
        .args(["screen", "tiny", "--results", "res", "--structures", "bad.extxyz"])
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.extxyz, frame 1 (line 1)"), "{err}");
    let out = Command::new(STUDY)
        .args([
            "predict",
            "--study",
            "tiny",
            "--results",
            "res",
            "--trial",
            "7",
            "--structures",
            "bad.extxyz",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("has no trial 7"), "{err}");
}

/// The shared MP file and its split, or `None` with a note.
fn mp_data() -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let data = std::env::var_os("ANISOSTUDY_DATASET")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("mp_dielectric_2k.extxyz"));
    let split = data.with_extension("split.json");
    if data.is_file() && split.is_file() {
        Some((data, split))
    } else {
        eprintln!("note: skipped: no {} with its split file", data.display());
        None
    }
}

#[test]
#[ignore = "trains on the MP data for a few minutes: cargo test --release --test screen -- --ignored"]
fn a_screen_of_the_mp_test_split_finds_its_most_anisotropic_crystals() {
    let Some((data, split)) = mp_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let study = format!(
        "name: mp_screen
seed: 11
dataset: {{path: {}, split_file: {}}}
model: {{em_dim: 16, layers: 1, lmax: 2, mul: 8, num_basis: 10, radial_neurons: 32, dtype: f32}}
training: {{epochs: 15, batch_size: 12, patience: 15}}
objective: {{metric: val_loss, direction: minimize}}
sweep:
  values:
    seed: [0, 1]
resources: {{devices: cpu, cpu_threads_per_trial: 1}}
mode: deterministic
",
        data.display(),
        split.display()
    );
    std::fs::write(d.join("mp.yaml"), study).unwrap();
    run(&["run", "mp.yaml", "--results", "res"], d);
    // The test split, with its DFPT tensors kept as the reference.
    let frames = read_structures(&data, &ExtxyzOptions::default()).unwrap();
    let split: Value = serde_json::from_str(&std::fs::read_to_string(&split).unwrap()).unwrap();
    let test: Vec<Frame> = split["test"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| frames[k.as_u64().unwrap() as usize].clone())
        .collect();
    write_extxyz_file(d.join("test.extxyz"), &test).unwrap();
    let n = 20;
    run(
        &["screen", "mp_screen", "--results", "res", "--structures", "test.extxyz", "--top", &n.to_string()],
        d,
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("res/mp_screen/screen/screen.json")).unwrap())
            .unwrap();
    let overlap = &summary["overlap"];
    let (found, chance) = (overlap["found"].as_u64().unwrap(), overlap["chance"].as_f64().unwrap());
    println!(
        "top {n} of {} test structures by predicted a_r: {found} in the true top {n} (chance {chance:.1})",
        test.len()
    );
    // Chance: the overlap of two random n-subsets is hypergeometric with mean n²/M ≈ 2;
    // P(≥ 3 × chance) by chance is below 1 %.
    assert!(found as f64 >= 3.0 * chance, "{overlap}");
}
