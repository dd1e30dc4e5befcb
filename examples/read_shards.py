#!/usr/bin/env python3
"""Reads the run directory written by `fme extract`, with numpy alone: a thin front of the fme Python
package (python/fme), taken from this checkout when it is not installed (pip install ./python).

Library use:
    from read_shards import iter_samples, load_shard
    for sample_index, token_ids, acts in iter_samples("runs/x", hooks=["blocks.10.hook_resid_post"]):
        acts["blocks.10.hook_resid_post"]  # np.ndarray [n_tokens, hidden], float32 (F32/BF16) or float16 (F16)
    iter_samples("runs/x", layers=[10])   # the same: shorthand for those blocks' hook_resid_post
    for sample_index, token_ids, positions, acts in iter_samples("runs/x", with_positions=True): ...
The package itself has more: fme.open_run(path)[point] as one lazy array, shuffled batches, torch datasets.

Command line:
    python3 read_shards.py RUN_DIR            # summary from the manifest
    python3 read_shards.py RUN_DIR --verify   # also checks every shard's sha256, the indices and the stats
"""

import os
import sys

try:
    import fme
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import fme
from fme.__main__ import main
from fme.errors import ShardError
from fme.shards import load_shard, read_header  # noqa: F401  (library use)


def iter_samples(run_dir, hooks=None, layers=None, verify=False, with_positions=False):
    """Yields (sample_index, token_ids, {hook name: activations}) for every stored sample in order (with
    with_positions also token_positions after token_ids). hooks: the points to return (default: all);
    layers: shorthand for blocks.{i}.hook_resid_post. verify: run.verify() first (raises ShardError)."""
    run = fme.open_run(run_dir)
    wanted = list(hooks or []) + [f"blocks.{int(x)}.hook_resid_post" for x in (layers or [])]
    if hooks is None and layers is None:
        wanted = list(run.points)
    missing = [h for h in wanted if h not in run.points]
    if missing:
        raise ShardError(f"{run_dir}: {missing} were not extracted (the run has {list(run.points)})")
    if verify:
        run.verify()
    yield from run.iter_samples(points=wanted, with_positions=with_positions)


def summarize(run_dir, verify=False):
    """A dict describing the run; with verify, every check runs first."""
    run = fme.open_run(run_dir)
    return run.verify() if verify else run.summary()


if __name__ == "__main__":
    sys.exit(main())
