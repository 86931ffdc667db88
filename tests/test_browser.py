"""The course's widgets in a real browser: JupyterLab 4 in headless Chromium, driven by Playwright.

Which notebooks: found in the notebooks' own code, not kept in a list. ``browser_util.widget_calls`` reads every
code cell and finds the calls of the functions that draw a course widget (``course_utils.widgets.ENTRY_POINTS``:
every ``explorer``, ``*_explorer`` and ``quiz`` in that package, following the notebook's imports and aliases).

What runs, and why (``browser_util.browser_plan``): one JupyterLab, one Chromium and one shared notebook. For each
widget call found, the shared notebook gets one cell: the notebook's own code cut down to the statements the call
needs (a backward slice, statement by statement: the imports, the values the widget is given, the call). For
``quiz("03")`` that is the import and the call; for 09's ``ddim_widget.explorer(final, n=16)`` it is
``final, _ = load_shipped("optimized-final")`` and the call; for 02's ``samples_explorer(samples)`` it is the
budget, the two rungs trained and sampled by ``nb.compare`` and the real images. Run > Run All Cells, as a user
would, then every cell must have run with no error shown, and every widget is used.
Why not every notebook in full: with a quiz at the end of each, every notebook draws a widget, and the limit for
the whole test is 4 minutes on 2 cores. Measured on 2 cores that a training run and other tests kept busy (load
average about 10): notebook 02 alone took 176 s in the browser, 04 and 09 did not finish Run All Cells within
420 s, and a notebook under the ``ci`` budget keeps both cores busy, so parallel tabs would not help. With the
shared notebook the whole test took 2 min 44 s (nothing trained before) and 3 min 22 s in two runs on that machine
(``time pytest -q tests/test_browser.py``: 76 and 88 s of CPU in all, 52 and 63 s of it in the kernel). Every
notebook still runs cell by cell under nbval in ``./course test``; here each widget is drawn and used in a real
browser.
$COURSE_BROWSER_NOTEBOOKS still runs whole notebooks (below).

The checks: an explorer's ``.course-readout`` text must change after ArrowLeft on its first slider (ArrowRight
when the slider is at its lowest value). In a quiz (``.course-quiz``), every question's first wrong choice is
clicked and must show "Not quite" with that choice's reason, then the right choice must show the confirmation (the
texts come from ``course_utils.lessons.quizzes``). Screenshots go to tests/artifacts/browser/.

Run:  COURSE_BUDGET=ci .venv/bin/python -m pytest tests/test_browser.py -v
Needs Chromium (/usr/bin/chromium, or set $CHROMIUM) and the `playwright` Python package; it never downloads a
browser. $COURSE_BROWSER_NOTEBOOKS (paths separated by ':') replaces the plan: each notebook named there is run in
full and its widgets, if it draws any, are checked; one without a widget passes when every cell ran without an
error. $COURSE_BROWSER_RUN_TIMEOUT (seconds, default 420) bounds "Run All Cells" for one notebook, and
$COURSE_BROWSER_READOUT_TIMEOUT (seconds, default 60) the wait for a widget's answer.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_util import (CHROMIUM_ARGS, BrowserCase, LabServer, browser_plan, find_chromium, shared_notebook,
                          widget_calls)

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts" / "browser"
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RUN_TIMEOUT_S = float(os.environ.get("COURSE_BROWSER_RUN_TIMEOUT", "420"))
READOUT_TIMEOUT_MS = float(os.environ.get("COURSE_BROWSER_READOUT_TIMEOUT", "60")) * 1000
STEP_TIMEOUT_MS = 60_000  # default for every other Playwright wait


def _cases() -> list[BrowserCase]:
    env = os.environ.get("COURSE_BROWSER_NOTEBOOKS")
    if not env:
        return browser_plan(NOTEBOOKS)
    cases = []
    for p in (Path(p).expanduser().resolve() for p in env.split(os.pathsep) if p.strip()):
        calls = widget_calls(p) if p.is_file() else []
        explorers = sum(c.kind == "explorer" for c in calls)
        cases.append(BrowserCase(p.stem, p, explorers, len(calls) - explorers, sources=[p.name]))
    return cases


CASES = _cases()


def _loud(msg: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n!! {msg}\n{bar}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# fixtures: one JupyterLab server and one Chromium for the whole module, always shut down
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab():
    """The server; each test copies its notebook into the served (temporary) folder."""
    with LabServer() as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs `pip install playwright`")
    exe = find_chromium()
    if exe is None:
        pytest.fail("Chromium not found: install it (Debian: apt-get install chromium) or set $CHROMIUM")
    pw = sync_api.sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True, timeout=60_000)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


# --------------------------------------------------------------------------------------------
# in-page checks (JavaScript run by the browser)
# --------------------------------------------------------------------------------------------
# Code cells that would run (non-empty source), how many have finished ("[n]:"), how many are
# queued or running ("[*]:"), and the kernel's state as the notebook's session sees it.
JS_PROGRESS = r"""
() => {
  const app = window.jupyterapp;
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!app || !panel) return null;
  const cells = [...panel.querySelectorAll('.jp-CodeCell')];
  let todo = 0, done = 0, busy = 0;
  for (const c of cells) {
    const src = (c.querySelector('.cm-content') || {}).textContent || '';
    const prompt = ((c.querySelector('.jp-InputPrompt') || {}).textContent || '').trim();
    if (src.trim()) todo += 1;
    if (/\[\d+\]/.test(prompt)) done += 1;
    if (prompt.includes('*')) busy += 1;
  }
  const w = app.shell.currentWidget;
  const ctx = w && w.sessionContext;
  const kernel = ctx && ctx.session && ctx.session.kernel;
  const status = kernel ? kernel.status : 'no kernel';
  const connection = kernel ? kernel.connectionStatus : 'none';
  const ready = !!(ctx && ctx.isReady && kernel && connection === 'connected' && status === 'idle');
  return {todo, done, busy, status, connection, ready};
}
"""

# Every output that looks like an error (JupyterLab draws error outputs as stderr): a traceback, or a
# line starting with "SomethingError" (a SyntaxError has no "Traceback"); and widgets that failed.
JS_ERRORS = r"""
() => {
  const found = [];
  const stderr = document.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
  for (const el of stderr) {
    const t = el.textContent || '';
    if (/Traceback|^\w*(Error|Exception)\b/m.test(t)) found.push(t.slice(0, 3000));
  }
  const body = document.body.innerText || '';
  const i = body.indexOf('Error displaying widget');
  if (i >= 0) found.push(body.slice(i, i + 500));
  return found;
}
"""

# The start of the first cell that is still queued or running.
JS_RUNNING_CELL = r"""
() => {
  for (const c of document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')) {
    const prompt = ((c.querySelector('.jp-InputPrompt') || {}).textContent || '');
    if (prompt.includes('*')) {
      const lines = [...c.querySelectorAll('.cm-line')].map(l => l.textContent);
      return lines.slice(0, 3).join(' | ');
    }
  }
  return null;
}
"""

JS_RUN_FINISHED = (
    "() => { const p = (" + JS_PROGRESS + ")(); const e = (" + JS_ERRORS + ")();"
    " if (!p) return false;"
    " return p.busy === 0 && p.ready && (p.done >= p.todo || e.length > 0); }"
)


def _wait_idle(page, timeout_ms: float) -> None:
    page.wait_for_function(
        "() => { const p = (" + JS_PROGRESS + ")(); return p && p.busy === 0 && p.ready; }",
        timeout=timeout_ms, polling=250)


def _shot(target, name: str) -> Path:
    path = ARTIFACTS / name
    target.screenshot(path=str(path))
    return path


def _check_quiz(page, quiz, label: str, expect) -> str:
    """Click each question's first wrong choice, then its right one; check the answer line after each click."""
    from course_utils.lessons import quizzes as Q

    classes = quiz.get_attribute("class") or ""
    m = re.search(r"course-quiz-nb-(\d+)", classes)
    assert m, f"{label}: the quiz has no course-quiz-nb-NN class ({classes!r})"
    key = m.group(1)
    questions = quiz.locator(".course-quiz-question")
    expect(questions, f"{label}: not one block per question").to_have_count(len(Q.questions(key)))
    quiz.scroll_into_view_if_needed()
    for i, q in enumerate(Q.questions(key)):
        box = questions.nth(i)
        feedback = box.locator(".course-quiz-feedback")
        expect(feedback, f"{label} question {i + 1}: answered before any click").to_have_text("")
        wrong = box.locator(".course-quiz-wrong").first
        j = int(re.search(r"course-quiz-choice-(\d+)", wrong.get_attribute("class") or "").group(1))
        assert j != q.answer, f"{label} question {i + 1}: choice {j} is marked wrong but is the answer"
        wrong.click()
        expect(feedback, f"{label} question {i + 1}: a wrong choice did not say 'Not quite'"
               ).to_contain_text("Not quite", timeout=READOUT_TIMEOUT_MS)
        expect(feedback, f"{label} question {i + 1}: the reason for choice {j} is missing"
               ).to_contain_text(q.reasons[j])
        box.locator(".course-quiz-right").click()
        expect(feedback, f"{label} question {i + 1}: the right choice was not confirmed"
               ).to_contain_text(q.confirm, timeout=READOUT_TIMEOUT_MS)
        expect(feedback).not_to_contain_text("Not quite")
    return key


# --------------------------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_widgets_in_jupyterlab(case: BrowserCase, request):
    notebook = case.notebook or Path(f"{case.name}.ipynb")
    if case.notebook is not None and not notebook.is_file():
        _loud(f"BROWSER TEST SKIPPED {notebook.name}: {notebook} does not exist yet")
        pytest.skip(f"!!! {notebook} does not exist yet: its widgets were NOT tested in a browser !!!")
    server = request.getfixturevalue("lab")
    b = request.getfixturevalue("browser")
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = notebook.stem
    for old in ARTIFACTS.glob(f"{stem}_*.png"):  # no stale pictures from an earlier run
        old.unlink()
    times: dict[str, float] = {}
    t0 = time.monotonic()
    console: list[str] = []

    context = b.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    try:
        # 1. open the notebook and wait for its kernel
        if case.notebook is None:
            server.write_notebook(notebook.name, shared_notebook(case, like=NOTEBOOKS[0] if NOTEBOOKS else None))
        else:
            server.add_notebook(notebook)
        page.goto(server.lab_url(notebook.name, f"test-{stem}"), wait_until="domcontentloaded")
        page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible")
        _wait_idle(page, 90_000)
        times["open"] = time.monotonic() - t0

        # 2. Run > Run All Cells, as a user would
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        t1 = time.monotonic()
        try:
            page.wait_for_function(JS_RUN_FINISHED, timeout=RUN_TIMEOUT_S * 1000, polling=500)
            finished = True
        except PlaywrightTimeoutError:
            finished = False
        if not finished:
            p = page.evaluate(JS_PROGRESS) or {}
            pytest.fail(
                f"{notebook.name}: Run All Cells had not finished after {RUN_TIMEOUT_S:.0f} s: "
                f"{p.get('done')} of {p.get('todo')} code cells ran, {p.get('busy')} queued or running, "
                f"kernel {p.get('status')}; running: {page.evaluate(JS_RUNNING_CELL)!r}. With COURSE_BUDGET=ci "
                "a notebook should run in well under 2 minutes; on a slow or busy machine raise "
                "$COURSE_BROWSER_RUN_TIMEOUT (seconds).", pytrace=False)
        times["run_all"] = time.monotonic() - t1
        progress = page.evaluate(JS_PROGRESS)
        _shot(page, f"{stem}_page_after_run_all.png")

        errors = page.evaluate(JS_ERRORS)
        assert not errors, f"{notebook.name}: a cell or widget shows an error:\n\n" + "\n\n---\n".join(errors)
        assert progress["done"] >= progress["todo"], f"{notebook.name}: not every code cell ran: {progress}"

        # 3. the widgets its code draws are there (a notebook without any is not failed for it)
        explorers = page.locator(".course-widget:not(.course-quiz)")
        quizzes = page.locator(".course-quiz")
        if case.explorers:
            expect(explorers.nth(case.explorers - 1), f"{notebook.name}: its code draws {case.explorers} explorer(s), "
                   f"but {explorers.count()} .course-widget explorer(s) appeared").to_be_attached(timeout=30_000)
        if case.quizzes:
            expect(quizzes.nth(case.quizzes - 1), f"{notebook.name}: its code draws {case.quizzes} quiz(zes), "
                   f"but {quizzes.count()} .course-quiz appeared").to_be_attached(timeout=30_000)
        counts, stable_since = (explorers.count(), quizzes.count()), time.monotonic()
        while time.monotonic() - stable_since < 1.5:  # let every widget finish drawing
            page.wait_for_timeout(250)
            if (explorers.count(), quizzes.count()) != counts:
                counts, stable_since = (explorers.count(), quizzes.count()), time.monotonic()
        n, n_quiz = counts
        print(f"\n{notebook.name}: {progress['done']} code cells ran, {n} explorer(s), {n_quiz} quiz(zes)"
              + ("" if n or n_quiz else " (no course widget: every cell ran without an error, which is all we check)"))
        widgets = explorers

        # 4. each explorer answers its first slider
        for i in range(n):
            w = widgets.nth(i)
            w.scroll_into_view_if_needed()
            readout = w.locator(".course-readout").first
            expect(readout, f"widget {i} has no .course-readout").to_be_attached()
            expect(readout).not_to_have_text(re.compile(r"^\s*$"), timeout=READOUT_TIMEOUT_MS)
            # textContent, whitespace collapsed: what expect(...).to_have_text compares (innerText is
            # empty for a cell that content-visibility has not laid out yet)
            before = " ".join((readout.text_content() or "").split())
            assert before, f"{notebook.name} widget {i}: its .course-readout is empty"
            handle = w.locator(".noUi-handle").first
            expect(handle, f"widget {i} has no slider (.noUi-handle)").to_be_attached()
            _shot(w, f"{stem}_widget{i}_before.png")
            # one step down when the slider can go down (fewer DDIM steps: a cheaper picture), else one step up
            now, bottom = handle.get_attribute("aria-valuenow"), handle.get_attribute("aria-valuemin")
            key = "ArrowLeft" if now is not None and bottom is not None and float(now) > float(bottom) else "ArrowRight"
            t2 = time.monotonic()
            handle.focus()
            handle.press(key)
            expect(readout, f"{notebook.name} widget {i}: readout did not change after {key} on its first "
                   f"slider (text was {before!r})").not_to_have_text(before, timeout=READOUT_TIMEOUT_MS)
            times[f"widget{i}_readout"] = time.monotonic() - t2
            after = " ".join((readout.text_content() or "").split())
            print(f"  widget {i} ({key}):\n    before: {before!r}\n    after:  {after!r}")
            _wait_idle(page, READOUT_TIMEOUT_MS)
            _shot(w, f"{stem}_widget{i}_after.png")

        # 5. each quiz answers a wrong click with "Not quite" and the reason, a right one with the confirmation
        for i in range(n_quiz):
            t2 = time.monotonic()
            checked = _check_quiz(page, quizzes.nth(i), f"{notebook.name} quiz {i}", expect)
            times[f"quiz{i}_clicks"] = time.monotonic() - t2
            print(f"  quiz {i} (notebook {checked}): wrong and right choices answered")
            _shot(quizzes.nth(i), f"{stem}_quiz{i}_after.png")

        # 6. no control raised in the kernel (an Output widget shows the traceback of its callback)
        errors = page.evaluate(JS_ERRORS)
        assert not errors, f"{notebook.name}: an error appeared after using a widget:\n\n" + "\n\n---\n".join(errors)
        _shot(page, f"{stem}_page_end.png")
    except BaseException:
        try:
            _shot(page, f"{stem}_FAILED.png")
        except Exception:
            pass
        print(f"\n--- browser console errors ({len(console)}) ---\n" + "\n".join(console[-30:]))
        print(f"\n--- JupyterLab server log (tail) ---\n{server.log_tail()}")
        raise
    finally:
        context.close()
        cpu = server.kernel_cpu_seconds()
        if cpu is not None:
            times["kernel_cpu"] = cpu
        server.shutdown_kernels()
        times["total"] = time.monotonic() - t0
        print("  timings (s): " + ", ".join(f"{k}={v:.1f}" for k, v in times.items()))
        if console:
            print(f"  browser console errors: {len(console)} (first: {console[0][:300]})")


# --------------------------------------------------------------------------------------------
# the plan, without a browser (fast): which notebooks the test opens, found in their code
# --------------------------------------------------------------------------------------------
def _write_nb(path: Path, *cells: str) -> Path:
    path.write_text(json.dumps({
        "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
                   "source": src} for i, src in enumerate(cells)],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_the_plan_covers_every_widget_of_the_course():
    from course_utils.widgets import ENTRY_POINTS
    assert {"gelu.explorer", "ddim.explorer", "quiz.quiz", "checkerboard.samples_explorer"} <= set(ENTRY_POINTS)
    (shared,) = browser_plan(NOTEBOOKS)
    drawn = [p for p in NOTEBOOKS if widget_calls(p)]
    assert shared.sources == [p.name for p in drawn] and "09_noise_schedule_and_sampling.ipynb" in shared.sources
    assert shared.quizzes == sum(w.kind == "quiz" for p in NOTEBOOKS for w in widget_calls(p))
    assert shared.explorers == sum(w.kind == "explorer" for p in NOTEBOOKS for w in widget_calls(p)) >= 5
    assert {f"{i:02d}" for i in range(1, 11)} <= {p.name[:2] for p in NOTEBOOKS if any(
        w.kind == "quiz" for w in widget_calls(p))}
    cells = {c.splitlines()[0]: c for c in shared.cells if "explorer(" in c}
    ddim = next(c for c in shared.cells if "ddim_widget.explorer(final" in c)
    assert 'final, _ = load_shipped("optimized-final")' in ddim and "sample(final" not in ddim
    samples = next(c for c in shared.cells if "samples_explorer(samples)" in c)
    assert "nb.compare(" in samples and "budget = nb.setup()" in samples and "shipped_samples" not in samples
    assert len(cells) >= 1


def test_the_slice_keeps_what_a_widget_needs_and_nothing_else(tmp_path):
    nb = _write_nb(tmp_path / "slice.ipynb",
                   "import torch\nfrom course_utils.widgets import gelu as g",
                   "lo = -3.0\nunused = torch.zeros(3)\nparts = []",
                   "parts.append(lo)\ng.static_figure()",
                   "hi = 2.0",
                   "for k in range(2):\n    hi += 0.5",
                   "g.explorer(lo=parts[0], hi=hi)\nprint('after')")
    (call,) = widget_calls(nb)
    assert call.code == "\n".join(["from course_utils.widgets import gelu as g", "lo = -3.0", "parts = []",
                                    "parts.append(lo)", "hi = 2.0", "for k in range(2):\n    hi += 0.5",
                                    "g.explorer(lo=parts[0], hi=hi)"])


def test_a_new_notebook_with_a_widget_is_picked_up(tmp_path):
    """A temporary notebook that draws a widget joins the plan; one without does not; a name that only looks like
    a widget (another module's ``explorer``) is not mistaken for one."""
    explorer_nb = _write_nb(tmp_path / "12_new_explorer.ipynb", "import torch",
                            "from course_utils.widgets import gelu as my_widget",
                            "lo = -2.0\nmy_widget.explorer(lo=lo)")
    quiz_nb = _write_nb(tmp_path / "13_new_quiz.ipynb", "import course_utils.widgets.quiz as qz", 'qz.quiz("04")')
    plain_nb = _write_nb(tmp_path / "15_plain.ipynb", "import course_utils as cu", "def explorer():\n    pass",
                         "explorer()", "from mylib import quiz\nquiz('01')")
    dotted_nb = _write_nb(tmp_path / "16_dotted.ipynb", "import course_utils as cu\nimport course_utils.widgets.ddim",
                          "%matplotlib inline\nmodel = cu.build('baseline')", "cu.widgets.ddim.explorer(model)")

    (before,) = browser_plan(NOTEBOOKS)
    (after,) = browser_plan(NOTEBOOKS + [explorer_nb, quiz_nb, plain_nb, dotted_nb])
    assert after.sources == before.sources + ["12_new_explorer.ipynb", "13_new_quiz.ipynb", "16_dotted.ipynb"]
    assert after.explorers == before.explorers + 2 and after.quizzes == before.quizzes + 1
    new = after.cells[len(before.cells):]
    assert new == ["# from 12_new_explorer.ipynb\nfrom course_utils.widgets import gelu as my_widget\nlo = -2.0\n"
                   "my_widget.explorer(lo=lo)",
                   '# from 13_new_quiz.ipynb\nimport course_utils.widgets.quiz as qz\nqz.quiz("04")',
                   "# from 16_dotted.ipynb\nimport course_utils as cu\nmodel = cu.build('baseline')\n"
                   "cu.widgets.ddim.explorer(model)"]
    notebook = shared_notebook(after)
    assert [c["source"] for c in notebook["cells"][1:]] == after.cells
    assert widget_calls(plain_nb) == [] and browser_plan([plain_nb]) == []


def test_a_notebook_named_by_hand_without_a_widget_expects_none(tmp_path, monkeypatch):
    """$COURSE_BROWSER_NOTEBOOKS with a notebook that draws no widget: it is run and checked for errors only."""
    plain = _write_nb(tmp_path / "plain.ipynb", "print(1)")
    monkeypatch.setenv("COURSE_BROWSER_NOTEBOOKS", str(plain))
    (case,) = _cases()
    assert case.notebook == plain and case.explorers == 0 and case.quizzes == 0
