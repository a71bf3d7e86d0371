"""Fixtures of the console's tests: a server of their own on each database (so the demo exchange keys are free
to connect and the mock's balances are its defaults), a signed-in HTTP client, and Debian's Chromium.

Without /usr/bin/chromium the browser tests skip loudly; with ``CI=true`` they fail (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Server, install_log_capture, migrated_database, start_server

CHROMIUM = "/usr/bin/chromium"
# `make screenshots` writes them into docs/console/ (the README's); a plain test run into a temporary directory,
# so that `make test` leaves the checkout as it was
SCREENSHOTS = Path(os.environ.get("STRONGROOM_TEST_SCREENSHOTS")
                   or Path(tempfile.gettempdir()) / "strongroom-console-screenshots")
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@dataclass
class Console:
    backend: str
    server: Server

    @property
    def url(self) -> str:
        return self.server.url

    def user(self, *, admin: bool = False) -> tuple[str, str]:
        """A new user's (username, password)."""
        username = f"c{secrets.token_hex(5)}"
        password = secrets.token_urlsafe(12)
        self.server.core.users.create(username, password, is_admin=admin)  # type: ignore[attr-defined]
        return username, password

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)

    def signed_in(self, username: str, password: str) -> httpx.Client:
        """An HTTP client holding a console session of ``username``."""
        client = self.client()
        token = csrf_of(client.get("/console/sign-in").text)
        answer = client.post("/console/sign-in", data={"username": username, "password": password, "csrf": token})
        assert answer.status_code == 303, answer.text[:500]
        return client


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def console(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A live server with the console, on a fresh SQLite file or PostgreSQL schema, exchanges pointed at a mock
    of its own."""
    from devtools.mock_exchange import MockExchangeServer

    with migrated_database(request.param, tmp_path_factory.mktemp("console-db") / "strongroom.db") as url:
        install_log_capture()
        with MockExchangeServer() as mock:
            server = start_server(data_dir=tmp_path_factory.mktemp(f"console-{request.param}"), database_url=url,
                                  exchange_base_urls={"binance": mock.url, "okx": mock.url})
            try:
                yield Console(request.param, server)
            finally:
                server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (no browser download). Module-scoped: Playwright's sync API runs
    an event loop in this thread while it is started, and later tests call ``asyncio.run``."""
    if shutil.which(CHROMIUM) is None:
        message = "CHROMIUM NOT INSTALLED: the console's browser tests did not run (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " - under CI=true a missing browser is a failure (.ci/run installs it)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()
