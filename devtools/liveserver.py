"""``strongroom serve`` as a separate process on a loopback port: the one live-server helper of the
test suite (tests/support) and the benchmarks (bench/throughput.py). Not part of the runtime package."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """``strongroom serve`` with ``env`` added to this environment; returns once ``/healthz`` answers.

    Its output goes to ``log_path`` (a temporary file by default: a pipe nobody reads would fill up
    and stall a server that logs every request). ``prefix`` runs it under another command (e.g.
    ``taskset -c 0`` to pin it to one CPU); ``args`` are more options of ``serve`` (``--workers 2``). Raises RuntimeError, with the end of the output, if the
    server exits or does not answer within ``timeout`` seconds.
    """

    def __init__(self, env: Mapping[str, str], *, port: int | None = None, log_path: Path | None = None,
                 prefix: Sequence[str] = (), args: Sequence[str] = (), cwd: Path = ROOT,
                 timeout: float = 30) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if log_path is None:
            handle, name = tempfile.mkstemp(prefix="strongroom-serve-", suffix=".log")
            os.close(handle)
            log_path = Path(name)
        self.log_path = log_path
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*prefix, str(BIN / "strongroom"), "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            env={**os.environ, **env}, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out = self.stop()
                raise RuntimeError(f"strongroom serve did not start:\n{out[-2000:]}")
            time.sleep(0.05)

    def output(self) -> str:
        """Return everything the process printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> str:
        """Stop the process (terminate, then kill after 10 s); return everything it printed."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        text = self.output()
        self._log.close()
        return text
