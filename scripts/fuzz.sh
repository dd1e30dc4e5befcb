#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz/, seeds their corpora from the shared
# data, runs each for SECONDS (default 60) and says per target whether it found a crash.
#   scripts/fuzz.sh [SECONDS]
# Environment: FME_SHARED_DATA (default ../shared/data beside the checkout), FUZZ_JOBS (build jobs, 2),
#   FUZZ_FULL_TOKENIZERS=1 (also seed the full-size tokenizer.json files; slow).
# Exit status: 0 when no target crashed, 1 when one did (its reproducer is under build-fuzz/artifacts/).
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA="${FME_SHARED_DATA:-$ROOT/../shared/data}"
BUILD="$ROOT/build-fuzz"

# 1. Toolchain (idempotent: installs only what is missing).
missing=()
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. Configure and build. Each target is built on its own so one that does not compile (yet) does not
#    stop the others from running.
GEN=()
if command -v ninja >/dev/null; then GEN=(-G Ninja); fi
CC=clang CXX=clang++ cmake -S . -B "$BUILD" "${GEN[@]}" -DFME_ENABLE_TORCH=OFF -DFME_BUILD_TESTS=OFF \
  -DFME_BUILD_FUZZERS=ON -DFME_SHARED_DATA="$DATA" >/dev/null

TARGETS=(fuzz_safetensors_header fuzz_config)
if [ -f fuzz/fuzz_tokenizer.cpp ]; then TARGETS+=(fuzz_tokenizer); fi
declare -A RESULT
BUILT=()
for t in "${TARGETS[@]}"; do
  if cmake --build "$BUILD" --target "$t" -j "${FUZZ_JOBS:-2}" >"$BUILD/build-$t.log" 2>&1; then
    BUILT+=("$t")
  else
    RESULT[$t]="BUILD FAILED (see $BUILD/build-$t.log)"
  fi
done

# 3. Seed corpora (copies are idempotent; libFuzzer adds its finds to the same folders).
seed() {  # seed CORPUS FILE...
  local dir="$BUILD/corpus-$1"
  shift
  mkdir -p "$dir"
  for f in "$@"; do
    [ -f "$f" ] || continue
    cp -f "$f" "$dir/seed-$(basename "$(dirname "$f")")_$(basename "$f")"
  done
}
# safetensors: the per-dtype samples and the model goldens (tens of KB). The 0.7-8 MB model files
# are left out: libFuzzer sizes its inputs to the largest seed, which would slow every run down.
seed safetensors_header "$DATA"/safetensors-samples/*.safetensors "$DATA"/models/*/golden.safetensors
seed config "$DATA"/models/*/config.json
# tokenizer: the real files are 0.5-11 MB, and libFuzzer sizes inputs to the largest seed (with the
# 466 KB BERT file: ~200 runs/s). Seed small tokenizers cut from them instead (same structure, a few
# hundred vocabulary entries, the merges among those); FUZZ_FULL_TOKENIZERS=1 adds the real files.
TOK_SEEDS="$BUILD/tokenizer-seeds"
mkdir -p "$TOK_SEEDS"
python3 - "$DATA/tokenizers" "$TOK_SEEDS" <<'PY'
import json, os, sys
src, out = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    path = os.path.join(src, name, "tokenizer.json")
    if not os.path.isfile(path):
        continue
    with open(path, encoding="utf-8") as f:
        tok = json.load(f)
    model = tok.get("model", {})
    vocab = model.get("vocab")
    if not isinstance(vocab, dict):
        continue
    keep = 400
    model["vocab"] = {t: i for t, i in vocab.items() if i < keep}
    if "merges" in model:
        kept = []
        for m in model["merges"]:
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            if a in model["vocab"] and b in model["vocab"] and a + b in model["vocab"]:
                kept.append(m)
        model["merges"] = kept
    with open(os.path.join(out, name + "-small.tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
PY
seed tokenizer "$TOK_SEEDS"/*.json
if [ "${FUZZ_FULL_TOKENIZERS:-0}" = 1 ]; then seed tokenizer "$DATA"/tokenizers/*/tokenizer.json; fi

# 4. Run each target for SECONDS_PER_TARGET, one after the other (the machine may have 2 cores).
status=0
for t in "${BUILT[@]}"; do
  corpus="$BUILD/corpus-${t#fuzz_}"
  artifacts="$BUILD/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  rm -f "$artifacts"/crash-* "$artifacts"/leak-* "$artifacts"/timeout-* "$artifacts"/oom-*
  log="$BUILD/run-$t.log"
  echo "== $t: ${SECONDS_PER_TARGET}s, corpus $corpus"
  set +e
  "$BUILD/bin/$t" "$corpus" -max_total_time="$SECONDS_PER_TARGET" -timeout=25 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
  rc=$?
  set -e
  found=$(ls "$artifacts" 2>/dev/null | grep -E '^(crash|leak|timeout|oom|slow-unit)-' || true)
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
  if [ $rc -ne 0 ] || [ -n "$found" ]; then
    RESULT[$t]="CRASH (exit $rc, $execs runs): $(echo $found | tr '\n' ' ') in $artifacts; log $log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -5 | sed 's/^/    /'
    status=1
  else
    RESULT[$t]="no crash ($execs runs, corpus $(ls "$corpus" | wc -l) inputs)"
  fi
done

echo "== fuzz summary (${SECONDS_PER_TARGET}s per target)"
for t in "${TARGETS[@]}"; do
  printf '  %-26s %s\n' "$t" "${RESULT[$t]:-not run}"
  case "${RESULT[$t]:-}" in BUILD*) status=1 ;; esac
done
exit $status
