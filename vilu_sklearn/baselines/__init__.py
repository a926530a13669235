"""Baseline failure predictors for vision-language models.

Every baseline is a scikit-learn estimator with the interface of
:class:`vilu_sklearn.ViLUClassifier`: ``fit(X_img, X_txt, y_correct)`` or, with
``text_embeddings=X_txt`` set, ``fit(X_img, y_correct)``; the prediction methods
take ``(X_img, X_txt=None)``; ``score`` is the AUROC.

``decision_function`` returns a confidence and class probabilities are
``softmax(logit_scale * cos(X_img, X_txt))`` (:class:`MCM` uses ``cos / T``
instead), as everywhere in the package (docs/conventions.md).

Training-free, from the logits (also in caption mode): :class:`MSP`,
:class:`MCM`, :class:`Entropy`, :class:`Doctor`, :class:`Energy`,
:class:`MaxLogit`, :class:`Margin`.
From the image-embedding space (also in caption mode): :class:`KNN`.
Fitted on correctness labels (classification mode only):
:class:`TemperatureScaling`, :class:`RelU`, :class:`TrustScore`,
:class:`Mahalanobis`, :class:`RelativeMahalanobis`, :class:`TrustVLM`,
:class:`ICPE`, and the learned visual-only head :class:`LVU` (with
:func:`make_lvu`, ViLU's visual-only head).
Fitted on the class labels (classification mode only): :class:`LinearProbe`
and :class:`MLPProbe`, classifiers of the image embedding whose confidence is
their probability of the VLM's predicted class.

Baselines that need class sets (TrustScore, Mahalanobis, RelativeMahalanobis,
TrustVLM, ICPE) build them from the training images the VLM classified
correctly, labelled with their predicted class: they take ``y_correct`` only,
not the true class of a wrongly classified image.
"""

from ._feature_space import KNN, Mahalanobis, RelativeMahalanobis
from ._image_text import ICPE, TrustVLM
from ._lvu import LVU, make_lvu
from ._probe import LinearProbe, MLPProbe
from ._relu import RelU
from ._temperature import TemperatureScaling
from ._training_free import MCM, MSP, Doctor, Energy, Entropy, Margin, MaxLogit
from ._trust_score import TrustScore

__all__ = [
    "ICPE",
    "KNN",
    "LVU",
    "LinearProbe",
    "MLPProbe",
    "MCM",
    "MSP",
    "Doctor",
    "Energy",
    "Entropy",
    "Mahalanobis",
    "Margin",
    "MaxLogit",
    "RelU",
    "RelativeMahalanobis",
    "TemperatureScaling",
    "TrustScore",
    "TrustVLM",
    "make_lvu",
]
