"""Runs the trials of a study as jobflow jobs: each job asks the study for a
trial, runs the trial's command and tells the study its result, as a job of
any workflow engine (atomate2/jobflow, AiiDA, FireWorks) would.

    python examples/jobflow/flow.py [--trials 20] [--results results]

The study lives in `<results>/jobflow_example/`: `study status
jobflow_example` and `study report jobflow_example` work on it as on any
other study, while the flow runs and after.
"""

import argparse
import json
import os
import subprocess
from pathlib import Path

from jobflow import Flow, job, run_locally

import anisostudy

HERE = Path(__file__).resolve().parent


@job
def run_trial(study_file: str, results: str) -> dict | None:
    """Asks for one trial, runs it, tells its result; None when the study
    has no trial left to give."""
    study = anisostudy.create_study(study_file, results=results)
    trial = study.ask()
    if trial is None:
        return None
    out = subprocess.run(
        trial.command, cwd=trial.workdir, env={**os.environ, **trial.env}, capture_output=True, text=True
    )
    if out.returncode != 0:
        state = study.tell(trial, state="fail", reason=out.stderr.strip()[-500:])
        return {"number": trial.number, "state": state}
    value = json.loads(out.stdout.strip().splitlines()[-1])["objective"]
    state = study.tell(trial, value)
    return {"number": trial.number, "params": trial.params, "value": value, "state": state}


@job
def best_of(trials: list) -> dict:
    complete = [t for t in trials if t and t["state"] == "COMPLETE"]
    return min(complete, key=lambda t: t["value"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--results", default="results")
    args = parser.parse_args()
    study_file = str(HERE / "study.yaml")
    results = str(Path(args.results).resolve())
    trials = [run_trial(study_file, results) for _ in range(args.trials)]
    summary = best_of([t.output for t in trials])
    responses = run_locally(Flow([*trials, summary], name="anisostudy trials"), ensure_success=True, log=False)
    best = responses[summary.uuid][1].output
    print(f"{args.trials} trials told; best: trial {best['number']}  value {best['value']:.6f}  {best['params']}")


if __name__ == "__main__":
    main()
