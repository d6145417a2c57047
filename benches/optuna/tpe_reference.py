"""Optuna 5.0's sequential TPE on the benchmark functions of `benches/hpo_quality.rs`.

Writes the best value after 100 trials of every seed, univariate and
multivariate, as JSON; `hpo_quality` reads it (HPO_QUALITY_OPTUNA=FILE) and
compares the two distributions seed set against seed set (Mann–Whitney).
The functions are the ones of `crates/hpo/src/test_functions.rs`, term for term.

    python3 -m venv /tmp/optuna-venv
    /tmp/optuna-venv/bin/pip install optuna==5.0.0
    /tmp/optuna-venv/bin/python benches/optuna/tpe_reference.py --seeds 200 \
        --out benches/optuna/tpe_reference.json
    # one function more, keeping the others:
    /tmp/optuna-venv/bin/python benches/optuna/tpe_reference.py --seeds 200 \
        --functions mixed5 --update --out benches/optuna/tpe_reference.json
    # Optuna itself in parallel: 4 trials in flight, its constant liar on:
    /tmp/optuna-venv/bin/python benches/optuna/tpe_reference.py --seeds 200 \
        --workers 4 --mode async --out benches/optuna/tpe_reference_async4.json
"""

import argparse
import json
import math
import sys

import optuna

TRIALS = 100


def int5_l1(t):
    target = [3, 17, 10, 6, 13]
    return float(sum(abs(t.suggest_int(f"x{i}", 0, 20) - c) for i, c in enumerate(target)))


def int_steps(t):
    a = t.suggest_int("a", 0, 100, step=5)
    b = t.suggest_int("b", 1, 1024, log=True)
    c = t.suggest_int("c", -10, 10)
    d = t.suggest_int("d", 0, 20, step=2)
    return abs(a - 35) / 5 + abs(math.floor(math.log2(b) + 0.5) - 6) + abs(c - 3) + abs(d - 14) / 2


def int_plateau(t):
    target = [12, 25, 4, 18]
    squares = sum((t.suggest_int(f"x{i}", 0, 30) - c) ** 2 for i, c in enumerate(target))
    return float(math.floor(math.sqrt(squares) / 2))


def anisonet_loss(t):
    """The AnisoNet search's smooth loss, and its layers, lmax and mul."""
    em_dim = t.suggest_int("em_dim", 8, 96, step=8)
    layers = t.suggest_int("layers", 1, 4)
    lmax = t.suggest_int("lmax", 1, 4)
    lr = t.suggest_float("lr", 1e-4, 0.5, log=True)
    mul = t.suggest_int("mul", 16, 64, step=8)
    loss = (
        (math.log10(lr) - math.log10(3e-3)) ** 2
        + 0.3 * (layers - 2) ** 2
        + ((mul - 48) / 16) ** 2
        + ((em_dim - 48) / 24) ** 2
        + 0.2 * abs(lmax - 3)
    )
    return loss, layers, lmax, mul


def anisonet_rounded(t):
    return math.floor(10 * anisonet_loss(t)[0] + 0.5) / 10


def branin(t):
    x = t.suggest_float("x", -5.0, 10.0)
    y = t.suggest_float("y", 0.0, 15.0)
    b = 5.1 / (4.0 * math.pi**2)
    c = 5.0 / math.pi
    r = 1.0 / (8.0 * math.pi)
    return (y - b * x * x + c * x - 6.0) ** 2 + 10.0 * (1.0 - r) * math.cos(x) + 10.0


HARTMANN_ALPHA = [1.0, 1.2, 3.0, 3.2]
HARTMANN_A = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
]
HARTMANN_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]


def hartmann6(t):
    x = [t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)]
    return -sum(
        HARTMANN_ALPHA[i] * math.exp(-sum(HARTMANN_A[i][j] * (x[j] - HARTMANN_P[i][j]) ** 2 for j in range(6)))
        for i in range(4)
    )


L_MAX_PENALTY = {1: 0.8, 2: 0.3, 3: 0.0, 4: 0.2}


def mixed(t):
    lr = t.suggest_float("lr", 1e-4, 0.5, log=True)
    layers = t.suggest_int("layers", 1, 4)
    mul = t.suggest_int("mul", 16, 64)
    l_max = t.suggest_categorical("l_max", [1, 2, 3, 4])
    return (
        (math.log10(lr) - math.log10(3e-3)) ** 2
        + 0.3 * (layers - 2) ** 2
        + ((mul - 48) / 16) ** 2
        + L_MAX_PENALTY[l_max]
    )


def mixed5(t):
    lr = t.suggest_float("lr", 1e-4, 0.5, log=True)
    weight_decay = t.suggest_float("weight_decay", 1e-5, 0.1, log=True)
    mul = t.suggest_int("mul", 8, 128, log=True)
    layers = t.suggest_int("layers", 1, 4)
    l_max = t.suggest_categorical("l_max", [1, 2, 3, 4])
    return (
        (math.log10(lr) - math.log10(3e-3)) ** 2
        + 0.5 * (math.log10(weight_decay) - math.log10(3e-2)) ** 2
        + 0.5 * (math.log2(mul) - math.log2(48)) ** 2
        + 0.3 * (layers - 2) ** 2
        + L_MAX_PENALTY[l_max]
    )


def styblinski_tang(t):
    xs = [t.suggest_float(f"x{i}", -5.0, 5.0) for i in range(4)]
    return sum(x**4 - 16.0 * x * x + 5.0 * x for x in xs) / 2.0


def categorical6(t):
    ks = ["abcde".index(t.suggest_categorical(f"c{i}", ["a", "b", "c", "d", "e"])) for i in range(6)]
    return float(sum((3 * i + 2 * k) % 5 for i, k in enumerate(ks)) + (2 if ks[0] == ks[1] else 0))


def conditional(t):
    """Define-by-run: momentum and nesterov are asked only for sgd."""
    optimizer = t.suggest_categorical("optimizer", ["adamw", "sgd"])
    lr = t.suggest_float("lr", 1e-4, 0.1, log=True)
    value = (math.log10(lr) - math.log10(3e-3)) ** 2
    if optimizer == "sgd":
        momentum = t.suggest_float("momentum", 0.5, 0.99)
        nesterov = t.suggest_categorical("nesterov", [True, False])
        return value + 10.0 * (momentum - 0.9) ** 2 + (0.0 if nesterov else 0.1)
    return value + 0.3


# Constrained problems return (value, constraint values), each feasible
# when <= 0 (`gp_reference.py` sets them with `Trial.set_constraint`).


def gramacy(t):
    """Gramacy et al. (2016): minimise x1 + x2 under two constraints."""
    x1 = t.suggest_float("x1", 0.0, 1.0)
    x2 = t.suggest_float("x2", 0.0, 1.0)
    wave = math.sin(2 * math.pi * (x1 * x1 - 2 * x2))
    return x1 + x2, [1.5 - x1 - 2 * x2 - 0.5 * wave, x1 * x1 + x2 * x2 - 1.5]


def anisonet_budget(t):
    """The AnisoNet search's smooth loss under a model-size budget."""
    loss, layers, lmax, mul = anisonet_loss(t)
    size = layers / 2 * (mul / 48) ** 2 * ((lmax + 1) / 4) ** 2
    return loss, [size - 0.5]


FUNCTIONS = {
    f.__name__: f
    for f in [branin, hartmann6, mixed, mixed5, int5_l1, int_steps, int_plateau, anisonet_rounded,
              styblinski_tang, categorical6, conditional, gramacy, anisonet_budget]
}


def best_after(objective, seed, multivariate, workers=1, mode="async"):
    """Best value after TRIALS trials. With workers > 1, that many trials are
    in flight at once and Optuna's constant liar is on, dispatched as
    `benches/hpo_quality.rs` does: `async` asks each new trial while the
    workers - 1 before it still run, then tells the oldest; `deterministic`
    asks a batch of `workers`, then tells them all (what `n_jobs` does with
    trials of equal length, without its threads' timing)."""
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=multivariate, constant_liar=workers > 1)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    if workers == 1:
        study.optimize(objective, n_trials=TRIALS)
        return study.best_value
    asked, in_flight = 0, []
    while asked < TRIALS or in_flight:
        while len(in_flight) < workers and asked < TRIALS:
            trial = study.ask()
            in_flight.append((trial, objective(trial)))
            asked += 1
        told = len(in_flight) if mode == "deterministic" else 1
        for trial, value in in_flight[:told]:
            study.tell(trial, value)
        in_flight = in_flight[told:]
    return study.best_value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
    parser.add_argument("--out", required=True)
    parser.add_argument("--workers", type=int, default=1,
                        help="trials in flight, with the constant liar (default 1: sequential)")
    parser.add_argument("--mode", choices=["async", "deterministic"], default="async",
                        help="how trials in flight are told (with --workers above 1)")
    parser.add_argument("--samplers", default="tpe,tpe_multivariate")
    parser.add_argument("--update", action="store_true",
                        help="keep the other functions' results already in --out (same seeds)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    results = {}
    if args.update:
        with open(args.out) as old:
            kept = json.load(old)
        same = (kept["first_seed"], kept["optuna"], kept.get("workers", 1), kept.get("mode", "async"))
        if same != (args.first_seed, optuna.__version__, args.workers, args.mode):
            sys.exit(f"{args.out}: other seeds, workers or Optuna; run without --update")
        results = kept["results"]
    labels = args.samplers.split(",")
    for name in args.functions.split(","):
        results.setdefault(name, {})
        for label, multivariate in [("tpe", False), ("tpe_multivariate", True)]:
            if label not in labels:
                continue
            results[name][label] = [
                best_after(FUNCTIONS[name], s, multivariate, args.workers, args.mode) for s in seeds
            ]
            print(name, label, "median", sorted(results[name][label])[len(seeds) // 2], file=sys.stderr)
    with open(args.out, "w") as out:
        json.dump({"optuna": optuna.__version__, "trials": TRIALS, "first_seed": args.first_seed,
                   "workers": args.workers, "mode": args.mode, "results": results}, out, indent=1)
        out.write("\n")


if __name__ == "__main__":
    main()
