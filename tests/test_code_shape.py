"""course_utils stays readable (issue 21): no function takes more than 10 parameters or runs longer than 80 lines,
and course_utils imports sit at the top of their modules (at most 20 inside functions in the whole package, each one
where the layering forbids the top)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "course_utils").rglob("*.py"))


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def n_params(node) -> int:
    a = node.args
    return len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)


@pytest.mark.parametrize("name", FILES)
def test_functions_are_small(name):
    big = [f"{f.name}: {n_params(f)} parameters, {f.end_lineno - f.lineno + 1} lines"
           for f in functions(ROOT / name) if n_params(f) > 10 or f.end_lineno - f.lineno + 1 > 80]
    assert not big, f"{name}: {big}"


def test_course_utils_imports_sit_at_the_top():
    inner = [f"{name} {f.name}: line {n.lineno}" for name in FILES for f in functions(ROOT / name)
             for n in ast.walk(f)
             if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("course_utils")
             or isinstance(n, ast.Import) and any(a.name.startswith("course_utils") for a in n.names)]
    assert len(inner) <= 20, f"{len(inner)} imports inside functions: {inner}"
