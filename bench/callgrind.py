"""Measure 2: instructions per request (callgrind ``Ir``), for this tree, the tree before the
architecture step, and the peer apps a user would otherwise write (bench/peer_apps.py).

One ``valgrind --tool=callgrind`` process per app runs bench/cg_app.py, which calls the ASGI app
in-process (no sockets, no uvicorn). Collection is on only inside ``sys.call_tracing`` (one batch of
requests) and a profile part is dumped after each batch, so start-up, warm-up and signing are not
counted; the GC is collected before and disabled during each batch. Instructions per request =
(Ir of the N2 batch - Ir of the N1 batch) / (N2 - N1). Instruction counts do not depend on the
machine's load, unlike the timings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CG_APP = Path(__file__).resolve().with_name("cg_app.py")
# The tree that landed before the architecture step (issue 8's "before" figures).
BEFORE_REF = "fc3081c"
STRONGROOM_KINDS = ("healthz", "bearer", "hmac", "rsa", "ed25519", "healthz_first")
# this tree also answers forward authentication (the tree before had no /v1/auth/forward)
THIS_TREE_KINDS = ("healthz", "bearer", "hmac", "rsa", "ed25519", "forward", "healthz_first")
PEERS = {"fastapi": "FastAPI + APIKeyHeader dependency, 37 operations",
         "starlette": "Starlette + pure-ASGI auth middleware",
         "asgi": "raw ASGI callable"}


@dataclass
class App:
    label: str
    target: str  # "strongroom" or "peer:<name>"
    pythonpath: Path | None  # the tree whose ``strongroom`` is imported
    kinds: tuple[str, ...]


def _total_ir(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"^(?:summary|totals):\s+(\d+)", line)
        if m:
            return int(m.group(1))
    raise RuntimeError(f"no totals line in {path}")


def export_tree(ref: str, into: Path) -> Path:
    """Write the ``strongroom`` package of git ``ref`` under ``into``; return ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "strongroom"],
                             check=True, capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_app(app: App, n1: int, n2: int) -> dict[str, float]:
    """Return instructions per request by kind for one app (one valgrind process)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="strongroom-cg-") as tmp:
        work = Path(tmp)
        out_file, order_file = work / "callgrind.out", work / "order.json"
        cmd = [valgrind, "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=sys_call_tracing",
               "--dump-after=sys_call_tracing", f"--callgrind-out-file={out_file}",
               sys.executable, str(CG_APP), app.target, str(work / "data"), str(n1), str(n2), str(order_file),
               ",".join(app.kinds)]
        paths = [str(app.pythonpath)] if app.pythonpath else []
        env = {**os.environ, "PYTHONHASHSEED": "0",
               "PYTHONPATH": os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH", "")] if p])}
        result = subprocess.run(cmd, check=False, cwd=work, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"callgrind run of {app.label} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        order = json.loads(order_file.read_text())
        parts = sorted(work.glob("callgrind.out.*"), key=lambda p: int(p.suffix.lstrip(".")))
        if len(parts) < len(order):
            raise RuntimeError(f"expected {len(order)} callgrind dumps, found {len(parts)}")
        counts: dict[str, dict[int, int]] = {}
        for label, part in zip(order, parts, strict=False):
            kind, n = label.split(":")
            counts.setdefault(kind, {})[int(n)] = _total_ir(part)
    return {kind: (c[n2] - c[n1]) / (n2 - n1) for kind, c in counts.items()}


def measure(n1: int, n2: int, *, before_ref: str | None = BEFORE_REF,
            peers: bool = True) -> tuple[dict[str, dict[str, float]], float]:
    """Return ``{app label: {kind: instructions per request}}`` and the run's wall-clock seconds."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="strongroom-before-") as tmp:
        apps = [App("this tree", "strongroom", ROOT, THIS_TREE_KINDS)]
        if before_ref:
            apps.append(App(f"before ({before_ref})", "strongroom", export_tree(before_ref, Path(tmp)),
                            STRONGROOM_KINDS))
        if peers:
            apps += [App(f"peer: {label}", f"peer:{name}", None, ("healthz", "bearer"))
                     for name, label in PEERS.items()]
        results = {app.label: run_app(app, n1, n2) for app in apps}
    return results, time.monotonic() - t0
