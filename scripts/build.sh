#!/usr/bin/env bash
# Installs what fme needs (scripts/setup.sh), then configures and builds it into build/ (Release, Ninja).
# Env: FME_BUILD_DIR (default build), FME_JOBS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${FME_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j "${FME_JOBS:-$(nproc)}"
