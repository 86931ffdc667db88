"""The package's layout: layers whose imports run one way, no import cycles, no private names shared across
modules, and a package that finds the course folder when it is installed outside the checkout."""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "course_utils"

# THE layer table (the one place it is kept; docs/developing.md's table is checked against it below). Lower numbers
# are lower layers. A module may import a lower layer, or a module of its own folder on the same layer.
# The model sits just above diffusion: a U-Net config holds its DiffusionConfig.
LAYER = {
    "errors": 0, "paths": 1, "stats": 1, "system": 2, "facts": 2, "data": 3, "diffusion": 3, "model": 3.5, "checkpoints": 4, "distributed": 4,
    "train": 5, "runs": 5.5, "plotting": 6, "evaluation": 7, "lessons": 7, "exercises": 7, "study": 8, "reports": 8.5, "widgets": 9, "notebook": 9, "capstone": 9,
    "figures": 10, "cli": 11, "__main__": 12,
}


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts): p for p in PKG.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """Every course_utils module that ``path`` imports, at the top or inside a function."""
    mods, out = modules(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("course_utils"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in mods else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("course_utils")}
    return {m for m in out if m != "course_utils"}


def layer(module: str) -> int:
    return LAYER[module.split(".")[1]]


def test_the_layout_is_in_place():
    import course_utils.evaluation.fid  # noqa: F401
    import course_utils.lessons.gelu  # noqa: F401
    import course_utils.model.unet  # noqa: F401
    for folder in ("model", "lessons", "exercises", "evaluation", "study", "cli", "widgets", "figures"):
        assert (PKG / folder / "__init__.py").is_file(), folder
    lessons = {p.stem for p in (PKG / "lessons").glob("*.py")} - {"__init__"}
    assert {"checkerboard", "group_norm", "gelu", "rearrange_pooling", "time_embedding", "residual"} <= lessons
    assert set(LAYER) == {name.split(".")[1] for name in modules() if name.count(".") >= 1} - {"__init__"}, \
        "every top-level module and folder of course_utils has a layer in LAYER, and LAYER names nothing else"


def test_no_relative_imports():
    """``from .blocks import X`` would hide an import from the layer check: the package spells every import whole."""
    relative = [f"{name}: line {node.lineno}" for name, path in modules().items()
                for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom) and node.level]
    assert not relative, relative


def test_the_developers_layer_table_follows_the_layers():
    """docs/developing.md draws the layers top (faces) to bottom (the ground): a module named on a row may only sit
    on a layer at least as high as every module named on the rows below it."""
    text = (ROOT / "docs" / "developing.md").read_text()
    rows = [line for line in text.split("| layer | modules |", 1)[1].split("\n\n", 1)[0].splitlines()
            if line.startswith("|") and not line.startswith("|---")]
    row_of = {}
    for i, line in enumerate(rows):
        for word in re.findall(r"`([a-z_]+)/?`", line):
            if word in LAYER and word not in row_of:
                row_of[word] = i
    assert set(LAYER) - {"__main__"} <= set(row_of), sorted(set(LAYER) - {"__main__"} - set(row_of))
    wrong = [(a, b) for a in row_of for b in row_of if LAYER[a] < LAYER[b] and row_of[a] < row_of[b]]
    assert not wrong, f"drawn above a higher layer: {wrong}"


def test_imports_run_one_way():
    wrong = []
    for name, path in modules().items():
        if name.endswith("__init__") and name.count(".") == 1:
            continue  # the package's front door hands on a few names
        for target in imports_of(path):
            same_folder = target.rsplit(".", 1)[0] == name.rsplit(".", 1)[0] and name.count(".") == 2
            if not (layer(target) < layer(name) or (same_folder and layer(target) == layer(name))):
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports that run up or sideways between layers: " + ", ".join(wrong)


def test_no_import_cycles():
    graph = {name: imports_of(path) for name, path in modules().items()}
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_no_private_name_is_imported_across_modules():
    private = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils"):
                private += [f"{name}: {a.name} from {node.module}" for a in node.names if a.name.startswith("_")]
    assert not private, private


def _installed_copy(tmp_path: Path) -> Path:
    """The package alone, outside any checkout, as a non-editable ``pip install .`` leaves it."""
    site = tmp_path / "site"
    shutil.copytree(PKG, site / "course_utils", ignore=shutil.ignore_patterns("__pycache__"))
    return site


needs_safe_path = pytest.mark.skipif(sys.version_info < (3, 11), reason="PYTHONSAFEPATH (keep the current folder "
                                     "off sys.path) needs Python 3.11")


def _run(site: Path, cwd: Path, *args: str, home: str | None = None):
    env = {**os.environ, "PYTHONPATH": str(site), "COURSE_DATA_DIR": str(ROOT / "data"), "PYTHONSAFEPATH": "1"}
    env.pop("COURSE_HOME", None)
    if home:
        env["COURSE_HOME"] = home
    return subprocess.run([sys.executable, "-c", "import course_utils, sys; from course_utils.paths import find_home; "
                           "print(course_utils.__file__); print(find_home())", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@needs_safe_path
def test_an_installed_package_finds_the_course_folder(tmp_path):
    site = _installed_copy(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = _run(site, ROOT)                       # from the repository's root
    assert r.returncode == 0, r.stderr
    imported, found = r.stdout.split()
    assert imported.startswith(str(site)) and Path(found) == ROOT
    r = _run(site, elsewhere, home=str(ROOT))  # from anywhere, through the documented setting
    assert Path(r.stdout.split()[1]) == ROOT
    r = _run(site, elsewhere)                  # from anywhere without it: nothing found
    assert r.stdout.split()[1] == "None"


@pytest.mark.slow
@needs_safe_path
def test_an_installed_package_evaluates_from_the_repository_root(tmp_path):
    site = _installed_copy(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site), "COURSE_BUDGET": "ci", "PYTHONSAFEPATH": "1"}
    env.pop("COURSE_HOME", None)
    r = subprocess.run([sys.executable, "-m", "course_utils", "evaluate", "baseline", "-n", "16", "--sampler", "ddim",
                        "--steps", "5", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{ROOT}/checkpoints/baseline.safetensors" in r.stdout and '"fid"' in r.stdout
    assert "site/course_utils" in subprocess.run([sys.executable, "-c", "import course_utils; print(course_utils.__file__)"],
                                                 cwd=ROOT, env=env, capture_output=True, text=True).stdout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([sys.executable, "-m", "course_utils", "evaluate", "baseline", "-n", "16"], cwd=elsewhere,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "COURSE_HOME" in r.stderr and "Traceback" not in r.stderr
