"""The web console (issue 20): server time of each page for one user with 100 exchange accounts (each with a
day of hourly balance snapshots) and 1,000 API keys (``STRONGROOM_MAX_API_KEYS_PER_USER=1000``).

``python -m bench.console [--backend sqlite|postgresql] [--repeats N]``. The app runs in this process and is
called through ``httpx.ASGITransport`` (no socket): the time of a request is the server's time, from the
first byte of the request to the last of the answer, rendering included. Each page is asked for once untimed
(templates compiled, caches warm), then ``repeats`` times; the median and the slowest are reported. The
target: every page within 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

ACCOUNTS = 100
KEYS = 1000
HISTORY_HOURS = 24
TARGET_MS = 50.0


@dataclass
class Outcome:
    verified: bool = True
    can_withdraw: bool | None = False


class AcceptingGateway:
    """Accepts any credentials: the exchange is not what is measured."""

    async def validate(self, info: Any, credentials: dict[str, str]) -> Outcome:
        return Outcome()

    async def aclose(self) -> None:
        pass


def database(backend: str, data_dir: Path) -> tuple[str, str | None]:
    from strongroom.migrations import upgrade

    if backend == "sqlite":
        url, schema = f"sqlite:///{data_dir / 'bench.db'}", None
    else:
        import uuid

        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    upgrade(url)
    return url, schema


async def populate(core: Any) -> tuple[str, str, int, str]:
    """The user, their password, one account id and one key id."""
    from strongroom.balances.valuation import AssetValue
    from strongroom.principal import Principal

    password = "bench-password-1"
    user = core.users.create("bench", password)
    principal = Principal(user_id=user.id, username=user.username, client_ip="127.0.0.1")
    now = datetime.now(UTC)
    first = 0
    for n in range(ACCOUNTS):
        account = await core.accounts.connect(principal, "binance", {"api_key": f"bench-key-{n}",
                                                                     "secret": f"bench-secret-{n}"},
                                              name=f"Account {n}", account_type=None)
        first = first or account.id
        for hour in range(HISTORY_HOURS, 0, -1):
            usd = Decimal(20000 + 37 * n + 11 * hour)
            asset = AssetValue("USDT", usd, Decimal(0), usd, usd, usd / 50000, Decimal(1))
            core.balance_store.record_snapshot(account.id, [asset], now - timedelta(hours=hour))
    key_id = ""
    for n in range(KEYS):
        key, _ = core.api_keys.create(principal, name=f"key {n}", kind="bearer")
        key_id = key_id or key.key_id
    core.api_keys.record_usage({(key_id, int((now - timedelta(hours=h)).timestamp()) // 3600, "ok"): 5 + h
                                for h in range(48)})
    return user.username, password, first, key_id


async def measure(backend: str, repeats: int) -> list[tuple[str, float, float, float]]:
    from strongroom.app import create_app
    from strongroom.core import build_core
    from strongroom.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        url, schema = database(backend, Path(tmp))
        settings = Settings(data_dir=Path(tmp), database_url=url, max_api_keys_per_user=KEYS,
                            argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1, log_level="warning")
        core = build_core(settings, gateway=AcceptingGateway())  # type: ignore[arg-type]
        try:
            username, password, account_id, key_id = await populate(core)
            app = create_app(settings, core=core)
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                page = await client.get("/console/sign-in")
                token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
                signed = await client.post("/console/sign-in",
                                           data={"username": username, "password": password, "csrf": token})
                assert signed.status_code == 303, signed.text[:300]
                pages = ["/console/accounts", f"/console/accounts/{account_id}", "/console/portfolio",
                         "/console/keys", f"/console/keys/{key_id}", "/console/audit", "/console/audit.csv"]
                results = []
                for path in pages:
                    first = await client.get(path)
                    assert first.status_code == 200, (path, first.status_code, first.text[-500:])
                    times = []
                    for _ in range(repeats):
                        start = time.perf_counter()
                        answer = await client.get(path)
                        times.append((time.perf_counter() - start) * 1000)
                        assert answer.status_code == 200
                    results.append((path, statistics.median(times), min(times), max(times)))
                return results
        finally:
            core.close()
            if schema:
                import psycopg

                with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.backend, args.repeats))
    load = os.getloadavg()[0]
    print(f"| page ({args.backend}, {ACCOUNTS} accounts, {KEYS} keys; load average {load:.1f}) "
          f"| median ms | fastest ms | slowest ms | median ≤ {TARGET_MS:.0f} ms |")
    print("|---|---|---|---|---|")
    for path, median, fastest, worst in results:
        verdict = "yes" if median <= TARGET_MS else "**no**"
        print(f"| `GET {path}` | {median:.1f} | {fastest:.1f} | {worst:.1f} | {verdict} |")


if __name__ == "__main__":
    main()
