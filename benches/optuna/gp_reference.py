"""Optuna 5.0's GPSampler (and its default TPE) at budgets of 30, 50 and 100 trials.

One run of 100 trials per seed; the best value after its first 30, 50 and
100 trials is recorded (a sampler does not know the budget, so the first 30
trials of a 100-trial run are a 30-trial run). `benches/hpo_quality.rs`
reads the file (HPO_QUALITY_BUDGETS=30,50,100) and compares ours with it seed
set against seed set (Mann–Whitney, Holm). The functions are those of
`tpe_reference.py`, which are `crates/hpo/src/test_functions.rs` term for term.

GPSampler needs torch and scipy besides Optuna:

    python3 -m venv target/gp-venv
    target/gp-venv/bin/pip install optuna==5.0.0 scipy torch
    OMP_NUM_THREADS=1 target/gp-venv/bin/python benches/optuna/gp_reference.py \
        --sampler gp --seeds 200 --out benches/optuna/gp_reference.json
    # 4 trials in flight (async: each new trial asked while 3 still run):
    OMP_NUM_THREADS=1 target/gp-venv/bin/python benches/optuna/gp_reference.py \
        --sampler gp --workers 4 --seeds 200 --out benches/optuna/gp_reference_async4.json
    # Optuna's default TPE (multivariate) at the same budgets:
    target/gp-venv/bin/python benches/optuna/gp_reference.py \
        --sampler tpe --seeds 200 --out benches/optuna/tpe_budgets.json

Constrained problems (`gramacy`, `anisonet_budget`) record the best feasible
value (inf before one is found), their constraints set with
`Trial.set_constraint`, which Optuna 5's TPE and GP samplers read:

    OMP_NUM_THREADS=1 target/gp-venv/bin/python benches/optuna/gp_reference.py \
        --sampler gp --seeds 100 --functions gramacy,anisonet_budget \
        --out benches/optuna/constrained_gp.json
    target/gp-venv/bin/python benches/optuna/gp_reference.py \
        --sampler tpe --seeds 100 --functions gramacy,anisonet_budget \
        --out benches/optuna/constrained_tpe.json

Results are written after every function, so a long run can be stopped and
continued with --update; --append adds seeds to a file function by function:

    OMP_NUM_THREADS=1 target/gp-venv/bin/python benches/optuna/gp_reference.py \
        --sampler gp --append --seeds 64 --functions branin --out benches/optuna/gp_reference.json
"""

import argparse
import json
import math
import os
import sys
import time

import optuna

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tpe_reference import FUNCTIONS  # noqa: E402

BUDGETS = [30, 50, 100]


def make_sampler(kind, seed, workers):
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=workers > 1)


def bests_at_budgets(objective, kind, seed, workers):
    """The best value after each budget, with `workers` trials in flight,
    dispatched as `benches/hpo_quality.rs` does (async: ask while the
    workers - 1 before still run, then tell the oldest)."""
    study = optuna.create_study(sampler=make_sampler(kind, seed, workers), direction="minimize")
    asked, in_flight, told_values = 0, [], []
    while asked < BUDGETS[-1] or in_flight:
        while len(in_flight) < workers and asked < BUDGETS[-1]:
            trial = study.ask()
            in_flight.append((trial, objective(trial)))
            asked += 1
        trial, result = in_flight.pop(0)
        # A constrained problem's trial carries its constraint values, which
        # Optuna's samplers read (feasible when <= 0); only feasible values count.
        value, constraints = result if isinstance(result, tuple) else (result, [])
        for i, c in enumerate(constraints):
            trial.set_constraint(str(i), c)
        study.tell(trial, value)
        told_values.append((trial.number, value if all(c <= 0 for c in constraints) else math.inf))
    told_values.sort()
    values = [v for _, v in told_values]
    # JSON has no infinity: a budget without a feasible trial is null.
    return {str(b): (None if math.isinf(best := min(values[:b])) else best) for b in BUDGETS}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sampler", choices=["gp", "tpe"], default="gp")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--functions",
                        default="branin,hartmann6,mixed,int5_l1,anisonet_rounded,styblinski_tang,categorical6")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--update", action="store_true",
                        help="keep the other functions' results already in --out")
    parser.add_argument("--append", action="store_true",
                        help="add seeds to the functions in --out: the seeds after those it has, for --seeds more")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    results, first_seed = {}, args.first_seed
    if (args.update or args.append) and os.path.exists(args.out):
        with open(args.out) as old:
            kept = json.load(old)
        if (kept["sampler"], kept["workers"]) != (args.sampler, args.workers) or (
                args.update and kept["first_seed"] != args.first_seed):
            sys.exit(f"{args.out}: other seeds, sampler or workers; run without --update/--append")
        results, first_seed = kept["results"], kept["first_seed"]
    for name in args.functions.split(","):
        start = time.time()
        kept_runs = results.get(name, {}) if args.append else {}
        have = len(kept_runs.get(str(BUDGETS[0]), []))
        seeds = range(first_seed + have, first_seed + have + args.seeds) if args.append else \
            range(args.first_seed, args.first_seed + args.seeds)
        runs = [bests_at_budgets(FUNCTIONS[name], args.sampler, s, args.workers) for s in seeds]
        results[name] = {str(b): kept_runs.get(str(b), []) + [r[str(b)] for r in runs] for b in BUDGETS}
        print(name, f"{time.time() - start:.0f} s", {b: sorted(v, key=lambda x: math.inf if x is None else x)[len(v) // 2] for b, v in results[name].items()},
              file=sys.stderr, flush=True)
        with open(args.out, "w") as out:
            json.dump({"optuna": optuna.__version__, "sampler": args.sampler, "first_seed": first_seed,
                       "seeds": min(len(r[str(BUDGETS[0])]) for r in results.values()),
                       "workers": args.workers, "mode": "async",
                       "budgets": BUDGETS, "results": results}, out, indent=1)
            out.write("\n")


if __name__ == "__main__":
    main()
