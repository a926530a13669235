"""Baseline failure predictors for vision-language models.

Every baseline is a scikit-learn estimator with the interface of
:class:`vilu_sklearn.ViLUClassifier`: ``fit(X_img, X_txt, y_correct)`` or, with
``text_embeddings=X_txt`` set, ``fit(X_img, y_correct)``; the prediction methods
take ``(X_img, X_txt=None)``; ``score`` is the AUROC.

Conventions: ``y_correct = 1`` means the VLM's prediction was correct;
``decision_function`` returns a confidence (higher = more likely correct), so
AUROC takes the successes as the positive class. Probabilities are
``softmax(logit_scale * cos(X_img, X_txt))`` with an explicit ``logit_scale``
(CLIP's is 100); embeddings are L2-normalised inside (``normalize=True``).

Training-free (also in caption mode): :class:`MSP`, :class:`Entropy`,
:class:`Doctor`, :class:`Energy`, :class:`MaxLogit`, :class:`Margin`.
Fitted on correctness labels (classification mode only):
:class:`TemperatureScaling`, :class:`RelU`, :class:`TrustScore`, and the
visual-only learned head :func:`make_lvu`.
"""

from ._lvu import make_lvu
from ._relu import RelU
from ._temperature import TemperatureScaling
from ._training_free import MSP, Doctor, Energy, Entropy, Margin, MaxLogit
from ._trust_score import TrustScore

__all__ = [
    "MSP",
    "Doctor",
    "Energy",
    "Entropy",
    "Margin",
    "MaxLogit",
    "RelU",
    "TemperatureScaling",
    "TrustScore",
    "make_lvu",
]
