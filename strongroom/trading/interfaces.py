"""The trading capability's contract: the façade surfaces and the CLI call (its docstrings are the contract).

Every method is async. Orders need scope ``trade`` (implied by nothing); reading them needs ``read`` or ``trade``;
a key bound to accounts trades on and sees only those (NotFound otherwise). Money is ``Decimal``. Policies:
reading needs ``read``; writing ``write`` or ``trade``, and only the owner signed in with a password (or an
admin so) may widen one or clear its kill switch: a key may only narrow it or set the kill switch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from strongroom.pagination import OffsetPage, Page
from strongroom.principal import Principal
from strongroom.trading.policies import PolicyView
from strongroom.trading.services import OrderQuery, OrderRequest, OrderView, Submitted


class Trading(Protocol):
    """Orders through an account's stored credentials, under its risk policy, never sent twice."""

    async def submit(self, principal: Principal, account_id: int, request: OrderRequest, *,
                     idempotency_key: str | None = None, await_closed: float | None = None) -> Submitted:
        """Place an order (see ``strongroom.trading.services`` for how) and return it.

        ``client_order_id`` (or ``idempotency_key``; both given must be equal, else BadRequest) is unique per
        account: the same request again returns that order (``replayed``), another request with it raises
        Conflict. ``await_closed``: seconds (at most 60) to wait for the venue to close the order. The order is
        ``pending`` when the venue's answer is not known: it is reconciled by its client order id, never sent
        again. Raises InsufficientScope, NotFound, Conflict (account not active; id reused), ValidationFailed /
        BadRequest (a field; off the venue's step or below its minimum, naming it), RiskPolicyRefused (403,
        ``rule``; audited), InsufficientFunds, OrderRejected, CredentialsUnreadable, ExchangeUnavailable (before
        anything was written), ExchangeNotSupported.
        """
        ...

    async def get(self, principal: Principal, account_id: int, order_id: int) -> OrderView:
        """Return the order, brought up to date with the venue when it is not final. Raises NotFound,
        InsufficientScope."""
        ...

    async def list_orders(self, principal: Principal, account_id: int, *, status: str = "open",
                          symbol: str | None = None, cursor: str | None = None, limit: int = 50) -> Page[OrderView]:
        """Return one page (newest first) of the account's orders placed through Strongroom: ``open`` (pending
        or open at the venue) or ``closed`` (closed, canceled, rejected, expired), after bringing the open ones up
        to date with the venue (fills become ``closed``). Raises NotFound, InsufficientScope, ValidationFailed
        (status, cursor, limit)."""
        ...

    async def find_orders(self, principal: Principal, account_id: int, query: OrderQuery, *, offset: int = 0,
                          limit: int = 50) -> OffsetPage[OrderView]:
        """Return the account's orders placed through Strongroom that match ``query`` (any status), ``limit``
        (1..1000) from ``offset``, with the total count, newest first unless ``query.ascending``; the open ones are
        brought up to date with the venue first, as :meth:`list_orders` does. Raises NotFound, InsufficientScope,
        ValidationFailed (limit, offset)."""
        ...

    async def cancel(self, principal: Principal, account_id: int, order_id: int) -> OrderView:
        """Cancel an open order at the venue; return it ``canceled`` (audited, ``order.canceled``). Raises NotFound,
        InsufficientScope, Conflict (already final, or its placement not confirmed yet), ExchangeUnavailable."""
        ...

    async def cancel_all(self, principal: Principal, account_id: int, *, symbol: str | None = None) -> list[OrderView]:
        """Cancel every open order of the account placed through Strongroom (of ``symbol`` only, if given); return
        those canceled. Allowed under the kill switch. Raises NotFound, InsufficientScope, ExchangeUnavailable."""
        ...

    async def reconcile(self, order_id: int) -> str:
        """Ask the venue about a ``pending`` order by its client order id and record what it holds; return the
        order's status, ``unknown`` if the venue does not know it, ``gone`` if the order or its account is gone.
        No authorization (the job). Raises ExchangeUnavailable."""
        ...

    async def mark_not_placed(self, order_id: int) -> None:
        """Record a ``pending`` order the venue never knew as ``rejected`` (``not_placed``). No authorization."""
        ...

    async def account_policy(self, principal: Principal, account_id: int) -> PolicyView:
        """Return the account's policy (``defined`` False: none, trading off). Raises NotFound, InsufficientScope."""
        ...

    async def set_account_policy(self, principal: Principal, account_id: int, body: Mapping[str, object]) -> PolicyView:
        """Replace the account's policy with ``body`` (its fields; absent ones: no limit, false); return it.
        Raises ValidationFailed, NotFound, InsufficientScope, RiskPolicyRefused (a key widening it or clearing the
        kill switch, ``rule`` the field; audited), Conflict (changed meanwhile)."""
        ...

    async def key_policy(self, principal: Principal, key_id: str) -> PolicyView:
        """Return a key's own policy (it narrows its owner's account policies). Raises NotFound, InsufficientScope."""
        ...

    async def set_key_policy(self, principal: Principal, key_id: str, body: Mapping[str, object]) -> PolicyView:
        """Replace a key's policy; return it. Raises as :meth:`set_account_policy`."""
        ...
