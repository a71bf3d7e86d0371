"""All settings in one place: environment variables with the ``STRONGROOM_`` prefix.

Every bounded setting declares its bounds with ``ge``/``le`` here; :func:`load_settings` turns a
bad value into one line naming the variable and what it accepts (never echoing the value: some
settings carry secrets).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError

ENV_PREFIX = "STRONGROOM_"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
RATE_HINT = "a rate like 600/minute (count ≥ 1 per second, minute, hour or day)"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # --- storage -----------------------------------------------------------------------
    data_dir: Path = Field(Path("var"), description="Holds the SQLite database and the master key file.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite under data_dir.")
    master_key_file: Path | None = Field(None, description="Default <data_dir>/master.key (created, mode 0600).")
    master_keys: str | None = Field(
        None,
        description='Master keys from the environment instead of a file: JSON {"current": N, "versions": '
        '{"N": "<base64 32 bytes>"}, "pepper": "<base64 32 bytes>"}.',
    )

    key_provider: Literal["file", "pkcs11", "aws-kms"] = Field(
        "file", description="Where new master key versions are made and the pepper is kept: the key file (or "
        "STRONGROOM_MASTER_KEYS), an HSM through PKCS#11, or AWS KMS. Other configured sources stay readable.")
    pkcs11_library: str | None = Field(None, description="Path of the PKCS#11 module (e.g. libsofthsm2.so).")
    pkcs11_token_label: str | None = Field(None, description="Label of the PKCS#11 token holding the keys.")
    pkcs11_pin: SecretStr | None = Field(None, description="User PIN of the token (or STRONGROOM_PKCS11_PIN_FILE).")
    pkcs11_pin_file: Path | None = Field(None, description="File holding the token's user PIN.")
    aws_kms_key_id: str | None = Field(
        None, description="KMS key (id, ARN or alias) that the next master key version created in KMS uses; "
        "default: a new key.")
    aws_kms_keys: str | None = Field(
        None, description='KMS keys of versions not named alias/strongroom-kek-v<N>: "1=alias/a,2=arn:...".')
    aws_kms_mac_key_id: str | None = Field(
        None, description="HMAC_256 KMS key holding the pepper; default alias/strongroom-pepper.")
    aws_kms_region: str | None = Field(None, description="AWS region of the keys (default: the AWS one).")
    aws_kms_endpoint_url: str | None = Field(None, description="KMS endpoint (a VPC endpoint, a test server).")
    dek_cache_size: int = Field(
        10_000, ge=0, le=10_000_000, description="Unwrapped data keys kept in memory (0: none).")
    dek_cache_ttl_seconds: float = Field(
        300.0, ge=0, le=86_400, description="How long an unwrapped data key is kept in memory (0: not at all).")

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
    access_token_ttl_seconds: int = Field(900, ge=30, le=24 * 3600)
    refresh_token_ttl_seconds: int = Field(30 * 24 * 3600, ge=60, le=365 * 24 * 3600)
    signature_window_seconds: int = Field(30, ge=1, le=3600)
    key_cache_ttl_seconds: float = Field(0.5, ge=0.0, le=1.0)
    key_cache_size: int = Field(20_000, ge=100, le=10_000_000,
                                description="Entries in each in-memory key/token cache (least recently used out first).")
    last_used_flush_seconds: float = Field(60.0, ge=0.05, le=3600)
    trusted_proxies: list[str] = Field(default_factory=list, description="CIDRs whose X-Forwarded-For is believed.")
    bearer_key_prefix: str = Field("sr", pattern=r"^[a-z][a-z0-9]{0,15}$")
    max_api_keys_per_user: int = Field(100, ge=1, le=100_000)
    public_key_upload_level: Literal["basic", "advanced", "premier", "market_maker"] = Field(
        "basic", description="The usage level a user needs to create a key from their own public key (Kalshi's "
        "surface asks premier, or this if higher).")
    argon2_time_cost: int = Field(3, ge=1, le=100)
    argon2_memory_kib: int = Field(65536, ge=8, le=4 * 1024 * 1024)
    argon2_parallelism: int = Field(4, ge=1, le=64)
    threecommas_unsigned_body_variant: bool = Field(
        False,
        description="3Commas surface: also accept a Signature over path[?query] alone, the body unsigned (what "
        "3Commas' Go SDK sends). Off by default: such a signature does not protect the body.",
    )
    forward_plain_status: bool = Field(
        False, description="/v1/auth/forward answers a rate-limited request 429 (Traefik, Envoy) instead of 403 with "
        "X-Strongroom-Reason: rate_limited (nginx's auth_request passes on only 401 and 403).")
    forward_rules: Path | None = Field(
        None, description="A file of rules 'METHODS PATH-PATTERN SCOPES...' (first match wins): the scopes a "
        "request checked by /v1/auth/forward needs.")

    # --- rate limits (``limits`` notation, e.g. "600/minute") --------------------------------
    redis_url: str | None = None
    rate_limit_per_key: str = "1200/minute"
    rate_limit_per_ip: str = "2400/minute"
    login_failures_per_ip: str = "10/minute"
    auth_failures_per_ip: str = Field(
        "60/minute", description="Failed authentications (any scheme, and refused refresh tokens) per client IP "
                                 "before that IP is answered 429 until the window ends.")
    auth_failure_exempt_networks: list[str] = Field(
        default_factory=list, description="CIDRs of trusted backends whose failed authentications are never "
                                          "counted against a per-IP budget (never answered 429 for them).")
    auth_failures_per_key: str = Field(
        "300/minute", description="Failed authentications naming one key id before further failures for that key "
                                  "are answered 429 (its valid requests still pass).")

    # --- background jobs (strongroom.jobs) ------------------------------------------------
    jobs: Literal["inline", "off"] = Field(
        "inline", description="inline: `serve` runs the job runner in its own process (the embedded default); off: "
        "only `strongroom worker` processes run jobs.")
    jobs_concurrency: int = Field(4, ge=1, le=1000, description="Jobs one runner runs at once (worker: --concurrency).")
    jobs_lease_seconds: float = Field(
        60.0, ge=1, le=86_400, description="A claimed job's lease, renewed while it runs: a dead worker's jobs run "
        "again this long after it died.")
    jobs_poll_seconds: float = Field(
        1.0, ge=0.05, le=3600, description="How often a runner looks for due jobs (PostgreSQL also wakes it by "
        "LISTEN/NOTIFY on enqueue).")
    jobs_stuck_seconds: float = Field(
        300.0, ge=0, le=30 * 86_400, description="/readyz reports jobs: stuck when the oldest due job has waited "
        "longer than this; 0: never.")
    jobs_keep_days: float = Field(7.0, ge=0.01, le=3650,
                                  description="Succeeded and canceled jobs are deleted this long after they finished.")
    key_expiry_notice_days: int = Field(
        7, ge=0, le=365, description="The expiry scan writes api_key.expiring this many days before a key expires "
        "(once per key; 0: no advance notice), and api_key.expired once it has.")
    key_health_seconds: float = Field(
        86_400.0, ge=0, le=30 * 86_400, description="How often every live exchange account is checked with its "
        "exchange again (rejected: invalid; can withdraw: suspended; each with its event); 0: never.")
    balance_refresh_seconds: float = Field(
        0.0, ge=0, le=30 * 86_400, description="How often every active account's balances are refreshed in the "
        "background (within the per-venue limits); 0 (the default): only when a client asks.")
    balance_change_threshold_usd: Decimal = Field(
        Decimal(100), ge=0, le=10**15, description="balances.changed is written when an account's total moves by "
        "at least this many USD and by at least STRONGROOM_BALANCE_CHANGE_THRESHOLD_PERCENT since the last event.")
    balance_change_threshold_percent: Decimal = Field(
        Decimal(5), ge=0, le=10**6, description="... and by at least this percentage of the total it moved from.")
    audit_retention_days: int = Field(
        365, ge=0, le=36_500, description="Audit events older than this are deleted daily; 0: kept forever.")
    usage_retention_days: int = Field(
        90, ge=0, le=36_500, description="Hourly key-usage counts older than this are deleted daily; 0: kept forever.")
    events_retention_days: int = Field(
        90, ge=0, le=36_500, description="Events (GET /v1/events) older than this are deleted daily; 0: kept forever.")
    job_handlers: str | None = Field(
        None, description="Comma-separated module:function registration functions, each called with the runner's "
        "registry to add job handlers and schedules.")

    # --- webhooks (strongroom.webhooks) ---------------------------------------------------
    webhook_retry_seconds: str | None = Field(
        None, description="Delays before each retry of a failed webhook delivery, comma-separated seconds (jittered); "
        "unset: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (10 attempts in about 3 days).")
    webhook_allow_private: bool = Field(
        False, description="Allow webhook URLs that resolve to loopback, private, link-local, CGNAT or metadata "
        "addresses (tests, on-premise receivers). Off: refused when created and when delivered.")
    webhook_timeout_seconds: float = Field(15.0, ge=1, le=120,
                                           description="How long a webhook delivery waits for the receiver.")
    webhook_disable_after_days: float = Field(
        5.0, ge=0.0001, le=365, description="An endpoint failing every delivery this long is disabled (with a "
        "webhook.disabled event).")
    webhook_ca_file: Path | None = Field(
        None, description="A PEM file of CA certificates that https webhook receivers' certificates may also chain "
        "to (an on-premise CA), beside certifi's.")

    # --- HTTP --------------------------------------------------------------------------
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=100 * 1024 * 1024)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["plain", "json"] = Field("plain", description="plain lines, or one JSON object per line.")
    metrics_enabled: bool = Field(False, description="Serve Prometheus metrics at /metrics.")
    metrics_token: SecretStr | None = Field(
        None, description="If set, /metrics needs `Authorization: Bearer <token>` (scrapers send it).")
    console: bool = Field(True, description="Serve the web console at /console (GET / redirects to it).")
    public_url: str | None = Field(
        None, pattern=r"^https?://", description="The URL users reach Strongroom at (behind a proxy): an https one "
        "makes the console's session cookie Secure.")

    @field_validator("trusted_proxies", "auth_failure_exempt_networks")
    @classmethod
    def _valid_cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
        return value

    @field_validator("webhook_ca_file")
    @classmethod
    def _valid_ca_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            import ssl

            try:
                ssl.create_default_context(cafile=str(value))
            except (OSError, ssl.SSLError):
                raise ValueError("a readable PEM file of CA certificates") from None
        return value

    @field_validator("forward_rules")
    @classmethod
    def _valid_rules(cls, value: Path | None) -> Path | None:
        if value is not None:
            from strongroom.verify.rules import RulesError, load_rules

            try:
                load_rules(value)
            except RulesError as exc:
                raise ValueError(f"a readable rules file ({exc})") from None
        return value

    @field_validator("rate_limit_per_key", "rate_limit_per_ip", "login_failures_per_ip")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        from limits import parse

        try:
            item = parse(value)
        except ValueError:
            raise ValueError(RATE_HINT) from None
        if item.amount < 1:
            raise ValueError(RATE_HINT)
        return value

    @field_validator("webhook_retry_seconds")
    @classmethod
    def _valid_retries(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                delays = [float(part) for part in value.split(",")]
            except ValueError:
                raise ValueError("comma-separated seconds, e.g. 1,2,4") from None
            if not 1 <= len(delays) <= 50 or not all(0 <= d <= 86_400 for d in delays):
                raise ValueError("1 to 50 comma-separated seconds, each 0 to 86400")
        return value

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """The delays before each retry of a webhook delivery (seconds; the default schedule when unset)."""
        if self.webhook_retry_seconds is None:
            return (5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400)
        return tuple(float(part) for part in self.webhook_retry_seconds.split(","))

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if value is None:
            return None
        try:
            make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError("a SQLAlchemy URL such as sqlite:///path/strongroom.db or "
                             "postgresql+psycopg://user@host/db") from None
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'strongroom.db').resolve()}"

    @field_validator("aws_kms_keys")
    @classmethod
    def _valid_kms_keys(cls, value: str | None) -> str | None:
        if value is not None:
            kms_versions(value)
        return value

    @property
    def effective_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"


def kms_versions(value: str) -> dict[int, str]:
    """Return ``{version: key}`` from ``"1=alias/a,2=arn:..."``. Raises ValueError."""
    found: dict[int, str] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        number, sep, key = part.partition("=")
        if not sep or not number.strip().isdigit() or int(number) < 1 or not key.strip():
            raise ValueError('a list like "1=alias/a,2=arn:aws:kms:..." (version=key, comma-separated)')
        found[int(number)] = key.strip()
    return found


class SettingsError(Exception):
    """A ``STRONGROOM_*`` variable has a value Settings refuses. ``message`` is one line."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def env_name(field: str) -> str:
    """Return the environment variable of a settings field (``port`` -> ``STRONGROOM_PORT``)."""
    return ENV_PREFIX + field.upper()


def allowed(field: str) -> str | None:
    """Return what ``field`` accepts, from its declared type and bounds (``None`` if unconstrained).

    For example ``"an integer from 1 to 65535"``, ``"one of info, debug"``, ``"a number at least 0.05"``.
    """
    info = Settings.model_fields.get(field)
    if info is None:
        return None
    annotation = info.annotation
    if get_origin(annotation) in (Union, UnionType):  # X | None: what X accepts
        annotation = next((a for a in get_args(annotation) if a is not type(None)), annotation)
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(annotation))
    bounds = {type(item).__name__: item for item in info.metadata}
    pattern = next((item.pattern for item in info.metadata if getattr(item, "pattern", None)), None)
    kind = "an integer" if annotation is int else "a number" if annotation is float else None
    if kind and "Ge" in bounds and "Le" in bounds:
        return f"{kind} from {bounds['Ge'].ge} to {bounds['Le'].le}"
    if kind:
        low = f"of at least {bounds['Ge'].ge}" if "Ge" in bounds else f"above {bounds['Gt'].gt}" if "Gt" in bounds else ""
        high = f"at most {bounds['Le'].le}" if "Le" in bounds else f"below {bounds['Lt'].lt}" if "Lt" in bounds else ""
        return " ".join([kind, " and ".join(part for part in (low, high) if part)]).strip()
    if pattern:
        return f"a string matching {pattern}"
    if annotation is bool:
        return "true or false"
    if get_origin(annotation) in (dict, list):
        return "JSON (" + ("an object" if get_origin(annotation) is dict else "a list") + ")"
    return None


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        name = env_name(field) if field else "a STRONGROOM_ variable"
        accepts = allowed(field)
        if error["type"] == "value_error":  # our validators say what is accepted
            accepts = str(error.get("ctx", {}).get("error", "")) or accepts
        parts.append(f"{name} must be {accepts}" if accepts else f"{name}: {error['msg']}")
    return "; ".join(dict.fromkeys(parts))


def load_settings(**overrides: Any) -> Settings:
    """Return the settings from the environment (and ``overrides``).

    Raises SettingsError with one line per the first bad variables, e.g.
    ``STRONGROOM_PORT must be an integer from 1 to 65535``; the bad value is never repeated.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except _SourceError as exc:  # a JSON-typed variable that is not JSON
        match = re.search(r'field "(\w+)"', str(exc))
        field = match.group(1) if match else ""
        what = allowed(field) or "valid JSON"
        raise SettingsError(f"{env_name(field) if field else 'a STRONGROOM_ variable'} must be {what}") from None


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """Return one warning per ``STRONGROOM_*`` variable of ``environ`` (default: this process's) that is
    no setting, naming the closest known one when there is one (a typo is otherwise silently ignored)."""
    environ = os.environ if environ is None else environ
    known = [name.upper() for name in Settings.model_fields]  # compared without the prefix they all share
    warnings = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper.removeprefix(ENV_PREFIX) in known:
            continue
        close = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX), known, n=1, cutoff=0.6)
        hint = f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""
        warnings.append(f"{name} is not a Strongroom setting and is ignored{hint}")
    return warnings


@lru_cache
def get_settings() -> Settings:
    """Return the process's settings (cached). Raises SettingsError on a bad variable."""
    return load_settings()
