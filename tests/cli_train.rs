//! `study train` and `study predict` through the real binary.

use std::process::{Command, Output};

fn study(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_study")).args(args).output().expect("the study binary runs")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

const TINY: [&str; 20] = [
    "--dataset",
    "synthetic",
    "--n",
    "30",
    "--em-dim",
    "4",
    "--layers",
    "1",
    "--lmax",
    "1",
    "--mul",
    "2",
    "--num-basis",
    "4",
    "--radial-neurons",
    "6",
    "--batch-size",
    "6",
    "--epochs",
    "2",
];

#[test]
fn train_then_predict() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_arg = run.to_str().unwrap();
    let mut args = vec!["train", "--no-cache", "--out", run_arg];
    args.extend(TINY);
    let summary = json(&study(&args));
    assert_eq!(summary["status"], "max_epochs");
    assert_eq!(summary["epochs_run"], 2);
    assert!(summary["num_params"].as_u64().unwrap() > 0);
    assert_eq!(summary["test"]["count"], 3);
    assert_eq!(summary["test"]["by_system"].as_array().unwrap().len(), 7);
    assert!(summary["test"]["eps_poly_mae"].as_f64().unwrap().is_finite());
    assert!(run.join("model.safetensors").is_file() && run.join("checkpoint.json").is_file());

    // Resuming a finished run reproduces its result.
    let again = json(&study(&["train", "--out", run_arg, "--resume"]));
    assert_eq!(again["test"], summary["test"]);

    // Predict on structures written as extxyz.
    let structures = dir.path().join("s.extxyz");
    let s_arg = structures.to_str().unwrap();
    assert!(study(&["data", "synth", "--n", "4", "--seed", "2", "--out", s_arg]).status.success());
    let predictions = json(&study(&["predict", "--checkpoint", run_arg, "--structures", s_arg]));
    let predictions = predictions.as_array().unwrap();
    assert_eq!(predictions.len(), 4);
    for p in predictions {
        let t = &p["tensor"];
        assert_eq!(t[0][1], t[1][0], "symmetric tensor");
        let eig: Vec<f64> =
            p["eigenvalues"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let trace = (0..3).map(|i| t[i][i].as_f64().unwrap()).sum::<f64>();
        assert!((p["eps_poly"].as_f64().unwrap() - trace / 3.0).abs() < 1e-9);
        assert!((p["anisotropy_ratio"].as_f64().unwrap() - eig[2] / eig[0]).abs() < 1e-9);
        assert!(p["crystal_system"].is_string());
    }
    let csv = study(&["predict", "--checkpoint", run_arg, "--structures", s_arg, "--format", "csv"]);
    assert!(csv.status.success());
    assert_eq!(String::from_utf8(csv.stdout).unwrap().lines().count(), 5);
}

#[test]
fn options_from_yaml_and_bad_input_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("train.yaml");
    std::fs::write(
        &config,
        "model: scalar\nem-dim: 4\nlayers: 1\nlmax: 0\nmul: 2\nnum-basis: 4\nradial-neurons: 6\nepochs: 1\n\
         dataset: synthetic\nn: 20\nno-cache: true\ndtype: f64\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let summary =
        json(&study(&["train", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()]));
    assert_eq!(summary["model"]["kind"], "scalar");
    assert_eq!(summary["model"]["dtype"], "f64");
    assert_eq!(summary["training"]["batch_size"], 12);

    let code = |args: &[&str]| study(args).status.code();
    assert_eq!(code(&["train", "--bogus-flag"]), Some(2));
    assert_eq!(code(&["train", "--dtype", "f16"]), Some(2));
    // An equivariant model needs lmax ≥ 1: the error names the flag.
    let bad = study(&["train", "--lmax", "0", "--no-cache", "--out", dir.path().join("x").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--lmax"));
    std::fs::write(&config, "em_dim: 4\n").unwrap();
    let bad = study(&["train", "--config", config.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("train.yaml:1"));
    // An existing checkpoint is not overwritten.
    assert_eq!(code(&["train", "--out", out.to_str().unwrap(), "--no-cache"]), Some(2));
    assert_eq!(code(&["predict", "--checkpoint", "/nonexistent", "--structures", "x.extxyz"]), Some(2));
}
