"""Webhooks per the Standard Webhooks spec: endpoints, fan-out of events, signed deliveries with retries.

* :class:`WebhookService` (:mod:`.services`): endpoints as their owners manage them (``/v1/webhooks``).
* :func:`fan_out` (:mod:`.fanout`): the events listener; an event's deliveries and their job are written
  in the event's transaction. Registered by the core (``strongroom.events.on_record``).
* :class:`Deliverer` (:mod:`.delivery`): the delivery job and the sweep; :func:`register` adds them to a
  job runner's registry (a built-in of ``strongroom.jobs.runner``).
* :mod:`.guard`: the SSRF guard; :mod:`.signing`: ``v1`` / ``v1a`` signatures.
"""

from __future__ import annotations

from typing import Any

from strongroom.webhooks.delivery import Deliverer
from strongroom.webhooks.fanout import DELIVER, SWEEP, fan_out
from strongroom.webhooks.guard import AddressRefused
from strongroom.webhooks.services import AttemptView, DeliveryView, EndpointView, WebhookService
from strongroom.webhooks.stats import WebhooksCollector

SWEEP_SECONDS = 60.0


def register(registry: Any) -> None:
    """Add the delivery job and the sweep (every minute) to a job runner's ``registry`` (its ``services``: the
    core)."""
    core = registry.services
    deliverer = Deliverer(core.db, core.vault, core.settings, count=core.metrics.webhook_attempt)
    registry.handler(DELIVER, deliverer.drain, backoff_base=1.0, backoff_cap=60.0)
    registry.handler(SWEEP, deliverer.sweep)
    registry.schedule("webhooks-sweep", SWEEP, SWEEP_SECONDS)
    registry.on_stop(deliverer.aclose)  # the process's HTTP client, closed on the runner's loop


__all__ = ["DELIVER", "SWEEP", "AddressRefused", "AttemptView", "Deliverer", "DeliveryView", "EndpointView",
           "WebhookService", "WebhooksCollector", "fan_out", "register"]
