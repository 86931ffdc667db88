"""Claims in the course's markdown (answers/, walkthroughs/, README.md, docs/), checked against the code and the
shipped results.

Three forms, all invisible in the rendered page:

1. **A quoted number** (in a document, or in a notebook's markdown cell) is followed by a claim marker holding a Python expression that computes it::

       best-cpu scores Fashion-FID 29.0 <!-- claim: ck("best-cpu")["metrics"]["fid"] --> at n = 1,000.

   The number just before the marker (within a few characters: a unit such as ``min`` or ``%`` may sit between
   them) must equal the expression's value rounded to the digits written: ``29.0`` holds for 29.04, not for 29.1.
   A fact quoted in several documents is named, ``<!-- claim: fact("best_cpu.fid") -->``, and defined once, in
   ``course_utils.facts.FACTS``.
   Written with ``%`` right after it, the number is compared with 100 times the value. The expression sees
   ``ck(name)`` (a shipped checkpoint's manifest), ``study(name)`` (``results/study/NAME/summary.json``),
   ``row(table, preset)`` (the row of a study summary or any list of dicts with that "preset"), ``J(path)`` (any
   JSON file of the repository), ``cu`` (course_utils), ``torch`` and ``math``; for docs/results.md also
   ``pick(rows, key=value, ...)`` (the first row that matches), ``sampler(label)``, ``schedule(name)``,
   ``ablation(preset)``, ``ema_check(step)`` (a row of those shipped studies) and ``times``
   (docs/measured_times.json, the times measured by hand); plus whatever the file's ``run`` blocks defined.

2. **A runnable code block** is a ```python block right after ``<!-- run -->``. Its printed output must equal the
   ```text block that follows it, line by line (trailing spaces ignored).

   Every ```python block of a file, run block or not, runs as pasted into a notebook started in ``notebooks/``: in
   file order, in one namespace that starts empty (nothing injected: each block imports what it uses, the facts
   from ``course_utils.facts``), in a fresh Python process whose working directory is ``notebooks/``, under
   ``$COURSE_BUDGET`` (``ci`` when unset) with matplotlib's ``Agg`` backend. A block that raises is a failure.

3. **An included block**: the lines between ``<!-- include: PATH -->`` and ``<!-- /include -->`` must equal the
   file PATH of the repository (a table the study writes, say).

And one rule that makes the first form complete: in a file's prose (outside code, inline code and math), every
number with a decimal point or a thousands separator, or followed by ``%``, and every bare integer followed by a unit
of time or compute (``27 min``, ``1 h``, ``8 GFLOP``: a measurement), carries a claim marker, unless a
``<!-- given -->`` marker follows it (a value fixed by definition: a paper's constant, a setting). A given marker
exempts that one number, at that one place: the same value elsewhere needs its own.

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
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUM = r"[-−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?"
CLAIM = re.compile(r"(?P<num>" + NUM + r")(?P<gap>[^\d<>\n]{0,16}?)<!--\s*claim:\s*(?P<expr>.*?)\s*-->", re.S)
RUN = re.compile(r"<!--\s*run\s*-->\s*\n```python\n(?P<code>.*?)```\s*\n```text\n(?P<out>.*?)```", re.S)
INCLUDE = re.compile(r"<!--\s*include:\s*(?P<path>\S+)\s*-->\n(?P<body>.*?)<!--\s*/include\s*-->", re.S)
GIVEN = re.compile(r"(?P<num>" + NUM + r")(?P<gap>[^\d<>\n]{0,16}?)<!--\s*given\s*(?::[^>]*?)?-->")
GIVEN_LIST = re.compile(r"<!--\s*given\s*:\s*[-−]?\d[^>]*?-->")  # the old form, values listed for the whole file
PYTHON = re.compile(r"^```python\n(?P<code>.*?)^```", re.S | re.M)
CHILD_TIMEOUT = 900  # seconds for one file's blocks and claims in a fresh process
FENCE = re.compile(r"```.*?```", re.S)
INLINE = re.compile(r"`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|<!--.*?-->|\]\([^)]*\)|https?://\S+", re.S)
# a bare integer that is a measurement: one followed by a unit of time or of compute ("27 min", "1 h", "8 GFLOP")
BARE_MEASURE = re.compile(r"(?<![\w.,\-–−])(\d+)(?=\s?(?:min\b|minutes?\b|s\b|seconds?\b|GFLOP\b|TFLOP\b)|\s(?:h|hours?)\b)")
PROSE_NUM = re.compile(r"(?<![\w.])(" + r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+(?=\s?%)" + r")(?![\w])")


class Row(dict):
    pass


def ladder_step(idea: str) -> dict:
    """One step of the shipped 250-step ablation's ladder (``reports.ladder_steps``): ``diff``, ``spread``, ``clear``."""
    from course_utils import facts, reports
    return facts.pick(reports.ladder_steps(facts.J("results/ablation/ladder/results.json")["summary"]), idea=idea)


def leave_one_out(idea: str) -> dict:
    """One idea removed from ``optimized`` in the shipped 250-step ablation (``reports.leave_one_out``)."""
    from course_utils import facts, reports
    return facts.pick(reports.leave_one_out(facts.J("results/ablation/ladder/results.json")["summary"]), idea=idea)


def study_step(before: str, after: str, name: str = "cpu") -> dict:
    """The step ``before`` -> ``after`` of a compute-aware study (``reports.steps_of_ladder``)."""
    from course_utils import facts, reports
    return facts.pick(reports.steps_of_ladder(facts.study(name)), **{"from": before, "to": after})


def namespace() -> dict:
    """What a claim marker sees: course_utils.facts (fact, ck, study, row, pick, J, sampler, schedule,
    ablation, ladder_step, leave_one_out, study_step, ema_check, and times as a dict), cu, course_utils.reports,
    torch and math."""
    import torch

    import course_utils as cu
    import course_utils.diffusion  # noqa: F401 - so that cu.diffusion, cu.model.cost and cu.train are there
    import course_utils.model.cost  # noqa: F401
    import course_utils.train  # noqa: F401
    from course_utils import facts, reports

    return {"fact": facts.fact, "ck": facts.ck, "study": facts.study, "row": facts.row, "pick": facts.pick, "J": facts.J, "cu": cu,
            "torch": torch, "math": math, "sampler": facts.sampler, "schedule": facts.schedule,
            "ablation": facts.ablation, "ema_check": facts.ema_check, "ladder_step": ladder_step,
            "leave_one_out": leave_one_out, "study_step": study_step, "times": facts.times(),
            "reports": reports}


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


def python_blocks(text: str) -> list[dict]:
    """Every ```python block of a markdown text, in order: its code, where it starts, and for a run block the span
    of its ```text output."""
    runs = {m.start("code"): m for m in RUN.finditer(text)}
    blocks = []
    for m in PYTHON.finditer(text):
        run = runs.get(m.start("code"))
        blocks.append({"code": m["code"], "line": line_of(text, m.start()),
                       "out": run["out"] if run else None, "out_span": run.span("out") if run else None})
    return blocks


def execute_blocks(text: str, name: str) -> tuple[dict, list[str], list[str | None]]:
    """Run the blocks of ``text`` in order in one namespace that starts as a notebook's does (in this process: the
    caller, :func:`run_in_notebooks`, starts a fresh one). Returns (the namespace, the problems, each block's
    printed output or None where it raised)."""
    ns, problems, outputs = {"__name__": "__main__"}, [], []
    for b in python_blocks(text):
        where = f"{name}:{b['line']}"
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(b["code"], where, "exec"), ns)  # noqa: S102 - the repository's own markdown
        except Exception as e:  # noqa: BLE001
            kind = "run block" if b["out"] is not None else "python block"
            problems.append(f"{where}: the {kind} raised {type(e).__name__}: {e} (it runs as pasted into a notebook "
                            "started in notebooks/, with nothing defined beforehand but what the file's earlier "
                            "blocks define)")
            outputs.append(None)
            continue
        outputs.append(out.getvalue())
        if b["out"] is None:
            continue
        got = [line.rstrip() for line in out.getvalue().rstrip("\n").split("\n")]
        want = [line.rstrip() for line in b["out"].rstrip("\n").split("\n")]
        if got != want:
            diff = next(i for i in range(max(len(got), len(want)))
                        if i >= len(got) or i >= len(want) or got[i] != want[i])
            problems.append(f"{where}: the run block prints {got[diff] if diff < len(got) else '(nothing)'!r} "
                            f"where the text says {want[diff] if diff < len(want) else '(nothing)'!r} "
                            f"(output line {diff + 1})")
    return ns, problems, outputs


def check_text(text: str, name: str) -> tuple[list[str], list[str | None]]:
    """Every check of one markdown file, in this process: its python blocks first (the claims may use what they
    define), then its claim markers (which also see course_utils.facts), includes and unmarked numbers. Returns
    (the problems, each python block's printed output)."""
    block_ns, problems, outputs = execute_blocks(text, name)
    ns = {**namespace(), **block_ns} if CLAIM.search(text) else block_ns
    problems += check_claims(text, ns, name)
    problems += check_includes(text, name)
    problems += unclaimed_numbers(text, name)
    return problems, outputs


def run_in_notebooks(path: Path) -> tuple[list[str], list[str | None]]:
    """:func:`check_text` of ``path`` in a fresh Python process started in notebooks/, under $COURSE_BUDGET (ci
    when unset) with matplotlib's Agg backend: the blocks run as pasted into a new notebook."""
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    env = dict(os.environ, MPLBACKEND="Agg", COURSE_BUDGET=os.environ.get("COURSE_BUDGET") or "ci")
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(path.resolve()), name,
                               str(result)], cwd=ROOT / "notebooks", env=env, capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT)
        if proc.returncode != 0 or not result.is_file():
            return [f"{name}: checking it in a fresh process failed (exit code {proc.returncode}):\n"
                    f"{proc.stderr[-3000:]}"], []
        data = json.loads(result.read_text())
    return data["problems"], data["outputs"]


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
    """Numbers in prose with a decimal point, a thousands separator or a % sign, and bare integers followed by a
    unit of time or compute, that carry neither a claim nor a given marker."""
    marked = list(CLAIM.finditer(text)) + list(GIVEN.finditer(text))
    claimed = {m.start("num") + len(m["num"]) for m in marked}
    claimed_spans = [(m.start("num"), m.start("num") + len(m["num"])) for m in marked]
    problems = [f"{name}:{line_of(text, m.start())}: `{m.group(0)}` lists values for the whole file; a given marker "
                "exempts the one number right before it: write <!-- given --> after each" for m in GIVEN_LIST.finditer(text)]
    masked = text
    for pattern in (INCLUDE, FENCE, INLINE):
        masked = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), masked)
    found = {m.span(1): m[1] for pattern in (PROSE_NUM, BARE_MEASURE) for m in pattern.finditer(masked)}
    for (start, end), num in sorted(found.items()):
        if any(s <= start and end <= e for s, e in claimed_spans) or end in claimed:
            continue
        problems.append(f"{name}:{line_of(text, start)}: the number {num} has no claim marker "
                        f"(add <!-- claim: EXPR --> after it, or <!-- given --> if it is a value fixed by "
                        f"definition)")
    return problems


def check_notebook(path: Path, ns: dict | None = None) -> list[str]:
    """A notebook's markdown cells, by the documents' rules: every claim marker in them holds, and every number of
    their prose with a decimal point, a thousands separator or a % sign carries a claim or given marker."""
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    ns, problems = dict(ns if ns is not None else namespace()), []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            where = f"{name} (cell {cell.get('id')}), line"
            problems += check_claims("".join(cell["source"]), ns, where)
            problems += unclaimed_numbers("".join(cell["source"]), where)
    return problems


def check_file(path: Path, ns: dict | None = None) -> list[str]:
    """Every problem of one file. A markdown file with python blocks is checked in a fresh process started in
    notebooks/ (:func:`run_in_notebooks`); ``ns`` (a :func:`namespace`, made once for many files) serves the claim
    markers of notebooks and of markdown files without python blocks."""
    if path.suffix == ".ipynb":
        return check_notebook(path, ns)
    text = path.read_text()
    if PYTHON.search(text):
        return run_in_notebooks(path)[0]
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    ns = dict(ns if ns is not None else namespace())
    return check_claims(text, ns, name) + check_includes(text, name) + unclaimed_numbers(text, name)


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


def resync_runs(path: Path) -> int:
    """Rewrite the printed output of every run block of ``path`` that runs (in a fresh process started in
    notebooks/, as the check runs it); returns how many blocks changed."""
    text = path.read_text()
    blocks = python_blocks(text)
    if not blocks:
        return 0
    outputs = run_in_notebooks(path)[1]
    changed, parts, last = 0, [], 0
    for b, out in zip(blocks, outputs):
        if b["out"] is None or out is None:  # not a run block, or it raised: check_file reports it
            continue
        new = "\n".join(line.rstrip() for line in out.rstrip("\n").split("\n")) + "\n"
        if new != b["out"]:
            changed += 1
            start, end = b["out_span"]
            parts += [text[last:start], new]
            last = end
    if changed:
        path.write_text("".join(parts) + text[last:])
    return changed


def child(path: str, name: str, result: str) -> int:
    """``--child PATH NAME RESULT``: :func:`check_text` of PATH, written to RESULT as JSON."""
    problems, outputs = check_text(Path(path).read_text(), name)
    Path(result).write_text(json.dumps({"problems": problems, "outputs": outputs}))
    return 0


USAGE = """usage: python tests/claims.py [--resync] [FILE ...]

Check the claim markers, run blocks and included blocks of FILE (markdown, or a notebook's markdown cells); with no
FILE, every document the course checks. --resync first rewrites each included block from its source file and each
run block's output from a fresh run, then checks. Exit status 1 when any claim fails."""


def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(USAGE)
        return 0
    resync = "--resync" in argv
    argv = [a for a in argv if a != "--resync"]
    unknown = [a for a in argv if a.startswith("-")]
    missing = [a for a in argv if not a.startswith("-") and not Path(a).is_file()]
    if unknown or missing:
        what = f"unknown option(s) {', '.join(unknown)}" if unknown else f"no such file: {', '.join(missing)}"
        print(f"claims.py: {what}\n\n{USAGE}", file=sys.stderr)
        return 2
    files = [Path(a).resolve() for a in argv] or claim_files() + doc_files()
    ns = namespace()
    if resync:
        for f in files:
            n, k = resync_includes(f), resync_runs(f)
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
    if sys.argv[1:2] == ["--child"]:
        sys.exit(child(*sys.argv[2:5]))
    sys.exit(main(sys.argv[1:]))
