#!/usr/bin/env bash
# One prepared check of the GPU engine, for a GPU node lent for minutes (an
# H200 with driver 580, nvcc 13.0 and a python3 with torch and e3nn, no
# network). Run from the repository root, with what it needs carried along:
#
#   scripts/gpu-check.sh [--study PATH] [--reference PATH] [--out FILE]
#
#   --study      the cuda build's binary (default target/cuda/dist/study, from
#                scripts/cuda-build.sh): it runs the GPU engine (cuda:0) and
#                dfdx's network (tensor-cuda:0) for the cross-check
#   --reference  the `src` folder of a copy of the public AnisoNet source
#                (default reference/AnisoNet/src; an ignored folder, fetched
#                with `git clone https://github.com/virtualatoms/AnisoNet reference/AnisoNet`)
#   --out        the JSON file of results (default gpu-check.json)
#
# In order, each step with its own time limit (about 5 minutes in all):
#   1. nvidia-smi: the GPU, its driver and memory;
#   2. the GPU engine: parity with the fused CPU network in f64 and f32,
#      two runs bit-identical, equivariance, the launch and transfer budget
#      of a training step, then inference and training edges/s at the
#      published configuration (`study doctor --device cuda:0`), its timed
#      batches exported for step 4;
#   3. dfdx's tensor-op network on the same GPU, checked and timed the same way;
#   4. the PyTorch + e3nn reference timed on the same batches
#      (benches/reference/time_reference.py);
#   5. compute-sanitizer memcheck of the engine on the doctor's small models.
# A step that fails is reported and the next one runs. Exit status: 0 when
# every step passed, 1 when one failed, 2 for bad arguments or a missing
# binary.
set -u

study=target/cuda/dist/study
reference=reference/AnisoNet/src
out=gpu-check.json
while [ $# -gt 0 ]; do
  case "$1" in
    --study) study="${2:?--study needs a path}"; shift 2 ;;
    --reference) reference="${2:?--reference needs a path}"; shift 2 ;;
    --out) out="${2:?--out needs a file}"; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scripts/gpu-check.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[ -x "$study" ] || { echo "scripts/gpu-check.sh: no binary at $study: build it with scripts/cuda-build.sh, or give --study" >&2; exit 2; }
command -v python3 >/dev/null || { echo "scripts/gpu-check.sh: needs python3 (for the reference and the JSON)" >&2; exit 2; }

work="$(mktemp -d)"
steps="$work/steps.tsv"
: > "$steps"

# step NAME LIMIT_S COMMAND…: runs it, logs to $work/NAME.log, records rc and seconds.
step() {
  local name="$1" limit="$2"; shift 2
  echo "== $name"
  local start end rc
  start=$(date +%s%N)
  timeout "$limit" "$@" > "$work/$name.log" 2>&1
  rc=$?
  end=$(date +%s%N)
  tail -n 25 "$work/$name.log"
  [ "$rc" -eq 124 ] && echo "   (stopped after ${limit} s)"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')" >> "$steps"
  echo "   -> rc $rc"
}

step nvidia-smi 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
step engine 150 "$study" doctor --device cuda:0 --batches 5 --json "$work/engine.json" --export-batches "$work/batches.json"
step dfdx 90 "$study" doctor --device tensor-cuda:0 --batches 5 --json "$work/dfdx.json"
if [ -f "$work/batches.json" ] && [ -d "$reference/anisonet" ]; then
  step reference 90 python3 benches/reference/time_reference.py --source "$reference" \
    --batches "$work/batches.json" --device cuda --out "$work/reference.json"
else
  echo "== reference: skipped (no exported batches, or no $reference/anisonet)"
  printf 'reference\tskipped\t0\n' >> "$steps"
fi
if command -v compute-sanitizer >/dev/null; then
  step memcheck 120 compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$study" doctor --device cuda:0 --batches 0
else
  echo "== memcheck: skipped (no compute-sanitizer)"
  printf 'memcheck\tskipped\t0\n' >> "$steps"
fi

python3 - "$work" "$out" <<'PY'
import json, os, sys
work, out = sys.argv[1], sys.argv[2]
def load(name):
    path = os.path.join(work, name)
    return json.load(open(path)) if os.path.exists(path) else None
steps = {}
for line in open(os.path.join(work, "steps.tsv")):
    name, rc, seconds = line.rstrip("\n").split("\t")
    log = os.path.join(work, name + ".log")
    steps[name] = {
        "rc": None if rc == "skipped" else int(rc),
        "passed": rc == "0",
        "seconds": float(seconds or 0),
        "log_tail": open(log).read()[-4000:] if os.path.exists(log) else "",
    }
result = {
    "steps": steps,
    "engine": load("engine.json"),
    "dfdx": load("dfdx.json"),
    "reference": load("reference.json"),
}
def training(r):
    if not r:
        return None
    return (r.get("throughput") or r).get("training_edges_per_s")
engine, ref = training(result["engine"]), training(result["reference"])
if engine and ref:
    result["training_speedup_over_reference"] = engine / ref
json.dump(result, open(out, "w"), indent=2)
failed = [n for n, s in steps.items() if s["rc"] not in (0, None)]
print("\nresults in", out)
for n, s in steps.items():
    print(f"  {n:<11} {'skipped' if s['rc'] is None else ('ok' if s['passed'] else 'FAILED rc %d' % s['rc']):<14} {s['seconds']:.1f} s")
if "training_speedup_over_reference" in result:
    print(f"  training: engine {engine:.0f} edges/s, reference {ref:.0f} edges/s: "
          f"{result['training_speedup_over_reference']:.1f}x")
sys.exit(1 if failed else 0)
PY
