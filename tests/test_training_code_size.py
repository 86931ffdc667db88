"""The training and ground-floor modules stay readable (issue 21): no function takes more than 10 parameters or
runs longer than 80 lines, and no course_utils import hides inside a function."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = ["course_utils/train.py", "course_utils/evaluation/classifier.py", "course_utils/system.py",
         "course_utils/distributed.py"]


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


@pytest.mark.parametrize("name", FILES)
def test_course_utils_imports_sit_at_the_top(name):
    inner = [f"{f.name}: line {n.lineno}" for f in functions(ROOT / name) for n in ast.walk(f)
             if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("course_utils")
             or isinstance(n, ast.Import) and any(a.name.startswith("course_utils") for a in n.names)]
    assert not inner, f"{name}: {inner}"
