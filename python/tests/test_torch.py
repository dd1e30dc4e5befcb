"""fme.torch.ActivationDataset under a real DataLoader: workers (and ranks) split the stream without overlap."""

import numpy as np
import pytest

import fme

torch = pytest.importorskip("torch", reason="torch is an optional extra (Debian python3-torch)")
import fme.torch  # noqa: E402

POINT = "blocks.0.hook_resid_post"


@pytest.mark.parametrize("world_size", [1, 2])
def test_dataloader_workers_and_ranks_cover_every_row_once(run_fp32, world_size):
    run = fme.open_run(run_fp32)
    full = torch.from_numpy(np.asarray(run[POINT]))
    seen = []
    for rank in range(world_size):
        ds = fme.torch.ActivationDataset(run_fp32, POINT, batch_tokens=48, buffer_tokens=200, exclude=(),
                                         rank=rank, world_size=world_size, return_index=True)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
        for rows, index in loader:
            assert rows.dtype == torch.float32 and rows.shape[1:] == full.shape[1:]
            assert torch.equal(rows, full[index])
            seen.append(index)
    seen = torch.cat(seen).sort().values
    assert torch.equal(seen, torch.arange(run.num_rows))


def test_bf16_runs_as_bfloat16_tensors_and_epochs(run_bf16_zstd):
    run = fme.open_run(run_bf16_zstd)
    ds = fme.torch.ActivationDataset(run, POINT, batch_tokens=64, exclude=(), dtype=torch.bfloat16, return_index=True)
    rows, index = next(iter(ds))
    assert rows.dtype == torch.bfloat16
    assert torch.equal(rows.float(), torch.from_numpy(run[POINT][index.numpy()]))
    first = next(iter(ds))[1]
    ds.set_epoch(1)
    assert not torch.equal(next(iter(ds))[1], first), "another epoch, another order"
    with pytest.raises(ValueError, match="bfloat16"):
        fme.torch.ActivationDataset(run, "blocks.0.hook_resid_post", dtype=torch.float16)
