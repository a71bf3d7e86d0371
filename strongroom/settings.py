"""All settings in one place: environment variables with the ``STRONGROOM_`` prefix."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STRONGROOM_", extra="ignore")

    # --- storage -----------------------------------------------------------------------
    data_dir: Path = Field(Path("var"), description="Holds the SQLite database and the master key file.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite under data_dir.")
    master_key_file: Path | None = Field(None, description="Default <data_dir>/master.key (created, mode 0600).")
    master_keys: str | None = Field(
        None,
        description='Master keys from the environment instead of a file: JSON {"current": N, "versions": '
        '{"N": "<base64 32 bytes>"}, "pepper": "<base64 32 bytes>"}.',
    )

    # --- exchanges ---------------------------------------------------------------------
    exchange_base_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Operator-only JSON map exchange id -> base URL replacing every API host (mocks, proxies).",
    )
    exchange_timeout_ms: int = Field(10_000, ge=100, le=120_000)
    allow_withdrawal_keys: bool = False
    exchange_concurrency_per_venue: int = Field(
        8, ge=1, le=1000, description="At most this many live exchange calls per venue at once (per process)."
    )
    exchange_requests_per_second: float | None = Field(
        None, gt=0, le=100_000, description="Requests per second per venue; default: ccxt's rateLimit for the venue."
    )
    exchange_client_ttl_seconds: float = Field(
        120.0, ge=1, le=86_400, description="How long a ccxt client (one per venue and key) and markets are reused."
    )
    exchange_price_ttl_seconds: float = Field(
        10.0, ge=0.1, le=3600, description="How long a venue's tickers are reused by every account of that venue."
    )
    balance_key_check_seconds: float = Field(
        3600.0, ge=0, le=30 * 86_400,
        description="A balance refresh checks the key's permissions with the venue (withdrawals: the account is "
        "suspended) when its last check is older than this; 0: on every refresh.",
    )

    # --- auth --------------------------------------------------------------------------
    access_token_ttl_seconds: int = Field(900, ge=30)
    refresh_token_ttl_seconds: int = Field(30 * 24 * 3600, ge=60)
    signature_window_seconds: int = Field(30, ge=1, le=3600)
    key_cache_ttl_seconds: float = Field(0.5, ge=0.0, le=1.0)
    key_cache_size: int = Field(20_000, ge=100, le=10_000_000,
                                description="Entries in each in-memory key/token cache (least recently used out first).")
    last_used_flush_seconds: float = Field(60.0, ge=0.05)
    trusted_proxies: list[str] = Field(default_factory=list, description="CIDRs whose X-Forwarded-For is believed.")
    bearer_key_prefix: str = Field("sr", pattern=r"^[a-z][a-z0-9]{0,15}$")
    max_api_keys_per_user: int = Field(100, ge=1)
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65536, ge=8)
    argon2_parallelism: int = Field(4, ge=1)
    threecommas_unsigned_body_variant: bool = Field(
        False,
        description="3Commas surface: also accept a Signature over path[?query] alone, the body unsigned (what "
        "3Commas' Go SDK sends). Off by default: such a signature does not protect the body.",
    )

    # --- rate limits (``limits`` notation, e.g. "600/minute") --------------------------------
    redis_url: str | None = None
    rate_limit_per_key: str = "1200/minute"
    rate_limit_per_ip: str = "2400/minute"
    login_failures_per_ip: str = "10/minute"
    auth_failures_per_ip: str = Field(
        "60/minute", description="Failed authentications (any scheme, and refused refresh tokens) per client IP "
                                 "before that IP is answered 429 until the window ends.")
    auth_failures_per_key: str = Field(
        "300/minute", description="Failed authentications naming one key id before further failures for that key "
                                  "are answered 429 (its valid requests still pass).")

    # --- HTTP --------------------------------------------------------------------------
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["plain", "json"] = Field("plain", description="plain lines, or one JSON object per line.")
    metrics_enabled: bool = Field(False, description="Serve Prometheus metrics at /metrics.")
    metrics_token: SecretStr | None = Field(
        None, description="If set, /metrics needs `Authorization: Bearer <token>` (scrapers send it).")

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'strongroom.db').resolve()}"

    @property
    def effective_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"


@lru_cache
def get_settings() -> Settings:
    return Settings()
