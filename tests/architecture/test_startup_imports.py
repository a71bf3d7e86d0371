"""What a cold start imports (issue 23 §4): serving on SQLite loads only what serving needs. Checked
in a fresh interpreter on a migrated SQLite data dir: what ``strongroom serve`` does before serving
(``import strongroom.app``, the data dir checked, the core built, the app created), then ``sys.modules`` must
hold none of the modules only other set-ups need, nor any surface's routes (built on demand); and
``strongroom serve`` itself, through the command's entry point until ``/readyz`` answers, loads none of the
command line (Typer, Rich, the command groups)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devtools.liveserver import free_port

ROOT = Path(__file__).resolve().parents[2]

# imported only by the set-ups that need them (PostgreSQL, Redis, a connect, the console, a migration)
NOT_AT_START = ("psycopg", "sqlalchemy.dialects.postgresql", "redis", "ccxt", "jinja2", "strongroom.console",
                "alembic", "strongroom.migrations")
# the surfaces' routes and wire models: imported when a surface is built (its first request, or the warm-up)
SURFACE_ROUTES = ("strongroom.surfaces.native.auth", "strongroom.surfaces.native.users",
                  "strongroom.surfaces.native.exchanges", "strongroom.surfaces.native.accounts",
                  "strongroom.surfaces.native.balances", "strongroom.surfaces.native.api_keys",
                  "strongroom.surfaces.native.audit", "strongroom.surfaces.native.verify",
                  "strongroom.surfaces.native.schemas", "strongroom.surfaces.kalshi.routes",
                  "strongroom.surfaces.tradingapp.routes", "strongroom.surfaces.tradr.routes",
                  "strongroom.surfaces.threecommas.routes", "strongroom.surfaces.threecommas.models",
                  "strongroom.surfaces.cadenza.routes", "strongroom.surfaces.cadenza.shapes")
# the command line: `strongroom serve` starts without it
COMMAND_LINE = ("typer", "rich", "strongroom.cli")

MIGRATE = """
import sys
from pathlib import Path
from strongroom import datastore
from strongroom.settings import Settings

datastore.prepare(Settings(data_dir=Path(sys.argv[1])))
"""

SERVE = """
import json, sys
from pathlib import Path
from strongroom import datastore
import strongroom.app
from strongroom.core import build_core
from strongroom.settings import Settings

settings = Settings(data_dir=Path(sys.argv[1]))
datastore.prepare(settings)  # what `strongroom serve` does at each start: nothing to migrate now
core = build_core(settings)
strongroom.app.create_app(settings, core=core)
core.close()
print(json.dumps(sorted(sys.modules)))
"""


def run(script: str, tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "data")], check=False, env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


# `strongroom serve` as the console script runs it (strongroom.launch:main), in the main thread; a thread
# waits for /readyz, prints the modules loaded then, and stops the server (SIGINT: a graceful shutdown).
SERVE_COMMAND = """
import faulthandler, http.client, json, os, signal, sys, threading, time

faulthandler.dump_traceback_later(100, exit=True)  # a hang ends with every thread's stack on stderr

port = int(sys.argv[2])

def watch():
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                print(json.dumps(sorted(sys.modules)), flush=True)
                break
        except OSError:
            pass
        time.sleep(0.01)
    else:
        print("no 200 from /readyz within 60 s", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)  # a graceful stop takes a second or two: still here, say what every task awaits
    import asyncio, gc
    for task in [o for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done()]:
        print("pending:", task, file=sys.stderr, flush=True)
        task.print_stack(file=sys.stderr)

threading.Thread(target=watch, daemon=True).start()
sys.argv = ["strongroom", "serve", "--host", "127.0.0.1", "--port", str(port)]
from strongroom.launch import main
main()
"""


def under(loaded: list[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in names))


def test_serving_on_sqlite_imports_no_postgresql_redis_ccxt_console_alembic_or_surface(tmp_path: Path) -> None:
    run(MIGRATE, tmp_path)  # a migrated data dir (Alembic runs here, in another process)
    loaded = json.loads(run(SERVE, tmp_path).strip().splitlines()[-1])
    assert under(loaded, NOT_AT_START) == []
    assert under(loaded, SURFACE_ROUTES) == []
    assert "strongroom.surfaces.native" in loaded  # (the names are right: the packages themselves are there)


def test_strongroom_serve_is_ready_without_the_command_line(tmp_path: Path) -> None:
    run(MIGRATE, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env.update(PYTHONPATH=str(ROOT), STRONGROOM_DATA_DIR=str(tmp_path / "data"), STRONGROOM_LOG_LEVEL="warning")
    out = subprocess.run([sys.executable, "-c", SERVE_COMMAND, "-", str(free_port())], check=False, env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.stdout[-1500:], out.stderr[-6000:])
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "strongroom.app" in loaded and "uvicorn" in loaded
    assert under(loaded, COMMAND_LINE) == []
    assert under(loaded, NOT_AT_START) == []
    assert "First start: created the bootstrap admin" in out.stdout  # what the command line's serve says too
