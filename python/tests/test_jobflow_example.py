"""The jobflow example (examples/jobflow/) runs: 20 jobs each ask, run and
tell one trial of a command objective."""

import subprocess
import sys

import pytest

import anisostudy
from conftest import ROOT, study

pytest.importorskip("jobflow", reason="jobflow is not installed (python/tests/venv.sh installs it)")


def test_the_jobflow_example_asks_runs_and_tells_20_trials(tmp_path):
    out = subprocess.run(
        [sys.executable, ROOT / "examples" / "jobflow" / "flow.py", "--results", tmp_path],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("20 trials told; best: trial"), out.stdout
    trials = anisostudy.load_study("jobflow_example", results=tmp_path).trials
    assert [t.state for t in trials] == ["COMPLETE"] * 20
    status = study("status", "jobflow_example", "--results", tmp_path).stdout
    assert "20 COMPLETE" in status
