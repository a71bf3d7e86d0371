"""Run under ``valgrind --tool=callgrind`` by bench/callgrind.py; not meant to be run by hand.

A self-contained driver (it imports nothing from ``bench``), so that it can drive the app of
another checkout of Strongroom (``--before``: the landed tree) as well as the peer apps of
bench/peer_apps.py. It builds the app in-process, makes one user with one key of each kind
through the services, then for each request kind: a warm-up, a batch of N1 and a batch of N2
requests, each batch inside ``sys.call_tracing`` (what callgrind collects in and dumps after).
Start-up, warm-up and signing are not counted; subtracting the batches cancels a batch's own cost. The job
runner is off and housekeeping stopped: their timers fire by the clock, which valgrind slows some 50 times, so
they landed in some counted batches and not in others (their work is per second, not per request).

Usage: python bench/cg_app.py TARGET DATA_DIR N1 N2 ORDER_FILE
TARGET: ``strongroom`` (the ``strongroom`` package on sys.path) or ``peer:<name>`` (peer_apps.py).
KINDS (optional, comma-separated): healthz, bearer, hmac, rsa, ed25519, forward (nginx's sub-request to
/v1/auth/forward for a bearer key), healthz_first (last: it reorders).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import hmac
import importlib.util
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
HIGH = "1000000000/minute"
_DONE = {"type": "http.request", "body": b"", "more_body": False}


def scope(path: str, headers: dict[str, str]) -> dict[str, Any]:
    raw = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": raw, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }


async def _receive() -> dict[str, Any]:
    return _DONE


async def call(app: Any, s: dict[str, Any]) -> int:
    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(s, state={}), _receive, send)
    return status


class Keys:
    """One key per kind and how a client signs GET /v1/me with it."""

    def __init__(self, creds: dict[str, dict[str, Any]]) -> None:
        self.creds = creds
        self.stamp = int(time.time() * 1000) - 3_000_000

    def headers(self, kind: str) -> dict[str, str]:
        c = self.creds[kind]
        if kind == "bearer":
            if c.get("header"):
                return {c["header"]: c["secret"]}
            return {"Authorization": f"Bearer {c['secret']}"}
        self.stamp += 1
        message = f"{self.stamp}GET/v1/me".encode()
        if kind == "hmac":
            sig = hmac.new(c["secret"].encode(), message, hashlib.sha256).hexdigest()
            prefix = "SR-ACCESS-"
        else:
            private = serialization.load_pem_private_key(c["private_pem"].encode(), None)
            raw = private.sign(message, PSS, hashes.SHA256()) if kind == "rsa" else private.sign(message)
            sig, prefix = base64.b64encode(raw).decode(), "KALSHI-ACCESS-"
        return {prefix + "KEY": c["key_id"], prefix + "TIMESTAMP": str(self.stamp), prefix + "SIGNATURE": sig}


def strongroom_app(data_dir: Path) -> tuple[Any, Keys, Any]:
    """The app of the ``strongroom`` on sys.path, with a user and one key per kind; and a closer."""
    from strongroom.app import create_app
    from strongroom.core import build_core
    from strongroom.migrations import upgrade
    from strongroom.settings import Settings
    from strongroom.users.services import snapshot

    # Valgrind makes Python ~50x slower: a long signature window keeps pre-signed requests valid.
    settings = Settings(data_dir=data_dir, argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1,
                        rate_limit_per_key=HIGH, rate_limit_per_ip=HIGH, login_failures_per_ip=HIGH,
                        auth_failures_per_ip=HIGH, auth_failures_per_key=HIGH,
                        signature_window_seconds=3600, key_cache_ttl_seconds=1.0,
                        # no job runner: its timers (and housekeeping's, stopped below) fire by the clock, and
                        # valgrind's ~50x slower clock made them land in some counted batches and not in others
                        **({"jobs": "off"} if "jobs" in Settings.model_fields else {}),
                        **({"trusted_proxies": ["127.0.0.1/32"]} if "forward_plain_status" in Settings.model_fields
                           else {}))
    data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    core = build_core(settings)
    user = core.users.create(f"bench{secrets.token_hex(4)}", secrets.token_urlsafe(16), usage_level="premier")
    principal = snapshot(user).principal(client_ip="127.0.0.1", scheme="cli")  # type: ignore[arg-type]
    creds: dict[str, dict[str, Any]] = {}
    for kind in ("bearer", "hmac"):
        key, secret = core.api_keys.create(principal, name=kind, kind=kind, scopes=["read", "write", "delete"])
        creds[kind] = {"key_id": key.key_id, "secret": secret}
    for kind in ("rsa", "ed25519"):
        key, pem = core.api_keys.generate(principal, name=kind, key_type=kind, scopes=["read", "write", "delete"])
        creds[kind] = {"key_id": key.key_id, "private_pem": pem}
    # The key cache must not lapse mid-batch (valgrind is slow; a reload would count a database read).
    if hasattr(core.auth, "records"):
        from cachetools import TTLCache

        core.auth.records = TTLCache(maxsize=core.auth.records.maxsize, ttl=float("inf"))
        core.auth.hash_index = TTLCache(maxsize=core.auth.hash_index.maxsize, ttl=float("inf"))
    else:  # the landed tree before the architecture step
        core.auth.ttl = float("inf")
    return create_app(settings, core=core), Keys(creds), core.close


def peer_app(name: str) -> tuple[Any, Keys, Any]:
    spec = importlib.util.spec_from_file_location("peer_apps", Path(__file__).with_name("peer_apps.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app, creds = module.build(name)
    return app, Keys(creds), lambda: None


def main(argv: list[str]) -> int:
    target, data_dir, n1, n2, order_file = argv[0], Path(argv[1]), int(argv[2]), int(argv[3]), Path(argv[4])
    kinds = argv[5].split(",") if len(argv) > 5 else ["healthz", "bearer", "hmac", "rsa", "ed25519", "healthz_first"]
    app, keys, close = strongroom_app(data_dir) if target == "strongroom" else peer_app(target.split(":", 1)[1])
    loop = asyncio.new_event_loop()
    order: list[str] = []

    def requests(kind: str, n: int) -> list[dict[str, Any]]:
        if kind in ("healthz", "healthz_first"):
            return [scope("/healthz", {})] * n
        if kind == "forward":  # what the README's nginx block sends to /v1/auth/forward
            forwarded = {"X-Original-Method": "GET", "X-Original-URI": "/orders?limit=5",
                         "X-Forwarded-For": "203.0.113.7", **keys.headers("bearer")}
            return [scope("/v1/auth/forward", forwarded)] * n
        return [scope("/v1/me", keys.headers(kind)) for _ in range(n)]

    def batch(scopes: list[dict[str, Any]]) -> None:
        async def run() -> None:
            for s in scopes:
                status = await call(app, s)
                if status != 200:
                    raise RuntimeError(f"{s['path']} answered {status}")

        loop.run_until_complete(run())

    lifespan = app.router.lifespan_context(app) if hasattr(app, "router") and hasattr(app.router, "lifespan_context") else None
    # this tree builds its surfaces on demand or in a warm-up thread after start-up: built here first, so
    # that no build runs during a counted batch (and the warm-up has nothing left to do)
    for surface in getattr(getattr(app, "state", None), "surfaces", ()):
        surface.load()
    if lifespan is not None:
        loop.run_until_complete(lifespan.__aenter__())
    warm_up = getattr(getattr(app, "state", None), "warm_up", None)
    if warm_up is not None:
        loop.run_until_complete(warm_up)
    housekeeping = getattr(getattr(getattr(getattr(app, "state", None), "core", None), "housekeeping", None), "stop", None)
    if housekeeping is not None:  # its periodic flushes: per second, not per request (see jobs="off" above)
        loop.run_until_complete(housekeeping())
    try:
        for kind in kinds:
            if kind not in ("healthz", "healthz_first", "forward") and kind not in keys.creds:
                continue
            if kind == "healthz_first":  # measured last: /healthz moved to the front of the route list
                routes = app.router.routes
                routes.insert(0, routes.pop(next(i for i, r in enumerate(routes)
                                                 if getattr(r, "path", "") == "/healthz")))
            batch(requests(kind, 30))  # warm-up: first-call costs, key cache
            for n in (n1, n2):
                scopes = requests(kind, n)
                gc.collect()
                gc.disable()  # a collection must not land inside a counted batch
                sys.call_tracing(batch, (scopes,))
                gc.enable()
                order.append(f"{kind}:{n}")
        order_file.write_text(json.dumps(order))
    finally:
        if lifespan is not None:
            loop.run_until_complete(lifespan.__aexit__(None, None, None))
        close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
