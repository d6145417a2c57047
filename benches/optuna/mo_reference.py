"""Optuna 5.0's multi-objective samplers on the problems of `benches/hpo_quality.rs`
(HPO_QUALITY_MULTI=1): its TPE (MOTPE, multivariate) and NSGA-II.

One run of 100 trials per seed, one trial at a time; the hypervolume of the
feasible Pareto set after its first 50 and 100 trials is recorded, up to a
fixed reference point per problem (the same as the bench's). The problems
are `crates/hpo/src/test_functions.rs`'s, term for term; Binh and Korn's and
Tanaka's are constrained (`Trial.set_constraint`, feasible when <= 0).

    target/gp-venv/bin/python benches/optuna/mo_reference.py --sampler tpe \
        --seeds 300 --out benches/optuna/mo_tpe.json
    target/gp-venv/bin/python benches/optuna/mo_reference.py --sampler nsga2 \
        --seeds 300 --out benches/optuna/mo_nsga2.json

Results are written after every problem; --update keeps the other problems'.
"""

import argparse
import json
import math
import os
import sys
import time

import optuna

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tpe_reference import anisonet_loss  # noqa: E402

BUDGETS = [50, 100]


def zdt_parts(t, n):
    x = [t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(n)]
    return x[0], 1.0 + 9.0 * sum(x[1:]) / (n - 1)


def zdt1(t):
    f1, g = zdt_parts(t, 6)
    return [f1, g * (1.0 - math.sqrt(f1 / g))], []


def zdt2(t):
    f1, g = zdt_parts(t, 6)
    return [f1, g * (1.0 - (f1 / g) ** 2)], []


def zdt3(t):
    f1, g = zdt_parts(t, 6)
    return [f1, g * (1.0 - math.sqrt(f1 / g) - f1 / g * math.sin(10.0 * math.pi * f1))], []


def dtlz2(t):
    x = [t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(5)]
    g = sum((xi - 0.5) ** 2 for xi in x[2:])
    a, b = x[0] * math.pi / 2, x[1] * math.pi / 2
    return [(1 + g) * math.cos(a) * math.cos(b), (1 + g) * math.cos(a) * math.sin(b), (1 + g) * math.sin(a)], []


def anisonet_tradeoff(t):
    """Error of the AnisoNet search against the model size."""
    loss, layers, lmax, mul = anisonet_loss(t)
    size = layers / 2 * (mul / 48) ** 2 * ((lmax + 1) / 4) ** 2
    return [loss, size], []


def binh_korn(t):
    x = t.suggest_float("x", 0.0, 5.0)
    y = t.suggest_float("y", 0.0, 3.0)
    return [4 * x * x + 4 * y * y, (x - 5) ** 2 + (y - 5) ** 2], \
        [(x - 5) ** 2 + y * y - 25, 7.7 - (x - 8) ** 2 - (y + 3) ** 2]


def tanaka(t):
    x = t.suggest_float("x", 0.0, math.pi)
    y = t.suggest_float("y", 0.0, math.pi)
    angle = math.pi / 2 if y == 0 else math.atan(x / y)
    return [x, y], [1 + 0.1 * math.cos(16 * angle) - x * x - y * y, (x - 0.5) ** 2 + (y - 0.5) ** 2 - 0.5]


# Each problem with its number of objectives and the hypervolume's reference point.
PROBLEMS = {
    "zdt1": (zdt1, [1.1, 11.0]),
    "zdt2": (zdt2, [1.1, 11.0]),
    "zdt3": (zdt3, [1.1, 11.0]),
    "dtlz2": (dtlz2, [2.5, 2.5, 2.5]),
    "anisonet_tradeoff": (anisonet_tradeoff, [15.0, 6.0]),
    "binh_korn": (binh_korn, [140.0, 50.0]),
    "tanaka": (tanaka, [1.2, 1.2]),
}


def hypervolume(points, reference):
    """The volume `points` (minimised) dominate up to `reference`, exactly."""
    points = [p for p in points if all(x < r for x, r in zip(p, reference))]
    if not points:
        return 0.0
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in points)
    if len(reference) == 2:
        area, ceiling = 0.0, reference[1]
        for x, y in sorted(points):
            if y < ceiling:
                area += (reference[0] - x) * (ceiling - y)
                ceiling = y
        return area
    points = sorted(points, key=lambda p: p[-1])
    total = 0.0
    for i, p in enumerate(points):
        top = points[i + 1][-1] if i + 1 < len(points) else reference[-1]
        if top > p[-1]:
            total += (top - p[-1]) * hypervolume([q[:-1] for q in points[:i + 1]], reference[:-1])
    return total


def front(points):
    return [p for p in points if not any(all(a <= b for a, b in zip(q, p)) and q != p for q in points)]


def make_sampler(kind, seed):
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def hypervolumes(problem, kind, seed):
    objective, reference = PROBLEMS[problem]
    study = optuna.create_study(sampler=make_sampler(kind, seed), directions=["minimize"] * len(reference))
    feasible = []
    result = {}
    for n in range(1, BUDGETS[-1] + 1):
        trial = study.ask()
        values, constraints = objective(trial)
        for i, c in enumerate(constraints):
            trial.set_constraint(str(i), c)
        study.tell(trial, values)
        if all(c <= 0 for c in constraints):
            feasible.append(values)
        if n in BUDGETS:
            result[str(n)] = hypervolume(front(feasible), reference)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sampler", choices=["tpe", "nsga2"], default="tpe")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--out", required=True)
    parser.add_argument("--update", action="store_true", help="keep the other problems' results already in --out")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import warnings
    warnings.filterwarnings("ignore")
    results = {}
    if args.update and os.path.exists(args.out):
        with open(args.out) as old:
            results = json.load(old)["results"]
    for name in args.problems.split(","):
        start = time.time()
        runs = [hypervolumes(name, args.sampler, seed) for seed in range(args.seeds)]
        results[name] = {str(b): [r[str(b)] for r in runs] for b in BUDGETS}
        medians = {b: sorted(v)[len(v) // 2] for b, v in results[name].items()}
        print(name, f"{time.time() - start:.0f} s", medians, file=sys.stderr, flush=True)
        with open(args.out, "w") as out:
            json.dump({"optuna": optuna.__version__, "sampler": args.sampler, "first_seed": 0,
                       "seeds": min(len(r[str(BUDGETS[0])]) for r in results.values()),
                       "workers": 1, "mode": "async", "budgets": BUDGETS, "results": results}, out, indent=1)
            out.write("\n")


if __name__ == "__main__":
    main()
