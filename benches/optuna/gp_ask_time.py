"""Optuna 5.0's GPSampler under the protocol of `benches/gp_ask.rs`: a study
runs to 100 COMPLETE trials (GP from trial 10), then the next 20 asks are
timed (each told before the next), and the same with 3 trials running.
Prints one JSON line per (function, running), as the Rust bench does.

    OMP_NUM_THREADS=1 target/gp-venv/bin/python benches/optuna/gp_ask_time.py
"""

import json
import os
import statistics
import sys
import time

import optuna

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tpe_reference import FUNCTIONS  # noqa: E402

HISTORY, TIMED = 100, 20


def measure(name, running):
    objective = FUNCTIONS[name]
    study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=1), direction="minimize")
    study.optimize(objective, n_trials=HISTORY)
    in_flight = []
    for _ in range(running):
        trial = study.ask()
        in_flight.append((trial, objective(trial)))
    times = []
    for _ in range(TIMED):
        start = time.perf_counter()
        trial = study.ask()
        value = objective(trial)  # suggest_* calls are where GPSampler samples
        times.append((time.perf_counter() - start) * 1e3)
        in_flight.append((trial, value))
        oldest, oldest_value = in_flight.pop(0)
        study.tell(oldest, oldest_value)
    print(json.dumps({"bench": "gp_ask", "sampler": "optuna_5_gp", "function": name, "complete_trials": HISTORY,
                      "running": running, "asks": TIMED, "median_ms": round(statistics.median(times), 2),
                      "max_ms": round(max(times), 2)}), flush=True)


def main():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for running in [0, 3]:
        for name in ["branin", "hartmann6", "mixed"]:
            measure(name, running)


if __name__ == "__main__":
    main()
