#!/usr/bin/python3
"""Independent reference of the counter RNG defined in src/util/counter_rng.h, written from that comment alone
(plain Python integers and numpy float32; every fused multiply-add rounded once, exactly, through fractions;
AES-128 from the openssl command line tool).
Prints the pins used by tests/util/test_counter_rng.cpp (PinnedValuesFromReference):
    /usr/bin/python3 tests/util/counter_rng_reference.py
"""
import subprocess
from fractions import Fraction

import numpy as np

M64 = (1 << 64) - 1
f32 = np.float32


def splitmix_mix(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def stream_key(seed, path):
    h = 0xCBF29CE484222325
    for c in path.encode():
        h = ((h ^ c) * 0x100000001B3) & M64
    return splitmix_mix(splitmix_mix(seed) ^ h)


def aes_ctr_block(key, b):
    """Block b of the stream: AES-128 of LE64(b) || 0^64 under LE64(key) || LE64(mix(key)), as 4 LE uint32."""
    k = key.to_bytes(8, "little") + splitmix_mix(key).to_bytes(8, "little")
    out = subprocess.run(["openssl", "enc", "-aes-128-ecb", "-nopad", "-K", k.hex()],
                         input=b.to_bytes(8, "little") + bytes(8), capture_output=True, check=True).stdout
    return [int.from_bytes(out[4 * w:4 * w + 4], "little") for w in range(4)]


def round_f32(x):
    """Fraction -> nearest float32, ties to even, with one rounding."""
    d = float(x)  # correctly rounded to binary64
    r = f32(d)
    if Fraction(float(r)) == x:
        return r
    # A binary64 value sitting exactly between two float32 neighbours may hide which side x is on.
    lo = np.nextafter(r, f32(-np.inf)) if Fraction(float(r)) > x else r
    hi = np.nextafter(lo, f32(np.inf))
    mid = (Fraction(float(lo)) + Fraction(float(hi))) / 2
    if x < mid:
        return lo
    if x > mid:
        return hi
    return lo if (int(lo.view(np.uint32)) & 1) == 0 else hi


def fma(a, b, c):
    return round_f32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))


LOG_P = [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
         -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1]


def log_cephes(u):
    bits = int(f32(u).view(np.uint32))
    e = f32((bits >> 23) - 126)
    m = np.array([(bits & 0x7FFFFF) | 0x3F000000], dtype=np.uint32).view(np.float32)[0]
    if m < f32(0.70710678118654752440):
        m = f32(m + m)
        e = f32(e - f32(1))
    t = f32(m - f32(1))
    z = f32(t * t)
    y = f32(LOG_P[0])
    for p in LOG_P[1:]:
        y = fma(y, t, f32(p))
    y = f32(f32(y * t) * z)
    y = fma(e, f32(-2.12194440e-4), y)
    y = fma(f32(-0.5), z, y)
    l = f32(t + y)
    return fma(e, f32(0.693359375), l)


def sincos_turn24(t):
    s = (t + (1 << 21)) & 0xFFFFFF
    k = s >> 22
    twice_rem = 2 * (s & 0x3FFFFF) + 1 - (1 << 22)
    phi = f32(f32(twice_rem) * f32(1.8725351414619643e-7))
    z = f32(phi * phi)
    sp = fma(f32(-1.9515295891e-4), z, f32(8.3321608736e-3))
    sp = fma(sp, z, f32(-1.6666654611e-1))
    sp = fma(f32(sp * z), phi, phi)
    cp = fma(f32(2.443315711809948e-5), z, f32(-1.388731625493765e-3))
    cp = fma(cp, z, f32(4.166664568298827e-2))
    cp = fma(fma(cp, z, f32(-0.5)), z, f32(1.0))
    c, sn = (sp, cp) if k & 1 else (cp, sp)
    if k in (1, 2):
        c = -c
    if k in (2, 3):
        sn = -sn
    return c, sn


def normal_at(key, e, mean=0.0, std=1.0):
    g, j = e >> 5, e & 31
    p = j & 15
    b = 8 * g + (p & 7)
    x = aes_ctr_block(key, b)
    xu, xt = (x[0], x[1]) if p < 8 else (x[2], x[3])
    u = f32(f32((xu >> 8) + 1) * f32(2.0**-24))
    r = np.sqrt(f32(f32(-2.0) * log_cephes(u)), dtype=np.float32)
    c, s = sincos_turn24(xt >> 8)
    z = f32(r * (c if j < 16 else s))
    return fma(z, f32(std), f32(mean))


if __name__ == "__main__":
    key = stream_key(42, "model.layers.0.mlp.up_proj.weight")
    es = [0, 1, 2, 3, 4, 5, 6, 7, 15, 16, 31, 32, 63, 64, 1000003, 8589934594, 1099511627777, 2305843009213693951]
    print(", ".join("{%dULL, 0x%08xu}" % (e, int(normal_at(key, e).view(np.uint32))) for e in es))
    print("with mean 0.5, std 0.1:", ", ".join("{%dULL, 0x%08xu}" % (e, int(normal_at(key, e, 0.5, 0.1).view(np.uint32))) for e in es[:4]))
