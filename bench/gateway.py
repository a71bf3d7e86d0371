"""Exchange calls without sleeps (issue 8, point 6): a connect against the mock vs. bare ccxt.

Three processes: the loopback mock exchange (``python -m devtools.mock_exchange``), ``strongroom serve``
(SQLite, exchanges pointed at the mock), and this one, which times, in interleaved rounds (the order
rotates every round), each with a fresh mock key registered beforehand (untimed):

* ``connect``: ``POST /v1/exchange-accounts`` (bearer key, Binance) over a keep-alive connection; the
  server checks the key with two signed requests (account + apiRestrictions) through the gateway.
* ``local``: the same request for a venue without a live check (BitMEX: stored ``unverified``), i.e.
  everything ``connect`` does but the exchange call (HTTP, authentication, database, audit).
* ``bare``: what those two requests cost with ccxt alone, minus its two sleeps: a new
  ``ccxt.async_support.binance`` client (``enableRateLimit`` off), the two requests, ``close()`` with
  ``timeout_on_exit = 0``. The baseline of the target.
* ``defaults``: the same with ccxt's defaults (its rate limiter on, ``close()`` sleeping 250 ms):
  what the validator paid per connect before the gateway.
* ``bare_ssl``: ``bare`` with one SSL context shared by every client (as the gateway does): ccxt
  otherwise loads the CA bundle for each new client, which is most of ``bare``'s own overhead.
* ``warm``: the two requests on a client that already exists (the floor for any approach).
* ``before`` (``--gateway-before DIR``, a checkout of an older tree): ``connect`` against a second
  server running that tree's code on the same data.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.fixture import Fixture, settings_env

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], log_path: Path, what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.terminate()
            raise RuntimeError(f"{what} did not start:\n" + log_path.read_text()[-2000:])
        time.sleep(0.1)


class Process:
    """A subprocess writing to a log file in ``workdir``, stopped by ``stop()``."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def start_mock(workdir: Path) -> tuple[Process, str]:
    port = _free_port()
    proc = Process([sys.executable, "-m", "devtools.mock_exchange", "--port", str(port), "--log-level", "warning"],
                   dict(os.environ), ROOT, workdir / "mock.log")
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/_mock/stats", proc.proc, proc.log_path, "the mock exchange")
    return proc, url


def start_server(fixture: Fixture, workdir: Path, mock_url: str, src: Path, name: str, log_level: str) -> tuple[
        Process, str]:
    """``strongroom serve`` from the tree at ``src`` (this checkout, or an older one: its code, our data)."""
    port = _free_port()
    env = {**os.environ, **settings_env(
        fixture.data_dir, STRONGROOM_LOG_LEVEL=log_level,
        STRONGROOM_EXCHANGE_BASE_URLS=f'{{"binance": "{mock_url}", "okx": "{mock_url}"}}')}
    env["PYTHONPATH"] = str(src)
    cmd = [sys.executable, "-c", "from strongroom.cli import app; app()", "serve", "--host", "127.0.0.1",
           "--port", str(port)]
    proc = Process(cmd, env, src, workdir / f"server-{name}.log")
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/healthz", proc.proc, proc.log_path, f"strongroom serve ({name})")
    return proc, url


@dataclass
class Result:
    samples: dict[str, list[float]] = field(default_factory=dict)  # kind -> milliseconds, in run order
    order: list[str] = field(default_factory=list)

    def median(self, kind: str) -> float:
        return statistics.median(self.samples[kind])

    def spread(self, kind: str) -> str:
        values = sorted(self.samples[kind])
        return f"min {values[0]:.1f}, median {statistics.median(values):.1f}, max {values[-1]:.1f} ms"


def _new_key(mock_url: str, client: httpx.Client) -> dict[str, str]:
    creds = {"api_key": f"bench-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}
    client.post(mock_url + "/_mock/accounts", json={"exchange": "binance", **creds}).raise_for_status()
    return creds


async def _ccxt_pair(mock_url: str, creds: dict[str, str], *, sleeps: bool, exchange: Any = None,
                     ssl_context: Any = None) -> Any:
    """The two requests of a Binance key check with ccxt; returns the client if ``exchange`` was given."""
    import ccxt.async_support as ccxt

    from strongroom.exchanges.client import rebase_urls

    own = exchange is None
    if own:
        exchange = ccxt.binance({"apiKey": creds["api_key"], "secret": creds["secret"], "enableRateLimit": sleeps})
        exchange.urls["api"] = rebase_urls(exchange.urls["api"], mock_url)
        if ssl_context is not None:
            exchange.ssl_context = ssl_context
        if not sleeps:
            exchange.timeout_on_exit = 0
    try:
        await exchange.private_get_account()
        await exchange.sapi_get_account_apirestrictions()
    finally:
        if own:
            await exchange.close()
    return exchange


def measure(fixture: Fixture, workdir: Path, *, rounds: int, before: Path | None = None,
            log_level: str = "info") -> Result:
    """Run the interleaved rounds; return every sample (milliseconds)."""
    import ssl

    import ccxt.async_support as ccxt
    from certifi import where

    from strongroom.exchanges.client import rebase_urls

    shared_ssl = ssl.create_default_context(cafile=where())
    bearer = fixture.credentials["bearer"].headers()
    mock, mock_url = start_mock(workdir)
    servers: dict[str, tuple[Process, str]] = {}
    loop = asyncio.new_event_loop()
    warm = None
    result = Result()
    try:
        servers["connect"] = start_server(fixture, workdir, mock_url, ROOT, "current", log_level)
        if before is not None:
            servers["before"] = start_server(fixture, workdir, mock_url, before.resolve(), "before", log_level)
        control = httpx.Client(timeout=30)
        clients = {kind: httpx.Client(base_url=url, timeout=30) for kind, (_, url) in servers.items()}
        warm_creds = _new_key(mock_url, control)
        warm = ccxt.binance({"apiKey": warm_creds["api_key"], "secret": warm_creds["secret"],
                             "enableRateLimit": False})
        warm.urls["api"] = rebase_urls(warm.urls["api"], mock_url)
        warm.timeout_on_exit = 0

        def connect(kind: str) -> float:
            local = kind == "local"
            if local:
                creds = {"api_key": f"bench-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}
            else:
                creds = _new_key(mock_url, control)
            body = {"exchange": "bitmex" if local else "binance", "name": "bench", "credentials": creds}
            started = time.perf_counter()
            response = clients["connect" if local else kind].post("/v1/exchange-accounts", json=body, headers=bearer)
            elapsed = (time.perf_counter() - started) * 1000
            expected = "unverified" if local else "active"
            if response.status_code != 201 or response.json().get("status") != expected:
                raise RuntimeError(f"{kind}: connect answered {response.status_code}: {response.text[:300]}")
            return elapsed

        def direct(kind: str) -> float:
            creds = _new_key(mock_url, control)
            started = time.perf_counter()
            if kind == "warm":
                loop.run_until_complete(_ccxt_pair(mock_url, creds, sleeps=False, exchange=warm))
            elif kind == "bare_ssl":
                loop.run_until_complete(_ccxt_pair(mock_url, creds, sleeps=False, ssl_context=shared_ssl))
            else:
                loop.run_until_complete(_ccxt_pair(mock_url, creds, sleeps=kind == "defaults"))
            return (time.perf_counter() - started) * 1000

        kinds = [*servers, "local", "bare", "bare_ssl", "defaults", "warm"]
        runners = {kind: (connect if kind in (*servers, "local") else direct) for kind in kinds}
        for kind in kinds:  # warm-up: ccxt imported in every process, first connections made
            for _ in range(3):
                runners[kind](kind)
        for i in range(rounds):
            order = kinds[i % len(kinds):] + kinds[:i % len(kinds)]
            for kind in order:
                result.samples.setdefault(kind, []).append(runners[kind](kind))
                result.order.append(kind)
        control.close()
        for c in clients.values():
            c.close()
    finally:
        if warm is not None:
            loop.run_until_complete(warm.close())
        loop.close()
        for proc, _ in servers.values():
            proc.stop()
        mock.stop()
    return result
