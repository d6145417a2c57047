#!/usr/bin/env bash
# Creates the Python environment the Optuna bridge is tested against (real
# Optuna 5.0, optuna-dashboard, and what optuna.visualization needs) in
# target/optuna-venv, unless it is there already. Prints its python.
#
#   bash tests/optuna/venv.sh            # then: cargo test --release --test optuna_bridge
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/optuna-venv
if ! "$venv/bin/python" -c 'import optuna, optuna_dashboard, plotly, sklearn, pandas; assert optuna.__version__ == "5.0.0"' 2>/dev/null; then
    mkdir -p target
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check \
        optuna==5.0.0 optuna-dashboard==0.21.0 plotly scikit-learn pandas
fi
echo "$PWD/$venv/bin/python"
