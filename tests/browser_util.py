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
