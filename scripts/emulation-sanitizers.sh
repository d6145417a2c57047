#!/usr/bin/env bash
# The GPU kernels' CPU emulation under ThreadSanitizer and AddressSanitizer:
#
#   scripts/emulation-sanitizers.sh [thread|address ...]   (default: both)
#
# Each sanitizer builds the emulation (src/model/gpu/kernels) instrumented,
# into target/sanitize-<name>, and runs the GPU engine's tests
# (`cargo test --release --lib model::gpu`). A race between a kernel's
# threads (a missing __syncthreads, two threads writing one output) or an
# access outside an allocation shows up as a report with a frame in the
# kernels or the emulation; the script fails on any such report. The Rust
# side is not instrumented, so TSan also reports its own atomics (the test
# harness, rayon) as races: those reports have no kernel frame and are
# counted, not failed on (TSan's own exit code for a report is turned off,
# so the tests' exit code is the tests' verdict).
set -u
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
sanitizers=("$@")
[ ${#sanitizers[@]} -gt 0 ] || sanitizers=(thread address)
status=0
for sanitizer in "${sanitizers[@]}"; do
  case "$sanitizer" in
    thread|address) ;;
    *) echo "scripts/emulation-sanitizers.sh: '$sanitizer' is not thread or address" >&2; exit 2 ;;
  esac
  log="target/sanitize-$sanitizer.log"
  mkdir -p target
  echo "== $sanitizer sanitizer (log: $log)"
  ANISOSTUDY_EMULATION_SANITIZER="$sanitizer" CARGO_TARGET_DIR="target/sanitize-$sanitizer" \
    TSAN_OPTIONS="halt_on_error=0 exitcode=0 history_size=7 ${TSAN_OPTIONS:-}" ASAN_OPTIONS="verify_asan_link_order=0 detect_leaks=0 ${ASAN_OPTIONS:-}" \
    cargo test --release --lib model::gpu > "$log" 2>&1
  rc=$?
  grep -E "^test result" "$log" || true
  # A race is where its accesses are: a kernel or emulation frame counts in
  # the stacks of the racing reads and writes, not in where a mutex or a
  # thread was created.
  verdict=$(awk '
    /WARNING: ThreadSanitizer|ERROR: AddressSanitizer/ { n++; access = 1 }
    /^  [A-Z]/ { access = ($0 ~ /^  (Previous )?(atomic |Atomic )?([Rr]ead|[Ww]rite) of size/) }
    { if (n) { report[n] = report[n] $0 "\n"; if (access) accesses[n] = accesses[n] $0 "\n" } }
    END {
      for (i = 1; i <= n; i++) if (accesses[i] ~ /anisonet\.cu:|emulate\.cpp:|shim\.h:/) { k++; print report[i] > "/dev/stderr" }
      printf "%d reports, %d with a kernel or emulation frame", n, k
    }' "$log")
  echo "   $verdict"
  case "$verdict" in
    *", 0 with a kernel"*) ;;
    *) status=1 ;;
  esac
  # AddressSanitizer stops the process at its first error; a failing test is a failure too.
  [ "$rc" -eq 0 ] || { echo "   the tests failed (rc $rc)"; status=1; }
done
exit $status
