"""The core: every service wired together once, shared by the HTTP surfaces and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.accounts.credentials import CredentialService
from strongroom.accounts.interfaces import Accounts
from strongroom.accounts.services import AccountsFacade, ExchangeAccountService
from strongroom.audit.services import AuditService
from strongroom.audit.usage import UsageRecorder
from strongroom.auth.pipeline import Authenticator
from strongroom.balances.interfaces import Balances
from strongroom.balances.services import BalanceService, BalancesFacade
from strongroom.crypto.envelope import Envelope
from strongroom.crypto.keyring import KeyProvider, load_provider
from strongroom.crypto.tokens import Hasher
from strongroom.db import Database
from strongroom.exchanges.catalogue import Catalogue, get_catalogue
from strongroom.exchanges.gateway import ExchangeGateway
from strongroom.keys.services import ApiKeyService
from strongroom.metrics import Metrics
from strongroom.ratelimit import RateLimiter
from strongroom.services.housekeeping import Housekeeping
from strongroom.settings import Settings
from strongroom.users.services import UserService
from strongroom.users.sessions import SessionService
from strongroom.vault.rotation import KeyRotationService
from strongroom.vault.services import Vault


@dataclass
class Core:
    settings: Settings
    db: Database
    keys: KeyProvider
    envelope: Envelope
    hasher: Hasher
    catalogue: Catalogue
    limiter: RateLimiter
    audit: AuditService
    users: UserService
    sessions: SessionService
    accounts: Accounts  # the accounts capability's façade (async)
    api_keys: ApiKeyService
    usage: UsageRecorder
    auth: Authenticator
    key_rotation: KeyRotationService
    vault: Vault
    gateway: ExchangeGateway  # shared by every live exchange call; the app's lifespan closes it
    housekeeping: Housekeeping  # batched writes (last_used_at, refusal counts); the app's lifespan runs it
    metrics: Metrics
    balances: Balances  # the balances capability's façade (async)
    credentials: CredentialService  # stored exchange keys (Cadenza's credentials)
    account_store: ExchangeAccountService  # the accounts façade's synchronous engine (other services use it)
    balance_store: BalanceService  # the balances façade's synchronous engine

    def close(self) -> None:
        self.housekeeping.run_jobs()
        self.db.dispose()


def build_core(settings: Settings, gateway: ExchangeGateway | None = None) -> Core:
    """Wire every service for ``settings``. Creates the data dir and master key file if needed.

    ``gateway`` replaces the shared ``ExchangeGateway`` (tests: any object with async ``validate`` and ``aclose``).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    keys = load_provider(settings.effective_master_key_file, settings.master_keys)
    envelope = Envelope(keys)
    hasher = Hasher(keys.pepper)
    catalogue = get_catalogue()
    limiter = RateLimiter(settings.redis_url)
    audit = AuditService(db)
    users = UserService(db, settings, audit, limiter, hasher)
    sessions = SessionService(db, settings, audit, hasher)
    vault = Vault(db, envelope)
    gateway = gateway or ExchangeGateway(settings)
    accounts = ExchangeAccountService(db, settings, audit, vault, hasher, catalogue, gateway)
    api_keys = ApiKeyService(db, settings, audit, vault, hasher, accounts)
    usage = UsageRecorder(api_keys)
    balances = BalanceService(db, settings, audit, vault, catalogue, gateway)
    auth = Authenticator(settings, users, sessions, api_keys, audit, limiter, usage)
    housekeeping = Housekeeping(settings.last_used_flush_seconds, [usage.flush, audit.flush_refusals])
    metrics = Metrics()
    limiter.metrics = auth.metrics = metrics
    if isinstance(gateway, ExchangeGateway):
        gateway.metrics = metrics
    return Core(settings, db, keys, envelope, hasher, catalogue, limiter, audit, users, sessions,
                AccountsFacade(accounts), api_keys, usage, auth, KeyRotationService(vault), vault, gateway,
                housekeeping, metrics, BalancesFacade(balances), CredentialService(db, audit, vault, hasher, catalogue, accounts),
                accounts, balances)
