"""Fixtures: a small study run once through the package, the `study`
binary to compare with, and synthetic structures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def study_bin() -> str:
    """The `study` binary built from this repository (the reference every
    result of the package is compared with), else the package's script."""
    return os.environ.get("ANISOSTUDY_STUDY_BIN") or str(Path(sys.executable).with_name("study"))


def study(*args, check=True, cwd=None) -> subprocess.CompletedProcess:
    out = subprocess.run([study_bin(), *map(str, args)], capture_output=True, text=True, cwd=cwd)
    if check and out.returncode != 0:
        raise AssertionError(f"study {' '.join(map(str, args))} exited {out.returncode}:\n{out.stderr}")
    return out


SMOKE = {"training.epochs": 6, "training.patience": 6, "phases[0].n_trials": 4}


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """The smoke study, run through `anisostudy.run` (4 short trials)."""
    import anisostudy

    results = tmp_path_factory.mktemp("results")
    study = anisostudy.run(ROOT / "studies" / "smoke.yaml", results=results, overrides=SMOKE)
    return study


@pytest.fixture(scope="session")
def structures(tmp_path_factory) -> Path:
    """20 synthetic crystals as extended XYZ, written by `study data synth`."""
    path = tmp_path_factory.mktemp("structures") / "synthetic.extxyz"
    study("data", "synth", "--n", 20, "--seed", 5, "--out", path)
    return path
