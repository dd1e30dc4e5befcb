"""fme.permutation, the shuffled stream's order: a bijection of range(n) for every n, its inverse undoing it,
any run of places equal to that part of the whole, fme._native's values equal to numpy's (so an order does not
depend on the install), and the statistics of a uniformly random permutation."""

import numpy as np
import pytest

import fme.permutation as P

SIZES = list(range(0, 70)) + [127, 128, 129, 1000, 4095, 4096, 4097, 65537, 131072, 131073, 300007]


@pytest.fixture(params=["native", "numpy"])
def permute(request, monkeypatch):
    if request.param == "native":
        if P._native_permute is None:
            pytest.fail("fme._native was not built into the installed package (build target fme_native)")
    else:
        monkeypatch.setattr(P, "_native_permute", None)
    return P.permute


@pytest.mark.parametrize("words", [(0,), (7, 3, 1, 4, 2), (2**64 - 1, 0)])
def test_a_bijection_that_its_inverse_undoes(permute, words):
    keys = P.round_keys(*words)
    for n in SIZES:
        p = permute(n, keys, 0, n)
        assert p.dtype == np.int64 and p.shape == (n,)
        assert np.array_equal(np.sort(p), np.arange(n)), n
        assert np.array_equal(permute(n, keys, 0, n, inverse=True)[p], np.arange(n)), n


def test_a_run_of_places_is_that_part_of_the_whole(permute):
    rng = np.random.default_rng(1)
    for n in (1, 2, 5, 1000, 65537):
        keys = P.round_keys(n)
        whole, inverse = permute(n, keys, 0, n), permute(n, keys, 0, n, inverse=True)
        for _ in range(20):
            a, b = sorted(rng.integers(0, n + 1, 2))
            assert np.array_equal(permute(n, keys, a, b), whole[a:b])
            assert np.array_equal(permute(n, keys, a, b, inverse=True), inverse[a:b])


def test_native_and_numpy_agree(monkeypatch):
    if P._native_permute is None:
        pytest.fail("fme._native was not built into the installed package (build target fme_native)")
    rng = np.random.default_rng(2)
    # Sizes up to 2^62 (values of 62 bits): only a few places of each, from anywhere.
    sizes = [int(x) for x in rng.integers(1, 2**20, 30)]
    sizes += [2**k + int(rng.integers(0, 2**k)) for k in (31, 32, 33, 47, 61)]
    for n in sizes:
        keys = P.round_keys(*[int(w) for w in rng.integers(0, 2**63, 3)])
        a = int(rng.integers(0, n))
        b = min(n, a + 3000)
        for inverse in (False, True):
            native = P.permute(n, keys, a, b, inverse)
            with monkeypatch.context() as m:
                m.setattr(P, "_native_permute", None)
                numpy = P.permute(n, keys, a, b, inverse)
            assert np.array_equal(native, numpy), (n, a, inverse)
            assert ((native >= 0) & (native < n)).all()


def test_where_a_place_goes_is_uniform(permute):
    """Over 4000 keys, each place of range(8) takes each value 1/8 of the time, as a uniformly random
    permutation's would (500 +- 22 each: a bound of 5 standard deviations), and two places' values are in
    either order half the time."""
    n, keys = 8, 4000
    counts = np.zeros((n, n), dtype=np.int64)
    before = 0
    for s in range(keys):
        p = permute(n, P.round_keys(11, s), 0, n)
        counts[np.arange(n), p] += 1
        before += p[0] < p[1]
    sd = np.sqrt(keys * (1 / n) * (1 - 1 / n))
    assert np.abs(counts - keys / n).max() < 5 * sd, counts
    assert abs(before - keys / 2) < 5 * np.sqrt(keys / 4), before


def test_neighbouring_places_are_unrelated(permute):
    """For a uniformly random permutation of range(n), the values at places u and u + 1 are uncorrelated, their
    mean distance is (n + 1) / 3, and about one value stays in place."""
    n = 300007
    p = permute(n, P.round_keys(5), 0, n).astype(np.float64)
    assert abs(np.corrcoef(p[:-1], p[1:])[0, 1]) < 0.01
    assert abs(np.abs(np.diff(p)).mean() / ((n + 1) / 3) - 1) < 0.01
    # Fixed points: Poisson(1) over keys; 40 keys average 1 +- 0.16.
    fixed = [int((permute(1000, P.round_keys(6, s), 0, 1000) == np.arange(1000)).sum()) for s in range(40)]
    assert 0.4 < np.mean(fixed) < 1.6, fixed
    # A batch's worth of neighbouring places takes values from all over: each sixteenth of the range gets
    # at least 70% of its share of the first 4096 places (a share is 256 +- 15).
    block = p[:4096]
    assert np.histogram(block, bins=16, range=(0, n))[0].min() > 4096 / 16 * 0.7


def test_places_one_bit_apart_are_unrelated(permute):
    """A Feistel network of too few rounds shows itself in pairs of places that differ in one bit: the XOR of
    their values repeats (two rounds: always 256 of them, three rounds fewer than 5900 distinct). For a
    uniformly random permutation of range(2^16), 8192 such pairs give ~7700 distinct XORs (2^16 (1 - e^-1/8)),
    none more than a few times."""
    n = 1 << 16
    p = permute(n, P.round_keys(9), 0, n)
    for d in (1, 1 << 7, 1 << 8, 1 << 12, 1 << 15):
        u = np.arange(n)
        u = u[(u & d) == 0][:8192]
        _, counts = np.unique(p[u] ^ p[u ^ d], return_counts=True)
        assert counts.size > 7400 and counts.max() <= 8, (d, counts.size, counts.max())


def test_keys_name_different_orders():
    assert len(set(P.round_keys(0, e) for e in range(100))) == 100
    assert P.round_keys(1, 2) != P.round_keys(2, 1) and P.round_keys(1) != P.round_keys(1, 0)
    with pytest.raises(ValueError, match="2\\^64"):
        P.round_keys(-1)
    with pytest.raises(ValueError, match="2\\^64"):
        P.round_keys(2**64)


def test_bad_places_are_refused(permute):
    keys = P.round_keys(0)
    with pytest.raises(ValueError, match="not within range"):
        permute(10, keys, 3, 11)
    with pytest.raises(ValueError, match="not within range"):
        permute(10, keys, 5, 4)
    with pytest.raises(ValueError, match="round keys"):
        permute(10, keys[:2], 0, 10)
