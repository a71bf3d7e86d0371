"""The core: every service wired together once, shared by the HTTP surfaces and the CLI."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from strongroom.accounts.credentials import CredentialService
from strongroom.accounts.facade import CredentialsFacade
from strongroom.accounts.interfaces import Accounts, Credentials
from strongroom.accounts.services import AccountsFacade, ExchangeAccountService
from strongroom.audit.facade import AuditFacade
from strongroom.audit.interfaces import Audit
from strongroom.audit.services import AuditService
from strongroom.audit.usage import UsageRecorder
from strongroom.auth.pipeline import Authenticator
from strongroom.balances.interfaces import Balances
from strongroom.balances.services import PRUNE_EVERY_SECONDS, BalanceService, BalancesFacade
from strongroom.crypto.envelope import DekCache, Envelope
from strongroom.crypto.keyring import KeyChain, KeyringError
from strongroom.crypto.providers import build_keys, initialise
from strongroom.crypto.tokens import Hasher
from strongroom.datastore import hashed_records, tighten
from strongroom.db import Database
from strongroom.events import on_record
from strongroom.events.facade import EventsFacade
from strongroom.events.interfaces import Events
from strongroom.events.services import EventService
from strongroom.exchanges.catalogue import Catalogue, get_catalogue
from strongroom.exchanges.gateway import ExchangeGateway
from strongroom.jobs import Housekeeping, Job, JobQueue, LeaseStore, PeriodicJob
from strongroom.jobs.stats import JobsCollector
from strongroom.keys.facade import KeysFacade
from strongroom.keys.interfaces import Keys
from strongroom.keys.services import ApiKeyService
from strongroom.metrics import SYNC_SECONDS, Metrics
from strongroom.ratelimit import RateLimiter
from strongroom.settings import Settings
from strongroom.trading.interfaces import Trading
from strongroom.trading.services import TradingService
from strongroom.users.facade import SessionsFacade, UsersFacade
from strongroom.users.interfaces import Sessions, Users
from strongroom.users.services import UserService
from strongroom.users.sessions import SessionService
from strongroom.vault.facade import MasterKeysFacade
from strongroom.vault.interfaces import MasterKeys
from strongroom.vault.masterkeys import MasterKeyService
from strongroom.vault.rotation import KeyRotationService
from strongroom.vault.services import Vault
from strongroom.webhooks import Webhooks, WebhooksCollector, WebhookService, WebhooksFacade, fan_out

log = logging.getLogger("strongroom")


@dataclass
class Core:
    settings: Settings
    db: Database
    keys: KeyChain  # every configured master key source (file, HSM, KMS)
    envelope: Envelope
    hasher: Hasher
    catalogue: Catalogue
    limiter: RateLimiter
    audit: AuditService  # the audit engine (façade: audit_log)
    users: UserService  # the users engine (façade: user_service)
    sessions: SessionService  # the sessions engine (façade: session_service)
    accounts: Accounts  # the accounts capability's façade (async)
    api_keys: ApiKeyService  # the keys engine (façade: key_service)
    usage: UsageRecorder
    auth: Authenticator
    key_rotation: KeyRotationService
    vault: Vault
    gateway: ExchangeGateway  # shared by every live exchange call; the app's lifespan closes it
    housekeeping: Housekeeping  # periodic jobs (batched writes; snapshot pruning, leased); the app's lifespan runs it
    metrics: Metrics
    balances: Balances  # the balances capability's façade (async)
    credentials: CredentialService  # stored exchange keys (Cadenza's credentials): the engine (façade: credential_service)
    jobs: JobQueue  # durable jobs: enqueue with strongroom.jobs.enqueue; a runner (jobs.runner) claims them
    account_store: ExchangeAccountService  # the accounts façade's synchronous engine (other services use it)
    balance_store: BalanceService  # the balances façade's synchronous engine
    # The async façades of the capabilities whose engines are above (``users``, ``api_keys``, ...: the CLI, the
    # authenticator and other services use those): what the HTTP surfaces and the console call.
    key_service: Keys
    user_service: Users
    session_service: Sessions
    audit_log: Audit
    credential_service: Credentials
    master_keys: MasterKeys
    trading: Trading  # orders under risk policies (async); the jobs runner reconciles through it
    events: EventService  # what happened, written by the capabilities in their transactions; pruned by retention
    event_service: Events  # its async façade: what GET /v1/events reads
    webhooks: WebhookService  # webhook endpoints (their deliveries are the jobs runner's: strongroom.webhooks)
    webhook_service: Webhooks  # its async façade: what /v1/webhooks calls

    def close(self) -> None:
        self.housekeeping.run_jobs()
        self.db.dispose()


def build_core(settings: Settings, gateway: ExchangeGateway | None = None) -> Core:
    """Wire every service for ``settings``. Creates the data dir and master key file if needed.

    ``gateway`` replaces the shared ``ExchangeGateway`` (tests: any object with async ``validate`` and ``aclose``).
    """
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tightened = tighten(settings)
    if tightened:  # an older version made them readable by others
        log.warning("made %d data paths private (files 0600, directory 0700): %s", len(tightened),
                    ", ".join(str(p) for p in tightened))
    db = Database(settings.effective_database_url)
    keys = build_keys(settings)
    envelope = Envelope(keys, DekCache(settings.dek_cache_size, settings.dek_cache_ttl_seconds))
    vault = Vault(db, envelope)
    if not keys.versions():  # a fresh HSM or KMS: its first version, unless records need others
        used = vault.usage()
        if used:
            raise KeyringError(f"the {settings.key_provider} key source holds no master key version, but records "
                               f"are sealed under version(s) {', '.join(map(str, sorted(used)))}: configure the "
                               "key source that holds them (or run 'strongroom master-key migrate' with it)")
        if not any(store.has_pepper() for store in keys.stores):
            hashed = hashed_records(settings.effective_database_url)
            if hashed:  # a new pepper would silently orphan every API key and session
                raise KeyringError(f"the {settings.key_provider} key source holds no pepper, but the database holds "
                                   f"{hashed} API key(s) and session(s) hashed with one: configure the key source "
                                   "that holds it (or run 'strongroom master-key migrate' with it)")
        initialise(keys)
    hasher = Hasher(keys.mac)
    catalogue = get_catalogue()
    limiter = RateLimiter(settings.redis_url)
    audit = AuditService(db)
    users = UserService(db, settings, audit, limiter, hasher)
    sessions = SessionService(db, settings, audit, hasher)
    gateway = gateway or ExchangeGateway(settings)
    accounts = ExchangeAccountService(db, settings, audit, vault, hasher, catalogue, gateway)
    api_keys = ApiKeyService(db, settings, audit, vault, hasher, accounts)
    usage = UsageRecorder(api_keys)
    auth = Authenticator(settings, users, sessions, api_keys, audit, limiter, usage)
    balances = BalanceService(db, settings, audit, vault, catalogue, gateway)
    flush_every = settings.last_used_flush_seconds
    metrics = Metrics()
    jobs_queue = JobQueue(db, audit=audit)
    metrics.registry.register(JobsCollector(jobs_queue))  # queue depth and age, read from the database at a scrape
    metrics.registry.register(WebhooksCollector(db))  # deliveries and endpoints by status, likewise
    on_record(fan_out)  # every event recorded in this process fans out to webhook deliveries in its transaction
    jobs: list[Job] = [
        PeriodicJob("flush-key-usage", flush_every, usage.flush),  # in-memory batches: per process
        PeriodicJob("flush-refusal-counts", flush_every, audit.flush_refusals),
        PeriodicJob("prune-snapshots", PRUNE_EVERY_SECONDS, balances.prune_all, leased=True),  # per deployment
        PeriodicJob("prune-jobs", 3600, lambda: jobs_queue.prune(settings.jobs_keep_days * 86_400), leased=True),
    ]
    if metrics.multiprocess_dir:  # serve --workers N: each worker adds its counts to the shared figures
        jobs.append(PeriodicJob("sync-metrics", SYNC_SECONDS, metrics.sync))
    housekeeping = Housekeeping(jobs, LeaseStore(db))
    limiter.metrics = auth.metrics = metrics
    if isinstance(gateway, ExchangeGateway):
        gateway.metrics = metrics
    credentials = CredentialService(db, audit, vault, hasher, catalogue, accounts)
    events = EventService(db)
    webhooks = WebhookService(db, settings, audit, vault)
    rotation = KeyRotationService(vault)
    return Core(settings, db, keys, envelope, hasher, catalogue, limiter, audit, users, sessions,
                AccountsFacade(accounts), api_keys, usage, auth, rotation, vault, gateway,
                housekeeping, metrics, BalancesFacade(balances), credentials, jobs_queue, accounts, balances,
                KeysFacade(api_keys), UsersFacade(users), SessionsFacade(sessions), AuditFacade(audit),
                CredentialsFacade(credentials), MasterKeysFacade(MasterKeyService(db, keys, audit, rotation)),
                TradingService(db, audit, vault, catalogue, gateway),
                events, EventsFacade(events), webhooks, WebhooksFacade(webhooks))
