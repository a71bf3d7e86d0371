"""Issue 21 (Done when): the master-key work of a balance refresh and of a key verification with each
key provider, data-key cache on (and off, for scale), against the key file: ``python -m bench.keyproviders``.

In-process, on a temporary SQLite database, per provider (file; pkcs11 on a SoftHSM2 token; aws-kms on
moto's server on loopback, started here):

- balance refresh: opening an exchange account's sealed credentials (``Vault.open_account_credentials``:
  unwrap the data key, decrypt), what a refresh does before it calls the exchange;
- key verification: opening an HMAC key's sealed secret and computing the request's HMAC (what a
  verification does when the key's record is not in the auth cache), and a bearer key's hash.

Each figure is the median of 5 runs of ``N`` operations over 50 records (round robin), after one warm
pass (cache off: ``N_UNCACHED`` operations). The target: each provider ÷ file ≤ 1.2 with the cache on. Needs SoftHSM2 (``softhsm2``) and
``moto[server]`` (requirements-test.txt); a provider that cannot run is reported as skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

N = 2000
N_UNCACHED = 200  # every operation a round trip to the HSM or KMS
RECORDS = 50
TARGET = 1.2
SOFTHSM = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")


class AnyKey:
    async def validate(self, info: Any, credentials: Any) -> Any:
        class Outcome:
            verified = True
            can_withdraw = False

        return Outcome()

    async def aclose(self) -> None:
        pass


def softhsm(tmp: Path) -> dict[str, str] | None:
    library = next((lib for lib in SOFTHSM if Path(lib).exists()), None)
    util = shutil.which("softhsm2-util")
    if library is None or util is None:
        return None
    (tmp / "tokens").mkdir()
    conf = tmp / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run([util, "--init-token", "--free", "--label", "bench", "--pin", "1234", "--so-pin", "5678"],
                   check=True, capture_output=True)
    return {"key_provider": "pkcs11", "pkcs11_library": library, "pkcs11_token_label": "bench", "pkcs11_pin": "1234"}


def moto() -> tuple[subprocess.Popen[bytes], dict[str, str]] | None:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    return proc, {"key_provider": "aws-kms", "aws_kms_region": "us-east-1",
                  "aws_kms_endpoint_url": f"http://127.0.0.1:{port}"}


def median_us(op: Callable[[int], Any], n: int = N) -> float:
    for i in range(RECORDS):
        op(i)  # warm: every data key unwrapped once (cached when the cache is on)
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for i in range(n):
            op(i)
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(runs)


def measure(settings: dict[str, Any], tmp: Path, cache: bool) -> dict[str, float]:
    from sqlalchemy import select

    from strongroom.core import build_core
    from strongroom.migrations import upgrade
    from strongroom.models import ApiKey, ExchangeAccount
    from strongroom.principal import Principal
    from strongroom.settings import Settings

    url = f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}"
    upgrade(url)
    core = build_core(Settings(data_dir=tmp / uuid.uuid4().hex, database_url=url, argon2_time_cost=1,
                               argon2_memory_kib=1024, argon2_parallelism=1,
                               **({} if cache else {"dek_cache_size": 0}), **settings), gateway=AnyKey())
    try:
        user = core.users.create(f"b{uuid.uuid4().hex[:8]}", "password-123")
        principal = Principal(user_id=user.id, username=user.username, client_ip="bench")
        for i in range(RECORDS):
            asyncio.run(core.accounts.connect(principal, "binance", {"api_key": f"k{i}-{uuid.uuid4().hex}",
                                                                     "secret": uuid.uuid4().hex}, name=f"a{i}"))
            core.api_keys.create(principal, name=f"h{i}", kind="hmac")
        with core.db.session() as session:
            accounts = list(session.scalars(select(ExchangeAccount)))
            keys = list(session.scalars(select(ApiKey).where(ApiKey.kind == "hmac")))
            session.expunge_all()
        message = b"1700000000000GET/v1/me"

        def refresh(i: int) -> Any:
            return core.vault.open_account_credentials(accounts[i % RECORDS])

        def verify(i: int) -> Any:
            secret = core.vault.open_key_secret(keys[i % RECORDS])["current"]
            return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()

        def bearer(i: int) -> Any:
            return core.hasher.token(f"sr_0123456789abcdefghijklmnopqrst{i:06d}")

        n = N if cache else N_UNCACHED
        return {"balance refresh (open credentials)": median_us(refresh, n),
                "key verification (HMAC key, record not cached)": median_us(verify, n),
                "key verification (bearer hash)": median_us(bearer, n)}
    finally:
        core.close()


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="strongroom-bench-keys-"))
    providers: dict[str, dict[str, Any] | None] = {"file": {}, "pkcs11": softhsm(tmp)}
    server = moto()
    providers["aws-kms"] = server[1] if server else None
    try:
        results: dict[tuple[str, bool], dict[str, float]] = {}
        for name, settings in providers.items():
            if settings is None:
                print(f"{name}: SKIPPED (not installed)")
                continue
            for cache in (True, False):
                results[(name, cache)] = measure(settings, tmp, cache)
        rows = ["| operation | provider | cache on µs | ÷ file | cache off µs | ÷ file |", "|---|---|---|---|---|---|"]
        verdict = True
        for op in results[("file", True)]:
            for name in providers:
                if (name, True) not in results:
                    continue
                on, off = results[(name, True)][op], results[(name, False)][op]
                ratio_on = on / results[("file", True)][op]
                ratio_off = off / results[("file", False)][op]
                verdict &= ratio_on <= TARGET
                rows.append(f"| {op} | {name} | {on:.1f} | {ratio_on:.2f} | {off:.1f} | {ratio_off:.2f} |")
        print("\n".join(rows))
        print(f"\ntarget: every provider ÷ file ≤ {TARGET} with the cache on: {'met' if verdict else 'NOT met'}")
        return 0 if verdict else 1
    finally:
        if server:
            server[0].terminate()
            server[0].wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
