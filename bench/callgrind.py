"""Measure 2: instructions per request (callgrind ``Ir``), healthz against /v1/me per key kind.

One ``valgrind --tool=callgrind`` process runs bench/cg_child.py, which calls the ASGI app
in-process (no sockets, no uvicorn). Collection is on only inside ``sys.call_tracing`` (one batch of
requests) and a profile part is dumped after each batch, so start-up, warm-up and signing are not
counted. Instructions per request = (Ir of the N2 batch - Ir of the N1 batch) / (N2 - N1).
Instruction counts do not depend on the machine's load, unlike the timings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from bench.fixture import Fixture

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Instructions:
    kind: str
    per_request: float
    batches: dict[int, int]


def _save_credentials(fixture: Fixture, path: Path) -> None:
    out = {}
    for kind, c in fixture.credentials.items():
        entry = {"key_id": c.key_id, "secret": c.secret}
        if c.private_key is not None:
            entry["private_pem"] = c.private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode()
        out[kind] = entry
    path.write_text(json.dumps(out))


def _total_ir(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"^(?:summary|totals):\s+(\d+)", line)
        if m:
            return int(m.group(1))
    raise RuntimeError(f"no totals line in {path}")


def measure(fixture: Fixture, n1: int, n2: int, workdir: Path) -> tuple[dict[str, Instructions], float]:
    """Return instructions per request by kind ("healthz" included) and the run's wall-clock seconds."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    creds = fixture.data_dir.parent / "credentials.json"
    _save_credentials(fixture, creds)
    order_file = workdir / "order.json"
    out_file = workdir / "callgrind.out"
    cmd = [valgrind, "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=sys_call_tracing",
           "--dump-after=sys_call_tracing", f"--callgrind-out-file={out_file}",
           sys.executable, "-m", "bench.cg_child", str(fixture.data_dir), str(n1), str(n2), str(order_file)]
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), str(ROOT)) if p)
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": path}
    t0 = time.monotonic()
    result = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"callgrind run failed ({result.returncode}):\n{result.stderr[-3000:]}")
    order = json.loads(order_file.read_text())
    parts = sorted(workdir.glob("callgrind.out.*"), key=lambda p: int(p.suffix.lstrip(".")))
    if len(parts) < len(order):
        raise RuntimeError(f"expected {len(order)} callgrind dumps, found {len(parts)}")
    counts: dict[str, dict[int, int]] = {}
    for label, part in zip(order, parts):
        kind, n = label.split(":")
        counts.setdefault(kind, {})[int(n)] = _total_ir(part)
    out = {kind: Instructions(kind, (c[n2] - c[n1]) / (n2 - n1), c) for kind, c in counts.items()}
    return out, time.monotonic() - t0
