"""A stand-in for a training script: a smooth validation error over the
study's parameters, printed as the trial protocol's last line."""

import argparse
import json
import math

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--layers", type=int, required=True)
parser.add_argument("--kind", choices=["equivariant", "scalar"], required=True)
args = parser.parse_args()

error = (math.log10(args.lr) + 2.5) ** 2 + 0.3 * (args.layers - 2) ** 2 + (0.0 if args.kind == "equivariant" else 0.4)
print(json.dumps({"objective": error}))
