"""Informational: time per in-process ASGI request (no sockets, no uvicorn), where the time goes.

Same raw ASGI call loop as the callgrind measure, timed natively: GET /healthz as registered, the
same route moved to the front of the route list, GET /v1/me per key kind, and GET /v1/me with a
bearer key whose ``Authenticator.authenticate`` is replaced by a stub returning the principal --
the difference to the real call is what authentication costs inside a request. Best of repeats,
GC off in the timed loops, key cache kept warm.
"""

from __future__ import annotations

import asyncio
import gc
import time

from bench.cg_app import call, scope
from bench.fixture import KINDS, Fixture, keep_keys_cached, native_schemes


def measure(fixture: Fixture, *, n: int = 1500, repeats: int = 5) -> dict[str, float]:
    from strongroom.app import create_app
    from strongroom.core import build_core

    settings = fixture.settings(key_cache_ttl_seconds=1.0)
    core = build_core(settings)
    app = create_app(settings, core=core)
    loop = asyncio.new_event_loop()
    stamp = int(time.time() * 1000) - 25_000
    out: dict[str, float] = {}

    def requests(kind: str, count: int) -> list[dict]:
        nonlocal stamp
        if kind == "healthz":
            return [scope("/healthz", {})] * count
        cred = fixture.credentials[kind]
        if not cred.unique:
            return [scope("/v1/me", cred.headers())] * count
        batch = []
        for _ in range(count):
            stamp += 1
            batch.append(scope("/v1/me", cred.headers(stamp_ms=stamp)))
        return batch

    async def run(scopes: list[dict]) -> None:
        for s in scopes:
            status = await call(app, s)
            if status != 200:
                raise RuntimeError(f"{s['path']} answered {status}")

    def once(kind: str) -> float:
        batch = requests(kind, n)
        gc.disable()
        try:
            t0 = time.perf_counter()
            loop.run_until_complete(run(batch))
            return (time.perf_counter() - t0) / n * 1e6
        finally:
            gc.enable()

    ctx = app.router.lifespan_context(app)
    loop.run_until_complete(ctx.__aenter__())
    real = core.auth.authenticate
    routes = app.router.routes
    shipped = list(routes)
    first = list(routes)
    first.insert(0, first.pop(next(i for i, r in enumerate(first) if getattr(r, "path", "") == "/healthz")))
    keep_keys_cached(core)
    try:
        for kind in ("healthz", *KINDS):
            loop.run_until_complete(run(requests(kind, 50)))  # warm-up, loads the key records
        principal = loop.run_until_complete(_principal(core, fixture))

        async def stub(facts, schemes=None):
            return principal

        # Cases interleaved within each repeat, best of repeats: drift affects every case alike.
        for _ in range(repeats):
            for case in ("healthz", *KINDS, "bearer_stub", "healthz_first"):
                if case == "bearer_stub":
                    core.auth.authenticate = stub
                if case == "healthz_first":
                    routes[:] = first
                try:
                    took = once(case.removesuffix("_stub").removesuffix("_first"))
                finally:
                    core.auth.authenticate = real
                    routes[:] = shipped
                out[case] = min(out.get(case, float("inf")), took)
    finally:
        loop.run_until_complete(ctx.__aexit__(None, None, None))
        loop.close()
        core.close()
    return out


async def _principal(core, fixture: Fixture):
    from bench.inproc import facts_for

    return await core.auth.authenticate(facts_for(fixture.credentials["bearer"]), native_schemes(core))
