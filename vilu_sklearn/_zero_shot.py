"""Zero-shot predictions of a CLIP-like model, recomputed from its embeddings.

These helpers are the single place where the package turns embeddings into the
VLM's own predictions and into the correctness labels (``y_correct``) that failure
predictors learn from. The estimators, baselines and the benchmark all call them.

Conventions
-----------
* Similarities are cosine similarities: both image and text rows are L2-normalised
  first (``normalize=True``, the default). Float16 inputs are computed in float32.
* Class probabilities are ``softmax(logit_scale * cos)``; ``logit_scale`` is CLIP's
  learned temperature (100 for OpenAI CLIP) and is always an explicit argument.
* ``y_correct`` follows the package conventions (docs/conventions.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ._validation import check_embeddings, check_logit_scale

__all__ = [
    "l2_normalize",
    "similarity_logits",
    "zero_shot_predict",
    "correctness",
    "caption_correctness",
    "caption_groups",
]

# rows of X_img processed at a time: bounds the (rows, K) temporaries
_CHUNK_ROWS = 4096


def l2_normalize(X: Any, *, eps: float = 1e-12) -> np.ndarray:
    """Scale every row of ``X`` to unit Euclidean norm.

    Float16 input is returned as float32 (float16 loses too much precision for
    similarities); float32 and float64 keep their dtype. Rows of zeros stay zero.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Embeddings.
    eps : float, default=1e-12
        Norms below ``eps`` (after scaling each row by a power of two that
        brings its largest absolute value into [0.5, 1), which makes the result
        independent of the magnitude) are treated as ``eps``.

    Returns
    -------
    X_normalized : ndarray of shape (n, d)
        A new array with unit-norm rows.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn import l2_normalize
    >>> l2_normalize(np.array([[3.0, 4.0]]))
    array([[0.6, 0.8]])
    """
    X = np.asarray(X)
    dtype = np.float32 if X.dtype in (np.float16,) or X.dtype.kind != "f" else X.dtype
    X = X.astype(dtype, copy=True)
    if X.shape[-1] == 0:
        return X
    # scale-safe: bring the largest |x| of each row into [0.5, 1) by a power of
    # two (exact, so ordinary rows give the same bits as without it), so the
    # squares neither overflow (|x| >= 1e20 in float32) nor vanish (<= 1e-13)
    _, exponent = np.frexp(np.max(np.abs(X), axis=-1, keepdims=True))
    np.ldexp(X, -exponent, out=X)
    norms = np.linalg.norm(X, axis=-1, keepdims=True)
    np.maximum(norms, eps, out=norms)
    X /= norms
    return X


def _prepare(X_img: Any, X_txt: Any, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    X_txt = check_embeddings(X_txt, name="X_txt")
    X_img = check_embeddings(
        X_img, name="X_img", dim=X_txt.shape[1], dim_source="X_txt"
    )
    if normalize:
        X_txt = l2_normalize(X_txt)
    elif X_txt.dtype == np.float16:
        X_txt = X_txt.astype(np.float32)
    return X_img, X_txt


def _img_block(X_img: np.ndarray, start: int, stop: int, normalize: bool, dtype: Any):
    block = np.asarray(X_img[start:stop])
    if normalize:
        return l2_normalize(block).astype(dtype, copy=False)
    return block.astype(dtype, copy=False)


def similarity_logits(
    X_img: Any, X_txt: Any, *, logit_scale: float = 100.0, normalize: bool = True
) -> np.ndarray:
    """CLIP-style logits ``logit_scale * cos(X_img[i], X_txt[k])``.

    Parameters
    ----------
    X_img : array-like of shape (n, d)
        Image embeddings.
    X_txt : array-like of shape (K, d)
        Candidate text embeddings (class prompts or captions).
    logit_scale : float, default=100.0
        CLIP's temperature; 100 for OpenAI CLIP.
    normalize : bool, default=True
        L2-normalise both sides first (cosine similarity). With ``False`` the raw
        dot products are scaled.

    Returns
    -------
    logits : ndarray of shape (n, K)
        Float32 (float64 if both inputs are float64).

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn import similarity_logits
    >>> similarity_logits(np.array([[1.0, 0.0]]), np.eye(2), logit_scale=10.0)
    array([[10.,  0.]])
    """
    logit_scale = check_logit_scale(logit_scale)
    X_img, X_txt = _prepare(X_img, X_txt, normalize)
    dtype = np.result_type(X_txt.dtype, np.float32)
    out = np.empty((X_img.shape[0], X_txt.shape[0]), dtype=dtype)
    for start in range(0, X_img.shape[0], _CHUNK_ROWS):
        stop = start + _CHUNK_ROWS
        block = _img_block(X_img, start, stop, normalize, dtype)
        np.matmul(block, X_txt.T.astype(dtype, copy=False), out=out[start:stop])
    out *= logit_scale
    return out


def softmax_inplace(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, overwriting ``logits`` (no extra (rows, K) block).

    The one softmax of the package's NumPy code (the baselines use it too).

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn._zero_shot import softmax_inplace
    >>> softmax_inplace(np.log(np.array([[1.0, 3.0]])))
    array([[0.25, 0.75]])
    """
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def zero_shot_predict(
    X_img: Any, X_txt: Any, *, logit_scale: float = 100.0, normalize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The VLM's zero-shot predictions and class probabilities.

    The prediction for image ``i`` is the candidate text with the highest cosine
    similarity (the first one on ties); probabilities are
    ``softmax(logit_scale * cos)``.

    Parameters
    ----------
    X_img : array-like of shape (n, d)
        Image embeddings (float16, float32 or float64; normalised inside when
        ``normalize=True``).
    X_txt : array-like of shape (K, d)
        Candidate text embeddings, for example one prompt per class.
    logit_scale : float, default=100.0
        CLIP's temperature; 100 for OpenAI CLIP.
    normalize : bool, default=True
        L2-normalise both sides first.

    Returns
    -------
    y_pred : ndarray of shape (n,), dtype int64
        Index of the predicted candidate.
    proba : ndarray of shape (n, K)
        Softmax probabilities over the candidates.

    See Also
    --------
    correctness : Turn class labels into ``y_correct``.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn import zero_shot_predict
    >>> X_txt = np.eye(3)
    >>> X_img = np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8]])
    >>> y_pred, proba = zero_shot_predict(X_img, X_txt, logit_scale=100.0)
    >>> y_pred
    array([0, 2])
    >>> proba.shape
    (2, 3)
    """
    logits = similarity_logits(
        X_img, X_txt, logit_scale=logit_scale, normalize=normalize
    )
    y_pred = logits.argmax(axis=1).astype(np.int64)
    return y_pred, softmax_inplace(logits)


def _predict_argmax(X_img: Any, X_txt: Any, normalize: bool) -> np.ndarray:
    """Argmax of the similarities, chunked, without materialising (n, K)."""
    X_img, X_txt = _prepare(X_img, X_txt, normalize)
    dtype = np.result_type(X_txt.dtype, np.float32)
    T = X_txt.T.astype(dtype, copy=False)
    pred = np.empty(X_img.shape[0], dtype=np.int64)
    for start in range(0, X_img.shape[0], _CHUNK_ROWS):
        block = _img_block(X_img, start, start + _CHUNK_ROWS, normalize, dtype)
        pred[start : start + _CHUNK_ROWS] = (block @ T).argmax(axis=1)
    return pred


def correctness(
    X_img: Any, X_txt: Any, labels: Any, *, normalize: bool = True
) -> np.ndarray:
    """Whether the VLM's zero-shot prediction matches the true class.

    Parameters
    ----------
    X_img : array-like of shape (n, d)
        Image embeddings.
    X_txt : array-like of shape (K, d)
        One text embedding per class; row ``k`` is class ``k``.
    labels : array-like of shape (n,)
        True class indices in ``[0, K)``.
    normalize : bool, default=True
        L2-normalise both sides first. The prediction (an argmax) does not depend
        on ``logit_scale``.

    Returns
    -------
    y_correct : ndarray of shape (n,), dtype int64
        1 where the VLM's prediction is correct, 0 where it is wrong.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn import correctness
    >>> X_txt = np.eye(3)
    >>> X_img = np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8]])
    >>> correctness(X_img, X_txt, [0, 1])
    array([1, 0])
    """
    X_txt_checked = check_embeddings(X_txt, name="X_txt")
    labels = check_class_labels(labels, len(X_img), X_txt_checked.shape[0])
    pred = _predict_argmax(X_img, X_txt_checked, normalize)
    return (pred == labels).astype(np.int64)


def check_class_labels(labels: Any, n_samples: int, n_classes: int) -> np.ndarray:
    """Validate class indices into the ``n_classes`` candidate texts, one per image.

    Returns them as int64; a ``ValueError`` names ``labels`` and what was
    expected otherwise.

    Examples
    --------
    >>> from vilu_sklearn._zero_shot import check_class_labels
    >>> check_class_labels([2, 0], n_samples=2, n_classes=3)
    array([2, 0])
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array; got shape {labels.shape}.")
    if labels.shape[0] != n_samples:
        raise ValueError(
            f"labels has {labels.shape[0]} entries, but X_img has {n_samples} rows."
        )
    if labels.dtype.kind not in "iu" or (
        labels.size and (labels.min() < 0 or labels.max() >= n_classes)
    ):
        raise ValueError(
            f"labels must be integer class indices in [0, {n_classes}) (row k of "
            f"X_txt is class k); got dtype {labels.dtype}"
            + (
                f" with values in [{labels.min()}, {labels.max()}]."
                if labels.dtype.kind in "iuf" and labels.size
                else "."
            )
        )
    return labels.astype(np.int64, copy=False)


def caption_groups(n_samples: int, group_size: int) -> Iterator[slice]:
    """Consecutive groups of rows that form the candidate sets of caption mode.

    Rows ``[0, group_size)``, ``[group_size, 2 * group_size)``, ... in the order
    given; the last group holds the remaining rows and may be smaller.

    Examples
    --------
    >>> from vilu_sklearn._zero_shot import caption_groups
    >>> list(caption_groups(5, 2))
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    if group_size < 1:
        raise ValueError(f"group_size must be a positive integer; got {group_size}.")
    for start in range(0, n_samples, group_size):
        yield slice(start, min(start + group_size, n_samples))


def caption_correctness(
    X_img: Any, X_txt: Any, *, group_size: int = 1024, normalize: bool = True
) -> np.ndarray:
    """Correctness of in-batch image-to-caption retrieval (caption mode).

    Rows of ``X_img`` and ``X_txt`` are paired (caption ``i`` describes image
    ``i``). The rows are cut into consecutive groups of ``group_size`` (see
    :func:`caption_groups`); inside each group, image ``i`` is correctly retrieved
    when its own caption is the most similar caption of the group. A tie with the
    own caption counts as correct (duplicate captions are not failures).

    Because the difficulty grows with the number of candidates, results are only
    comparable at the same ``group_size`` (the ViLU paper evaluates with 1024).

    Parameters
    ----------
    X_img : array-like of shape (n, d)
        Image embeddings.
    X_txt : array-like of shape (n, d)
        Caption embeddings, row ``i`` paired with image ``i``.
    group_size : int, default=1024
        Number of candidate captions per group.
    normalize : bool, default=True
        L2-normalise both sides first.

    Returns
    -------
    y_correct : ndarray of shape (n,), dtype int64
        1 where the image's own caption is retrieved, 0 otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn import caption_correctness
    >>> X_img = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    >>> X_txt = np.array([[1.0, 0.0], [1.0, 0.0], [0.1, 1.0]])
    >>> caption_correctness(X_img, X_txt, group_size=3)
    array([1, 1, 1])
    >>> # shuffled captions: images 0 and 2 now retrieve another image's caption;
    >>> # image 1's caption is a duplicate of the one it retrieves (a tie: correct)
    >>> caption_correctness(X_img, X_txt[[2, 0, 1]], group_size=3)
    array([0, 1, 0])
    """
    X_txt = check_embeddings(X_txt, name="X_txt")
    X_img = check_embeddings(
        X_img, name="X_img", dim=X_txt.shape[1], dim_source="X_txt"
    )
    if X_img.shape[0] != X_txt.shape[0]:
        raise ValueError(
            "In caption mode X_img and X_txt are paired row by row; got "
            f"{X_img.shape[0]} images and {X_txt.shape[0]} captions."
        )
    out = np.empty(X_img.shape[0], dtype=np.int64)
    for sl in caption_groups(X_img.shape[0], group_size):
        img = np.asarray(X_img[sl])
        txt = np.asarray(X_txt[sl])
        if normalize:
            img, txt = l2_normalize(img), l2_normalize(txt)
        else:
            dtype = np.result_type(img.dtype, txt.dtype, np.float32)
            img, txt = img.astype(dtype), txt.astype(dtype)
        sims = img @ txt.T
        out[sl] = np.diagonal(sims) >= sims.max(axis=1)
    return out
