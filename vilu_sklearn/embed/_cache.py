"""On-disk cache of embeddings, written in chunks that survive interruptions.

Layout of one cache namespace (one model + preprocessing + kind of input)::

    <cache_dir>/<namespace hash>/
        meta.json                 what the namespace hash stands for
        dim.json                  the embedding width, written with the first chunk
        <chunk id>.emb.npy        float32 (m, d) embeddings, memory-mappable
        <chunk id>.keys.npy       |S32 (m,) content hashes of the m inputs
        <chunk id>.sum.json       checksums of both files and the shape (m, d)

Every file is written to a temporary name and renamed into place, and the
checksum file of a chunk is written last: a chunk whose checksum file exists is
complete. An interrupted run therefore keeps every finished chunk, and the next
run only computes what is missing.

Every chunk is verified when it is first read: its checksums, its shape (rows
and the namespace's width) and its values (finite, no all-zero row). A chunk
that fails is deleted and its inputs are computed again, so flipped bytes, a
truncated file or a chunk of the wrong width never reach the caller.
"""

from __future__ import annotations

import hashlib
import io
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


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _atomic_save(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write(path, buffer.getvalue())


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class EmbeddingCache:
    """Embeddings stored on disk, looked up by the hash of their input.

    Chunks are verified (checksums, shape, finite non-zero rows) when first
    read; a chunk that fails is deleted and reported as missing, so its inputs
    are computed again.

    Parameters
    ----------
    cache_dir : str or path-like
        Root folder of the cache (created if needed).
    namespace : dict
        JSON-serialisable description of everything the embeddings depend on
        apart from the input (backend, model, weights, preprocessing, ...).

    Attributes
    ----------
    n_discarded_ : int
        Chunks found damaged and deleted since this object was created.

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
            _atomic_write_text(meta, text)
        self._index: dict[bytes, tuple[str, int]] = {}
        self._chunk_keys: dict[str, list[bytes]] = {}
        self._verified: set[str] = set()
        self._seen: set[str] = set()
        self.n_discarded_ = 0
        self.refresh()

    # ------------------------------------------------------------ internals
    def _files(self, chunk: str) -> tuple[Path, Path, Path]:
        return (
            self.path / f"{chunk}.emb.npy",
            self.path / f"{chunk}.keys.npy",
            self.path / f"{chunk}.sum.json",
        )

    def _dim(self) -> int | None:
        value = _read_json(self.path / "dim.json")
        return value if isinstance(value, int) and value > 0 else None

    def _read_keys(self, chunk: str) -> list[bytes] | None:
        """The keys of a committed chunk, or None if its record or keys are bad."""
        _, keys_file, sum_file = self._files(chunk)
        record = _read_json(sum_file)
        if not isinstance(record, dict):
            return None
        try:
            if _file_digest(keys_file) != record.get("keys"):
                return None
            keys = np.load(keys_file, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if keys.dtype != np.dtype("S32") or keys.shape != (record.get("rows"),):
            return None
        return list(keys.tolist())

    def _check_chunk(self, chunk: str) -> bool:
        """Verify a chunk's embeddings: checksum, shape and values."""
        emb_file, _, sum_file = self._files(chunk)
        record = _read_json(sum_file)
        dim = self._dim()
        if not isinstance(record, dict) or (
            dim is not None and record.get("dim") != dim
        ):
            return False
        try:
            if _file_digest(emb_file) != record.get("emb"):
                return False
            emb = np.load(emb_file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return False
        if emb.dtype != np.float32 or emb.shape != (
            record.get("rows"),
            record.get("dim"),
        ):
            return False
        values = np.asarray(emb)
        return bool(np.isfinite(values).all() and np.any(values != 0, axis=1).all())

    def _discard(self, chunk: str) -> None:
        """Delete a damaged chunk and rebuild the index without it."""
        for path in self._files(chunk):
            try:
                path.unlink()
            except OSError:
                pass
        self._chunk_keys.pop(chunk, None)
        self.n_discarded_ += 1
        self._index = {}
        for name, keys in self._chunk_keys.items():
            for row, key in enumerate(keys):
                self._index.setdefault(key, (name, row))

    # ------------------------------------------------------------------ API
    def refresh(self) -> None:
        """Read the keys of chunks written since the last refresh."""
        for sum_file in sorted(self.path.glob("*.sum.json")):
            chunk = sum_file.name[: -len(".sum.json")]
            if chunk in self._seen:
                continue
            self._seen.add(chunk)
            keys = self._read_keys(chunk)
            if keys is None:
                self._discard(chunk)
                continue
            self._chunk_keys[chunk] = keys
            for row, key in enumerate(keys):
                self._index.setdefault(key, (chunk, row))

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: bytes) -> bool:
        return key in self._index

    def _verify_chunks_of(self, keys: list[bytes]) -> None:
        while True:
            chunks = {self._index[k][0] for k in keys if k in self._index}
            bad = [c for c in chunks - self._verified if not self._check_chunk(c)]
            self._verified.update(chunks.difference(bad))
            if not bad:
                return
            for chunk in bad:
                self._discard(chunk)

    def get(self, keys: list[bytes]) -> tuple[np.ndarray, np.ndarray | None]:
        """Look keys up.

        Returns
        -------
        found : ndarray of bool, shape (len(keys),)
        embeddings : ndarray of shape (n_found, d) or None
            The embeddings of the found keys, in order.
        """
        self._verify_chunks_of(keys)
        found = np.array([k in self._index for k in keys], dtype=bool)
        if not found.any():
            return found, None
        by_chunk: dict[str, list[tuple[int, int]]] = {}
        for pos, key in enumerate(keys):
            if found[pos]:
                chunk, row = self._index[key]
                by_chunk.setdefault(chunk, []).append((pos, row))
        out: np.ndarray | None = None
        slot = np.cumsum(found) - 1
        for chunk, items in by_chunk.items():
            emb = np.load(self._files(chunk)[0], mmap_mode="r", allow_pickle=False)
            if out is None:
                out = np.empty((int(found.sum()), emb.shape[1]), dtype=np.float32)
            pos_arr = np.array([p for p, _ in items])
            rows = np.array([r for _, r in items])
            out[slot[pos_arr]] = emb[rows]
        return found, out

    def add(self, keys: list[bytes], embeddings: Any) -> None:
        """Store a finished chunk: embeddings, keys, then its checksums (commit).

        Rows that are not finite or all zero are not stored (they are computed
        again next time).
        """
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(keys):
            raise ValueError(
                f"{len(keys)} keys but {embeddings.shape[0]} embeddings to store."
            )
        good = np.isfinite(embeddings).all(axis=1) & np.any(embeddings != 0, axis=1)
        if not good.all():
            keys = [k for k, g in zip(keys, good, strict=True) if g]
            embeddings = embeddings[good]
        if not keys:
            return
        dim = self._dim()
        if dim is None:
            _atomic_write_text(self.path / "dim.json", str(embeddings.shape[1]))
        elif embeddings.shape[1] != dim:
            raise ValueError(
                f"embeddings have width {embeddings.shape[1]}, but this cache holds "
                f"width {dim}."
            )
        chunk = uuid.uuid4().hex
        emb_file, keys_file, sum_file = self._files(chunk)
        _atomic_save(emb_file, embeddings)
        _atomic_save(keys_file, np.array(keys, dtype="S32"))
        record = {
            "emb": _file_digest(emb_file),
            "keys": _file_digest(keys_file),
            "rows": len(keys),
            "dim": int(embeddings.shape[1]),
        }
        _atomic_write_text(sum_file, json.dumps(record))
        self._seen.add(chunk)
        self._verified.add(chunk)
        self._chunk_keys[chunk] = list(keys)
        for row, key in enumerate(keys):
            self._index.setdefault(key, (chunk, row))
