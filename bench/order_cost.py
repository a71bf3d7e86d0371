"""Order placement's own cost, in process: CPU time and instructions per placement through
``TradingService.submit`` vs. a bare ccxt ``create_order`` and the gateway's, against the same mock exchange.

``python -m bench.order_cost [--orders N] [--callgrind] [--profile FILE] [--mock URL]``

The mock runs in its own process (its work is not counted). In this process: a core on a throw-away SQLite data
dir (bench.fixture, migrated, WAL), a Binance account connected with a funded mock key, an empty (permissive)
account policy set as its owner; a bearer key holding ``trade`` places the orders (a resting limit buy, a fresh
client order id each, as bench/orders.py). Sides, interleaved, in one event loop:

* ``submit``: ``core.trading.submit`` (everything but HTTP and authentication: the admission's transaction, the
  gateway's ``create_order``, the answer recorded);
* ``gateway``: ``ExchangeGateway.create_order`` alone (pooled client, lanes, the answer parsed);
* ``bare``: ``ccxt.async_support.binance.create_order`` on a warm client (markets loaded, no rate limit).

Default: wall time and this process's CPU time (every thread: the database work runs in anyio's worker threads)
per placement, medians of ``--orders`` each. CPU time does not count waiting for a busy machine's cores, unlike
wall time. ``--callgrind``: instructions per placement (callgrind ``Ir``, independent of the machine's load):
each side runs a batch of N1 and of N2 placements inside ``sys.call_tracing`` (what callgrind collects in; the
database work runs inline on the event loop's thread then, so that nothing is counted outside the batch),
(Ir(N2) - Ir(N1)) / (N2 - N1). ``--profile FILE``: cProfile of ``submit`` (inline) written to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

SIDES = ("submit", "gateway", "bare")


class Setup:
    """The core, the principal placing orders, its account, the gateway and a bare ccxt client."""

    def __init__(self, mock_url: str) -> None:
        self.mock_url = mock_url

    async def open(self) -> None:
        from bench.fixture import Fixture
        from bench.order_gateway import bare_client, new_funded_key
        from strongroom.core import build_core
        from strongroom.enums import AuthMethod
        from strongroom.exchanges.catalogue import get_catalogue
        from strongroom.models import User
        from strongroom.principal import Principal
        from strongroom.users.services import snapshot

        self.fixture = Fixture.create()
        urls = {"binance": self.mock_url, "okx": self.mock_url}
        self.core = build_core(self.fixture.settings(exchange_base_urls=urls, exchange_requests_per_second=100000))
        with self.core.db.session() as session:
            user = session.get(User, self.fixture.user_id)
            assert user is not None
            owner = snapshot(user).principal(client_ip="127.0.0.1", scheme=AuthMethod.CLI)
        account = await self.core.accounts.connect(owner, "binance", new_funded_key(self.mock_url))
        await self.core.trading.set_account_policy(owner, account.id, {})
        key, _ = self.core.api_keys.create(owner, name="bench trade", kind="bearer", scopes=["read", "write", "trade"])
        self.principal = Principal(user_id=owner.user_id, username=owner.username, key_id=key.key_id,
                                   scopes=frozenset(key.scopes), client_ip="127.0.0.1", scheme=AuthMethod.BEARER_KEY)
        self.account_id = account.id
        self.gateway_creds = new_funded_key(self.mock_url)
        self.info = get_catalogue().get("binance")
        self.bare = await bare_client(self.mock_url, new_funded_key(self.mock_url))

    async def close(self) -> None:
        await self.bare.close()
        await self.core.gateway.aclose()
        self.core.close()
        self.fixture.cleanup()

    def call(self, side: str) -> Callable[[], Awaitable[Any]]:
        from bench.order_gateway import bare_create_order, gateway_create_order
        from strongroom.trading import OrderRequest

        cid = side[0] + uuid.uuid4().hex[:24]
        if side == "submit":
            request = OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount="0.001", price="30000",
                                   client_order_id=cid)

            async def submit() -> None:
                done = await self.core.trading.submit(self.principal, self.account_id, request)
                assert done.order.status == "open", done.order.status
            return submit
        if side == "gateway":
            return lambda: gateway_create_order(self.core.gateway, self.info, self.gateway_creds, cid)
        return lambda: bare_create_order(self.bare, cid)


def inline_threads() -> None:
    """Run ``anyio.to_thread.run_sync`` on the calling thread (callgrind and cProfile see one thread)."""
    import anyio.to_thread

    async def run_sync(func: Callable[..., Any], *args: Any, **_: Any) -> Any:
        return func(*args)

    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]


async def timed(setup: Setup, orders: int, warmup: int = 10) -> dict[str, dict[str, float]]:
    """Return {side: {"wall_ms": median, "cpu_ms": median}} over ``orders`` interleaved placements each."""
    wall: dict[str, list[float]] = {s: [] for s in SIDES}
    cpu: dict[str, list[float]] = {s: [] for s in SIDES}
    for n in range(warmup + orders):
        sides = SIDES[n % 3:] + SIDES[:n % 3]
        for side in sides:
            call = setup.call(side)
            c0, w0 = time.process_time(), time.perf_counter()
            await call()
            w1, c1 = time.perf_counter(), time.process_time()
            if n >= warmup:
                wall[side].append((w1 - w0) * 1000)
                cpu[side].append((c1 - c0) * 1000)
    return {s: {"wall_ms": statistics.median(wall[s]), "cpu_ms": statistics.median(cpu[s])} for s in SIDES}


def counted(setup: Setup, loop: asyncio.AbstractEventLoop, n1: int, n2: int) -> list[str]:
    """Run a batch of ``n1`` and of ``n2`` placements per side inside ``sys.call_tracing``; return their labels
    in the order callgrind dumps them."""
    order: list[str] = []

    def batch(calls: list[Callable[[], Awaitable[Any]]]) -> None:
        async def run() -> None:
            for call in calls:
                await call()
        loop.run_until_complete(run())

    for side in SIDES:
        for _ in range(5):
            loop.run_until_complete(setup.call(side)())
        for n in (n1, n2):
            calls = [setup.call(side) for _ in range(n)]
            gc.collect()
            gc.disable()
            sys.call_tracing(batch, (calls,))
            gc.enable()
            order.append(f"{side}:{n}")
    return order


def _child(argv: list[str]) -> int:
    """Inside valgrind: ``--child MOCK_URL N1 N2 ORDER_FILE``."""
    mock_url, n1, n2, order_file = argv[0], int(argv[1]), int(argv[2]), Path(argv[3])
    inline_threads()
    loop = asyncio.new_event_loop()
    setup = Setup(mock_url)
    loop.run_until_complete(setup.open())
    try:
        order_file.write_text(json.dumps(counted(setup, loop, n1, n2)))
    finally:
        loop.run_until_complete(setup.close())
    return 0


def callgrind(mock_url: str, n1: int, n2: int) -> dict[str, float]:
    """Return {side: instructions per placement} from one valgrind run of this module."""
    from bench.callgrind import _total_ir

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="strongroom-cg-orders-") as tmp:
        work = Path(tmp)
        out_file, order_file = work / "callgrind.out", work / "order.json"
        cmd = [valgrind, "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=sys_call_tracing",
               "--dump-after=sys_call_tracing", f"--callgrind-out-file={out_file}",
               sys.executable, "-m", "bench.order_cost", "--child", mock_url, str(n1), str(n2), str(order_file)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        result = subprocess.run(cmd, check=False, cwd=Path(__file__).resolve().parent.parent, env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"callgrind run failed ({result.returncode}):\n{result.stderr[-3000:]}")
        order = json.loads(order_file.read_text())
        parts = sorted(work.glob("callgrind.out.*"), key=lambda p: int(p.suffix.lstrip(".")))
        counts: dict[str, dict[int, int]] = {}
        for label, part in zip(order, parts, strict=False):
            side, n = label.split(":")
            counts.setdefault(side, {})[int(n)] = _total_ir(part)
    return {side: (c[n2] - c[n1]) / (n2 - n1) for side, c in counts.items()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.order_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=200, help="timed placements per side (default 200)")
    parser.add_argument("--callgrind", action="store_true", help="instructions per placement instead of times")
    parser.add_argument("--n1", type=int, default=10)
    parser.add_argument("--n2", type=int, default=30)
    parser.add_argument("--profile", type=Path, help="write a cProfile of submit (inline) to this file")
    parser.add_argument("--mock", help="a running mock's URL (default: start one)")
    args = parser.parse_args(argv)
    mock = None
    url = args.mock
    if url is None:
        from bench.gateway import start_mock

        mock, url = start_mock(Path(tempfile.mkdtemp(prefix="bench-order-cost-")))
    try:
        if args.callgrind:
            for side, ir in callgrind(url, args.n1, args.n2).items():
                print(f"{side:8} {ir / 1e6:8.2f} M instructions per placement")
            return 0
        if args.profile:
            inline_threads()
        setup = Setup(url)

        async def run() -> dict[str, dict[str, float]]:
            await setup.open()
            try:
                if args.profile:
                    for _ in range(10):
                        await setup.call("submit")()
                    profiler = cProfile.Profile()
                    for _ in range(args.orders):
                        call = setup.call("submit")
                        profiler.enable()
                        await call()
                        profiler.disable()
                    profiler.dump_stats(args.profile)
                    return {}
                return await timed(setup, args.orders)
            finally:
                await setup.close()

        found = asyncio.run(run())
        for side, figures in found.items():
            print(f"{side:8} wall p50 {figures['wall_ms']:6.2f} ms   cpu p50 {figures['cpu_ms']:6.2f} ms")
    finally:
        if mock is not None:
            mock.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
