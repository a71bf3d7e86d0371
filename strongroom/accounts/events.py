"""The events of exchange accounts (``exchange_account.*``), written in the transaction of the change.

Every path that connects an account, or moves one into ``invalid``, ``suspended`` or ``disconnected``
(the /v1 and vendor surfaces through :class:`~strongroom.accounts.services.ExchangeAccountService`, a
revalidation, the scheduled key-health pass, a balance refresh that finds the key rejected), calls
:func:`status_changed` or :func:`connected` with its session, so the event commits or rolls back
with the change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from strongroom import events
from strongroom.enums import AccountStatus, EventType
from strongroom.models import ExchangeAccount

# the event of moving into each status that has one
EVENT_OF_STATUS = {AccountStatus.INVALID: EventType.EXCHANGE_ACCOUNT_INVALIDATED,
                   AccountStatus.SUSPENDED: EventType.EXCHANGE_ACCOUNT_SUSPENDED,
                   AccountStatus.DISCONNECTED: EventType.EXCHANGE_ACCOUNT_DISCONNECTED}


def account_data(account: ExchangeAccount) -> dict[str, Any]:
    """Return what an event says about ``account``: ids, venue, name and type (no credential, no hint)."""
    return {"account_id": account.id, "public_id": str(account.public_id), "exchange": account.exchange,
            "name": account.name, "account_type": account.account_type}


def connected(session: Session, account: ExchangeAccount) -> events.RecordedEvent:
    """Record ``exchange_account.connected`` for the just-inserted ``account``; return the event."""
    return events.record(session, EventType.EXCHANGE_ACCOUNT_CONNECTED, user_id=account.user_id,
                         data={**account_data(account), "status": str(account.status)})


def status_changed(session: Session, account: ExchangeAccount, before: str, after: str, reason: str,
                   via: str) -> events.RecordedEvent | None:
    """Record the event of ``account`` moving from ``before`` to ``after`` (``reason``: a code such as
    ``invalid_credentials``; ``via``: what did it, such as ``revalidate``); return it, or None when the
    move has no event (``after`` is not invalid, suspended or disconnected, or equals ``before``)."""
    kind = EVENT_OF_STATUS.get(AccountStatus(after)) if after in set(AccountStatus) else None
    if kind is None or before == after:
        return None
    return events.record(session, kind, user_id=account.user_id, data={
        **account_data(account), "from": str(before), "to": str(after), "reason": reason, "via": via})
