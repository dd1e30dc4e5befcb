#!/usr/bin/env bash
# The test command: installs, builds, and runs every test (CTest + GoogleTest), after building the libFuzzer
# targets and running each for a few seconds on its corpus (FME_FUZZ_SECONDS, default 5), so that they cannot
# stop building, or start crashing on their seeds, unseen.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
BUILD_DIR=${FME_BUILD_DIR:-build}
bash scripts/fuzz.sh "${FME_FUZZ_SECONDS:-5}"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)"
