#!/usr/bin/env python3
"""run.batches throughput from the page cache, against a plain numpy.memmap sweep of the same bytes, measured
in the same run (each pass in a fresh process, interleaved: peer, fme, peer, ...; best of --repeat).

The run is written by this script in fme's run format (manifest.json + safetensors shards with the index
tensors) with random rows: the reader's speed does not depend on what the rows hold, and a large run with
realistic row sizes (hidden 1024) would take hours of `fme extract` on this machine. It is read once before
timing so every pass reads from the page cache.

    build/venv/bin/python bench/python/bench_stream.py [--rows 262144] [--hidden 1024] [--dtype fp32|bf16] [--shards 4] [--batch 4096]
                    [--buffer 262144] [--repeat 3]

Run it with the venv scripts/python_package.sh makes (the package with its native copy, fme._native); another
Python falls back to the source tree's package and numpy's copies, and says so. Prints MB/s of float32 batches handed out for: the peer (np.memmap slices copied into new arrays, BF16
widened the same way), run.batches(shuffle=False) and run.batches(shuffle=True), the ratios fme/peer, and the
peak memory each allocates (tracemalloc over all its epochs: numpy's arrays; the page cache's maps are not counted).
Each process runs --warmup untimed epochs, then --epochs timed ones (the maps and buffers faulted in first).
"""

import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

POINT = "blocks.0.hook_resid_post"


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def write_run(path, rows, hidden, dtype, shards, sample_len=512):
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(0)
    entries, per = [], rows // shards
    st = "F32" if dtype == "fp32" else "BF16"
    for k in range(shards):
        n = per if k < shards - 1 else rows - per * (shards - 1)
        x = rng.standard_normal((n, hidden), dtype=np.float32)
        data = x if st == "F32" else (x.view(np.uint32) >> 16).astype(np.uint16)
        s = -(-n // sample_len)
        first = k * (-(-per // sample_len))
        off = np.minimum(np.arange(s + 1, dtype=np.int64) * sample_len, n)
        tensors = [(POINT, st, data), ("token_ids", "I32", rng.integers(0, 50000, n).astype(np.int32)),
                   ("token_positions", "I32", (np.arange(n) % sample_len).astype(np.int32)),
                   ("sample_index", "I64", np.arange(first, first + s, dtype=np.int64)), ("sample_offsets", "I64", off)]
        header, o = {}, 0
        for name, dt, a in tensors:
            header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [o, o + a.nbytes]}
            o += a.nbytes
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        file = f"shard-{k:05d}.safetensors"
        sha = hashlib.sha256()
        with open(os.path.join(path, file), "wb") as f:
            for blob in [struct.pack("<Q", len(h)), h] + [a.tobytes() for _, _, a in tensors]:
                f.write(blob)
                sha.update(blob)
        entries.append({"file": file, "first_sample": first, "last_sample": first + s - 1, "samples": s, "tokens": n,
                        "bytes": os.path.getsize(os.path.join(path, file)), "sha256": sha.hexdigest()})
    m = {"format": "fme-activations", "version": 2, "hooks": [{"name": POINT, "row_shape": [hidden], "dtype": st}],
         "shards": entries, "complete": True, "tokens": {"bos_token_id": None, "special_token_ids": []}}
    with open(os.path.join(path, "manifest.json"), "w") as f:
        json.dump(m, f)


def import_fme():
    """The installed package (build/venv's, with fme._native), else the source tree's (numpy copies only)."""
    try:
        import fme
    except ImportError:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
        import fme
    return fme


def one_pass(run_dir, mode, batch, buffer, warmup, epochs, trace=False):
    """Runs in a child process: `warmup` untimed epochs (maps and buffers faulted in: the steady state of a
    training loop that runs many epochs; this VM's fresh memory is slow for a while after first touch), then
    `epochs` timed ones. Returns (best epoch's seconds, float32 bytes handed out per epoch, peak bytes
    allocated by numpy/Python during the timed epochs, from tracemalloc when `trace`, else 0)."""
    import tracemalloc

    fme = import_fme()
    from fme.shards import read_header

    run = fme.open_run(run_dir)
    if mode == "peer":
        maps = []
        for s in run.manifest["shards"]:
            path = os.path.join(run_dir, s["file"])
            info = read_header(path)[POINT]
            with open(path, "rb") as f:
                (hlen,) = struct.unpack("<Q", f.read(8))
            dt = np.float32 if info["dtype"] == "F32" else np.uint16
            maps.append(np.memmap(path, dtype=dt, mode="r", offset=8 + hlen + info["data_offsets"][0],
                                  shape=tuple(info["shape"])))

        def epoch():
            for mm in maps:
                for a in range(0, mm.shape[0], batch):
                    x = mm[a:a + batch]
                    yield np.array(x) if x.dtype == np.float32 else (x.astype(np.uint32) << 16).view(np.float32)
    else:
        stream = run.batches(POINT, batch_tokens=batch, shuffle=(mode == "shuffled"), buffer_tokens=buffer, exclude=())

        def epoch():
            return stream
    if trace:  # from the start: the stream's buffers are allocated in its first epoch
        tracemalloc.start()
    for _ in range(warmup):
        for _ in epoch():
            pass
    dt = float("inf")
    for _ in range(epochs):
        t0 = time.perf_counter()
        out = 0
        for x in epoch():
            out += x.nbytes
        dt = min(dt, time.perf_counter() - t0)
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    return dt, out, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=262144)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--buffer", type=int, default=262144)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2, help="untimed epochs in each process first")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs in each process (the best counts)")
    ap.add_argument("--child", nargs=2, metavar=("RUN", "MODE"), help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(one_pass(a.child[0], a.child[1], a.batch, a.buffer, a.warmup, a.epochs, a.trace)))
        return 0
    with tempfile.TemporaryDirectory(prefix="fme_bench_stream_") as tmp:
        run_dir = os.path.join(tmp, "run")
        write_run(run_dir, a.rows, a.hidden, a.dtype, a.shards)
        size = sum(os.path.getsize(os.path.join(run_dir, f)) for f in os.listdir(run_dir))
        for f in os.listdir(run_dir):  # into the page cache
            with open(os.path.join(run_dir, f), "rb") as fh:
                while fh.read(1 << 24):
                    pass
        print(f"bench_stream: {cpu_name()}, numpy {np.__version__}; run of {a.rows} rows x {a.hidden} {a.dtype} in "
              f"{a.shards} shards ({size / 2**20:.0f} MiB), batches of {a.batch}, shuffle buffer {a.buffer} rows "
              f"({a.buffer * a.hidden * 4 / 2**20:.0f} MiB as float32)")
        gather = import_fme().gather._native_gather
        print(f"  batches copied by {'fme._native.gather_rows' if gather else 'numpy (no fme._native: slower)'}, "
              f"{os.cpu_count()} cores")
        def child(mode, trace=False):
            cmd = [sys.executable, os.path.abspath(__file__), "--child", run_dir, mode, "--batch", str(a.batch),
                   "--buffer", str(a.buffer), "--warmup", str(a.warmup), "--epochs", str(a.epochs)] + \
                (["--trace"] if trace else [])
            return json.loads(subprocess.check_output(cmd))

        best = {m: (float("inf"), 0) for m in ("peer", "unshuffled", "shuffled")}
        for _ in range(a.repeat):
            for mode in ("peer", "unshuffled", "peer", "shuffled"):
                dt, nbytes, _ = child(mode)
                best[mode] = min(best[mode], (dt, nbytes))
        peak = {m: child(m, trace=True)[2] for m in best}  # its own pass: tracing slows allocation down
        rate = {m: b[1] / b[0] / 1e6 for m, b in best.items()}
        for m, (dt, nbytes) in best.items():
            print(f"  {m:10s} {rate[m]:8.0f} MB/s  ({nbytes / 1e6:.0f} MB in {dt:.3f} s, best epoch of "
                  f"{a.repeat} x {a.epochs}; "
                  f"peak allocated {peak[m] / 2**20:.0f} MiB)")
        print(f"  ratio unshuffled/peer {rate['unshuffled'] / rate['peer']:.2f} (target >= 0.95), "
              f"shuffled/peer {rate['shuffled'] / rate['peer']:.2f} (target >= 0.8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
