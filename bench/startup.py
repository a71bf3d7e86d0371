"""Measure: cold start, from ``strongroom serve`` being started to ``/readyz`` answering 200.

For this tree, for the tree before the architecture step (the same ``git archive`` export the
callgrind measure uses) and for a minimal FastAPI + SQLAlchemy app served by uvicorn (``MINIMAL``:
one ``/readyz`` that runs ``SELECT 1`` on a SQLite file, what issue 23 compares against), interleaved
(this, before, minimal, this, ...), on a migrated SQLite data dir with one user: medians of the
runs. Also reports the CPU time the server process had used when ``/readyz`` first answered (user +
system, every thread, from ``/proc``: much steadier than the wall clock on a busy machine) and the
import time of ``strongroom.app`` alone.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.callgrind import BEFORE_REF, ROOT, _total_ir, export_tree
from devtools.liveserver import free_port

# The baseline of issue 23 §4: what a user would write, timed the same way.
MINIMAL = """import sys
import uvicorn
from fastapi import FastAPI
from sqlalchemy import create_engine, text

engine = create_engine("sqlite:///" + sys.argv[2])
app = FastAPI()


@app.get("/readyz")
def readyz() -> dict[str, str]:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ready"}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
MINIMAL_LABEL = "minimal FastAPI + SQLAlchemy"

# What the ``strongroom`` console script runs: strongroom.launch:main (strongroom.cli:app in a tree before it).
SERVE = ("import sys\ntry:\n    from strongroom.launch import main\nexcept ImportError:\n"
         "    from strongroom.cli import app as main\n"
         "sys.argv = ['strongroom', 'serve', '--host', '127.0.0.1', '--port', sys.argv[1]]\nmain()\n")


@dataclass
class Startup:
    runs: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)  # CPU seconds of the server at its first 200
    imports: dict[str, list[float]] = field(default_factory=dict)

    def median(self, label: str) -> float:
        return statistics.median(self.runs[label])

    def cpu_median(self, label: str) -> float:
        return statistics.median(self.cpu[label])


def _cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def _env(tree: Path, data_dir: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "STRONGROOM_DATA_DIR": str(data_dir),
            "STRONGROOM_LOG_LEVEL": "warning", "PYTHONDONTWRITEBYTECODE": "0"}


def _prepare(tree: Path, data_dir: Path) -> None:
    code = "import sys\nfrom strongroom.cli import app\nsys.argv = ['strongroom', 'db', 'upgrade']\napp()\n"
    subprocess.run([sys.executable, "-c", code], env=_env(tree, data_dir), check=True, capture_output=True,
                   cwd=data_dir.parent)


def _one(tree: Path | None, data_dir: Path) -> tuple[float, float]:
    """Return the seconds from starting the server of ``tree`` (None: the minimal app) to its first 200 of
    /readyz, and the CPU seconds the server had used then."""
    port = free_port()
    code, args = (SERVE, [str(port)]) if tree is not None else (MINIMAL, [str(port), str(data_dir / "min.db")])
    env = _env(tree, data_dir) if tree is not None else {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=data_dir.parent)
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                    return time.monotonic() - t0, _cpu_seconds(proc.pid)
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() - t0 > 60:
                raise RuntimeError(f"server of {tree} did not start")
            time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait(10)


def _import_seconds(tree: Path) -> float:
    code = "import time; t=time.perf_counter(); import strongroom.app; print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(tree)},
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip())


def _data_dirs(work: Path, trees: dict[str, Path | None]) -> dict[str, Path]:
    """Return a data dir under ``work`` for each tree (None: the minimal app), migrated, each app started once
    (bytecode compiled, bootstrap admin made: not counted)."""
    dirs = {}
    for label, tree in trees.items():
        dirs[label] = work / label.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "") / "var"
        dirs[label].parent.mkdir(parents=True)
        if tree is None:
            dirs[label].mkdir()
        else:
            _prepare(tree, dirs[label])
        _one(tree, dirs[label])
    return dirs


def measure(rounds: int, before_ref: str | None = BEFORE_REF, minimal: bool = True) -> Startup:
    """Return the cold-start and import times of each tree (and the minimal app's cold start),
    interleaved over ``rounds``."""
    result = Startup()
    with tempfile.TemporaryDirectory(prefix="strongroom-startup-") as tmp:
        trees: dict[str, Path | None] = {"this tree": ROOT}
        if before_ref:
            trees[f"before ({before_ref})"] = export_tree(before_ref, Path(tmp) / "before")
        if minimal:
            trees[MINIMAL_LABEL] = None
        dirs = _data_dirs(Path(tmp), trees)
        for _ in range(rounds):
            for label, tree in trees.items():
                wall, cpu = _one(tree, dirs[label])
                result.runs.setdefault(label, []).append(wall)
                result.cpu.setdefault(label, []).append(cpu)
                if tree is not None:
                    result.imports.setdefault(label, []).append(_import_seconds(tree))
    return result


def _instructions_one(tree: Path | None, data_dir: Path, work: Path) -> int:
    """Return the instructions (callgrind ``Ir``, every thread) the server of ``tree`` (None: the minimal app)
    had executed when its ``/readyz`` first answered 200: counted from the interpreter's start to a dump
    asked for (``callgrind_control --dump``) as soon as that answer arrives, so its shutdown is not counted."""
    valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
    if valgrind is None or control is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    port = free_port()
    code, args = (SERVE, [str(port)]) if tree is not None else (MINIMAL, [str(port), str(data_dir / "min.db")])
    env = _env(tree, data_dir) if tree is not None else {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    out = work / f"callgrind.{port}"
    proc = subprocess.Popen([valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c",
                             code, *args], env={**env, "PYTHONHASHSEED": "0"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=data_dir.parent)
    t0 = time.monotonic()
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() - t0 > 600:
                raise RuntimeError(f"server of {tree} did not start under valgrind")
            time.sleep(0.05)
        subprocess.run([control, "--dump", str(proc.pid)], check=True, capture_output=True, timeout=120)
        dumped = out.with_name(f"{out.name}.1")
        if not dumped.exists():
            raise RuntimeError(f"callgrind wrote no dump for {tree}")
        return _total_ir(dumped)
    finally:
        proc.terminate()
        proc.wait(60)


def instructions(rounds: int = 3, minimal: bool = True) -> dict[str, list[int]]:
    """Return, for this tree's ``strongroom serve`` (and the minimal app), the instructions executed from the
    interpreter's start to the first 200 of ``/readyz``, over ``rounds`` interleaved runs: a figure that does
    not swing with the machine's load as the wall clock does (the warm-up thread's share before the first
    answer still varies a little)."""
    counts: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="strongroom-startup-cg-") as tmp:
        work = Path(tmp)
        trees: dict[str, Path | None] = {"this tree": ROOT}
        if minimal:
            trees[MINIMAL_LABEL] = None
        dirs = _data_dirs(work, trees)
        for _ in range(rounds):
            for label, tree in trees.items():
                counts.setdefault(label, []).append(_instructions_one(tree, dirs[label], work))
    return counts
