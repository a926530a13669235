"""Griffe extension: docstrings as Python sees them, Sphinx roles as code.

* Some classes build their docstring when the module is imported (the baselines
  fill shared parameter sections into a template with ``str.format``). Griffe reads
  the source, where the placeholders are still unformatted; the docstring of such
  a class is replaced by its ``__doc__`` at run time.
* The docstrings use Sphinx roles (``:class:`~vilu_sklearn.ViLUClassifier```) that
  Markdown does not know; they are rendered as inline code of the object's name.
* A docstring points to a documentation page by its path in the repository
  (``docs/conventions.md``), which reads well in ``help()``; on the site the path
  becomes a link to the page.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc):`(~?)([^`]+)`")
# docs/<page>.md -> a link to the page's first heading (mkdocs-autorefs resolves it)
_PAGE = re.compile(r"(?<![\w/`\[])docs/(conventions)\.md\b")


def _runtime_doc(path: str) -> str | None:
    module_path, _, name = path.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_path), name)
    except (ImportError, AttributeError):
        return None
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else None


def _role_as_code(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


class RuntimeDocstrings(griffe.Extension):
    """Use ``obj.__doc__`` where the source docstring is a template."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Fill templated class docstrings; turn Sphinx roles into code."""
        if obj.docstring is None:
            return
        text = obj.docstring.value
        if obj.is_class and "{" in text:
            text = _runtime_doc(obj.path) or text
        text = _ROLE.sub(_role_as_code, text)
        text = _PAGE.sub(r"[docs/\1.md][\1]", text)
        if text != obj.docstring.value:
            obj.docstring = griffe.Docstring(
                text, lineno=obj.docstring.lineno, parent=obj
            )
