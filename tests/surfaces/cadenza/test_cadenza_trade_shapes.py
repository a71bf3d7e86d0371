"""Cadenza's trade order vocabulary (issue 19): order UUIDs, instrument ids, statuses (no server needed)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from strongroom.errors import ValidationFailed
from strongroom.surfaces.cadenza.shapes import (
    ORDER_STATUS_IN,
    cadenza_venue,
    instrument_in,
    order_id_of,
    order_status_out,
    order_uuid,
)


@pytest.mark.parametrize("order_id", [1, 2, 42, 2**31 - 1])
def test_order_uuids_are_stable_and_reversible(order_id: int) -> None:
    made = order_uuid(order_id)
    assert made == order_uuid(order_id) and made.version == 8 and made.variant == uuid.RFC_4122
    assert order_id_of(made) == order_id and order_id_of(uuid.UUID(str(made).upper())) == order_id


@pytest.mark.parametrize("foreign", [uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=(order_uuid(1).int >> 64) << 64),
                                     uuid.UUID(int=order_uuid(1).int + 2**31)])
def test_other_uuids_are_no_order(foreign: uuid.UUID) -> None:
    assert order_id_of(foreign) is None


def test_instrument_ids() -> None:
    assert instrument_in("BINANCE:BTC/USDT", "BINANCE") == "BTC/USDT"
    assert instrument_in(" okx:eth/btc ", "OKX") == "ETH/BTC"
    for bad in (None, "BTC/USDT", "BINANCE:BTCUSDT", "BINANCE:/USDT", "BINANCE:BTC/", "BINANCE:A/B/C",
                "OKX:BTC/USDT"):
        with pytest.raises(ValidationFailed) as caught:
            instrument_in(bad, "BINANCE")
        assert "instrumentId" in caught.value.fields


def test_statuses_and_venues() -> None:
    assert [order_status_out(s, Decimal(0)) for s in ("pending", "open", "closed", "canceled", "rejected",
                                                       "expired")] == [
        "SUBMITTED", "ACCEPTED", "FILLED", "CANCELLED", "REJECTED", "EXPIRED"]
    assert order_status_out("open", Decimal("0.1")) == "PARTIALLY_FILLED"
    assert ORDER_STATUS_IN["PARTIALLY_FILLED"] == (("open",), True) and ORDER_STATUS_IN["REVOKED"] == ((), None)
    assert cadenza_venue("binance") == "BINANCE" and cadenza_venue("okx") == "OKX"
    with pytest.raises(ValidationFailed):
        cadenza_venue("coinbase")
