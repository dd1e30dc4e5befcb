"""A shuffled, resumable stream of one hook point's rows for SAE and probe training: run.batches(...).

Order of one epoch, for rank r of W (everything follows from (seed, epoch, rank, world_size)):
  1. the run's rows are cut into chunks of consecutive rows of one shard (about buffer/64 rows each; a zstd
     shard is one chunk), and the chunks put in a seeded random order (shuffle=True) or left in run order;
  2. the kept rows of that chunk sequence (rows of BOS / special tokens left out per `exclude`) are split into
     W contiguous parts of equal size (+-1 row): rank r takes part r, so ranks are disjoint and together
     complete, and each reads only its own part;
  3. a rank's part is cut into windows of buffer_tokens / 2 rows, each in its own seeded order: place u of
     a window of n rows holds row permute(n, keys, u, u + 1) of the window's rows (fme/permutation.py: a
     keyed permutation fme defines itself, computed for just the places of a batch, the same with or without
     the native build and whatever numpy's version). Batches are handed out window after window. A window is
     a table of where its rows are (shard, row), sorted by shard and row: each batch computes which rows
     its places take and copies them once, straight from the shards' maps (fme._native's gather_rows copies
     six scattered rows at once on every core, at about the speed of a sequential numpy sweep of 4 KiB rows
     on 2 cores, bench/python/bench_stream.py). Only a window holding zstd shards (decompressed whole to read
     any row) is copied into one of two buffers of half the buffer each, every row straight to its place.
     The next window's chunks are prefetched (madvise WILLNEED, where a page is not in the page cache)
     while the current one is handed out.
     shuffle=False needs no window: each batch is copied straight from the shards in run order.
So memory is bounded by the buffer (12 bytes of table per row, 20 with return_index, or two half-buffers of
rows for zstd runs; plus the batches a caller still holds, of which two are reused once released), rows from
all over the run meet in a window, and the position in the epoch (rows handed out) is the whole state:
state_dict() / load_state_dict() resume mid-epoch with the same rows in the same order, reading only the window
it falls in.
"""

import sys

import numpy as np

from .errors import RunError
from .gather import gather_rows
from .permutation import permute, round_keys
from .shards import _DTYPES

_EXCLUDE = ("bos", "special")
_CHUNKS_PER_WINDOW = 64  # how many places of the run one window mixes
_MAX_CHUNKS = 1 << 20    # bounds the plan's size for very large runs
_ORDER = 2  # which order a seed gives (2: fme.permutation's; 1: numpy's Generator.permutation): kept in state_dicts


class _Reused:
    """Arrays handed out and taken back: get() returns a kept one of that shape when nothing outside holds it
    any more (reusing memory already faulted in is most of what makes a copy cheap), else a new one, which
    replaces the older of the two kept."""

    def __init__(self):
        self._kept = [None, None]

    def get(self, shape, dtype):
        for x in self._kept:
            # No references but the list's, the loop's and getrefcount's argument: no batch or view holds it.
            if x is not None and x.shape == shape and x.dtype == dtype and sys.getrefcount(x) == 3:
                return x
        x = np.empty(shape, dtype=dtype)
        self._kept = [self._kept[1], x]  # the older one goes to whoever still holds it
        return x


class _Window:
    """One window of n rows, place u holding the row at permute(n, keys, u, u + 1) of the window's pieces in
    order: either copied into place order (rows, index) or where the pieces' rows are (which shard of
    `sources`, row in it) for gather_rows; index: their run row numbers (None unless the stream returns them)."""

    __slots__ = ("key", "n", "keys", "rows", "sources", "which", "local", "index")


class _Plan:
    """One epoch's chunk order and this rank's part of it."""

    __slots__ = ("order", "cum", "lo", "rows", "yield_rows")


class ActivationStream:
    """Iterates one epoch of [batch_tokens, *row_shape] arrays (the last one smaller unless drop_last);
    iterating again runs the next epoch, reshuffled. Made by Run.batches (see there for the arguments).

    drop_last: every rank yields the same number of full batches (floor(kept rows / world_size /
    batch_tokens)), as DistributedDataParallel needs; rows past them are left out of this epoch.
    return_index: yield (rows, row_numbers) where row_numbers [n] int64 index run[point] / run.token_ids.
    raw: rows as stored (BF16 as uint16 bits, for torch.bfloat16 views) instead of float32.
    """

    def __init__(self, run, point, *, batch_tokens=4096, shuffle=True, seed=0, buffer_tokens=2**22,
                 drop_last=False, rank=0, world_size=1, exclude=("bos",), return_index=False, raw=False):
        for name, v, least in (("batch_tokens", batch_tokens, 1), ("buffer_tokens", buffer_tokens, 1),
                               ("world_size", world_size, 1), ("rank", rank, 0), ("seed", seed, 0)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {v!r}")
        if seed >= 1 << 64:
            raise ValueError(f"seed must be below 2^64, got {seed}")
        if rank >= world_size:
            raise ValueError(f"rank {rank} is not below world_size {world_size}")
        if isinstance(exclude, str):
            exclude = (exclude,)
        bad = [e for e in exclude if e not in _EXCLUDE]
        if bad:
            raise ValueError(f"exclude: unknown {bad}, expected any of {list(_EXCLUDE)}")
        self._run = run
        self._point = run._point(point)
        self.batch_tokens, self.buffer_tokens = int(batch_tokens), int(buffer_tokens)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.rank, self.world_size = int(rank), int(world_size)
        self.exclude = tuple(sorted(set(exclude)))
        self.return_index, self.raw = bool(return_index), bool(raw)
        self._bos = run.bos_token_id() if "bos" in self.exclude else None
        self._special = run.special_token_ids() if "special" in self.exclude else None
        self._filtering = self._bos is not None or self._special is not None
        self._row_shape = tuple(run[point].shape[1:])
        # Two windows of half the buffer each: the next one fills while the last one's batches may still be held.
        self._window_rows = max(1, self.buffer_tokens // 2)
        self._widen = self._point.dtype == "BF16" and not self.raw
        self._buffer_dtype = np.uint32 if self._widen else _DTYPES[self._point.dtype]
        self._window_buffers, self._batch_buffers = _Reused(), _Reused()
        self._chunks()
        self.epoch = 0
        self._done = 0  # rows of this epoch handed out
        self._plan_cache = None
        self._window = None  # the _Window batches are being handed out from
        self._pieces_cache = None  # ((epoch, window number), _pieces of that window)

    # ---- the epoch's plan ---------------------------------------------------------------------------

    def _chunks(self):
        """Chunks of consecutive rows within one shard: shard, first and end row (in the shard), kept rows."""
        total = self._run.num_rows
        chunk_rows = max(1, self._window_rows // _CHUNKS_PER_WINDOW, -(-total // _MAX_CHUNKS))
        shard, start, stop, kept = [], [], [], []
        for k, s in enumerate(self._run._shards):
            if s.rows == 0:
                continue
            # A zstd shard is decompressed whole to read any row of it: its chunk is the whole shard, so a
            # window decompresses each of its shards once.
            step = s.rows if s.path.endswith(".zst") else chunk_rows
            a = np.arange(0, s.rows, step, dtype=np.int64)
            b = np.minimum(a + step, s.rows)
            shard.append(np.full(a.shape, k, dtype=np.int64))
            start.append(a)
            stop.append(b)
            if self._filtering:
                keep = self._keep_mask(k, 0, s.rows)
                kept.append(np.add.reduceat(keep.astype(np.int64), a))
            else:
                kept.append(b - a)
        cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64)  # noqa: E731
        self._c_shard, self._c_start, self._c_stop, self._c_kept = cat(shard), cat(start), cat(stop), cat(kept)
        self._kept_total = int(self._c_kept.sum())

    def _keep_mask(self, k, a, b):
        """Rows a..b-1 of shard k that `exclude` keeps (boolean [b-a])."""
        t = self._run._raw(k)
        ids = t["token_ids"][a:b]
        keep = np.ones(b - a, dtype=bool)
        if self._special is not None:
            keep &= ~np.isin(ids, self._special)
        if self._bos is not None:
            if "token_positions" in t:
                first = t["token_positions"][a:b] == 0
            else:  # version 1 stored every token: a sample's first row is at its offset
                first = np.zeros(b - a, dtype=bool)
                off = t["sample_offsets"][:-1]
                off = off[(off >= a) & (off < b) & (off < t["sample_offsets"][1:])]
                first[off - a] = True
            keep &= ~(first & (ids == self._bos))
        return keep

    def _plan(self):
        if self._plan_cache is not None and self._plan_cache[0] == self.epoch:
            return self._plan_cache[1]
        p = _Plan()
        n = self._c_kept.shape[0]
        p.order = (permute(n, round_keys(self.seed, self.epoch), 0, n) if self.shuffle
                   else np.arange(n, dtype=np.int64))
        p.cum = np.concatenate([[0], np.cumsum(self._c_kept[p.order])]).astype(np.int64)
        K, W = self._kept_total, self.world_size
        p.lo = self.rank * K // W
        p.rows = (self.rank + 1) * K // W - p.lo
        p.yield_rows = (K // W) // self.batch_tokens * self.batch_tokens if self.drop_last else p.rows
        self._plan_cache = (self.epoch, p)
        return p

    # ---- windows ------------------------------------------------------------------------------------

    def _window_pieces(self, p, w):
        """Window w of this rank's part: (rows, pieces) as _pieces gives them (kept from the prefetch of the
        window before, which computed them already)."""
        key = (self.epoch, w)
        if self._pieces_cache is None or self._pieces_cache[0] != key:
            ws = self._window_rows
            self._pieces_cache = (key, self._pieces(p, w * ws, min(p.rows, (w + 1) * ws)))
        return self._pieces_cache[1]

    def _pieces(self, p, r0, r1):
        """Rows r0..r1-1 of this rank's part as (r1 - r0, pieces (shard, its local rows [n] int64, first place
        in r0..r1)), the pieces sorted by shard and row so that reading them reads each shard front to back."""
        g0, g1 = p.lo + r0, p.lo + r1
        pieces = []
        i = int(np.searchsorted(p.cum, g0, side="right")) - 1
        while i < p.order.shape[0] and p.cum[i] < g1:
            c, base = int(p.order[i]), int(p.cum[i])
            u0, u1 = max(g0, base) - base, min(g1, int(p.cum[i + 1])) - base
            if u1 > u0:
                k, a, b = int(self._c_shard[c]), int(self._c_start[c]), int(self._c_stop[c])
                if self._filtering:
                    local = a + np.flatnonzero(self._keep_mask(k, a, b))[u0:u1]
                else:
                    local = np.arange(a + u0, a + u1, dtype=np.int64)
                pieces.append((k, local, base + u0 - g0))
            i += 1
        pieces.sort(key=lambda x: (x[0], int(x[1][0])))
        groups = []  # neighbours in the shard and in place (run order) read as one piece
        for k, local, v0 in pieces:
            last = groups[-1] if groups else None
            if last and last[0] == k and last[2] + last[3] == v0 and int(last[1][-1][-1]) + 1 == int(local[0]):
                last[1].append(local)
                last[3] += local.shape[0]
            else:
                groups.append([k, [local], v0, local.shape[0]])
        return g1 - g0, [(k, ls[0] if len(ls) == 1 else np.concatenate(ls), v0) for k, ls, v0, _ in groups]

    def _load_window(self, p, w):
        """Window w in its seeded order: the table of where its pieces' rows are (each batch then computes
        which of them its places take), or (a window with zstd shards) the rows themselves, each copied once
        from the shard straight to its place."""
        n, pieces = self._window_pieces(p, w)
        win = _Window()
        win.key, win.n, win.rows = (self.epoch, w), n, None
        win.keys = round_keys(self.seed, self.epoch, self.rank, self.world_size, w + 1)
        if any(self._run._shards[k].path.endswith(".zst") for k, _, _ in pieces):
            win.rows = self._window_buffers.get((self._window_rows,) + self._row_shape, self._buffer_dtype)[:n]
            win.index = self._copy_rows(pieces, win.rows, win.keys)
        else:
            win.sources, win.which, win.local, win.index = self._table(pieces, n)
        if (w + 1) * self._window_rows < p.rows:  # the next window's chunks: the kernel reads them meanwhile
            for k, local, _ in self._window_pieces(p, w + 1)[1]:
                self._run._prefetch(k, self._point.key, int(local[0]), int(local[-1]) + 1)
        return win

    def _table(self, pieces, n):
        """Where the pieces' rows are, in the pieces' order: (sources, which [n] int32, local [n] int64, run row
        numbers [n] int64, or None unless return_index), for gather_rows."""
        sources, slot = [], {}
        which = np.empty(n, dtype=np.int32)
        local = np.empty(n, dtype=np.int64)
        index = np.empty(n, dtype=np.int64) if self.return_index else None
        for k, rows, v0 in pieces:
            if k not in slot:
                slot[k] = len(sources)
                sources.append(self._run._raw(k)[self._point.key])  # held: the map stays open while in use
            dest = slice(v0, v0 + rows.shape[0])
            which[dest] = slot[k]
            local[dest] = rows
            if index is not None:
                index[dest] = rows + self._run._shards[k].row_start
        return sources, which, local, index

    def _copy_rows(self, pieces, rows, keys):
        """Copies the pieces' rows into `rows` in the window's order (the row v of the pieces goes to the place
        permute(n, keys, v, v + 1, inverse=True)), BF16 widened to float32 bits; returns their run row numbers
        in the same places. Pieces come sorted by shard: each zstd shard is decompressed once."""
        n = rows.shape[0]
        index = np.empty(n, dtype=np.int64)
        for k, local, v0 in pieces:
            x = self._run._raw(k)[self._point.key]
            m = local.shape[0]
            consecutive = int(local[-1]) - int(local[0]) == m - 1
            src = x[int(local[0]):int(local[0]) + m] if consecutive else x[local]
            if self._widen:  # widened into a piece-sized temporary first: a scatter that casts is slow
                src = np.left_shift(src, 16, dtype=np.uint32)
            places = permute(n, keys, v0, v0 + m, inverse=True)
            rows[places] = src
            index[places] = local + self._run._shards[k].row_start
        return index

    def _out(self, n):
        """The array a batch of n rows is copied into."""
        return self._batch_buffers.get((n,) + self._row_shape, self._buffer_dtype)

    def _read_in_order(self, p, a, b):
        """Rows a..b-1 of this rank's part in run order (shuffle=False): copied straight into the batch, as a
        plain sweep over the shards would; no window."""
        n, pieces = self._pieces(p, a, b)
        sources, which, local, index = self._table(pieces, n)
        return gather_rows(sources, which, local, self._out(n), self._widen), index

    # ---- iteration ----------------------------------------------------------------------------------

    def __iter__(self):
        return self

    def __next__(self):
        p = self._plan()
        if self._done >= p.yield_rows:
            self.epoch += 1
            self._done = 0
            self._window = None
            raise StopIteration
        a, b = self._done, min(self._done + self.batch_tokens, p.yield_rows)
        if not self.shuffle:
            batch, index = self._read_in_order(p, a, b)
        else:
            batch, index = self._shuffled(p, a, b)
        self._done = b
        if self._widen:
            batch = batch.view(np.float32)
        return (batch, index) if self.return_index else batch

    def _shuffled(self, p, a, b):
        """Rows a..b-1 of this rank's part in the shuffled order: (batch, run row numbers)."""
        ws, segments = self._window_rows, []
        while a < b:
            w = a // ws
            if self._window is None or self._window.key != (self.epoch, w):
                self._window = None  # its buffer may be reused right away
                self._window = self._load_window(p, w)
            e = min(b, (w + 1) * ws)
            segments.append((self._window, a - w * ws, e - w * ws))
            a = e
        win, u0, u1 = segments[0]
        if len(segments) == 1 and win.rows is not None:  # a view of the copied window
            return win.rows[u0:u1], (win.index[u0:u1] if win.index is not None else None)
        batch = self._out(sum(u1 - u0 for _, u0, u1 in segments))
        at, index = 0, []
        for win, u0, u1 in segments:
            if win.rows is not None:
                batch[at:at + u1 - u0] = win.rows[u0:u1]
                if win.index is not None:
                    index.append(win.index[u0:u1])
            else:
                order = permute(win.n, win.keys, u0, u1)
                gather_rows(win.sources, win.which, win.local, batch[at:at + u1 - u0], self._widen, 0, order)
                if win.index is not None:
                    index.append(win.index[order])
            at += u1 - u0
        return batch, (None if not index else index[0] if len(index) == 1 else np.concatenate(index))

    def __len__(self):
        """Batches in the current epoch (all of it, not what is left)."""
        return -(-self._plan().yield_rows // self.batch_tokens)

    @property
    def rows_per_epoch(self):
        """Rows this rank yields per epoch."""
        return self._plan().yield_rows

    def set_epoch(self, epoch):
        """Start epoch `epoch` from its beginning (as DistributedSampler.set_epoch)."""
        self.epoch, self._done, self._window = int(epoch), 0, None

    # ---- resume -------------------------------------------------------------------------------------

    def _settings(self):
        m = self._run.manifest
        return {"run": m.get("settings_hash") or self._run.path, "rows": self._run.num_rows,
                "shards": self._run.num_shards, "point": self._point.name, "batch_tokens": self.batch_tokens,
                "buffer_tokens": self.buffer_tokens, "shuffle": self.shuffle, "seed": self.seed,
                "drop_last": self.drop_last, "rank": self.rank, "world_size": self.world_size,
                "exclude": list(self.exclude), "order": _ORDER}

    def state_dict(self):
        """The position in the stream: {"epoch", "rows_done", "settings"} (JSON-serialisable)."""
        return {"epoch": self.epoch, "rows_done": self._done, "settings": self._settings()}

    def load_state_dict(self, state):
        """Continue from a state_dict(): the same rows in the same order as without the interruption. The
        stream's settings (and the run's size) must equal those the state was taken with."""
        try:
            epoch, done, settings = int(state["epoch"]), int(state["rows_done"]), dict(state["settings"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("load_state_dict: expected a dict from state_dict() with epoch, rows_done, settings") from None
        mine = self._settings()
        diff = [f"{k}: state {settings.get(k)!r}, stream {v!r}" for k, v in mine.items() if settings.get(k) != v]
        if diff:
            raise ValueError("load_state_dict: the state was taken with other settings: " + "; ".join(diff))
        self.epoch, self._done, self._window = epoch, done, None
        if done > self._plan().yield_rows:
            raise RunError(f"load_state_dict: rows_done {done} is past this epoch's {self._plan().yield_rows} rows")
