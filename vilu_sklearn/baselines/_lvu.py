"""LVU: the visual-only learned head, as a configured ViLUClassifier."""

from __future__ import annotations

from typing import Any

from .._vilu import ViLUClassifier

__all__ = ["make_lvu"]


def make_lvu(**params: Any) -> ViLUClassifier:
    """The LVU baseline: a ConfidNet-style MLP on the image embedding only.

    Returns ``ViLUClassifier(use_attention=False, use_predicted_text=False,
    **params)``: ViLU's MLP head (d -> 512 -> 256 -> 128 -> 1 by default) on
    ``z_v`` alone, without the predicted text nor the cross-attention, trained
    with ViLU's weighted binary cross-entropy on ``y_correct``. This is the
    visual-only variant of the ViLU reference code ("Learning Visual
    Uncertainties", Kirchhof et al., 2024, as adapted there); note that the
    reference LVU script regresses the true-class probability with an MSE loss,
    which needs class labels, whereas this head only needs correctness.

    The result is a plain :class:`~vilu_sklearn.ViLUClassifier` (so ``clone``,
    ``get_params`` and pickling behave as usual). It needs no candidate texts:
    ``fit(X_img, y_correct)`` works; ``fit(X_img, X_txt, y_correct)`` is accepted
    too and ignores ``X_txt``. Conventions: ``y_correct = 1`` means the VLM's
    prediction was correct; ``predict_proba[:, 1]`` is P(correct) and
    ``decision_function`` its logit (higher = more likely correct).

    Parameters
    ----------
    **params
        Any other :class:`~vilu_sklearn.ViLUClassifier` parameter (e.g.
        ``max_epochs``, ``lr``, ``random_state``). ``use_attention`` and
        ``use_predicted_text`` are fixed to False.

    Returns
    -------
    lvu : ViLUClassifier
        The unfitted, visual-only estimator.

    Raises
    ------
    TypeError
        If ``use_attention`` or ``use_predicted_text`` is set to True.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines import make_lvu
    >>> rng = np.random.default_rng(0)
    >>> X_img = rng.normal(size=(100, 8))
    >>> y_correct = (X_img[:, 0] > 0).astype(int)
    >>> lvu = make_lvu(hidden_layer_sizes=(16,), max_epochs=3, random_state=0)
    >>> lvu.use_attention, lvu.use_predicted_text
    (False, False)
    >>> lvu.fit(X_img, y_correct).predict_proba(X_img[:2]).shape
    (2, 2)
    """
    for name in ("use_attention", "use_predicted_text"):
        if params.pop(name, False):
            raise TypeError(
                f"make_lvu() fixes {name}=False (LVU sees the image embedding "
                f"only); use ViLUClassifier({name}=True, ...) for a head with texts."
            )
    return ViLUClassifier(
        use_attention=False, use_predicted_text=False, posterior_head=False, **params
    )
