"""Watches a running study through optuna-dashboard's API while
`study export --format optuna --follow` keeps MIRROR.db up to date, and
compares what the dashboard shows with the study's own database.

    python follow_dashboard.py MIRROR.db STUDY.db STUDY_NAME TRIAL_COUNT [TIMEOUT_S]

Prints one JSON object: the objective names the dashboard shows, how many
trials it showed RUNNING (with how many intermediate values at most), and
for every finished trial the delay from its end in the study database to the
dashboard showing it finished.
"""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

FINISHED = {"Complete", "Pruned", "Fail"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def finished_at(study_db):
    """Our trials' end times (s since the epoch), by number."""
    conn = sqlite3.connect(f"file:{study_db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT number, finished_ms FROM trials WHERE finished_ms IS NOT NULL").fetchall()
    finally:
        conn.close()
    return {number: ms / 1000.0 for number, ms in rows}


def main(mirror, study_db, name, count, timeout=120):
    count, timeout = int(count), float(timeout)
    port = free_port()
    dashboard = os.path.join(os.path.dirname(sys.executable), "optuna-dashboard")
    server = subprocess.Popen([dashboard, f"sqlite:///{mirror}", "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    seen_running, most_steps, seen_finished, names = set(), 0, {}, None
    try:
        deadline = time.time() + timeout
        study_id = None
        while time.time() < deadline:
            try:
                if study_id is None:
                    listed = [s for s in get(f"{base}/api/studies")["study_summaries"] if s["study_name"] == name]
                    study_id = listed[0]["study_id"] if listed else None
                    if study_id is None:
                        time.sleep(0.2)
                        continue
                detail = get(f"{base}/api/studies/{study_id}")
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"optuna-dashboard exited: {server.stderr.read().decode()}")
                time.sleep(0.2)
                continue
            now = time.time()
            names = detail.get("objective_names")
            for trial in detail["trials"]:
                if trial["state"] == "Running":
                    seen_running.add(trial["number"])
                    most_steps = max(most_steps, len(trial["intermediate_values"]))
                if trial["state"] in FINISHED and trial["number"] not in seen_finished:
                    seen_finished[trial["number"]] = now
            if len(seen_finished) >= count:
                break
            time.sleep(0.25)
    finally:
        server.terminate()
        server.wait(timeout=10)
    ended = finished_at(study_db)
    delays = {n: round(seen_finished[n] - ended[n], 3) for n in seen_finished if n in ended}
    print(json.dumps({
        "objective_names": names,
        "seen_running": len(seen_running),
        "most_intermediate_values_while_running": most_steps,
        "finished": len(seen_finished),
        "delays_s": delays,
        "max_delay_s": max(delays.values()) if delays else None,
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
