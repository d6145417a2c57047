"""Optuna 5.0's pruners on the learning curves of `benches/pruner_budget.rs`.

For every function, pruner and seed, Optuna's TPE (its defaults, seeded)
searches until it has spent 40 full trials' worth of steps (40 × 81), each
trial reporting its curve step by step and stopping when `should_prune`
says so; the best COMPLETE value within 10, 20 and 40 trials' worth is
written per seed. `pruner_budget` reads the file (PRUNER_BUDGET_OPTUNA=FILE)
and compares ours with Optuna's, seed set against seed set (Mann–Whitney).

    bash tests/optuna/venv.sh
    target/optuna-venv/bin/python benches/optuna/pruner_reference.py --seeds 100 \\
        --out benches/optuna/pruner_reference.json
"""

import argparse
import json
import math

import optuna

# The constants of the reference runs of `hpo_quality`, beside this file.
from tpe_reference import HARTMANN_A, HARTMANN_ALPHA, HARTMANN_P

STEPS = 81
BUDGETS = [10, 20, 40]


def branin(p):
    x, y = p["x"], p["y"]
    b = 5.1 / (4.0 * math.pi**2)
    c = 5.0 / math.pi
    t = 1.0 / (8.0 * math.pi)
    return (y - b * x * x + c * x - 6.0) ** 2 + 10.0 * (1.0 - t) * math.cos(x) + 10.0


def hartmann6(p):
    x = [p[f"x{i}"] for i in range(6)]
    return -sum(
        HARTMANN_ALPHA[i] * math.exp(-sum(HARTMANN_A[i][j] * (x[j] - HARTMANN_P[i][j]) ** 2 for j in range(6)))
        for i in range(4)
    )


def mixed(p):
    penalty = {1: 0.8, 2: 0.3, 3: 0.0}.get(p["l_max"], 0.2)
    return (
        (math.log10(p["lr"]) - math.log10(3e-3)) ** 2
        + 0.3 * (p["layers"] - 2.0) ** 2
        + ((p["mul"] - 48.0) / 16.0) ** 2
        + penalty
    )


def suggest_branin(t):
    return {"x": t.suggest_float("x", -5.0, 10.0), "y": t.suggest_float("y", 0.0, 15.0)}


def suggest_hartmann6(t):
    return {f"x{i}": t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)}


def suggest_mixed(t):
    return {
        "lr": t.suggest_float("lr", 1e-4, 0.5, log=True),
        "layers": t.suggest_int("layers", 1, 4),
        "mul": t.suggest_int("mul", 16, 64),
        "l_max": t.suggest_categorical("l_max", [1, 2, 3, 4]),
    }


FUNCTIONS = {
    "branin": (branin, 10.0, suggest_branin),
    "hartmann6": (hartmann6, 1.0, suggest_hartmann6),
    "mixed": (mixed, 0.1, suggest_mixed),
}


def unit(params, salt):
    """As `unit` in pruner_budget.rs: parameters in name order."""
    phase = sum((k + 1) * 78.233 * float(params[name]) for k, name in enumerate(sorted(params)))
    return abs(math.fmod(math.sin(salt * 12.9898 + phase) * 43758.5453, 1.0))


def curve(f, scale, params, t):
    a = (0.5 + 2.5 * unit(params, 1.0)) * scale
    tau = 2.0 + 28.0 * unit(params, 2.0)
    return f(params) + a * math.exp(-(t - 1) / tau)


def pruner_of(name):
    return {
        "none": optuna.pruners.NopPruner(),
        "median": optuna.pruners.MedianPruner(),
        "asha": optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        "hyperband": optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3),
    }[name]


def search(function, pruner, seed):
    f, scale, suggest = FUNCTIONS[function]
    # Named as pruner_budget.rs names its studies: the same Hyperband brackets.
    study = optuna.create_study(
        study_name=f"pruner_budget_{seed}", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner_of(pruner)
    )
    limit = BUDGETS[-1] * STEPS
    steps, best = 0, math.inf
    reached = [math.inf] * len(BUDGETS)
    while steps < limit:
        trial = study.ask()
        params = suggest(trial)
        state, value = optuna.trial.TrialState.PRUNED, None
        for t in range(1, STEPS + 1):
            value = curve(f, scale, params, t)
            steps += 1
            trial.report(value, t)
            if t == STEPS:
                state = optuna.trial.TrialState.COMPLETE
            elif trial.should_prune():
                break
        if state == optuna.trial.TrialState.COMPLETE:
            study.tell(trial, value)
            best = min(best, value)
        else:
            study.tell(trial, state=state)
        for k, budget in enumerate(BUDGETS):
            if steps <= budget * STEPS:
                reached[k] = best
    return reached


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = {}
    for function in FUNCTIONS:
        for pruner in ["none", "median", "asha", "hyperband"]:
            runs = [search(function, pruner, seed) for seed in range(args.seeds)]
            results[f"{function}/{pruner}"] = {
                f"best_at_{budget}": [run[k] for run in runs] for k, budget in enumerate(BUDGETS)
            }
            print(function, pruner, flush=True)
    meta = {"optuna": optuna.__version__, "seeds": args.seeds, "steps": STEPS, "budgets": BUDGETS}
    with open(args.out, "w") as out:
        json.dump({"meta": meta, "results": results}, out)


if __name__ == "__main__":
    main()
