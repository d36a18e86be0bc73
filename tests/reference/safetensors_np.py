"""A small safetensors writer and reader in plain NumPy, for the reference scripts here.

The format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length, a
JSON header {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}
padded with spaces, then the tensors' little-endian bytes back to back. F32 and BF16 are written;
BF16 is float32 rounded to nearest, ties to even, keeping the upper 16 bits. Integer tensors
(I64, I32) are written and read as well (read back as int64 arrays).
"""

import json
import os
import struct

import numpy as np


def bf16_bits(values):
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even (finite inputs)."""
    bits = np.ascontiguousarray(np.asarray(values, dtype=np.float32)).view(np.uint32).astype(np.uint64)
    bits = bits + 0x7FFF + ((bits >> 16) & 1)
    return (bits >> 16).astype(np.uint16)


def bf16_round(values):
    """The float32 values that bfloat16 storage of `values` holds."""
    return (bf16_bits(values).astype(np.uint32) << 16).view(np.float32)


_INT_DTYPES = {"I64": "<i8", "I32": "<i4"}


def _encode(arr, dtype):
    if dtype == "F32":
        return np.ascontiguousarray(np.asarray(arr, dtype="<f4")).tobytes()
    if dtype == "BF16":
        return np.ascontiguousarray(bf16_bits(arr).astype("<u2")).tobytes()
    if dtype in _INT_DTYPES:
        return np.ascontiguousarray(np.asarray(arr).astype(_INT_DTYPES[dtype])).tobytes()
    raise ValueError(f"unsupported dtype {dtype}")


def write_safetensors(path, tensors, metadata=None, dtypes=None):
    """tensors: {name: array} in file order; dtypes: {name: "F32"|"BF16"|"I64"|"I32"} (default F32).

    Written to a temporary file and renamed, so a half-written file is never left behind."""
    dtypes = dtypes or {}
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, arr in tensors.items():
        dtype = dtypes.get(name, "F32")
        data = _encode(arr, dtype)
        header[name] = {"dtype": dtype, "shape": list(np.shape(arr)),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # the data starts 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def read_safetensors(path):
    """-> ({name: array}, metadata dict, {name: dtype}).

    F32 and BF16 are read as float32 arrays, I64 and I32 as int64 arrays."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data = raw[8 + n:]
    tensors, dtypes = {}, {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        chunk = data[begin:end]
        if info["dtype"] == "F32":
            arr = np.frombuffer(chunk, dtype="<f4").astype(np.float32)
        elif info["dtype"] == "BF16":
            arr = (np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] in _INT_DTYPES:
            arr = np.frombuffer(chunk, dtype=_INT_DTYPES[info["dtype"]]).astype(np.int64)
        else:
            raise ValueError(f"{path}: {name}: unsupported dtype {info['dtype']}")
        tensors[name] = arr.reshape(info["shape"])
        dtypes[name] = info["dtype"]
    return tensors, metadata, dtypes
