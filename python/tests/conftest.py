"""Shared fixtures: the fme binary, ../shared/data, and real runs made by `fme extract` on a tiny model.

Paths come from the environment (set by the CTest entry) or default to the checkout's layout:
FME_BIN (build/bin/fme), FME_SHARED_DATA (../shared/data beside the checkout).
"""

import json
import os
import struct
import subprocess

import numpy as np
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _path(env, default):
    return os.path.abspath(os.environ.get(env) or default)


FME_BIN = _path("FME_BIN", os.path.join(REPO, "build", "bin", "fme"))
SHARED_DATA = _path("FME_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
TEXT = os.path.join(SHARED_DATA, "text", "fineweb-legal-sample", "batch_000001.jsonl")


def run_fme(*args, check=True):
    """Runs the fme binary; returns the CompletedProcess (stdout/stderr as text)."""
    proc = subprocess.run([FME_BIN, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"fme {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def fme_bin():
    if not os.access(FME_BIN, os.X_OK):
        pytest.fail(f"{FME_BIN}: no fme binary (build first: bash scripts/build.sh, or set FME_BIN)")
    return FME_BIN


@pytest.fixture(scope="session")
def shared_data():
    if not os.path.isdir(SHARED_DATA):
        pytest.fail(f"{SHARED_DATA}: the shared reference data is missing (set FME_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, fme_bin):
    """A qwen2-tiny model directory with its tokenizer (fme init)."""
    d = tmp_path_factory.mktemp("model") / "qwen2-tiny"
    run_fme("init", "--preset", "qwen2-tiny", "--out", d, "--seed", "1")
    return str(d)


def make_run(tmp_path_factory, model, name, *extra):
    out = tmp_path_factory.mktemp(name) / "run"
    run_fme("extract", "--model", model, "--dataset", TEXT, "--out", out, "--max-samples", "24",
            "--hooks", "blocks.0.hook_resid_post,blocks.1.attn.hook_z", "--shard-size", "200000", "--quiet",
            "--threads", "1", "--dtype", "fp32", *extra)
    return str(out)


@pytest.fixture(scope="session")
def run_fp32(tmp_path_factory, tiny_model):
    """24 web-text documents, two hook points ([hidden] and [heads, head_dim]), fp32, several shards."""
    return make_run(tmp_path_factory, tiny_model, "fp32", "--out-dtype", "fp32")


@pytest.fixture(scope="session")
def run_bf16_zstd(tmp_path_factory, tiny_model):
    """The same run stored as bf16 (the default) in zstd-compressed shards."""
    return make_run(tmp_path_factory, tiny_model, "bf16zst", "--compress", "zstd")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


_ST_DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<u2"): "BF16", np.dtype("<i4"): "I32",
              np.dtype("<i8"): "I64"}


def write_safetensors(path, tensors, metadata=None):
    """A minimal safetensors writer, independent of the readers under test. tensors: {name: np.ndarray} (uint16
    arrays are written as BF16 bit patterns), or {name: (dtype name, array)}."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        dtype_name, arr = t if isinstance(t, tuple) else (_ST_DTYPES[np.asarray(t).dtype.newbyteorder("<")], t)
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype_name, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    hjson = json.dumps(header).encode()
    hjson += b" " * (-len(hjson) % 8)  # the format pads the header so data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
