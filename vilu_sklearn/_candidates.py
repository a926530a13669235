"""Which candidate texts a fitted model has seen, and its score on the others."""

from __future__ import annotations

import numpy as np

__all__ = ["class_agnostic_scores", "unseen_candidates"]

# two unit vectors count as the same text when their cosine is at least this:
# float16 storage moves a normalised 512-d embedding by a cosine of ~1e-7
_SAME_TEXT_COSINE = 1.0 - 1e-4


def _unit_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def unseen_candidates(texts: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Mask of the rows of ``texts`` that are not (up to scale) rows of ``seen``.

    Two texts are the same when the cosine of their embeddings is at least
    ``1 - 1e-4``, so float16 copies and rescaled rows of a seen text count as
    seen. Only rows whose projection on one fixed direction lies within the
    matching tolerance are compared, so the cost is about ``(K + K_seen) log
    K_seen`` rather than ``K x K_seen``.

    Parameters
    ----------
    texts : ndarray of shape (K, d)
        Candidate texts at prediction time.
    seen : ndarray of shape (K_seen, d)
        Candidate texts of ``fit``.

    Returns
    -------
    unseen : ndarray of shape (K,), dtype bool
        True where the candidate matches no text of ``seen``.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn._candidates import unseen_candidates
    >>> seen = np.eye(3)
    >>> unseen_candidates(np.array([[0.0, 2.0, 0.0], [1.0, 1.0, 0.0]]), seen)
    array([False,  True])
    """
    T, S = _unit_rows(texts), _unit_rows(seen)
    direction = np.random.default_rng(0).standard_normal(T.shape[1])
    direction = direction / float(np.linalg.norm(direction))
    proj_seen = S @ direction
    order = np.argsort(proj_seen)
    sorted_proj = proj_seen[order]
    # |t - s| <= sqrt(2 (1 - cos)), and a projection on a unit vector is shorter
    radius = np.sqrt(2.0 * (1.0 - _SAME_TEXT_COSINE)) * (1 + 1e-6)
    proj = T @ direction
    lo = np.searchsorted(sorted_proj, proj - radius, side="left")
    hi = np.searchsorted(sorted_proj, proj + radius, side="right")
    unseen = np.ones(len(T), dtype=bool)
    for k in np.flatnonzero(hi > lo):
        near = S[order[lo[k] : hi[k]]]
        unseen[k] = not np.any(near @ T[k] >= _SAME_TEXT_COSINE)
    return unseen


def class_agnostic_scores(
    X_img: np.ndarray, texts: np.ndarray, scale: float, *, normalize: bool = True
) -> np.ndarray:
    """Logit of the VLM's softmax probability of its prediction at ``scale``.

    ``log p_hat - log(1 - p_hat)`` with ``p_hat = max_k softmax(scale * cos)``,
    computed as ``g_hat - logsumexp(g_others)`` in float64 (no cancellation).
    With a single candidate the VLM cannot be wrong and the score is 100.

    Parameters
    ----------
    X_img : ndarray of shape (n, d)
        Image embeddings.
    texts : ndarray of shape (K, d)
        Candidate texts.
    scale : float
        Temperature of the softmax (``logit_scale``, times a learned factor).
    normalize : bool, default=True
        Take cosines (False: plain dot products, as a model with
        ``normalize=False`` sees them).

    Returns
    -------
    scores : ndarray of shape (n,), float64

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn._candidates import class_agnostic_scores
    >>> X, T = np.array([[1.0, 0.0]]), np.eye(2)
    >>> class_agnostic_scores(X, T, scale=np.log(3.0)).round(4)  # p_hat = 0.75
    array([1.0986])
    """
    X = _unit_rows(X_img) if normalize else np.asarray(X_img, dtype=np.float64)
    T = _unit_rows(texts) if normalize else np.asarray(texts, dtype=np.float64)
    if len(T) == 1:
        return np.full(len(X), 100.0)
    g = scale * (X @ T.T)
    k_hat = g.argmax(axis=1)
    rows = np.arange(len(X))
    own = g[rows, k_hat].copy()
    g[rows, k_hat] = -np.inf
    top = g.max(axis=1)
    rest = top + np.log(np.exp(g - top[:, None]).sum(axis=1))
    return own - rest
