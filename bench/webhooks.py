"""Webhooks (issue 18, Done-when): 10,000 events fanned out to one local receiver, deliveries per second vs. a bare
``httpx.AsyncClient`` loop posting the same bodies; the target is >= 0.5x.

Two processes: a receiver (a minimal asyncio HTTP/1.1 server answering ``200 ok`` to every POST and counting
the distinct ``webhook-id`` headers, so that it is never the bottleneck) and this one.

* ``bare``: one ``httpx.AsyncClient``, one request after the other, the same 10,000 bodies and Standard
  Webhooks headers as Strongroom sends (signed beforehand: only the HTTP is timed).
* ``strongroom``: a fresh, migrated database (SQLite; PostgreSQL too where it answers) with one user and one
  endpoint at the receiver; 10,000 events recorded through ``strongroom.events.record`` (each fanned out to a
  delivery in its own transaction, as the services do; 100 events per transaction, timed apart), then the
  job runner as ``strongroom worker`` runs it (the built-in handlers, default concurrency) is started in this
  process and timed from its start until the database counts 10,000 deliveries ``delivered``. The receiver
  then confirms it got 10,000 distinct webhook-ids.

``python -m bench.webhooks [--events N] [--rounds R]`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

EVENTS = 10_000
TARGET = 0.5
ROOT = Path(__file__).resolve().parents[1]


# --- the receiver (its own process) --------------------------------------------------------------------

def serve_receiver(port_file: str) -> None:
    """Run the counting receiver on a free loopback port; write the port to ``port_file``."""
    ids: set[bytes] = set()
    posts = [0]

    class Http(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end].decode("latin-1")
                lines = head.split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                length = int(headers.get("content-length", "0"))
                if len(self.buffer) < end + 4 + length:
                    return
                self.buffer = self.buffer[end + 4 + length:]
                if lines[0].startswith("GET /count"):
                    body = f"{posts[0]} {len(ids)}".encode()
                else:
                    posts[0] += 1
                    ids.add(headers.get("webhook-id", "").encode())
                    body = b"ok"
                self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: "  # type: ignore[attr-defined]
                                     + str(len(body)).encode() + b"\r\n\r\n" + body)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", 0)
        Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
        await server.serve_forever()

    asyncio.run(main())


@dataclass
class Receiver:
    proc: subprocess.Popen[bytes]
    url: str

    @classmethod
    def start(cls, workdir: Path) -> Receiver:
        port_file = workdir / f"receiver-{secrets.token_hex(4)}.port"
        proc = subprocess.Popen([sys.executable, "-m", "bench.webhooks", "--receiver", str(port_file)], cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bench receiver did not start")
            time.sleep(0.02)
        return cls(proc, f"http://127.0.0.1:{port_file.read_text()}/hooks")

    def count(self) -> tuple[int, int]:
        import httpx

        posts, distinct = httpx.get(self.url.replace("/hooks", "/count"), timeout=10).text.split()
        return int(posts), int(distinct)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# --- the two sides -------------------------------------------------------------------------------------

def bodies(n: int) -> list[tuple[bytes, dict[str, str]]]:
    """``n`` bodies as Strongroom sends them, with their Standard Webhooks headers (HMAC, signed now)."""
    from datetime import UTC, datetime

    from strongroom.enums import WebhookSigning
    from strongroom.webhooks.delivery import body_of
    from strongroom.webhooks.signing import Signer, new_hmac_secret

    signer = Signer(WebhookSigning.HMAC, [new_hmac_secret()])
    now = int(time.time())
    out = []
    for i in range(n):
        msg_id = f"evt_{secrets.token_hex(12)}"
        body = body_of("balances.changed", datetime.now(UTC), {"account_id": i, "total_usd": "31200"})
        out.append((body, {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(now),
                           "webhook-signature": signer.signature(msg_id, now, body)}))
    return out


async def bare(url: str, payloads: list[tuple[bytes, dict[str, str]]]) -> float:
    """Post every payload with one client, one after the other; return the seconds taken."""
    import httpx

    async with httpx.AsyncClient(trust_env=False) as client:
        await client.post(url, content=b"{}")  # the connection made untimed, as the runner's pool is warm
        start = time.perf_counter()
        for body, headers in payloads:
            response = await client.post(url, content=body, headers=headers)
            response.raise_for_status()
        return time.perf_counter() - start


@dataclass
class Side:
    record_seconds: float
    deliver_seconds: float


def strongroom(database_url: str, data_dir: Path, url: str, events: int) -> Side:
    """Record ``events`` events for one endpoint at ``url``, then time the runner delivering them all."""
    from sqlalchemy import func, select

    from bench.fixture import BENCH_SETTINGS
    from strongroom.core import build_core
    from strongroom.enums import DeliveryStatus, EventType
    from strongroom.events import record
    from strongroom.jobs.runner import build_runner
    from strongroom.models import WebhookDelivery
    from strongroom.principal import Principal
    from strongroom.settings import Settings

    settings = Settings(**{**BENCH_SETTINGS, "data_dir": data_dir, "database_url": database_url,
                           "webhook_allow_private": True, "jobs_poll_seconds": 0.2})
    core = build_core(settings)
    try:
        user = core.users.create(f"hooks{secrets.token_hex(4)}", secrets.token_urlsafe(16))
        owner = Principal(user_id=user.id, username=user.username)
        core.webhooks.create(owner, url=url)
        start = time.perf_counter()
        for first in range(0, events, 100):
            with core.db.session() as session:
                for i in range(first, min(events, first + 100)):
                    record(session, EventType.BALANCES_CHANGED, user_id=user.id,
                           data={"account_id": i, "total_usd": "31200"})
        recorded = time.perf_counter() - start

        def delivered() -> int:
            with core.db.session() as session:
                return int(session.scalar(select(func.count()).select_from(WebhookDelivery)
                                          .where(WebhookDelivery.status == DeliveryStatus.DELIVERED)) or 0)

        async def run() -> float:
            runner = build_runner(core)
            begin = time.perf_counter()
            runner.start()
            try:
                while await asyncio.to_thread(delivered) < events:
                    await asyncio.sleep(0.05)
                    if time.perf_counter() - begin > 600:
                        raise RuntimeError("the deliveries did not finish within 10 minutes")
                return time.perf_counter() - begin
            finally:
                await runner.stop()
        
        return Side(recorded, asyncio.run(run()))
    finally:
        core.close()


@dataclass
class Result:
    events: int
    bare: list[float] = field(default_factory=list)  # seconds per round
    ours: dict[str, list[Side]] = field(default_factory=dict)  # by database
    received_ok: dict[str, bool] = field(default_factory=dict)

    def rate(self, seconds: float) -> float:
        return self.events / seconds

    def bare_rate(self) -> float:
        return self.rate(statistics.median(self.bare))

    def our_rate(self, db: str) -> float:
        return self.rate(statistics.median(s.deliver_seconds for s in self.ours[db]))

    def record_rate(self, db: str) -> float:
        return self.rate(statistics.median(s.record_seconds for s in self.ours[db]))


def databases(workdir: Path) -> list[tuple[str, str, object]]:
    """``(name, url, cleanup)`` of the databases measured: SQLite, and PostgreSQL where it answers."""
    sys.path.insert(0, str(ROOT / "tests"))
    from support import drop_pg_schema, new_pg_schema, postgres_available

    from strongroom.migrations import upgrade

    found: list[tuple[str, str, object]] = []
    url = f"sqlite:///{workdir / 'hooks.db'}"
    upgrade(url)
    found.append(("sqlite", url, lambda: None))
    if postgres_available() is None:
        schema, pg_url = new_pg_schema()
        upgrade(pg_url)
        found.append(("postgresql", pg_url, lambda: drop_pg_schema(schema)))
    return found


def measure(workdir: Path, events: int = EVENTS, rounds: int = 3) -> Result:
    """Interleave rounds of the bare loop and of Strongroom on each database; return the timings."""
    result = Result(events)
    receiver = Receiver.start(workdir)
    try:
        payloads = bodies(events)
        for r in range(rounds):
            (workdir / f"round{r}").mkdir(parents=True, exist_ok=True)
            result.bare.append(asyncio.run(bare(receiver.url, payloads)))
            for name, url, cleanup in databases(workdir / f"round{r}"):
                try:
                    before = receiver.count()
                    side = strongroom(url, workdir / f"round{r}" / f"data-{name}", receiver.url, events)
                    after = receiver.count()
                    result.ours.setdefault(name, []).append(side)
                    got = (after[0] - before[0], after[1] - before[1])
                    result.received_ok[name] = result.received_ok.get(name, True) and got == (events, events)
                finally:
                    cleanup()  # type: ignore[operator]
    finally:
        receiver.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    p.add_argument("--receiver", help=argparse.SUPPRESS)
    p.add_argument("--events", type=int, default=EVENTS)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    if args.receiver:
        serve_receiver(args.receiver)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="strongroom-hooks-"))
    result = measure(workdir, args.events, args.rounds)
    print(f"bare httpx loop: {result.bare_rate():,.0f}/s (rounds: {', '.join(f'{s:.2f}' for s in result.bare)} s)")
    for db in result.ours:
        print(f"strongroom {db}: {result.our_rate(db):,.0f}/s = {result.our_rate(db) / result.bare_rate():.2f}x "
              f"(recording {result.record_rate(db):,.0f} events/s; receiver counts ok: {result.received_ok[db]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
