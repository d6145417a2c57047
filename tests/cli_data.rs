//! `study data` through the real binary.

use std::process::Command;

fn study(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_study")).args(args).output().expect("the study binary runs")
}

#[test]
fn synth_then_inspect_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("synthetic.extxyz");
    let file_arg = file.to_str().unwrap();
    let cache = dir.path().join("cache");
    let out = study(&["data", "synth", "--n", "30", "--seed", "11", "--out", file_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let inspect = |source: &str| {
        let out = study(&[
            "data",
            "inspect",
            source,
            "--n",
            "30",
            "--seed",
            "11",
            "--json",
            "--cache-dir",
            cache.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let from_file = inspect(file_arg);
    let embedded = inspect("synthetic");
    assert_eq!(from_file["cleaning"]["frames_read"], 30);
    // The file holds exactly the embedded set: same cleaning, systems and targets.
    for key in ["cleaning", "crystal_systems", "eps_poly", "anisotropy_ratio", "edges_per_structure", "split"]
    {
        assert_eq!(from_file[key], embedded[key], "{key}");
    }
    let kept = from_file["cleaning"]["kept"].as_u64().unwrap();
    let split = &from_file["split"];
    assert_eq!(
        split["train"].as_u64().unwrap() + split["val"].as_u64().unwrap() + split["test"].as_u64().unwrap(),
        kept
    );

    // The table output names the counts too, and a second run reads the cache.
    let out = study(&["data", "inspect", file_arg, "--cache-dir", cache.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("frames read") && text.contains("crystal system"), "{text}");
    assert!(text.contains("graph cache       read"), "{text}");
}

#[test]
fn bad_input_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.extxyz");
    std::fs::write(&file, "2\nLattice=\"3 0 0 0 3 0 0 0 3\" Properties=species:S:1:pos:R:3 dielectric=\"1 0 0 0 1 0 0 0 1\"\nNa 0 0 0\n").unwrap();
    let out = study(&["data", "inspect", file.to_str().unwrap(), "--no-cache"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.extxyz"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = study(&["data", "inspect", dir.path().join("missing.extxyz").to_str().unwrap(), "--no-cache"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.extxyz"));

    let split = dir.path().join("split.json");
    std::fs::write(&split, r#"{"train": [0, 999], "val": [], "test": []}"#).unwrap();
    let out = study(&[
        "data",
        "inspect",
        "synthetic",
        "--n",
        "5",
        "--no-cache",
        "--split-file",
        split.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("split.json"));
}

#[test]
fn every_command_has_help() {
    for args in [&["data", "--help"][..], &["data", "inspect", "--help"], &["data", "synth", "--help"]] {
        let out = study(args);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}
