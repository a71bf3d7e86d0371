"""The mock's ASGI app: Binance, OKX and control routes over one fresh ``MockState``."""

from __future__ import annotations

from starlette.applications import Starlette

from devtools.mock_exchange import binance, control, okx
from devtools.mock_exchange.state import MockState


def create_app() -> Starlette:
    """Return a fresh mock app with the demo accounts, default balances and prices, and mode ``normal``."""
    app = Starlette(routes=[*binance.ROUTES, *okx.ROUTES, *control.ROUTES])
    app.state.mock = MockState()
    return app
