"""Running ``strongroom`` as an operator would: a process of its own with only the STRONGROOM_* variables
a test gives (none inherited), in a directory of the test's choosing (forked from a process that has imported
the command line already: :mod:`support.forkserver`; the pseudo-terminal runs are plain subprocesses).

Every run is checked for the command line's error contract: no traceback, ever, and a failure
ends with exactly one ``error: ...`` line on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import BIN, ROOT, forkserver

CHEAP_ARGON2 = {"STRONGROOM_ARGON2_TIME_COST": "1", "STRONGROOM_ARGON2_MEMORY_KIB": "1024",
                "STRONGROOM_ARGON2_PARALLELISM": "1"}


def clean_env(env: dict[str, str]) -> dict[str, str]:
    """This environment without any STRONGROOM_* variable, plus cheap argon2 and ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    return {**base, **CHEAP_ARGON2, **env}


@dataclass
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def error(self) -> str:
        """The one error line (without ``error: ``)."""
        assert self.returncode != 0, f"{self.args} succeeded: {self.stdout}"
        return self.stderr.strip().removeprefix("error: ")

    def json(self) -> Any:
        assert self.returncode == 0, f"{self.args}: {self.stderr}"
        return json.loads(self.stdout)

    def ok(self) -> Run:
        assert self.returncode == 0, f"{self.args} failed ({self.returncode}): {self.stderr}"
        return self


def strongroom(*args: str, env: dict[str, str], cwd: Path = ROOT, stdin: str | None = None,
               timeout: float = 120) -> Run:
    """Run ``strongroom *args``; assert the error contract; return what it printed."""
    done = forkserver.run(list(args), env=clean_env(env), cwd=cwd, stdin=stdin, timeout=timeout)
    run = Run(tuple(args), done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    if done.returncode != 0 and done.stderr.strip():
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        assert "{'" not in lines[0], f"a Python dict in an error line: {lines[0]}"
    return run


def strongroom_on_terminal(*args: str, env: dict[str, str], answers: list[tuple[str, str]] = (),
                           timeout: float = 60) -> tuple[int, str]:
    """Run ``strongroom *args`` on a pseudo-terminal (stdin, stdout and stderr), answering each
    ``(prompt, answer)`` once ``prompt`` has appeared; return the exit status and everything shown.

    The process gets a new session without a controlling terminal, so prompts read the pty. A
    hidden prompt discards what was typed before it turned echo off (as a real terminal does):
    wait for its last character (getpass writes the final space of ``"Password: "`` after that).
    """
    import pty
    import select
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen([str(BIN / "strongroom"), *args], stdin=slave, stdout=slave, stderr=slave,
                            env=clean_env({**env, "COLUMNS": "200"}), cwd=ROOT, start_new_session=True)
    os.close(slave)
    shown = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            if pending and pending[0][0].encode() in shown:
                prompt, answer = pending.pop(0)
                shown = shown.replace(prompt.encode(), prompt.encode() + b"<answered>", 1)
                os.write(master, answer.encode() + b"\n")
            if not ready and proc.poll() is not None:
                break
        code = proc.wait(max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = shown.decode(errors="replace")
    assert "Traceback" not in text, text
    return code, text
