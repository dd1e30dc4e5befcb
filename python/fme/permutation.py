"""The shuffled stream's order: a keyed random permutation of range(n) that fme defines itself, computed for any
run of places without a table. permute(n, keys, a, b)[i] is the value at place a + i.

A Feistel network on the k bits of n - 1 (at least 2), walking the cycle until the value falls below n ("cycle
walking", Black and Rogaway, "Ciphers with arbitrary finite domains", 2002), which makes it a bijection of
range(n); as 2^k < 2n (for n > 2), a place takes fewer than two steps on average (one when n is a power of two). Round r
splits the value into its high bits H and its low bits L (k // 2 of them in even rounds, the other k - k // 2
in odd ones) and makes it L followed by H ^ F(L), F(L) = mix(L + key_r) masked to H's width, mix being
splitmix64's finaliser: an alternating unbalanced Feistel network of ROUNDS = 4 rounds, in which each part
of the value is twice the input of a round (Luby and Rackoff's construction takes four).

Why not numpy's Generator.permutation, which the stream used before: numpy does not promise the same draws
across its versions (NEP 19), so a state_dict could resume into another order after an upgrade and hand out
rows twice; it needs a table of n places per window (built and scattered: ~2 ms per GiB of 4 KiB rows here);
and it cannot be computed for one batch's places. This one depends on nothing but this file: fme._native's
permute (python/native/permute_bindings.cpp) computes the same values as the numpy code below, which runs
when the package has no native build (the tests check that they agree).
"""

import numpy as np

try:
    from ._native import permute as _native_permute
except ImportError:  # no build: numpy computes the same values
    _native_permute = None

ROUNDS = 4
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: splitmix64's increment


def _mix(z):
    """splitmix64's finaliser of uint64 arrays (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def round_keys(*words):
    """The ROUNDS round keys for a permutation named by non-negative integers below 2^64 (seed, epoch, ...)."""
    s = np.array([0x243F6A8885A308D3], dtype=np.uint64)  # pi's fraction: any fixed start
    for w in words:
        w = int(w)
        if not 0 <= w <= _MASK64:
            raise ValueError(f"permutation key words must be integers in [0, 2^64), got {w}")
        s = _mix((s ^ np.uint64(w)) + np.uint64(_GOLDEN))
    return tuple(int(_mix(s + np.uint64((r + 1) * _GOLDEN & _MASK64))[0]) for r in range(ROUNDS))


def value_bits(n):
    """k: the permutation's values have k bits (2^k >= n, k >= 2: with one bit a round could only be the identity)."""
    return max(2, (n - 1).bit_length())


def _feistel(x, k, keys, inverse):
    """One step of the network for uint64 values x of k bits."""
    low = (k // 2, k - k // 2)  # round r splits off low[r % 2] bits
    rounds = range(len(keys) - 1, -1, -1) if inverse else range(len(keys))
    for r in rounds:
        b = low[r % 2]
        a = k - b
        ma, key = np.uint64((1 << a) - 1), np.uint64(keys[r])
        if not inverse:  # (H, L) -> (L, H ^ F(L))
            lo = x & np.uint64((1 << b) - 1)
            x = (lo << np.uint64(a)) | ((x >> np.uint64(b)) ^ (_mix(lo + key) & ma))
        else:  # (L, G) -> (G ^ F(L), L)
            lo = x >> np.uint64(a)
            x = (((x & ma) ^ (_mix(lo + key) & ma)) << np.uint64(b)) | lo
    return x


def permute(n, keys, start, stop, inverse=False):
    """int64 [stop - start]: the permutation of range(n) keyed by `keys` (round_keys(...)) at places
    start..stop-1, or with inverse the place of each of those values."""
    n, start, stop = int(n), int(start), int(stop)
    if not 0 <= start <= stop <= n:
        raise ValueError(f"permute: places {start}..{stop} are not within range({n})")
    if len(keys) != ROUNDS:
        raise ValueError(f"permute: expected {ROUNDS} round keys, got {len(keys)}")
    if _native_permute is not None:
        return _native_permute(n, [int(k) for k in keys], start, stop, bool(inverse))
    k = value_bits(n)
    out = _feistel(np.arange(start, stop, dtype=np.uint64), k, keys, inverse)
    todo = np.flatnonzero(out >= np.uint64(n))
    while todo.size:  # a value past n walks on along its cycle, which returns below n
        y = _feistel(out[todo], k, keys, inverse)
        out[todo] = y
        todo = todo[y >= np.uint64(n)]
    return out.astype(np.int64)
