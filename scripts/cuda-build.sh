#!/usr/bin/env bash
# The `cuda` build on a machine with no GPU and no system CUDA: a login node,
# a laptop, CI. Run it from anywhere in the repository:
#
#   scripts/cuda-build.sh [--cap 90] [--skip-tests]
#
# What it does, and why each step is needed:
#
# 1. CUDA 13.0 from NVIDIA's wheels on PyPI (scripts/cuda/requirements.txt,
#    pinned by hash) unpacked into target/cuda-13.0/toolkit: nvcc, the
#    runtime and driver headers, cuBLAS, NVRTC, cuRAND. The wheels ship
#    versioned libraries only, so the unversioned names the linker asks for
#    are made as links.
# 2. libcuda is the driver's and comes with it on the GPU node. For linking
#    here, a stub libcuda.so (soname libcuda.so.1, as in the toolkit's own
#    lib64/stubs) is compiled from the driver functions cudarc declares; it
#    is never on the library path at run time.
# 3. dfdx's build script asks `nvidia-smi` for the GPU's compute capability
#    and panics when there is none (even with CUDA_COMPUTE_CAP set): a
#    stand-in that answers `--cap` (default 90, the H100/H200's sm_90) is on
#    the PATH for the build only.
# 4. dfdx bakes two folders of this machine into the binary for the kernels
#    NVRTC compiles at run time; scripts/cuda/dfdx-0.13-runtime-includes.patch
#    makes it look them up where the binary runs. It is applied to a copy of
#    dfdx that only this build uses (through cargo's [patch]); Cargo.lock is
#    left as it was.
# 5. The GPU engine's kernels (src/model/gpu/kernels) compiled by nvcc into
#    one fatbin (SASS for sm_80 and sm_90, PTX for later GPUs), failing on
#    any register spilled to local memory, and embedded by the build; then
#    `cargo build --release --features cuda`, the test binaries and the
#    `model_forward` bench, into target/cuda (the CPU build in target/release
#    is not touched).
# 6. Checks: every dfdx kernel compiled to PTX for the asked architecture;
#    NVRTC compiling the kernel source the binary embeds;
#    what the binary needs at run time (`ldd`), every CUDA symbol it imports
#    defined by CUDA 13.0's libraries or declared by its driver API header.
#
# 7. Stripped copies of the binary and of the GPU test binaries in
#    target/cuda/dist, to carry to a GPU node.
#
# Exit status: 0 built and checked, 1 a step failed, 2 bad arguments, 3 the
# CUDA wheels could not be fetched (no network to PyPI).
#
# Environment: CUDA_BUILD_DIR (default target/cuda-13.0), CARGO_TARGET_DIR
# for the cargo output (default target/cuda), PYTHON (default python3).
set -euo pipefail

cap=90
skip_tests=false
while [ $# -gt 0 ]; do
  case "$1" in
    --cap) cap="${2:?--cap needs a compute capability such as 90}"; shift 2 ;;
    --cap=*) cap="${1#--cap=}"; shift ;;
    --skip-tests) skip_tests=true; shift ;;
    -h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scripts/cuda-build.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
case "$cap" in
  [0-9][0-9]|[0-9][0-9][0-9]) ;;
  *) echo "scripts/cuda-build.sh: --cap '$cap' is not a compute capability; write it without the dot, e.g. 90 for 9.0" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
build_dir="${CUDA_BUILD_DIR:-$repo/target/cuda-13.0}"
mkdir -p "$build_dir"
build_dir="$(cd "$build_dir" && pwd)"
toolkit="$build_dir/toolkit"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/cuda}"
python="${PYTHON:-python3}"

say() { printf '\n== %s\n' "$*"; }
fail() { echo "scripts/cuda-build.sh: $*" >&2; exit 1; }

for tool in "$python" unzip cc patch cargo readelf nm strip; do
  command -v "$tool" >/dev/null || fail "needs '$tool' on the PATH"
done

# 1. The toolkit from the wheels.
if [ ! -f "$toolkit/.complete" ]; then
  say "CUDA 13.0 from PyPI into $toolkit"
  "$python" -m pip download --quiet --no-deps --require-hashes \
    -r scripts/cuda/requirements.txt -d "$build_dir/wheels" \
    || { echo "scripts/cuda-build.sh: pip could not fetch the CUDA wheels (scripts/cuda/requirements.txt); is PyPI reachable?" >&2; exit 3; }
  rm -rf "$build_dir/unpack" "$toolkit"
  for wheel in "$build_dir"/wheels/nvidia_*.whl; do
    unzip -qo "$wheel" 'nvidia/cu13/*' -d "$build_dir/unpack"
  done
  mv "$build_dir/unpack/nvidia/cu13" "$toolkit"
  rm -rf "$build_dir/unpack"
  for lib in cublas cublasLt nvrtc cudart; do ln -sf "lib$lib.so.13" "$toolkit/lib/lib$lib.so"; done
  ln -sf libcurand.so.10 "$toolkit/lib/libcurand.so"
  touch "$toolkit/.complete"
fi
nvcc_version="$("$toolkit/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
[ "${nvcc_version%%.*}" = 13 ] || fail "$toolkit/bin/nvcc is release '$nvcc_version', not 13"

# 2. The link-time stub of the driver library.
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
cargo fetch --quiet
crate_dir() { find "$registry" -maxdepth 2 -type d -name "$1" | sort | tail -n 1; }
cudarc="$(crate_dir cudarc-0.9.15)"
dfdx_src="$(crate_dir dfdx-0.13.0)"
[ -n "$cudarc" ] && [ -n "$dfdx_src" ] || fail "cargo fetch left no cudarc-0.9.15 or dfdx-0.13.0 under $registry"
# lib64/stubs, where a toolkit keeps it and cudarc's build script looks.
stubs="$toolkit/lib64/stubs"
if [ ! -f "$stubs/libcuda.so" ]; then
  say "stub libcuda.so (link time only) from cudarc's driver declarations"
  mkdir -p "$stubs"
  grep -o 'pub fn cu[A-Za-z0-9_]*' "$cudarc/src/driver/sys.rs" | sed 's/pub fn //' | sort -u \
    | sed 's/.*/void &(void) {}/' > "$stubs/libcuda-stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/libcuda-stub.c"
fi

# 3. The stand-in for nvidia-smi, for dfdx's build script.
mkdir -p "$build_dir/bin"
cat > "$build_dir/bin/nvidia-smi" <<EOF
#!/bin/sh
# Build-time stand-in written by scripts/cuda-build.sh: answers dfdx's build
# script with the compute capability the build targets. Not a GPU query.
case "\$*" in
  *--query-gpu=compute_cap*) echo compute_cap; echo "${cap%?}.${cap: -1}" ;;
  *) echo "nvidia-smi stand-in (scripts/cuda-build.sh): only --query-gpu=compute_cap" >&2; exit 1 ;;
esac
EOF
chmod +x "$build_dir/bin/nvidia-smi"

# 4. dfdx with its run-time kernels' includes looked up where the binary runs.
dfdx="$build_dir/dfdx-0.13.0"
patch_file="$repo/scripts/cuda/dfdx-0.13-runtime-includes.patch"
stamp="$(sha256sum "$patch_file" | cut -c1-16)"
if [ ! -f "$dfdx/.patched-$stamp" ]; then
  say "dfdx 0.13.0 patched with $(basename "$patch_file")"
  rm -rf "$dfdx"
  cp -r "$dfdx_src" "$dfdx"
  (cd "$dfdx" && patch -p1 --quiet < "$patch_file") || fail "the dfdx patch does not apply to $dfdx_src"
  touch "$dfdx/.patched-$stamp"
fi

# 5. The build.
export CUDA_ROOT="$toolkit" CUDA_PATH="$toolkit" CUDA_COMPUTE_CAP="$cap"
export PATH="$toolkit/bin:$build_dir/bin:$PATH"
lock_backup="$(mktemp)"
cp Cargo.lock "$lock_backup"
trap 'cp "$lock_backup" Cargo.lock; rm -f "$lock_backup"' EXIT
patch_config="patch.crates-io.dfdx.path=\"$dfdx\""
# `cargo bench` builds with the bench profile (release settings) and takes no --release.
cargo_cuda() {
  local sub="$1"; shift
  if [ "$sub" = bench ]; then
    cargo bench "$@" --features cuda --config "$patch_config"
  else
    cargo "$sub" "$@" --release --features cuda --config "$patch_config"
  fi
}

# The GPU engine's kernels (src/model/gpu/kernels): one fatbin with SASS for
# sm_80 and sm_90 and PTX for later GPUs, and no register spilled to local
# memory on either architecture.
say "the GPU engine's kernels, compiled ahead"
kernels_dir="$repo/src/model/gpu/kernels"
mkdir -p "$CARGO_TARGET_DIR"
fatbin="$CARGO_TARGET_DIR/anisonet.fatbin"
ptxas_log="$CARGO_TARGET_DIR/anisonet.ptxas.txt"
"$toolkit/bin/nvcc" -fatbin -O3 -std=c++17 -I "$kernels_dir" \
  -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
  -gencode arch=compute_90,code=compute_90 -Xptxas -v \
  -o "$fatbin" "$kernels_dir/anisonet.cu" > "$ptxas_log" 2>&1 \
  || { cat "$ptxas_log" >&2; fail "nvcc could not compile $kernels_dir/anisonet.cu"; }
entries=$(grep -c "Compiling entry function" "$ptxas_log")
spilled=$( (grep -B2 -E "[1-9][0-9]* bytes spill (stores|loads)" "$ptxas_log" || true) \
  | sed -n "s/.*Function properties for \(.*\)/\1/p" | sort -u)
[ -z "$spilled" ] || fail "kernels spilling registers to local memory: $(echo $spilled) (see $ptxas_log)"
max_regs=$(sed -n 's/.*Used \([0-9]*\) registers.*/\1/p' "$ptxas_log" | sort -n | tail -n 1)
echo "$entries kernel entries (sm_80, sm_90) compiled by nvcc $nvcc_version into $(du -h "$fatbin" | cut -f1) $fatbin: no spills, at most $max_regs registers a thread"

# The build embeds it (build.rs), so that nodes without NVRTC run the kernels.
export ANISOSTUDY_KERNELS_FATBIN="$fatbin"

say "cargo build --release --features cuda (sm_$cap) into $CARGO_TARGET_DIR"
cargo_cuda build --bins
if ! $skip_tests; then
  say "cargo test --release --features cuda --no-run"
  cargo_cuda test --no-run
  say "cargo bench --features cuda --bench model_forward --no-run"
  cargo_cuda bench --bench model_forward --no-run
fi

# 6. Checks.
say "kernels"
out_dirs=("$CARGO_TARGET_DIR"/release/build/dfdx-*/out)
kernels=$(find "$dfdx/src" -name '*.cu' | wc -l)
ptx=0
for out in "${out_dirs[@]}"; do
  n=$(find "$out" -maxdepth 1 -name '*.ptx' | wc -l)
  [ "$n" -gt "$ptx" ] && ptx=$n && ptx_dir="$out"
done
[ "$ptx" -eq "$kernels" ] || fail "$ptx PTX files for $kernels dfdx kernels under $CARGO_TARGET_DIR/release/build"
wrong=$(grep -L "^\.target sm_$cap\b" "$ptx_dir"/*.ptx || true)
[ -z "$wrong" ] || fail "PTX not for sm_$cap: $wrong"
echo "$ptx of $kernels dfdx kernels compiled by nvcc $nvcc_version to PTX $(grep -h -m1 '^\.version' "$ptx_dir"/*.ptx | sort -u | cut -d' ' -f2) for sm_$cap"

if ! $skip_tests; then
  # What a GPU node whose GPU the fatbin does not cover runs: NVRTC 13.0
  # compiling the kernel source the binary embeds (no GPU needed).
  lib_tests=$(ls -t "$CARGO_TARGET_DIR"/release/deps/anisostudy-* 2>/dev/null | grep -v '\.d$' | head -n 1)
  [ -n "$lib_tests" ] || fail "no library test binary under $CARGO_TARGET_DIR/release/deps"
  # The test binary links the driver (dfdx): the stub, under the name the
  # loader asks for, stands in for it to start; nothing here calls it.
  mkdir -p "$build_dir/driver-stand-in"
  ln -sf "$stubs/libcuda.so" "$build_dir/driver-stand-in/libcuda.so.1"
  LD_LIBRARY_PATH="$toolkit/lib:$build_dir/driver-stand-in" "$lib_tests" --exact model::gpu::cuda::tests::nvrtc_compiles_the_kernel_source \
    --nocapture > "$CARGO_TARGET_DIR/nvrtc-check.txt" 2>&1 \
    || { cat "$CARGO_TARGET_DIR/nvrtc-check.txt" >&2; fail "NVRTC could not compile the embedded kernel source"; }
  grep -q "note: no libnvrtc" "$CARGO_TARGET_DIR/nvrtc-check.txt" && fail "the NVRTC check found no libnvrtc in $toolkit/lib"
  echo "NVRTC $nvcc_version compiles the kernel source embedded in the binary"
fi

study="$CARGO_TARGET_DIR/release/study"
say "what $study needs at run time"
needed=$(readelf -d "$study" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -E 'cuda|cublas|nvrtc|curand' | sort)
echo "CUDA libraries (NEEDED): $(echo $needed)"
LD_LIBRARY_PATH="$toolkit/lib" ldd "$study" | grep -E 'cuda|cublas|nvrtc|curand' | sed 's/ (0x[0-9a-f]*)//'
# Every imported CUDA symbol must be defined by the toolkit's libraries, or,
# for the driver (whose real library is not here), declared by CUDA 13.0's
# cuda.h (which keeps the names of older versions for old binaries).
undefined=$(nm -D --undefined-only "$study" | awk '{print $2}' | sed 's/@.*//' | grep -E '^(cu|nvrtc)' | sort -u)
defined=$(for lib in "$toolkit"/lib/lib{cublas,cublasLt,nvrtc,curand}.so; do nm -D --defined-only "$lib" | awk '{print $3}'; done | sed 's/@.*//' | sort -u)
missing=""
driver=0
for sym in $undefined; do
  if grep -qx "$sym" <<<"$defined"; then continue; fi
  if grep -qw "$sym" "$toolkit/include/cuda.h"; then driver=$((driver + 1)); continue; fi
  missing="$missing $sym"
done
[ -z "$missing" ] || fail "symbols CUDA 13.0 does not provide:$missing"
echo "$(wc -w <<<"$undefined") CUDA symbols imported: $(( $(wc -w <<<"$undefined") - driver )) defined by cuBLAS/NVRTC/cuRAND 13.0, $driver declared by CUDA 13.0's driver API (cuda.h)"
# 7. What to carry to a GPU node.
dist="$CARGO_TARGET_DIR/dist"
mkdir -p "$dist"
strip -o "$dist/study" "$study"
if ! $skip_tests; then
  for test in model_reference model_tensor_engine model_properties; do
    binary=$(ls -t "$CARGO_TARGET_DIR"/release/deps/$test-* 2>/dev/null | grep -v '\.d$' | head -n 1)
    if [ -n "$binary" ]; then strip -o "$dist/$test" "$binary"; fi
  done
fi
echo "stripped, for a GPU node: $(cd "$dist" && ls | tr '\n' ' ')($(du -sh "$dist" | cut -f1) in all) in $dist"

cat <<EOF

The cuda build is ready: $study
At run time it needs, on the GPU node:
  - the NVIDIA driver >= 580 (CUDA 13.0; it provides libcuda.so.1, and its JIT
    compiles the PTX ISA that nvcc 13.0 writes), a GPU of compute capability
    >= ${cap%?}.${cap: -1};
  - $(echo $needed | sed 's/libcuda.so.1 //; s/ /, /g') (with libcublasLt.so.13 and
    libnvrtc-builtins.so.13.0, which they load) on the library path: a CUDA 13
    toolkit's lib64, or the nvidia/cu13/lib folder of the nvidia-cublas and
    nvidia-cuda-nvrtc wheels (LD_LIBRARY_PATH);
  - a CUDA include folder holding cuda_fp16.h for kernels NVRTC compiles at
    run time: CUDA_INCLUDE_DIR, or include/ under CUDA_PATH, CUDA_ROOT or
    CUDA_HOME, or /usr/local/cuda/include (the nvidia-cuda-runtime wheel's
    include folder will do).
Check a node with: study doctor --device cuda:0
EOF
