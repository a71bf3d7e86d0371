"""``strongroom orders``: list, show and cancel orders placed through Strongroom; and ``strongroom accounts policy``:
show and set an account's trading policy. The operator acts as an admin (audited as the command line)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import typer

from strongroom.cli.context import OPERATOR, confirm, fail, open_core
from strongroom.cli.output import iso, record, said, table
from strongroom.core import Core
from strongroom.trading import OrderView, PolicyView

T = TypeVar("T")

app = typer.Typer(help="Orders placed through Strongroom: list, show, cancel.", no_args_is_help=True)
policy_app = typer.Typer(help="An account's trading policy: show, set.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of text.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
AccountId = Annotated[int, typer.Argument(help="The exchange account's id.")]
OrderId = Annotated[int, typer.Argument(help="The order's id (Strongroom's).")]
COLUMNS = [("id", "ID"), ("client_order_id", "CLIENT ID"), ("symbol", "SYMBOL"), ("side", "SIDE"), ("type", "TYPE"),
           ("amount", "AMOUNT"), ("price", "PRICE"), ("status", "STATUS"), ("filled", "FILLED"),
           ("created_at", "CREATED")]


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f") if value else "0"


def order_shape(view: OrderView) -> dict[str, Any]:
    """An order as the command line prints it (the /v1 shape's fields)."""
    return {"id": view.id, "account_id": view.account_id, "exchange_order_id": view.exchange_order_id,
            "client_order_id": view.client_order_id, "symbol": view.symbol, "side": view.side, "type": view.type,
            "amount": _text(view.amount), "price": _text(view.price), "status": view.status,
            "filled": _text(view.filled), "average_price": _text(view.average_price),
            "fees": [{"currency": c, "cost": _text(cost)} for c, cost in view.fees],
            "time_in_force": view.time_in_force, "post_only": view.post_only, "error_code": view.error_code,
            "key_id": view.key_id, "created_at": iso(view.created_at), "updated_at": iso(view.updated_at)}


def policy_shape(view: PolicyView) -> dict[str, Any]:
    """A policy as the command line prints it."""
    return {"subject": view.subject, "defined": view.defined, **view.policy.as_dict(),
            "updated_at": iso(view.updated_at)}


def live(core: Core, call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call()`` (it may reach the exchange) on one event loop, closing the gateway's clients after."""

    async def main() -> T:
        try:
            return await call()
        finally:
            await core.gateway.aclose()

    return asyncio.run(main())


@app.command("list")
def orders_list(account_id: AccountId,
                status: Annotated[str, typer.Option(help="open or closed.")] = "open",
                symbol: Annotated[str | None, typer.Option(help="Only this market (BASE/QUOTE).")] = None,
                as_json: Json = False) -> None:
    """List an account's orders placed through Strongroom, newest first (brought up to date with the venue)."""
    with open_core() as core:
        async def every() -> list[OrderView]:
            found: list[OrderView] = []
            cursor: str | None = None
            while True:
                page = await core.trading.list_orders(OPERATOR, account_id, status=status, symbol=symbol,
                                                      cursor=cursor, limit=200)
                found.extend(page.items)
                if not page.next_cursor:
                    return found
                cursor = page.next_cursor

        orders = live(core, every)
    table([order_shape(o) for o in orders], COLUMNS, as_json=as_json, empty=f"no {status} orders")


@app.command("show")
def orders_show(account_id: AccountId, order_id: OrderId, as_json: Json = False) -> None:
    """Show one order (brought up to date with the venue when not final)."""
    with open_core() as core:
        order = live(core, lambda: core.trading.get(OPERATOR, account_id, order_id))
    record(order_shape(order), as_json=as_json)


@app.command("cancel")
def orders_cancel(account_id: AccountId,
                  order_id: Annotated[int | None, typer.Argument(help="The order's id; omit with --all.")] = None,
                  every_open: Annotated[bool, typer.Option("--all", help="Cancel every open order of the "
                                                           "account.")] = False,
                  yes: Yes = False, as_json: Json = False) -> None:
    """Cancel one open order, or with --all every open order of the account, at the venue."""
    if (order_id is None) == (not every_open):
        fail("give an order id or --all (not both)", 2)
    with open_core() as core:
        if order_id is not None:
            order = live(core, lambda: core.trading.cancel(OPERATOR, account_id, order_id))
            if as_json:
                record(order_shape(order), as_json=True)
            else:
                said(f"order {order.id} ({order.symbol} {order.side} {_text(order.amount)}) is {order.status}")
            return
        confirm(f"Cancel every open order of account {account_id}?", yes)
        canceled = live(core, lambda: core.trading.cancel_all(OPERATOR, account_id))
    if as_json:
        table([order_shape(o) for o in canceled], COLUMNS, as_json=True)
    else:
        said(f"canceled {len(canceled)} order(s) of account {account_id}")


@policy_app.command("show")
def policy_show(account_id: AccountId, as_json: Json = False) -> None:
    """Show an account's trading policy (defined false: none, and the account does not trade)."""
    with open_core() as core:
        view = live(core, lambda: core.trading.account_policy(OPERATOR, account_id))
    record(policy_shape(view), as_json=as_json)


def _limit(value: str | None, current: Any, integer: bool = False) -> Any:
    """An option's value: unchanged when not given, None for ``none``, else the number (as text for decimals)."""
    if value is None:
        return current
    if value.strip().lower() == "none":
        return None
    if integer:
        try:
            return int(value)
        except ValueError:
            fail(f"not a whole number: {value!r}", 2)
    return value


@policy_app.command("set")
def policy_set(
    account_id: AccountId,
    allowed_symbols: Annotated[str | None, typer.Option(help="Comma-separated BASE/QUOTE or BASE/*; 'none': every "
                                                             "market.")] = None,
    max_notional_usd: Annotated[str | None, typer.Option(help="Per order, USD; 'none': no limit.")] = None,
    max_open_orders: Annotated[str | None, typer.Option(help="Open orders at most; 'none': no limit.")] = None,
    max_orders_per_minute: Annotated[str | None, typer.Option(help="Orders a minute at most; 'none': no "
                                                                   "limit.")] = None,
    price_band_percent: Annotated[str | None, typer.Option(help="Limit price band around the last price, percent; "
                                                                "'none': no limit.")] = None,
    allow_market_orders: Annotated[bool | None, typer.Option("--allow-market-orders/--no-market-orders",
                                                             help="Allow market orders.")] = None,
    kill_switch: Annotated[bool | None, typer.Option("--kill-switch/--no-kill-switch",
                                                     help="Refuse every new order.")] = None,
    as_json: Json = False,
) -> None:
    """Set an account's trading policy: the options given change those fields, the others stay (a new policy
    starts with no limits, market orders off and the kill switch off)."""
    with open_core() as core:
        current = live(core, lambda: core.trading.account_policy(OPERATOR, account_id)).policy.as_dict()
        symbols = current["allowed_symbols"]
        if allowed_symbols is not None:
            symbols = (None if allowed_symbols.strip().lower() == "none"
                       else [s.strip() for s in allowed_symbols.split(",") if s.strip()])
        body = {"allowed_symbols": symbols,
                "max_notional_usd": _limit(max_notional_usd, current["max_notional_usd"]),
                "max_open_orders": _limit(max_open_orders, current["max_open_orders"], integer=True),
                "max_orders_per_minute": _limit(max_orders_per_minute, current["max_orders_per_minute"], integer=True),
                "price_band_percent": _limit(price_band_percent, current["price_band_percent"]),
                "allow_market_orders": current["allow_market_orders"] if allow_market_orders is None
                else allow_market_orders,
                "kill_switch": current["kill_switch"] if kill_switch is None else kill_switch}
        view = live(core, lambda: core.trading.set_account_policy(OPERATOR, account_id, body))
    if as_json:
        record(policy_shape(view), as_json=True)
    else:
        said(f"account {account_id}: trading policy set" + (" (kill switch on)" if view.policy.kill_switch else ""))
