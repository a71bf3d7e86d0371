"""Cadenza's spelling of the core's names, without the wire models (what the error table needs: the
surface answers errors before its routes and models are imported)."""

from __future__ import annotations

# where a core or generic field name is not Cadenza's (error messages name Cadenza's)
WIRE_FIELDS = {"api_key": "apiKey", "secret": "apiSecret", "passphrase": "apiPassphrase", "address": "apiKey",
               "private_key": "apiSecret", "exchange": "venue", "account_type": "accountType",
               "credentials": "apiKey", "symbol": "instrumentId", "side": "orderSide", "type": "orderType",
               "amount": "quantity", "price": "limitPrice", "time_in_force": "timeInForce",
               "client_order_id": "clientOrderId", "rounding": "quantityRounding", "post_only": "orderType"}


def venue(exchange: str) -> str:
    """Cadenza's spelling of a catalogue id: upper case (``binance`` -> ``BINANCE``, ``okx`` -> ``OKX``)."""
    return exchange.upper()


__all__ = ["WIRE_FIELDS", "venue"]
