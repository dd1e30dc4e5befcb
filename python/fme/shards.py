"""The on-disk format of an `fme extract` run, read with numpy alone: manifest.json, safetensors shards
(optionally zstd-compressed as .safetensors.zst) and their consistency checks.

Each shard stores, for the samples it covers, every extracted hook point under its TransformerLens name
(blocks.{i}.hook_resid_post: [N, hidden], blocks.{i}.attn.hook_z: [N, heads, head_dim], ...; the manifest's
"hooks" lists them with their row shapes), the token ids ([N] int32), each row's position in its sample
(token_positions: [N] int32; rows left out by --exclude-special-tokens / --exclude-bos leave gaps), and which
sample each row belongs to (sample_index: [S] int64, sample_offsets: [S+1] int64; rows of sample j are
offsets[j]..offsets[j+1]). Format version 1 runs (fme before hook points) stored resid_post.{layer} for the
manifest's "layers": they read the same way, their points named blocks.{layer}.hook_resid_post.
"""

import hashlib
import json
import os
import shutil
import struct
import subprocess

import numpy as np

from .errors import RunError

try:  # optional: faster than the CLI and needs no subprocess; fall back to `zstd -dc` without it
    import zstandard as _zstandard
except ImportError:  # pragma: no cover - depends on the machine
    _zstandard = None

FORMAT = "fme-activations"
SUPPORTED_VERSIONS = (1, 2)

# safetensors dtypes -> little-endian numpy dtypes. BF16 has no numpy dtype: it is read as uint16 and
# widened to float32 by _bf16_to_f32.
_DTYPES = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
}

# A header bigger than this is surely a corrupt length prefix, not a real header (guards huge allocations).
_MAX_HEADER = 100 * 1024 * 1024


def bf16_to_f32(raw):
    # bfloat16 is the top half of a float32: shifting the bits up 16 gives the exact float32 value.
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _decompress_zst(path):
    if _zstandard is not None:
        dctx = _zstandard.ZstdDecompressor()
        chunks = []
        with open(path, "rb") as f:
            try:
                reader = dctx.stream_reader(f, read_across_frames=True)
            except TypeError:  # zstandard < 0.16 has no read_across_frames
                reader = dctx.stream_reader(f)
            try:
                with reader:
                    while True:
                        chunk = reader.read(1 << 24)
                        if not chunk:
                            break
                        chunks.append(chunk)
            except _zstandard.ZstdError as e:
                raise RunError(f"{path}: not a valid zstd stream: {e}") from None
        return b"".join(chunks)
    if shutil.which("zstd") is None:
        raise RunError(f"{path}: compressed shard, but neither the zstandard module nor the zstd CLI is available")
    proc = subprocess.run(["zstd", "-dc", "--", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise RunError(f"{path}: zstd -dc failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def open_bytes(path):
    """The shard's uncompressed bytes as a buffer: a read-only map for plain files (zero-copy), or the
    decompressed bytes for .zst."""
    try:
        if path.endswith(".zst"):
            return _decompress_zst(path)
        if os.path.getsize(path) == 0:
            raise RunError(f"{path}: empty file, expected a safetensors shard")
        return np.memmap(path, dtype=np.uint8, mode="r")
    except OSError as e:
        raise RunError(f"{path}: cannot read the shard: {e.strerror or e}") from None


def _parse_header(buf, path):
    if len(buf) < 8:
        raise RunError(f"{path}: {len(buf)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", bytes(buf[:8]))
    if n > _MAX_HEADER or 8 + n > len(buf):
        raise RunError(f"{path}: header length {n} does not fit in a {len(buf)}-byte file")
    try:
        header = json.loads(bytes(buf[8 : 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path}: header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise RunError(f"{path}: header is a {type(header).__name__}, expected a JSON object")
    return header, 8 + n


def read_header(path):
    """The safetensors header of a shard (tensor name -> {dtype, shape, data_offsets}, plus __metadata__)."""
    return _parse_header(open_bytes(path), path)[0]


def load_shard(path, raw=False):
    """All tensors of one shard as {name: np.ndarray}.

    Uncompressed shards are memory-mapped and F32/F16/I32/I64 tensors are zero-copy read-only views of the
    map; BF16 tensors are converted to float32 (a copy), or with raw=True stay zero-copy uint16 views of their
    bits. Compressed shards are decompressed into memory.
    """
    return shard_tensors(open_bytes(path), path, raw)


def shard_tensors(buf, path, raw=False):
    """The tensors of a shard's uncompressed bytes `buf` (see load_shard); checks every header entry."""
    header, data_start = _parse_header(buf, path)
    data_len = len(buf) - data_start
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype_name, shape, (begin, end) = info["dtype"], list(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise RunError(f"{path}: tensor {name!r}: header entry lacks dtype/shape/data_offsets") from None
        dt = _DTYPES.get(dtype_name)
        if dt is None:
            raise RunError(f"{path}: tensor {name!r}: unsupported dtype {dtype_name!r}, expected one of {sorted(_DTYPES)}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= begin <= end <= data_len) or end - begin != count * dt.itemsize:
            raise RunError(
                f"{path}: tensor {name!r}: data_offsets [{begin}, {end}] do not hold shape {shape} of {dtype_name} "
                f"within {data_len} data bytes")
        arr = np.frombuffer(buf, dtype=dt, count=count, offset=data_start + begin).reshape(shape)
        if dtype_name == "BF16" and not raw:
            arr = bf16_to_f32(arr)
        out[name] = arr
    return out


def load_manifest(run_dir):
    path = os.path.join(run_dir, "manifest.json")
    try:
        with open(path, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: not found; is {run_dir!r} a run directory of `fme extract`?") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RunError(f"{path}: format is {manifest.get('format') if isinstance(manifest, dict) else None!r}, expected {FORMAT!r}")
    if manifest.get("version") not in SUPPORTED_VERSIONS:
        raise RunError(f"{path}: version {manifest.get('version')!r} is not supported (reader knows {SUPPORTED_VERSIONS})")
    for key in ("layers" if manifest["version"] == 1 else "hooks", "shards"):
        if not isinstance(manifest.get(key), list):
            raise RunError(f"{path}: field {key!r} missing or not a list")
    return manifest


def run_points(manifest):
    """The run's hook points as [(hook name, tensor name in the shards, row shape or None if unrecorded)]."""
    if manifest["version"] == 1:
        return [(f"blocks.{int(x)}.hook_resid_post", f"resid_post.{int(x)}", None) for x in manifest["layers"]]
    out = []
    for h in manifest["hooks"]:
        if not isinstance(h, dict) or not isinstance(h.get("name"), str) or not isinstance(h.get("row_shape"), list):
            raise RunError(f"manifest.json: hooks entry {h!r} lacks a name and row_shape")
        out.append((h["name"], h["name"], [int(d) for d in h["row_shape"]]))
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def check_shard(name, entry, tensors, points, prev_last):
    """Index consistency of one loaded shard; returns its last sample index. Raises ShardError."""
    for key in ("token_ids", "sample_index", "sample_offsets"):
        if key not in tensors:
            raise RunError(f"{name}: tensor {key!r} missing")
    tok, idx, off = tensors["token_ids"], tensors["sample_index"], tensors["sample_offsets"]
    if tok.ndim != 1 or idx.ndim != 1 or off.ndim != 1:
        raise RunError(f"{name}: token_ids, sample_index and sample_offsets must be 1-D")
    n, s = tok.shape[0], idx.shape[0]
    if off.shape[0] != s + 1:
        raise RunError(f"{name}: sample_offsets has {off.shape[0]} entries, expected samples+1 = {s + 1}")
    if s and (off[0] != 0 or off[-1] != n or np.any(np.diff(off) < 0)):
        raise RunError(f"{name}: sample_offsets must rise from 0 to {n} (token rows); got {off[0]}..{off[-1]}")
    if s and np.any(np.diff(idx) <= 0):
        raise RunError(f"{name}: sample_index is not strictly increasing")
    if "token_positions" in tensors:
        pos = tensors["token_positions"]
        if pos.shape != (n,):
            raise RunError(f"{name}: token_positions has shape {list(pos.shape)}, expected [{n}]")
        for j in range(s):
            p = pos[int(off[j]) : int(off[j + 1])]
            if p.size and (p[0] < 0 or np.any(np.diff(p) <= 0)):
                raise RunError(f"{name}: token_positions of sample {int(idx[j])} do not rise from 0 or more")
    if s and prev_last is not None and idx[0] <= prev_last:
        raise RunError(f"{name}: first sample {int(idx[0])} does not follow the previous shard's last {prev_last}")
    for hook, key, row_shape in points:
        if key not in tensors:
            raise RunError(f"{name}: tensor {key!r} missing (manifest lists {hook})")
        shape = list(tensors[key].shape)
        want = [n] + (row_shape if row_shape is not None else ["hidden"])
        if len(shape) != len(want) or shape[0] != n or (row_shape is not None and shape[1:] != row_shape):
            raise RunError(f"{name}: {key} has shape {shape}, expected {want}")
    expect = {"samples": s, "tokens": n}
    if s:
        expect.update(first_sample=int(idx[0]), last_sample=int(idx[-1]))
    for key, value in expect.items():
        if key in entry and int(entry[key]) != value:
            raise RunError(f"{name}: manifest says {key} = {entry[key]}, shard has {value}")
    return int(idx[-1]) if s else prev_last




def check_stats(run_dir, stats, sums):
    """The manifest's running statistics against fp64 sums over the stored rows (recomputed here)."""
    for h, (rows, total, sq) in sums.items():
        st = stats.get(h) if isinstance(stats, dict) else None
        if not isinstance(st, dict):
            raise RunError(f"{run_dir}/manifest.json: stats has no entry for {h}")
        if int(st.get("rows", -1)) != rows:
            raise RunError(f"{run_dir}/manifest.json: stats.{h}.rows = {st.get('rows')}, shards hold {rows}")
        if rows == 0:
            continue
        mean = np.asarray(st.get("mean", []), dtype=np.float64)
        want = np.asarray(total) / rows
        scale = max(1.0, float(np.abs(want).max()))
        if mean.shape != want.shape or not np.allclose(mean, want, rtol=1e-9, atol=1e-12 * scale):
            raise RunError(f"{run_dir}/manifest.json: stats.{h}.mean differs from the stored rows' mean")
        msq = float(st.get("mean_sq_norm", float("nan")))
        if not np.isclose(msq, sq / rows, rtol=1e-9, atol=0.0):
            raise RunError(f"{run_dir}/manifest.json: stats.{h}.mean_sq_norm = {msq}, stored rows give {sq / rows}")


