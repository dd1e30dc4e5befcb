"""fme.torch.ActivationDataset: the activation stream of run.batches as a torch IterableDataset.

Use with DataLoader(dataset, batch_size=None, num_workers=N): the dataset already yields whole batches. The
stream is split over DistributedDataParallel ranks and DataLoader workers together (rank * workers + worker of
world_size * workers parts), so no row is seen twice and none is missed. Call set_epoch(e) before each epoch,
as with DistributedSampler.
"""

import numpy as np
import torch
import torch.utils.data

from .run import Run, open_run


class ActivationDataset(torch.utils.data.IterableDataset):
    """Batches [batch_tokens, *row_shape] of one hook point of a run, as torch tensors.

    run: a path (each worker opens it itself) or a Run. The stream arguments are run.batches'. rank and
    world_size default to torch.distributed's when it is initialised, else 0 and 1. dtype: torch.float32
    (default) or, for runs stored in bf16, torch.bfloat16 (the stored bits, no widening).
    return_index: yield (rows, row_numbers) with row_numbers int64 into run[point] / run.token_ids.
    """

    def __init__(self, run, point, batch_tokens=4096, shuffle=True, seed=0, buffer_tokens=2**22, drop_last=False,
                 exclude=("bos",), rank=None, world_size=None, dtype=None, return_index=False):
        super().__init__()
        self.path = run.path if isinstance(run, Run) else str(run)
        self.point = point
        self.options = dict(batch_tokens=batch_tokens, shuffle=shuffle, seed=seed, buffer_tokens=buffer_tokens,
                            drop_last=drop_last, exclude=exclude, return_index=return_index)
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = rank if rank is not None else (torch.distributed.get_rank() if dist else 0)
        self.world_size = world_size if world_size is not None else (torch.distributed.get_world_size() if dist else 1)
        stored = open_run(self.path).points[point].dtype if not isinstance(run, Run) else run.points[point].dtype
        if dtype not in (None, torch.float32, torch.bfloat16):
            raise ValueError(f"dtype must be torch.float32 or torch.bfloat16, got {dtype}")
        self.dtype = dtype or torch.float32
        if self.dtype == torch.bfloat16 and stored != "BF16":
            raise ValueError(f"dtype=torch.bfloat16 reads bf16 runs as stored; {point} is stored as {stored}")
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def _stream(self):
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        stream = open_run(self.path).batches(self.point, rank=self.rank * workers + worker,
                                             world_size=self.world_size * workers,
                                             raw=self.dtype == torch.bfloat16, **self.options)
        stream.set_epoch(self.epoch)
        return stream

    def _tensor(self, rows):
        if self.dtype == torch.bfloat16:  # uint16 bits -> the same bits as bfloat16, no copy
            return torch.from_numpy(np.ascontiguousarray(rows).view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(rows)

    def __iter__(self):
        for item in self._stream():
            if self.options["return_index"]:
                rows, index = item
                yield self._tensor(rows), torch.from_numpy(index)
            else:
                yield self._tensor(item)
