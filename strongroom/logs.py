"""Logging: plain or JSON lines (``STRONGROOM_LOG_FORMAT``), each with the request id of the request
it belongs to (also returned as ``X-Request-ID``) and an ISO 8601 UTC time. Messages never carry
secrets: the code logs error types, not error texts.

For log pipelines: no ANSI colour codes and no ``color_message`` field (uvicorn adds both), and one
access record per request (logger ``strongroom.access``, from the edge guard's send hook: no extra
coroutine): method, route template, status, duration_ms, request_id, user_id and key_id when the
caller authenticated, client_ip. uvicorn's own access log is off under ``strongroom serve``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

REQUEST_ID: ContextVar[str | None] = ContextVar("strongroom_request_id", default=None)
# a request id the client sent is used if it looks like one (no spaces, quotes or control characters)
CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PREFIX = os.urandom(4).hex()
_counter = itertools.count(1)


def new_request_id() -> str:
    """Return an id unique to this process's lifetime: a random process prefix and a counter."""
    return f"{_PREFIX}-{next(_counter):x}"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ACCESS = logging.getLogger("strongroom.access")


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (or ``-``) to every record; drops colour (uvicorn's ``color_message``, ANSI codes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):  # the access record carries its own
            record.request_id = REQUEST_ID.get() or "-"
        record.__dict__.pop("color_message", None)
        if isinstance(record.msg, str) and "\x1b" in record.msg:
            record.msg = _ANSI.sub("", record.msg)
        return True


def iso_utc(created: float) -> str:
    """Return ``created`` (epoch seconds) as ISO 8601 UTC with milliseconds: ``2026-12-07T01:02:03.456Z``."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PlainFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso_utc(record.created)


class JsonLineFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso_utc(record.created)


def access(scope: MutableMapping[str, Any], status: int, started: float, request_id: str) -> None:
    """Log the access record of a request answered ``status`` (``started``: its ``time.perf_counter()``)."""
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    route = scope.get("route")
    template = scope.get("root_path", "") + getattr(route, "path", "") if route is not None else "-"
    principal = scope.get("state", {}).get("principal")
    client = scope.get("client")
    client_ip = getattr(principal, "client_ip", None) or (client[0] if client else None)
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    ACCESS.info("%s %s %d %.2fms", scope["method"], template, status, duration_ms, extra={
        "method": scope["method"], "route": template, "status": status, "duration_ms": duration_ms,
        "request_id": request_id, "user_id": getattr(principal, "user_id", None),
        "key_id": getattr(principal, "key_id", None), "client_ip": client_ip})


PLAIN = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure(level: str, fmt: str) -> None:
    """Configure the root logger (and uvicorn's, which keep their own handlers) for ``fmt``: plain or json."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonLineFormatter("%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
                                               rename_fields={"asctime": "time", "levelname": "level",
                                                              "name": "logger"}))
    else:
        handler.setFormatter(PlainFormatter(PLAIN))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # httpx logs every request at INFO with its whole URL: a webhook receiver's URL may carry its token, and the
    # line adds nothing to the delivery's attempt log. Debug shows them.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG if level.lower() == "debug" else logging.WARNING)


def quiet_logging() -> None:
    """Keep library log lines off the terminal (errors are reported once, by us), unless
    STRONGROOM_LOG_LEVEL=debug asks for everything."""
    root = logging.getLogger()
    if os.environ.get("STRONGROOM_LOG_LEVEL", "").strip().lower() == "debug":
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    elif not root.handlers:
        root.addHandler(logging.NullHandler())
