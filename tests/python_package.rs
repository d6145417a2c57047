//! The `anisostudy` Python package, built by maturin from `python/` and
//! tested with pytest against ASE, pymatgen, pandas and jobflow
//! (`python/tests/`): predictions equal `study predict` to the last digit,
//! the DataFrame equals `study export --format csv`, ask and tell from two
//! processes at once lose nothing, a run stops cleanly on Ctrl-C and
//! resumes, bad input raises `ValueError`s, and the jobflow example runs.
//!
//! `bash python/tests/venv.sh` makes the environment and installs the wheel
//! built from this checkout (`.ci/run` does). Without it this test prints a
//! note and passes; `ANISOSTUDY_PYTHON` names another interpreter.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The interpreter with the package and its test dependencies, or `None`
/// (with a printed note) when there is none.
fn package_python() -> Option<PathBuf> {
    let python = std::env::var_os("ANISOSTUDY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(ROOT).join("target/python-venv/bin/python"));
    let check = "import anisostudy, pytest, pandas, ase, pymatgen.core";
    match Command::new(&python).args(["-c", check]).output() {
        Ok(out) if out.status.success() => Some(python),
        _ => {
            eprintln!(
                "note: skipped: no Python with the anisostudy package at {} (run `bash python/tests/venv.sh`)",
                python.display()
            );
            None
        }
    }
}

#[test]
fn the_python_package_passes_its_tests() {
    let Some(python) = package_python() else { return };
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "python/tests"])
        .current_dir(ROOT)
        .env("ANISOSTUDY_STUDY_BIN", env!("CARGO_BIN_EXE_study"))
        .output()
        .expect("pytest starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pytest failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{}", stdout.lines().last().unwrap_or_default());
}
