"""The first page and the documents behind it: a README for students of at most a thousand words, the documents
in docs/ that it links, its picture and the command that draws it, and a glossary of the notebooks' terms.

The numbers in all of them are checked by tests/claims.py (tests/test_claims.py), their links by
tests/test_links.py, and the sentences that summarize a study by tests/test_shipped_study.py."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = {name: ROOT / "docs" / name for name in ("results.md", "cli.md", "developing.md", "glossary.md", "bad_inputs.md")}
README_WORDS = 1000
PICTURE = ROOT / "docs" / "first_page.png"
PICTURE_COMMAND = "python -m course_utils.figures.first_page"
ORIGINAL = "https://www.nvidia.com/en-us/training/instructor-led-workshops/generative-ai-with-diffusion-models/"


def words(text: str) -> int:
    """Words as a reader sees them, code blocks included; the hidden claim markers (HTML comments) left out."""
    return len(re.sub(r"<!--.*?-->", " ", text, flags=re.S).split())


def links(text: str) -> set[str]:
    return set(re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text))


def test_the_readme_is_at_most_a_thousand_words():
    n = words(README.read_text())
    assert n <= README_WORDS, f"README.md has {n} words; at most {README_WORDS} (move the rest into docs/)"


def test_the_word_count_counts_code_but_not_claim_markers():
    assert words("one two <!-- claim: ck('x')['a b c'] --> three\n```bash\n./course lab\n```\n") == 7


def test_every_document_exists_and_the_readme_links_it():
    linked = links(README.read_text())
    for name, path in DOCS.items():
        assert path.is_file(), f"docs/{name} is missing"
        assert f"docs/{name}" in linked, f"README.md does not link docs/{name}"
    assert {"walkthroughs/README.md", "answers/"} <= linked


def test_the_readme_has_what_a_student_needs_first():
    text = README.read_text()
    for heading in ("## What you will learn and build", "## Before you start", "## Two commands", "## The course map",
                    "## For instructors", "## Documents"):
        assert heading in text, heading
    assert "./course lab" in text and "./course test" in text and "environment.yml" in text
    assert "Start with notebook 01" in text
    assert f"[Generative AI with Diffusion Models]({ORIGINAL})" in text
    assert "Q15 and Q16" in text
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        row = next((line for line in text.splitlines() if f"(notebooks/{nb.name})" in line), None)
        assert row is not None, f"the course map does not list {nb.name}"
        minutes = row.rstrip(" |").rsplit("|", 1)[1]
        assert re.search(r"^\s*\d+\.\d <!-- claim: fact\(\"quick_minutes\.%s\"\) -->\s*$" % nb.name[:2], minutes), \
            f"{nb.name}: the course map gives no measured minutes under quick (fact(\"quick_minutes.{nb.name[:2]}\"))"


def test_the_reference_notes_have_no_q15_or_q16():
    """What the README says about the reference notes' questions, on the question list vendored in
    tests/reference_questions.md (and, where the notes lie next to the checkout, that list against the notes)."""
    vendored = (ROOT / "tests" / "reference_questions.md").read_text()
    numbers = [int(q) for q in re.findall(r"^\*\*Q(\d+):", vendored, re.M)]
    assert numbers == [q for q in range(1, 23) if q not in (15, 16)]
    assert vendored.index("**Q14:") < vendored.index("## Practical Questions") < vendored.index("**Q17:")
    notes = ROOT.parent / "shared" / "reference" / "optimizations_teacher_answers_source.md"
    if notes.is_file():
        lines = [line for line in notes.read_text().splitlines() if re.match(r"\*\*Q\d+:|## .*Questions", line)]
        assert lines == [line for line in vendored.splitlines() if not line.startswith(("<!--", "  "))]


def test_the_picture_exists_and_its_command_is_documented():
    assert PICTURE.is_file() and PICTURE.stat().st_size > 5000
    assert "](docs/first_page.png)" in README.read_text()
    for path in (README, DOCS["developing.md"], DOCS["cli.md"]):
        assert PICTURE_COMMAND in path.read_text(), f"{path.name} does not give the picture's command"


@pytest.mark.slow
def test_the_picture_command_draws_it(tmp_path):
    from course_utils.figures import first_page
    out = first_page.make(tmp_path / "first_page.png")
    assert out.is_file() and out.stat().st_size > 5000


def test_the_layer_table_names_every_layer_of_the_layout_test():
    import test_layout
    text = DOCS["developing.md"].read_text()
    table = text[text.index("| layer | modules |"):]
    table = table[:table.index("\n\n")]
    missing = [m for m in test_layout.LAYER if m != "__main__" and f"`{m}" not in table]
    assert not missing, f"docs/developing.md's layer table does not name: {missing}"


GLOSSARY_TERMS = {  # anchor: a word its entry must contain
    "alpha-bar": "ᾱ", "snr": "SNR", "eps-prediction": "ε", "v-prediction": "v =", "eta": "η", "guidance": "w",
    "fid": "Fréchet", "fid-floor": "real", "kid": "KID", "ema": "decay", "checkerboard-score": "Nyquist",
    "equal-steps": "compute", "flop": "TFLOP", "budget": "quick", "ddpm": "DDPM", "ddim": "DDIM",
    "schedule": "cosine", "groupnorm": "num_groups", "batchnorm": "running", "gelu": "Φ", "rearrange-pooling": "bijection",
    "residual": "x1", "sinusoidal": "frequencies", "transposed-conv": "stride", "context-dropout": "label",
    "dark-fraction": "−0.9", "class-entropy": "bits", "noise-threshold": "spreads", "ablation": "leave-one-out",
}


def test_the_glossary_defines_the_notebooks_terms():
    text = DOCS["glossary.md"].read_text()
    for anchor, word in GLOSSARY_TERMS.items():
        m = re.search(rf'<a id="{anchor}"></a>(.*?)(?=\n\n)', text, re.S)
        assert m, f"the glossary has no entry #{anchor}"
        assert word in m[1], f"glossary #{anchor} does not mention {word!r}"
    assert len(re.findall(r'<a id="([^"]+)"></a>', text)) == len(set(re.findall(r'<a id="([^"]+)"></a>', text)))
