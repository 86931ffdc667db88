"""Helpers for tests/test_browser.py: a throw-away JupyterLab server and a headless Chromium.

Everything here is isolated from the user's own Jupyter set-up: the server gets temporary config,
data, runtime, settings and workspace folders, serves a temporary copy of the notebooks (so the
repository's notebooks are never saved with outputs), listens on 127.0.0.1 with a random token, and
has JupyterLab's news/update pop-ups switched off so that nothing covers the page.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

try:  # psutil comes with ipykernel; used only to make sure no kernel outlives the server
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# JupyterLab plugins that can open a toast or dialog over the page
DISABLED_LAB_PLUGINS = ["@jupyterlab/apputils-extension:announcements"]


def find_chromium() -> str | None:
    """The Chromium to drive: $CHROMIUM if set, else the system's chromium."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env
    for cand in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, data=b"" if method in ("POST",) else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class LabServer:
    """A JupyterLab server on 127.0.0.1 serving a temporary copy of some notebooks.

    Use as a context manager; leaving it shuts the server and all its kernels down and deletes the
    temporary folder.
    """

    def __init__(self, notebooks: list[Path] = (), extra_env: dict[str, str] | None = None,
                 start_timeout: float = 90.0):
        self.notebooks = [Path(p) for p in notebooks]
        self.extra_env = dict(extra_env or {})
        self.start_timeout = start_timeout
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.tmp: Path | None = None
        self.root: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._log = None

    # -- set-up -----------------------------------------------------------------------------
    def _prepare_dirs(self) -> dict[str, str]:
        self.tmp = Path(tempfile.mkdtemp(prefix="course-browser-"))
        self.root = self.tmp / "notebooks"
        self.root.mkdir()
        for nb in self.notebooks:
            self.add_notebook(nb)
        dirs = {k: self.tmp / k for k in ("config", "data", "runtime", "settings", "workspaces")}
        for d in dirs.values():
            d.mkdir()
        (dirs["config"] / "labconfig").mkdir()
        # what `jupyter labextension disable ...` would write, in our private config folder
        (dirs["config"] / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {p: True for p in DISABLED_LAB_PLUGINS}}))
        (dirs["config"] / "jupyter_server_config.json").write_text(json.dumps({
            # window.jupyterapp: lets the test ask the notebook's session whether its kernel is ready
            "LabApp": {"news_url": None, "expose_app_in_browser": True,
                       "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"},
        }))
        # Belt and braces: never ask about news, even if the plugin above were enabled.
        notif = dirs["settings"] / "@jupyterlab" / "apputils-extension"
        notif.mkdir(parents=True)
        (notif / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)  # let the kernel use its inline backend
        env.update({
            "COURSE_BUDGET": "ci",
            "PYTHONHASHSEED": "0",
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
            "JUPYTER_PLATFORM_DIRS": "0",
        })
        env.update(self.extra_env)
        return env

    def start(self) -> "LabServer":
        env = self._prepare_dirs()
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.terminals_enabled=False",
            # If this process is killed without cleaning up, the server still goes away by itself.
            "--MappingKernelManager.cull_idle_timeout=600",
            "--MappingKernelManager.cull_interval=60",
            "--ServerApp.shutdown_no_activity_timeout=900",
        ]
        self.log_path = self.tmp / "jupyter-server.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.root, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _ = _http("GET", self.api("status"), timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {self.start_timeout:.0f} s:\n{self.log_tail()}")

    def add_notebook(self, path: Path) -> str:
        """Copy a notebook into the served folder (fresh, without outputs); returns its name there."""
        shutil.copy2(path, self.root / Path(path).name)
        return Path(path).name

    def write_notebook(self, name: str, nb: dict) -> str:
        """Write a notebook (nbformat JSON) into the served folder; returns its name there."""
        (self.root / name).write_text(json.dumps(nb, indent=1))
        return name

    # -- use --------------------------------------------------------------------------------
    def api(self, path: str) -> str:
        return f"{self.base_url}/api/{path}?token={self.token}"

    def lab_url(self, notebook_name: str, workspace: str) -> str:
        """The notebook in a workspace of its own, so that no other notebook is reopened with it."""
        return f"{self.base_url}/lab/workspaces/{workspace}/tree/{notebook_name}?token={self.token}"

    def log_tail(self, n: int = 6000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no server log)"
        return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")

    def kernel_cpu_seconds(self) -> float | None:
        """CPU seconds (user + system) used so far by the server's running kernels: a measure of a notebook's
        work that, unlike its wall time, does not grow when other programs share the CPU."""
        if psutil is None or self.proc is None:
            return None
        total = 0.0
        try:
            for c in psutil.Process(self.proc.pid).children(recursive=True):
                try:
                    if "ipykernel" in " ".join(c.cmdline()):
                        t = c.cpu_times()
                        total += t.user + t.system + t.children_user + t.children_system
                except psutil.Error:
                    pass
        except psutil.Error:
            return None
        return total

    def shutdown_kernels(self) -> None:
        """Delete every session (which stops its kernel): frees the CPU for the next notebook."""
        try:
            status, body = _http("GET", self.api("sessions"))
            if status == 200:
                for s in json.loads(body):
                    _http("DELETE", f"{self.base_url}/api/sessions/{s['id']}?token={self.token}", timeout=30)
            status, body = _http("GET", self.api("kernels"))
            if status == 200:
                for k in json.loads(body):
                    _http("DELETE", f"{self.base_url}/api/kernels/{k['id']}?token={self.token}", timeout=30)
        except OSError:
            pass

    # -- tear-down --------------------------------------------------------------------------
    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            children = []
            if psutil is not None:
                try:
                    children = psutil.Process(proc.pid).children(recursive=True)
                except psutil.Error:
                    children = []
            try:  # clean shutdown: the server stops its kernels itself
                _http("POST", self.api("shutdown"), timeout=5)
            except OSError:
                pass
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            for c in children:  # kernels run in their own sessions; end any left over
                try:
                    c.kill()
                except psutil.Error:
                    pass
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self) -> "LabServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------------
# Which notebooks draw a course widget, found in their code (no list kept by hand)
# ------------------------------------------------------------------------------------------------
import ast  # noqa: E402
import re  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

WIDGETS_PACKAGE = "course_utils.widgets"


def widget_entry_points() -> tuple[str, ...]:
    """Every function that draws a course widget, as "module.function" (course_utils.widgets.ENTRY_POINTS)."""
    from course_utils.widgets import ENTRY_POINTS
    return ENTRY_POINTS


def _code_cells(nb: dict) -> list[tuple[int, str]]:
    """(index, source) of every code cell, IPython magics and shell lines blanked so that ast can parse it."""
    out = []
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] != "code":
            continue
        src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        out.append((i, "\n".join("" if re.match(r"\s*[%!]", line) else line for line in src.splitlines())))
    return out


def _dotted(node, names: dict[str, str]) -> str | None:
    """The full dotted name a call's function refers to, following the notebook's imports so far."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in names:
        return None
    return ".".join([names[node.id], *reversed(parts)])


def _bind_imports(stmt, names: dict[str, str]) -> None:
    """Record the dotted name each name bound by an import statement refers to."""
    if isinstance(stmt, ast.Import):
        for a in stmt.names:
            bound = a.asname or a.name.split(".")[0]
            names[bound] = a.name if a.asname else bound
    elif isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
        for a in stmt.names:
            names[a.asname or a.name] = f"{stmt.module}.{a.name}"


def _loads(node) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _root(node) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _binds(stmt, modules: frozenset = frozenset()) -> tuple[set[str], set[str]]:
    """(names the statement binds outright, names it changes in place: x[k] = v, x.a = v, x += v, x.method()).
    A method call on an imported name (``checkerboard.explorer()``) is not taken to change it."""
    bound, changed = set(), set()

    def target(t):
        if isinstance(t, ast.Name):
            bound.add(t.id)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                target(e)
        elif isinstance(t, ast.Starred):
            target(t.value)
        elif isinstance(t, (ast.Attribute, ast.Subscript)) and _root(t):
            changed.add(_root(t))

    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        bound |= {a.asname or a.name.split(".")[0] for a in stmt.names}
    elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        bound.add(stmt.name)
    elif isinstance(stmt, ast.Assign):
        for t in stmt.targets:
            target(t)
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) and stmt.target is not None:
        target(stmt.target)
        if isinstance(stmt, ast.AugAssign):
            changed |= bound
            bound.clear()
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        target(stmt.target)
        for inner in stmt.body + stmt.orelse:
            b, c = _binds(inner, modules)
            changed |= b | c
    elif isinstance(stmt, (ast.With, ast.AsyncWith, ast.If, ast.Try, ast.While)):
        for item in getattr(stmt, "items", []):
            if item.optional_vars is not None:
                target(item.optional_vars)
        for field_name in ("body", "orelse", "finalbody"):
            for inner in getattr(stmt, field_name, []):
                b, c = _binds(inner, modules)
                changed |= b | c
        for h in getattr(stmt, "handlers", []):
            for inner in h.body:
                b, c = _binds(inner, modules)
                changed |= b | c
    elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Attribute):
        root = _root(stmt.value.func)
        if root and root not in modules:  # model.eval(), runs.update(...): may change the object
            changed.add(root)
    return bound, changed


@dataclass
class WidgetCall:
    cell: int               # index of the cell in the notebook
    entry: str              # "module.function" in course_utils.widgets
    kind: str               # "quiz" or "explorer"
    code: str               # the statements of the notebook that this call needs, and the call, in order


def _slice(statements: list[tuple[str, object]], upto: int) -> str:
    """The statements before ``statements[upto]`` that it needs (what defines or changes a name it reads,
    transitively), then the statement itself: a backward slice of the notebook, one statement at a time."""
    src, target = statements[upto]
    modules = frozenset(a.asname or a.name.split(".")[0] for _, st in statements[:upto]
                        if isinstance(st, (ast.Import, ast.ImportFrom)) for a in st.names)
    needed, picked = _loads(target), [upto]
    for i in range(upto - 1, -1, -1):
        s_src, stmt = statements[i]
        bound, changed = _binds(stmt, modules)
        if (bound | changed) & needed:
            picked.append(i)
            needed = (needed - bound) | _loads(stmt)
    return "\n".join(ast.get_source_segment(*statements[i]) for i in sorted(picked))


def widget_calls(notebook: Path, entry_points=None) -> list[WidgetCall]:
    """Every call in the notebook's code that draws a course widget, in cell order, with the code it needs."""
    entry_points = set(entry_points or widget_entry_points())
    nb = json.loads(Path(notebook).read_text())
    names: dict[str, str] = {}
    statements: list[tuple[str, object]] = []
    found: list[WidgetCall] = []
    for index, src in _code_cells(nb):
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for stmt in tree.body:
            statements.append((src, stmt))
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                _bind_imports(stmt, names)
                continue
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call):
                    full = _dotted(node.func, names) or ""
                    entry = full[len(WIDGETS_PACKAGE) + 1:] if full.startswith(WIDGETS_PACKAGE + ".") else ""
                    if entry in entry_points:
                        kind = "quiz" if entry.split(".")[-1] == "quiz" else "explorer"
                        found.append(WidgetCall(index, entry, kind, _slice(statements, len(statements) - 1)))
    return found


@dataclass
class BrowserCase:
    """One page of the browser test: a notebook run in full, or the shared notebook of widget cells."""
    name: str
    notebook: Path | None           # None: the shared notebook, built from ``cells``
    explorers: int = 0              # how many explorers its code draws (at least)
    quizzes: int = 0                # how many quizzes its code draws (at least)
    cells: list[str] = field(default_factory=list)  # for the shared notebook: the cells' sources
    sources: list[str] = field(default_factory=list)  # the notebooks its widgets come from


SHARED = "00_shared_widgets"


def browser_plan(notebooks, entry_points=None) -> list[BrowserCase]:
    """What the browser test opens: one shared notebook with a cell per widget call found in ``notebooks``. Each
    cell is that notebook's own code, cut down to the statements the call needs (``_slice``): the imports, the
    values it is given (``samples`` in 02: the two rungs trained under the budget; ``final`` in 09: the shipped
    model), and the call. A notebook without a widget gives no cell."""
    shared = BrowserCase(SHARED, None)
    for path in notebooks:
        calls = widget_calls(path, entry_points)
        for c in calls:
            shared.cells.append(f"# from {Path(path).name}\n{c.code}")
            shared.explorers += c.kind == "explorer"
            shared.quizzes += c.kind == "quiz"
        if calls:
            shared.sources.append(Path(path).name)
    return [shared] if shared.cells else []


def shared_notebook(case: BrowserCase, like: Path | None = None) -> dict:
    """The shared notebook as nbformat JSON (metadata copied from ``like``)."""
    meta = json.loads(Path(like).read_text())["metadata"] if like else {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    cells = [{"cell_type": "markdown", "id": "about", "metadata": {},
              "source": "The widget cells of " + ", ".join(case.sources) + ", gathered by tests/test_browser.py."}]
    for i, src in enumerate(case.cells):
        cells.append({"cell_type": "code", "id": f"widget-{i}", "metadata": {}, "execution_count": None,
                      "outputs": [], "source": src})
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}
