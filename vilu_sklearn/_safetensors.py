"""A minimal reader and writer of the safetensors format, with numpy only.

The format (https://huggingface.co/docs/safetensors) is::

    8 bytes      N, the header length, unsigned little-endian
    N bytes      JSON header: {name: {"dtype": "F32", "shape": [...],
                 "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
    rest         the tensors' bytes, little-endian, C order, back to back

Offsets count from the first byte after the header. Nothing in a file is ever
executed: the header is parsed as JSON and every tensor is checked against the
size of the data before it is read. Files written here are read by the
``safetensors`` package, and files of that package are read here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_safetensors", "write_safetensors"]

_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_CODES: dict[np.dtype, str] = {dtype: code for code, dtype in _DTYPES.items()}
# a header larger than this is refused (the format's own limit is 100 MB)
_MAX_HEADER = 100_000_000


def write_safetensors(
    path: str | os.PathLike[str], tensors: dict[str, np.ndarray], metadata: dict
) -> None:
    """Write numpy arrays and string metadata as a safetensors file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from vilu_sklearn._safetensors import read_safetensors, write_safetensors
    >>> path = os.path.join(tempfile.mkdtemp(), "a.safetensors")
    >>> write_safetensors(path, {"w": np.eye(2, dtype=np.float32)}, {"k": "v"})
    >>> arrays, meta = read_safetensors(path)
    >>> arrays["w"].tolist(), meta
    ([[1.0, 0.0], [0.0, 1.0]], {'k': 'v'})
    """
    from .embed._cache import atomic_write

    header: dict[str, Any] = {
        "__metadata__": {str(k): str(v) for k, v in metadata.items()}
    }
    blobs, offset = [], 0
    for name, array in tensors.items():
        dtype = np.dtype(array.dtype).newbyteorder("<")
        if dtype not in _CODES:
            raise TypeError(f"Tensor {name!r}: dtype {array.dtype} cannot be saved.")
        data = np.ascontiguousarray(array, dtype=dtype).tobytes()
        header[name] = {
            "dtype": _CODES[dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    atomic_write(Path(path), len(text).to_bytes(8, "little") + text + b"".join(blobs))


def _bad(path: str, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a valid safetensors file: {why}.")


def read_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict]:
    """Read a safetensors file into numpy arrays and its string metadata.

    Raises ValueError, naming the file, for anything that is not a well-formed
    safetensors file (truncated, inconsistent offsets, unknown dtypes).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise _bad(path, "shorter than its 8-byte header length")
    n = int.from_bytes(raw[:8], "little")
    if n > _MAX_HEADER or 8 + n > len(raw):
        raise _bad(path, f"header length {n} does not fit the file ({len(raw)} B)")
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(path, f"its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _bad(path, "its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(v, str) for v in metadata.values()
    ):
        raise _bad(path, "__metadata__ must map strings to strings")
    data = memoryview(raw)[8 + n :]
    arrays = {name: _tensor(path, name, info, data) for name, info in header.items()}
    return arrays, metadata


def _tensor(path: str, name: str, info: Any, data: memoryview) -> np.ndarray:
    if not isinstance(info, dict) or info.get("dtype") not in _DTYPES:
        raise _bad(path, f"tensor {name!r} has no known dtype")
    dtype = _DTYPES[info["dtype"]]
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not (
        isinstance(shape, list)
        and all(isinstance(s, int) and s >= 0 for s in shape)
        and isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) for o in offsets)
    ):
        raise _bad(path, f"tensor {name!r} has a malformed shape or offsets")
    begin, end = offsets
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if not 0 <= begin <= end <= len(data) or end - begin != size:
        raise _bad(path, f"tensor {name!r} does not fit the data")
    return np.frombuffer(data[begin:end], dtype=dtype).reshape(shape).copy()
