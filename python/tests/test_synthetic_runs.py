#!/usr/bin/env python3
"""The readers (fme.open_run, and examples/read_shards.py in front of it) against synthetic run directories.

Builds the runs with its own minimal safetensors writer (so the reader is not checked against itself):
an F32 + BF16 shard, an F16 shard, and a zstd-compressed shard made with the zstd CLI, in format version 2
(hook points by name, one of them [N, heads, head_dim]) and in version 1 (resid_post.{layer}, as fme wrote
before hook points). Then checks that every access path yields exactly the rows written, and that malformed
runs (bad manifest, missing or truncated shard, wrong sha256, bad indices) are errors naming the file.
"""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fme
from conftest import write_safetensors

READ_SHARDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "read_shards.py")

HIDDEN = 8
LAYERS = [10, 11]
# Version 2: the hook points stored, with one token's row shape.
POINTS = [("blocks.10.attn.hook_z", [2, 4]), ("blocks.11.hook_resid_post", [HIDDEN])]
# Version 1: resid_post.{layer}, read as blocks.{layer}.hook_resid_post.
V1_POINTS = [(f"blocks.{L}.hook_resid_post", [HIDDEN]) for L in LAYERS]


def load_module(path):
    spec = importlib.util.spec_from_file_location("read_shards", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- writer (independent of the reader) -------------------------------------------------------------

def to_bf16_bits(x):
    """float32 -> bf16 bit patterns by truncation; the expected read-back is these bits << 16."""
    return (np.ascontiguousarray(x, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def bf16_bits_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def make_run(run_dir, rng, layer_dtypes_per_shard, compress, sample_ids_per_shard, corrupt_index=None, version=2):
    """Writes shards + manifest. Returns {sample_index: (token_ids, {hook name: expected float array})}."""
    points = POINTS if version == 2 else V1_POINTS
    os.makedirs(run_dir, exist_ok=True)
    expected, entries = {}, []
    for k, (dtypes, ids) in enumerate(zip(layer_dtypes_per_shard, sample_ids_per_shard)):
        lengths = [int(rng.integers(1, 7)) for _ in ids]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        n = int(offsets[-1])
        tok = rng.integers(0, 50000, size=n).astype(np.int32)
        tensors, per_layer = {}, {}
        for k_point, ((hook, row_shape), dt) in enumerate(zip(points, dtypes)):
            key = hook if version == 2 else f"resid_post.{LAYERS[k_point]}"
            x = rng.standard_normal([n] + row_shape).astype(np.float32) * (k_point + 1)
            if dt == "F32":
                tensors[key] = ("F32", x)
                per_layer[hook] = x
            elif dt == "BF16":
                bits = to_bf16_bits(x)
                tensors[key] = ("BF16", bits)
                per_layer[hook] = bf16_bits_to_f32(bits)
            elif dt == "F16":
                h = x.astype(np.float16)
                tensors[key] = ("F16", h)
                per_layer[hook] = h
        idx = np.array(ids, dtype=np.int64)
        if corrupt_index == "order" and k == 0:
            idx = idx[::-1].copy()
        off_written = offsets.copy()
        if corrupt_index == "offsets" and k == 0:
            off_written[-1] += 1
        tensors["token_ids"] = ("I32", tok)
        tensors["sample_index"] = ("I64", idx)
        tensors["sample_offsets"] = ("I64", off_written)
        name = f"shard-{k:05d}.safetensors"
        path = os.path.join(run_dir, name)
        write_safetensors(path, tensors, {"producer": "read_shards_test"})
        if compress[k]:
            subprocess.run(["zstd", "-q", "-f", "--rm", path, "-o", path + ".zst"], check=True)
            name += ".zst"
            path += ".zst"
        for j, sid in enumerate(ids):
            a, b = offsets[j], offsets[j + 1]
            expected[sid] = (tok[a:b].copy(), {h: per_layer[h][a:b].copy() for h, _ in points})
        entries.append({"file": name, "first_sample": ids[0], "last_sample": ids[-1], "samples": len(ids),
                        "tokens": n, "bytes": os.path.getsize(path), "sha256": sha256_of(path)})
    manifest = {"format": "fme-activations", "version": version, "model": "synthetic", "hidden_size": HIDDEN,
                "shards": entries, "complete": True}
    if version == 1:
        manifest["layers"] = LAYERS
    else:
        # fme stores each point in one dtype in every shard (the manifest's)
        manifest["hooks"] = [{"name": h, "row_shape": r, "dtype": dt}
                             for (h, r), dt in zip(POINTS, layer_dtypes_per_shard[0])]
    with open(os.path.join(run_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return expected


# ---- checks -----------------------------------------------------------------------------------------

def run_cli(script, *args):
    return subprocess.run([sys.executable, script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Ctx:
    def __init__(self, script, tmp):
        self.script = script
        self.rs = load_module(script)
        self.tmp = tmp
        self.rng = np.random.default_rng(1234)
        self.run = os.path.join(tmp, "run")
        # Sample ids with gaps (filtered samples) and three shards: F32+BF16, F16+F16, and zstd F32+BF16.
        self.ids = [[0, 1, 2, 4], [5, 6, 9], [10, 11, 12, 13, 20]]
        self.expected = make_run(self.run, self.rng, [("F16", "BF16")] * 3,
                                 [False, False, True], self.ids)
        self.run_v1 = os.path.join(tmp, "run-v1")
        self.expected_v1 = make_run(self.run_v1, self.rng, [("F32", "F32")] * 2, [False, True],
                                    self.ids[:2], version=1)

    def fresh_copy(self, name):
        dst = os.path.join(self.tmp, name)
        shutil.copytree(self.run, dst)
        return dst


def test_rows_exact(c):
    for run, expected, points, ids in ((c.run, c.expected, POINTS, c.ids), (c.run_v1, c.expected_v1, V1_POINTS, c.ids[:2])):
        seen = []
        for sid, tok, acts in c.rs.iter_samples(run):
            want_tok, want_acts = expected[sid]
            assert tok.dtype == np.int32, tok.dtype
            assert np.array_equal(tok, want_tok), f"sample {sid}: token ids differ"
            assert sorted(acts) == sorted(h for h, _ in points), sorted(acts)
            for h, row_shape in points:
                got, want = acts[h], want_acts[h]
                assert got.dtype == want.dtype, f"sample {sid} {h}: dtype {got.dtype}, want {want.dtype}"
                assert got.shape == tuple([len(want_tok)] + row_shape), got.shape
                assert np.array_equal(got, want), f"sample {sid} {h}: values differ"
            seen.append(sid)
        assert seen == [i for x in ids for i in x], seen


def test_bf16_is_float32(c):
    t = c.rs.load_shard(os.path.join(c.run, "shard-00000.safetensors"))
    assert t["blocks.11.hook_resid_post"].dtype == np.float32
    assert t["blocks.10.attn.hook_z"].dtype == np.float16
    assert t["token_ids"].dtype == np.int32 and t["sample_index"].dtype == np.int64


def test_layer_subset(c):
    for kwargs in ({"layers": [11]}, {"hooks": ["blocks.11.hook_resid_post"]}):
        rows = list(c.rs.iter_samples(c.run, **kwargs))
        assert len(rows) == sum(len(x) for x in c.ids)
        for sid, _, acts in rows:
            assert list(acts) == ["blocks.11.hook_resid_post"]
            assert np.array_equal(acts["blocks.11.hook_resid_post"], c.expected[sid][1]["blocks.11.hook_resid_post"])
    rows = list(c.rs.iter_samples(c.run_v1, layers=[10]))  # version 1: the same names
    assert list(rows[0][2]) == ["blocks.10.hook_resid_post"]
    for kwargs in ({"layers": [99]}, {"hooks": ["blocks.10.hook_mlp_out"]}):
        try:
            list(c.rs.iter_samples(c.run, **kwargs))
        except c.rs.ShardError as e:
            assert "99" in str(e) or "hook_mlp_out" in str(e), e
        else:
            raise AssertionError("asking for a point that was not extracted must fail")


def test_zero_copy_uncompressed(c):
    t = c.rs.load_shard(os.path.join(c.run, "shard-00001.safetensors"))
    arr = t["blocks.10.attn.hook_z"]
    assert not arr.flags.writeable, "views of the read-only map must not be writeable"
    base, backed = arr, False
    while base is not None:
        if isinstance(base, np.memmap):
            backed = True
            break
        base = getattr(base, "base", None)
    assert backed, "uncompressed F16 tensor should be a view of an np.memmap"


def test_zst_via_cli(c):
    saved = fme.shards._zstandard
    fme.shards._zstandard = None  # force the `zstd -dc` path even where the module is installed
    try:
        t = c.rs.load_shard(os.path.join(c.run, "shard-00002.safetensors.zst"))
    finally:
        fme.shards._zstandard = saved
    assert t["sample_index"].tolist() == c.ids[2]
    assert np.array_equal(t["blocks.10.attn.hook_z"][: len(c.expected[10][0])], c.expected[10][1]["blocks.10.attn.hook_z"])


def test_summary_cli(c):
    p = run_cli(c.script, c.run)
    assert p.returncode == 0, p.stderr
    n_samples = sum(len(x) for x in c.ids)
    n_tokens = sum(len(v[0]) for v in c.expected.values())
    for want in (f"samples:     {n_samples}", f"tokens:      {n_tokens}", "format:      version 2",
                 "hooks:       blocks.10.attn.hook_z, blocks.11.hook_resid_post"):
        assert want in p.stdout, f"{want!r} not in:\n{p.stdout}"
    p = run_cli(c.script, c.run_v1, "--verify")
    assert p.returncode == 0, p.stderr
    for want in ("format:      version 1", "hooks:       blocks.10.hook_resid_post, blocks.11.hook_resid_post",
                 f"hidden size: {HIDDEN}"):
        assert want in p.stdout, f"{want!r} not in:\n{p.stdout}"


def test_verify_ok(c):
    p = run_cli(c.script, c.run, "--verify")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "verify:      ok" in p.stdout, p.stdout


def corrupt_byte(path):
    with open(path, "r+b") as f:
        f.seek(-5, os.SEEK_END)  # inside the data, past the header: only the checksum can notice
        b = f.read(1)
        f.seek(-5, os.SEEK_END)
        f.write(bytes([b[0] ^ 0x01]))


def test_verify_catches_corrupted_byte(c):
    for shard in ("shard-00001.safetensors", "shard-00002.safetensors.zst"):
        run = c.fresh_copy("corrupt-" + shard)
        corrupt_byte(os.path.join(run, shard))
        p = run_cli(c.script, run, "--verify")
        assert p.returncode != 0, f"--verify passed a corrupted {shard}"
        assert "sha256" in p.stderr and shard in p.stderr, p.stderr
        try:
            list(c.rs.iter_samples(run, verify=True))
        except c.rs.ShardError as e:
            assert shard in str(e)
        else:
            raise AssertionError("iter_samples(verify=True) must raise on a corrupted shard")
        assert run_cli(c.script, run).returncode == 0, "without --verify the summary still works"


def test_verify_catches_bad_indices(c):
    for kind, needle in (("order", "sample_index"), ("offsets", "sample_offsets")):
        run = os.path.join(c.tmp, "bad-" + kind)
        make_run(run, np.random.default_rng(5), [("F32", "F32")] * 2, [False, False],
                 [[0, 1, 2], [3, 4]], corrupt_index=kind)
        p = run_cli(c.script, run, "--verify")
        assert p.returncode != 0, f"--verify passed a run with bad {kind}"
        assert needle in p.stderr, p.stderr


def test_bad_manifest(c):
    run = c.fresh_copy("bad-manifest")
    path = os.path.join(run, "manifest.json")
    with open(path) as f:
        m = json.load(f)
    m["format"] = "something-else"
    with open(path, "w") as f:
        json.dump(m, f)
    p = run_cli(c.script, run)
    assert p.returncode != 0 and "fme-activations" in p.stderr, p.stderr
    p = run_cli(c.script, os.path.join(c.tmp, "no-such-run"))
    assert p.returncode != 0 and "manifest.json" in p.stderr, p.stderr


def test_truncated_shard(c):
    run = c.fresh_copy("truncated")
    path = os.path.join(run, "shard-00000.safetensors")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 16)
    try:
        c.rs.load_shard(path)
    except c.rs.ShardError as e:
        assert "data_offsets" in str(e), e
    else:
        raise AssertionError("a truncated shard must be rejected")



@pytest.fixture(scope="module")
def c(tmp_path_factory):
    assert shutil.which("zstd"), "the zstd CLI is needed (apt-get install zstd)"
    return Ctx(os.path.abspath(READ_SHARDS), str(tmp_path_factory.mktemp("synthetic")))


# ---- fme.open_run on the same runs ----------------------------------------------------------------------

def expected_rows(c, hook, ids=None):
    order = [i for x in (ids or c.ids) for i in x]
    return np.concatenate([c.expected[sid][1][hook] for sid in order]), \
        np.concatenate([c.expected[sid][0] for sid in order])


def test_open_run_points_and_lengths(c):
    run = fme.open_run(c.run)
    assert list(run.points) == [h for h, _ in POINTS]
    assert run.points["blocks.10.attn.hook_z"].row_shape == (2, 4)
    assert run.points["blocks.10.attn.hook_z"].dtype == "F16"
    assert run.points["blocks.11.hook_resid_post"].dtype == "BF16"
    assert len(run) == sum(len(x) for x in c.ids)
    assert run.num_rows == sum(len(v[0]) for v in c.expected.values())
    assert run.sample_index.tolist() == [i for x in c.ids for i in x]
    assert run.complete


def test_row_array_equals_written_rows(c):
    run = fme.open_run(c.run)
    for hook, row_shape in POINTS:
        want, want_tok = expected_rows(c, hook)
        arr = run[hook]
        assert arr.shape == (want.shape[0],) + tuple(row_shape)
        assert arr.dtype == want.dtype
        assert np.array_equal(np.asarray(arr), want)
        assert np.array_equal(np.asarray(run.token_ids), want_tok)
        n = want.shape[0]
        # Slices within and across shards, steps, negative ints, int arrays, boolean masks, tuples.
        for idx in (slice(0, 3), slice(2, n - 2), slice(None, None, 3), slice(n - 1, 0, -2), -1, 0, n // 2,
                    np.array([n - 1, 0, 5, 5, 2]), np.arange(n) % 3 == 0, [1, -2]):
            assert np.array_equal(arr[idx], want[idx]), (hook, idx)
        assert np.array_equal(arr[1:7, 0], want[1:7, 0])
        with pytest.raises(IndexError):
            arr[n]


def test_slice_within_an_uncompressed_shard_is_a_view(c):
    run = fme.open_run(c.run)
    arr = run["blocks.10.attn.hook_z"]  # F16: numpy has the dtype, so no conversion
    first = len(np.concatenate([c.expected[s][0] for s in c.ids[0]]))
    view = arr[0:first - 1]
    assert not view.flags.owndata and not view.flags.writeable
    assert np.shares_memory(view, arr[0:first])


def test_sample_and_iter_samples(c):
    run = fme.open_run(c.run)
    order = [i for x in c.ids for i in x]
    for pos, sid in enumerate(order):
        tok, rows = run.sample(pos)
        assert np.array_equal(tok, c.expected[sid][0])
        for hook, _ in POINTS:
            assert np.array_equal(rows[hook], c.expected[sid][1][hook])
    assert np.array_equal(run.sample(-1)[0], c.expected[order[-1]][0])
    with pytest.raises(IndexError):
        run.sample(len(order))
    assert [s for s, _, _ in run.iter_samples()] == order


def test_version1_run_reads_by_hook_name(c):
    run = fme.open_run(c.run_v1)
    assert list(run.points) == [h for h, _ in V1_POINTS]
    for hook, _ in V1_POINTS:
        want = np.concatenate([c.expected_v1[s][1][hook] for x in c.ids[:2] for s in x])
        assert np.array_equal(np.asarray(run[hook]), want)
    # Version 1 stored every token: positions restart at 0 in each sample.
    pos = np.asarray(run.token_positions)
    lens = [len(c.expected_v1[s][0]) for x in c.ids[:2] for s in x]
    assert pos.tolist() == [p for n in lens for p in range(n)]


def test_missing_shard_is_an_error_at_open(c):
    run = c.fresh_copy("missing-shard")
    os.remove(os.path.join(run, "shard-00001.safetensors"))
    with pytest.raises(fme.RunError, match="shard-00001.safetensors.*missing"):
        fme.open_run(run)


def test_truncated_shard_is_an_error_at_open(c):
    run = c.fresh_copy("truncated-open")
    path = os.path.join(run, "shard-00000.safetensors")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 16)
    with pytest.raises(fme.RunError, match="shard-00000.safetensors.*manifest.json says"):
        fme.open_run(run)


def test_missing_manifest_and_wrong_sha256(c):
    with pytest.raises(fme.RunError, match="manifest.json: not found"):
        fme.open_run(os.path.join(c.tmp, "no-such-run"))
    run = c.fresh_copy("bad-sha")
    corrupt_byte(os.path.join(run, "shard-00001.safetensors"))
    r = fme.open_run(run)  # sizes still match: only the checksum can tell
    with pytest.raises(fme.RunError, match="shard-00001.safetensors: sha256 mismatch"):
        r.verify()


def test_shard_disagreeing_with_the_manifest_is_an_error_on_read(c):
    run = c.fresh_copy("wrong-count")
    path = os.path.join(run, "manifest.json")
    with open(path) as f:
        m = json.load(f)
    m["shards"][0]["tokens"] += 1
    with open(path, "w") as f:
        json.dump(m, f)
    r = fme.open_run(run)
    with pytest.raises(fme.RunError, match="shard-00000.safetensors: index tensors hold"):
        r.sample(0)


@pytest.mark.parametrize("name", ["../shard-00000.safetensors", "/tmp/shard.safetensors", "units//shard.safetensors",
                                  "units/.hidden/shard.safetensors", ""])
def test_shard_names_outside_the_run_are_refused(c, name):
    run = c.fresh_copy("escape-%d" % abs(hash(name)))
    path = os.path.join(run, "manifest.json")
    with open(path) as f:
        m = json.load(f)
    m["shards"][0]["file"] = name
    with open(path, "w") as f:
        json.dump(m, f)
    with pytest.raises(fme.RunError, match="bad shard file name"):
        fme.open_run(run)
