"""The web console at /console: server-rendered pages (Jinja2) enhanced by htmx, calling the services
through :mod:`strongroom.console.backend` (never the HTTP API).

Imported on the first request to /console (``strongroom.app.LazyConsole``), not at start.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from strongroom.settings import Settings


def create_console(settings: Settings) -> ASGIApp:
    """Return the console's ASGI app (mounted at /console)."""
    from strongroom.console.pages import build

    return build(settings)
