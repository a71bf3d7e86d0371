"""The order errors (InsufficientFunds, OrderRejected, OrderOutcomeUnknown) in every surface's own error shape:
400s for the refusals, 504 with Retry-After for a lost answer; never a 500, never a ccxt text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from strongroom import errors
from strongroom.exchanges import orders
from strongroom.exchanges.client import INSUFFICIENT_MESSAGE, OUTCOME_UNKNOWN_MESSAGE, REJECTED_MESSAGE
from strongroom.http.errors import ErrorTable
from strongroom.surfaces.cadenza import ERRORS as CADENZA
from strongroom.surfaces.kalshi import ERRORS as KALSHI
from strongroom.surfaces.native.surface import ERRORS as NATIVE
from strongroom.surfaces.threecommas import ERRORS as THREECOMMAS
from strongroom.surfaces.tradingapp import ERRORS as TRADINGAPP
from strongroom.surfaces.tradr import ERRORS as TRADR

ERRORS = [
    errors.InsufficientFunds(INSUFFICIENT_MESSAGE),
    errors.OrderRejected(REJECTED_MESSAGE),
    errors.OrderOutcomeUnknown(OUTCOME_UNKNOWN_MESSAGE, retry_after=5),
]
CODES = ["insufficient_funds", "order_rejected", "order_outcome_unknown"]


def body_of(table: ErrorTable, error: errors.DomainError) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = table.response(error)
    return response.status_code, json.loads(bytes(response.body)), dict(response.headers)


def test_the_exchange_layer_raises_the_domain_classes() -> None:
    assert orders.InsufficientFunds is errors.InsufficientFunds
    assert orders.OrderRejected is errors.OrderRejected and orders.OrderOutcomeUnknown is errors.OrderOutcomeUnknown


@pytest.mark.parametrize(("error", "code"), list(zip(ERRORS, CODES, strict=True)), ids=CODES)
def test_v1_problem_json(error: errors.DomainError, code: str) -> None:
    status, body, headers = body_of(NATIVE, error)
    assert status == (504 if code == "order_outcome_unknown" else 400)
    assert body["code"] == code and body["status"] == status and body["type"].endswith("/" + code)
    assert body["detail"] == error.message
    assert headers["content-type"] == "application/problem+json"
    assert ("retry-after" in headers) == (code == "order_outcome_unknown")


@pytest.mark.parametrize(("error", "errno", "status"), [(ERRORS[0], -18006, 400), (ERRORS[1], -18025, 400),
                                                        (ERRORS[2], -18015, 504)], ids=CODES)
def test_cadenza_envelope_with_its_market_connector_errnos(error: errors.DomainError, errno: int, status: int) -> None:
    got, body, _ = body_of(CADENZA, error)
    assert (got, body["errno"], body["success"], body["data"]) == (status, errno, False, None)
    assert body["error"].lower() == error.message.lower()


@pytest.mark.parametrize(("table", "shape"), [
    (KALSHI, {"error"}), (THREECOMMAS, {"error", "error_description"}), (TRADINGAPP, {"Status Code", "Message"}),
    (TRADR, {"statusCode", "message", "error"}),
], ids=["kalshi", "3commas", "tradingapp", "tradr"])
def test_every_other_surface_answers_in_its_shape(table: ErrorTable, shape: set[str]) -> None:
    """Each in the shape the surface's other errors have."""
    for error in ERRORS:
        status, body, _ = body_of(table, error)
        assert status == (504 if isinstance(error, errors.OrderOutcomeUnknown) else 400)
        text = json.dumps(body)
        assert error.message.lower() in text.lower()
        assert set(body) == shape
