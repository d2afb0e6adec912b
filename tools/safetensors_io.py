"""Minimal safetensors writer/reader (numpy only), the format every network of the project uses.

File = u64 little-endian header length N, N bytes of JSON header (padded with spaces to a multiple
of 8 so float32 data stays aligned), then the tensors' raw little-endian bytes, back to back in
header order with no holes. Header: {"__metadata__": {str: str}, name: {"dtype", "shape",
"data_offsets": [begin, end]} (offsets relative to the data section)}.
The Swift reader is Sources/NeuralNet/SafeTensors.swift.
"""
import json
import struct

import numpy as np

_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int32"): "I32",
           np.dtype("int64"): "I64", np.dtype("uint8"): "U8", np.dtype("int8"): "I8"}
_NP = {v: k for k, v in _DTYPES.items()}


def save(path, tensors: dict, metadata: dict | None = None):
    """Writes tensors (name -> numpy array, in insertion order) and string metadata."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, array in tensors.items():
        a = np.ascontiguousarray(array)
        if a.dtype not in _DTYPES:
            raise ValueError(f"{name}: unsupported dtype {a.dtype}")
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def load(path):
    """Returns (tensors: dict name -> numpy array, metadata: dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[base + b:base + e], dtype=_NP[info["dtype"]]).reshape(info["shape"])
    return out, meta
