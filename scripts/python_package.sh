#!/usr/bin/env bash
# Installs the fme Python package (python/) into a venv, offline: Debian's python3 with its numpy and torch
# (--system-site-packages), built with Debian's setuptools and wheel (--no-build-isolation: an isolated build
# would fetch them from PyPI). The native module comes along when the build made it (target fme_native).
# Env: FME_BUILD_DIR (default build), FME_VENV (default $FME_BUILD_DIR/venv).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=$(realpath -m "${FME_BUILD_DIR:-build}")
VENV=${FME_VENV:-$BUILD_DIR/venv}
[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$VENV"
# So that a plain `pip install ./python` works offline in this venv too. ("no-build-isolation = false" is pip's
# own inverted spelling for turning build isolation off.)
printf '[install]\nno-build-isolation = false\n' > "$VENV/pip.conf"
# pip builds in python/ (build/, fme.egg-info/: ignored by git).
FME_BUILD_DIR="$BUILD_DIR" "$VENV/bin/pip" install --quiet --no-index ./python
echo "python package: $("$VENV/bin/python" -c 'import fme, os; print(os.path.dirname(fme.__file__))')"
