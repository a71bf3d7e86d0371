"""The ``strongroom`` entry point (strongroom/launch.py): a plain ``strongroom serve`` starts without the
command line (Typer); everything else goes to the command line. Both ways answer alike: the same refusal
on stderr and the same exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.liveserver import free_port
from strongroom.launch import serve_options

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("args", "options"), [
    (["serve"], {"host": None, "port": None, "workers": 1}),
    (["serve", "--host", "0.0.0.0", "--port", "8080"], {"host": "0.0.0.0", "port": 8080, "workers": 1}),
    (["serve", "--port=1", "--workers=64", "--port", "65535"], {"host": None, "port": 65535, "workers": 64}),
])
def test_a_plain_serve_is_started_here(args: list[str], options: dict[str, object]) -> None:
    assert serve_options(args) == options


@pytest.mark.parametrize("args", [
    [], ["users", "list"], ["--version"], ["serve", "--help"], ["serve", "-h"], ["serve", "--prt", "80"],
    ["serve", "--po", "80"], ["serve", "--port", "0"], ["serve", "--port", "65536"], ["serve", "--port", "http"],
    ["serve", "--workers", "0"], ["serve", "--workers", "65"], ["serve", "--port"], ["serve", "extra"],
    ["db", "serve"],
])
def test_anything_else_goes_to_the_command_line(args: list[str]) -> None:
    assert serve_options(args) is None


def run(module: str, args: list[str], env: dict[str, str], cwd: Path,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    return subprocess.run([sys.executable, "-m", module, *args], env={**clean, "PYTHONPATH": str(ROOT), **env},
                          cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(("variable", "value"), [("STRONGROOM_PORT", "70000"), ("STRONGROOM_LOG_LEVEL", "loud"),
                                                 ("STRONGROOM_DATABASE_URL", "hunter2-is-my-password")])
def test_a_refused_serve_reads_as_the_command_lines(tmp_path: Path, variable: str, value: str) -> None:
    env = {"STRONGROOM_DATA_DIR": str(tmp_path / "data"), variable: value}
    fast = run("strongroom", ["serve", "--port", "8123"], env, tmp_path)
    typer = run("strongroom.cli", ["serve", "--port", "8123"], env, tmp_path)
    assert fast.returncode == typer.returncode == 2
    assert fast.stderr == typer.stderr and fast.stderr.startswith(f"error: {variable}")
    assert "Traceback" not in fast.stderr and value not in fast.stderr
    assert not (tmp_path / "data").exists()  # nothing created for a refused start


@pytest.mark.slow  # starts `strongroom serve` or the command in subprocesses: not the quick loop
def test_a_serve_refused_for_its_master_key_reads_as_the_command_lines(tmp_path: Path) -> None:
    env = {"STRONGROOM_DATA_DIR": str(tmp_path / "data")}
    assert run("strongroom", ["db", "upgrade"], env, tmp_path).returncode == 0
    assert run("strongroom", ["users", "create", "dave", "--password-stdin"], env, tmp_path,
               stdin="a-long-password\n").returncode == 0
    assert run("strongroom", ["keys", "create", "--user", "dave", "--name", "k", "--kind", "hmac"], env,
               tmp_path).returncode == 0  # something sealed with the master key
    (tmp_path / "data" / "master.key").unlink()
    port = str(free_port())  # (never bound: the start is refused first)
    fast = run("strongroom", ["serve", "--port", port], env, tmp_path)
    typer = run("strongroom.cli", ["serve", "--port", port], env, tmp_path)
    assert fast.returncode == typer.returncode == 1
    assert fast.stderr == typer.stderr and fast.stderr.startswith("error: the master key file")
    assert not (tmp_path / "data" / "master.key").exists()


# runs `strongroom serve` as the entry point does, with uvicorn.run replaced by a report of the collector's state
GC_AT_SERVE = """import gc, json, sys
import uvicorn
def report(app, **options):
    print(json.dumps({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects()),
                      "app": type(app).__name__ if not isinstance(app, str) else app}))
uvicorn.run = report
sys.argv = ["strongroom", "serve"] + sys.argv[1:]
from strongroom.launch import main
main()
"""


@pytest.mark.slow  # starts `strongroom serve` in subprocesses: not the quick loop
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_starts_without_collecting_and_serves_with_collection_on(tmp_path: Path, workers: str) -> None:
    """Start-up runs with cyclic garbage collection off; before serving (one process, or the supervisor of
    workers), what it built is frozen out of the collector's reach and collection is on again: a server left
    without it would keep every reference cycle its requests make."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    done = subprocess.run([sys.executable, "-c", GC_AT_SERVE, "--port", "8123", "--workers", workers],
                          env={**clean, "PYTHONPATH": str(ROOT), "STRONGROOM_DATA_DIR": str(tmp_path / "data")},
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state["enabled"] is True
    assert state["frozen"] > 50_000 > state["tracked"]  # start-up's objects frozen, not left to be scanned
    assert state["app"] == {"1": "FastAPI", "2": "strongroom.app:worker_app"}[workers]
    if workers == "2":  # and a worker (a fresh process) freezes what it built before serving
        worker = subprocess.run([sys.executable, "-c", ("import gc\nfrom strongroom.app import worker_app\n"
                                 "worker_app()\nprint(gc.isenabled(), gc.get_freeze_count())")],
                                env={**clean, "PYTHONPATH": str(ROOT), "STRONGROOM_DATA_DIR": str(tmp_path / "data")},
                                cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
        assert worker.returncode == 0, worker.stderr
        enabled, frozen = worker.stdout.split()
        assert enabled == "True" and int(frozen) > 50_000
