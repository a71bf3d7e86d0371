"""Venue classes, registered by catalogue id: ``venue_for(info)`` picks one, never an if-chain over names.

A catalogue entry whose ``validator`` is ``"ccxt"`` gets its registered subclass, or the generic
``Venue``; an entry without one (venues ccxt lacks) has no live support (``venue_for`` returns None).
"""

from __future__ import annotations

from strongroom.exchanges.catalogue import ExchangeInfo
from strongroom.exchanges.venues.base import Venue
from strongroom.exchanges.venues.binance import BinanceVenue
from strongroom.exchanges.venues.okx import OkxVenue

VENUE_CLASSES: tuple[type[Venue], ...] = (BinanceVenue, OkxVenue)

# catalogue id -> venue class (every id a subclass declares)
REGISTRY: dict[str, type[Venue]] = {venue_id: cls for cls in VENUE_CLASSES for venue_id in cls.ids}

# catalogue "validator" value -> the class for venues without a subclass of their own
KINDS: dict[str, type[Venue]] = {"ccxt": Venue}


def venue_for(info: ExchangeInfo) -> Venue | None:
    """Return the venue object for ``info`` (resolved catalogue entry), or None if it has no live support."""
    kind = KINDS.get(info.validator) if info.validator else None
    if kind is None:
        return None
    return REGISTRY.get(info.id, kind)(info)


__all__ = ["REGISTRY", "BinanceVenue", "OkxVenue", "Venue", "venue_for"]
