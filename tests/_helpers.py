"""Test-only helpers shared by the test modules (plain functions and mixins).

Fixtures live in ``conftest.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from vilu_sklearn import correctness

STRING_LABELS = (
    "string labels such as 'one'/'two' say nothing about which means 'the VLM "
    "was right': y_correct refuses them (issue 11, defect 6); map them first, "
    "e.g. y_correct = (labels == 'correct')"
)

# a small deterministic ViLU: float64 on the CPU, AdamW without warm-up or early
# stopping (add max_epochs)
FAST_VILU = dict(
    hidden_layer_sizes=(16,),
    optimizer="adamw",
    lr=1e-2,
    warmup_epochs=0,
    early_stopping=False,
    dtype="float64",
    device="cpu",
    random_state=0,
)


def make_toy(n=400, K=5, d=16, seed=0, scale=1.4):
    """Gaussian blobs around K random class prompts: ``X_img, X_txt, labels, y``.

    ``X_img[i] = X_txt[labels[i]] + N(0, scale**2 I)``; ``y`` is the zero-shot
    correctness (cosine argmax). The same arguments give the same arrays.
    """
    rng = np.random.default_rng(seed)
    X_txt = rng.normal(size=(K, d))
    labels = rng.integers(0, K, size=n)
    X_img = X_txt[labels] + rng.normal(scale=scale, size=(n, d))
    return X_img, X_txt, labels, correctness(X_img, X_txt, labels)


def _as_correctness(y):
    """Map two numeric labels other than {0, 1} and {-1, 1} to 0/1 (greater = 1)."""
    if y is None or not (hasattr(y, "__array__") or isinstance(y, list | tuple)):
        return y
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        return y
    values = set(np.unique(arr).tolist())
    if len(values) != 2 or values <= {0, 1} or values <= {-1, 1}:
        return y
    return (arr == arr.max()).astype(np.int64)


class MeaningfulLabels:
    """Test-only mixin: gives the checks' labels a meaning as correctness.

    The estimators only accept labels whose meaning is unambiguous (bool,
    {0, 1}, {-1, 1}): a failure predictor cannot know which of {1, 2} means
    "the VLM was right". scikit-learn's checks draw such labels (e.g. {a, a + 1}
    for binary-only classifiers), so this maps them as a user would,
    ``y_correct = (y == y.max())``, and every other behaviour is still checked.
    String labels are not mapped (see ``check_classifiers_classes`` below).
    """

    def fit(self, X, y=None, y_correct=None, **kwargs):
        if y_correct is None:
            y = _as_correctness(y)
        else:
            y_correct = _as_correctness(y_correct)
        return super().fit(X, y, y_correct, **kwargs)

    def score(self, X, y=None, sample_weight=None):
        return super().score(X, _as_correctness(y), sample_weight=sample_weight)


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module (the examples are not a package)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
