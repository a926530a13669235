"""Code-style rules of the developer guide that a linter does not check."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vilu_sklearn"
MAX_BODY_LINES = 80


def _body_lengths(source: str) -> dict[str, int]:
    """Lines of body of every function (methods and nested ones included).

    A body runs from its first statement after the docstring (the docstring is
    not counted) to the function's last line, blank and comment lines included.
    Keys are ``line:qualified.name``.
    """
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                body = child.body
                if ast.get_docstring(child, clean=False) is not None:
                    body = body[1:]
                if body:
                    end = child.end_lineno or body[-1].lineno
                    lengths[f"{child.lineno}:{name}"] = end - body[0].lineno + 1
                name += "."
            elif isinstance(child, ast.ClassDef):
                name = f"{prefix}{child.name}."
            visit(child, name)

    visit(ast.parse(source), "")
    return lengths


def test_body_lengths_counts_statements_after_the_docstring():
    source = (
        "def f(x):\n"
        '    """Doc.\n\n    More doc.\n    """\n'
        "    y = x\n"
        "\n"
        "    # comment\n"
        "    return y\n"
        "class C:\n"
        "    def m(self):\n"
        "        def inner():\n"
        "            pass\n"
        "        return inner\n"
    )
    assert _body_lengths(source) == {
        "1:f": 4,
        "11:C.m": 3,
        "12:C.m.inner": 1,
    }


@pytest.mark.parametrize(
    "path",
    sorted(PACKAGE.rglob("*.py")),
    ids=lambda p: p.relative_to(PACKAGE).as_posix(),
)
def test_no_function_body_over_80_lines(path):
    too_long = {
        name: n
        for name, n in _body_lengths(path.read_text(encoding="utf-8")).items()
        if n > MAX_BODY_LINES
    }
    assert not too_long, (
        f"{path.name}: function bodies over {MAX_BODY_LINES} lines (split them into "
        f"named private steps): {too_long}"
    )
