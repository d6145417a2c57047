"""Ask and tell from Python, as a workflow engine drives a study whose
trials it runs itself (`resources.executor: external`)."""

import subprocess
import sys
import textwrap

import pytest

import anisostudy
from conftest import study

STUDY = """
name: driven
seed: 11
objective:
  command: echo {x} {n}
  direction: minimize
phases:
  - name: tpe
    sampler: {type: tpe, n_startup_trials: 5}
    n_trials: 30
    space:
      x: {type: float, low: -3.0, high: 3.0}
      n: {type: int, low: 1, high: 4}
pruner: {type: median, n_startup_trials: 1}
resources: {executor: external}
"""


@pytest.fixture
def driven(tmp_path):
    path = tmp_path / "driven.yaml"
    path.write_text(STUDY)
    return path


def objective(params):
    return (params["x"] - 1.0) ** 2 + params["n"]


def test_ask_report_prune_and_tell(driven, tmp_path):
    study = anisostudy.create_study(driven, results=tmp_path / "results")
    first, second = study.ask(), study.ask()
    assert (first.number, second.number) == (0, 1)
    assert first.command[0] == "echo" and float(first.command[1]) == first.params["x"]
    assert first.command[2] == str(first.params["n"])
    assert first.trial_dir.is_dir()
    first.report(0.5, step=1)
    assert study.tell(first, 0.5) == "COMPLETE"
    second.report(9.0, step=1)
    third = study.ask()
    third.report(8.0, step=1)
    assert third.should_prune(), "worse than the median of the finished trials at step 1"
    assert study.tell(third, state="pruned") == "PRUNED"
    assert study.tell(second, state="fail", reason="node lost") == "FAILED"
    states = [t.state for t in study.trials]
    assert states == ["COMPLETE", "FAILED", "PRUNED"]
    assert study.trials[1].fail_reason == "node lost"
    assert study.trials[2].value == 8.0
    with pytest.raises(anisostudy.InputError, match="not RUNNING"):
        study.tell(first, 1.0)
    with pytest.raises(anisostudy.InputError, match="no such trial"):
        study.tell(99, 1.0)
    with pytest.raises(anisostudy.InputError, match="either a value"):
        study.tell(study.ask(), 1.0, state="fail")


def test_two_processes_asking_and_telling_at_once_lose_nothing(driven, tmp_path):
    results = tmp_path / "results"
    anisostudy.create_study(driven, results=results)
    driver = textwrap.dedent(
        f"""
        import anisostudy
        study = anisostudy.load_study("driven", results={str(results)!r})
        told = []
        while (trial := study.ask()) is not None:
            study.tell(trial, (trial.params["x"] - 1.0) ** 2 + trial.params["n"], metrics={{"n": trial.params["n"]}})
            told.append(trial.number)
        print(" ".join(map(str, told)))
        """
    )
    drivers = [subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [d.communicate(timeout=300)[0] for d in drivers]
    assert all(d.returncode == 0 for d in drivers)
    told = sorted(int(n) for out in outputs for n in out.split())
    assert told == list(range(30)), "every trial handed out once and told once"
    study = anisostudy.load_study("driven", results=results)
    assert [t.state for t in study.trials] == ["COMPLETE"] * 30
    assert all(t.metrics["n"] == t.params["n"] for t in study.trials)
    assert study.ask() is None, "the budget is spent"
    frame = study.trials_dataframe()
    assert frame["value"].min() == study.best_trial.value


def test_a_deterministic_study_is_refused_with_the_reason(driven, tmp_path):
    path = tmp_path / "det.yaml"
    path.write_text(STUDY + "mode: deterministic\n")
    with pytest.raises(anisostudy.InputError) as caught:
        anisostudy.create_study(path, results=tmp_path)
    assert "external driver" in caught.value.problem
    assert caught.value.location.startswith(str(path))


def test_stale_trials_fail(driven, tmp_path):
    import time

    study = anisostudy.create_study(driven, results=tmp_path / "results")
    gone = study.ask()
    time.sleep(2.2)
    study.ask(stale_after=2.0)
    assert study.trials[gone.number].state == "FAILED"
    assert "no heartbeat" in study.trials[gone.number].fail_reason


def test_constraints_are_told_with_the_result(tmp_path):
    path = tmp_path / "driven.yaml"
    path.write_text(STUDY.replace("pruner: {type: median, n_startup_trials: 1}\n", "")
                    + "constraints:\n  - {metric: size, max: 4}\n  - {name: memory}\n")
    study = anisostudy.create_study(path, results=tmp_path / "results")
    small, large = study.ask(), study.ask()
    with pytest.raises(anisostudy.InputError, match="needs metric `size`"):
        study.tell(small, 1.0, constraints=[-1.0])
    assert study.tell(small, 1.0, metrics={"size": 3}, constraints=[-1.0]) == "COMPLETE"
    assert study.tell(large, 0.5, metrics={"size": 5}, constraints=[-2.0]) == "COMPLETE"
    assert [t.constraints for t in study.trials] == [[-1.0, -1.0], [1.0, -2.0]]
    assert study.best_trial.number == 0, "the better value 0.5 is infeasible"


def test_several_objectives_are_told_together(tmp_path):
    path = tmp_path / "driven.yaml"
    text = STUDY.replace("pruner: {type: median, n_startup_trials: 1}\n", "").replace(
        "  direction: minimize\n", "  directions: [minimize, maximize]\n  names: [error, speed]\n"
    )
    path.write_text(text)
    study = anisostudy.create_study(path, results=tmp_path / "results")
    assert study.directions == ["minimize", "maximize"] and study.metric_names == ["error", "speed"]
    told = [[1.0, 1.0], [2.0, 3.0], [2.0, 0.5]]
    trials = [study.ask() for _ in told]
    with pytest.raises(anisostudy.InputError, match="one objective value|2 objectives"):
        study.tell(trials[0], 1.0)
    for trial, values in zip(trials, told):
        assert study.tell(trial, values=values) == "COMPLETE"
    assert [t.values for t in study.trials] == told
    assert [t.number for t in study.best_trials] == [0, 1]
