"""Run ``strongroom`` commands in fresh processes forked from one that has already imported the command line.

Each run of the ``strongroom`` command costs the tests about a second of interpreter start and imports (Typer,
SQLAlchemy, pydantic, every capability) before the command does anything; the CLI and system tests run it
hundreds of times. A fork server pays that once per test process: a child process (started by the first run,
with an environment holding no ``STRONGROOM_*`` variable) imports :mod:`strongroom.launch`, the command line and
the modules commands load on demand, then forks one process per run. That process is the command as it
would run from the console script: its own pid, its own working directory and environment (only what the test
gives), stdin, stdout and stderr from and to files, ``sys.argv`` as the console script sets it, and the
interpreter's own exit (atexit handlers, non-daemon threads, flushed streams).

What it cannot be is a process that read its environment while importing: nothing in ``strongroom`` reads a
``STRONGROOM_*`` variable at import (``tests/cli/test_forkserver.py`` checks this by running each command both
ways), and the few tests about the installed console script itself (``tests/cli/test_launch.py``, the
pseudo-terminal runs, ``--follow``, commands killed half way) start it with :mod:`subprocess` as before.
``STRONGROOM_TEST_FORKSERVER=0`` turns the fork server off: every run is then a plain subprocess.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from contextlib import suppress
from pathlib import Path

from support import BIN

# What the fork server imports before it forks: the command line and what its commands import on first use.
PRELOAD = ("strongroom.launch", "strongroom.cli", "strongroom.core", "strongroom.serving", "strongroom.datastore",
           "strongroom.app", "strongroom.jobs.runner", "alembic.command", "alembic.runtime.migration",
           "sqlalchemy.dialects.postgresql", "psycopg", "strongroom.services.backups")

SERVER = r'''
import importlib, json, os, signal, socket, sys, traceback

listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
listener.listen(64)
for name in sys.argv[2].split(","):
    importlib.import_module(name)  # a name that does not import fails the start: PRELOAD is kept true
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the server never waits for its children: reaped at once
import gc
gc.collect()
gc.freeze()  # the children's collections leave the server's objects (and their shared pages) alone
print("ready", flush=True)
parent = os.getppid()
listener.settimeout(5)
while True:
    try:
        conn, _ = listener.accept()
    except TimeoutError:
        if os.getppid() != parent:  # the test process is gone (killed: its atexit did not stop this one)
            sys.exit(0)
        continue
    if os.fork() == 0:
        break
    conn.close()

# the child: one command
listener.close()
signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # its own subprocesses are waited for as usual
request = json.loads(conn.makefile("rb").readline())
os.setpgid(0, 0)  # killed with its own subprocesses on a timeout
os.chdir(request["cwd"])
os.environ.clear()
os.environ.update(request["env"])
for fd, (path, mode) in enumerate([(request["stdin"], os.O_RDONLY), (request["stdout"], os.O_WRONLY),
                                   (request["stderr"], os.O_WRONLY)]):
    opened = os.open(path, mode)
    os.dup2(opened, fd)
    os.close(opened)
sys.argv = request["argv"]
conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")


def _status(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


try:
    from strongroom.launch import main

    main()
    code = 0
except SystemExit as exc:
    code = _status(exc.code)
except BaseException:
    traceback.print_exc()
    code = 1
# the interpreter's exit as it matters to a command (atexit handlers, non-daemon threads joined, streams flushed),
# without tearing down every module the server imported (a third of a second each time)
import atexit, threading
threading._shutdown()
atexit._run_exitfuncs()
for stream in (sys.stdout, sys.stderr):
    try:
        stream.flush()
    except Exception:
        code = code or 120
conn.sendall(json.dumps({"code": code}).encode() + b"\n")
os._exit(code)  # the connection closes when this process is gone
'''


class _Server:
    """This test process's fork server (started on first use, stopped at exit)."""

    _lock = threading.Lock()
    _instance: _Server | None = None

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="strongroom-forkserver-")
        self.socket = os.path.join(self.dir, "s")
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
        log = Path(self.dir, "server.log")
        with log.open("wb") as errors:
            self.proc = subprocess.Popen([sys.executable, "-c", SERVER, self.socket, ",".join(PRELOAD)], env=env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                                         cwd=self.dir)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"the fork server did not start: {log.read_text(errors='replace')}")
        atexit.register(self.stop)

    @classmethod
    def get(cls) -> _Server:
        with cls._lock:
            if cls._instance is None or cls._instance.proc.poll() is not None:
                cls._instance = cls()
            return cls._instance

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


def enabled() -> bool:
    return os.environ.get("STRONGROOM_TEST_FORKSERVER", "1") != "0"


def run(args: list[str], *, env: dict[str, str], cwd: Path | str, stdin: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``strongroom *args`` as :func:`subprocess.run` with ``capture_output=True, text=True`` would, in a
    process forked from the fork server (or a plain subprocess when it is off); raises TimeoutExpired."""
    command = [str(BIN / "strongroom"), *args]
    if not enabled():
        return subprocess.run(command, check=False, input=stdin, capture_output=True, text=True, env=env, cwd=cwd,
                              timeout=timeout)
    server = _Server.get()
    with tempfile.TemporaryDirectory(prefix="run-", dir=server.dir) as where:
        paths = {name: os.path.join(where, name) for name in ("stdin", "stdout", "stderr")}
        Path(paths["stdin"]).write_text(stdin or "", encoding="utf-8")
        Path(paths["stdout"]).touch()
        Path(paths["stderr"]).touch()
        request = {"argv": command, "env": env, "cwd": str(cwd), **paths}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(server.socket)
            conn.sendall(json.dumps(request).encode() + b"\n")
            conn.settimeout(timeout)
            reader = conn.makefile("rb")
            pid = code = None
            try:
                for line in reader:  # {"pid": ...}, then {"code": ...}; EOF when the process is gone
                    message = json.loads(line)
                    pid = message.get("pid", pid)
                    code = message.get("code", code)
            except TimeoutError:
                if pid is not None:
                    with suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(command, timeout) from None
        stdout = Path(paths["stdout"]).read_text(encoding="utf-8", errors="replace")
        stderr = Path(paths["stderr"]).read_text(encoding="utf-8", errors="replace")
    return subprocess.CompletedProcess(command, -9 if code is None else code, stdout, stderr)

