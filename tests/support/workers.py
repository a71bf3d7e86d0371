"""``strongroom worker`` processes for the tests: a migrated installation (SQLite or a fresh PostgreSQL schema),
workers started as the console script, stopped with SIGTERM, and their output.

A worker's output goes to a file, never to a pipe: a pipe nobody reads fills up (64 KiB), and a worker that logs
into a full pipe blocks in the middle of a job, heartbeats included; its leases then expire and other workers
run its jobs a second time. (A test once saw exactly that, and took it for a bug in the deliveries.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from support import BIN, PG_URL, ROOT, drop_pg_schema, new_pg_schema, postgres_available
from support.cli import clean_env, strongroom


def installation(kind: str, tmp_path: Path, env: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Yield the environment of a migrated installation in ``tmp_path`` (``kind``: sqlite or postgresql, a
    schema of its own, dropped afterwards) with ``env`` added. Skips, loudly, when PostgreSQL does not answer."""
    full = {"STRONGROOM_DATA_DIR": str(tmp_path / "data"), **env}
    schema = None
    if kind == "postgresql":
        problem = postgres_available()
        if problem:
            pytest.skip(f"POSTGRESQL PASS NOT RUN: {PG_URL} does not answer ({problem})")
        schema, full["STRONGROOM_DATABASE_URL"] = new_pg_schema()
    try:
        strongroom("db", "upgrade", env=full).ok()
        yield full
    finally:
        if schema:
            drop_pg_schema(schema)


class Worker:
    """``strongroom worker *args`` with ``env`` (and nothing of this process's ``STRONGROOM_*``)."""

    def __init__(self, env: Mapping[str, str], *args: str) -> None:
        handle, name = tempfile.mkstemp(prefix="strongroom-worker-", suffix=".log")
        self.log_path = Path(name)
        try:
            self.proc = subprocess.Popen([str(BIN / "strongroom"), "worker", *args], env=clean_env(dict(env)),
                                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=handle)
        finally:
            os.close(handle)

    def kill(self) -> None:
        """``kill -9`` the worker and wait for it to be gone."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> str:
        """Stop the worker (SIGTERM; SIGKILL after 30 s) and return everything it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            return self.log_path.read_text(errors="replace")
        finally:
            self.log_path.unlink(missing_ok=True)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Return once ``check()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
