#!/usr/bin/env bash
# The main job on a built-in default: installs, builds, makes the tiny Qwen2 preset with `fme init`, and runs
# `fme forward` on the demo texts that ship with fme. Output lands in build/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
BUILD_DIR=${FME_BUILD_DIR:-build}
FME="$BUILD_DIR/bin/fme"
DEMO="$BUILD_DIR/demo"
rm -rf "$DEMO" && mkdir -p "$DEMO"
"$FME" init --preset qwen2-tiny --out "$DEMO/model" --seed 0
"$FME" forward --model "$DEMO/model" --texts assets/demo/texts.jsonl --out "$DEMO/activations.safetensors"
"$FME" inspect "$DEMO/model" | head -n 3
echo "main job done: $DEMO/activations.safetensors"
