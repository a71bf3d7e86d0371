"""The webhooks' figures for ``/metrics``, read from the database when scraped (every process sees the same)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select

from strongroom.db import Database
from strongroom.enums import DeliveryStatus
from strongroom.models import WebhookDelivery, WebhookEndpoint

log = logging.getLogger("strongroom.webhooks")
ENDPOINT_STATES = ("enabled", "failing", "disabled")


class WebhooksCollector(Collector):
    """``strongroom_webhook_deliveries{status}`` (pending, sending, delivered, failed) and
    ``strongroom_webhook_endpoints{status}`` (enabled, failing: enabled but failing since some time, disabled).
    A scrape while the database is down shows neither."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> Iterator[Metric]:
        return iter(())  # nothing read at registration

    def collect(self) -> Iterator[Metric]:
        state = case((WebhookEndpoint.enabled.is_(False), "disabled"),
                     (WebhookEndpoint.failing_since.is_not(None), "failing"), else_="enabled")
        try:
            with self.db.session() as session:
                deliveries: dict[str, int] = {str(s): int(n) for s, n in session.execute(
                    select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)).tuples()}
                endpoints: dict[str, int] = {str(s): int(n) for s, n in session.execute(
                    select(state, func.count()).group_by(state)).tuples()}
        except Exception as exc:  # noqa: BLE001 - a scrape never fails for these figures
            log.warning("metrics: reading the webhooks failed (%s)", type(exc).__name__)
            return
        family = GaugeMetricFamily("strongroom_webhook_deliveries", "Webhook deliveries in the database by status.",
                                   labels=["status"])
        for status in DeliveryStatus:
            family.add_metric([status.value], deliveries.get(status.value, 0))
        yield family
        family = GaugeMetricFamily("strongroom_webhook_endpoints", "Webhook endpoints by status.", labels=["status"])
        for name in ENDPOINT_STATES:
            family.add_metric([name], endpoints.get(name, 0))
        yield family
