"""gather_rows: out[i] = sources[which[i]][rows[i]], the copy behind every batch the activation stream hands out.

fme._native's version (python/native/gather_bindings.cpp) copies six rows at once, the next six prefetched, on
every core: a shuffled batch of 4 KiB rows then copies at about the speed of numpy's sequential copy
(bench/python/bench_stream.py).
Without the native module (a package installed without a build) numpy does the same copy, correctly but at about
half the speed.
"""

import numpy as np

try:
    from ._native import gather_rows as _native_gather
except ImportError:  # no build: numpy's take
    _native_gather = None


def gather_rows(sources, which, rows, out, widen=False, threads=0, order=None):
    """Fills out [n, ...] with rows[i] of sources[which[i]] (C-contiguous arrays with rows of one size); with
    widen, BF16 rows stored as uint16 become float32 bits in a uint32 `out`. which: int32 [n], rows: int64 [n].
    order (int64 [n], optional): entries of the (which, rows) table in the order out takes them, out[i] the row
    of entry order[i]. threads: 0 for up to one per core (native only). Returns out."""
    if _native_gather is not None:
        _native_gather(sources, which, rows, out, widen, threads, order)
        return out
    if order is not None:
        order = np.asarray(order, dtype=np.int64)
        bad = (order < 0) | (order >= len(rows))
        if bad.any():
            raise IndexError(f"gather_rows: order {int(order[bad][0])} is outside the table's {len(rows)} entries")
        which, rows = which[order], rows[order]
    bad = (which < 0) | (which >= len(sources))
    if not bad.any():
        lengths = np.array([len(x) for x in sources], dtype=np.int64)
        bad = (rows < 0) | (rows >= lengths[which])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise IndexError(f"gather_rows: row {int(rows[i])} of source {int(which[i])} is out of range")
    for j, src in enumerate(sources):
        mask = which == j
        if not mask.any():
            continue
        x = np.take(src, rows[mask], axis=0)
        out[mask] = np.left_shift(x, 16, dtype=np.uint32) if widen else x
    return out
