#!/usr/bin/env bash
# Installs every Debian package fme needs and selects OpenBLAS (OpenMP build) as the system BLAS/LAPACK.
# Idempotent: safe to rerun. Needs root (or sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  build-essential cmake ninja-build git pkg-config ca-certificates
  libtorch-dev libgloo-dev               # tensor engine (libtorch 1.13) and c10d/Gloo headers
  libopenblas0-openmp                    # fast BLAS: Debian's default reference BLAS is ~40x slower
  libtcmalloc-minimal4                   # glibc malloc re-faults large tensors every op
  libcli11-dev nlohmann-json3-dev        # CLI and JSON
  libutf8proc-dev libpcre2-dev           # Unicode (NFC, categories) and the pre-tokenizer regex
  libzstd-dev zstd                       # shard compression (library; CLI for the Python reader's tests)
  libssl-dev                             # libcrypto: SHA-256 of shards (util/sha256), MD5 of S3 parts
  libcurl4-openssl-dev libtinyxml2-dev   # S3 uploads: libcurl (its AWS SigV4 signing) and S3's XML answers
  libgtest-dev                           # tests
  python3 python3-numpy python3-torch    # the Python package (numpy; torch optional); PyTorch eager peers
  python3-jinja2                         # chat-template test: Jinja renders the models' own templates
  python3-dev pybind11-dev               # the Python package's native module (python/native)
  python3-venv python3-pip python3-setuptools python3-wheel  # `pip install ./python` into a venv, offline
  python3-pytest python3-zstandard       # the package's tests; its zstd shard reader
  python3-protobuf python3-crcmod        # tests read TensorBoard event files with libraries fme did not write
  python3-botocore                       # tests check the test S3 server's signature check against AWS's SDK
  clang libclang-rt-14-dev               # libFuzzer targets
)
# The HF tokenizers peer of bench_tokenizer (npm tokenizers, bench/tokenizer/peer) runs under Node.js with npm.
# A Node.js already on the machine (NodeSource's bundles its own npm) is used as it is: Debian's npm package
# depends on Debian's nodejs and cannot be installed beside it ("held broken packages").
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Select OpenBLAS (OpenMP) for libblas.so.3 and liblapack.so.3.
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for lib in libblas.so.3 liblapack.so.3; do
  target="/usr/lib/${arch}/openblas-openmp/${lib}"
  if [ -e "$target" ]; then
    cur=$(update-alternatives --query "${lib}-${arch}" 2>/dev/null | awk '/^Value:/{print $2}')
    if [ "$cur" != "$target" ]; then
      $SUDO update-alternatives --set "${lib}-${arch}" "$target"
    fi
  fi
done
# The HF tokenizers peer's node_modules (pinned by its package-lock.json), when missing or older than the lock.
# Only bench_tokenizer needs it (and says so when it is missing), so a registry outage warns, not fails.
peer="$(dirname "$0")/../bench/tokenizer/peer"
if [ ! -d "$peer/node_modules" ] || [ "$peer/package-lock.json" -nt "$peer/node_modules" ]; then
  npm ci --prefix "$peer" --no-audit --no-fund --loglevel=error ||
    echo "setup: warning: npm ci in $peer failed; bench_tokenizer will report no HF peer" >&2
fi
echo "setup: packages installed; BLAS = $(readlink -f /usr/lib/${arch}/libblas.so.3)"
