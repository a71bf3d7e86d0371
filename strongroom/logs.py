"""Logging: plain or JSON lines (``STRONGROOM_LOG_FORMAT``), each with the request id of the request
it belongs to (also returned as ``X-Request-ID``). Messages never carry secrets: the code logs error
types, not error texts."""

from __future__ import annotations

import itertools
import logging
import os
import re
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

REQUEST_ID: ContextVar[str | None] = ContextVar("strongroom_request_id", default=None)
# a request id the client sent is used if it looks like one (no spaces, quotes or control characters)
CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PREFIX = os.urandom(4).hex()
_counter = itertools.count(1)


def new_request_id() -> str:
    """Return an id unique to this process's lifetime: a random process prefix and a counter."""
    return f"{_PREFIX}-{next(_counter):x}"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (or ``-``) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or "-"
        return True


PLAIN = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure(level: str, fmt: str) -> None:
    """Configure the root logger (and uvicorn's, which keep their own handlers) for ``fmt``: plain or json."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
                                           rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter(PLAIN))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True

