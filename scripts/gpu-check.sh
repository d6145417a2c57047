#!/usr/bin/env bash
# The GPU engine's check, made for one run on a GPU node lent for minutes
# (an H200 with driver 580, python3 with torch and e3nn, no network).
#
#   scripts/gpu-check.sh --prepare [--model FILE]
#       Here, before the GPU: builds the default binary and strips it into
#       target/gpu-check/study (≈ 12 MB), with the reference's model.py
#       beside it (FILE, default reference/AnisoNet/src/anisonet/model.py: a
#       copy of the public AnisoNet source, never part of this repository;
#       without it the reference steps are skipped). target/gpu-check is the
#       one folder to carry.
#   scripts/gpu-check.sh --out DIR [--kit DIR] [--share N]
#       On the GPU node: every result under DIR (the folder that comes back):
#       gpu-check.json (each step's verdict, figures and log tail) and
#       gpu-check.log (everything printed).
#   scripts/gpu-check.sh --emulated --out DIR [--share N] [--model FILE]
#       Here: the same steps end to end on the GPU engine's CPU emulation
#       and the reference on the CPU, with tiny timings (CI runs it).
#
# The steps, in order of value, each with a time limit, ≤ 4 minutes in all
# on a GPU (a step that fails is reported and the next one runs):
#   1. gpu        nvidia-smi: the GPU, its driver and memory;
#   2. checks     parity with the fused CPU network in f64 and f32, two runs
#                 bit-identical, equivariance, and a training step's budget
#                 (launches, transfers, bytes, allocations) (`study doctor`);
#   3. engine-1   training and inference edges/s of one trial at the
#                 published configuration, on batches of 12 structures of
#                 the MP data's sizes (exported for the reference);
#   4. engine-N   the same for N trials sharing the GPU at once (default 4);
#   5. reference-1, reference-N: the PyTorch + e3nn reference timed on the
#                 same batches (benches/reference/time_reference.py);
#   6. memcheck, initcheck, racecheck: compute-sanitizer over a training
#                 step kept on the device and a prediction;
#   7. dfdx       the tensor-op cross-check, last and short, where the kit
#                 holds a `cuda` build as study-cuda.
# Exit status: 0 when every step that ran passed, 1 when one failed, 2 for
# bad arguments or a missing kit.
set -u
cd "$(dirname "$0")/.."

mode=gpu
kit=target/gpu-check
out=
share=4
model=reference/AnisoNet/src/anisonet/model.py
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare) mode=prepare; shift ;;
    --emulated) mode=emulated; shift ;;
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    --kit) kit="${2:?--kit needs a folder}"; shift 2 ;;
    --share) share="${2:?--share needs a number}"; shift 2 ;;
    --model) model="${2:?--model needs a file}"; shift 2 ;;
    -h|--help) sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scripts/gpu-check.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
case "$share" in ''|*[!0-9]*|0) echo "scripts/gpu-check.sh: --share takes a number of trials, at least 1" >&2; exit 2 ;; esac

if [ "$mode" = prepare ]; then
  cargo build --release --bin study || exit 1
  mkdir -p "$kit" || exit 1
  strip -o "$kit/study" target/release/study || exit 1
  if [ -f "$model" ]; then
    cp "$model" "$kit/model.py"
  else
    rm -f "$kit/model.py"
    echo "note: no reference model at $model (give --model); the reference steps will be skipped"
  fi
  du -sh "$kit"
  echo "carry: [\"$kit\"]   command: scripts/gpu-check.sh --out \$OUT"
  exit 0
fi

[ -n "$out" ] || { echo "scripts/gpu-check.sh: give --out DIR, the folder for the results" >&2; exit 2; }
mkdir -p "$out" || { echo "scripts/gpu-check.sh: cannot make $out" >&2; exit 2; }
command -v python3 >/dev/null || { echo "scripts/gpu-check.sh: needs python3 (for the reference and the JSON)" >&2; exit 2; }
if [ "$mode" = emulated ]; then
  study=target/release/study
  [ -x "$study" ] || cargo build --release --bin study || exit 2
  device=gpu-emulated ref_device=cpu timing="--batches 1 --structures 1" scale=6 total=900 ref_model="$model"
else
  study="$kit/study"
  [ -x "$study" ] || { echo "scripts/gpu-check.sh: no binary at $study: run scripts/gpu-check.sh --prepare here and carry $kit" >&2; exit 2; }
  device=cuda:0 ref_device=cuda timing="--batches 12" scale=1 total=240 ref_model="$kit/model.py"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
exec > >(tee "$out/gpu-check.log") 2>&1
: > "$work/steps.tsv"
started=$(date +%s)

# step NAME LIMIT_S COMMAND…: runs it within its limit and what is left of
# the whole check's, logs to $work/NAME.log, records its rc and seconds.
step() {
  local name="$1" limit=$(($2 * scale)); shift 2
  local left=$((total - ($(date +%s) - started)))
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name"
  if [ "$limit" -lt 5 ]; then
    echo "   skipped: the check's ${total} s are spent"
    printf '%s\tskipped\t0\n' "$name" >> "$work/steps.tsv"
    return
  fi
  local start rc
  start=$(date +%s%N)
  # (`together` is a function of this script: timeout runs it in a bash of its own.)
  if [ "$1" = together ]; then
    timeout "$limit" bash -c 'together "$@"' together "${@:2}" > "$work/$name.log" 2>&1
  else
    timeout "$limit" "$@" > "$work/$name.log" 2>&1
  fi
  rc=$?
  tail -n 12 "$work/$name.log"
  [ "$rc" -eq 124 ] && echo "   (stopped after ${limit} s)"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')" >> "$work/steps.tsv"
  echo "   -> rc $rc"
}

skip() {
  echo "== $1: skipped ($2)"
  printf '%s\tskipped\t0\n' "$1" >> "$work/steps.tsv"
}

# together N COMMAND… (with {k} for 0…N-1): N copies at once; fails if one does.
together() {
  local n="$1"; shift
  local pids=() k rc=0
  for ((k = 0; k < n; k++)); do
    "${@//\{k\}/$k}" > "$work/together-$k.log" 2>&1 &
    pids+=($!)
  done
  for k in "${!pids[@]}"; do
    wait "${pids[$k]}" || rc=$?
    sed "s/^/[$k] /" "$work/together-$k.log"
  done
  return "$rc"
}
export -f together
export work

if [ "$mode" = gpu ]; then
  step gpu 5 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
else
  skip gpu "emulated"
fi
step checks 45 "$study" doctor --device "$device" --batches 0 --json "$work/checks.json"
# shellcheck disable=SC2086
step engine-1 25 "$study" doctor --device "$device" --no-checks $timing --json "$work/engine-1.json" --export-batches "$work/batches.json"
# shellcheck disable=SC2086
step engine-N 35 together "$share" "$study" doctor --device "$device" --no-checks $timing --json "$work/engine-N-{k}.json"
if [ -f "$ref_model" ] && [ -f "$work/batches.json" ] && python3 -c 'import torch, e3nn' 2>/dev/null; then
  reference=(python3 benches/reference/time_reference.py --model "$ref_model" --batches "$work/batches.json" --device "$ref_device")
  step reference-1 35 "${reference[@]}" --out "$work/reference-1.json"
  step reference-N 45 together "$share" "${reference[@]}" --out "$work/reference-N-{k}.json"
else
  skip reference-1 "needs $ref_model, the exported batches, and python3 with torch and e3nn"
  skip reference-N "as reference-1"
fi
if [ "$mode" = gpu ] && command -v compute-sanitizer >/dev/null; then
  for tool in memcheck initcheck racecheck; do
    step "$tool" 25 compute-sanitizer --tool "$tool" --error-exitcode 9 \
      "$study" doctor --device "$device" --no-checks --batches 1 --structures 1
  done
else
  for tool in memcheck initcheck racecheck; do skip "$tool" "no compute-sanitizer on a GPU"; done
fi
if [ "$mode" = gpu ] && [ -x "$kit/study-cuda" ]; then
  step dfdx 15 "$kit/study-cuda" doctor --device tensor-cuda:0 --batches 2 --json "$work/dfdx.json"
else
  skip dfdx "needs a cuda build as $kit/study-cuda, on a GPU"
fi

python3 - "$work" "$out/gpu-check.json" "$mode" "$share" <<'PY'
import glob, json, os, sys
work, out, mode, share = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def load(name):
    path = os.path.join(work, name)
    return json.load(open(path)) if os.path.exists(path) else None
def loads(pattern):
    return [json.load(open(p)) for p in sorted(glob.glob(os.path.join(work, pattern)))]
steps = {}
for line in open(os.path.join(work, "steps.tsv")):
    name, rc, seconds = line.rstrip("\n").split("\t")
    log = os.path.join(work, name + ".log")
    steps[name] = {
        "rc": None if rc == "skipped" else int(rc),
        "passed": rc == "0",
        "seconds": float(seconds or 0),
        "log_tail": open(log).read()[-3000:] if os.path.exists(log) else "",
    }
def edges(report, key):
    report = (report or {}).get("throughput", report) or {}
    return report.get(key)
def together(reports, key):
    values = [edges(r, key) for r in reports]
    return sum(values) if values and all(values) else None
engine_n, reference_n = loads("engine-N-*.json"), loads("reference-N-*.json")
result = {
    "mode": mode,
    "trials_sharing": share,
    "steps": steps,
    "checks": load("checks.json"),
    "engine_1": load("engine-1.json"),
    "engine_n": engine_n,
    "reference_1": load("reference-1.json"),
    "reference_n": reference_n,
    "dfdx": load("dfdx.json"),
}
figures = {}
for key in ["training_edges_per_s", "inference_edges_per_s"]:
    one, shared = edges(result["engine_1"], key), together(engine_n, key)
    ref_one, ref_shared = edges(result["reference_1"], key), together(reference_n, key)
    figures[key] = {"engine_1": one, "engine_n_total": shared, "reference_1": ref_one, "reference_n_total": ref_shared}
    if one and ref_one:
        figures[key]["engine_over_reference"] = one / ref_one
    if one and shared:
        figures[key]["sharing_gain"] = shared / one
result["figures"] = figures
json.dump(result, open(out, "w"), indent=2)
failed = [n for n, s in steps.items() if s["rc"] not in (0, None)]
print("\nresults in", out)
for n, s in steps.items():
    verdict = "skipped" if s["rc"] is None else ("ok" if s["passed"] else "FAILED rc %d" % s["rc"])
    print(f"  {n:<12} {verdict:<14} {s['seconds']:.1f} s")
t = figures["training_edges_per_s"]
if t["engine_1"]:
    line = f"  training: engine {t['engine_1']:.0f} edges/s"
    if t.get("engine_n_total"):
        line += f", {share} sharing {t['engine_n_total']:.0f} edges/s ({t['sharing_gain']:.2f}x; target 2.5x on a GPU)"
    if t.get("reference_1"):
        line += f"; reference {t['reference_1']:.0f} edges/s ({t['engine_over_reference']:.1f}x; target 10x on a GPU)"
    print(line)
sys.exit(1 if failed else 0)
PY
