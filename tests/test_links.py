"""Every relative link and image in the repository's markdown (and the notebooks' markdown cells) resolves."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".venv", "runs", "node_modules", ".git", ".pytest_cache", "artifacts", "data"}
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF = re.compile(r"^\s*\[[^\]]+\]:\s+(\S+)", re.M)
HTML = re.compile(r"""<(?:img|a)\s[^>]*(?:src|href)=["']([^"']+)["']""")
FENCE = re.compile(r"```.*?```", re.S)


def documents() -> list[tuple[Path, str]]:
    out = []
    for p in sorted(ROOT.rglob("*")):
        if set(p.relative_to(ROOT).parts) & SKIP or not p.is_file():
            continue
        if p.suffix == ".md":
            out.append((p, p.read_text()))
        elif p.suffix == ".ipynb":
            cells = json.loads(p.read_text())["cells"]
            out.append((p, "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")))
    return out


def targets(text: str) -> list[str]:
    text = FENCE.sub("", text)
    text = re.sub(r"`[^`\n]*`", "", text)
    return LINK.findall(text) + REF.findall(text) + HTML.findall(text)


def broken(path: Path, text: str) -> list[str]:
    bad = []
    for t in targets(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I) or t.startswith("#"):
            continue  # a web address, mailto:, or an anchor in the same page
        file = t.split("#", 1)[0].split("?", 1)[0]
        if not file:
            continue
        dest = (ROOT / file.lstrip("/")) if file.startswith("/") else (path.parent / file)
        if not dest.exists():
            bad.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}: {t}")
    return bad


def test_the_link_checker_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[ok](page.md) ![gone](figures/nothing.png) [web](https://example.org) [a](#x)\n"
                    "```\n[in code](nowhere.md)\n```\n")
    assert "nowhere.md" not in targets(page.read_text())  # a link inside a code block is not a link
    assert broken(page, page.read_text()) == ["page.md: figures/nothing.png"]


@pytest.mark.parametrize("path,text", documents(), ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else "")
def test_every_relative_link_resolves(path, text):
    assert not broken(path, text), "broken links:\n" + "\n".join(broken(path, text))


def test_the_readme_and_every_document_in_docs_are_checked():
    checked = {p.relative_to(ROOT).as_posix() for p, _ in documents()}
    wanted = {"README.md"} | {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")}
    assert {"docs/results.md", "docs/cli.md", "docs/developing.md", "docs/glossary.md"} <= wanted
    assert wanted <= checked, f"not link-checked: {sorted(wanted - checked)}"
    readme = next(t for p, t in documents() if p == ROOT / "README.md")
    assert "docs/first_page.png" in targets(readme)  # the picture is an image link, so it is checked too
