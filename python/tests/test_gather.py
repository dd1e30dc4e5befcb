"""gather_rows, the copy behind every batch of run.batches: fme._native's kernel and the numpy fallback both
equal numpy's own indexing, for float32 rows and for BF16 rows widened to float32, and refuse bad indices
before writing anything."""

import os

import numpy as np
import pytest

import fme.gather


@pytest.fixture(params=["native", "numpy"])
def gather(request, monkeypatch):
    if request.param == "native":
        if fme.gather._native_gather is None:
            pytest.fail("fme._native was not built into the installed package (build target fme_native)")
    else:
        monkeypatch.setattr(fme.gather, "_native_gather", None)
    return fme.gather.gather_rows


def sources_and_picks(rng, dtype, shape=(33, 5, 7), n=1000):
    """Four sources of different lengths (one empty) and n random (source, row) picks, repeats included."""
    lengths = [shape[0], 1, 0, 3 * shape[0]]
    if dtype == np.uint16:
        src = [rng.integers(0, 2**16, (m,) + shape[1:], dtype=np.uint16) for m in lengths]
    else:
        src = [rng.standard_normal((m,) + shape[1:]).astype(dtype) for m in lengths]
    which = rng.choice([0, 1, 3], n).astype(np.int32)
    rows = np.array([rng.integers(0, lengths[w]) for w in which], dtype=np.int64)
    return src, which, rows


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.uint16])
@pytest.mark.parametrize("threads", [0, 1, 3])
def test_rows_land_where_numpy_indexing_puts_them(gather, dtype, threads):
    rng = np.random.default_rng(5)
    src, which, rows = sources_and_picks(rng, dtype, n=20000)  # 20000 x 70 x 4 bytes: several threads' worth
    want = np.stack([src[w][r] for w, r in zip(which, rows)])
    out = np.empty_like(want)
    assert gather(src, which, rows, out, False, threads) is out
    assert np.array_equal(out, want)


def test_bf16_rows_widen_to_float32(gather):
    rng = np.random.default_rng(6)
    src, which, rows = sources_and_picks(rng, np.uint16)
    out = np.empty((which.shape[0], 5, 7), dtype=np.uint32)
    gather(src, which, rows, out, True)
    want = np.stack([src[w][r] for w, r in zip(which, rows)]).astype(np.uint32) << 16
    assert np.array_equal(out, want)


def assert_gathers_like_indexing(gather, src, which, rows, widen, threads):
    want = np.stack([src[w][r] for w, r in zip(which, rows)])
    if widen:
        want = want.astype(np.uint32) << 16
    out = np.zeros_like(want)
    gather(src, which, rows, out, widen, threads)
    assert np.array_equal(out, want)


@pytest.mark.parametrize("row_elems", [1, 32, 65, 1024, 2051])
@pytest.mark.parametrize("widen", [False, True])
@pytest.mark.parametrize("n,threads", [(1, 0), (6, 1), (4097, 3)])
def test_row_sizes_around_a_cache_line_and_ragged_counts(gather, row_elems, widen, n, threads):
    """Rows are copied several at a time, a 64-byte line of each in turn: rows shorter than a line, whole
    lines, a line and a bit, 2 KiB or 4 KiB, and counts that leave a part-group at each thread's end."""
    rng = np.random.default_rng(row_elems * 10 + n)
    dtype = np.uint16 if widen else np.float32
    src = [rng.integers(0, 2**16, (m, row_elems)).astype(dtype) for m in (50, 7)]
    which = rng.integers(0, 2, n).astype(np.int32)
    rows = np.array([rng.integers(0, src[w].shape[0]) for w in which], dtype=np.int64)
    assert_gathers_like_indexing(gather, src, which, rows, widen, threads)


@pytest.mark.parametrize("widen", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_runs_of_consecutive_rows_mixed_with_scattered_ones(gather, widen, threads):
    """Consecutive rows of one source are copied as one block: runs of 1 to 40 rows (some ending on repeats of
    a source's last row) in random sources and places."""
    rng = np.random.default_rng(11)
    dtype = np.uint16 if widen else np.float32
    src = [rng.integers(0, 2**16, (m, 300)).astype(dtype) for m in (200, 90)]
    which, rows = [], []
    while len(rows) < 30000:
        w, n = int(rng.integers(0, 2)), int(rng.integers(1, 41))
        r0 = int(rng.integers(0, src[w].shape[0]))
        which += [w] * n
        rows += [min(r0 + t, src[w].shape[0] - 1) for t in range(n)]
    which, rows = np.array(which, np.int32), np.array(rows, np.int64)
    assert_gathers_like_indexing(gather, src, which, rows, widen, threads)


@pytest.mark.parametrize("widen", [False, True])
def test_an_order_takes_the_tables_entries_in_its_order(gather, widen):
    """With order, out[i] is the row of table entry order[i]: a batch's share of a window's table, repeats and
    all, in any order (as the shuffled stream passes them)."""
    rng = np.random.default_rng(12)
    src, which, rows = sources_and_picks(rng, np.uint16 if widen else np.float32, n=3000)
    order = rng.integers(0, 3000, 5000).astype(np.int64)
    want = np.stack([src[w][r] for w, r in zip(which[order], rows[order])])
    if widen:
        want = want.astype(np.uint32) << 16
    out = np.zeros_like(want)
    gather(src, which, rows, out, widen, 0, order)
    assert np.array_equal(out, want)


@pytest.mark.parametrize("bad", [-1, 3])
def test_an_order_outside_the_table_is_refused_before_any_copy(gather, bad):
    src = [np.arange(12, dtype=np.float32).reshape(4, 3)]
    out = np.full((2, 3), -7, np.float32)
    with pytest.raises(IndexError, match="order"):
        gather(src, np.zeros(3, np.int32), np.array([1, 2, 3], np.int64), out, False, 0,
               np.array([0, bad], np.int64))
    assert (out == -7).all(), "nothing may be written before the order is checked"


def test_empty_pick_copies_nothing(gather):
    src = [np.ones((4, 3), np.float32)]
    out = np.empty((0, 3), np.float32)
    gather(src, np.zeros(0, np.int32), np.zeros(0, np.int64), out)


@pytest.mark.parametrize("which,row", [(0, 4), (0, -1), (1, 0), (-1, 0)])
def test_an_index_out_of_range_is_refused_before_any_copy(gather, which, row):
    src = [np.arange(12, dtype=np.float32).reshape(4, 3)]
    out = np.full((3, 3), -7, np.float32)
    with pytest.raises(IndexError):
        gather(src, np.array([0, which, 0], np.int32), np.array([1, row, 2], np.int64), out)
    if fme.gather._native_gather is not None:
        assert (out == -7).all(), "nothing may be written before the indices are checked"


def test_native_refuses_mismatched_arrays():
    if fme.gather._native_gather is None:
        pytest.fail("fme._native was not built into the installed package (build target fme_native)")
    g = fme.gather._native_gather
    src = [np.zeros((4, 3), np.float32)]
    with pytest.raises(ValueError, match="out's rows"):
        g(src, np.zeros(2, np.int32), np.zeros(2, np.int64), np.empty((2, 4), np.float32))
    with pytest.raises(ValueError, match="2 rows"):
        g(src, np.zeros(2, np.int32), np.zeros(2, np.int64), np.empty((3, 3), np.float32))
    with pytest.raises(ValueError, match="same length"):
        g(src, np.zeros(3, np.int32), np.zeros(2, np.int64), np.empty((2, 3), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        g([np.zeros((3, 4), np.float32).T], np.zeros(2, np.int32), np.zeros(2, np.int64), np.empty((2, 3), np.float32))
    with pytest.raises(ValueError, match="differ in size"):
        g(src + [np.zeros((2, 5), np.float32)], np.zeros(2, np.int32), np.zeros(2, np.int64),
          np.empty((2, 3), np.float32))


def _gather_in_child(queue):
    """Puts (rows right, threads this process gained in the copy)."""
    rng = np.random.default_rng(3)
    src, which, rows = sources_and_picks(rng, np.float32, shape=(64, 1024), n=2048)  # 8 MiB: every core
    out = np.empty((2048, 1024), np.float32)
    before = len(os.listdir("/proc/self/task"))
    fme.gather.gather_rows(src, which, rows, out)
    gained = len(os.listdir("/proc/self/task")) - before
    queue.put((bool(np.array_equal(out, np.stack([src[w][r] for w, r in zip(which, rows)]))), gained))


def test_native_workers_are_made_again_in_a_forked_child():
    """The native copy's worker threads are not inherited by fork() (a torch DataLoader's workers): a child
    forked after the parent used them copies with workers of its own, not waiting on the parent's."""
    import multiprocessing

    if fme.gather._native_gather is None:
        pytest.fail("fme._native was not built into the installed package (build target fme_native)")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    _gather_in_child(queue)  # the parent's pool is up
    assert queue.get(timeout=60)[0]
    child = ctx.Process(target=_gather_in_child, args=(queue,))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in gather_rows")
    assert child.exitcode == 0
    right, gained = queue.get(timeout=5)
    assert right
    if (os.cpu_count() or 1) > 1:
        assert gained >= 1, "the child copied without workers of its own"
