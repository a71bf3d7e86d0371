"""Risk policies as stored (``trading_policies``): reading and writing an account's or a key's, and who may widen
one. The rules themselves (fields, narrowing, what "wider" means) are ``strongroom.trading.policy``'s."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strongroom.audit.services import AuditService
from strongroom.db import Database, rowcount, utcnow
from strongroom.enums import AuthMethod
from strongroom.errors import Conflict, InsufficientScope, NotFound, RiskPolicyRefused
from strongroom.models import ApiKey, ExchangeAccount, TradingPolicy
from strongroom.pagination import valid_id
from strongroom.principal import Principal
from strongroom.scopes import TRADE, WRITE, covers
from strongroom.trading import policy as rules
from strongroom.trading.policy import Policy

# a principal signed in with a password (not a key): the owner's own session, the console, the operator
PASSWORD_METHODS = frozenset({AuthMethod.ACCESS_TOKEN, AuthMethod.PASSWORD_GRANT, AuthMethod.BASIC_PASSWORD,
                              AuthMethod.CONSOLE, AuthMethod.CLI})


@dataclass(frozen=True)
class PolicyView:
    """A stored policy (``defined`` False: none, all fields at their defaults: trading off for an account)."""

    subject: str  # account:<id> | key:<key id>
    defined: bool
    policy: Policy
    updated_at: datetime | None



def _dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def policy_of_row(row: Any) -> Policy | None:
    """Return the policy a ``trading_policies`` row holds (a model instance or a selected row); None for None."""
    if row is None:
        return None
    return Policy(allowed_symbols=None if row.allowed_symbols is None else tuple(row.allowed_symbols),
                  max_notional_usd=_dec(row.max_notional_usd), max_open_orders=row.max_open_orders,
                  max_orders_per_minute=row.max_orders_per_minute, price_band_percent=_dec(row.price_band_percent),
                  allow_market_orders=row.allow_market_orders, kill_switch=row.kill_switch)


def _policy_columns(policy: Policy) -> dict[str, Any]:
    doc = policy.as_dict()
    return {name: doc[name] for name in rules.RULES}



def visible_account(session: Session, principal: Principal, account_id: int) -> ExchangeAccount:
    """Return the account if the principal may see it (its user's, or an admin; within a key's binding).
    Raises NotFound otherwise."""
    if not valid_id(account_id):
        raise NotFound("exchange account not found")
    account = session.get(ExchangeAccount, account_id)
    if account is None or not principal.acts_for(account.user_id) or not principal.sees_account(account.id):
        raise NotFound("exchange account not found")
    return account


_BY_SUBJECT = select(TradingPolicy.__table__).where(TradingPolicy.__table__.c.subject == bindparam("b_subject"))


def key_policy_of(session: Session, key_id: str | None) -> Policy | None:
    """Return the key's own policy (None: it has none, or no key), read in ``session``."""
    if not key_id:
        return None
    return policy_of_row(session.execute(_BY_SUBJECT, {"b_subject": f"key:{key_id}"}).first())


class PolicyBook:
    """Reads and writes policies (synchronous: the trading façade calls it in a worker thread)."""

    def __init__(self, db: Database, audit: AuditService) -> None:
        self.db = db
        self.audit = audit

    def _policy_subject(self, session: Session, principal: Principal, account_id: int | None,
                        key_id: str | None) -> tuple[str, int, int | None]:
        """Return (subject, owner user id, account id) of the policy the principal names; NotFound otherwise."""
        if account_id is not None:
            account = visible_account(session, principal, account_id)
            return f"account:{account.id}", account.user_id, account.id
        key = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first() if key_id else None
        if key is None or not principal.acts_for(key.user_id) or not self._sees_key(principal, key):
            raise NotFound("API key not found")
        return f"key:{key.key_id}", key.user_id, None

    @staticmethod
    def _sees_key(principal: Principal, key: ApiKey) -> bool:
        """True unless the principal is a key bound to accounts and ``key`` (not itself) reaches beyond them."""
        if principal.account_ids is None or key.key_id == principal.key_id:
            return True
        return key.account_ids is not None and set(key.account_ids) <= principal.account_ids

    def read(self, principal: Principal, account_id: int | None, key_id: str | None) -> PolicyView:
        """Return the policy of the account ``account_id``, or else of the key ``key_id`` (``defined`` False: none).
        Raises NotFound (not the principal's to see)."""
        with self.db.session() as session:
            subject, _, _ = self._policy_subject(session, principal, account_id, key_id)
            row = session.scalars(select(TradingPolicy).where(TradingPolicy.subject == subject)).first()
            found = policy_of_row(row)
            return PolicyView(subject, found is not None, found or Policy(), None if row is None else row.updated_at)

    @staticmethod
    def may_widen(principal: Principal, owner: int) -> bool:
        """True if ``principal`` may widen a policy of ``owner``'s or clear its kill switch: the owner signed in
        with a password (not a key), or an admin signed in so."""
        return (principal.key_id is None and principal.scheme in PASSWORD_METHODS
                and (principal.user_id == owner or principal.is_admin))

    def write(self, principal: Principal, account_id: int | None, key_id: str | None,
              body: dict[str, object]) -> PolicyView:
        """Replace the policy of the account ``account_id`` (else of the key ``key_id``) with ``body``; return it.

        Compare-and-set on the row's revision. Raises InsufficientScope (neither ``write`` nor ``trade``),
        ValidationFailed, NotFound, RiskPolicyRefused (a principal that may not widen it widens it or clears its
        kill switch; audited), Conflict (changed meanwhile).
        """
        if not (covers(principal.scopes, WRITE) or TRADE in principal.scopes):
            raise InsufficientScope("this credential lacks the 'write' or 'trade' scope")
        new = rules.parse(body)
        with self.db.session() as session:
            subject, owner, account = self._policy_subject(session, principal, account_id, key_id)
            row = session.scalars(select(TradingPolicy).where(TradingPolicy.subject == subject)).first()
            old = policy_of_row(row)
            revision = None if row is None else row.revision
        widened = None if self.may_widen(principal, owner) else rules.widened(old, new)
        if widened is not None:
            self.audit.record_now("trading_policy.set", "refused", principal=principal, target=subject,
                                  details={"rule": widened})
            raise RiskPolicyRefused(f"only the owner signed in with a password, or an admin, may widen a trading "
                                    f"policy or clear its kill switch ({widened})", rule=widened)
        columns = _policy_columns(new)
        try:
            with self.db.session() as session:
                if revision is None:
                    session.add(TradingPolicy(subject=subject, user_id=owner, account_id=account,
                                              key_id=key_id if account is None else None, revision=0,
                                              updated_at=utcnow(), **columns))
                    session.flush()
                else:
                    changed = rowcount(session.execute(
                        update(TradingPolicy).where(TradingPolicy.subject == subject,
                                                    TradingPolicy.revision == revision)
                        .values(revision=TradingPolicy.revision + 1, updated_at=utcnow(), **columns)
                        .execution_options(synchronize_session=False)))
                    if changed != 1:
                        raise Conflict("the trading policy changed meanwhile; read it again and retry")
                self.audit.record(session, "trading_policy.set", "ok", principal=principal, target=subject,
                                  details={"policy": new.as_dict(), "before": None if old is None else old.as_dict()})
        except IntegrityError:
            raise Conflict("the trading policy changed meanwhile; read it again and retry") from None
        return self.read(principal, account_id, key_id)
