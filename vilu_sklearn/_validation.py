"""Input validation shared by every estimator and helper of the package.

The checks here never copy a float array (memory-mapped inputs stay on disk) and
raise errors that name the offending argument, the expected shape or dtype and the
received one.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
    "check_embeddings",
    "check_float32_range",
    "check_y_correct",
    "check_logit_scale",
]

_FLOAT_DTYPES = (np.float16, np.float32, np.float64)
# rows checked for NaN/inf at a time: bounds the temporary memory of the check
_FINITE_CHUNK_ROWS = 65536


def _to_numpy(X: Any) -> Any:
    """Turn torch tensors and array-likes into numpy arrays, without copying arrays."""
    if isinstance(X, np.ndarray) or getattr(X, "_vilu_lazy_rows", False):
        return X  # arrays, and sharded stores read row block by row block
    try:  # torch is a hard dependency, but keep this module importable without it
        import torch

        if isinstance(X, torch.Tensor):
            return X.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    if hasattr(X, "__array__") or isinstance(X, list | tuple):
        return np.asarray(X)
    return X


def check_embeddings(
    X: Any,
    *,
    name: str = "X_img",
    dim: int | None = None,
    dim_source: str | None = None,
    min_samples: int = 1,
) -> np.ndarray:
    """Validate a 2-D matrix of embeddings and return it as a float numpy array.

    Float16, float32 and float64 arrays are returned as they are (no copy, so a
    memory-mapped array stays memory-mapped); integer and boolean arrays are cast
    to float64. Rows are *not* normalised here.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The embeddings.
    name : str, default="X_img"
        Name of the argument, used in error messages.
    dim : int, default=None
        Required number of columns, if any.
    dim_source : str, default=None
        What ``dim`` comes from, used in the error message (for example
        ``"X_txt"`` or ``"the fitted model"``).
    min_samples : int, default=1
        Minimum number of rows.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The validated array, float16, float32 or float64.

    Raises
    ------
    TypeError
        For sparse matrices and non-numeric data.
    ValueError
        For a wrong number of dimensions or columns, too few rows, complex values,
        NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn._validation import check_embeddings
    >>> check_embeddings(np.ones((2, 3), dtype=np.float16)).dtype
    dtype('float16')
    >>> check_embeddings(np.ones(3), name="X_txt")
    Traceback (most recent call last):
    ...
    ValueError: X_txt must be a 2-D array of shape (n, n_features); got a 1-D ...
    """
    if sp.issparse(X):
        raise TypeError(
            f"Sparse data was passed for {name}, but dense data is required: "
            "embeddings are dense vectors; use X.toarray()."
        )
    X = _to_numpy(X)
    if getattr(X, "_vilu_lazy_rows", False):  # a ShardedArray, read in row blocks
        if X.dtype not in _FLOAT_DTYPES:
            raise TypeError(
                f"{name} is a sharded store of dtype {X.dtype}; its shards must "
                "hold float16, float32 or float64 embeddings."
            )
    elif not isinstance(X, np.ndarray):
        raise TypeError(
            f"{name} must be an array-like of shape (n, n_features); "
            f"got an object of type {type(X).__name__}."
        )
    if np.iscomplexobj(X):
        raise ValueError(f"Complex data not supported in {name} (dtype {X.dtype}).")
    if X.dtype.kind in "biu":
        X = X.astype(np.float64)
    elif X.dtype.kind == "O":
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} must hold numbers (float16, float32 or float64); "
                f"got dtype object with values that are not numbers: {exc}"
            ) from None
    elif X.dtype.kind != "f":
        raise TypeError(
            f"{name} must hold numbers (float16, float32 or float64); "
            f"got dtype {X.dtype}."
        )
    elif X.dtype not in _FLOAT_DTYPES:  # e.g. float128
        X = X.astype(np.float64)
    if X.ndim != 2:
        hint = (
            " Reshape your data with X.reshape(1, -1) if it holds a single sample."
            if X.ndim == 1
            else ""
        )
        raise ValueError(
            f"{name} must be a 2-D array of shape (n, n_features); got a "
            f"{X.ndim}-D array of shape {X.shape}.{hint}"
        )
    n, d = X.shape
    if n < min_samples:
        raise ValueError(
            f"Found array with {n} sample(s) (shape={X.shape}) while a minimum of "
            f"{min_samples} is required, in {name}."
        )
    if d == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 "
            f"is required, in {name}: embeddings need at least one dimension."
        )
    if dim is not None and d != dim:
        source = f" of {dim_source}" if dim_source else ""
        raise ValueError(
            f"{name} has {d} features per row (shape {X.shape}), but the embedding "
            f"dimension{source} is {dim}: image and text embeddings must come from "
            "the same model."
        )
    _check_finite(X, name)
    return X


def check_float32_range(X: Any, name: str, dtype: Any = np.float32) -> None:
    """Raise when float64 values would overflow a float32 model.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn._validation import check_float32_range
    >>> check_float32_range(np.array([[1e300]]), "X_img")
    Traceback (most recent call last):
    ...
    ValueError: X_img holds values up to 1e+300, beyond the float32 range ...
    """
    if X is None or np.dtype(dtype) != np.float32 or X.dtype != np.float64:
        return
    limit = float(np.finfo(np.float32).max)
    for start in range(0, X.shape[0], _FINITE_CHUNK_ROWS):
        peak = float(np.abs(X[start : start + _FINITE_CHUNK_ROWS]).max(initial=0.0))
        if peak > limit:
            raise ValueError(
                f"{name} holds values up to {peak:.3g}, beyond the float32 range "
                f"(+-{limit:.3g}) of this model (dtype='float32'): rescale the "
                "embeddings (with normalize=True their scale does not matter) or "
                "use dtype='float64'."
            )


def _check_finite(X: np.ndarray, name: str) -> None:
    """Raise ValueError if X holds NaN or inf, reading it in chunks of rows."""
    if getattr(X, "assume_finite", False):  # a ShardedArray checked beforehand
        return
    for start in range(0, X.shape[0], _FINITE_CHUNK_ROWS):
        block = X[start : start + _FINITE_CHUNK_ROWS]
        # fast path: the sum of a finite block is finite (float64 avoids overflow)
        if np.isfinite(block.sum(dtype=np.float64)):
            continue
        bad = ~np.isfinite(block)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            value = block[row, col]
            kind = "NaN" if np.isnan(value) else "inf"
            raise ValueError(
                f"Input {name} contains NaN or infinity: {bad.sum()} non-finite "
                f"value(s), the first ({kind}) at row {start + row}, column {col}."
            )


def _label_values(y: np.ndarray) -> list[Any]:
    """The distinct labels of ``y``, sorted when they can be."""
    try:
        return list(np.unique(y).tolist())
    except TypeError:  # mixed objects that do not compare
        return list(dict.fromkeys(y.tolist()))


def _shown(values: list[Any]) -> str:
    return ", ".join(map(repr, values[:5])) + (", ..." if len(values) > 5 else "")


def _encode_by_meaning(y: np.ndarray, name: str) -> np.ndarray:
    """0/1 from labels whose meaning is unambiguous: bool, {0, 1} or {-1, 1}."""
    if y.dtype.kind == "O":  # e.g. from pandas: numbers or bools as objects
        if all(isinstance(v, bool | int | float | np.number) for v in y.tolist()):
            y = y.astype(np.float64)
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    values = _label_values(y)
    if y.dtype.kind in "iuf":
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError(f"Input {name} contains NaN or infinity.")
        if set(values) <= {0, 1} or set(values) <= {-1, 1}:
            return (y == 1).astype(np.int64)
        if y.dtype.kind == "f" and not np.all(y == np.round(y)):
            raise ValueError(
                f"Unknown label type: continuous. {name} must hold 1 (or True) where "
                "the VLM's prediction is correct and 0 (or False, or -1) where it "
                f"is wrong; got non-integer values ({_shown(values)})."
            )
    if len(values) > 2:
        raise ValueError(
            f"Only binary classification is supported. {name} must be binary: 1 "
            f"where the VLM's prediction is correct, 0 where it is wrong; got "
            f"{len(values)} distinct values ({_shown(values)}). If you have true "
            "class labels, use vilu_sklearn.correctness(X_img, X_txt, labels)."
        )
    raise ValueError(
        f"{name} holds the labels {_shown(values)}, whose meaning is ambiguous: "
        "which of them means 'the VLM was correct'? Give 1 (or True) for correct "
        "and 0 (or False, or -1) for wrong, e.g. y_correct = (labels == "
        f"{values[-1]!r}) if {values[-1]!r} means correct."
    )


def _encode_pos_label(y: np.ndarray, pos_label: Any, name: str) -> np.ndarray:
    values = _label_values(y)
    if len(values) > 2:
        raise ValueError(
            f"Only binary classification is supported. {name} must be binary; got "
            f"{len(values)} distinct values ({_shown(values)})."
        )
    if pos_label not in values and len(values) == 2:
        raise ValueError(
            f"pos_label {pos_label!r} is not among the labels of {name} "
            f"({_shown(values)})."
        )
    return np.asarray(y == pos_label, dtype=np.int64)


def check_y_correct(
    y: Any, *, n_samples: int, name: str = "y_correct", pos_label: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate binary correctness labels and encode them as 0/1.

    ``y_correct`` holds 1 (or True) where the VLM's prediction is correct and 0
    (or False) where it is wrong; {-1, 1} is accepted too (1 = correct). Other
    labels, such as ``"correct"``/``"incorrect"`` or {1, 2}, have no meaning that
    can be read off them: they are refused unless ``pos_label`` says which one
    means "correct" (sorting them, as scikit-learn does, would read "incorrect"
    as correct). A single class keeps its meaning: all ones are all correct.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Correctness labels.
    n_samples : int
        Number of image embeddings the labels must match.
    name : str, default="y_correct"
        Name of the argument, used in error messages.
    pos_label : object, default=None
        The label that means "the VLM's prediction is correct", for labels
        other than bool, {0, 1} and {-1, 1}.

    Returns
    -------
    y_encoded : ndarray of shape (n_samples,), dtype int64
        1 where the prediction is correct, 0 where it is wrong.
    classes : ndarray
        The distinct labels, the "wrong" one first: ``classes[1]`` (or the only
        one) means correct when it is encoded 1.

    Examples
    --------
    >>> from vilu_sklearn._validation import check_y_correct
    >>> check_y_correct([True, False, True], n_samples=3)
    (array([1, 0, 1]), array([False,  True]))
    >>> check_y_correct(["ok", "bad"], n_samples=2, pos_label="ok")
    (array([1, 0]), array(['bad', 'ok'], dtype='<U3'))
    """
    from sklearn.utils.validation import column_or_1d

    if y is None:
        raise ValueError(
            f"This estimator requires y to be passed, but the target y is None: "
            f"pass {name}, 1 where the VLM's prediction is correct and 0 where it is "
            "wrong (vilu_sklearn.correctness turns class labels into y_correct)."
        )
    if sp.issparse(y):
        raise TypeError(f"{name} must be a dense 1-D array; got a sparse matrix.")
    y = np.asarray(_to_numpy(y))
    if y.ndim == 2 and y.shape[1] != 1 or y.ndim > 2 or y.ndim == 0:
        raise ValueError(
            f"{name} must be a 1-D array of shape ({n_samples},); got shape {y.shape} "
            "(y should be a 1d array)."
        )
    y = column_or_1d(y, warn=True)
    if y.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {y.shape[0]} labels, but there are {n_samples} image "
            f"embeddings (Found input variables with inconsistent numbers of "
            f"samples: [{n_samples}, {y.shape[0]}])."
        )
    if y.dtype.kind == "c":
        raise ValueError(f"Unknown label type: complex values in {name}.")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"Input {name} contains NaN or infinity.")
    if pos_label is None:
        encoded = _encode_by_meaning(y, name)
    else:
        encoded = _encode_pos_label(y, pos_label, name)
    # one representative label per encoded value, "wrong" first
    classes = np.array(
        [y[np.argmax(encoded == v)] for v in (0, 1) if np.any(encoded == v)]
    )
    return encoded, classes


def check_logit_scale(logit_scale: Any, *, name: str = "logit_scale") -> float:
    """Check that the softmax temperature is a positive finite number.

    Examples
    --------
    >>> from vilu_sklearn._validation import check_logit_scale
    >>> check_logit_scale(100)
    100.0
    """
    if (
        isinstance(logit_scale, bool)
        or not isinstance(logit_scale, numbers.Real)
        or not np.isfinite(float(logit_scale))
        or logit_scale <= 0
    ):
        raise ValueError(
            f"{name} must be a positive finite number (CLIP's is 100); "
            f"got {logit_scale!r}."
        )
    return float(logit_scale)
