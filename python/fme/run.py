"""A run directory of `fme extract` as one dataset: `open_run(path) -> Run`.

Rows are numbered globally in shard order (the manifest's order, which is sample order): row r of
run["blocks.6.hook_resid_post"] is the activation of token run.token_ids[r]. Uncompressed shards are
memory-mapped and read zero-copy where the stored dtype has a numpy equivalent (F32, F16); BF16 rows are
widened to float32 on access (numpy has no bfloat16). zstd shards are decompressed a whole shard at a time
and the last few kept in memory.

Every check that can be made without reading the data runs in open_run: the manifest's format and fields,
each listed shard present with the size the manifest recorded. A shard's header and index tensors are checked
the first time it is read; run.verify() checks everything (sha256, indices, statistics).
"""

import bisect
import collections
import json
import mmap
import os

import numpy as np

from .errors import RunError
from .shards import (
    _DTYPES,
    check_shard,
    check_stats,
    load_manifest,
    open_bytes,
    run_points,
    sha256_file,
    shard_tensors,
    bf16_to_f32,
)

try:
    from ._native import read_ahead as _native_read_ahead
except ImportError:  # no build: the mmap module's madvise, always given
    _native_read_ahead = None


# Open shards kept: memory maps are cheap (but each holds a file descriptor); decompressed zstd shards are not.
_MAX_OPEN_MAPS = 64
_MAX_OPEN_DECOMPRESSED = 2


class Point(collections.namedtuple("Point", "name row_shape dtype key")):
    """A stored hook point: its TransformerLens name, one token's row shape, the stored dtype ("F32", "BF16",
    "F16") and the tensor's name inside the shards (the hook name, or resid_post.{i} in version 1 runs)."""

    @property
    def numpy_dtype(self):
        """The dtype rows are returned in: float32 for F32 and BF16, float16 for F16."""
        return _returned_dtype(self.dtype)


def _returned_dtype(stored):
    """The numpy dtype rows of a stored dtype come back in: BF16 widened to float32, others native-endian."""
    return np.dtype(np.float32) if stored == "BF16" else _DTYPES[stored].newbyteorder("=")


class _Shard:
    __slots__ = ("file", "path", "entry", "rows", "samples", "row_start", "sample_start")

    def __init__(self, run_dir, entry, row_start, sample_start):
        name = entry.get("file") if isinstance(entry, dict) else None
        # A name relative to the run: "shard-00000.safetensors", or a work unit's "units/unit-000003/shard-...".
        parts = name.split("/") if isinstance(name, str) else [""]
        if not name or any(not p or p.startswith(".") or os.sep in p for p in parts):
            raise RunError(f"{run_dir}/manifest.json: bad shard file name {name!r}")
        self.file, self.path, self.entry = name, os.path.join(run_dir, name), entry
        try:
            self.rows, self.samples = int(entry["tokens"]), int(entry["samples"])
        except (KeyError, TypeError, ValueError):
            raise RunError(f"{run_dir}/manifest.json: shard {name}: 'tokens' and 'samples' must be integers") from None
        self.row_start, self.sample_start = row_start, sample_start


class Run:
    """One `fme extract` run. See the module's docstring; open with fme.open_run(path)."""

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        self.manifest = load_manifest(self.path)
        self._points = {}
        for name, key, row_shape in run_points(self.manifest):
            dtype = self._point_dtype(name)
            self._points[name] = Point(name, tuple(row_shape) if row_shape is not None else None, dtype, key)
        self._shards = []
        rows = samples = 0
        for entry in self.manifest["shards"]:
            s = _Shard(self.path, entry, rows, samples)
            try:
                size = os.path.getsize(s.path)
            except OSError:
                raise RunError(f"{s.path}: listed in manifest.json but missing") from None
            want = entry.get("bytes")
            if want is not None and int(want) != size:
                raise RunError(f"{s.path}: {size} bytes, manifest.json says {int(want)} (truncated or rewritten)")
            self._shards.append(s)
            rows += s.rows
            samples += s.samples
        self._rows, self._samples = rows, samples
        self._row_starts = [s.row_start for s in self._shards]
        self._row_starts_array = np.asarray(self._row_starts, dtype=np.int64)
        self._sample_starts = [s.sample_start for s in self._shards]
        self._maps = collections.OrderedDict()  # shard position -> ({tensor name: raw array}, the shard's buffer)
        self._samples_jsonl = None

    # ---- what the run holds ------------------------------------------------------------------------

    @property
    def points(self):
        """{hook name: Point(name, row_shape, dtype, key)} in the run's order."""
        return dict(self._points)

    @property
    def complete(self):
        """False while the extraction is still running (or was killed): the manifest lists what is committed."""
        return bool(self.manifest.get("complete", False))

    @property
    def num_rows(self):
        """Stored token rows, over all shards (one per token kept)."""
        return self._rows

    @property
    def num_shards(self):
        return len(self._shards)

    def __len__(self):
        """The number of stored samples (those with rows in the shards; skipped samples are not stored)."""
        return self._samples

    def __repr__(self):
        return (f"fme.Run({self.path!r}: {len(self)} samples, {self._rows} rows, {len(self._shards)} shards, "
                f"points {list(self._points)})")

    @property
    def samples(self):
        """samples.jsonl's records of the committed samples, stored and skipped, in sample order: dicts with
        sample_index, source, augmentation, tokens, truncated (and original_tokens, skipped, excluded_tokens
        where they apply)."""
        if self._samples_jsonl is None:
            path = os.path.join(self.path, "samples.jsonl")
            limit = self.manifest.get("samples_jsonl_bytes")
            try:
                with open(path, "rb") as f:
                    data = f.read() if limit is None else f.read(int(limit))
            except OSError as e:
                raise RunError(f"{path}: cannot read: {e.strerror or e}") from None
            if limit is not None and len(data) != int(limit):
                raise RunError(f"{path}: {len(data)} bytes, manifest.json says {int(limit)} are committed")
            out = []
            for n, line in enumerate(data.decode("utf-8", errors="strict").splitlines(), 1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise RunError(f"{path}: line {n} is not valid JSON: {e}") from None
            self._samples_jsonl = out
        return self._samples_jsonl

    def bos_token_id(self):
        """The model's BOS id as the run recorded it (None: the model declares none). Runs from an fme that did
        not record it: read from the model directory's config.json while that is still there; else RunError."""
        info = self.manifest.get("tokens")
        if isinstance(info, dict):
            bos = info.get("bos_token_id")
            return int(bos) if bos is not None else None
        model = self.manifest.get("model")
        config = os.path.join(model["path"], "config.json") if isinstance(model, dict) and model.get("path") else None
        if config and os.path.isfile(config):
            with open(config) as f:
                bos = json.load(f).get("bos_token_id")
            return int(bos) if isinstance(bos, int) else None
        raise RunError(f"{self.path}/manifest.json: no 'tokens' record (written by an older fme) and the model's "
                       f"config.json is not at {config}: the BOS id is unknown; pass exclude=() to keep BOS rows")

    def special_token_ids(self):
        """The tokenizer's special token ids as the run recorded them; RunError when it recorded none."""
        info = self.manifest.get("tokens")
        special = info.get("special_token_ids") if isinstance(info, dict) else None
        if special is None:
            raise RunError(f"{self.path}/manifest.json: no tokens.special_token_ids (an older fme, or a run of "
                           f"pre-tokenized input without a tokenizer): special tokens are unknown")
        return np.asarray(sorted(set(map(int, special))), dtype=np.int64)

    # ---- rows -----------------------------------------------------------------------------------------

    def __getitem__(self, point):
        """run["blocks.6.hook_resid_post"] -> RowArray [rows, *row_shape] (lazy: reads on indexing)."""
        p = self._point(point)
        return RowArray(self, p.key, p.row_shape, p.dtype)

    @property
    def token_ids(self):
        """RowArray [rows] int32: the token id of each stored row."""
        return RowArray(self, "token_ids", (), "I32")

    @property
    def token_positions(self):
        """RowArray [rows] int32: each row's position in its sample (version 1 runs stored every position)."""
        if self.manifest["version"] == 1:
            return _V1Positions(self)
        return RowArray(self, "token_positions", (), "I32")

    @property
    def sample_index(self):
        """[len(run)] int64: the dataset sample index (samples.jsonl's sample_index) of each stored sample."""
        return np.concatenate([self._raw(k)["sample_index"] for k in range(len(self._shards))] or
                              [np.zeros(0, np.int64)]).astype(np.int64, copy=False)

    def sample(self, i):
        """The i-th stored sample (0 <= i < len(run), negative from the end) as (token_ids, {point: rows})."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample {i} out of range for a run of {n} stored samples")
        i %= n
        k = bisect.bisect_right(self._sample_starts, i) - 1  # past empty shards, which share the next's start
        t = self._raw(k)
        j = i - self._shards[k].sample_start
        a, b = int(t["sample_offsets"][j]), int(t["sample_offsets"][j + 1])
        rows = {name: _widen(t[p.key][a:b], p.dtype) for name, p in self._points.items()}
        return t["token_ids"][a:b], rows

    def iter_samples(self, points=None, with_positions=False):
        """Yields (sample_index, token_ids, {point: rows}) per stored sample in order (with_positions:
        (sample_index, token_ids, token_positions, {...})). Arrays are views into the shard where possible."""
        wanted = [self._point(p) for p in (points if points is not None else self._points)]
        for k in range(len(self._shards)):
            t = self._raw(k)
            idx, off, tok = t["sample_index"], t["sample_offsets"], t["token_ids"]
            pos = t.get("token_positions")
            for j in range(idx.shape[0]):
                a, b = int(off[j]), int(off[j + 1])
                rows = {p.name: _widen(t[p.key][a:b], p.dtype) for p in wanted}
                if with_positions:
                    p = pos[a:b] if pos is not None else np.arange(b - a, dtype=np.int32)
                    yield int(idx[j]), tok[a:b], p, rows
                else:
                    yield int(idx[j]), tok[a:b], rows

    def batches(self, point, batch_tokens=4096, shuffle=True, seed=0, buffer_tokens=2**22, drop_last=False,
                rank=0, world_size=1, exclude=("bos",), return_index=False, raw=False):
        """An ActivationStream over one point: [batch_tokens, *row_shape] arrays, every kept row once per
        epoch, shuffled across shards and samples within bounded memory; resumable (state_dict). See
        fme.stream.ActivationStream."""
        from .stream import ActivationStream

        return ActivationStream(self, point, batch_tokens=batch_tokens, shuffle=shuffle, seed=seed,
                                buffer_tokens=buffer_tokens, drop_last=drop_last, rank=rank, world_size=world_size,
                                exclude=exclude, return_index=return_index, raw=raw)

    # ---- checks -------------------------------------------------------------------------------------

    def verify(self):
        """Checks every shard's sha256 against the manifest, the index tensors (sample_index, offsets,
        positions) against each other and the manifest, and the manifest's statistics against the stored rows
        (fp64). Returns a summary dict; raises RunError naming the file and what is wrong."""
        points = [(p.name, p.key, list(p.row_shape) if p.row_shape is not None else None)
                  for p in self._points.values()]
        stats = self.manifest.get("stats") if self.manifest["version"] >= 2 else None
        sums = {p.name: [0, 0.0, 0.0] for p in self._points.values()}  # rows, sum (vector), sum of squared norms
        prev_last = None
        for s in self._shards:
            want = s.entry.get("sha256")
            if not want:
                raise RunError(f"{s.path}: manifest.json has no sha256 to verify against")
            got = sha256_file(s.path)
            if got != want:
                raise RunError(f"{s.path}: sha256 mismatch: manifest {want}, file {got}")
            tensors = shard_tensors(open_bytes(s.path), s.path)
            prev_last = check_shard(s.file, s.entry, tensors, points, prev_last)
            if stats is not None:
                for p in self._points.values():
                    x = np.asarray(tensors[p.key], dtype=np.float64).reshape(tensors[p.key].shape[0], -1)
                    acc = sums[p.name]
                    acc[0] += x.shape[0]
                    acc[1] = acc[1] + x.sum(axis=0)
                    acc[2] += float(np.einsum("ij,ij->", x, x))
        if stats is not None:
            check_stats(self.path, stats, sums)
        return self.summary()

    def summary(self):
        """A dict describing the run, from the manifest."""
        first = next(iter(self._points.values()), None)
        return {
            "run_dir": self.path,
            "version": self.manifest["version"],
            "complete": self.complete,
            "shards": len(self._shards),
            "hooks": list(self._points),
            "samples": len(self),
            "tokens": self._rows,
            "bytes": sum(int(s.entry.get("bytes", 0)) for s in self._shards),
            "hidden": (self[first.name].shape[-1] if first is not None and self._shards and
                       len(self[first.name].shape) > 1 else None),
            "dtype": first.dtype if first is not None else None,
        }

    # ---- internals ----------------------------------------------------------------------------------

    def _point(self, name):
        p = self._points.get(name)
        if p is None:
            raise KeyError(f"{name!r} was not extracted in {self.path} (the run has {list(self._points)})")
        return p

    def _point_dtype(self, name):
        if self.manifest["version"] >= 2:
            for h in self.manifest["hooks"]:
                if h.get("name") == name and h.get("dtype") in _DTYPES:
                    return h["dtype"]
        return {"bf16": "BF16", "fp32": "F32", "fp16": "F16"}.get(self.manifest.get("out_dtype"), None) or \
            self._dtype_from_first_shard(name)

    def _dtype_from_first_shard(self, name):
        from .shards import read_header

        key = dict((p[0], p[1]) for p in run_points(self.manifest))[name]
        for entry in self.manifest["shards"]:
            t = read_header(os.path.join(self.path, entry["file"])).get(key)
            if t:
                return t["dtype"]
        return "F32"

    def _shard_of_row(self, r):
        return bisect.bisect_right(self._row_starts, r) - 1  # past empty shards, which share the next's start

    def _raw(self, k):
        """Shard k's tensors, zero-copy where possible (BF16 as uint16 bits), checked against the manifest."""
        entry = self._maps.get(k)
        if entry is not None:
            self._maps.move_to_end(k)
            return entry[0]
        s = self._shards[k]
        buf = open_bytes(s.path)
        t = shard_tensors(buf, s.path, raw=True)
        for key in ("token_ids", "sample_index", "sample_offsets"):
            if key not in t:
                raise RunError(f"{s.path}: tensor {key!r} missing")
        if t["token_ids"].shape != (s.rows,) or t["sample_index"].shape != (s.samples,) or \
                t["sample_offsets"].shape != (s.samples + 1,):
            raise RunError(f"{s.path}: index tensors hold {t['token_ids'].shape[0]} rows / {t['sample_index'].shape[0]} "
                           f"samples, manifest.json says {s.rows} / {s.samples}")
        for p in self._points.values():
            x = t.get(p.key)
            if x is None:
                raise RunError(f"{s.path}: tensor {p.key!r} missing (manifest lists {p.name})")
            if x.dtype != _DTYPES[p.dtype]:
                raise RunError(f"{s.path}: {p.key} is stored as {x.dtype}, manifest.json says {p.dtype}")
            if x.shape[0] != s.rows or (p.row_shape is not None and tuple(x.shape[1:]) != p.row_shape):
                raise RunError(f"{s.path}: {p.key} has shape {list(x.shape)}, expected "
                               f"{[s.rows] + list(p.row_shape or ['...'])}")
        self._maps[k] = (t, buf)  # least recently used first
        while len(self._maps) > _MAX_OPEN_MAPS:
            self._maps.popitem(last=False)
        compressed = [j for j in self._maps if self._shards[j].path.endswith(".zst")]
        for j in compressed[:-_MAX_OPEN_DECOMPRESSED]:
            del self._maps[j]
        return t

    def _prefetch(self, k, key, r0, r1):
        """Asks the kernel to read rows r0..r1-1 of tensor `key` of shard k into the page cache ahead of use
        (madvise WILLNEED on the map, given by fme._native only when a page is not resident; nothing for
        decompressed shards, which are in memory already)."""
        t = self._raw(k)
        buf = self._maps[k][1]
        mm = getattr(buf, "_mmap", None)
        x = t[key]
        if mm is None or r1 <= r0:
            return
        if _native_read_ahead is not None:  # only when a page is missing (see python/native/read_ahead_bindings.cpp)
            _native_read_ahead(x[r0:r1])
            return
        if not hasattr(mm, "madvise"):
            return
        begin = x[r0:].__array_interface__["data"][0] - buf.__array_interface__["data"][0]
        end = begin + (r1 - r0) * (x.strides[0] if x.ndim else x.itemsize)
        page = mmap.PAGESIZE
        start = begin // page * page
        try:
            mm.madvise(mmap.MADV_WILLNEED, start, min(end, len(mm)) - start)
        except (OSError, ValueError):  # advice only
            pass


def _widen(x, dtype):
    """Stored rows as returned to users: BF16 bits widened to float32 (a copy), others as they are."""
    return bf16_to_f32(x) if dtype == "BF16" else x


def _index_slices(n, idx):
    """A first-axis index -> ((start, stop), None) for a contiguous range, or (None, row numbers int64)."""
    if isinstance(idx, slice):
        start, stop, step = idx.indices(n)
        if step == 1:
            return (start, max(start, stop)), None
        return None, np.arange(start, stop, step, dtype=np.int64)
    arr = np.asarray(idx)
    if arr.dtype == np.bool_:
        if arr.shape != (n,):
            raise IndexError(f"boolean index of shape {arr.shape} for {n} rows")
        return None, np.flatnonzero(arr)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"rows are indexed by ints, slices, int arrays or a boolean mask, not {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < -n or arr.max() >= n):
        raise IndexError(f"row index out of range for {n} rows")
    return None, np.where(arr < 0, arr + n, arr)


class RowArray:
    """The rows of one tensor over all shards of a run, as one lazily read array [rows, *row_shape].

    Indexing with an int, a slice, an int array or a boolean mask reads only the rows asked for: a slice
    within one uncompressed F32/F16 shard is a zero-copy view of the map; anything else is a new array.
    BF16 rows come back as float32. np.asarray(arr) reads everything.
    """

    def __init__(self, run, key, row_shape, dtype):
        self._run, self._key, self._dtype_name = run, key, dtype
        self._row_shape = tuple(row_shape) if row_shape is not None else None

    @property
    def shape(self):
        if self._row_shape is None:  # version 1 runs did not record it: the first shard's
            self._row_shape = tuple(self._first_raw().shape[1:]) if self._run.num_shards else ()
        return (self._run.num_rows,) + self._row_shape

    @property
    def dtype(self):
        return _returned_dtype(self._dtype_name)

    @property
    def stored_dtype(self):
        """The dtype in the shards: "F32", "BF16", "F16", "I32"."""
        return self._dtype_name

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        return self._run.num_rows

    def __repr__(self):
        return f"fme.RowArray({self._key!r}, shape={self.shape}, dtype={self.dtype}, stored {self._dtype_name})"

    def shard_arrays(self, raw=False):
        """Per shard, the rows as stored: zero-copy views of the maps (BF16 widened unless raw=True)."""
        for k in range(self._run.num_shards):
            x = self._run._raw(k)[self._key]
            yield x if raw else _widen(x, self._dtype_name)

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __iter__(self):
        for x in self.shard_arrays():
            yield from x

    def __getitem__(self, idx):
        rest = ()
        if isinstance(idx, tuple):
            idx, rest = (idx[0], idx[1:]) if idx else (slice(None), ())
        n = self._run.num_rows
        if isinstance(idx, (int, np.integer)):
            i = int(idx)
            if not -n <= i < n:
                raise IndexError(f"row {i} out of range for {n} rows")
            i %= n
            k = self._run._shard_of_row(i)
            row = _widen(self._run._raw(k)[self._key][i - self._run._shards[k].row_start], self._dtype_name)
            return row[rest] if rest else row
        rng, rows = _index_slices(n, idx)
        out = self._read_range(*rng) if rng is not None else self._gather(rows)
        return out[(slice(None),) + rest] if rest else out

    # A range of rows: one view when it lies in one uncompressed, non-BF16 shard; else a copy.
    def _read_range(self, start, stop):
        parts = []
        r = start
        while r < stop:
            k = self._run._shard_of_row(r)
            s = self._run._shards[k]
            b = min(stop, s.row_start + s.rows)
            parts.append(self._run._raw(k)[self._key][r - s.row_start:b - s.row_start])
            r = b
        if len(parts) == 1 and self._dtype_name != "BF16":
            return parts[0]
        if not parts:
            return np.empty((0,) + self.shape[1:], dtype=self.dtype)
        return _widen(np.concatenate(parts), self._dtype_name)

    def _gather(self, rows):
        out = np.empty((rows.shape[0],) + self.shape[1:], dtype=_DTYPES[self._dtype_name])
        if rows.size:
            starts = np.asarray(self._run._row_starts, dtype=np.int64)
            shard = np.searchsorted(starts, rows, side="right") - 1
            for k in np.unique(shard):
                k = int(k)
                sel = np.flatnonzero(shard == k)
                x = self._run._raw(k)[self._key]
                out[sel] = x[rows[sel] - self._run._shards[k].row_start]
        return _widen(out, self._dtype_name)

    def _first_raw(self):
        return self._run._raw(0)[self._key]


class _V1Positions:
    """token_positions of a version 1 run (which stored every token): 0..len-1 within each sample."""

    def __init__(self, run):
        self._run = run

    def __len__(self):
        return self._run.num_rows

    def __array__(self, dtype=None, copy=None):
        parts = []
        for k in range(self._run.num_shards):
            off = self._run._raw(k)["sample_offsets"]
            for j in range(off.shape[0] - 1):
                parts.append(np.arange(int(off[j + 1] - off[j]), dtype=np.int32))
        out = np.concatenate(parts) if parts else np.zeros(0, np.int32)
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, idx):
        return np.asarray(self)[idx]


def open_run(path):
    """Opens a run directory of `fme extract` (local path). Raises RunError when it is malformed."""
    return Run(path)
