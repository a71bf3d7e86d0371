"""Balances (issue 9, point 5): a refresh of 50 accounts on one venue vs. the slowest single refresh.

Three processes: the loopback mock exchange, ``strongroom serve`` (SQLite, exchanges pointed at the
mock) and this one. A user of its own with 50 Binance accounts (50 keys registered on the mock), all
loaded once untimed (markets, tickers and the 50 pooled clients warm, as in steady use). Then, in
interleaved rounds, for each simulated exchange latency (the mock's ``slow`` mode delays every
request by that much; 0 = the bare loopback):

* ``single``: ``POST /v1/exchange-accounts/{id}/balances/refresh`` for each of the 50 accounts, one
  after the other (each a live ``fetch_balance``, valuation, a stored snapshot);
* ``portfolio``: ``GET /v1/portfolio?refresh=true``: all 50 refreshed concurrently in one request,
  then the portfolio read back.

The target: a portfolio refresh within 2x the slowest single refresh of the same round. The
server runs with ``STRONGROOM_EXCHANGE_CONCURRENCY_PER_VENUE=64`` and
``STRONGROOM_EXCHANGE_REQUESTS_PER_SECOND=1000`` (see BENCHMARKS.md: with the defaults, 8 calls at a
time and Binance's 20 requests/s, 50 calls cannot take less than ~2 s whatever the code does).
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.fixture import Fixture, settings_env
from bench.gateway import ROOT, Process, _free_port, _wait, start_mock

ACCOUNTS = 50
CONCURRENCY = 64
REQUESTS_PER_SECOND = 1000
TARGET = 2.0


@dataclass
class Round:
    latency_ms: int
    singles: list[float]  # ms, one per account
    portfolio: float  # ms

    @property
    def slowest(self) -> float:
        return max(self.singles)

    @property
    def ratio(self) -> float:
        return self.portfolio / self.slowest


@dataclass
class Result:
    rounds: list[Round] = field(default_factory=list)
    server_env: dict[str, str] = field(default_factory=dict)

    def of(self, latency_ms: int) -> list[Round]:
        return [r for r in self.rounds if r.latency_ms == latency_ms]

    def median(self, latency_ms: int, what: str) -> float:
        rounds = self.of(latency_ms)
        values = {"portfolio": [r.portfolio for r in rounds], "slowest": [r.slowest for r in rounds],
                  "single": [statistics.median(r.singles) for r in rounds], "ratio": [r.ratio for r in rounds]}
        return statistics.median(values[what])

    def spread(self, latency_ms: int) -> str:
        ratios = sorted(r.ratio for r in self.of(latency_ms))
        return f"ratios min {ratios[0]:.2f}, median {statistics.median(ratios):.2f}, max {ratios[-1]:.2f}"


def _bench_user(fixture: Fixture) -> dict[str, str]:
    """A user of its own (other measures connect accounts for the fixture's user); return its bearer header."""
    from strongroom.core import build_core
    from strongroom.users.services import snapshot

    core = build_core(fixture.settings())
    try:
        user = core.users.create(f"balances{secrets.token_hex(4)}", secrets.token_urlsafe(16))
        principal = snapshot(user).principal(client_ip="127.0.0.1", scheme="bench")
        _, secret = core.api_keys.create(principal, name="bench balances", kind="bearer", scopes=["read", "write"])
    finally:
        core.close()
    return {"Authorization": f"Bearer {secret}"}


def _start_server(fixture: Fixture, workdir: Path, mock_url: str, log_level: str) -> tuple[Process, str, dict[str, str]]:
    port = _free_port()
    extra = {
        "STRONGROOM_EXCHANGE_CONCURRENCY_PER_VENUE": str(CONCURRENCY),
        "STRONGROOM_EXCHANGE_REQUESTS_PER_SECOND": str(REQUESTS_PER_SECOND),
    }
    env = {**os.environ, **settings_env(
        fixture.data_dir, STRONGROOM_LOG_LEVEL=log_level,
        STRONGROOM_EXCHANGE_BASE_URLS=f'{{"binance": "{mock_url}", "okx": "{mock_url}"}}', **extra)}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-c", "from strongroom.cli import app; app()", "serve", "--host", "127.0.0.1",
           "--port", str(port)]
    proc = Process(cmd, env, ROOT, workdir / "server-balances.log")
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/healthz", proc.proc, proc.log_path, "strongroom serve (balances)")
    return proc, url, extra


def _ok(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code not in (200, 201):
        raise RuntimeError(f"{what} answered {response.status_code}: {response.text[:300]}")
    return response


def measure(fixture: Fixture, workdir: Path, *, rounds: int, latencies_ms: tuple[int, ...] = (0, 50, 100),
            log_level: str = "info") -> Result:
    """Run ``rounds`` interleaved rounds per latency; return every sample (milliseconds)."""
    headers = _bench_user(fixture)
    mock, mock_url = start_mock(workdir)
    server: Process | None = None
    result = Result()
    try:
        server, url, result.server_env = _start_server(fixture, workdir, mock_url, log_level)
        control = httpx.Client(base_url=mock_url, timeout=60)
        client = httpx.Client(base_url=url, timeout=120, headers=headers)
        ids = []
        for _ in range(ACCOUNTS):
            creds = {"api_key": f"bench-bal-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}
            _ok(control.post("/_mock/accounts", json={"exchange": "binance", **creds}), "mock")
            body = {"exchange": "binance", "name": "bench", "credentials": creds}
            ids.append(_ok(client.post("/v1/exchange-accounts", json=body), "connect").json()["id"])

        def portfolio() -> float:
            started = time.perf_counter()
            response = _ok(client.get("/v1/portfolio", params={"refresh": "true"}), "portfolio")
            elapsed = (time.perf_counter() - started) * 1000
            accounts = response.json()["accounts"]
            if len(accounts) != ACCOUNTS or not all(a["refreshed"] for a in accounts):
                raise RuntimeError(f"portfolio refresh: {[a['error'] for a in accounts if a['error']][:3]}")
            return elapsed

        def single(account_id: int) -> float:
            started = time.perf_counter()
            _ok(client.post(f"/v1/exchange-accounts/{account_id}/balances/refresh"), "refresh")
            return (time.perf_counter() - started) * 1000

        for latency in latencies_ms:
            mode = {"mode": "slow", "delay_seconds": latency / 1000} if latency else {"mode": "normal"}
            _ok(control.post("/_mock/behaviour", json=mode), "behaviour")
            portfolio()  # warm-up: every client pooled, markets and tickers loaded
            single(ids[0])
            for i in range(rounds):
                if i % 2:
                    p = portfolio()
                    singles = [single(a) for a in ids]
                else:
                    singles = [single(a) for a in ids]
                    p = portfolio()
                result.rounds.append(Round(latency, singles, p))
        _ok(control.post("/_mock/behaviour", json={"mode": "normal"}), "behaviour")
        control.close()
        client.close()
    finally:
        if server is not None:
            server.stop()
        mock.stop()
    return result
