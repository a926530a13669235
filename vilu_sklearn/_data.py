"""Batching of embedding arrays for training, without copying them.

The dataset is a view (an index array) over the caller's arrays, which may be
memory-mapped; a batch gathers only its own rows. Shuffling and the validation
split work on indices.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

__all__ = ["EmbeddingDataset", "BatchLoader", "IndexSplit"]

_TORCH_TO_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}


class EmbeddingDataset(torch.utils.data.Dataset):
    """Rows ``indices`` of image embeddings with their paired texts and targets.

    Parameters
    ----------
    img : ndarray of shape (n, d)
        Image embeddings (any float dtype; may be a memory map).
    texts : ndarray of shape (n, d), default=None
        Paired captions (caption mode).
    y : ndarray of shape (n,), default=None
        Correctness labels (classification mode).
    sample_weight : ndarray of shape (n,), default=None
        Per-sample weights.
    labels : ndarray of shape (n,), default=None
        Index of each image's true class among the candidate texts.
    indices : ndarray of int, default=None
        Rows of the view; all rows when None.
    """

    def __init__(
        self,
        img: np.ndarray,
        *,
        texts: np.ndarray | None = None,
        y: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        indices: np.ndarray | None = None,
    ) -> None:
        self.img = img
        self.texts = texts
        self.y = y
        self.sample_weight = sample_weight
        self.labels = labels
        self.indices = np.arange(img.shape[0]) if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:  # pragma: no cover - batched access only
        return self.gather(np.array([i]), torch.float32)

    def subset(self, positions: np.ndarray) -> EmbeddingDataset:
        """A view on ``self.indices[positions]``."""
        return EmbeddingDataset(
            self.img,
            texts=self.texts,
            y=self.y,
            sample_weight=self.sample_weight,
            labels=self.labels,
            indices=self.indices[positions],
        )

    def gather(
        self, positions: np.ndarray, dtype: torch.dtype
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The batch of rows ``self.indices[positions]`` as torch tensors."""
        rows = np.sort(self.indices[positions])  # sorted: sequential reads of mmaps
        np_dtype = _TORCH_TO_NUMPY[dtype]
        X = {"img": torch.from_numpy(np.asarray(self.img[rows], dtype=np_dtype))}
        if self.texts is not None:
            X["txt"] = torch.from_numpy(np.asarray(self.texts[rows], dtype=np_dtype))
        if self.sample_weight is not None:
            X["sw"] = torch.from_numpy(
                np.asarray(self.sample_weight[rows], dtype=np_dtype)
            )
        if self.labels is not None:
            X["lbl"] = torch.from_numpy(np.asarray(self.labels[rows], dtype=np.int64))
        y = None
        if self.y is not None:
            y = torch.from_numpy(np.asarray(self.y[rows], dtype=np_dtype))
        return X, y


class BatchLoader:
    """Iterate over an :class:`EmbeddingDataset` in mini-batches.

    Re-iterable: every pass draws a new permutation from its own seeded
    generator (the global RNGs are never touched).

    Parameters
    ----------
    dataset : EmbeddingDataset
        The rows to iterate over.
    batch_size : int
        Rows per batch.
    shuffle : bool, default=False
        Shuffle the rows at every pass.
    drop_last : bool, default=False
        Drop a last batch smaller than ``batch_size`` (only when there is more
        than one batch).
    seed : int, default=0
        Seed of the shuffling generator.
    dtype : torch.dtype, default=torch.float32
        Floating dtype of the tensors.
    """

    def __init__(
        self,
        dataset: EmbeddingDataset,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.dtype = dtype
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n, b = len(self.dataset), self.batch_size
        if self.drop_last and n > b:
            return n // b
        return -(-n // b)

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], Any]]:
        n = len(self.dataset)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        for k in range(len(self)):
            yield self.dataset.gather(
                order[k * self.batch_size : (k + 1) * self.batch_size], self.dtype
            )


class IndexSplit:
    """Hold out a fraction of an :class:`EmbeddingDataset` for validation.

    Stratified on the correctness labels when the dataset has them (and both
    classes have at least two members); the split is a pair of index views.

    Parameters
    ----------
    fraction : float
        Share of the rows in the validation part.
    seed : int
        Seed of the split.
    """

    def __init__(self, fraction: float, seed: int) -> None:
        self.fraction = fraction
        self.seed = seed

    def __call__(
        self, dataset: EmbeddingDataset, y: Any = None, **fit_params: Any
    ) -> tuple[EmbeddingDataset, EmbeddingDataset]:
        labels = None if dataset.y is None else dataset.y[dataset.indices]
        train, valid = self.positions(labels, n=len(dataset))
        return dataset.subset(train), dataset.subset(valid)

    def positions(
        self, labels: Any, n: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sorted training and validation positions for ``n`` rows (or labels)."""
        positions = np.arange(len(labels) if n is None else n)
        stratify = None
        if labels is not None and np.unique(labels, return_counts=True)[1].min() >= 2:
            stratify = labels
        train, valid = train_test_split(
            positions,
            test_size=self.fraction,
            random_state=self.seed,
            stratify=stratify,
        )
        return np.sort(train), np.sort(valid)
