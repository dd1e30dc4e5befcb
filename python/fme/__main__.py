"""python -m fme RUN_DIR [--verify]: a run's summary from its manifest; --verify checks every shard."""

import argparse
import sys

from .errors import RunError
from .run import open_run


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m fme", description="Summarise (and optionally verify) an `fme extract` run directory.")
    ap.add_argument("run_dir")
    ap.add_argument("--verify", action="store_true", help="check sha256 of every shard, the indices and the stats")
    args = ap.parse_args(argv)
    try:
        run = open_run(args.run_dir)
        info = run.verify() if args.verify else run.summary()
    except (RunError, OSError) as e:
        print(f"fme: error: {e}", file=sys.stderr)
        return 1
    print(f"run:         {info['run_dir']}{'' if info['complete'] else '  (INCOMPLETE: extraction did not finish)'}")
    print(f"samples:     {info['samples']}")
    print(f"tokens:      {info['tokens']}")
    print(f"shards:      {info['shards']} ({info['bytes']} bytes)")
    print(f"format:      version {info['version']}")
    print(f"hooks:       {', '.join(info['hooks'])}")
    print(f"hidden size: {info['hidden']} ({info['dtype']})")
    if args.verify:
        print("verify:      ok (sha256, sample_index, sample_offsets, token_positions, stats)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
