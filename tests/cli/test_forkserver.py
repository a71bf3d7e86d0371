"""The fork server the command-line tests run ``strongroom`` through (tests/support/forkserver.py) answers as the
installed console script does: the same exit status, stdout and stderr for the same arguments, environment,
directory and stdin, whatever the fork server's own environment was when it imported the command line."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from support import BIN, ROOT, forkserver
from support.cli import clean_env

pytestmark = pytest.mark.slow


def _both(args: list[str], env: dict[str, str], stdin: str | None = None) -> tuple[tuple, tuple]:
    forked = forkserver.run(args, env=env, cwd=ROOT, stdin=stdin)
    plain = subprocess.run([str(BIN / "strongroom"), *args], env=env, cwd=ROOT, input=stdin, capture_output=True,
                           text=True, timeout=120, check=False)
    return (forked.returncode, forked.stdout, forked.stderr), (plain.returncode, plain.stdout, plain.stderr)


def test_the_same_answers_as_the_console_script(tmp_path) -> None:
    assert forkserver.enabled(), "STRONGROOM_TEST_FORKSERVER=0: the fork server is not what the CLI tests use"
    env = clean_env({"STRONGROOM_DATA_DIR": str(tmp_path / "data")})
    # nothing there yet: every command refuses in one line; then the installation, then commands on it
    for args in (["--version"], ["users", "list"], ["nonsense"], ["keys", "show", "nope"], ["db", "upgrade"],
                 ["users", "list", "--json"], ["master-key", "status", "--json"], ["audit", "tail", "--json"]):
        forked, plain = _both(args, env)
        if args == ["db", "upgrade"]:  # the first one creates, the second finds it up to date
            assert forked[0] == 0 and "created database" in forked[1], forked
            assert plain[0] == 0 and "up to date" in plain[1], plain
            continue
        assert forked == plain, args
    created, _ = _both(["users", "create", "fork", "--password-stdin", "--json"], env, stdin="a-long-password\n")
    assert created[0] == 0 and '"username": "fork"' in created[1]
    forked, plain = _both(["users", "list", "--json"], env)
    assert forked == plain and '"fork"' in forked[1]
    # the audit records each run's own operator and outcome (uuids and times differ: compare their shape)
    forked, plain = _both(["audit", "tail", "--limit", "1"], env)
    assert forked[0] == plain[0] == 0
    assert re.sub(r"[0-9a-f-]{8,}|\d+", "#", forked[1]) == re.sub(r"[0-9a-f-]{8,}|\d+", "#", plain[1])


def test_a_run_past_its_timeout_is_killed(tmp_path) -> None:
    env = clean_env({"STRONGROOM_DATA_DIR": str(tmp_path / "data")})
    assert forkserver.run(["db", "upgrade"], env=env, cwd=ROOT).returncode == 0
    server = forkserver._Server.get()
    with pytest.raises(subprocess.TimeoutExpired):  # a follow never ends by itself
        forkserver.run(["audit", "tail", "--follow"], env=env, cwd=ROOT, timeout=3)
    # the run was killed (and reaped by the fork server): nothing of it is left
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
    for _ in range(100):
        if not children.read_text().split():
            break
        time.sleep(0.05)
    assert children.read_text().split() == [], "the timed-out run is still running"


def test_a_fork_server_started_with_other_settings_reads_the_runs_own(tmp_path, monkeypatch) -> None:
    """The fork server drops STRONGROOM_* from its own environment; each run has only what it is given."""
    monkeypatch.setenv("STRONGROOM_DATA_DIR", str(tmp_path / "elsewhere"))
    env = clean_env({"STRONGROOM_DATA_DIR": str(tmp_path / "data")})
    assert forkserver.run(["db", "upgrade"], env=env, cwd=ROOT).returncode == 0
    assert (tmp_path / "data").is_dir() and not os.path.exists(tmp_path / "elsewhere")
