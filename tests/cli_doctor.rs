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
    assert!(stdout.contains("all 14 checks passed on cpu"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("edges/s"), "{stdout}");
}

#[test]
fn doctor_checks_the_gpu_engine_on_its_cpu_emulation() {
    let out = Command::new(STUDY).args(["doctor", "--device", "gpu-emulated"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("all 14 checks passed on gpu-emulated"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert!(
        stdout.contains("kernel launches (budget 100)") && stdout.contains("transfers (budget 4)"),
        "{stdout}"
    );
}

#[test]
fn doctor_names_what_to_do_for_a_device_this_build_lacks() {
    let out = Command::new(STUDY).args(["doctor", "--device", "cuda:0"]).output().unwrap();
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
