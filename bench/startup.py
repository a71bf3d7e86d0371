"""Measure: cold start, from ``strongroom serve`` being started to ``/readyz`` answering 200.

For this tree and for the tree before the architecture step (the same ``git archive`` export the
callgrind measure uses), interleaved (this, before, this, before, ...), on a migrated SQLite data
dir with one user: medians of the runs. Also reports the import time of ``strongroom.app`` alone.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.callgrind import BEFORE_REF, ROOT, export_tree
from devtools.liveserver import free_port

SERVE = ("import sys\nfrom strongroom.cli import app\n"
         "sys.argv = ['strongroom', 'serve', '--host', '127.0.0.1', '--port', sys.argv[1]]\napp()\n")


@dataclass
class Startup:
    runs: dict[str, list[float]] = field(default_factory=dict)
    imports: dict[str, list[float]] = field(default_factory=dict)

    def median(self, label: str) -> float:
        return statistics.median(self.runs[label])


def _env(tree: Path, data_dir: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "STRONGROOM_DATA_DIR": str(data_dir),
            "STRONGROOM_LOG_LEVEL": "warning", "PYTHONDONTWRITEBYTECODE": "0"}


def _prepare(tree: Path, data_dir: Path) -> None:
    code = "import sys\nfrom strongroom.cli import app\nsys.argv = ['strongroom', 'db', 'upgrade']\napp()\n"
    subprocess.run([sys.executable, "-c", code], env=_env(tree, data_dir), check=True, capture_output=True,
                   cwd=data_dir.parent)


def _one(tree: Path, data_dir: Path) -> float:
    port = free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], env=_env(tree, data_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=data_dir.parent)
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                    return time.monotonic() - t0
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


def measure(rounds: int, before_ref: str | None = BEFORE_REF) -> Startup:
    """Return the cold-start and import times of each tree, interleaved over ``rounds``."""
    result = Startup()
    with tempfile.TemporaryDirectory(prefix="strongroom-startup-") as tmp:
        trees = {"this tree": ROOT}
        if before_ref:
            trees[f"before ({before_ref})"] = export_tree(before_ref, Path(tmp) / "before")
        dirs = {}
        for label, tree in trees.items():
            dirs[label] = Path(tmp) / label.replace(" ", "_").replace("(", "").replace(")", "") / "var"
            dirs[label].parent.mkdir(parents=True)
            _prepare(tree, dirs[label])
            _one(tree, dirs[label])  # first start: bytecode compiled, bootstrap admin made (not counted)
        for _ in range(rounds):
            for label, tree in trees.items():
                result.runs.setdefault(label, []).append(_one(tree, dirs[label]))
                result.imports.setdefault(label, []).append(_import_seconds(tree))
    return result
