"""Self-contained safetensors reader: read(path) -> ({name: torch.Tensor}, metadata).

Format: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}} (plus an
optional "__metadata__"), then the raw little-endian bytes; offsets are relative to the end of the header.
Tensors are decoded with torch.frombuffer straight from the bytes (no per-element Python), then cloned so
each owns aligned memory (safetensors does not promise alignment) and the file buffer can be freed."""
import json
import struct
import sys

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read(path, names=None):
    if sys.byteorder != "little":
        raise RuntimeError("safetensors data is little-endian; this reader does not byte-swap")
    with open(path, "rb") as f:
        data = bytearray(f.read())  # writable, so torch.frombuffer can view it without a warning
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack_from("<Q", data, 0)
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(bytes(data[8:8 + n]))
    meta = header.pop("__metadata__", None) or {}
    base = 8 + n
    out = {}
    for name, info in header.items():
        if names is not None and name not in names:
            continue
        if info["dtype"] not in DTYPES:
            raise ValueError(f"{path}: {name}: unsupported dtype {info['dtype']}")
        dt, shape = DTYPES[info["dtype"]], info["shape"]
        b, e = info["data_offsets"]
        numel = 1
        for s in shape:
            numel *= s
        itemsize = torch.empty((), dtype=dt).element_size()
        if not (0 <= b <= e and base + e <= len(data)) or e - b != numel * itemsize:
            raise ValueError(f"{path}: {name}: offsets {b}..{e} do not hold {shape} of {info['dtype']}")
        if numel == 0:
            out[name] = torch.empty(shape, dtype=dt)
        else:
            out[name] = torch.frombuffer(data, dtype=dt, count=numel, offset=base + b).reshape(shape).clone()
    return out, meta
