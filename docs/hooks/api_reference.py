"""MkDocs hook: one API reference page per public object of every public package.

The public packages are ``vilu_sklearn`` and each of its subpackages whose name
does not start with an underscore (found with :mod:`pkgutil`, so a new public
subpackage gets its pages without any change here). Their public objects are the
names in their ``__all__``. Each object gets the page ``api/<package>/<name>.md``
rendered by mkdocstrings, each package an index page with a one-line summary per
object, and the pages are appended to the navigation under "API reference".
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path
from typing import Any

# Document the checkout that holds this file, not another installed copy.
_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

ROOT = "vilu_sklearn"
# Order of the packages in the navigation; a public subpackage not listed here
# comes after these, in alphabetical order.
ORDER = [
    "vilu_sklearn",
    "vilu_sklearn.baselines",
    "vilu_sklearn.metrics",
    "vilu_sklearn.datasets",
    "vilu_sklearn.embed",
]


def public_packages() -> list[str]:
    """``vilu_sklearn`` and its public subpackages, in navigation order."""
    root = importlib.import_module(ROOT)
    found = [ROOT] + [
        f"{ROOT}.{info.name}"
        for info in pkgutil.iter_modules(root.__path__)
        if info.ispkg and not info.name.startswith("_")
    ]
    known = [p for p in ORDER if p in found]
    return known + sorted(set(found) - set(known))


def public_objects() -> dict[str, list[str]]:
    """Names in ``__all__`` of every public package, by package."""
    out = {}
    for package in public_packages():
        module = importlib.import_module(package)
        names = getattr(module, "__all__", None)
        if not names:
            raise RuntimeError(f"{package} has no __all__: its API is undefined.")
        out[package] = list(names)
    return out


def _summary(obj: Any) -> str:
    """First paragraph of the docstring; the value of a constant or instance."""
    if inspect.isclass(obj) or inspect.isroutine(obj):
        doc = inspect.getdoc(obj) or ""
        text = doc.strip().split("\n\n")[0].replace("\n", " ")
    else:
        value = repr(obj)
        text = f"`{value if len(value) <= 60 else value[:57] + '...'}`"
    return text.replace("|", "\\|")


def _object_page(package: str, name: str) -> str:
    return f"# `{name}`\n\n::: {package}.{name}\n"


def _index_page(package: str, names: list[str]) -> str:
    module = importlib.import_module(package)
    lines = [
        f"# `{package}`\n",
        f"::: {package}",
        "    options:",
        "      members: false",
        "      show_root_heading: false",
        "      show_root_toc_entry: false\n",
        "| object | summary |",
        "|---|---|",
    ]
    for name in names:
        summary = _summary(getattr(module, name))
        lines.append(f"| [`{name}`]({name}.md) | {summary} |")
    return "\n".join(lines) + "\n"


def api_pages() -> dict[str, str]:
    """Source path (relative to ``docs/``) and Markdown of every API page."""
    pages = {}
    for package, names in public_objects().items():
        pages[f"api/{package}/index.md"] = _index_page(package, names)
        for name in names:
            pages[f"api/{package}/{name}.md"] = _object_page(package, name)
    return pages


def api_nav() -> list[dict[str, Any]]:
    """The "API reference" navigation entries, one section per package."""
    return [
        {
            package: [f"api/{package}/index.md"]
            + [{name: f"api/{package}/{name}.md"} for name in names]
        }
        for package, names in public_objects().items()
    ]


def on_files(files: Any, config: Any) -> Any:
    """Add the generated pages and their navigation section."""
    from mkdocs.structure.files import File

    for src_uri, content in api_pages().items():
        files.append(File.generated(config, src_uri, content=content))
    if config["nav"] is not None:
        config["nav"].append({"API reference": api_nav()})
    return files
