"""The self-check quizzes and the ending of every notebook: `## Takeaways` (3 bullets), the quiz cell, the next link.

The questions live in course_utils.lessons.quizzes; the widget in course_utils.widgets.quiz only shows what the pure
checker returns. The browser test (tests/test_browser.py) clicks the same widgets in JupyterLab.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from course_utils.errors import CourseError
from course_utils.lessons import quizzes as Q

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if 1 <= int(p.name[:2]) <= 11)
KEYS = [f"{i:02d}" for i in range(1, 12)]


def _cells(path: Path) -> list[tuple[str, str]]:
    return [(c["cell_type"], "".join(c["source"])) for c in json.loads(path.read_text())["cells"]]


# --------------------------------------------------------------------------------------------
# the questions
# --------------------------------------------------------------------------------------------
def test_every_notebook_01_to_11_has_a_quiz_of_three_questions():
    assert len(NOTEBOOKS) == 11
    assert sorted(Q.QUIZZES) == KEYS
    for key in KEYS:
        assert len(Q.questions(key)) == 3, key


@pytest.mark.parametrize("key", KEYS)
def test_every_question_is_well_formed(key):
    for i, q in enumerate(Q.questions(key)):
        where = f"notebook {key}, question {i + 1}"
        assert q.prompt.strip() and q.confirm.strip(), where
        assert len(q.choices) >= 3, f"{where}: fewer than 3 choices"
        assert len(set(q.choices)) == len(q.choices), f"{where}: two choices are the same"
        assert 0 <= q.answer < len(q.choices), f"{where}: the answer is not one of the choices"
        assert len(q.reasons) == len(q.choices), f"{where}: one reason per choice"
        assert q.reasons[q.answer] is None, f"{where}: exactly one right answer (the right one has no reason)"
        for j, reason in enumerate(q.reasons):
            if j != q.answer:
                assert reason and reason.strip(), f"{where}: wrong choice {j} has no reason"
                assert not reason.lower().startswith("not quite"), f"{where}: the checker adds 'Not quite'"


@pytest.mark.parametrize("key", KEYS)
def test_the_checker_explains_a_wrong_choice_and_confirms_the_right_one(key):
    for i, q in enumerate(Q.questions(key)):
        for j, choice in enumerate(q.choices):
            ok, message = Q.check(key, i, j)
            if j == q.answer:
                assert ok is True
                assert q.confirm in message and "Not quite" not in message
            else:
                assert ok is False
                assert message.startswith("Not quite: ") and message.endswith(q.reasons[j]), message


def test_the_checker_on_a_known_question():
    """nn.GroupNorm(32, 64): the first argument counts groups."""
    q = Q.questions("03")[0]
    assert "GroupNorm(32, 64)" in q.prompt
    right = q.choices[q.answer]
    assert "32 groups of 2" in right
    wrong = next(j for j, c in enumerate(q.choices) if "2 groups of 32" in c)
    ok, message = Q.check("03", 0, wrong)
    assert not ok and message == ("Not quite: the first argument is the number of groups, not the number of "
                                  "channels per group.")
    assert Q.check("03", 0, q.answer) == (True, f"Right! {q.confirm}")


def test_the_checker_refuses_what_does_not_exist():
    for args in [("12", 0, 0), ("03", 3, 0), ("03", 0, 9), ("03", -1, 0)]:
        with pytest.raises(CourseError):
            Q.check(*args)
    assert Q.questions(3) == Q.questions("03")


def test_the_facts_the_course_must_get_right():
    """The design's three facts, as the quizzes state them."""
    gn = Q.questions("03")[0]
    assert "first argument counts groups" in gn.confirm
    cb = Q.questions("02")[0]
    assert "not divisible by stride" in cb.choices[cb.answer]
    assert "max pooling" in " ".join(c for j, c in enumerate(cb.choices) if j != cb.answer).lower()
    rp = Q.questions("05")
    assert "PixelUnshuffle(2)" in rp[0].choices[rp[0].answer] and "bijection" in rp[0].choices[rp[0].answer]
    assert rp[1].choices[rp[1].answer].startswith("No")


def test_the_static_text_has_every_question_and_no_answer():
    for key in KEYS:
        text = Q.static_text(key)
        for q in Q.questions(key):
            assert q.prompt in text
            assert all(c in text for c in q.choices)
            assert q.confirm not in text
            assert not any(r and r in text for r in q.reasons)
        assert "Not quite" not in text and "Right!" not in text


# --------------------------------------------------------------------------------------------
# the widget, driven from Python (the browser test clicks it in JupyterLab)
# --------------------------------------------------------------------------------------------
def test_the_widget_answers_a_click_at_once():
    pytest.importorskip("ipywidgets")
    from course_utils.widgets.quiz import quiz
    box = quiz("05")
    assert {"course-widget", "course-quiz"} <= set(box._dom_classes)
    assert len(box.questions) == 3
    for i, (qbox, q) in enumerate(zip(box.questions, Q.questions("05"))):
        assert "course-quiz-question" in qbox._dom_classes
        assert {"course-quiz-feedback", "course-readout"} <= set(qbox.feedback._dom_classes)
        assert qbox.feedback.value == ""
        assert [("course-quiz-right" in b._dom_classes) for b in qbox.buttons] == \
               [j == q.answer for j in range(len(q.choices))]
        wrong = next(j for j in range(len(q.choices)) if j != q.answer)
        qbox.buttons[wrong].click()
        assert "Not quite" in qbox.feedback.value and _html(q.reasons[wrong]) in qbox.feedback.value
        assert qbox.buttons[wrong].button_style == "danger" and qbox.answered == (wrong, False)
        qbox.buttons[q.answer].click()
        assert "Not quite" not in qbox.feedback.value and _html(q.confirm) in qbox.feedback.value
        assert qbox.buttons[q.answer].button_style == "success" and qbox.buttons[wrong].button_style == ""


def test_the_widget_falls_back_to_plain_text():
    pytest.importorskip("ipywidgets")
    from course_utils.widgets.quiz import quiz
    bundle = quiz("07")._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == Q.static_text("07")


def _html(text: str) -> str:
    import html
    return html.escape(text)


# --------------------------------------------------------------------------------------------
# the end of every notebook
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_ends_with_takeaways_a_quiz_and_a_next_link(path):
    cells = _cells(path)
    key = path.name[:2]
    at = [i for i, (kind, src) in enumerate(cells) if kind == "markdown" and src.startswith("## Takeaways")]
    assert len(at) == 1, f"{path.name}: one '## Takeaways' cell, found {len(at)}"
    i = at[0]
    bullets = [line for line in cells[i][1].splitlines() if re.match(r"^\s*[-*] ", line)]
    assert len(bullets) == 3, f"{path.name}: Takeaways has {len(bullets)} bullets, not 3"
    assert cells[-3:] == cells[i:i + 3] and len(cells) == i + 3, f"{path.name}: Takeaways, quiz, link end the notebook"

    kind, src = cells[i + 1]
    assert kind == "code" and re.search(rf'\bquiz\(\s*"{key}"\s*\)', src), f"{path.name}: no quiz(\"{key}\") cell"
    assert "NBVAL_CHECK_OUTPUT" not in src

    kind, src = cells[i + 2]
    assert kind == "markdown"
    links = re.findall(r"\]\(([^)]+)\)", src)
    assert links, f"{path.name}: the last cell links nowhere"
    nxt = sorted((ROOT / "notebooks").glob(f"{int(key) + 1:02d}_*.ipynb"))
    if nxt:
        assert links[0] == nxt[0].name and src.startswith("[Next: "), f"{path.name}: should link to {nxt[0].name}"
    else:
        assert (path.parent / links[0]).resolve().is_file(), f"{path.name}: {links[0]} does not exist"


def test_the_notebook_check_fails_on_a_notebook_without_an_ending(tmp_path):
    """The ending test can fail: a notebook with 2 bullets and no quiz is caught."""
    src = NOTEBOOKS[2]
    nb = json.loads(src.read_text())
    for c in nb["cells"]:
        if "".join(c["source"]).startswith("## Takeaways"):
            c["source"] = ["## Takeaways\n", "\n", "- one\n", "- two"]
    nb["cells"] = [c for c in nb["cells"] if "quiz(" not in "".join(c["source"])]
    bad = tmp_path / src.name
    bad.write_text(json.dumps(nb))
    with pytest.raises(AssertionError, match="bullets"):
        test_every_notebook_ends_with_takeaways_a_quiz_and_a_next_link(bad)
