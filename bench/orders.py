"""Order placement through Strongroom vs. bare ccxt (issue 19, Done when): p50 latency ratio, target <= 1.2.

Three processes: the loopback mock exchange (``python -m devtools.mock_exchange``), ``strongroom serve``
(SQLite, exchanges pointed at the mock), and this one, which times, in interleaved rounds of ``per_round``
turns, each turn one request of every side, the order of the sides rotating every turn (no side idles
long enough for a keep-alive connection to lapse):

* ``strongroom``: ``POST /v1/exchange-accounts/{id}/orders`` over a keep-alive connection with a bearer key
  holding ``trade``, on a Binance account whose trading policy allows everything (no notional or band rule:
  no ticker is needed), a limit buy of 0.001 BTC/USDT at 30,000 (far below the mock's 50,000: it rests),
  a fresh ``client_order_id`` each. What the server does: authenticate, the idempotency lookup, the venue's
  market rules, the policy check and the ``pending`` row (one transaction), ``create_order`` through the
  gateway's pooled ccxt client, the answer recorded.
* ``bare``: the same order with ccxt alone on a warm client (``ccxt.async_support.binance``, markets loaded,
  ``enableRateLimit`` off, a fresh ``newClientOrderId``): ``await exchange.create_order(...)``. The baseline.
* ``me``: ``GET /v1/me`` with the same key on the same connection: the floor of any authenticated request
  (HTTP, the edge, authentication, usage counting), to tell it apart from what placing adds.

Both sides use their own key on the mock (funded with 10,000,000 USDT so hundreds of resting orders fit).
Between two orders the bench pauses ``pause`` seconds (untimed) so that neither side runs into the
gateway's per-venue request budget (Binance's ccxt ``rateLimit``: 20 requests/s) or the per-key rate
limit: the figure is the latency of one order, not a throughput. ``latency_ms``: the mock delays every
venue answer (a real exchange's round trip; the target is judged on the loopback mock, 0). ``profile``: the
server runs under cProfile (anyio's worker threads too) and its stats are written next to the results.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.fixture import Credential, Fixture, settings_env
from bench.gateway import ROOT, Process, _free_port, _wait, start_mock

ORDER = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.001", "price": "30000"}
FUNDS = {"BTC": {"free": "10"}, "USDT": {"free": "10000000"}}


@dataclass
class Result:
    samples: dict[str, list[float]] = field(default_factory=dict)  # side -> milliseconds, in run order
    profile: Path | None = None

    def median(self, side: str) -> float:
        return statistics.median(self.samples[side])

    def quantile(self, side: str, q: float) -> float:
        values = sorted(self.samples[side])
        return values[min(len(values) - 1, int(q * len(values)))]

    def spread(self, side: str) -> str:
        values = sorted(self.samples[side])
        return (f"n {len(values)}, min {values[0]:.2f}, p50 {statistics.median(values):.2f}, "
                f"p90 {self.quantile(side, 0.9):.2f}, max {values[-1]:.2f} ms")

    def round_ratios(self, per_round: int) -> list[float]:
        """The p50 ratio of each round (how steady the figure is)."""
        a, b = self.samples["strongroom"], self.samples["bare"]
        return [statistics.median(a[i:i + per_round]) / statistics.median(b[i:i + per_round])
                for i in range(0, len(a), per_round)]


def _mock_key(control: httpx.Client, mock_url: str) -> dict[str, str]:
    creds = {"api_key": f"bench-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}
    control.post(mock_url + "/_mock/accounts", json={"exchange": "binance", **creds, "balances": FUNDS}
                 ).raise_for_status()
    return creds


def _trade_key(fixture: Fixture) -> Credential:
    """A bearer key of the bench user holding ``trade`` (the fixture's keys hold read, write, delete)."""
    from strongroom.core import build_core
    from strongroom.models import User
    from strongroom.users.services import snapshot

    core = build_core(fixture.settings())
    try:
        with core.db.session() as session:
            user = session.get(User, fixture.user_id)
            assert user is not None
            principal = snapshot(user).principal(client_ip="127.0.0.1", scheme="bench")
        key, secret = core.api_keys.create(principal, name="bench trade", kind="bearer",
                                           scopes=["read", "write", "trade"])
        return Credential("bearer", key.key_id, secret=secret)
    finally:
        core.close()


def _permissive_policy(fixture: Fixture, account_id: int) -> None:
    """Set the account's trading policy as its owner at the console would (a key may only narrow one)."""
    from strongroom.core import build_core
    from strongroom.enums import AuthMethod
    from strongroom.models import User
    from strongroom.users.services import snapshot

    core = build_core(fixture.settings())
    try:
        with core.db.session() as session:
            user = session.get(User, fixture.user_id)
            assert user is not None
            principal = snapshot(user).principal(client_ip="127.0.0.1", scheme=AuthMethod.CLI)
        asyncio.run(core.trading.set_account_policy(principal, account_id, {}))
    finally:
        core.close()


# ``strongroom serve`` under cProfile: the event loop's thread and every worker thread (database work runs in
# anyio's threads: each call through anyio.to_thread.run_sync is profiled in its thread), merged on exit
PROFILED_SERVE = """
import cProfile, pstats, sys, threading
import anyio.to_thread

port, out = sys.argv[1], sys.argv[2]
profiles = []
local = threading.local()
original = anyio.to_thread.run_sync


async def run_sync(func, *args, **kwargs):
    def profiled(*inner):
        found = getattr(local, "profile", None)
        if found is None:
            found = local.profile = cProfile.Profile()
            profiles.append(found)
        found.enable()
        try:
            return func(*inner)
        finally:
            found.disable()
    return await original(profiled, *args, **kwargs)


anyio.to_thread.run_sync = run_sync
from strongroom.cli import app

sys.argv = ["strongroom", "serve", "--host", "127.0.0.1", "--port", port]
main = cProfile.Profile()
main.enable()
try:
    app()
except SystemExit:
    pass
finally:
    main.disable()
    stats = pstats.Stats(main)
    for found in profiles:
        stats.add(found)
    stats.dump_stats(out)
"""


def start_server(fixture: Fixture, workdir: Path, mock_url: str, log_level: str, profile: Path | None) -> tuple[
        Process, str]:
    """``strongroom serve`` on the fixture's data (under cProfile when ``profile`` is given)."""
    port = _free_port()
    env = {**os.environ, **settings_env(
        fixture.data_dir, STRONGROOM_LOG_LEVEL=log_level,
        STRONGROOM_EXCHANGE_BASE_URLS=f'{{"binance": "{mock_url}", "okx": "{mock_url}"}}')}
    env["PYTHONPATH"] = str(ROOT)
    if profile is None:
        serve = ("import sys; from strongroom.cli import app; "
                 "sys.argv = ['strongroom', 'serve', '--host', '127.0.0.1', '--port', sys.argv[1]]; app()")
        cmd = [sys.executable, "-c", serve, str(port)]
    else:
        script = workdir / "serve_profiled.py"
        script.write_text(PROFILED_SERVE, encoding="utf-8")
        cmd = [sys.executable, str(script), str(port), str(profile)]
    proc = Process(cmd, env, ROOT, workdir / "server-orders.log")
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/healthz", proc.proc, proc.log_path, "strongroom serve (orders)")
    return proc, url


def _stop_gently(proc: Process) -> None:
    """SIGINT first (cProfile writes its stats on a clean exit), then ``stop()``."""
    if proc.proc.poll() is None:
        proc.proc.send_signal(2)
        try:
            proc.proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
    proc.stop()


def measure(fixture: Fixture, workdir: Path, *, rounds: int, per_round: int, pause: float = 0.06,
            log_level: str = "info", profile: Path | None = None, latency_ms: int = 0) -> Result:
    """Run the interleaved rounds; return every sample (milliseconds). ``latency_ms``: the mock answers every
    venue request that much later (its ``slow`` mode), as a real exchange's round trip would."""
    import ccxt.async_support as ccxt

    from strongroom.exchanges.client import rebase_urls

    trader = _trade_key(fixture).headers()
    mock, mock_url = start_mock(workdir)
    server: Process | None = None
    loop = asyncio.new_event_loop()
    exchange: Any = None
    result = Result(profile=profile)
    try:
        server, url = start_server(fixture, workdir, mock_url, log_level, profile)
        control = httpx.Client(timeout=30)
        http = httpx.Client(base_url=url, timeout=30)
        if latency_ms:
            control.post(mock_url + "/_mock/behaviour", json={"mode": "slow", "delay_seconds": latency_ms / 1000}
                         ).raise_for_status()
        creds = _mock_key(control, mock_url)
        connected = http.post("/v1/exchange-accounts", headers=trader,
                              json={"exchange": "binance", "name": "bench orders", "credentials": creds})
        if connected.status_code != 201:
            raise RuntimeError(f"connect answered {connected.status_code}: {connected.text[:300]}")
        account_id = int(connected.json()["id"])
        _permissive_policy(fixture, account_id)
        path = f"/v1/exchange-accounts/{account_id}/orders"

        bare_creds = _mock_key(control, mock_url)
        exchange = ccxt.binance({"apiKey": bare_creds["api_key"], "secret": bare_creds["secret"],
                                 "enableRateLimit": False})
        exchange.urls["api"] = rebase_urls(exchange.urls["api"], mock_url)
        exchange.timeout_on_exit = 0
        loop.run_until_complete(exchange.load_markets())

        def through_strongroom() -> float:
            body = {**ORDER, "client_order_id": f"b{uuid.uuid4().hex[:30]}"}
            started = time.perf_counter()
            response = http.post(path, json=body, headers=trader)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 201 or response.json().get("status") != "open":
                raise RuntimeError(f"placing answered {response.status_code}: {response.text[:300]}")
            return elapsed

        def bare() -> float:
            params = {"newClientOrderId": f"b{uuid.uuid4().hex[:30]}"}
            started = time.perf_counter()
            placed = loop.run_until_complete(exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 30000, params))
            elapsed = (time.perf_counter() - started) * 1000
            if placed.get("status") != "open":
                raise RuntimeError(f"bare ccxt: the order is {placed.get('status')}")
            return elapsed

        def me() -> float:
            started = time.perf_counter()
            response = http.get("/v1/me", headers=trader)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"/v1/me answered {response.status_code}")
            return elapsed

        sides = {"strongroom": through_strongroom, "bare": bare, "me": me}
        for side in sides.values():  # warm-up: first connections, the server's pooled client and markets
            for _ in range(5):
                side()
                time.sleep(pause)
        names = list(sides)
        for i in range(rounds):
            for j in range(per_round):  # one of each side in turn, the order rotating: no side idles for long
                k = (i * per_round + j) % len(names)
                for name in names[k:] + names[:k]:
                    result.samples.setdefault(name, []).append(sides[name]())
                    time.sleep(pause)
        control.close()
        http.close()
    finally:
        if exchange is not None:
            loop.run_until_complete(exchange.close())
        loop.close()
        if server is not None:
            _stop_gently(server)
        mock.stop()
    return result


def report(path: Path, top: int = 25) -> str:
    """The ``top`` functions of a cProfile dump by cumulative time, as text."""
    import io
    import pstats

    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()
