"""The trading capability's durable job: reconciling an order whose placement is not known (a built-in handler,
``strongroom.jobs.runner.BUILTIN_HANDLERS``)."""

from __future__ import annotations

from typing import Any

from strongroom.errors import ExchangeUnavailable
from strongroom.jobs import ClaimedJob, JobFailed
from strongroom.jobs.runner import Registry
from strongroom.trading.services import RECONCILE_KIND

NOT_PLACED_AFTER = 3  # attempts that found nothing at the venue before the order counts as never placed


def register(registry: Registry) -> None:
    """Register the ``trading.reconcile`` handler: ask the venue by the order's client order id and record what
    it holds; after ``NOT_PLACED_AFTER`` attempts that find nothing, the order was never placed (``rejected``,
    ``not_placed``). It never sends an order. The registry's services are the core (its ``trading``)."""
    core: Any = registry.services
    if core is None:  # a registry without a process to serve (a check of the configuration): nothing to run
        return

    async def reconcile(job: ClaimedJob) -> None:
        order_id = job.payload.get("order_id")
        if not isinstance(order_id, int):
            raise JobFailed("payload without an order_id", permanent=True)
        try:
            status = await core.trading.reconcile(order_id)
        except ExchangeUnavailable:
            raise JobFailed("the exchange could not be reached") from None
        if status == "unknown":
            if job.attempt < NOT_PLACED_AFTER:
                raise JobFailed("the venue does not show the order yet")
            await core.trading.mark_not_placed(order_id)

    registry.handler(RECONCILE_KIND, reconcile, backoff_base=2.0, backoff_cap=60.0)
