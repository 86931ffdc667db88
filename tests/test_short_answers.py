"""The teacher's answers open every question and exercise with a short answer a teacher can read aloud.

In answers/NN_*.md a short answer is a paragraph that starts with ``**Short answer.**``; the detailed explanation
follows it. Every short answer is at most 60 words (``len(text.split())`` of the paragraph without the marker,
with the invisible ``<!-- ... -->`` markers of tests/claims.py removed first, so a claim marker counts as zero
words), and every ``## `` or ``### `` section that answers a question or an exercise opens with exactly one.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = sorted((ROOT / "answers").glob("[0-9][0-9]_*.md"))
MARKER = "**Short answer.**"
LIMIT = 60
COMMENT = re.compile(r"<!--.*?-->", re.S)
HEADING = re.compile(r"^(#{2,3}) +(?P<title>.+?)\s*$")
# The reference notes' questions (they have no Q15 and no Q16): each must have a section of its own.
QUESTIONS = {q for q in range(1, 23) if q not in (15, 16)}
# Sections that answer no question or exercise themselves, by title:
NOT_ANSWERS = {
    # a container: the ### sections under it are the reference questions
    "Questions from the reference notes",
    # the solutions of the notebooks' checked code exercises, one bold-named code block per checker (the checkers
    # and tests/test_exercises.py judge them, not a reader)
    "Checked code exercises",
    # answers/11: a container, the ### sections under it are section 4's checks
    "Section 4: is it a real win?",
    # answers/11: says where the "try it yourself" entry and the quiz's answers are; no question is asked there
    "Try it yourself, and the quiz",
}


def blocks(text: str) -> list[tuple[str, str]]:
    """The markdown as (kind, text) blocks in order: "heading", "code" (a fenced block) or "para" (lines up to a
    blank line, a fence or a heading)."""
    out, para, fence = [], [], None
    for line in text.split("\n"):
        if fence is not None:
            fence.append(line)
            if line.startswith("```"):
                out.append(("code", "\n".join(fence)))
                fence = None
            continue
        if line.startswith("```") or HEADING.match(line) or not line.strip():
            if para:
                out.append(("para", "\n".join(para)))
                para = []
            if line.startswith("```"):
                fence = [line]
            elif HEADING.match(line):
                out.append(("heading", line))
            continue
        para.append(line)
    if para:
        out.append(("para", "\n".join(para)))
    return out


def is_short_answer(kind: str, text: str) -> bool:
    return kind == "para" and text.lstrip().startswith(MARKER)


def words(paragraph: str) -> int:
    """Words of a short answer: the marker and the invisible markers do not count."""
    return len(COMMENT.sub(" ", paragraph.replace(MARKER, "", 1)).split())


def sections(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """(title, its blocks up to the next ## or ### heading) for every ## and ### heading."""
    out = []
    for kind, body in blocks(text):
        if kind == "heading":
            level = len(body) - len(body.lstrip("#"))
            if level in (2, 3):
                out.append((HEADING.match(body)["title"], []))
                continue
        if out:
            out[-1][1].append((kind, body))
    return out


def problems(text: str, name: str) -> list[str]:
    found = []
    for kind, body in blocks(text):
        if is_short_answer(kind, body) and words(body) > LIMIT:
            found.append(f"{name}: a short answer has {words(body)} words (at most {LIMIT}): "
                         f"{body.strip()[len(MARKER):][:70].strip()}…")
    for title, body in sections(text):
        if title in NOT_ANSWERS:
            continue
        shorts = [b for k, b in body if is_short_answer(k, b)]
        elsewhere = sum(b.count(MARKER) for k, b in body if k == "para") - len(shorts)
        content = [(k, b) for k, b in body if k == "code" or COMMENT.sub("", b).strip()]
        if len(shorts) != 1 or elsewhere:
            found.append(f"{name}: section {title!r} has {len(shorts) + elsewhere} short answers (wants exactly one)")
        elif not content or not is_short_answer(*content[0]):
            found.append(f"{name}: section {title!r} does not open with its short answer")
        elif COMMENT.sub("", shorts[0]).rstrip().endswith(":"):
            found.append(f"{name}: section {title!r}: the short answer ends with a colon, so it introduces what "
                         f"follows instead of answering")
    return found


@pytest.mark.parametrize("path", ANSWERS, ids=lambda p: p.name)
def test_every_section_opens_with_one_short_answer_of_at_most_60_words(path):
    assert not (found := problems(path.read_text(), path.name)), "\n".join(found)


def test_every_reference_question_and_every_answers_file_is_checked():
    titles = [title for path in ANSWERS for title, _ in sections(path.read_text())]
    asked = {int(m[1]) for t in titles if (m := re.match(r"Q(\d+)\b", t))}
    assert asked == QUESTIONS, f"reference questions without a section of their own: {sorted(QUESTIONS - asked)}"
    for path in ANSWERS:
        checked = [t for t, _ in sections(path.read_text()) if t not in NOT_ANSWERS]
        assert checked, f"{path.name}: no question or exercise section found"
    stale = NOT_ANSWERS - set(titles)
    assert not stale, f"excluded section titles that no answers file has any more: {sorted(stale)}"


def test_the_check_catches_each_kind_of_problem():
    long = "word " * (LIMIT + 1)
    marked = " ".join(f"1.{i} <!-- claim: 1.{i} -->" for i in range(LIMIT))
    text = (f"# File\n\n## 1. Too long\n\n{MARKER} {long}\n\n## 2. Claims do not count\n\n{MARKER} {marked}\n\n"
            f"## 3. None\n\nJust text.\n\n## 4. Two\n\n{MARKER} One.\n\n{MARKER} Two.\n\n"
            f"## 6. Preview\n\n{MARKER} The block below prints it:\n\n"
            f"## 5. Late\n\n<!-- run -->\n```python\nprint(1)\n# not a heading\n```\n\n{MARKER} After the code.\n\n"
            f"## Checked code exercises\n\nCode only.\n")
    found = "\n".join(problems(text, "x.md"))
    assert f"has {LIMIT + 1} words" in found
    assert "'2. Claims do not count'" not in found
    assert "'3. None' has 0 short answers" in found and "'4. Two' has 2 short answers" in found
    assert "'5. Late' does not open with its short answer" in found and "not a heading" not in found
    assert "'6. Preview': the short answer ends with a colon" in found
    assert "Checked code exercises" not in found
    assert words(f"{MARKER} a b <!-- claim: x --> c") == 3
