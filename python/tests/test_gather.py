"""gather_rows, the copy behind every batch of run.batches: fme._native's kernel and the numpy fallback both
equal numpy's own indexing, for float32 rows and for BF16 rows widened to float32, and refuse bad indices
before writing anything."""

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
        g(src + [np.zeros((2, 5), np.float32)], np.zeros(2, np.int32), np.zeros(2, np.int64), np.empty((2, 3), np.float32))
