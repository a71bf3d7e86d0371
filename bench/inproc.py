"""Measure 3: in-process verification time per kind against the bare crypto operation.

``Authenticator.authenticate`` is awaited directly (no HTTP, no framework) with a ``RequestFacts``
as the native surface builds it, on a warm key cache (the record is loaded once; its TTL is not
allowed to lapse while timing, so no database read is in the figure). Signed kinds get a fresh
signature per call, because the replay guard refuses a signature seen before. Bare operations:

- bearer: HMAC-SHA256 of the presented key under the pepper-derived key (what the server stores);
- hmac: HMAC-SHA256 (hex) of ``timestamp + METHOD + path`` under the shared secret;
- rsa: RSA-2048 PSS(SHA-256, MGF1-SHA-256, salt 32) verify;
- ed25519: Ed25519 verify.

As with ``timeit``, the garbage collector is off inside timed loops (for both sides). The target is
``auth <= 2 x bare + 20 us``.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import hashlib
import hmac
import io
import pstats
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from bench.fixture import KINDS, PSS, Credential, Fixture, keep_keys_cached, native_schemes

SHA256 = hashes.SHA256()


@dataclass
class Verification:
    kind: str
    auth_us: float
    bare_us: float
    auth_runs: list[float]
    bare_runs: list[float]

    @property
    def budget_us(self) -> float:
        return 2 * self.bare_us + 20

    @property
    def margin_us(self) -> float:
        return self.budget_us - self.auth_us


def facts_for(cred: Credential, stamp_ms: int | None = None):
    from strongroom.auth import RequestFacts

    headers = {"host": "127.0.0.1:8000", "user-agent": "bench", "accept": "*/*"}
    headers.update({k.lower(): v for k, v in cred.headers(stamp_ms=stamp_ms).items()})
    return RequestFacts(method="GET", path="/v1/me", query="", headers=headers, body=b"", client_ip="127.0.0.1")


def _batch(cred: Credential, n: int, start_ms: int) -> list:
    if not cred.unique:
        one = facts_for(cred)
        return [one] * n
    return [facts_for(cred, start_ms + i) for i in range(n)]


def _bare(cred: Credential, core, n: int) -> float:
    """Seconds per bare operation, over ``n`` distinct messages."""
    now = int(time.time() * 1000)
    messages = [f"{now + i}GET/v1/me".encode() for i in range(n)]
    if cred.kind == "bearer":
        key = core.hasher._token_key
        token = cred.secret.encode()
        items = [token] * n

        def op(x):
            return hmac.new(key, x, hashlib.sha256).hexdigest()
    elif cred.kind == "hmac":
        secret = cred.secret.encode()
        items = messages

        def op(x):
            return hmac.new(secret, x, hashlib.sha256).hexdigest()
    elif cred.kind == "rsa":
        public = cred.private_key.public_key()
        items = [(cred.private_key.sign(m, PSS, SHA256), m) for m in messages]

        def op(x):
            return public.verify(x[0], x[1], PSS, SHA256)
    else:
        public = cred.private_key.public_key()
        items = [(cred.private_key.sign(m), m) for m in messages]

        def op(x):
            return public.verify(x[0], x[1])
    gc.disable()
    try:
        t0 = time.perf_counter()
        for x in items:
            op(x)
        return (time.perf_counter() - t0) / n
    finally:
        gc.enable()


async def _auth(core, batch: list, key_id: str) -> float:
    auth = core.auth
    schemes = native_schemes(core)
    first = await auth.authenticate(batch[0], schemes)
    if first.key_id != key_id:
        raise RuntimeError("authenticated as another key")
    rest = batch[1:]
    gc.disable()
    try:
        t0 = time.perf_counter()
        for facts in rest:
            await auth.authenticate(facts, schemes)
        return (time.perf_counter() - t0) / len(rest)
    finally:
        gc.enable()


def sizes(kind: str, quick: bool) -> int:
    n = {"bearer": 20000, "hmac": 5000, "rsa": 2000, "ed25519": 5000}[kind]  # x repeats <= 45 s of stamps
    return n // 4 if quick else n


def measure(fixture: Fixture, *, repeats: int, quick: bool, profile_dir: Path | None = None) -> dict[str, Verification]:
    from strongroom.core import build_core

    core = build_core(fixture.settings(key_cache_ttl_seconds=1.0))
    out: dict[str, Verification] = {}

    async def main() -> None:
        for kind in KINDS:
            cred = fixture.credentials[kind]
            n = sizes(kind, quick)
            # Unique timestamps 1 ms apart, starting 25 s in the past (the window is +-30 s).
            stamp = int(time.time() * 1000) - 25_000
            keep_keys_cached(core)  # warm cache: no reload while timing
            await core.auth.authenticate(facts_for(cred, stamp), native_schemes(core))  # load the record
            auth_runs, bare_runs = [], []
            for _ in range(repeats):
                bare_runs.append(_bare(cred, core, n) * 1e6)
                stamp = max(stamp + n + 2, int(time.time() * 1000) - 25_000)  # never reuse a timestamp
                batch = _batch(cred, n + 1, stamp)
                auth_runs.append(await _auth(core, batch, cred.key_id) * 1e6)
                await asyncio.sleep(0.05)  # let the limiter's housekeeping run outside the timed loop
            out[kind] = Verification(kind, min(auth_runs), min(bare_runs),
                                     auth_runs, bare_runs)
            if profile_dir is not None:
                stamp = max(stamp + n + 2, int(time.time() * 1000) - 25_000)
                batch = _batch(cred, n + 1, stamp)
                profiler = cProfile.Profile()
                profiler.enable()
                await _auth(core, batch, cred.key_id)
                profiler.disable()
                text = io.StringIO()
                pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
                (profile_dir / f"profile_inproc_{kind}.txt").write_text(text.getvalue())

    try:
        asyncio.run(main())
    finally:
        core.close()
    return out
