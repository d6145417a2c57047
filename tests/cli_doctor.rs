//! `study doctor`: the device check a user runs first on a new node. Here
//! on the CPU (the tensor-op network, and the GPU engine's kernels on their
//! emulation, against the fused network); in a `cuda` build the same command
//! checks a GPU.

use std::process::Command;

const STUDY: &str = env!("CARGO_BIN_EXE_study");

#[test]
fn doctor_checks_the_tensor_network_on_the_cpu() {
    let out = Command::new(STUDY).args(["doctor", "--device", "cpu", "--batches", "1"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("all 16 checks passed on cpu"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("edges/s"), "{stdout}");
}

#[test]
fn doctor_checks_the_gpu_engine_on_its_cpu_emulation() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("doctor.json");
    let out = Command::new(STUDY)
        .args(["doctor", "--device", "gpu-emulated", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    assert!(report["budget"]["launches"].as_u64().unwrap() <= 100, "{report}");
    assert_eq!(report["budget"]["transfers"], 3, "{report}");
    // The run stays on the device: the batch goes up, and a kilobyte more in all.
    let budget = &report["budget"];
    let moved = budget["bytes_up"].as_u64().unwrap() + budget["bytes_down"].as_u64().unwrap();
    assert!(moved <= budget["batch_bytes"].as_u64().unwrap() + 1024, "{report}");
    assert_eq!(budget["allocs"], 0, "{report}");
    assert!(stdout.contains("all 16 checks passed on gpu-emulated"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert!(
        stdout.contains("kernel launches (budget 100)") && stdout.contains("transfers (budget 3)"),
        "{stdout}"
    );
}

#[test]
fn doctor_names_what_to_do_for_a_device_this_build_lacks() {
    let out = Command::new(STUDY).args(["doctor", "--device", "tensor-cuda:0"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "cuda") {
        return; // a cuda build opens the GPU, or says why it cannot
    }
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("needs a build with CUDA support") && stderr.contains("scripts/cuda-build.sh"),
        "{stderr}"
    );
    let out = Command::new(STUDY).args(["doctor", "--device", "gpu0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--device"));
}

#[test]
fn doctor_on_a_gpu_without_a_driver_exits_2_naming_the_driver() {
    if std::path::Path::new("/dev/nvidiactl").exists() {
        println!("note: this machine has an NVIDIA driver; the no-driver message is not checked");
        return;
    }
    let out = Command::new(STUDY).args(["doctor", "--device", "cuda:0"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no NVIDIA driver") && stderr.contains("libcuda.so.1"), "{stderr}");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--device"));
}
