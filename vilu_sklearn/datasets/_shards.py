"""Sharded embedding stores: many ``.npy`` files read as one array, lazily.

The layout written by clip-retrieval (and used to share LAION's precomputed
embeddings) is ``img_emb/img_emb_{i}.npy``, ``text_emb/text_emb_{i}.npy`` and
``metadata/metadata_{i}.parquet`` for ``i = 0, 1, ...``; a plain folder of
``.npy`` shards is read too. Every shard is checked when the store is opened
(present, a readable ``.npy`` header, as many bytes as the header promises, the
same width and dtype as the others), so a missing or truncated shard fails
before training starts, with the file named. Shards are memory-mapped, at most
``max_open`` at a time, and never written.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ["EmbeddingStore", "ShardedArray", "open_embedding_store"]

_CLIP_RETRIEVAL = {"img": "img_emb", "text": "text_emb", "metadata": "metadata"}


class _ShardInfo(NamedTuple):
    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype


def _shard_info(path: Path) -> _ShardInfo:
    """Read a ``.npy`` header; raise naming the file when it is missing or cut."""
    if not path.is_file():
        raise FileNotFoundError(f"Shard {path} is missing.")
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
    except (ValueError, OSError) as exc:
        raise ValueError(f"Shard {path} is not a readable .npy file: {exc}") from None
    if fortran or dtype.hasobject:
        raise ValueError(
            f"Shard {path} holds a Fortran-ordered or object array; embedding "
            "shards must be C-ordered numeric arrays."
        )
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        raise ValueError(
            f"Shard {path} is truncated: its header promises an array of shape "
            f"{shape} ({expected:,} bytes with the header), but the file has "
            f"{size:,} bytes. Re-download or re-export this shard."
        )
    return _ShardInfo(path, tuple(int(s) for s in shape), dtype)


class ShardedArray:
    """Several ``.npy`` files read as one array, concatenated along the rows.

    Row gathers (``X[rows]``, ``X[a:b]``) read only the rows asked for, from
    memory maps of the shards concerned; at most ``max_open`` shards are mapped
    at a time. ``ViLUClassifier.fit``, ``decision_function`` and the other
    methods accept it wherever they accept an array; training on one streams
    shard by shard (see docs/scale.md).

    Parameters
    ----------
    paths : sequence of path-like
        The shards, in row order. Each is checked (present, readable header,
        complete, same trailing shape and dtype as the first).
    max_open : int, default=4
        Shards kept memory-mapped at once.
    assume_finite : bool, default=False
        Skip the NaN/inf scan of the input checks (which reads every shard
        once); for stores checked beforehand, where that scan would read
        terabytes in every process.

    Attributes
    ----------
    shape : tuple of int
        ``(total rows,) + trailing shape``.
    dtype : numpy.dtype
        The shards' dtype.
    offsets : ndarray of shape (n_shards + 1,)
        First row of each shard, and the total.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from vilu_sklearn.datasets import ShardedArray
    >>> tmp = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     np.save(os.path.join(tmp, f"part_{i}.npy"), np.full((2, 4), i, "float16"))
    >>> X = ShardedArray.from_folder(tmp)
    >>> X.shape, X.n_shards
    ((6, 4), 3)
    >>> X[[1, 4]][:, 0]
    array([0., 2.], dtype=float16)
    """

    # read lazily by the input checks, never turned into one array
    _vilu_lazy_rows = True

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        max_open: int = 4,
        assume_finite: bool = False,
    ):
        if len(paths) == 0:
            raise ValueError("A ShardedArray needs at least one shard; got none.")
        infos = [_shard_info(Path(p)) for p in paths]
        first = infos[0]
        for info in infos[1:]:
            if info.shape[1:] != first.shape[1:] or info.dtype != first.dtype:
                raise ValueError(
                    f"Shard {info.path} holds {info.dtype} rows of shape "
                    f"{info.shape[1:]}, but {first.path} holds {first.dtype} rows "
                    f"of shape {first.shape[1:]}: all shards must match."
                )
        if len(first.shape) == 0:
            raise ValueError(f"Shard {first.path} holds a scalar, not rows.")
        self.paths = [info.path for info in infos]
        counts = [info.shape[0] for info in infos]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.shape = (int(self.offsets[-1]), *first.shape[1:])
        self.dtype = first.dtype
        self.max_open = int(max_open)
        self.assume_finite = bool(assume_finite)
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()

    @classmethod
    def from_folder(
        cls, folder: str | os.PathLike[str], pattern: str = "*.npy", **kwargs: Any
    ) -> ShardedArray:
        """The ``.npy`` files of ``folder`` matching ``pattern``, in natural order.

        Natural order sorts ``part_2`` before ``part_10``.
        """
        paths = sorted(Path(folder).glob(pattern), key=_natural_key)
        if not paths:
            raise FileNotFoundError(f"No file matches {pattern!r} in {folder}.")
        return cls(paths, **kwargs)

    # ------------------------------------------------------------ array API
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def n_shards(self) -> int:
        """Number of shards."""
        return len(self.paths)

    @property
    def nbytes(self) -> int:
        """Bytes of the data, all shards together."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (
            f"ShardedArray(shape={self.shape}, dtype={self.dtype}, "
            f"n_shards={self.n_shards}, first={str(self.paths[0])!r})"
        )

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[0 : len(self)]
        return out if dtype is None else out.astype(dtype)

    def shard(self, i: int) -> np.ndarray:
        """The memory map of shard ``i`` (kept among the ``max_open`` latest)."""
        if i in self._open:
            self._open.move_to_end(i)
            return self._open[i]
        mm = np.load(self.paths[i], mmap_mode="r")
        self._open[i] = mm
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return mm

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            rows, *rest = key
            return self[rows][(slice(None), *rest)]
        if isinstance(key, slice):
            return self._slice(*key.indices(len(self)))
        rows = np.asarray(key)
        if rows.ndim == 0:
            return self[rows.reshape(1)][0]
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return self._take(rows.astype(np.int64, copy=False))

    def _slice(self, start: int, stop: int, step: int) -> np.ndarray:
        if step != 1:
            return self._take(np.arange(start, stop, step, dtype=np.int64))
        stop = max(start, stop)
        out = np.empty((stop - start, *self.shape[1:]), dtype=self.dtype)
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        pos = start
        for i in range(max(first, 0), self.n_shards):
            if pos >= stop:
                break
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            end = min(stop, hi)
            if end > pos:
                out[pos - start : end - start] = self.shard(i)[pos - lo : end - lo]
                pos = end
        return out

    def _take(self, rows: np.ndarray) -> np.ndarray:
        n = len(self)
        if rows.size and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        rows = np.where(rows < 0, rows + n, rows)
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        for i in np.unique(which):
            mask = which == i
            out[mask] = self.shard(int(i))[rows[mask] - self.offsets[i]]
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()  # maps are reopened where unpickled
        return state


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


class EmbeddingStore(NamedTuple):
    """An opened embedding store (see :func:`open_embedding_store`)."""

    img: ShardedArray
    """Image embeddings, (n, d)."""
    text: ShardedArray | None
    """Caption embeddings paired row by row with ``img``, or None."""
    metadata: list[Path] | None
    """The metadata files (one per shard; parquet), or None."""


def _numbered(folder: Path, stem: str, suffix: str) -> dict[int, Path]:
    found: dict[int, Path] = {}
    pattern = re.compile(rf"{re.escape(stem)}_(\d+){re.escape(suffix)}$")
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def _check_numbering(found: dict[int, Path], folder: Path, stem: str, sfx: str) -> int:
    """Number of shards; raise naming the first missing one."""
    if not found:
        raise FileNotFoundError(f"No shard {stem}_<i>{sfx} in {folder}.")
    n = max(found) + 1
    for i in range(n):
        if i not in found:
            raise FileNotFoundError(
                f"Shard {folder / f'{stem}_{i}{sfx}'} is missing: the store has "
                f"shards 0 to {n - 1} otherwise."
            )
    return n


def open_embedding_store(
    root: str | os.PathLike[str], *, max_open: int = 4, assume_finite: bool = False
) -> EmbeddingStore:
    """Open an embedding store, checking every shard before anything is read.

    ``root`` is either a clip-retrieval store (``img_emb/img_emb_{i}.npy``,
    optionally ``text_emb/text_emb_{i}.npy`` and
    ``metadata/metadata_{i}.parquet``) or a plain folder of ``.npy`` shards
    (read as the image embeddings, in natural order).

    Parameters
    ----------
    root : path-like
        The store's folder.
    max_open : int, default=4
        Shards kept memory-mapped at once, per array.
    assume_finite : bool, default=False
        Skip the NaN/inf scan of ``fit`` and the prediction methods (see
        :class:`ShardedArray`).

    Returns
    -------
    store : EmbeddingStore
        ``store.img`` and ``store.text`` (:class:`ShardedArray`, paired row by
        row) and ``store.metadata`` (paths, or None).

    Raises
    ------
    FileNotFoundError
        A shard is missing (the file is named), or there is no shard at all.
    ValueError
        A shard is truncated or unreadable, image and text shard ``i`` differ in
        rows, or the shards differ in width or dtype (the file is named).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from vilu_sklearn.datasets import open_embedding_store
    >>> root = tempfile.mkdtemp()
    >>> for sub in ("img_emb", "text_emb"):
    ...     os.makedirs(os.path.join(root, sub))
    ...     for i in range(2):
    ...         np.save(os.path.join(root, sub, f"{sub}_{i}.npy"), np.ones((3, 8)))
    >>> store = open_embedding_store(root)
    >>> store.img.shape, store.text.shape, store.metadata
    ((6, 8), (6, 8), None)
    """
    root = Path(root)
    kw: dict[str, Any] = {"max_open": max_open, "assume_finite": assume_finite}
    if not root.is_dir():
        raise FileNotFoundError(f"Embedding store {root} is not a folder.")
    img_dir = root / _CLIP_RETRIEVAL["img"]
    if not img_dir.is_dir():
        return EmbeddingStore(ShardedArray.from_folder(root, **kw), None, None)
    n = _check_numbering(
        _numbered(img_dir, "img_emb", ".npy"), img_dir, "img_emb", ".npy"
    )
    img = ShardedArray([img_dir / f"img_emb_{i}.npy" for i in range(n)], **kw)
    text = None
    text_dir = root / _CLIP_RETRIEVAL["text"]
    if text_dir.is_dir():
        paths = [text_dir / f"text_emb_{i}.npy" for i in range(n)]
        text = ShardedArray(paths, **kw)  # checks each one
        for i in range(n):
            rows = (
                img.offsets[i + 1] - img.offsets[i],
                text.offsets[i + 1] - text.offsets[i],
            )
            if rows[0] != rows[1]:
                raise ValueError(
                    f"Shard {paths[i]} has {rows[1]} rows but {img.paths[i]} has "
                    f"{rows[0]}: image and text shards are paired row by row."
                )
    metadata = None
    meta_dir = root / _CLIP_RETRIEVAL["metadata"]
    if meta_dir.is_dir():
        metadata = [meta_dir / f"metadata_{i}.parquet" for i in range(n)]
        for path in metadata:
            if not path.is_file():
                raise FileNotFoundError(f"Metadata file {path} is missing.")
    return EmbeddingStore(img, text, metadata)
