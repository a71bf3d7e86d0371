"""TradingService in process, on SQLite and PostgreSQL: policies and who may widen them, idempotency, the order
lock's counts under concurrency, reconciliation of a lost answer, events and audit rows.

The venue is a scripted gateway that keeps orders like an exchange (the real gateway against the mock exchange
is tested over HTTP in tests/trading/test_orders_http.py); the database, vault, audit, events and jobs are real.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select
from support.interleave import commit_after
from support.services import new_user

from strongroom import errors
from strongroom.enums import AuthMethod
from strongroom.exchanges.orders import (
    InsufficientFunds,
    MarketRules,
    OrderOutcomeUnknown,
    OrderSpec,
    OrderState,
)
from strongroom.exchanges.outcomes import ValidationOutcome
from strongroom.jobs.queue import ClaimedJob
from strongroom.jobs.runner import Registry
from strongroom.models import AuditEvent, Event, Job, Order
from strongroom.principal import Principal
from strongroom.trading import RECONCILE_KIND, OrderRequest
from strongroom.trading.jobs import register
from strongroom.trading.services import OrderQuery

D = Decimal


@dataclass
class Venue:
    """Keeps orders as an exchange would (by client order id, refusing a duplicate); scripted faults."""

    price: Decimal = field(default_factory=lambda: D(50000))
    orders: dict[str, OrderState] = field(default_factory=dict)  # by client order id
    created: int = 0
    lose_answer: bool = False
    no_funds: bool = False
    unavailable: bool = False  # create_order: nothing sent (the gateway's ExchangeUnavailable)
    calls: list[str] = field(default_factory=list)

    async def validate(self, info: Any, credentials: Mapping[str, str]) -> ValidationOutcome:
        return ValidationOutcome(verified=True, can_withdraw=False)

    async def market_rules(self, info: Any, symbol: str) -> MarketRules:
        if symbol not in ("BTC/USDT", "ETH/USDT"):
            raise errors.ValidationFailed("unknown symbol", fields={"symbol": "not a market of this venue"})
        base, quote = symbol.split("/")
        return MarketRules(symbol, base, quote, amount_step=D("0.001"), price_step=D("0.01"),
                           min_amount=D("0.001"), min_cost=D("10"))

    async def fetch_tickers(self, info: Any) -> dict[str, Decimal]:
        self.calls.append("tickers")
        return {"BTC/USDT": self.price, "ETH/USDT": D(3000)}

    async def create_order(self, info: Any, credentials: Mapping[str, str], spec: OrderSpec) -> OrderState:
        self.calls.append("create")
        await asyncio.sleep(0)
        if self.unavailable:
            raise errors.ExchangeUnavailable("the exchange could not be reached; try again later", retry_after=5)
        if self.no_funds:
            raise InsufficientFunds("the account's balance does not cover the order")
        if spec.client_order_id in self.orders:
            raise errors.Conflict("duplicate client order id at the venue")  # a double send shows here
        self.created += 1
        status = "closed" if spec.type == "market" else "open"
        state = OrderState(exchange_order_id=str(1000 + self.created), client_order_id=spec.client_order_id,
                           symbol=spec.symbol, side=spec.side, type=spec.type, amount=spec.amount, price=spec.price,
                           status=status, filled=spec.amount if status == "closed" else D(0),
                           average_price=self.price if status == "closed" else None, fees=(), timestamp=None)
        self.orders[spec.client_order_id] = state
        if self.lose_answer:
            raise OrderOutcomeUnknown("the venue's answer was lost")
        return state

    async def fetch_order(self, info: Any, credentials: Mapping[str, str], symbol: str, *,
                          exchange_order_id: str | None = None, client_order_id: str | None = None) -> OrderState | None:
        self.calls.append("fetch")
        for state in self.orders.values():
            if state.client_order_id == client_order_id or state.exchange_order_id == exchange_order_id:
                return state
        return None

    async def cancel_order(self, info: Any, credentials: Mapping[str, str], symbol: str,
                           exchange_order_id: str) -> OrderState:
        for cid, state in self.orders.items():
            if state.exchange_order_id == exchange_order_id:
                if state.status != "open":
                    raise errors.NotFound("order not found")
                self.orders[cid] = dataclasses.replace(state, status="canceled")
                return self.orders[cid]
        raise errors.NotFound("order not found")

    async def fetch_open_orders(self, info: Any, credentials: Mapping[str, str],
                                symbol: str | None = None) -> list[OrderState]:
        return [s for s in self.orders.values() if s.status == "open" and symbol in (None, s.symbol)]

    def fill_all(self) -> None:
        for cid, state in self.orders.items():
            if state.status == "open":
                self.orders[cid] = dataclasses.replace(state, status="closed", filled=state.amount,
                                                       average_price=state.price)

    async def aclose(self) -> None:
        pass


@pytest.fixture
def venue() -> Venue:
    return Venue()


@pytest.fixture
def core(make_core: Callable[..., Any], venue: Venue) -> Any:
    return make_core(gateway=venue)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def setup(core: Any, policy: dict[str, Any] | None = None) -> tuple[Principal, int]:
    owner = new_user(core)
    account = run(core.accounts.connect(owner, "binance", {"api_key": f"k-{uuid.uuid4().hex}", "secret": "s"}))
    if policy is not None:
        run(core.trading.set_account_policy(owner, account.id, policy))
    return owner, account.id


def key_principal(core: Any, owner: Principal, scopes: list[str], account_ids: list[int] | None = None) -> Principal:
    key, _ = core.api_keys.create(owner, name="bot", kind="bearer", scopes=scopes, account_ids=account_ids)
    return Principal(user_id=owner.user_id, username=owner.username, key_id=key.key_id, scopes=frozenset(key.scopes),
                     account_ids=None if account_ids is None else frozenset(account_ids), client_ip="127.0.0.1",
                     scheme=AuthMethod.BEARER_KEY)


def limit(cid: str | None = "c1", amount: str = "0.01", price: str = "49000", symbol: str = "BTC/USDT") -> OrderRequest:
    return OrderRequest(symbol=symbol, side="buy", type="limit", amount=amount, price=price, client_order_id=cid)


def refusal(coro: Any) -> str:
    with pytest.raises(errors.RiskPolicyRefused) as caught:
        run(coro)
    return caught.value.rule


def rows(core: Any, model: Any, *where: Any) -> list[Any]:
    with core.db.session() as session:
        return list(session.scalars(select(model).where(*where)))


OPEN_POLICY = {"max_notional_usd": "100000", "allow_market_orders": True}


def test_no_policy_no_trading_and_each_rule_refuses_by_name(core: Any, venue: Venue) -> None:
    owner, account = setup(core)
    assert refusal(core.trading.submit(owner, account, limit())) == "policy"
    run(core.trading.set_account_policy(owner, account, {
        "allowed_symbols": ["BTC/*"], "max_notional_usd": "1000", "price_band_percent": "5",
        "max_open_orders": 1, "max_orders_per_minute": 2}))
    assert refusal(core.trading.submit(owner, account, limit(symbol="ETH/USDT", price="3000"))) == "allowed_symbols"
    market = OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount="0.01", client_order_id="m")
    assert refusal(core.trading.submit(owner, account, market)) == "allow_market_orders"
    assert refusal(core.trading.submit(owner, account, limit(amount="0.1"))) == "max_notional_usd"  # 4900 USD
    assert refusal(core.trading.submit(owner, account, limit(price="40000"))) == "price_band_percent"
    assert run(core.trading.submit(owner, account, limit("a"))).order.status == "open"
    assert refusal(core.trading.submit(owner, account, limit("b"))) == "max_open_orders"
    venue.fill_all()
    run(core.trading.list_orders(owner, account))  # the fill is seen: nothing open any more
    assert run(core.trading.submit(owner, account, limit("c"))).order.status == "open"
    venue.fill_all()
    run(core.trading.list_orders(owner, account))
    assert refusal(core.trading.submit(owner, account, limit("d"))) == "max_orders_per_minute"
    run(core.trading.set_account_policy(owner, account, {"kill_switch": True}))
    assert refusal(core.trading.submit(owner, account, limit("e"))) == "kill_switch"
    refused = rows(core, AuditEvent, AuditEvent.action == "order.create", AuditEvent.outcome == "refused")
    assert [r.details["rule"] for r in refused] == ["policy", "allowed_symbols", "allow_market_orders",
                                                    "max_notional_usd", "price_band_percent", "max_open_orders",
                                                    "max_orders_per_minute", "kill_switch"]
    assert venue.created == 2


def test_trade_scope_is_needed_and_write_does_not_imply_it(core: Any) -> None:
    owner, account = setup(core, OPEN_POLICY)
    writer = key_principal(core, owner, ["read", "write", "delete", "write::trade"])
    with pytest.raises(errors.InsufficientScope):
        run(core.trading.submit(writer, account, limit()))
    _, other = setup(core, OPEN_POLICY)
    bound = key_principal(core, owner, ["read", "trade"], account_ids=[account])
    with pytest.raises(errors.NotFound):  # another user's account
        run(core.trading.submit(bound, other, limit()))
    owner_second = run(core.accounts.connect(owner, "binance", {"api_key": f"k-{uuid.uuid4().hex}", "secret": "s"}))
    run(core.trading.set_account_policy(owner, owner_second.id, OPEN_POLICY))
    with pytest.raises(errors.NotFound):  # the owner's, but the key is bound to another
        run(core.trading.submit(bound, owner_second.id, limit()))
    assert run(core.trading.submit(bound, account, limit())).order.key_id == bound.key_id


def test_a_key_only_narrows_and_only_a_password_session_widens(core: Any) -> None:
    owner, account = setup(core)
    trader = key_principal(core, owner, ["read", "write", "trade"])
    assert refusal(core.trading.set_account_policy(trader, account, OPEN_POLICY)) == "policy"  # none: trading off
    run(core.trading.set_account_policy(owner, account, {"max_notional_usd": "1000", "max_open_orders": 5}))
    narrowed = run(core.trading.set_account_policy(trader, account, {"max_notional_usd": "500", "max_open_orders": 5}))
    assert narrowed.policy.max_notional_usd == D(500)
    assert refusal(core.trading.set_account_policy(trader, account, {"max_notional_usd": "600",
                                                                     "max_open_orders": 5})) == "max_notional_usd"
    assert refusal(core.trading.set_account_policy(trader, account, {"max_notional_usd": "500"})) == "max_open_orders"
    assert refusal(core.trading.set_account_policy(trader, account, {
        "max_notional_usd": "500", "max_open_orders": 5, "allow_market_orders": True})) == "allow_market_orders"
    run(core.trading.set_account_policy(trader, account, {"max_notional_usd": "500", "max_open_orders": 5,
                                                          "kill_switch": True}))
    assert refusal(core.trading.set_account_policy(trader, account, {"max_notional_usd": "500",
                                                                     "max_open_orders": 5})) == "kill_switch"
    cleared = run(core.trading.set_account_policy(owner, account, {"max_notional_usd": "2000"}))  # the owner may
    assert not cleared.policy.kill_switch and cleared.policy.max_open_orders is None
    # a key's own policy narrows the account's for that key only
    run(core.trading.set_key_policy(owner, trader.key_id, {"allowed_symbols": ["ETH/*"], "max_notional_usd": "100"}))
    assert refusal(core.trading.submit(trader, account, limit())) == "allowed_symbols"
    assert run(core.trading.submit(owner, account, limit())).order.status == "open"
    assert refusal(core.trading.set_key_policy(trader, trader.key_id, {"allowed_symbols": ["ETH/*", "BTC/*"],
                                                                        "max_notional_usd": "100"})) == "allowed_symbols"


def test_idempotency_same_request_same_order_other_request_conflict(core: Any, venue: Venue) -> None:
    owner, account = setup(core, OPEN_POLICY)
    first = run(core.trading.submit(owner, account, limit("same")))
    again = run(core.trading.submit(owner, account, limit("same")))
    assert not first.replayed and again.replayed and again.order.id == first.order.id
    header = run(core.trading.submit(owner, account, limit(None), idempotency_key="same"))
    assert header.replayed and header.order.id == first.order.id
    with pytest.raises(errors.Conflict):
        run(core.trading.submit(owner, account, limit("same", amount="0.02")))
    with pytest.raises(errors.BadRequest):
        run(core.trading.submit(owner, account, limit("one"), idempotency_key="two"))
    assert venue.created == 1


def test_lost_answer_is_reconciled_never_sent_again(core: Any, venue: Venue) -> None:
    owner, account = setup(core, OPEN_POLICY)
    venue.lose_answer = True
    pending = run(core.trading.submit(owner, account, limit("lost")))
    assert pending.order.status == "pending" and venue.created == 1
    jobs = rows(core, Job, Job.kind == RECONCILE_KIND)
    assert len(jobs) == 2  # the safety net (delayed) and the one for the lost answer (now)
    venue.lose_answer = False
    retried = run(core.trading.submit(owner, account, limit("lost")))
    assert retried.replayed and retried.order.status == "open" and venue.calls.count("create") == 1
    created = rows(core, Event, Event.type == "order.created")
    assert len(created) == 1 and created[0].data["client_order_id"] == "lost"


def test_the_reconcile_job_finds_the_order_or_declares_it_never_placed(core: Any, venue: Venue) -> None:
    owner, account = setup(core, OPEN_POLICY)
    venue.lose_answer = True
    placed = run(core.trading.submit(owner, account, limit("r1"))).order
    venue.lose_answer = False
    registry = Registry(services=core)
    register(registry)
    handler = registry.handlers[RECONCILE_KIND].run

    def job(order_id: int, attempt: int) -> ClaimedJob:
        return ClaimedJob(id=1, kind=RECONCILE_KIND, payload={"order_id": order_id}, attempt=attempt, max_attempts=5,
                          owner="test")

    run(handler(job(placed.id, 1)))  # type: ignore[arg-type]
    assert run(core.trading.get(owner, account, placed.id)).status == "open"
    # an order the venue never received: pending, then rejected/not_placed after the attempts
    venue.lose_answer = True
    venue_orders_before = dict(venue.orders)
    lost = run(core.trading.submit(owner, account, limit("r2"))).order
    venue.orders = venue_orders_before  # it never arrived
    from strongroom.jobs import JobFailed

    with pytest.raises(JobFailed):
        run(handler(job(lost.id, 1)))  # type: ignore[arg-type]
    run(handler(job(lost.id, 3)))  # type: ignore[arg-type]
    final = run(core.trading.get(owner, account, lost.id))
    assert final.status == "rejected" and final.error_code == "not_placed"
    assert venue.calls.count("create") == 2


def test_events_and_audit_of_an_order_life(core: Any, venue: Venue) -> None:
    owner, account = setup(core, OPEN_POLICY)
    one = run(core.trading.submit(owner, account, limit("l1"))).order
    two = run(core.trading.submit(owner, account, limit("l2"))).order
    canceled = run(core.trading.cancel(owner, account, one.id))
    assert canceled.status == "canceled"
    with pytest.raises(errors.Conflict):
        run(core.trading.cancel(owner, account, one.id))
    venue.fill_all()
    assert run(core.trading.get(owner, account, two.id)).status == "closed"
    venue.no_funds = True
    with pytest.raises(InsufficientFunds):
        run(core.trading.submit(owner, account, limit("l3")))
    types = [e.type for e in rows(core, Event, Event.user_id == owner.user_id)]
    assert types.count("order.created") == 2 and types.count("order.canceled") == 1
    assert types.count("order.filled") == 1 and types.count("order.rejected") == 1
    actions = {(a.action, a.outcome) for a in rows(core, AuditEvent, AuditEvent.actor_user_id == owner.user_id)}
    assert {("order.create", "ok"), ("order.cancel", "ok"), ("order.create", "rejected")} <= actions
    rejected = rows(core, Order, Order.client_order_id == "l3")[0]
    assert rejected.status == "rejected" and rejected.error_code == "insufficient_funds"


def test_precision_and_minimums(core: Any) -> None:
    owner, account = setup(core, OPEN_POLICY)
    with pytest.raises(errors.BadRequest) as caught:
        run(core.trading.submit(owner, account, limit("p1", amount="0.0105")))
    assert "0.001" in caught.value.message
    rounded = run(core.trading.submit(owner, account, dataclasses.replace(limit("p2", amount="0.0105"),
                                                                           rounding="down")))
    assert rounded.order.amount == D("0.010")
    with pytest.raises(errors.BadRequest) as caught:
        run(core.trading.submit(owner, account, limit("p3", amount="0.0001")))
    assert caught.value.fields == {"amount": "minimum 0.001"}
    with pytest.raises(errors.BadRequest) as caught:  # 0.001 * 5000 = 5 USDT < 10
        run(core.trading.submit(owner, account, limit("p4", amount="0.001", price="5000")))
    assert "10" in caught.value.message
    with pytest.raises(errors.BadRequest):
        run(core.trading.submit(owner, account, limit("p5", price="49000.001")))


def test_max_open_orders_holds_under_concurrency(core: Any, venue: Venue) -> None:
    owner, account = setup(core, {"max_open_orders": 3, "max_notional_usd": "100000"})

    async def many() -> list[Any]:
        return await asyncio.gather(*(core.trading.submit(owner, account, limit(f"x{i}")) for i in range(12)),
                                    return_exceptions=True)

    outcomes = run(many())
    placed = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, errors.RiskPolicyRefused)]
    assert len(placed) == 3 and len(refused) == 9 and venue.created == 3
    assert {o.rule for o in refused} == {"max_open_orders"}


def test_one_client_order_id_submitted_concurrently_is_one_order(core: Any, venue: Venue) -> None:
    owner, account = setup(core, OPEN_POLICY)

    async def many() -> list[Any]:
        return await asyncio.gather(*(core.trading.submit(owner, account, limit("dup")) for _ in range(20)),
                                    return_exceptions=True)

    outcomes = run(many())
    assert all(not isinstance(o, BaseException) for o in outcomes), outcomes
    assert len({o.order.id for o in outcomes}) == 1 and venue.created == 1
    assert sum(not o.replayed for o in outcomes) == 1


def test_a_key_bound_to_accounts_sees_only_policies_within_them(core: Any) -> None:
    owner, account = setup(core, OPEN_POLICY)
    bound = key_principal(core, owner, ["read", "write", "trade"], account_ids=[account])
    unbound = key_principal(core, owner, ["read", "write", "trade"])
    with pytest.raises(errors.NotFound):
        run(core.trading.key_policy(bound, unbound.key_id))
    assert run(core.trading.key_policy(bound, bound.key_id)).defined is False
    assert run(core.trading.key_policy(unbound, bound.key_id)).subject == f"key:{bound.key_id}"
    _, stranger_account = setup(core, OPEN_POLICY)
    with pytest.raises(errors.NotFound):  # another user's account
        run(core.trading.account_policy(bound, stranger_account))


def test_nothing_sent_leaves_nothing_and_the_same_id_may_be_sent_again(core: Any, venue: Venue) -> None:
    owner, account = setup(core, OPEN_POLICY)
    venue.unavailable = True
    with pytest.raises(errors.ExchangeUnavailable) as caught:
        run(core.trading.submit(owner, account, limit("again")))
    assert caught.value.retry_after == 5
    assert rows(core, Order, Order.client_order_id == "again") == []
    venue.unavailable = False
    placed = run(core.trading.submit(owner, account, limit("again")))
    assert not placed.replayed and placed.order.status == "open" and venue.created == 1
    failed = rows(core, AuditEvent, AuditEvent.action == "order.create", AuditEvent.outcome == "failed")
    assert [f.details["reason"] for f in failed] == ["exchange_unavailable"]


def test_max_orders_per_minute_holds_across_cores_on_one_database(make_core: Callable[..., Any], venue: Venue) -> None:
    """Two cores (as two server processes) on one database: the per-minute count is the database's."""
    first, second = make_core(gateway=venue), make_core(gateway=venue)
    owner, account = setup(first, {"max_orders_per_minute": 4, "max_notional_usd": "100000"})

    async def many() -> list[Any]:
        return await asyncio.gather(*((first if i % 2 else second).trading.submit(owner, account, limit(f"m{i}"))
                                      for i in range(10)), return_exceptions=True)

    outcomes = run(many())
    refused = [o for o in outcomes if isinstance(o, errors.RiskPolicyRefused)]
    assert len(refused) == 6 and {o.rule for o in refused} == {"max_orders_per_minute"}
    assert venue.created == 4


def test_a_placement_commits_once_before_the_venue_is_called_and_once_after(core: Any, venue: Venue) -> None:
    """The admission (the pending row, its delayed reconciliation job, its audit row) is one transaction committed
    before the venue is called; the answer is one more. The first order on an account in a process may take one
    more admission (the venue's rules are learnt first), which writes nothing."""
    owner, account = setup(core, {})
    commits: list[str] = []
    seen_at_venue: list[tuple[int, int, int]] = []
    place = venue.create_order

    async def create_order(info: Any, credentials: Mapping[str, str], spec: OrderSpec) -> OrderState:
        with core.db.engine.connect() as conn:  # another connection: only what is committed
            order = conn.execute(select(Order.id, Order.status).where(Order.account_id == account)
                                 .order_by(Order.id.desc())).first()
            assert order is not None and order.status == "pending"
            jobs = conn.execute(select(Job.id).where(Job.kind == RECONCILE_KIND,
                                                     Job.payload["order_id"].as_integer() == order.id)).all()
            audits = conn.execute(select(AuditEvent.id).where(AuditEvent.target == f"order:{order.id}",
                                                              AuditEvent.outcome == "pending")).all()
            seen_at_venue.append((order.id, len(jobs), len(audits)))
            commits.append("venue")
        return await place(info, credentials, spec)

    venue.create_order = create_order  # type: ignore[method-assign]
    sqlalchemy_event.listen(core.db.engine, "commit", lambda conn: commits.append("commit"))
    first = run(core.trading.submit(owner, account, limit("t1"))).order
    assert commits == ["commit", "commit", "venue", "commit"]  # rules learnt (nothing written), admitted, answer
    commits.clear()
    second = run(core.trading.submit(owner, account, limit("t2"))).order
    assert commits == ["commit", "venue", "commit"] and second.status == "open"
    assert seen_at_venue == [(first.id, 1, 1), (second.id, 1, 1)]
    assert len(rows(core, Order, Order.account_id == account)) == 2


def test_a_policy_changed_between_orders_is_checked_with_the_prices_it_needs(core: Any, venue: Venue) -> None:
    """What the last order on an account needed (no prices) is only a hint: a policy that now values orders gets
    them, under the account's lock."""
    owner, account = setup(core, {})
    run(core.trading.submit(owner, account, limit("h1")))
    assert "tickers" not in venue.calls
    run(core.trading.set_account_policy(owner, account, {"max_notional_usd": "100"}))
    assert refusal(core.trading.submit(owner, account, limit("h2"))) == "max_notional_usd"  # 0.01 x 49000 = 490
    assert "tickers" in venue.calls
    run(core.trading.set_account_policy(owner, account, {"price_band_percent": "1"}))
    assert refusal(core.trading.submit(owner, account, limit("h3", price="40000"))) == "price_band_percent"
    run(core.trading.set_account_policy(owner, account, {}))
    assert run(core.trading.submit(owner, account, limit("h4"))).order.status == "open"
    assert venue.created == 2


def test_a_stranger_learns_nothing_of_an_account_traded_on(core: Any, venue: Venue) -> None:
    """The venue's rules fetched for an account already traded on are checked only after the account is seen to
    be the caller's: another user gets NotFound, whatever the symbol, and nothing is written."""
    owner, account = setup(core, {})
    run(core.trading.submit(owner, account, limit("s1")))
    stranger = new_user(core)
    for symbol in ("BTC/USDT", "XRP/USDT"):  # a market of the venue, and none
        with pytest.raises(errors.NotFound):
            run(core.trading.submit(stranger, account, limit("s2", symbol=symbol)))
    with pytest.raises(errors.ValidationFailed):  # the owner is told about the symbol
        run(core.trading.submit(owner, account, limit("s3", symbol="XRP/USDT")))
    assert [o.client_order_id for o in rows(core, Order, Order.account_id == account)] == ["s1"]
    assert venue.created == 1


@pytest.mark.parametrize("after", range(4))
def test_an_offset_page_of_orders_read_while_one_is_canceled_is_one_state(make_core: Callable[..., Any], venue: Venue,
                                                                            after: int) -> None:
    """find_orders' total and items are one snapshot: an open order canceled (forced) after any statement of the
    read is either still counted and listed open, or neither; never a total that does not match the items."""
    core = make_core(gateway=venue)
    owner, account = setup(core, OPEN_POLICY)
    first, second = (run(core.trading.submit(owner, account, limit(cid))).order for cid in ("a", "b"))
    reader = make_core(gateway=venue)
    wanted = OrderQuery(statuses=("open",))
    run(reader.trading.find_orders(owner, account, wanted))  # the reader's connection is made first
    with commit_after(reader.db.engine, after, lambda: run(core.trading.cancel(owner, account, second.id))):
        page = run(reader.trading.find_orders(owner, account, wanted))
    assert {o.status for o in page.items} == {"open"}
    assert page.total == len(page.items) and not page.has_next, (page.total, [o.id for o in page.items])
    assert [o.id for o in page.items] in ([second.id, first.id], [first.id])


@pytest.mark.parametrize("later_first", [True, False])
def test_a_fill_read_earlier_never_overwrites_a_later_one(make_core: Callable[..., Any], later_first: bool) -> None:
    """Two reads of one open order bring it up to date at once; the venue answers the first with an older fill
    (0.002) and the second with a newer one (0.005). Whichever commits first, the stored fill ends at the newer
    one and never goes back (with ``later_first``, the read that saw 0.002 commits after the one that saw 0.005:
    it wrote 0.002 over 0.005 before)."""

    class Partial(Venue):
        """Answers the open-orders list with scripted fills, the first caller's held until ``release``."""

        def __init__(self) -> None:
            super().__init__()
            self.answers: list[tuple[Decimal, asyncio.Event | None]] = []

        async def fetch_open_orders(self, info: Any, credentials: Mapping[str, str],
                                    symbol: str | None = None) -> list[OrderState]:
            filled, wait = self.answers.pop(0)
            if wait is not None:
                await wait.wait()
            return [dataclasses.replace(s, filled=filled) for s in self.orders.values() if s.status == "open"]

    venue = Partial()
    core = make_core(gateway=venue)
    owner, account = setup(core, OPEN_POLICY)
    order = run(core.trading.submit(owner, account, limit("part"))).order

    async def race() -> list[Any]:
        release = asyncio.Event()
        # the first read gets the held answer: older (0.002) when the later fill commits first, else newer
        older, newer = D("0.002"), D("0.005")
        venue.answers = [(older, release), (newer, None)] if later_first else [(newer, release), (older, None)]
        first = asyncio.create_task(core.trading.get(owner, account, order.id))
        await asyncio.sleep(0.05)  # the first read is waiting for the venue's answer
        second = await core.trading.get(owner, account, order.id)
        release.set()
        return [await first, second]

    answers = run(race())
    stored = rows(core, Order, Order.id == order.id)[0]
    assert D(stored.filled) == D("0.005") and stored.status == "open"
    if later_first:  # the late read of the older fill answers what is stored, as the other read does
        assert [a.filled for a in answers] == [D("0.005"), D("0.005")]
