"""Exchanges: the catalogue (data only, no ccxt import) and the gateway for live calls.

* ``catalogue``: which venues exist and which credential fields each needs.
* ``client``: the ccxt client factory (imports ccxt lazily) and error classification.
* ``venues``: one class per venue quirk, registered by catalogue id.
* ``orders``: what an order asks and what the venue says of it (``OrderSpec``, ``OrderState``,
  ``MarketRules``) and the order errors.
* ``gateway``: ``ExchangeGateway``, the one async entry point for live calls (key checks,
  balances, prices, orders), with its client pool and per-venue limits.
"""

from strongroom.exchanges.catalogue import Catalogue, ExchangeInfo, get_catalogue
from strongroom.exchanges.orders import MarketRules, OrderSpec, OrderState

__all__ = ["Catalogue", "ExchangeInfo", "MarketRules", "OrderSpec", "OrderState", "get_catalogue"]
