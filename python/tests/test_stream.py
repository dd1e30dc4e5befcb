"""run.batches: every kept row exactly once per epoch over any number of ranks, shuffled, exact resume from
state_dict, drop_last, exclusion of BOS / special-token rows, bounded memory. On real runs of `fme extract`."""

import json
import os
import shutil
import tracemalloc

import numpy as np
import pytest

import fme
from conftest import read_jsonl, run_fme

POINT = "blocks.0.hook_resid_post"


def collect(stream):
    rows, index = [], []
    for b, i in stream:
        rows.append(np.array(b))
        index.append(i)
    return (np.concatenate(rows), np.concatenate(index)) if rows else (None, np.zeros(0, np.int64))


@pytest.mark.parametrize("world_size", [1, 3])
@pytest.mark.parametrize("shuffle", [True, False])
def test_every_row_exactly_once_over_ranks(run_fp32, world_size, shuffle):
    run = fme.open_run(run_fp32)
    assert run.num_shards >= 3, "the fixture must span several shards"
    full = np.asarray(run[POINT])
    seen = []
    counts = []
    for rank in range(world_size):
        s = run.batches(POINT, batch_tokens=64, shuffle=shuffle, seed=7, buffer_tokens=300, rank=rank,
                        world_size=world_size, exclude=(), return_index=True)
        rows, index = collect(s)
        assert np.array_equal(rows, full[index]), "each row must be the stored row it says it is"
        seen.append(index)
        counts.append(index.shape[0])
    allidx = np.concatenate(seen)
    assert np.array_equal(np.sort(allidx), np.arange(run.num_rows)), "ranks together: every row once"
    assert max(counts) - min(counts) <= 1, counts
    if shuffle:
        assert not np.array_equal(seen[0], np.sort(seen[0])), "shuffled order must not be storage order"
    else:
        assert np.array_equal(allidx, np.arange(run.num_rows)), "unshuffled: storage order"


def test_shuffle_is_seeded_and_changes_per_epoch(run_fp32):
    run = fme.open_run(run_fp32)
    a = run.batches(POINT, batch_tokens=50, seed=1, buffer_tokens=400, exclude=(), return_index=True)
    e0 = collect(a)[1]
    e1 = collect(a)[1]  # iterating again: the next epoch
    b0 = collect(run.batches(POINT, batch_tokens=50, seed=1, buffer_tokens=400, exclude=(), return_index=True))[1]
    c0 = collect(run.batches(POINT, batch_tokens=50, seed=2, buffer_tokens=400, exclude=(), return_index=True))[1]
    assert np.array_equal(e0, b0), "same seed, same order"
    assert not np.array_equal(e0, c0) and not np.array_equal(e0, e1)
    assert np.array_equal(np.sort(e1), np.arange(run.num_rows))
    # Rows of several shards meet within the first window (buffer 400 rows, chunks of 6).
    starts = np.cumsum([0] + [s.rows for s in run._shards])
    first_window_shards = np.unique(np.searchsorted(starts, e0[:400], side="right"))
    assert first_window_shards.size >= 3, first_window_shards


@pytest.mark.parametrize("stop_after", [0, 1, 5, 9])
def test_resume_from_state_dict_gives_the_rest_of_the_epoch(run_fp32, stop_after):
    opts = dict(batch_tokens=40, seed=3, buffer_tokens=150, exclude=(), return_index=True)
    run = fme.open_run(run_fp32)
    whole = list(run.batches(POINT, **opts))
    s = run.batches(POINT, **opts)
    for _ in range(stop_after):
        next(s)
    state = json.loads(json.dumps(s.state_dict()))  # survives a JSON checkpoint
    r = fme.open_run(run_fp32).batches(POINT, **opts)
    r.load_state_dict(state)
    rest = list(r)
    assert len(rest) == len(whole) - stop_after
    for (b, i), (wb, wi) in zip(rest, whole[stop_after:]):
        assert np.array_equal(i, wi) and np.array_equal(b, wb)
    # And the next epoch continues as the uninterrupted stream's would.
    s2 = run.batches(POINT, **opts)
    list(s2)
    assert np.array_equal(next(r)[1], next(s2)[1])


def test_resume_with_other_settings_is_refused(run_fp32):
    run = fme.open_run(run_fp32)
    state = run.batches(POINT, batch_tokens=40, seed=3, exclude=()).state_dict()
    with pytest.raises(ValueError, match="seed: state 3, stream 4"):
        run.batches(POINT, batch_tokens=40, seed=4, exclude=()).load_state_dict(state)
    with pytest.raises(ValueError, match="expected a dict"):
        run.batches(POINT, exclude=()).load_state_dict({"epoch": 0})


def test_a_state_from_the_older_order_is_refused(run_fp32):
    """States taken before the order was fme's own (numpy's permutation, order 1: no "order" in its settings)
    would resume into other rows: refused, naming the difference."""
    run = fme.open_run(run_fp32)
    state = run.batches(POINT, batch_tokens=40, seed=3, exclude=()).state_dict()
    del state["settings"]["order"]
    with pytest.raises(ValueError, match="order: state None, stream 2"):
        run.batches(POINT, batch_tokens=40, seed=3, exclude=()).load_state_dict(state)


@pytest.mark.parametrize("fixture", ["run_fp32", "run_bf16_zstd"])
def test_the_order_is_the_same_without_the_native_module(request, monkeypatch, fixture):
    """A seed gives the same rows in the same order whether fme._native computes the permutation and copies the
    rows or numpy does (an install without a build): a state_dict resumes the same across installs."""
    import fme.gather
    import fme.permutation

    run = fme.open_run(request.getfixturevalue(fixture))
    opts = dict(batch_tokens=48, seed=5, buffer_tokens=320, rank=1, world_size=2, return_index=True)
    native = collect(run.batches(POINT, **opts))
    monkeypatch.setattr(fme.permutation, "_native_permute", None)
    monkeypatch.setattr(fme.gather, "_native_gather", None)
    numpy = collect(run.batches(POINT, **opts))
    assert native[1].shape[0] > 0
    assert np.array_equal(native[1], numpy[1]) and np.array_equal(native[0], numpy[0])


def test_drop_last_gives_every_rank_the_same_full_batches(run_fp32):
    run = fme.open_run(run_fp32)
    lengths = []
    for rank in range(3):
        s = run.batches(POINT, batch_tokens=70, seed=0, drop_last=True, rank=rank, world_size=3, exclude=())
        batches = list(s)
        assert all(b.shape[0] == 70 for b in batches)
        assert len(s) == len(batches)
        lengths.append(len(batches))
    assert len(set(lengths)) == 1 and lengths[0] == run.num_rows // 3 // 70


def test_batches_have_the_points_row_shape(run_fp32):
    run = fme.open_run(run_fp32)
    z = "blocks.1.attn.hook_z"
    b, i = next(iter(run.batches(z, batch_tokens=32, exclude=(), return_index=True)))
    assert b.shape == (32,) + run.points[z].row_shape and b.dtype == np.float32
    assert np.array_equal(b, run[z][i])


def test_bf16_zstd_run_streams_float32_or_raw_bits(run_bf16_zstd):
    run = fme.open_run(run_bf16_zstd)
    assert run.points[POINT].dtype == "BF16" and run._shards[0].path.endswith(".zst")
    full = np.asarray(run[POINT])
    rows, index = collect(run.batches(POINT, batch_tokens=64, buffer_tokens=256, exclude=(), return_index=True))
    assert rows.dtype == np.float32 and np.array_equal(rows, full[index])
    raw = next(iter(run.batches(POINT, batch_tokens=64, buffer_tokens=256, exclude=(), raw=True)))
    assert raw.dtype == np.uint16
    assert np.array_equal((raw.astype(np.uint32) << 16).view(np.float32), rows[:64])


def test_memory_is_bounded_by_the_buffer(run_fp32):
    run = fme.open_run(run_fp32)
    row_bytes = 4 * run.points[POINT].row_shape[0]
    buffer = 2048
    s = run.batches(POINT, batch_tokens=32, buffer_tokens=buffer, exclude=())
    tracemalloc.start()
    for _ in s:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert run.num_rows > 8 * buffer, "the run must be much larger than the buffer"
    # The buffer (two windows of buffer/2 rows), a batch, and the plan: ~40 bytes per chunk of buffer/128 rows.
    plan = 64 * s._c_kept.shape[0]
    assert peak < buffer * (row_bytes + 16) + plan + 256 * 1024, (peak, buffer * row_bytes, plan)


def test_bad_arguments(run_fp32):
    run = fme.open_run(run_fp32)
    for kwargs, msg in (({"batch_tokens": 0}, "batch_tokens"), ({"rank": 2, "world_size": 2}, "rank 2"),
                        ({"exclude": ("eos",)}, "unknown"), ({"buffer_tokens": 1.5}, "buffer_tokens"),
                        ({"seed": -1}, "seed must be an integer >= 0"), ({"seed": 2**64}, "seed must be below 2\\^64")):
        with pytest.raises(ValueError, match=msg):
            run.batches(POINT, **kwargs)
    with pytest.raises(KeyError, match="blocks.3.hook_mlp_out"):
        run.batches("blocks.3.hook_mlp_out")


# ---- leaving rows out ---------------------------------------------------------------------------------

def special_ids(model_dir):
    """Special tokens from tokenizer.json itself (not from fme's C++ side)."""
    with open(os.path.join(model_dir, "tokenizer.json")) as f:
        return {a["id"] for a in json.load(f)["added_tokens"] if a.get("special")}


def test_exclude_special_leaves_out_exactly_the_special_rows(tmp_path_factory, tiny_model, shared_data):
    out = tmp_path_factory.mktemp("arc") / "run"
    run_fme("extract", "--model", tiny_model, "--dataset", os.path.join(shared_data, "arc-agi", "evaluation"),
            "--max-samples", "3", "--hooks", POINT, "--out-dtype", "fp32", "--shard-size", "300000", "--quiet",
            "--out", out, "--threads", "1")
    run = fme.open_run(out)
    tok = np.asarray(run.token_ids)
    special = special_ids(tiny_model)
    want = np.flatnonzero(~np.isin(tok, list(special)))
    assert 0 < want.size < tok.size, "ARC chat prompts hold special tokens"
    for world in (1, 2):
        got = np.concatenate([collect(run.batches(POINT, batch_tokens=100, exclude=("special",), rank=r,
                                                  world_size=world, return_index=True))[1] for r in range(world)])
        assert np.array_equal(np.sort(got), want)


def test_exclude_bos_leaves_out_a_leading_bos_only(tmp_path_factory, tiny_model):
    d = tmp_path_factory.mktemp("bos")
    model = d / "model"  # the tiny model, declaring a BOS token in config.json
    shutil.copytree(tiny_model, model)
    with open(model / "config.json") as f:
        config = json.load(f)
    bos = config["bos_token_id"] = 151643
    (model / "config.json").write_text(json.dumps(config))
    data = d / "ids.jsonl"
    docs = [[bos, 5, 6, 7], [8, bos, 9], [bos, bos, 10], [11, 12]]
    data.write_text("".join(json.dumps({"input_ids": x}) + "\n" for x in docs))
    run_fme("extract", "--model", model, "--dataset", data, "--format", "tokens-jsonl", "--hooks", POINT,
            "--out", d / "run", "--quiet", "--threads", "1")
    run = fme.open_run(d / "run")
    assert run.bos_token_id() == bos
    got = np.sort(collect(run.batches(POINT, batch_tokens=3, exclude=("bos",), return_index=True))[1])
    flat = [(i, p) for i, x in enumerate(docs) for p in range(len(x))]
    want = [r for r, (i, p) in enumerate(flat) if not (p == 0 and docs[i][0] == bos)]
    assert got.tolist() == want
    assert len(read_jsonl(os.path.join(d, "run", "samples.jsonl"))) == len(docs)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_held_by_the_caller_stay_intact(run_fp32, monkeypatch, native, shuffle):
    """Batch arrays are reused only once nothing holds them: a caller keeping every batch sees each one as it
    was handed out. Also with numpy's copy in place of fme._native's."""
    import fme.gather
    if not native:
        monkeypatch.setattr(fme.gather, "_native_gather", None)
    run = fme.open_run(run_fp32)
    full = np.asarray(run[POINT])
    held = list(run.batches(POINT, batch_tokens=50, shuffle=shuffle, buffer_tokens=300, exclude=(), return_index=True))
    index = np.concatenate([i for _, i in held])
    assert np.array_equal(np.sort(index), np.arange(run.num_rows))
    for b, i in held:
        assert np.array_equal(b, full[i])
    views = [b[:3] for b in run.batches(POINT, batch_tokens=50, shuffle=shuffle, buffer_tokens=300, exclude=())]
    first = [b[:3] for b in run.batches(POINT, batch_tokens=50, shuffle=shuffle, buffer_tokens=300, exclude=())]
    assert all(np.array_equal(u, v) for u, v in zip(views, first)) and len(views) == len(held)


def test_bf16_uncompressed_run_streams_float32(tmp_path_factory, tiny_model):
    from conftest import make_run
    run = fme.open_run(make_run(tmp_path_factory, tiny_model, "bf16"))
    assert run.points[POINT].dtype == "BF16" and not run._shards[0].path.endswith(".zst")
    full = np.asarray(run[POINT])
    for shuffle in (True, False):
        rows, index = collect(run.batches(POINT, batch_tokens=64, buffer_tokens=256, shuffle=shuffle, exclude=(),
                                          return_index=True))
        assert rows.dtype == np.float32 and np.array_equal(rows, full[index])
        assert np.array_equal(np.sort(index), np.arange(run.num_rows))
