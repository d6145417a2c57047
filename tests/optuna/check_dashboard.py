"""Serves an exported study with optuna-dashboard on 127.0.0.1 and checks
that its study list shows the study and that the study has its trials;
prints its directions and best trials.

    python check_dashboard.py EXPORTED.db STUDY_NAME TRIAL_COUNT [PORT]
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def main(db, name, count, port=None):
    port = int(port or free_port())
    dashboard = os.path.join(os.path.dirname(sys.executable), "optuna-dashboard")
    server = subprocess.Popen([dashboard, f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                studies = get(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"optuna-dashboard exited: {server.stderr.read().decode()}")
                time.sleep(0.2)
        else:
            raise SystemExit("optuna-dashboard did not answer within 20 s")
        listed = [s for s in studies if s["study_name"] == name]
        assert len(listed) == 1, studies
        detail = get(f"{base}/api/studies/{listed[0]['study_id']}")
        assert len(detail["trials"]) == int(count), (len(detail["trials"]), count)
        # With several objectives the dashboard shows every direction and
        # draws the Pareto front of its `best_trials` (which, unlike
        # Optuna's own, ignore constraints).
        print(json.dumps({"study": name, "trials": len(detail["trials"]), "directions": detail["directions"],
                          "best_trials": sorted(t["number"] for t in detail.get("best_trials", [])),
                          "port": port}))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main(*sys.argv[1:])
