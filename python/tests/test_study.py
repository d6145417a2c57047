"""Studies from Python: loading trials, the DataFrame, running and
interrupting a run, and errors."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import anisostudy
from conftest import ROOT, study


def test_a_run_gives_the_study_with_its_trials(smoke):
    trials = smoke.trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state in ("COMPLETE", "PRUNED") for t in trials)
    best = smoke.best_trial
    values = [t.value for t in trials if t.state == "COMPLETE"]
    assert best.value == min(values)
    assert set(best.params) == {"lr", "em_dim", "lmax"}
    assert smoke.definitions[0]["revision"] == 1
    assert smoke.definitions[0]["definition"]["name"] == "smoke"


def test_the_dataframe_is_the_csv_export(smoke, tmp_path):
    csv = tmp_path / "trials.csv"
    study("export", "smoke", "--results", smoke.results, "--format", "csv", "--out", csv)
    exported = anisostudy.read_trials_csv(csv)
    frame = smoke.trials_dataframe()
    pd.testing.assert_frame_equal(frame, exported)
    assert len(frame) == 4
    # Optuna's columns, in Optuna's order, the metrics as user attributes.
    assert list(frame.columns[:5]) == ["number", "value", "datetime_start", "datetime_complete", "duration"]
    assert frame.columns[-1] == "state"
    assert {"params_lr", "params_lmax", "user_attrs_test_eps_poly_mae", "user_attrs_phase"} <= set(frame.columns)
    assert frame["duration"].dt.total_seconds().gt(0).all()


def test_the_json_records_are_the_json_export(smoke):
    exported = json.loads(study("export", "smoke", "--results", smoke.results, "--format", "json").stdout)
    assert [t.number for t in smoke.trials] == [t["number"] for t in exported["trials"]]
    assert [t.value for t in smoke.trials] == [t["value"] for t in exported["trials"]]
    assert [t.params for t in smoke.trials] == [t["params"] for t in exported["trials"]]


def test_ctrl_c_stops_a_run_cleanly_and_a_second_run_resumes(tmp_path):
    script = textwrap.dedent(
        f"""
        import signal
        import anisostudy
        # As in a terminal, whatever the test runner left SIGINT as (a
        # background job inherits it ignored, and Python then keeps it so).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            anisostudy.run({str(ROOT / 'studies' / 'smoke.yaml')!r}, results={str(tmp_path)!r},
                           overrides={{"training.epochs": 80, "training.patience": 80, "phases[0].n_trials": 2}})
        except KeyboardInterrupt:
            raise SystemExit(130)
        """
    )
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until both trials train, then press Ctrl-C once.
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline and seen.count("started on") < 2:
        seen += run.stderr.readline()
    time.sleep(1.0)
    run.send_signal(signal.SIGINT)
    _, rest = run.communicate(timeout=120)
    stderr = seen + rest
    assert run.returncode == 130, stderr
    assert "stopping: no new trials" in stderr
    assert "interrupted (checkpointed; resumes on the next run)" in stderr
    status = study("status", "smoke", "--results", tmp_path).stdout
    assert "2 WAITING" in status, status
    # The same call again resumes the interrupted trials and finishes.
    resumed = anisostudy.run(
        ROOT / "studies" / "smoke.yaml",
        results=tmp_path,
        overrides={"training.epochs": 80, "training.patience": 80, "phases[0].n_trials": 2},
    )
    assert [t.state for t in resumed.trials] == ["COMPLETE", "COMPLETE"]


def test_bad_input_raises_value_errors_naming_where(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nseed: 1\nobjective: {metric: val_loss}\nphases: []\nmodel: {num_basis: 1}\n")
    with pytest.raises(anisostudy.InputError) as caught:
        anisostudy.run(bad, results=tmp_path)
    assert isinstance(caught.value, ValueError)
    assert str(bad) in caught.value.location
    assert caught.value.hint
    with pytest.raises(anisostudy.InputError, match="no such results folder"):
        anisostudy.load_study("smoke", results=tmp_path / "nowhere")
    with pytest.raises(anisostudy.InputError) as caught:
        anisostudy.run(ROOT / "studies" / "smoke.yaml", results=tmp_path, overrides={"training.epochz": 3})
    assert "epochz" in str(caught.value)
    with pytest.raises(anisostudy.InputError, match="no such file|cannot read"):
        anisostudy.run(tmp_path / "missing.yaml", results=tmp_path)
