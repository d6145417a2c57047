"""A define-by-run Optuna 5.0 study: `momentum` is asked only for sgd.
Usage: make_conditional_study.py DB"""
import sys

import optuna

optuna.logging.set_verbosity(optuna.logging.ERROR)
study = optuna.create_study(storage=f"sqlite:///{sys.argv[1]}", study_name="cond",
                            sampler=optuna.samplers.TPESampler(seed=1))


def objective(trial):
    optimizer = trial.suggest_categorical("optimizer", ["adamw", "sgd"])
    lr = trial.suggest_float("lr", 1e-4, 0.1, log=True)
    if optimizer == "sgd":
        return lr + (trial.suggest_float("momentum", 0.5, 0.99) - 0.9) ** 2
    return lr + 0.3


study.optimize(objective, n_trials=12)
