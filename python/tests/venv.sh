#!/usr/bin/env bash
# Creates the Python environment the `anisostudy` package is tested in
# (target/python-venv: maturin, pytest, pandas, ASE, pymatgen and jobflow
# from PyPI), builds the package's wheel from this repository with maturin
# (target/wheels) and installs it there; prints the environment's python.
# Run it again after changing Rust code: the wheel is rebuilt each time
# (incrementally, in the workspace's target/).
#
#   bash python/tests/venv.sh      # then: cargo test --release --test python_package
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/python-venv
if ! "$venv/bin/python" -c 'import maturin, pytest, pandas, ase, pymatgen.core, jobflow' 2>/dev/null; then
    mkdir -p target
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check \
        maturin==1.16.0 pytest==9.2.0 numpy==2.4.6 pandas==3.1.1 ase==3.29.0 pymatgen==2026.10.24 jobflow==0.4.0
fi
rm -rf target/wheels
"$venv/bin/maturin" build --quiet --release --manifest-path python/Cargo.toml \
    --interpreter "$venv/bin/python" --out target/wheels >&2
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/anisostudy-*.whl
echo "$PWD/$venv/bin/python"
