#!/usr/bin/python3
"""Independent reference of the counter RNG defined in src/fill/counter_rng.h, written from that comment alone
(plain Python integers and numpy float32; every fused multiply-add rounded once, exactly, through fractions;
AES-128 from the openssl command line tool).
Prints the pins used by tests/fill/test_counter_rng.cpp (PinnedValuesFromReference):
    /usr/bin/python3 tests/fill/counter_rng_reference.py
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


LOG_OFF = 0x3F330000


def bits_f32(b):
    return np.array([b], dtype=np.uint32).view(np.float32)[0]


def log_table():
    """The kernel's 32-entry table: for each interval of z, float(1/c) at its centre c (c = 1 for the interval
    holding 1) and float(-ln(that inverse))."""
    inv, logc = [], []
    for i in range(32):
        lo, hi = float(bits_f32(LOG_OFF + i * 2**18)), float(bits_f32(LOG_OFF + (i + 1) * 2**18))
        c = 1.0 if lo <= 1.0 < hi else (lo + hi) / 2
        ic = f32(1.0 / c)
        inv.append(ic)
        logc.append(f32(-np.log(np.float64(ic))) + f32(0))  # + 0: -0.0 becomes 0.0
    return inv, logc


LOG_INV, LOG_C = log_table()


def log_unit(u):
    ix = int(f32(u).view(np.uint32))
    tmp = (ix - LOG_OFF) & 0xFFFFFFFF
    i = (tmp >> 18) & 31
    k = f32((tmp - (1 << 32) if tmp >> 31 else tmp) >> 23)  # arithmetic shift of the int32
    z = bits_f32((ix - (tmp & 0xFF800000)) & 0xFFFFFFFF)
    r = fma(z, LOG_INV[i], f32(-1.0))
    r2 = f32(r * r)
    p = fma(f32(-0.25), r, f32(0.333333343))
    p = fma(p, r, f32(-0.5))
    p = f32(p * r2)
    t = f32(f32(LOG_C[i] + r) + p)
    return fma(k, f32(0.693359375), fma(k, f32(-2.12194440e-4), t))


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
    r = np.sqrt(f32(f32(-2.0) * log_unit(u)), dtype=np.float32)
    c, s = sincos_turn24(xt >> 8)
    z = f32(r * (c if j < 16 else s))
    return fma(z, f32(std), f32(mean))


if __name__ == "__main__":
    print("table:", ", ".join("%.9g" % x for x in LOG_INV), "|", ", ".join("%.9g" % x for x in LOG_C))
    key = stream_key(42, "model.layers.0.mlp.up_proj.weight")
    es = [0, 1, 2, 3, 4, 5, 6, 7, 15, 16, 31, 32, 63, 64, 1000003, 8589934594, 1099511627777, 2305843009213693951]
    print(", ".join("{%dULL, 0x%08xu}" % (e, int(normal_at(key, e).view(np.uint32))) for e in es))
    ks = [1, 2, 3, 1000, 12345678, 1 << 23, (1 << 23) + 1, 16318464, (1 << 24) - 1]
    print("log_unit(k * 2^-24):", ", ".join("{%du, 0x%08xu}" % (k, int(log_unit(f32(k * 2.0**-24)).view(np.uint32))) for k in ks))
    print("with mean 0.5, std 0.1:", ", ".join("{%dULL, 0x%08xu}" % (e, int(normal_at(key, e, 0.5, 0.1).view(np.uint32))) for e in es[:4]))
