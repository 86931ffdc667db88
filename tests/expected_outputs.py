"""Expected outputs of the notebooks' checked cells, kept beside the notebooks instead of inside them.

The notebooks are stored without outputs, but nbval only compares a cell that carries a stored output. The
root ``conftest.py`` therefore gives every cell marked ``# NBVAL_CHECK_OUTPUT`` the output recorded in
``tests/expected/<notebook>.json`` before nbval runs it, so those cells are really compared. A checked cell
without a recorded output, or whose source changed since it was recorded, fails with a message saying how to
record it again:

    COURSE_BUDGET=ci python tests/expected_outputs.py notebooks/08_putting_it_together.ipynb

(no argument: every notebook). Recording executes the notebook under the ``ci`` budget and keeps only the checked
cells' outputs; review the diff of ``tests/expected/`` before committing it.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = Path(os.environ.get("COURSE_EXPECTED_DIR", ROOT / "tests" / "expected"))
MARK = "NBVAL_CHECK_OUTPUT"


def is_checked(source: str) -> bool:
    return any(line.strip() == f"# {MARK}" for line in source.splitlines()[:3])


def digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def expected_path(notebook: Path) -> Path:
    return EXPECTED / f"{Path(notebook).stem}.json"


def clean(outputs: list[dict]) -> list[dict]:
    """Keep what nbval compares: streams (joined per stream name) and text results; drop metadata and counts."""
    out: list[dict] = []
    for o in outputs:
        kind = o["output_type"]
        if kind == "stream":
            text = "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
            if out and out[-1]["output_type"] == "stream" and out[-1]["name"] == o["name"]:
                out[-1]["text"] += text
            else:
                out.append({"output_type": "stream", "name": o["name"], "text": text})
        elif kind in ("execute_result", "display_data"):
            data = {k: v for k, v in o["data"].items() if k == "text/plain"}
            if data:
                out.append({"output_type": kind, "data": data, "metadata": {},
                            **({"execution_count": 1} if kind == "execute_result" else {})})
        elif kind == "error":
            raise RuntimeError(f"a checked cell raised {o['ename']}: {o['evalue']}")
    return out


def inject(nb, path: Path) -> None:
    """Give each checked cell of ``nb`` (an nbformat notebook) its recorded output; raise if one is missing."""
    import nbformat
    f = expected_path(path)
    saved = json.loads(f.read_text()) if f.is_file() else {}
    how = f"Fix: COURSE_BUDGET=ci python tests/expected_outputs.py {path.relative_to(ROOT) if path.is_absolute() else path}"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not is_checked(cell.source):
            continue
        rec = saved.get(cell.get("id", str(i)))
        if rec is None:
            raise RuntimeError(f"{path.name}: checked cell {i} (id {cell.get('id')}) has no recorded output. {how}")
        if rec["source_sha256"] != digest(cell.source):
            raise RuntimeError(f"{path.name}: checked cell {i} (id {cell.get('id')}) changed since its output was "
                               f"recorded. {how}")
        cell.outputs = [nbformat.from_dict(o) for o in rec["outputs"]]
        cell.execution_count = 1


def record(path: Path, timeout: int = 900) -> dict:
    """Execute ``path`` under the ci budget and write its checked cells' outputs to tests/expected/."""
    import nbformat
    from nbclient import NotebookClient
    os.environ["COURSE_BUDGET"] = "ci"
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    rec = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and is_checked(cell.source):
            rec[cell.get("id", str(i))] = {"cell": i, "source_sha256": digest(cell.source),
                                           "outputs": clean(cell.outputs)}
    EXPECTED.mkdir(parents=True, exist_ok=True)
    expected_path(path).write_text(json.dumps(rec, indent=1, ensure_ascii=False) + "\n")
    return rec


if __name__ == "__main__":
    paths = [Path(p).resolve() for p in sys.argv[1:]] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for p in paths:
        rec = record(p)
        print(f"{p.name}: recorded {len(rec)} checked cells -> {expected_path(p).relative_to(ROOT)}")
