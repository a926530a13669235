"""The safetensors container of model files, through the ``safetensors`` package.

A safetensors file (https://huggingface.co/docs/safetensors) is an 8-byte
header length, a JSON header (each tensor's dtype, shape and byte offsets, and
a string-to-string ``__metadata__``), then the tensors' bytes back to back.
The ``safetensors`` package (extra ``vilu-sklearn[persist]``) parses and
checks the header against the file size; this module adds what model files of
the package need around it: the SHA-256 checksums stored in the metadata, an
atomic write that respects the umask, and header-only access (shapes before
any tensor is read).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = [
    "HeaderFile",
    "checksums",
    "dumps",
    "open_file",
    "require_safetensors",
    "write_atomic",
]

# metadata keys of the checksums (SHA-256, hex)
PAYLOAD_KEY = "payload_sha256"
METADATA_KEY = "metadata_sha256"

_INSTALL = "pip install vilu-sklearn[persist]"


def require_safetensors() -> Any:
    """The ``safetensors`` package, or an ImportError saying how to install it.

    Examples
    --------
    >>> from vilu_sklearn._safetensors import require_safetensors
    >>> require_safetensors().__name__
    'safetensors'
    """
    try:
        import safetensors
        import safetensors.numpy  # noqa: F401
    except ImportError:
        raise ImportError(
            "Saving and loading vilu_sklearn models needs the safetensors "
            f"package: {_INSTALL}"
        ) from None
    return safetensors


def _metadata_digest(metadata: dict[str, str]) -> str:
    rest = {k: v for k, v in metadata.items() if k not in (PAYLOAD_KEY, METADATA_KEY)}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def checksums(blob: bytes) -> tuple[str, str]:
    """(payload, metadata) SHA-256 of a serialized file's bytes."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    meta = header.get("__metadata__") or {}
    return hashlib.sha256(blob[8 + n :]).hexdigest(), _metadata_digest(meta)


def _little_endian(array: np.ndarray) -> np.ndarray:
    # the package writes an array's buffer as is: strides and byte order first
    # (np.ascontiguousarray would make 0-d arrays 1-d)
    return array.astype(array.dtype.newbyteorder("<"), order="C", copy=False)


def dumps(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """Serialize arrays and string metadata, with the two checksums added.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn._safetensors import dumps
    >>> blob = dumps({"w": np.eye(2, dtype=np.float32)}, {"k": "v"})
    >>> len(blob) > 100
    True
    """
    st = require_safetensors()
    arrays = {k: _little_endian(v) for k, v in tensors.items()}
    meta = {str(k): str(v) for k, v in metadata.items()}
    try:
        blob: bytes = st.numpy.save(arrays, metadata=meta)
    except st.SafetensorError as exc:
        raise TypeError(f"These arrays cannot be saved: {exc}") from None
    meta[PAYLOAD_KEY], meta[METADATA_KEY] = checksums(blob)
    # the tensor bytes do not depend on the metadata: the payload hash holds
    out: bytes = st.numpy.save(arrays, metadata=meta)
    return out


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write to a new file next to ``path``, then rename it over ``path``.

    The file is created with mode 0o666 less the umask, like any new file (a
    temporary file from :mod:`tempfile` would stay 0o600).
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _bad(path: str, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a valid safetensors file: {why}.")


class HeaderFile:
    """An open safetensors file: header facts at once, tensors on request."""

    def __init__(self, path: str, handle: Any) -> None:
        self.path = path
        self._handle = handle
        self.metadata: dict[str, str] = dict(handle.metadata() or {})
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, str] = {}
        for name in handle.keys():
            view = handle.get_slice(name)
            self.shapes[name] = tuple(int(s) for s in view.get_shape())
            self.dtypes[name] = str(view.get_dtype())

    def payload_digest(self) -> str:
        """SHA-256 of the bytes after the header, read in 1 MiB blocks."""
        h = hashlib.sha256()
        with open(self.path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            f.seek(8 + n)
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    def metadata_digest(self) -> str:
        """SHA-256 of the metadata without its checksums (sorted JSON)."""
        return _metadata_digest(self.metadata)

    def tensor(self, name: str) -> np.ndarray:
        """The tensor ``name`` as a new numpy array."""
        if name not in self.shapes:
            raise ValueError(f"The file has no tensor {name!r}.")
        st = require_safetensors()
        try:
            return np.asarray(self._handle.get_tensor(name))
        except (st.SafetensorError, TypeError, ValueError) as exc:
            raise ValueError(f"Tensor {name!r} cannot be read: {exc}") from None


@contextmanager
def open_file(path: str | os.PathLike[str]) -> Iterator[HeaderFile]:
    """Open a safetensors file, its header checked against its size.

    Raises ValueError, naming the file, for anything that is not a well-formed
    safetensors file (truncated, inconsistent offsets, unknown dtypes).
    """
    st = require_safetensors()
    path = os.fspath(path)
    try:
        handle_cm = st.safe_open(path, framework="numpy")
    except st.SafetensorError as exc:
        raise _bad(path, str(exc)) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(path, str(exc)) from None
    with handle_cm as handle:
        try:
            header = HeaderFile(path, handle)
        except (st.SafetensorError, ValueError, TypeError) as exc:
            raise _bad(path, str(exc)) from None
        yield header
