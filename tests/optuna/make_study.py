"""Makes an Optuna 5.0 study to import: TPE over a mixed space, 30 trials,
some pruned by the median rule, one failed.

    python make_study.py FILE.db [SEED]
"""

import math
import sys

import optuna


def objective(trial):
    lr = trial.suggest_float("lr", 1e-4, 0.5, log=True)
    layers = trial.suggest_int("layers", 1, 4)
    mul = trial.suggest_int("mul", 16, 64, step=8)
    kind = trial.suggest_categorical("kind", ["equivariant", "scalar"])
    if trial.number == 7:
        raise RuntimeError("a crash, as training runs have")
    loss = (math.log10(lr) + 2.5) ** 2 + 0.3 * (layers - 2) ** 2 + ((mul - 48) / 16) ** 2 + (0.2 if kind == "scalar" else 0.0)
    for step in range(1, 5):
        trial.report(loss + 1.0 / step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return loss


def main(path, seed=0):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="optuna_search",
        storage=f"sqlite:///{path}",
        sampler=optuna.samplers.TPESampler(seed=int(seed), n_startup_trials=10),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )
    study.optimize(objective, n_trials=30, catch=(RuntimeError,))
    states = {}
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    print(states)


if __name__ == "__main__":
    main(*sys.argv[1:])
