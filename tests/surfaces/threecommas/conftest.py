"""Fixtures for the 3Commas surface's tests (helpers: ``support.threecommas``)."""

from __future__ import annotations

import py3cw.request
import pytest
from support.exchange_mock import Mock


@pytest.fixture
def py3cw_server(server, monkeypatch):
    """py3cw pointed at the live server: its only base-URL hook, ``py3cw.request.API_URL``."""
    monkeypatch.setattr(py3cw.request, "API_URL", server.url)
    return server


@pytest.fixture(scope="session")
def mock(mock_exchange) -> Mock:
    return Mock(mock_exchange)
