"""The instructor's path: every walkthrough opens with a lesson plan, and answers/README.md indexes every reference
question and every checked exercise.

A lesson plan is the first section after a walkthrough's title, ``## Lesson plan``. It holds

- a table whose header starts ``| Minutes | In 45 |``: one row per part of the class, the minutes of a 90-minute
  class in the first column and of the 45-minute version in the second (``0`` where that version skips the part);
  the columns sum to 90 and 45;
- ``**Key points.**`` followed by exactly three numbered points;
- at least five prediction prompts, list items written ``- **Predict:** the question **Answer:** what the notebook
  shows``;
- ``**Live demo.**``, ``**What goes wrong in class.**`` and ``**In 45 minutes.**``.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WALKTHROUGHS = sorted((ROOT / "walkthroughs").glob("[0-9][0-9]_*.md"))
INDEX = ROOT / "answers" / "README.md"
# the reference notes number their questions Q1 to Q22 but have no Q15 and no Q16 (README.md, "For instructors")
QUESTIONS = [q for q in range(1, 23) if q not in (15, 16)]
PARTS = ("**Key points.**", "**Live demo.**", "**What goes wrong in class.**", "**In 45 minutes.**")
PREDICT = re.compile(r"^- \*\*Predict:\*\*", re.M)
MAX_WORDS = 480  # a plan an instructor reads in a few minutes (table pipes and symbols do not count)
# The walkthroughs built on the template of walkthroughs/README.md ("How each walkthrough is built"): these sections
# in this order, and at most MAIN_WORDS words outside <details> blocks (code blocks count). 06-10 join SHORT when
# they are converted.
SHORT = ["01_baseline_ddpm", "02_checkerboard_artifacts", "03_group_norm", "04_gelu", "05_rearrange_pooling",
         "06_sinusoidal_time_embeddings", "07_residual_blocks", "08_putting_it_together",
         "09_noise_schedule_and_sampling", "10_classifier_free_guidance"]
MAIN_WORDS = 2500
SECTIONS = ("## Lesson plan", "## Overview", "## The story, section by section", "## Common student mistakes",
            "## Sources")
DETAILS = re.compile(r"<details>.*?</details>", re.S)


def lesson_plan(text: str, name: str = "") -> str:
    """The text of the ``## Lesson plan`` section, which must come first after the title."""
    lines = text.split("\n")
    assert lines[0].startswith("# "), f"{name}: the first line is not the title"
    first = next((line for line in lines[1:] if line.strip()), "")
    assert first.strip() == "## Lesson plan", f"{name}: the first thing after the title is {first!r}, not '## Lesson plan'"
    start = text.index("## Lesson plan") + len("## Lesson plan")
    nxt = re.search(r"^## ", text[start:], re.M)
    return text[start:start + nxt.start()] if nxt else text[start:]


def minutes(plan: str) -> list[tuple[int, int, str]]:
    """(90-minute class, 45-minute class, part) for every row of the minutes table."""
    rows, in_table = [], False
    for line in plan.split("\n"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else None
        if cells is None:
            if in_table:
                break
            continue
        if not in_table:
            in_table = [c.lower() for c in cells[:2]] == ["minutes", "in 45"]
            continue
        if set(cells[0]) <= set("-: "):
            continue  # the separator row
        assert re.fullmatch(r"\d+", cells[0]) and re.fullmatch(r"\d+", cells[1]), f"not minutes: {line!r}"
        rows.append((int(cells[0]), int(cells[1]), cells[2] if len(cells) > 2 else ""))
    return rows


def predictions(plan: str) -> list[str]:
    """The prediction prompts: each list item from ``- **Predict:**`` to the next item or paragraph."""
    items = []
    for m in PREDICT.finditer(plan):
        end = re.compile(r"^(?:- |\S)|^\s*$", re.M).search(plan, m.end())
        items.append(plan[m.start():end.start() if end else len(plan)])
    return items


def checker_names() -> dict[str, str]:
    """{check_name: module file} for every public ``check_*`` function of course_utils/exercises."""
    names = {}
    for path in sorted((ROOT / "course_utils" / "exercises").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("check_"):
                names[node.name] = path.name
    return names


def test_there_is_a_walkthrough_per_notebook():
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [p.stem for p in WALKTHROUGHS] == notebooks


@pytest.mark.parametrize("path", WALKTHROUGHS, ids=lambda p: p.name)
def test_every_walkthrough_opens_with_a_lesson_plan(path):
    plan = lesson_plan(path.read_text(), path.name)
    rows = minutes(plan)
    assert rows, f"{path.name}: no minutes table (a header starting '| Minutes | In 45 |')"
    assert sum(r[0] for r in rows) == 90, f"{path.name}: the minutes sum to {sum(r[0] for r in rows)}, not 90"
    assert sum(r[1] for r in rows) == 45, f"{path.name}: the 45-minute column sums to {sum(r[1] for r in rows)}"
    assert all(r[1] <= r[0] for r in rows), f"{path.name}: the 45-minute version gives a part more time"
    for part in PARTS:
        assert part in plan, f"{path.name}: the lesson plan has no {part}"
    key = plan.split("**Key points.**", 1)[1]
    end = re.search(r"^(?:\*\*|- )", key, re.M)
    points = re.findall(r"^\d+\. ", key[:end.start()] if end else key, re.M)
    assert len(points) == 3, f"{path.name}: {len(points)} key points, not 3"
    prompts = predictions(plan)
    assert len(prompts) >= 5, f"{path.name}: {len(prompts)} prediction prompts, at least 5 wanted"
    for p in prompts:
        assert "**Answer:**" in p, f"{path.name}: a prediction prompt without its **Answer:**: {p[:80]!r}"
    words = sum(1 for w in re.sub(r"<!--.*?-->", "", plan, flags=re.S).split() if re.search(r"\w", w))
    assert words <= MAX_WORDS, f"{path.name}: the lesson plan has {words} words (at most {MAX_WORDS})"


def main_text(text: str) -> str:
    """What a reader sees without opening a ``<details>`` block."""
    return DETAILS.sub("", text)


@pytest.mark.parametrize("stem", SHORT)
def test_a_converted_walkthrough_follows_the_template(stem):
    text = (ROOT / "walkthroughs" / f"{stem}.md").read_text()
    words = len(main_text(text).split())
    assert words <= MAIN_WORDS, f"{stem}.md has {words} words outside <details> (at most {MAIN_WORDS})"
    heads = [h for h in re.findall(r"^## .*$", main_text(text), re.M)]
    assert heads == list(SECTIONS), f"{stem}.md: the sections are {heads}, not {list(SECTIONS)}"
    assert text.count("<details>") == text.count("</details>"), f"{stem}.md: an unclosed <details> block"
    for m in re.finditer(r"<details>(.*?)</details>", text, re.S):
        where = f"{stem}.md:{text.count(chr(10), 0, m.start()) + 1}"
        # without the blank lines the markdown inside the block would not render
        assert re.match(r"<summary>[^\n]+</summary>\n\n", m[1]), f"{where}: no <summary> line and blank line after it"
        assert m[1].endswith("\n\n"), f"{where}: no blank line before </details>"


def test_the_main_text_leaves_out_details_blocks():
    text = "a b\n\n<details><summary>S</summary>\n\nc d e\n\n</details>\n\nf\n"
    assert main_text(text).split() == ["a", "b", "f"]


def test_the_lesson_plan_parser_catches_a_bad_plan():
    good = ("# T\n\n## Lesson plan\n\n| Minutes | In 45 | Part |\n|---:|---:|---|\n| 60 | 30 | a |\n| 30 | 15 | b |\n\n"
            "- **Predict:** x?\n  more **Answer:** y.\n- **Predict:** z? **Answer:** w.\n\n## Next\n")
    plan = lesson_plan(good)
    assert minutes(plan) == [(60, 30, "a"), (30, 15, "b")]
    assert len(predictions(plan)) == 2 and all("**Answer:**" in p for p in predictions(plan))
    with pytest.raises(AssertionError, match="not '## Lesson plan'"):
        lesson_plan("# T\n\nintro\n\n## Lesson plan\n")


def test_the_answers_index_lists_every_question_and_every_checker():
    text = INDEX.read_text()
    for q in QUESTIONS:
        assert re.search(rf"\bQ{q}\b", text), f"answers/README.md does not list Q{q}"
    assert "Q15" in text and "Q16" in text, "answers/README.md does not say why Q15 and Q16 are absent"
    names = checker_names()
    assert names, "no check_* function found in course_utils/exercises"
    missing = sorted(n for n in names if not re.search(rf"\b{n}\b", text))
    assert not missing, f"answers/README.md does not list these checkers: {missing}"
    stale = sorted(set(re.findall(r"\bcheck_\w+", text)) - set(names))
    assert not stale, f"answers/README.md lists checkers that no longer exist: {stale}"


def test_the_walkthroughs_index_links_the_answers_index():
    assert "../answers/README.md" in (ROOT / "walkthroughs" / "README.md").read_text()
