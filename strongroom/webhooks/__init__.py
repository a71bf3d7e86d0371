"""Webhooks per the Standard Webhooks spec: endpoints, fan-out of events, signed deliveries with retries.

* :class:`WebhookService` (:mod:`.services`): endpoints as their owners manage them (``/v1/webhooks``).
* :func:`fan_out` (:mod:`.fanout`): the events listener; an event's deliveries and their job are written
  in the event's transaction. Registered by the core (``strongroom.events.on_record``).
* :class:`Deliverer` (:mod:`.delivery`): the delivery job and the sweep; :func:`register` adds them to a
  job runner's registry (a built-in of ``strongroom.jobs.runner``).
* :mod:`.guard`: the SSRF guard; :mod:`.signing`: ``v1`` / ``v1a`` signatures.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from strongroom.webhooks.facade import WebhooksFacade
from strongroom.webhooks.fanout import DELIVER, SWEEP, fan_out
from strongroom.webhooks.guard import AddressRefused
from strongroom.webhooks.interfaces import Webhooks
from strongroom.webhooks.services import AttemptView, DeliveryView, EndpointView, WebhookService
from strongroom.webhooks.stats import WebhooksCollector

if TYPE_CHECKING:
    from strongroom.jobs.queue import ClaimedJob
    from strongroom.webhooks.delivery import Deliverer

SWEEP_SECONDS = 60.0


def register(registry: Any) -> None:
    """Add the delivery job and the sweep (every minute) to a job runner's ``registry`` (its ``services``: the
    core)."""
    core = registry.services
    if core is None:  # a registry without a process to serve (a check of the configuration): nothing to run
        return
    made: list[Deliverer] = []
    making = threading.Lock()  # the sweep's first run (in a worker thread) and a drain may race

    def deliverer() -> Deliverer:
        """The process's one deliverer, made on the first job: httpcore (and what it imports) is not loaded at
        start-up, which a verifier's cold start counts."""
        with making:
            if not made:
                from strongroom.webhooks.delivery import Deliverer

                made.append(Deliverer(core.db, core.vault, core.settings, count=core.metrics.webhook_attempt))
            return made[0]

    async def drain(job: ClaimedJob) -> None:
        await deliverer().drain(job)

    async def sweep(job: ClaimedJob) -> None:  # on the runner's loop, whose idle connections it closes
        from anyio import to_thread

        made_here = await to_thread.run_sync(deliverer)  # the first one imports httpcore: not on the loop
        await to_thread.run_sync(made_here.sweep, job)
        await made_here.close_idle()

    async def close() -> None:  # the process's connections, closed on the runner's loop
        if made:
            await made[0].aclose()

    registry.handler(DELIVER, drain, backoff_base=1.0, backoff_cap=60.0)
    registry.handler(SWEEP, sweep)
    registry.schedule("webhooks-sweep", SWEEP, SWEEP_SECONDS)
    registry.on_stop(close)


def __getattr__(name: str) -> Any:
    if name == "Deliverer":  # imported on first use: serving does not need httpcore
        from strongroom.webhooks.delivery import Deliverer

        return Deliverer
    raise AttributeError(name)


__all__ = ["DELIVER", "SWEEP", "AddressRefused", "AttemptView", "Deliverer", "DeliveryView", "EndpointView",
           "WebhookService", "Webhooks", "WebhooksCollector", "WebhooksFacade", "fan_out", "register"]
