"""``strongroom serve`` with one change, for an informational baseline: ``/healthz`` is moved to the
front of the route list (the app registers it after the /v1 routers, so FastAPI tries every /v1
route before it). Everything else is what ``strongroom serve`` does (strongroom/cli.py).

Usage: python -m bench.serve_variant HOST PORT (settings from STRONGROOM_* like the real command)
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str]) -> int:
    import uvicorn

    from strongroom.app import create_app
    from strongroom.core import build_core
    from strongroom.settings import get_settings

    host, port = argv[0], int(argv[1])
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    core = build_core(settings)
    core.users.bootstrap_admin()
    app = create_app(settings, core=core)
    routes = app.router.routes
    routes.insert(0, routes.pop(next(i for i, r in enumerate(routes) if getattr(r, "path", "") == "/healthz")))
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level, proxy_headers=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
