"""ViLU failure prediction for vision-language models, as scikit-learn estimators.

The conventions of the whole package (what ``y_correct`` and a confidence mean,
the positive class of each metric, ``logit_scale``, input embeddings) are stated
once, in docs/conventions.md.
"""

from . import baselines, selective  # noqa: F401  (registers their estimators: load)
from ._benchmark import benchmark, default_estimators, format_table
from ._dask import dask_predict
from ._persistence import load
from ._version import __version__
from ._vilu import REFERENCE_PARAMS, UnseenCandidatesWarning, ViLUClassifier
from ._zero_shot import (
    caption_correctness,
    correctness,
    l2_normalize,
    similarity_logits,
    zero_shot_predict,
)

__all__ = [
    "REFERENCE_PARAMS",
    "UnseenCandidatesWarning",
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
