#!/usr/bin/env bash
# Runs the runnable examples of the documentation: every ```sh or ```python
# block of README.md and docs/*.md whose opening fence comes right after a
# line `<!-- runnable -->`, in file order (README.md first, then docs/*.md
# by name). Python blocks run with $DOCS_PYTHON (default: the package's test
# environment, target/python-venv, made by python/tests/venv.sh); where it
# cannot import `anisostudy` they are skipped with a note.
#
# The blocks run in one scratch copy of the repository (its tracked and
# untracked, not ignored, files), so `studies/…` paths resolve and results go
# there, never into the repository. Each block runs as its own
# `bash -euo pipefail` from the copy's root; blocks share what they write
# there, so a later block may use the results of an earlier one. `study` is
# the built binary ($STUDY_BIN_DIR, default target/release, first on PATH);
# `cargo run --release -- …` works too and reuses the repository's build
# (CARGO_TARGET_DIR defaults to the repository's target/).
#
# Each block's file:line is printed before it runs, its output goes to a log
# (shown in full with DOCS_CHECK_VERBOSE=1, its end on a failure). The first
# failing block stops the check: its file:line is named and the exit code is 1.
#
#   bash scripts/docs-check.sh                  # after cargo build --release
#   STUDY_BIN_DIR=/elsewhere/target/release bash scripts/docs-check.sh
#   DOCS_CHECK_KEEP=1 bash scripts/docs-check.sh  # keep the scratch folder
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=$(cd "${STUDY_BIN_DIR:-$repo/target/release}" 2>/dev/null && pwd) || bin_dir=""
if [ -z "$bin_dir" ] || [ ! -x "$bin_dir/study" ]; then
  echo "docs-check: no study binary in ${STUDY_BIN_DIR:-$repo/target/release}" >&2
  echo "  build it first (cargo build --release), or point STUDY_BIN_DIR at its folder" >&2
  exit 2
fi
export PATH="$bin_dir:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/docs-check.XXXXXX")
if [ "${DOCS_CHECK_KEEP:-0}" = 1 ]; then
  echo "docs-check: scratch copy kept in $scratch"
else
  trap 'rm -rf "$scratch"' EXIT
fi
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
  tar --null -T - -cf - --ignore-failed-read) | tar -xf - -C "$scratch/"
mkdir -p "$scratch/.docs-check"

# Extract the blocks: one file per block, and a list of "file:line path".
files=("$repo/README.md")
for f in "$repo"/docs/*.md; do files+=("$f"); done
list="$scratch/.docs-check/blocks"
: >"$list"
for f in "${files[@]}"; do
  rel=${f#"$repo/"}
  awk -v rel="$rel" -v out="$scratch/.docs-check" -v list="$list" -v first="$(wc -l <"$list")" '
    inblock && /^```[[:space:]]*$/ { inblock = 0; close(path); next }
    inblock { print > path; next }
    marked && !/^```(sh|python)[[:space:]]*$/ {
      print rel ":" NR ": `<!-- runnable -->` must come right before a ```sh or ```python fence" > "/dev/stderr"
      bad = 1; exit 1
    }
    marked {
      path = sprintf("%s/%03d.%s", out, first + (++n), ($0 ~ /python/) ? "py" : "sh")
      printf "" > path
      print rel ":" NR " " path >> list
      inblock = 1; marked = 0; next
    }
    { marked = ($0 ~ /^<!-- runnable -->[[:space:]]*$/) }
    END {
      if (bad) exit 1
      if (inblock) { print rel ": a runnable block is not closed" > "/dev/stderr"; exit 1 }
    }
  ' "$f"
done

total=$(wc -l <"$list")
if [ "$total" -eq 0 ]; then
  echo "docs-check: no runnable blocks found" >&2
  exit 1
fi
echo "docs-check: $total runnable blocks, study from $bin_dir, in $scratch"
start=$SECONDS
i=0
python="${DOCS_PYTHON:-$repo/target/python-venv/bin/python}"
if ! "$python" -c 'import anisostudy' 2>/dev/null; then
  python=""
fi
skipped=0
while read -r where block; do
  i=$((i + 1))
  echo "[$i/$total] $where"
  log="${block%.*}.log"
  t0=$SECONDS
  rc=0
  case "$block" in
    *.py)
      if [ -z "$python" ]; then
        echo "      note: skipped: no Python with the anisostudy package (bash python/tests/venv.sh makes one)"
        skipped=$((skipped + 1))
        continue
      fi
      run=("$python" "$block") ;;
    *) run=(bash -euo pipefail "$block") ;;
  esac
  if [ "${DOCS_CHECK_VERBOSE:-0}" = 1 ]; then
    (cd "$scratch" && "${run[@]}") </dev/null 2>&1 | tee "$log" || rc=$?
  else
    (cd "$scratch" && "${run[@]}") </dev/null >"$log" 2>&1 || rc=$?
  fi
  if [ "$rc" -ne 0 ]; then
    echo "--- the block at $where:"
    sed 's/^/    /' "$block"
    echo "--- its output (last 40 lines):"
    tail -n 40 "$log" | sed 's/^/    /'
    echo "docs-check: FAILED at $where (exit $rc)" >&2
    exit 1
  fi
  echo "      ok ($((SECONDS - t0)) s)"
done <"$list"
echo "docs-check: $((total - skipped)) of $total blocks passed in $((SECONDS - start)) s ($skipped skipped)"
