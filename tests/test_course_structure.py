"""The course's shape: numbered notebooks stored without outputs, each with a teacher's-answers file and
exercises, each importing its model code from course_utils instead of pasting a copy."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_are_numbered_without_gaps():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 8


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_shape(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "stored with outputs"
    text = "".join("".join(c["source"]) for c in nb["cells"])
    assert "nb.setup()" in "".join(code[0]["source"]), "the first code cell prints the budget and device"
    assert "## Exercises" in text
    assert not re.search(r"^\s*class \w+\(nn\.Module\)", text, re.M), "model code belongs in course_utils"
    assert (ROOT / "answers" / f"{path.stem}.md").is_file(), f"answers/{path.stem}.md is missing"
    assert any("NBVAL_CHECK_OUTPUT" in "".join(c["source"]) for c in code), "no checked output"


def test_every_checked_cell_has_a_recorded_output():
    from expected_outputs import digest, expected_path, is_checked
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        saved = json.loads(expected_path(path).read_text())
        for cell in nb["cells"]:
            src = "".join(cell["source"])
            if cell["cell_type"] == "code" and is_checked(src):
                assert cell["id"] in saved, f"{path.name}: cell {cell['id']} has no recorded output"
                assert saved[cell["id"]]["source_sha256"] == digest(src), f"{path.name}: cell {cell['id']} changed"


@pytest.mark.slow
@pytest.mark.parametrize("printed, ok", [("1", True), ("2", False)])
def test_checked_cells_are_really_compared(tmp_path, printed, ok):
    """A checked cell whose output differs from the recorded one fails under nbval (and a matching one passes)."""
    import os
    import shutil
    import subprocess
    import sys
    folder = ROOT / "tests" / "artifacts" / f"probe_{printed}"
    folder.mkdir(parents=True, exist_ok=True)
    nb = {"cells": [{"cell_type": "code", "id": "probe", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": f"# NBVAL_CHECK_OUTPUT\nprint({printed})"}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (folder / "probe.ipynb").write_text(json.dumps(nb))
    from expected_outputs import digest
    (tmp_path / "probe.json").write_text(json.dumps({"probe": {"cell": 0, "source_sha256": digest(nb["cells"][0]["source"]),
                                                               "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}]}}))
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "probe.ipynb")],
                           cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, COURSE_EXPECTED_DIR=str(tmp_path)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert (r.returncode == 0) == ok, r.stdout[-2000:]


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if "capstone" not in p.stem], ids=lambda p: p.stem)
def test_every_notebook_has_a_try_it_yourself_cell(path):
    """One cell that trains a student's variant (a preset with changed fields, or a U-Net built with a block of
    the student's own) beside the rung, stored runnable. (The capstone is one whole try-it-yourself.)"""
    nb = json.loads(path.read_text())
    text = ["".join(c["source"]) for c in nb["cells"]]
    at = next(i for i, t in enumerate(text) if t.startswith("## Try it yourself"))
    code = text[at + 1]
    assert nb["cells"][at + 1]["cell_type"] == "code" and "nb.compare(" in code
    assert re.search(r'MY_VARIANT = (\("\w+", \{"\w+": |cu\.build\("\w+", \w+=)', code), code
    assert at < next(i for i, t in enumerate(text) if t.startswith("## Exercises"))


def test_notebook_01_opens_with_where_the_course_ends():
    """Issue 23's first minute: right after the set-up cell, best-cpu's samples beside real images and a denoising
    strip (course_utils.figures.first_page.first_minute: DDIM, 25 steps; its time is in docs/results.md)."""
    nb = json.loads((ROOT / "notebooks" / "01_baseline_ddpm.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert "nb.setup()" in code[0] and "first_page.first_minute()" in code[1]


def markdown_words(path: Path) -> int:
    """Words of a notebook's markdown, outside its optional '## Appendix' section (which runs up to '## Takeaways')."""
    words, appendix = 0, False
    for c in json.loads(path.read_text())["cells"]:
        text = "".join(c["source"])
        if c["cell_type"] != "markdown":
            continue
        appendix = (appendix or text.startswith("## Appendix")) and not text.startswith("## Takeaways")
        words += 0 if appendix else len(re.sub(r"\s*<!--.*?-->", "", text, flags=re.S).split())  # markers are invisible
    return words


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_reads_in_one_sitting(path):
    """Issue 23: at most 2,000 words of markdown per notebook; the rest goes to an Appendix or the walkthrough."""
    assert markdown_words(path) <= 2000, f"{path.name}: {markdown_words(path)} words outside its Appendix"
