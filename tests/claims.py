"""Claims in the course's markdown (answers/, walkthroughs/, README.md, docs/), checked against the code and the
shipped results.

Three forms, all invisible in the rendered page:

1. **A quoted number** (in a document, or in a notebook's markdown cell) is followed by a claim marker holding a Python expression that computes it::

       best-cpu scores Fashion-FID 29.0 <!-- claim: ck("best-cpu")["metrics"]["fid"] --> at n = 1,000.

   The number just before the marker (within a few characters: a unit such as ``min`` or ``%`` may sit between
   them) must equal the expression's value rounded to the digits written: ``29.0`` holds for 29.04, not for 29.1.
   Written with ``%`` right after it, the number is compared with 100 times the value. The expression sees
   ``ck(name)`` (a shipped checkpoint's manifest), ``study(name)`` (``results/study/NAME/summary.json``),
   ``row(table, preset)`` (the row of a study summary or any list of dicts with that "preset"), ``J(path)`` (any
   JSON file of the repository), ``cu`` (course_utils), ``torch`` and ``math``; for docs/results.md also
   ``pick(rows, key=value, ...)`` (the first row that matches), ``sampler(label)``, ``schedule(name)``,
   ``ablation(preset)``, ``ema_check(step)`` (a row of those shipped studies) and ``times``
   (docs/measured_times.json, the times measured by hand); plus whatever the file's ``run`` blocks defined.

2. **A runnable code block** is a ```python block right after ``<!-- run -->``. Its printed output must equal the
   ```text block that follows it, line by line (trailing spaces ignored). A file's run blocks share one namespace,
   in order.

3. **An included block**: the lines between ``<!-- include: PATH -->`` and ``<!-- /include -->`` must equal the
   file PATH of the repository (a table the study writes, say).

And one rule that makes the first form complete: in a file's prose (outside code, inline code and math), every
number with a decimal point or a thousands separator, or followed by ``%``, carries a claim marker, unless it is
listed on a ``<!-- given: ... -->`` line of the file (values fixed by definition: a paper's constants, a setting).

``python tests/claims.py FILE.md ...`` checks files and prints every failure.
``python tests/claims.py --resync [FILE.md ...]`` (every file when none is named) first re-renders what a study's
re-run changes: each included block is replaced by its file's current content, and each run block's ```text output
by what the block prints now (a block that raises is left alone and reported); then it checks every claim, so the
numbers quoted in prose that drifted are listed. Read ``git diff`` before committing.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUM = r"[-−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?"
CLAIM = re.compile(r"(?P<num>" + NUM + r")(?P<gap>[^\d<>\n]{0,16}?)<!--\s*claim:\s*(?P<expr>.*?)\s*-->", re.S)
RUN = re.compile(r"<!--\s*run\s*-->\s*\n```python\n(?P<code>.*?)```\s*\n```text\n(?P<out>.*?)```", re.S)
INCLUDE = re.compile(r"<!--\s*include:\s*(?P<path>\S+)\s*-->\n(?P<body>.*?)<!--\s*/include\s*-->", re.S)
GIVEN = re.compile(r"<!--\s*given:(?P<values>.*?)-->", re.S)
FENCE = re.compile(r"```.*?```", re.S)
INLINE = re.compile(r"`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|<!--.*?-->|\]\([^)]*\)|https?://\S+", re.S)
PROSE_NUM = re.compile(r"(?<![\w.])(" + r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+(?=\s?%)" + r")(?![\w])")


class Row(dict):
    pass


def namespace() -> dict:
    """What a claim marker or a run block sees: course_utils.facts (ck, study, row, pick, J, sampler, schedule,
    ablation, ema_check, and times as a dict), cu, torch and math."""
    import torch

    import course_utils as cu
    import course_utils.diffusion  # noqa: F401 - so that cu.diffusion and cu.train are there for the claims
    import course_utils.train  # noqa: F401
    from course_utils import facts

    return {"ck": facts.ck, "study": facts.study, "row": facts.row, "pick": facts.pick, "J": facts.J, "cu": cu,
            "torch": torch, "math": math, "sampler": facts.sampler, "schedule": facts.schedule,
            "ablation": facts.ablation, "ema_check": facts.ema_check, "times": facts.times()}


def written_value(text: str) -> tuple[float, int]:
    """(value, digits after the point) of a number as written: '1,234.5' -> (1234.5, 1)."""
    t = text.replace(",", "").replace("−", "-")
    digits = len(t.split(".")[1].split("e")[0]) if "." in t else 0
    return float(t), digits


def matches(written: str, value, percent: bool = False) -> bool:
    w, d = written_value(written)
    v = float(value) * (100 if percent else 1)
    return abs(v - w) <= 0.5 * 10 ** -d * (1 + 1e-9) + 1e-12


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def check_claims(text: str, ns: dict, name: str) -> list[str]:
    problems = []
    for m in CLAIM.finditer(text):
        where = f"{name}:{line_of(text, m.start())}"
        try:
            value = eval(m["expr"], ns)  # noqa: S307 - the repository's own markdown
        except Exception as e:  # noqa: BLE001 - reported as a failed claim
            problems.append(f"{where}: claim `{m['expr']}` raised {type(e).__name__}: {e}")
            continue
        if isinstance(value, str):
            ok = value == m["num"].replace("−", "-")
        else:
            ok = matches(m["num"], value, percent=m["gap"].lstrip().startswith("%"))
        if not ok:
            problems.append(f"{where}: the text says {m['num']}{m['gap'].rstrip()}, but `{m['expr']}` is {value!r}")
    return problems


def check_runs(text: str, ns: dict, name: str) -> list[str]:
    problems = []
    for m in RUN.finditer(text):
        where = f"{name}:{line_of(text, m.start())}"
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(m["code"], where, "exec"), ns)  # noqa: S102 - the repository's own markdown
        except Exception as e:  # noqa: BLE001
            problems.append(f"{where}: the run block raised {type(e).__name__}: {e}")
            continue
        got = [line.rstrip() for line in out.getvalue().rstrip("\n").split("\n")]
        want = [line.rstrip() for line in m["out"].rstrip("\n").split("\n")]
        if got != want:
            diff = next(i for i in range(max(len(got), len(want)))
                        if i >= len(got) or i >= len(want) or got[i] != want[i])
            problems.append(f"{where}: the run block prints {got[diff] if diff < len(got) else '(nothing)'!r} "
                            f"where the text says {want[diff] if diff < len(want) else '(nothing)'!r} "
                            f"(output line {diff + 1})")
    return problems


def check_includes(text: str, name: str) -> list[str]:
    problems = []
    for m in INCLUDE.finditer(text):
        p = ROOT / m["path"]
        if not p.is_file():
            problems.append(f"{name}:{line_of(text, m.start())}: include {m['path']} does not exist")
        elif m["body"].strip() != p.read_text().strip():
            problems.append(f"{name}:{line_of(text, m.start())}: the block differs from {m['path']} "
                            f"(copy the file's content between the markers)")
    return problems


def unclaimed_numbers(text: str, name: str) -> list[str]:
    """Numbers in prose with a decimal point, a thousands separator or a % sign that carry no claim marker and
    are not listed as given."""
    given = {v.strip().rstrip(",") for g in GIVEN.finditer(text) for v in g["values"].replace(",", " ").split()}
    given |= {v.strip() for g in GIVEN.finditer(text) for v in g["values"].split(",") if v.strip()}
    claimed = {m.start("num") + len(m["num"]) for m in CLAIM.finditer(text)}
    claimed_spans = [(m.start("num"), m.start("num") + len(m["num"])) for m in CLAIM.finditer(text)]
    masked = text
    for pattern in (INCLUDE, FENCE, INLINE):
        masked = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), masked)
    problems = []
    for m in PROSE_NUM.finditer(masked):
        start, end = m.span(1)
        if any(s <= start and end <= e for s, e in claimed_spans) or end in claimed:
            continue
        if m[1] in given:
            continue
        problems.append(f"{name}:{line_of(text, start)}: the number {m[1]} has no claim marker "
                        f"(add <!-- claim: EXPR --> after it, or list it on a <!-- given: --> line if it is a "
                        f"value fixed by definition)")
    return problems


def check_notebook(path: Path, ns: dict | None = None) -> list[str]:
    """A notebook's markdown cells: every claim marker in them holds (notebooks quote fewer numbers than the
    documents; the rule that every decimal carries a marker is not applied to them yet)."""
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    ns, problems = dict(ns if ns is not None else namespace()), []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            problems += check_claims("".join(cell["source"]), ns, f"{name} (cell {cell.get('id')}), line")
    return problems


def check_file(path: Path, ns: dict | None = None) -> list[str]:
    if path.suffix == ".ipynb":
        return check_notebook(path, ns)
    text = path.read_text()
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    ns = dict(ns if ns is not None else namespace())
    problems = check_runs(text, ns, name)  # first: the claims may use what the run blocks define
    problems += check_claims(text, ns, name)
    problems += check_includes(text, name)
    problems += unclaimed_numbers(text, name)
    return problems


def claim_files() -> list[Path]:
    return sorted((ROOT / "answers").glob("[0-9][0-9]_*.md")) + sorted((ROOT / "walkthroughs").glob("[0-9][0-9]_*.md"))


def notebook_files() -> list[Path]:
    """The notebooks: the claim markers in their markdown cells are checked."""
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def doc_files() -> list[Path]:
    """The README and every document in docs/: checked by the same rules."""
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def resync_includes(path: Path) -> int:
    """Replace the body of every include block of ``path`` by its file's content; returns how many changed."""
    text, changed = path.read_text(), 0

    def body(m):
        nonlocal changed
        p = ROOT / m["path"]
        if not p.is_file() or m["body"].strip() == p.read_text().strip():
            return m.group(0)
        changed += 1
        return m.group(0)[:m.start("body") - m.start()] + p.read_text().strip() + "\n" + m.group(0)[m.end("body") - m.start():]

    new = INCLUDE.sub(body, text)
    if changed:
        path.write_text(new)
    return changed


def resync_runs(path: Path, ns: dict) -> int:
    """Rewrite the printed output of every run block of ``path`` that runs; returns how many blocks changed."""
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    text, changed, parts, last = path.read_text(), 0, [], 0
    for m in RUN.finditer(text):
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(m["code"], f"{name}:{line_of(text, m.start())}", "exec"), ns)  # noqa: S102
        except Exception:  # noqa: BLE001 - check_runs reports it
            continue
        new = "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").split("\n")) + "\n"
        if new != m["out"]:
            changed += 1
            parts += [text[last:m.start("out")], new]
            last = m.end("out")
    if changed:
        path.write_text("".join(parts) + text[last:])
    return changed


def main(argv: list[str]) -> int:
    resync = "--resync" in argv
    argv = [a for a in argv if a != "--resync"]
    files = [Path(a).resolve() for a in argv] or claim_files() + doc_files()
    ns = namespace()
    if resync:
        for f in files:
            n, k = resync_includes(f), resync_runs(f, namespace())
            if n or k:
                print(f"{f.relative_to(ROOT)}: {n} included block(s) and {k} run block(s) rewritten")
    bad = 0
    for f in files:
        problems = check_file(f, ns)
        bad += len(problems)
        print(f"{f.relative_to(ROOT)}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        for p in problems:
            print("  " + p)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
