"""A throw-away Strongroom data dir with one user and one key of every kind, and request signers.

Everything here goes through Strongroom's own services (users, API keys), so the keys are exactly
what ``POST /v1/api-keys`` would have made. Signers build the headers a client would send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

KINDS = ("bearer", "hmac", "rsa", "ed25519")
LABELS = {
    "healthz": "GET /healthz (no auth)",
    "bearer": "bearer key",
    "hmac": "HMAC-SHA256 signed",
    "rsa": "RSA-PSS-2048 signed",
    "ed25519": "Ed25519 signed",
}
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)

# Cheap argon2 (only used to create the bench user) and rate limits far above what one process can
# serve, so the limiter is exercised on every request but never refuses one.
HIGH_LIMIT = "1000000000/minute"
BENCH_SETTINGS = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 1024,
    "argon2_parallelism": 1,
    "rate_limit_per_key": HIGH_LIMIT,
    "rate_limit_per_ip": HIGH_LIMIT,
    "login_failures_per_ip": HIGH_LIMIT,
    "auth_failures_per_ip": HIGH_LIMIT,
    "auth_failures_per_key": HIGH_LIMIT,
}


def settings_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for ``strongroom serve`` matching BENCH_SETTINGS on ``data_dir``."""
    env = {f"STRONGROOM_{k.upper()}": str(v) for k, v in BENCH_SETTINGS.items()}
    env["STRONGROOM_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


@dataclass
class Credential:
    """One platform API key and how a client uses it on ``GET <path>``."""

    kind: str
    key_id: str
    secret: str | None = None  # bearer, hmac
    private_key: object | None = None  # rsa, ed25519 (cryptography private key)

    @property
    def unique(self) -> bool:
        """Signed requests: every request needs its own signature (the server refuses replays)."""
        return self.kind != "bearer"

    def sign(self, method: str, path: str, stamp_ms: int) -> str:
        message = f"{stamp_ms}{method}{path}".encode()
        if self.kind == "hmac":
            return hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()
        if self.kind == "rsa":
            return base64.b64encode(self.private_key.sign(message, PSS, hashes.SHA256())).decode()
        if self.kind == "ed25519":
            return base64.b64encode(self.private_key.sign(message)).decode()
        raise ValueError(self.kind)

    def headers(self, method: str = "GET", path: str = "/v1/me", stamp_ms: int | None = None) -> dict[str, str]:
        """Headers for one request. Bearer: ``Authorization: Bearer``; HMAC: native ``SR-ACCESS-*``
        headers (hex); RSA-PSS and Ed25519: Kalshi's ``KALSHI-ACCESS-*`` headers (base64)."""
        if self.kind == "bearer":
            return {"Authorization": f"Bearer {self.secret}"}
        stamp = stamp_ms if stamp_ms is not None else int(time.time() * 1000)
        signature = self.sign(method, path, stamp)
        prefix = "SR-ACCESS-" if self.kind == "hmac" else "KALSHI-ACCESS-"
        return {prefix + "KEY": self.key_id, prefix + "TIMESTAMP": str(stamp), prefix + "SIGNATURE": signature}


@dataclass
class Fixture:
    """A migrated SQLite data dir holding the bench user and one key per kind."""

    data_dir: Path
    credentials: dict[str, Credential] = field(default_factory=dict)
    user_id: int = 0
    _tmp: Path | None = None

    @classmethod
    def create(cls, root: Path | None = None) -> Fixture:
        from strongroom.core import build_core
        from strongroom.migrations import upgrade
        from strongroom.settings import Settings
        from strongroom.users.services import snapshot

        tmp = Path(tempfile.mkdtemp(prefix="strongroom-bench-", dir=root))
        data_dir = tmp / "data"
        settings = Settings(data_dir=data_dir, **BENCH_SETTINGS)
        data_dir.mkdir(parents=True)
        upgrade(settings.effective_database_url)
        core = build_core(settings)
        try:
            user = core.users.create(f"bench{secrets.token_hex(4)}", secrets.token_urlsafe(16),
                                     usage_level="premier")
            principal = snapshot(user).principal(client_ip="127.0.0.1", scheme="bench")
            scopes = ["read", "write", "delete"]
            creds: dict[str, Credential] = {}
            for kind in ("bearer", "hmac"):
                key, secret = core.api_keys.create(principal, name=f"bench {kind}", kind=kind, scopes=scopes)
                creds[kind] = Credential(kind, key.key_id, secret=secret)
            for kind in ("rsa", "ed25519"):
                key, private_pem = core.api_keys.generate(principal, name=f"bench {kind}", key_type=kind,
                                                          scopes=scopes)
                private = serialization.load_pem_private_key(private_pem.encode(), password=None)
                creds[kind] = Credential(kind, key.key_id, private_key=private)
        finally:
            core.close()
        return cls(data_dir, creds, user.id, tmp)

    def settings(self, **overrides):
        from strongroom.settings import Settings

        return Settings(**{**BENCH_SETTINGS, "data_dir": self.data_dir, **overrides})

    def cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def keep_keys_cached(core) -> None:
    """Make the key caches never lapse (timed loops must not count a database reload)."""
    from cachetools import TTLCache

    auth = core.auth
    auth.records = TTLCache(maxsize=auth.records.maxsize, ttl=float("inf"))
    auth.hash_index = TTLCache(maxsize=auth.hash_index.maxsize, ttl=float("inf"))


def native_schemes(core):
    """The schemes /v1 accepts, in its order."""
    from strongroom.surfaces import native

    return native.surface(core.settings).schemes
