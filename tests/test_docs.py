"""The documentation site's generators: API pages, docstring rewriting, gallery."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import vilu_sklearn

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def api():
    return _load(ROOT / "docs" / "hooks" / "api_reference.py")


def test_every_public_package_is_documented(api):
    subpackages = {
        f"vilu_sklearn.{m.name}"
        for m in pkgutil.iter_modules(vilu_sklearn.__path__)
        if m.ispkg and not m.name.startswith("_")
    }
    packages = api.public_packages()
    assert packages[0] == "vilu_sklearn"
    assert set(packages) == subpackages | {"vilu_sklearn"}
    assert {"vilu_sklearn.metrics", "vilu_sklearn.baselines"} <= set(packages)


def test_every_public_object_has_a_page(api):
    pages = api.api_pages()
    n_objects = 0
    for package in api.public_packages():
        module = importlib.import_module(package)
        assert f"api/{package}/index.md" in pages
        for name in module.__all__:
            n_objects += 1
            page = pages[f"api/{package}/{name}.md"]
            assert f"::: {package}.{name}\n" in page
            assert f"[`{name}`]({name}.md)" in pages[f"api/{package}/index.md"]
    assert len(pages) == n_objects + len(api.public_packages())
    assert "api/vilu_sklearn/ViLUClassifier.md" in pages


def test_nav_lists_the_generated_pages(api):
    pages = api.api_pages()
    listed = []
    for section in api.api_nav():
        ((package, entries),) = section.items()
        for entry in entries:
            listed += [entry] if isinstance(entry, str) else list(entry.values())
    assert sorted(listed) == sorted(pages)


def test_index_summary_is_the_first_paragraph(api):
    index = api.api_pages()["api/vilu_sklearn.metrics/index.md"]
    line = next(x for x in index.splitlines() if x.startswith("| [`auroc`]"))
    summary = vilu_sklearn.metrics.auroc.__doc__.strip().split("\n\n")[0]
    assert " ".join(summary.split()) in " ".join(line.split())


def test_docstring_rewriting():
    pytest.importorskip("griffe", reason="needs vilu-sklearn[docs]")
    ext = _load(ROOT / "docs" / "hooks" / "runtime_docstrings.py")
    text = ":class:`~vilu_sklearn.ViLUClassifier` and :func:`vilu_sklearn.auroc`"
    assert ext._ROLE.sub(ext._role_as_code, text) == (
        "`ViLUClassifier` and `vilu_sklearn.auroc`"
    )
    linked = ext._PAGE.sub(r"[docs/\1.md][\1]", "see docs/conventions.md.")
    assert linked == "see [docs/conventions.md][conventions]."
    # the baselines' templated docstrings are read at run time, filled in
    doc = ext._runtime_doc("vilu_sklearn.baselines.MSP")
    assert "{shared_params}" not in doc and "logit_scale : float" in doc


def test_gallery_has_the_promised_examples():
    scripts = sorted((ROOT / "examples" / "gallery").glob("plot_*.py"))
    assert len(scripts) >= 6
    for script in scripts:
        doc = ast.get_docstring(ast.parse(script.read_text()))
        assert doc and doc.lstrip().startswith("# "), f"{script.name}: no title"
