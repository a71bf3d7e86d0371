"""What a cold start imports (issue 23 §4): serving on SQLite loads only what serving needs. Checked
in a fresh interpreter on a migrated SQLite data dir: what ``strongroom serve`` does before serving
(``import strongroom.app``, the data dir checked, the core built, the app created), then ``sys.modules`` must hold none of the modules only other set-ups need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# imported only by the set-ups that need them (PostgreSQL, Redis, a connect, the console, a migration)
NOT_AT_START = ("psycopg", "sqlalchemy.dialects.postgresql", "redis", "ccxt", "jinja2", "strongroom.console",
                "alembic", "strongroom.migrations")

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


def test_serving_on_sqlite_imports_no_postgresql_redis_ccxt_console_or_alembic(tmp_path: Path) -> None:
    run(MIGRATE, tmp_path)  # a migrated data dir (Alembic runs here, in another process)
    loaded = json.loads(run(SERVE, tmp_path).strip().splitlines()[-1])
    found = sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in NOT_AT_START))
    assert found == []
