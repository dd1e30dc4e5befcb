"""The examples a new user runs after scripts/run.sh keep working: read_shards.py and train_sae.py."""

import os
import re
import subprocess
import sys

from conftest import REPO


def run_example(name, *args):
    p = subprocess.run([sys.executable, os.path.join(REPO, "examples", name), *map(str, args)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_train_sae_learns_on_a_real_run(run_fp32):
    out = run_example("train_sae.py", run_fp32, "--epochs", "4", "--point", "blocks.0.hook_resid_post")
    mse = [float(x) for x in re.findall(r"mse ([0-9.]+)", out)]
    assert len(mse) == 4, out
    assert mse[-1] < 0.7 * mse[0], out  # reconstruction improves as it trains


def test_read_shards_summarises_and_verifies(run_bf16_zstd):
    out = run_example("read_shards.py", run_bf16_zstd, "--verify")
    assert "verify:      ok" in out and "format:      version 2" in out, out
