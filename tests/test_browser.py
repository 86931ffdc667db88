"""The course's widgets in a real browser: JupyterLab 4 in headless Chromium, driven by Playwright.

For each widget notebook: open it in JupyterLab, run all cells (Run > Run All Cells), wait until every
code cell has run and the kernel is idle, check that no cell shows an error and that no widget failed
to display, then, for every ``.course-widget`` explorer, press ArrowRight on its first slider and wait
until its ``.course-readout`` text changes. Screenshots go to tests/artifacts/browser/.

Run:  COURSE_BUDGET=ci .venv/bin/python -m pytest tests/test_browser.py -v
Needs Chromium (/usr/bin/chromium, or set $CHROMIUM) and the `playwright` Python package; it never
downloads a browser. $COURSE_BROWSER_NOTEBOOKS (paths separated by ':') replaces the notebook list,
e.g. to try the test on a notebook of your own. $COURSE_BROWSER_RUN_TIMEOUT (seconds, default 150)
bounds "Run All Cells" for one notebook.
"""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_util import CHROMIUM_ARGS, LabServer, find_chromium

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts" / "browser"
WIDGET_NOTEBOOKS = [
    "02_checkerboard_artifacts.ipynb",
    "04_gelu.ipynb",
    "05_rearrange_pooling.ipynb",
]
RUN_TIMEOUT_S = float(os.environ.get("COURSE_BROWSER_RUN_TIMEOUT", "420"))
READOUT_TIMEOUT_MS = 30_000
STEP_TIMEOUT_MS = 60_000  # default for every other Playwright wait


def _notebook_paths() -> list[Path]:
    env = os.environ.get("COURSE_BROWSER_NOTEBOOKS")
    if env:
        return [Path(p).expanduser().resolve() for p in env.split(os.pathsep) if p.strip()]
    return [REPO / "notebooks" / name for name in WIDGET_NOTEBOOKS]


NOTEBOOKS = _notebook_paths()


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


# --------------------------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_widgets_in_jupyterlab(notebook: Path, request):
    if not notebook.is_file():
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

        # 3. the explorers are drawn
        widgets = page.locator(".course-widget")
        expect(widgets.first, f"{notebook.name}: no .course-widget was drawn after Run All Cells"
               ).to_be_attached(timeout=30_000)
        n, stable_since = widgets.count(), time.monotonic()
        while time.monotonic() - stable_since < 1.5:  # let every explorer finish drawing
            page.wait_for_timeout(250)
            if widgets.count() != n:
                n, stable_since = widgets.count(), time.monotonic()
        print(f"\n{notebook.name}: {progress['done']} code cells ran, {n} .course-widget explorer(s)")

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
            now, top = handle.get_attribute("aria-valuenow"), handle.get_attribute("aria-valuemax")
            key = "ArrowLeft" if now is not None and top is not None and float(now) >= float(top) else "ArrowRight"
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

        # 5. no control raised in the kernel (an Output widget shows the traceback of its callback)
        errors = page.evaluate(JS_ERRORS)
        assert not errors, f"{notebook.name}: an error appeared after moving a slider:\n\n" + "\n\n---\n".join(errors)
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
        server.shutdown_kernels()
        times["total"] = time.monotonic() - t0
        print("  timings (s): " + ", ".join(f"{k}={v:.1f}" for k, v in times.items()))
        if console:
            print(f"  browser console errors: {len(console)} (first: {console[0][:300]})")
