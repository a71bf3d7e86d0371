"""/v1 orders and trading policies (issue 19): shapes only; the rules live in ``strongroom.trading``.

Amounts, prices and limits are decimal strings. Placing and canceling need scope ``trade``; a refusal by a risk
policy is 403 ``risk_policy`` with ``rule`` naming the field that refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from strongroom.errors import (
    BadRequest,
    Conflict,
    CredentialsUnreadable,
    ExchangeNotSupported,
    ExchangeUnavailable,
    RiskPolicyRefused,
)
from strongroom.exchanges.orders import InsufficientFunds, OrderRejected
from strongroom.surfaces.deps import CurrentPrincipal, TradingDep
from strongroom.surfaces.native.schemas import AccountId, Cursor, KeyIdPath, Limit, PageOut, Strict
from strongroom.surfaces.openapi import body_example, raises
from strongroom.surfaces.wire import DecimalText, one_of
from strongroom.trading import OrderRequest, OrderView, PolicyView

api = APIRouter(tags=["trading"])

ORDER_EXAMPLE: dict[str, Any] = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.01", "price": "49000",
                 "time_in_force": "GTC", "client_order_id": "bot1-0001"}
POLICY_EXAMPLE: dict[str, Any] = {"allowed_symbols": ["BTC/USDT", "ETH/*"], "max_notional_usd": "5000", "max_open_orders": 10,
                  "max_orders_per_minute": 30, "price_band_percent": "5", "allow_market_orders": False,
                  "kill_switch": False}


# --------------------------------------------------------------------------- wire models


class OrderIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ORDER_EXAMPLE]})

    symbol: str = Field(max_length=41, description="The market in ccxt form, BASE/QUOTE.", examples=["BTC/USDT"])
    side: Annotated[str, one_of(("buy", "sell"))] = Field(description="buy or sell.", examples=["buy"])
    type: Annotated[str, one_of(("limit", "market"))] = Field(description="limit or market (market orders only "
                                                                          "where the policy allows them).",
                                                              examples=["limit"])
    amount: DecimalText = Field(max_length=40, description="The amount of the base asset (decimal string), on the "
                                                           "venue's amount step unless rounding is down.",
                                examples=["0.01"])
    price: DecimalText | None = Field(None, max_length=40, description="The limit price (decimal string, on the "
                                                                       "venue's price step); limit orders only.",
                                      examples=["49000"])
    time_in_force: Annotated[str | None, one_of(("GTC", "IOC", "FOK"))] = Field(
        None, description="GTC, IOC or FOK (default: the venue's, GTC).", examples=["GTC"])
    client_order_id: str | None = Field(None, max_length=64, description="Your id for the order (1-64 of letters, "
                                                                         "digits and . _ : / -), unique per account: "
                                                                         "sending the same order again returns it "
                                                                         "(200) instead of placing another; another "
                                                                         "order with it is 409. Default: the "
                                                                         "Idempotency-Key header, else a new id.",
                                        examples=["bot1-0001"])
    post_only: bool = Field(False, description="Maker only: the venue refuses it rather than fill at once.")
    rounding: Annotated[str, one_of(("none", "down"))] = Field(
        "none", description="none: an amount off the venue's step is refused (400); down: rounded down to it.",
        examples=["none"])


class FeeOut(BaseModel):
    currency: str = Field(description="The fee's asset.", examples=["USDT"])
    cost: DecimalText = Field(description="The fee (decimal string).", examples=["0.49"])


class OrderOut(BaseModel):
    id: int = Field(description="Strongroom's id of the order.", examples=[12])
    account_id: int = Field(description="The exchange account's id.", examples=[3])
    exchange_order_id: str | None = Field(description="The venue's id (null while pending).", examples=["28457"])
    client_order_id: str = Field(description="The client order id (the idempotency key).", examples=["bot1-0001"])
    symbol: str = Field(description="The market, BASE/QUOTE.", examples=["BTC/USDT"])
    side: str = Field(description="buy or sell.", examples=["buy"])
    type: str = Field(description="limit or market.", examples=["limit"])
    amount: DecimalText = Field(description="The amount ordered (decimal string).", examples=["0.01"])
    price: DecimalText | None = Field(description="The limit price (null for market orders).", examples=["49000"])
    status: str = Field(description="pending (the venue's answer is being reconciled), open, closed (filled), "
                                    "canceled, rejected or expired.", examples=["open"])
    filled: DecimalText = Field(description="The amount filled so far (decimal string).", examples=["0"])
    average_price: DecimalText | None = Field(description="The average fill price, where the venue reports it.",
                                              examples=[None])
    fees: list[FeeOut] = Field(description="The fees charged, where the venue reports them.")
    time_in_force: str | None = Field(description="GTC, IOC or FOK as asked.", examples=["GTC"])
    post_only: bool = Field(description="Maker only.")
    error_code: str | None = Field(description="Why a rejected order was rejected (insufficient_funds, "
                                               "order_rejected, not_placed, ...).", examples=[None])
    created_at: datetime = Field(description="When Strongroom accepted the order.")
    updated_at: datetime = Field(description="When its state last changed.")


class CanceledOut(BaseModel):
    canceled: list[OrderOut] = Field(description="The orders canceled now.")


class PolicyIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [POLICY_EXAMPLE]})

    allowed_symbols: list[str] | None = Field(None, description="Markets allowed: exact (BTC/USDT) or any quote of "
                                                                "a base (BTC/*); null: every market.",
                                              examples=[["BTC/USDT", "ETH/*"]])
    max_notional_usd: DecimalText | None = Field(None, description="Each order's value at most this in USD "
                                                                   "(decimal string, valued from the venue's "
                                                                   "tickers); null: no limit.", examples=["5000"])
    max_open_orders: int | None = Field(None, ge=0, description="Open orders at most; null: no limit.",
                                        examples=[10])
    max_orders_per_minute: int | None = Field(None, ge=0, description="Orders placed in any 60 seconds at most "
                                                                      "(across every Strongroom process); null: no "
                                                                      "limit.", examples=[30])
    price_band_percent: DecimalText | None = Field(None, description="A limit price at most this many percent from "
                                                                     "the last price; null: no limit.",
                                                   examples=["5"])
    allow_market_orders: bool = Field(False, description="Market orders allowed (false by default).")
    kill_switch: bool = Field(False, description="Refuse every new order (cancel the open ones with "
                                                 "POST .../orders/cancel-all).")


class PolicyOut(BaseModel):
    subject: str = Field(description="Whose policy: account:<id> or key:<key id>.", examples=["account:3"])
    defined: bool = Field(description="False: none is set (an account without one does not trade).")
    allowed_symbols: list[str] | None = Field(description="Markets allowed (null: every market).",
                                              examples=[["BTC/USDT", "ETH/*"]])
    max_notional_usd: DecimalText | None = Field(description="Per order, in USD (null: no limit).",
                                                 examples=["5000"])
    max_open_orders: int | None = Field(description="Open orders at most (null: no limit).", examples=[10])
    max_orders_per_minute: int | None = Field(description="Orders a minute at most (null: no limit).", examples=[30])
    price_band_percent: DecimalText | None = Field(description="Limit price band around the last price, percent "
                                                               "(null: no limit).", examples=["5"])
    allow_market_orders: bool = Field(description="Market orders allowed.")
    kill_switch: bool = Field(description="Every new order refused.")
    updated_at: datetime | None = Field(description="When it was last set.")


OrderIdPath = Annotated[int, Path(description="Strongroom's id of the order.", examples=[12])]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=64,
                                              description="The client order id, as a header (must equal "
                                                          "client_order_id when both are given).")]
PLACE_ERRORS = (RiskPolicyRefused, Conflict, BadRequest, InsufficientFunds, OrderRejected, ExchangeUnavailable,
                ExchangeNotSupported, CredentialsUnreadable)


# --------------------------------------------------------------------------- mapping


def _text(value: Any) -> str | None:
    return None if value is None else format(value.normalize(), "f") if value else "0"


def order_out(view: OrderView) -> OrderOut:
    return OrderOut(id=view.id, account_id=view.account_id, exchange_order_id=view.exchange_order_id,
                    client_order_id=view.client_order_id, symbol=view.symbol, side=view.side, type=view.type,
                    amount=_text(view.amount) or "0", price=_text(view.price), status=view.status,
                    filled=_text(view.filled) or "0", average_price=_text(view.average_price),
                    fees=[FeeOut(currency=c, cost=_text(cost) or "0") for c, cost in view.fees],
                    time_in_force=view.time_in_force, post_only=view.post_only, error_code=view.error_code,
                    created_at=view.created_at, updated_at=view.updated_at)


def policy_out(view: PolicyView) -> PolicyOut:
    return PolicyOut(subject=view.subject, defined=view.defined, updated_at=view.updated_at, **view.policy.as_dict())


# --------------------------------------------------------------------------- routes


@api.post("/exchange-accounts/{account_id}/orders", response_model=OrderOut, status_code=201,
          summary="Place an order through an exchange account.", openapi_extra=body_example(ORDER_EXAMPLE),
          responses={200: {"description": "This client_order_id's order, placed before (nothing sent again).",
                           "model": OrderOut},
                     202: {"description": "Accepted, the venue's answer unknown: pending, reconciled by its client "
                                          "order id (read it again).", "model": OrderOut}})
@raises(*PLACE_ERRORS)
async def place_order(account_id: AccountId, body: OrderIn, principal: CurrentPrincipal, trading: TradingDep,
                      response: Response, idempotency_key: IdempotencyKey = None) -> OrderOut:
    """Place an order (scope ``trade``; the account needs a trading policy). 201 placed; 200 the same
    ``client_order_id`` again (the same order; another order with it is 409); 202 pending when the venue's answer
    was lost (reconciled, never sent twice). 403 ``risk_policy`` with ``rule`` naming the policy field that
    refused; 400 below the venue's minimum or off its step (naming it), ``insufficient_funds``,
    ``order_rejected``."""
    request = OrderRequest(symbol=body.symbol, side=body.side, type=body.type, amount=body.amount, price=body.price,
                           time_in_force=body.time_in_force, client_order_id=body.client_order_id,
                           post_only=body.post_only, rounding=body.rounding)
    submitted = await trading.submit(principal, account_id, request, idempotency_key=idempotency_key)
    if submitted.replayed:
        response.status_code = 200
    elif submitted.order.status == "pending":
        response.status_code = 202
    return order_out(submitted.order)


@api.get("/exchange-accounts/{account_id}/orders", response_model=PageOut[OrderOut],
         summary="List an account's orders.")
async def list_orders(
    account_id: AccountId,
    principal: CurrentPrincipal,
    trading: TradingDep,
    status: Annotated[str, Query(description="open (pending or open at the venue) or closed (filled, canceled, "
                                             "rejected, expired)."), one_of(("open", "closed"))] = "open",
    symbol: Annotated[str | None, Query(max_length=41, description="Only this market (BASE/QUOTE).",
                                        examples=["BTC/USDT"])] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> PageOut[OrderOut]:
    """The account's orders placed through Strongroom, newest first, a page at a time (scope ``read`` or
    ``trade``), brought up to date with the venue first (a fill is ``closed``)."""
    page = await trading.list_orders(principal, account_id, status=status, symbol=symbol, cursor=cursor, limit=limit)
    return PageOut(items=[order_out(v) for v in page.items], next_cursor=page.next_cursor)


@api.get("/exchange-accounts/{account_id}/orders/{order_id}", response_model=OrderOut, summary="Read an order.")
async def get_order(account_id: AccountId, order_id: OrderIdPath, principal: CurrentPrincipal,
                    trading: TradingDep) -> OrderOut:
    """One order, brought up to date with the venue when not final (scope ``read`` or ``trade``)."""
    return order_out(await trading.get(principal, account_id, order_id))


@api.delete("/exchange-accounts/{account_id}/orders/{order_id}", response_model=OrderOut,
            summary="Cancel an order.")
@raises(Conflict, ExchangeUnavailable)
async def cancel_order(account_id: AccountId, order_id: OrderIdPath, principal: CurrentPrincipal,
                       trading: TradingDep) -> OrderOut:
    """Cancel an open order at the venue (scope ``trade``); 409 when it is already closed or canceled."""
    return order_out(await trading.cancel(principal, account_id, order_id))


@api.post("/exchange-accounts/{account_id}/orders/cancel-all", response_model=CanceledOut,
          summary="Cancel every open order of an account.")
@raises(ExchangeUnavailable)
async def cancel_all(
    account_id: AccountId,
    principal: CurrentPrincipal,
    trading: TradingDep,
    symbol: Annotated[str | None, Query(max_length=41, description="Only this market's orders.",
                                        examples=["BTC/USDT"])] = None,
) -> CanceledOut:
    """Cancel every open order placed through Strongroom on the account (scope ``trade``; also under the kill
    switch); the answer lists those canceled."""
    return CanceledOut(canceled=[order_out(v) for v in await trading.cancel_all(principal, account_id, symbol=symbol)])


@api.get("/exchange-accounts/{account_id}/trading-policy", response_model=PolicyOut,
         summary="Read an account's trading policy.")
async def get_account_policy(account_id: AccountId, principal: CurrentPrincipal, trading: TradingDep) -> PolicyOut:
    """The account's risk policy (``defined`` false: none, and the account does not trade)."""
    return policy_out(await trading.account_policy(principal, account_id))


@api.put("/exchange-accounts/{account_id}/trading-policy", response_model=PolicyOut,
         summary="Set an account's trading policy.", openapi_extra=body_example(POLICY_EXAMPLE))
@raises(RiskPolicyRefused, Conflict)
async def put_account_policy(account_id: AccountId, body: PolicyIn, principal: CurrentPrincipal,
                             trading: TradingDep) -> PolicyOut:
    """Replace the account's risk policy (absent fields: no limit, false). Only the owner signed in with a
    password, or an admin, may widen it or clear the kill switch; a key (scope ``write`` or ``trade``) may only
    narrow it or set the kill switch (403 ``risk_policy``, ``rule`` the field)."""
    return policy_out(await trading.set_account_policy(principal, account_id, body.model_dump()))


@api.get("/api-keys/{key_id}/trading-policy", response_model=PolicyOut, summary="Read an API key's trading policy.")
async def get_key_policy(key_id: KeyIdPath, principal: CurrentPrincipal, trading: TradingDep) -> PolicyOut:
    """The key's own risk policy: it narrows the policy of every account the key trades on."""
    return policy_out(await trading.key_policy(principal, key_id))


@api.put("/api-keys/{key_id}/trading-policy", response_model=PolicyOut, summary="Set an API key's trading policy.",
         openapi_extra=body_example(POLICY_EXAMPLE))
@raises(RiskPolicyRefused, Conflict)
async def put_key_policy(key_id: KeyIdPath, body: PolicyIn, principal: CurrentPrincipal,
                         trading: TradingDep) -> PolicyOut:
    """Replace the key's risk policy; it only ever narrows the account's (each limit the tighter of the two).
    Widening it or clearing its kill switch takes the owner signed in with a password, or an admin."""
    return policy_out(await trading.set_key_policy(principal, key_id, body.model_dump()))
