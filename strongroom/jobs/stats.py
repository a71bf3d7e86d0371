"""The queue's figures for ``/metrics``, read from the database when scraped (every process sees the same)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from strongroom.enums import JobStatus
from strongroom.jobs.queue import JobQueue

log = logging.getLogger("strongroom.jobs")


class JobsCollector(Collector):
    """``strongroom_jobs{status}``, ``strongroom_jobs_due`` (queue depth: due, waiting for a worker) and
    ``strongroom_jobs_oldest_due_seconds``. A scrape while the database is down shows none of them."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def describe(self) -> Iterator[Metric]:
        return iter(())  # nothing read at registration (the registry would otherwise collect, querying the database)

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self.queue.stats()
        except Exception as exc:  # noqa: BLE001 - a scrape never fails for the queue's figures
            log.warning("metrics: reading the job queue failed (%s)", type(exc).__name__)
            return
        jobs = GaugeMetricFamily("strongroom_jobs", "Jobs in the database by status.", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], stats.by_status.get(status.value, 0))
        yield jobs
        yield GaugeMetricFamily("strongroom_jobs_due", "Jobs due and waiting for a worker (queue depth).",
                                value=stats.due)
        yield GaugeMetricFamily("strongroom_jobs_oldest_due_seconds",
                                "How long the oldest due job has waited for a worker (0: none waits).",
                                value=stats.oldest_due_seconds)
