"""Shared fixtures.

The real-image embeddings of ../shared/data (skipped when absent) and ``.npz``
files written in a test's temporary folder. Plain helper functions are in
``_helpers.py``.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np
import pytest

_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA_FILE = (
    Path(os.environ.get("VILU_SKLEARN_SHARED_DATA", _DEFAULT))
    / "cifar10_mbv2_minilm.npz"
)


def pytest_collection_finish(session):
    """Exempt what collection built from the garbage collector's full passes.

    Collection imports torch, scikit-learn and hypothesis and builds some 2000
    test items (the estimator checks); every full collection would then walk
    these long-lived objects again, which took about a fifth of the default
    tier's CPU time. ``gc.freeze`` moves them to a generation that is never
    scanned; objects created by the tests are collected as usual.
    """
    gc.freeze()


@pytest.fixture(scope="session")
def cifar_npz_path() -> Path:
    """Path of the shared CIFAR-10 embeddings (test skipped if the file is absent)."""
    if not DATA_FILE.exists():
        pytest.skip(f"shared data not found at {DATA_FILE}")
    return DATA_FILE


@pytest.fixture(scope="session")
def cifar(cifar_npz_path):
    """The shared CIFAR-10 embeddings as a dict of numpy arrays."""
    with np.load(cifar_npz_path, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


@pytest.fixture
def write_npz(tmp_path):
    """``write_npz(name="emb.npz", **arrays)``: np.savez to tmp_path, the path."""

    def write(name="emb.npz", **arrays):
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    return write
