"""Every number and code output quoted in answers/, walkthroughs/, README.md and docs/ is reproduced here
(tests/claims.py says how they are marked); the reference notes' questions are all answered, in tiers; every walkthrough figure is drawn by
`python -m course_utils figures`."""
from __future__ import annotations

import re

import pytest

import claims

ROOT = claims.ROOT
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TIERS = ("Beginner", "Intermediate", "Advanced", "Implementation", "Practical", "Connection")
# the reference notes' questions (Q15 and Q16 are missing from them)
QUESTIONS = [q for q in range(1, 23) if q not in (15, 16)]
QUESTION = re.compile(r"^###\s+Q(?P<q>\d+)\b[^\n]*$", re.M)


@pytest.fixture(scope="module")
def ns():
    return claims.namespace()


def test_every_notebook_has_a_walkthrough_and_an_answers_file():
    for stem in NOTEBOOKS:
        assert (ROOT / "walkthroughs" / f"{stem}.md").is_file(), f"walkthroughs/{stem}.md is missing"
        assert (ROOT / "answers" / f"{stem}.md").is_file(), f"answers/{stem}.md is missing"


@pytest.mark.parametrize("path", claims.claim_files() + claims.doc_files() + claims.notebook_files(),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_quoted_claims_hold(path, ns):
    problems = claims.check_file(path, ns)
    assert not problems, "\n".join(problems)


def probe_copy(path, tmp_path, ns):
    """A copy of ``path`` with one digit of a quoted number changed: the first claim whose expression needs only
    ``course_utils.facts`` (not names the file's python blocks define). A markdown copy leaves out the python blocks
    (they run in test_the_quoted_claims_hold), so the probe checks the prose alone, quickly. Returns (copy, the
    changed number as written)."""
    text = path.read_text()
    for m in claims.CLAIM.finditer(text):
        if not re.search(r"\d", m["num"]) or "\\n" in m.group(0):
            continue
        try:
            eval(m["expr"].replace('\\"', '"'), dict(ns))
        except Exception:  # noqa: BLE001 - it needs what the file's blocks define
            continue
        break
    else:
        pytest.fail(f"{path.name}: no claim marker that course_utils.facts alone computes")
    last = max(i for i, c in enumerate(m["num"]) if c.isdigit())
    changed = m["num"][:last] + str((int(m["num"][last]) + 1) % 10) + m["num"][last + 1:]
    text = text[:m.start("num")] + changed + text[m.end("num"):]
    if path.suffix == ".md":
        text = claims.PYTHON.sub("", text)
    copy = tmp_path / path.name
    copy.write_text(text)
    return copy, changed


def test_a_changed_number_fails_its_claim(tmp_path, ns):
    """The probe: one quoted number edited in a copy of an answers file makes the check fail."""
    copy, changed = probe_copy(claims.claim_files()[0], tmp_path, ns)
    problems = claims.check_file(copy, ns)
    assert any(f"says {changed}" in p for p in problems), problems


def test_the_checker_catches_each_kind_of_wrong_claim(tmp_path, ns):
    """Including a python block that runs only where a harness injects names (issue 24, item 4: every block runs
    as pasted into a notebook started in notebooks/)."""
    bad = tmp_path / "bad.md"
    bad.write_text("Baseline has 9,999 <!-- claim: cu.count_params(cu.build('baseline')) --> parameters.\n\n"
                   "<!-- run -->\n```python\nprint(1 + 1)\n```\n```text\n3\n```\n\n"
                   "<!-- include: README.md -->\nnot the README\n<!-- /include -->\n\n"
                   "An unmarked measurement: 0.47 of the image survives, 12.5% of it, in 27 min and 8 GFLOP;\n"
                   "a bare setting is fine: 3 seeds, 16 images.\n"
                   "A given value: 0.02 <!-- given: the paper's -->, and 0.02 again, unmarked.\n"
                   "<!-- given: 0.5 -->\n\n"
                   "A block that uses a name only a test harness would inject:\n\n"
                   "```python\nprint(ck('best-cpu')['metrics']['fid'])\n```\n")
    problems = "\n".join(claims.check_file(bad, ns))
    assert "says 9,999" in problems and "prints '2' where the text says '3'" in problems
    assert "the python block raised NameError: name 'ck' is not defined" in problems
    assert "differs from README.md" in problems
    assert "0.47 has no claim" in problems and "12.5 has no claim" in problems
    assert "27 has no claim" in problems and "8 has no claim" in problems  # bare integers that are measurements
    assert "number 3 " not in problems and "number 16 " not in problems
    assert problems.count("0.02 has no claim") == 1, "a given marker exempts one place, not the value in the file"
    assert "lists values for the whole file" in problems
    good = tmp_path / "good.md"
    good.write_text("1.5% <!-- claim: 0.015 --> and 20.6 min <!-- claim: 20.63 --> and `0.47` in code.\n")
    assert claims.check_file(good, ns) == []


def reference_questions() -> set[int]:
    return {int(q) for q in re.findall(r"^\*\*Q(\d+):", (ROOT / "tests" / "reference_questions.md").read_text(), re.M)}


def test_the_question_list_is_the_reference_notes():
    """Against the question list vendored from the notes (tests/reference_questions.md; test_docs.py checks that
    excerpt against the notes themselves when they lie next to the checkout)."""
    assert reference_questions() == set(QUESTIONS)


def answered() -> dict[int, tuple[str, str]]:
    """{question: (answers file, its section)} over answers/."""
    out = {}
    for path in sorted((ROOT / "answers").glob("[0-9][0-9]_*.md")):
        text = path.read_text()
        heads = list(QUESTION.finditer(text))
        for i, h in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            q = int(h["q"])
            assert q not in out, f"Q{q} is answered twice ({out.get(q, ('?',))[0]} and {path.name})"
            out[q] = (path.name, text[h.start():end])
    return out


def test_every_reference_question_is_answered_in_tiers_with_a_short_and_a_detailed_answer():
    found = answered()
    missing = [q for q in QUESTIONS if q not in found]
    assert not missing, f"reference questions not answered in answers/: {missing}"
    for q, (name, section) in found.items():
        head = section.split("\n", 1)[0]
        assert any(t in head for t in TIERS), f"{name}: Q{q}'s heading names no tier ({', '.join(TIERS)}): {head}"
        assert "**Short answer.**" in section, f"{name}: Q{q} has no **Short answer.**"
        assert "**Detailed explanation.**" in section, f"{name}: Q{q} has no **Detailed explanation.**"


def figure_refs() -> dict[str, list[str]]:
    refs = {}
    for path in sorted((ROOT / "walkthroughs").glob("*.md")):
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", path.read_text()):
            if target.startswith("figures/"):
                refs.setdefault(target.split("/", 1)[1], []).append(path.name)
    return refs


def test_every_walkthrough_figure_is_drawn_by_the_figures_command():
    from course_utils import figures
    registry = figures.registry()
    refs = figure_refs()
    assert not set(refs) - set(registry), f"figures used but drawn by no code: {sorted(set(refs) - set(registry))}"
    assert not set(registry) - set(refs), f"figures drawn but used nowhere: {sorted(set(registry) - set(refs))}"
    for name in registry:
        assert (figures.figures_dir() / name).is_file(), f"run: python -m course_utils figures --only {name}"


@pytest.mark.slow
def test_the_figures_command_draws_every_figure(tmp_path):
    from course_utils import figures
    written = figures.make(out=tmp_path, progress=False)
    assert sorted(p.name for p in written) == sorted(figures.registry())
    assert all(p.stat().st_size > 1000 for p in written)


def test_the_blocks_run_in_a_fresh_process_in_notebooks(tmp_path):
    """Issue 24, item 4: a file's python blocks run in order, in one namespace, in a new process whose working
    directory is notebooks/, under COURSE_BUDGET=ci when it is unset."""
    doc = tmp_path / "doc.md"
    doc.write_text("```python\nimport os\nfrom pathlib import Path\nx = 41\n```\n\n<!-- run -->\n```python\n"
                   "print(Path.cwd().name, x + 1, os.getpid() != PARENT)\n```\n```text\nnotebooks 42 True\n```\n"
                   .replace("PARENT", str(__import__("os").getpid())))
    assert claims.check_file(doc) == []


def test_resync_rerenders_a_drifted_include_and_run_block(tmp_path):
    """Issue 24, item 6: after a study's re-run, one command re-renders the tables between include markers and the
    outputs of run blocks; the claims in prose are then checked as usual."""
    table = (ROOT / "results/study/cpu/verdicts.md").read_text().strip()
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- include: results/study/cpu/verdicts.md -->\n| an | old | table |\n<!-- /include -->\n\n"
                   "<!-- run -->\n```python\nprint(2 + 2)\n```\n```text\n5\n```\n")
    assert len(claims.check_file(doc)) == 2
    assert claims.resync_includes(doc) == 1 and claims.resync_runs(doc) == 1
    assert table in doc.read_text() and "```text\n4\n```" in doc.read_text()
    assert claims.check_file(doc) == []


@pytest.mark.parametrize("path", [ROOT / "README.md", ROOT / "docs" / "results.md", ROOT / "walkthroughs" / "08_putting_it_together.md",
                                  ROOT / "answers" / "08_putting_it_together.md", ROOT / "notebooks" / "08_putting_it_together.ipynb"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_one_checker_catches_an_edited_number_in_every_kind_of_file(path, tmp_path, ns):
    """Issue 24, item 5: README, docs, walkthroughs, answers and notebook markdown go through the same check; one
    quoted number edited in a copy of each makes it fail (the originals pass: test_the_quoted_claims_hold)."""
    copy, changed = probe_copy(path, tmp_path, ns)
    assert any(f"says {changed}" in p for p in claims.check_file(copy, ns))
