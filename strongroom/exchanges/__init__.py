"""Exchange catalogue (data only, no ccxt import) and live credential validators.

``strongroom.exchanges.validators`` imports ccxt lazily, inside its functions only.
"""

from strongroom.exchanges.catalogue import Catalogue, ExchangeInfo, get_catalogue

__all__ = ["Catalogue", "ExchangeInfo", "get_catalogue"]
