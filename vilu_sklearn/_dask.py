"""Parallel prediction on Dask arrays (optional dependency ``dask``).

:func:`dask_predict` scores a Dask array of image embeddings block by block with
a fitted estimator. The estimator travels to the workers once: it is a single
node of the task graph (``dask.delayed``) that every block depends on, so a
distributed worker receives and unpickles it once, however many blocks it scores,
and keeps it (with its cached candidate projection) for all of them.

This module imports dask lazily: ``import vilu_sklearn`` does not need it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["dask_predict"]

_METHODS = ("decision_function", "predict_proba", "predict")

# Unpicklings of _SharedModel in this process; read on workers by the tests.
_N_MODEL_LOADS = 0


class _SharedModel:
    """Pickling wrapper of the estimator sent to Dask workers.

    It counts, per process, how often it is unpickled (``_N_MODEL_LOADS``), which
    is how the tests check that a worker receives the model once, not once per
    block.
    """

    __slots__ = ("estimator",)

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def __getstate__(self) -> Any:
        return self.estimator

    def __setstate__(self, state: Any) -> None:
        global _N_MODEL_LOADS
        _N_MODEL_LOADS += 1
        self.estimator = state


def _score_block(
    block: np.ndarray, model: _SharedModel, texts: Any, method: str
) -> np.ndarray:
    est = model.estimator
    func = getattr(est, method)
    if texts is None:
        return np.asarray(func(block))
    return np.asarray(func(block, texts))


def dask_predict(
    estimator: Any,
    X: Any,
    X_txt: Any = None,
    *,
    method: str = "decision_function",
) -> Any:
    """Score a Dask array of image embeddings in parallel, block by block.

    The equivalent of ``dask_ml.wrappers.ParallelPostFit`` for ViLU's two-argument
    prediction methods: each row-block of ``X`` is scored by ``estimator`` on
    the worker that holds it. The fitted estimator (and ``X_txt``) become single
    nodes of the graph, so they are shipped to, and unpickled on, each worker
    once rather than once per block; the cached projection of the fit text set
    is then reused by all blocks of a worker. Works with any Dask scheduler
    (threads, processes, ``dask.distributed``); with a ``distributed.Client``
    the result is computed on its cluster.

    Parameters
    ----------
    estimator : fitted estimator
        E.g. a fitted :class:`~vilu_sklearn.ViLUClassifier` (on CPU for CPU
        workers).
    X : dask.array.Array of shape (n_samples, d)
        Image embeddings; a NumPy array (or memory map) is wrapped with
        ``dask.array.from_array``. Blocks must span all ``d`` columns (they are
        rechunked if they do not).
    X_txt : array-like of shape (K, d), default=None
        Candidate texts passed to every block (classification mode); None uses
        those seen in ``fit``. Caption mode is not supported here (its
        candidate groups would depend on the block boundaries).
    method : {"decision_function", "predict_proba", "predict"}, \
default="decision_function"
        Prediction method to call on every block.

    Returns
    -------
    scores : dask.array.Array
        Lazy result of shape (n_samples,) (``decision_function``, ``predict``)
        or (n_samples, 2) (``predict_proba``), chunked like the rows of ``X``.
        Call ``.compute()`` to get a NumPy array.

    Examples
    --------
    >>> import numpy as np
    >>> da = __import__("pytest").importorskip("dask.array")
    >>> from vilu_sklearn import ViLUClassifier
    >>> from vilu_sklearn._dask import dask_predict
    >>> rng = np.random.default_rng(0)
    >>> X_txt = rng.normal(size=(4, 8))
    >>> X, y = rng.normal(size=(60, 8)), np.arange(60) % 2
    >>> clf = ViLUClassifier(hidden_layer_sizes=(8,), max_epochs=2,
    ...                      device="cpu", random_state=0).fit(X, X_txt, y)
    >>> scores = dask_predict(clf, da.from_array(X, chunks=20))
    >>> scores.chunks
    ((20, 20, 20),)
    >>> bool(np.allclose(scores.compute(), clf.decision_function(X)))
    True
    """
    import dask
    import dask.array as da

    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}.")
    if getattr(estimator, "mode", "classification") == "caption":
        raise ValueError(
            "dask_predict supports classification mode only: in caption mode the "
            "candidates of an image are the captions of its group, which block "
            "boundaries would cut."
        )
    if not isinstance(X, da.Array):
        X = da.from_array(X, chunks=(max(1, min(len(X), 65536)), X.shape[1]))
    if X.ndim != 2:
        raise ValueError(
            f"X must be a 2-D Dask array of shape (n_samples, d); got {X.ndim}-D."
        )
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    model = dask.delayed(_SharedModel(estimator), pure=True)
    texts = None if X_txt is None else dask.delayed(np.asarray(X_txt), pure=True)
    if method == "predict_proba":
        return X.map_blocks(
            _score_block,
            model,
            texts,
            method,
            chunks=(X.chunks[0], (2,)),
            dtype=np.float64,
            meta=np.empty((0, 2), dtype=np.float64),
        )
    classes = getattr(estimator, "classes_", np.array([0, 1]))
    dtype = np.float64 if method == "decision_function" else classes.dtype
    return X.map_blocks(
        _score_block,
        model,
        texts,
        method,
        drop_axis=1,
        dtype=dtype,
        meta=np.empty((0,), dtype=dtype),
    )
