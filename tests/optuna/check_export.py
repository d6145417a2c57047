"""Checks a study exported with `study export --format optuna` against our
own JSON export of it, with the real Optuna: the same trials, states,
parameters, values and intermediate values, value by value; the same best
trial (with several objectives, the same Pareto set: Optuna's
`best_trials`); and Optuna's plots and trials_dataframe run on it.

    python check_export.py EXPORTED.db STUDY_NAME OURS.json
"""

import json
import math
import sys

import optuna

STATES = {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED", "FAILED": "FAIL", "RUNNING": "RUNNING", "WAITING": "WAITING"}


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def main(db, name, ours_path):
    ours = json.load(open(ours_path))
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    trials = study.trials
    assert len(trials) == len(ours["trials"]), (len(trials), len(ours["trials"]))
    objectives = ours["study"].get("objectives")
    if objectives:
        return check_several_objectives(study, ours, objectives)
    direction = optuna.study.StudyDirection[ours["study"]["direction"].upper()]
    assert study.direction == direction, study.direction
    for theirs, mine in zip(trials, ours["trials"]):
        where = f"trial {mine['number']}"
        assert theirs.number == mine["number"], where
        assert theirs.state.name == STATES[mine["state"]], (where, theirs.state, mine["state"])
        assert theirs.params.keys() == mine["params"].keys(), where
        for key, value in mine["params"].items():
            assert same(theirs.params[key], value) and type(theirs.params[key]) is type(value), (where, key, theirs.params[key], value)
        if mine["state"] in ("COMPLETE", "PRUNED") and mine.get("value") is not None:
            assert theirs.value == mine["value"], (where, theirs.value, mine["value"])
        else:
            assert theirs.value is None, (where, theirs.value)
        mine_steps = {int(k): v for k, v in mine.get("intermediate", {}).items()}
        assert theirs.intermediate_values == mine_steps, (where, theirs.intermediate_values, mine_steps)
        for key, value in mine.get("metrics", {}).items():
            assert same(theirs.user_attrs[key], value), (where, key)
        assert theirs.user_attrs["phase"], where
        if mine["state"] == "FAILED":
            assert theirs.user_attrs.get("fail_reason") == mine.get("fail_reason"), where
        # Optuna keeps constraint values as the trial system attribute
        # `constraints`; NaN is null in both.
        assert theirs.system_attrs.get("constraints") == mine.get("constraints"), (
            where, theirs.system_attrs.get("constraints"), mine.get("constraints"))
    # Optuna's best trial is the best feasible one, as ours.
    best = [t for t in ours["trials"] if t["state"] == "COMPLETE"
            and all(c is not None and c <= 0 for c in t.get("constraints") or [])]
    best = (min if direction == optuna.study.StudyDirection.MINIMIZE else max)(best, key=lambda t: (t["value"]))
    assert study.best_trial.number == best["number"], (study.best_trial.number, best["number"])
    assert study.best_value == best["value"]
    for key, value in ours["study"]["user_attrs"].items():
        assert study.user_attrs[key] == value, key
    assert study.user_attrs["seed"] == ours["study"]["seed"] and study.user_attrs["study_file"]

    frame = study.trials_dataframe()
    assert len(frame) == len(trials)
    from optuna import visualization

    for plot in (visualization.plot_optimization_history, visualization.plot_param_importances,
                 visualization.plot_parallel_coordinate, visualization.plot_intermediate_values):
        figure = plot(study)
        assert figure.to_dict()["data"], plot.__name__
    states = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    print(json.dumps({"trials": len(trials), "states": states, "best": study.best_trial.number,
                      "metric_names": study.metric_names}))


def check_several_objectives(study, ours, objectives):
    directions = [optuna.study.StudyDirection[o["direction"].upper()] for o in objectives]
    assert study.directions == directions, study.directions
    assert study.metric_names == [o["name"] for o in objectives], study.metric_names
    for theirs, mine in zip(study.trials, ours["trials"]):
        where = f"trial {mine['number']}"
        assert theirs.number == mine["number"], where
        assert theirs.state.name == STATES[mine["state"]], (where, theirs.state, mine["state"])
        assert theirs.params == mine["params"], (where, theirs.params, mine["params"])
        if mine["state"] == "COMPLETE":
            assert theirs.values == mine["values"], (where, theirs.values, mine["values"])
        else:
            assert theirs.values is None, (where, theirs.values)
        assert theirs.system_attrs.get("constraints") == mine.get("constraints"), where
    # Optuna's Pareto set is ours.
    best = sorted(t.number for t in study.best_trials)
    assert best == ours["study"]["pareto_set"], (best, ours["study"]["pareto_set"])
    frame = study.trials_dataframe()
    assert len(frame) == len(study.trials)
    assert all(f"values_{o['name']}" in frame.columns for o in objectives), list(frame.columns)
    from optuna import visualization

    figure = visualization.plot_pareto_front(study)
    assert figure.to_dict()["data"], "plot_pareto_front"
    print(json.dumps({"trials": len(study.trials), "pareto_set": best, "metric_names": study.metric_names}))


if __name__ == "__main__":
    main(*sys.argv[1:])
