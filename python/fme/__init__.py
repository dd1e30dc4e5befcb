"""fme from Python: read `fme extract` runs, stream their activations for SAE training, tokenize and extract.

    import fme
    run = fme.open_run("runs/x")                     # manifest, points, samples; RunError if malformed
    acts = run["blocks.6.hook_resid_post"]           # lazy [rows, hidden] over all shards (zero-copy maps)
    for batch in run.batches("blocks.6.hook_resid_post", batch_tokens=4096, seed=0):
        ...                                          # shuffled, every row once per epoch, resumable
    fme.torch.ActivationDataset(run, point)          # the same as a torch IterableDataset (import fme.torch)

With a native build (fme's CMake target fme_native, then `pip install ./python`): fme.Tokenizer and
fme.extract, the C++ tokenizer and extraction with the CLI's options; their errors are fme.Error.
"""

from .errors import RunError, ShardError
from .run import Point, RowArray, Run, open_run
from .stream import ActivationStream

try:
    from ._native import Error, Tokenizer, extract
except ImportError as _e:  # a pure-Python install: the readers work, the bindings say how to get them
    _why = str(_e)

    class Error(RuntimeError):
        """Errors of the native module (absent from this install)."""

    def _missing(*args, **kwargs):
        raise ImportError("fme was installed without its native module (" + _why + "): build fme "
                          "(bash scripts/build.sh), then pip install ./python again")

    class Tokenizer:
        from_dir = staticmethod(_missing)

        def __init__(self, *args, **kwargs):
            _missing()

    extract = _missing

__all__ = ["open_run", "Run", "RowArray", "Point", "ActivationStream", "RunError", "ShardError", "Tokenizer",
           "extract", "Error"]
__version__ = "0.1.0"
