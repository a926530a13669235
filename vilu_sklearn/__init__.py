"""ViLU failure prediction for vision-language models, as scikit-learn estimators.

Conventions used throughout the package:

* ``y_correct = 1`` means the VLM's prediction was correct, 0 that it was wrong.
* Every score is a *confidence*: higher means more likely correct.
* AUROC and FPR@95%TPR take successes (``y_correct = 1``) as the positive class;
  AUPR-error takes failures as the positive class.
* ``logit_scale`` (CLIP's is 100) is explicit wherever a softmax over similarities
  is taken; embeddings are L2-normalised inside unless ``normalize=False``.
"""

from ._benchmark import benchmark, default_estimators, format_table
from ._dask import dask_predict
from ._persistence import load
from ._version import __version__
from ._vilu import REFERENCE_PARAMS, ViLUClassifier
from ._zero_shot import (
    caption_correctness,
    correctness,
    l2_normalize,
    similarity_logits,
    zero_shot_predict,
)

__all__ = [
    "REFERENCE_PARAMS",
    "ViLUClassifier",
    "__version__",
    "benchmark",
    "dask_predict",
    "default_estimators",
    "format_table",
    "load",
    "caption_correctness",
    "correctness",
    "l2_normalize",
    "similarity_logits",
    "zero_shot_predict",
]
