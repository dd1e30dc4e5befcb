#!/usr/bin/env bash
# The main job on a built-in default: installs, builds, makes the tiny Qwen2 preset with `fme init`, and runs
# `fme extract` over the ARC tasks that ship with fme (assets/arc-tasks, 2 augmented variants each), storing
# the residual stream of every block, then installs the Python package (build/venv) and reads the run back
# with it. Output lands in build/demo/ (run directory: build/demo/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
BUILD_DIR=${FME_BUILD_DIR:-build}
FME="$BUILD_DIR/bin/fme"
DEMO="$BUILD_DIR/demo"
rm -rf "$DEMO" && mkdir -p "$DEMO"
"$FME" init --preset qwen2-tiny --out "$DEMO/model" --seed 0
"$FME" extract --model "$DEMO/model" --dataset assets/arc-tasks --augment 2 --out "$DEMO/run" --layers all
bash scripts/python_package.sh
"$BUILD_DIR/venv/bin/python" -m fme "$DEMO/run" --verify
echo "main job done: activations in $DEMO/run (read them with $BUILD_DIR/venv/bin/python: import fme; fme.open_run(...))"
