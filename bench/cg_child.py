"""Run under ``valgrind --tool=callgrind`` by bench/callgrind.py; not meant to be run by hand.

Drives the ASGI app in-process with a raw ASGI call loop (no network, no HTTP client): for each
kind, a warm-up, then a batch of N1 and a batch of N2 requests, each batch inside
``sys.call_tracing`` -- the function callgrind is told to collect in (``--toggle-collect``) and to
dump after (``--dump-after``). Start-up, warm-up and request preparation (signing) are not
counted; subtracting the two batches cancels what a batch costs apart from its requests.

Usage: python -m bench.cg_child DATA_DIR N1 N2 ORDER_FILE
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from bench.fixture import KINDS, Credential, Fixture

_DONE = {"type": "http.request", "body": b"", "more_body": False}


def scope(path: str, headers: dict[str, str]) -> dict:
    raw = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": raw, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }


async def _receive() -> dict:
    return _DONE


async def call(app, s: dict) -> int:
    status = 0

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(s, state={}), _receive, send)
    return status


def main(argv: list[str]) -> int:
    from strongroom.app import create_app
    from strongroom.core import build_core

    data_dir, n1, n2, order_file = Path(argv[0]), int(argv[1]), int(argv[2]), Path(argv[3])
    fixture = Fixture(data_dir, json_credentials(data_dir))
    # Valgrind makes Python ~50x slower: a long signature window keeps pre-signed requests valid,
    # and the key cache must not lapse mid-batch (a reload would be a database read in the count).
    settings = fixture.settings(signature_window_seconds=3600, key_cache_ttl_seconds=1.0)
    core = build_core(settings)
    app = create_app(settings, core=core)
    loop = asyncio.new_event_loop()
    order: list[str] = []
    stamp = int(time.time() * 1000) - 3_000_000

    def requests(kind: str, n: int) -> list[dict]:
        nonlocal stamp
        if kind == "healthz":
            return [scope("/healthz", {})] * n
        cred = fixture.credentials[kind]
        if not cred.unique:
            return [scope("/v1/me", cred.headers())] * n
        out = []
        for _ in range(n):
            stamp += 1
            out.append(scope("/v1/me", cred.headers(stamp_ms=stamp)))
        return out

    def batch(scopes: list[dict]) -> None:
        async def run() -> None:
            for s in scopes:
                status = await call(app, s)
                if status != 200:
                    raise RuntimeError(f"{s['path']} answered {status}")

        loop.run_until_complete(run())

    async def lifespan_start():
        ctx = app.router.lifespan_context(app)
        await ctx.__aenter__()
        return ctx

    ctx = loop.run_until_complete(lifespan_start())
    try:
        for kind in ("healthz", *KINDS):
            batch(requests(kind, 30))  # warm-up: first-call costs, key cache
            core.auth.ttl = float("inf")
            for n in (n1, n2):
                scopes = requests(kind, n)
                sys.call_tracing(batch, (scopes,))
                order.append(f"{kind}:{n}")
        # Informational: /healthz is registered after the /v1 routers, so FastAPI walks them before
        # matching it. Moving it to the front of the route list (here only) shows that share.
        routes = app.router.routes
        routes.insert(0, routes.pop(next(i for i, r in enumerate(routes) if getattr(r, "path", "") == "/healthz")))
        batch(requests("healthz", 30))
        for n in (n1, n2):
            sys.call_tracing(batch, (requests("healthz", n),))
            order.append(f"healthz_first:{n}")
        order_file.write_text(json.dumps(order))
    finally:
        loop.run_until_complete(ctx.__aexit__(None, None, None))
        core.close()
    return 0


def json_credentials(data_dir: Path) -> dict[str, Credential]:
    """Credentials saved by bench/callgrind.py next to the data dir."""
    from cryptography.hazmat.primitives import serialization

    raw = json.loads((data_dir.parent / "credentials.json").read_text())
    out = {}
    for kind, c in raw.items():
        private = serialization.load_pem_private_key(c["private_pem"].encode(), None) if c.get("private_pem") else None
        out[kind] = Credential(kind, c["key_id"], secret=c.get("secret"), private_key=private)
    return out


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
