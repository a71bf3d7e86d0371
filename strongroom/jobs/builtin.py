"""The scheduled work every deployment runs: built-in job handlers and their schedules.

Registered by every runner before ``STRONGROOM_JOB_HANDLERS`` (``runner.BUILTIN_HANDLERS``). Each job
only calls its capability, where the rule lives, and is idempotent (a job runs at least once):

* ``keys.expiry-scan`` (hourly): ``api_key.expiring`` ``STRONGROOM_KEY_EXPIRY_NOTICE_DAYS`` before a
  key expires and ``api_key.expired`` after, each once per key (``ApiKeyService.scan_expiry``).
* ``accounts.key-health`` (every ``STRONGROOM_KEY_HEALTH_SECONDS``, daily by default): every live,
  enabled exchange account revalidated (rejected: ``invalid``; can withdraw: ``suspended``; each with
  its event) within the per-venue limits (``ExchangeAccountService.key_health``).
* ``balances.refresh`` (every ``STRONGROOM_BALANCE_REFRESH_SECONDS``; off by default): every active
  account's balances (``BalanceService.refresh_all``).
* ``housekeeping.retention`` (daily): audit events, key-usage hours and events older than their
  retention (``STRONGROOM_AUDIT_RETENTION_DAYS``, ``..._USAGE_...``, ``..._EVENTS_...``; 0 keeps them).

Snapshot pruning and finished-job pruning stay leased periodic jobs of the core (``strongroom.core``),
one place each.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from strongroom.db import utcnow
from strongroom.jobs.queue import ClaimedJob

EXPIRY_SCAN = "keys.expiry-scan"
KEY_HEALTH = "accounts.key-health"
BALANCE_REFRESH = "balances.refresh"
RETENTION = "housekeeping.retention"
EXPIRY_SCAN_SECONDS = 3600.0
RETENTION_SECONDS = 86_400.0
CHECKS_AT_ONCE = 8  # live exchange checks one pass runs at once (the gateway limits each venue on its own)


def expiry_scan(core: Any) -> dict[str, int]:
    """Run the expiry scan; return how many notices it wrote."""
    expiring, expired = core.api_keys.scan_expiry()
    return {"expiring": expiring, "expired": expired}


def retention(core: Any) -> dict[str, int]:
    """Delete what is older than its retention (0 days: kept forever); return how many rows of each."""
    settings, now = core.settings, utcnow()
    done: dict[str, int] = {}
    for name, days, prune in (("audit", settings.audit_retention_days, core.audit.prune),
                              ("usage", settings.usage_retention_days, core.api_keys.prune_usage),
                              ("events", settings.events_retention_days, core.events.prune)):
        if days > 0:
            done[name] = prune(now - timedelta(days=days))
    return done


def register(registry: Any) -> None:
    """Add the built-in handlers and schedules to ``registry`` (whose ``services`` is the core)."""
    core = registry.services
    if core is None:  # a registry without a process to serve (a check of the configuration): nothing to run
        return
    settings = core.settings

    def run_expiry_scan(job: ClaimedJob) -> None:
        expiry_scan(core)

    async def run_key_health(job: ClaimedJob) -> None:
        await core.account_store.key_health(CHECKS_AT_ONCE)

    async def run_balance_refresh(job: ClaimedJob) -> None:
        await core.balance_store.refresh_all(CHECKS_AT_ONCE)

    def run_retention(job: ClaimedJob) -> None:
        retention(core)

    registry.handler(EXPIRY_SCAN, run_expiry_scan, backoff_base=60)
    registry.handler(KEY_HEALTH, run_key_health, backoff_base=300)
    registry.handler(BALANCE_REFRESH, run_balance_refresh, backoff_base=60)
    registry.handler(RETENTION, run_retention, backoff_base=300)
    registry.schedule(EXPIRY_SCAN, EXPIRY_SCAN, EXPIRY_SCAN_SECONDS)
    registry.schedule(RETENTION, RETENTION, RETENTION_SECONDS)
    if settings.key_health_seconds > 0:
        registry.schedule(KEY_HEALTH, KEY_HEALTH, settings.key_health_seconds)
    if settings.balance_refresh_seconds > 0:
        registry.schedule(BALANCE_REFRESH, BALANCE_REFRESH, settings.balance_refresh_seconds)
