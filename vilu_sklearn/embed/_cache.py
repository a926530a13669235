"""On-disk cache of embeddings, written in chunks that survive interruptions.

Layout of one cache namespace (one model + preprocessing + kind of input)::

    <cache_dir>/<namespace hash>/
        meta.json                 what the namespace hash stands for
        <chunk id>.emb.npy        float32 (m, d) embeddings, memory-mappable
        <chunk id>.keys.npy       |S32 (m,) content hashes of the m inputs

Every file is written to a temporary name and renamed into place, and the keys
file of a chunk is written after its embeddings: a chunk whose keys file exists
is complete. An interrupted run therefore keeps every finished chunk, and the
next run only computes what is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EmbeddingCache", "content_hash"]


def content_hash(*parts: bytes | str) -> bytes:
    """A 32-character hexadecimal digest of the given parts (as bytes).

    Examples
    --------
    >>> from vilu_sklearn.embed._cache import content_hash
    >>> len(content_hash(b"abc", "def"))
    32
    """
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest().encode("ascii")


def _atomic_save(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class EmbeddingCache:
    """Embeddings stored on disk, looked up by the hash of their input.

    Parameters
    ----------
    cache_dir : str or path-like
        Root folder of the cache (created if needed).
    namespace : dict
        JSON-serialisable description of everything the embeddings depend on
        apart from the input (backend, model, weights, preprocessing, ...).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from vilu_sklearn.embed._cache import EmbeddingCache, content_hash
    >>> cache = EmbeddingCache(tempfile.mkdtemp(), {"model": "demo"})
    >>> keys = [content_hash("a"), content_hash("b")]
    >>> cache.add(keys, np.eye(2, dtype=np.float32))
    >>> found, emb = cache.get([content_hash("b"), content_hash("c")])
    >>> found.tolist(), emb[0].tolist()
    ([True, False], [0.0, 1.0])
    """

    def __init__(self, cache_dir: str | os.PathLike[str], namespace: dict) -> None:
        text = json.dumps(namespace, sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
        self.path = Path(cache_dir) / digest
        self.path.mkdir(parents=True, exist_ok=True)
        meta = self.path / "meta.json"
        if not meta.exists():
            fd, tmp = tempfile.mkstemp(dir=self.path, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, meta)
        self._index: dict[bytes, tuple[int, int]] = {}
        self._chunks: list[str] = []
        self._loaded: set[str] = set()
        self.refresh()

    def refresh(self) -> None:
        """Read the keys of chunks written since the last refresh."""
        for keys_file in sorted(self.path.glob("*.keys.npy")):
            chunk = keys_file.name[: -len(".keys.npy")]
            if chunk in self._loaded:
                continue
            if not (self.path / f"{chunk}.emb.npy").exists():
                continue  # keys are written after emb: an orphan is not a chunk
            keys = np.load(keys_file, allow_pickle=False)
            idx = len(self._chunks)
            self._chunks.append(chunk)
            self._loaded.add(chunk)
            for row, key in enumerate(keys.tolist()):
                self._index.setdefault(key, (idx, row))

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: bytes) -> bool:
        return key in self._index

    def get(self, keys: list[bytes]) -> tuple[np.ndarray, np.ndarray | None]:
        """Look keys up.

        Returns
        -------
        found : ndarray of bool, shape (len(keys),)
        embeddings : ndarray of shape (n_found, d) or None
            The embeddings of the found keys, in order.
        """
        found = np.array([k in self._index for k in keys], dtype=bool)
        if not found.any():
            return found, None
        by_chunk: dict[int, list[tuple[int, int]]] = {}
        for pos, key in enumerate(keys):
            if found[pos]:
                chunk, row = self._index[key]
                by_chunk.setdefault(chunk, []).append((pos, row))
        out: np.ndarray | None = None
        slot = np.cumsum(found) - 1
        for chunk, items in by_chunk.items():
            emb = np.load(
                self.path / f"{self._chunks[chunk]}.emb.npy",
                mmap_mode="r",
                allow_pickle=False,
            )
            if out is None:
                out = np.empty((int(found.sum()), emb.shape[1]), dtype=np.float32)
            pos_arr = np.array([p for p, _ in items])
            rows = np.array([r for _, r in items])
            out[slot[pos_arr]] = emb[rows]
        return found, out

    def add(self, keys: list[bytes], embeddings: Any) -> None:
        """Store a finished chunk: embeddings first, then its keys (commit)."""
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.shape[0] != len(keys):
            raise ValueError(
                f"{len(keys)} keys but {embeddings.shape[0]} embeddings to store."
            )
        if not keys:
            return
        chunk = uuid.uuid4().hex
        _atomic_save(self.path / f"{chunk}.emb.npy", embeddings)
        _atomic_save(self.path / f"{chunk}.keys.npy", np.array(keys, dtype="S32"))
        idx = len(self._chunks)
        self._chunks.append(chunk)
        self._loaded.add(chunk)
        for row, key in enumerate(keys):
            self._index.setdefault(key, (idx, row))
