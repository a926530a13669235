"""Skip the doctests of this subpackage that need the optional ``transformers``."""

from __future__ import annotations

import importlib.util

import pytest


@pytest.fixture(autouse=True)
def _needs_transformers(request: pytest.FixtureRequest) -> None:
    """Skip doctests of ``_embedder.py`` when transformers or pillow is absent."""
    if request.node.path.name != "_embedder.py":
        return
    for module in ("transformers", "PIL"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"optional package {module!r} not installed")
