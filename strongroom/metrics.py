"""Metrics: counted in plain dictionaries on the request path, exposed in Prometheus format.

Incrementing a labelled ``prometheus_client`` counter takes a lock and a label lookup on every
request; here a request costs one dictionary increment, and a collector turns the dictionaries
into metric families when ``/metrics`` is scraped. Exchange-call latencies (milliseconds to
seconds each) use a real ``Histogram``. One registry per core, so several apps in one process
(tests) never mix their figures.

With ``strongroom serve --workers N`` one scrape sums every worker: ``serve`` gives the workers a
private ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, removed when serve
ends). Each worker still counts in its dictionaries and adds what it counted since the last time
to its own file (:meth:`Metrics.sync`: a per-process job every second, and before every scrape);
a scrape reads every worker's file and sums them. Counters never go backwards: a worker's file
stays when it exits or is replaced, so its counts stay in the sums.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Hashable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SYNC_SECONDS = 1.0  # multiprocess mode: how often a worker adds its counts to its file

# name, help, labels of each counter family (exposed as <name>_total)
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "requests": ("strongroom_http_requests", "HTTP requests answered, by surface, route template and status.",
                 ("surface", "method", "route", "status")),
    "auth": ("strongroom_authentications", "Authentications by scheme and outcome (ok, or the refusal reason).",
             ("scheme", "outcome")),
    "rate_limited": ("strongroom_rate_limit_rejections",
                     "Requests refused by a rate limit or failure budget, by limit.", ("limit",)),
    "exchange_calls": ("strongroom_exchange_calls", "Calls to exchanges by venue, operation and outcome.",
                       ("venue", "operation", "outcome")),
    "job_attempts": ("strongroom_job_attempts", ("Job attempts run by this process's runner, by kind and outcome "
                                                 "(succeeded, retry, dead, lost: its lease was gone)."),
                     ("kind", "outcome")),
    "webhook_attempts": ("strongroom_webhook_attempts", ("Webhook delivery attempts made by this process, by outcome "
                                                         "(delivered, retry, failed: out of attempts, gone: 410)."),
                         ("outcome",)),
}


def _labels(key: Hashable) -> list[str]:
    return [str(part) for part in key] if isinstance(key, tuple) else [str(key)]


class Metrics(Collector):
    """Strongroom's figures for one process (summed over processes in multiprocess mode)."""

    def __init__(self) -> None:
        # set by ``serve --workers N`` before the workers start (prometheus_client reads it at import)
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests: Counter[tuple[str, str, str, int]] = Counter()  # (surface, method, route, status)
        self.auth: Counter[tuple[str, str]] = Counter()  # (scheme, outcome: ok or a refusal reason)
        self.rate_limited: Counter[str] = Counter()  # the limit's name: ip, key, auth-fail, login-fail, ...
        self.exchange_calls: Counter[tuple[str, str, str]] = Counter()  # (venue, operation, outcome)
        self.job_attempts: Counter[tuple[str, str]] = Counter()  # (kind, outcome)
        self.webhook_attempts: Counter[str] = Counter()  # outcome
        shared = self.multiprocess_dir is not None
        self.exchange_seconds = Histogram(
            "strongroom_exchange_call_seconds", "Latency of calls to exchanges, by venue and operation.",
            ["venue", "operation"], registry=None if shared else self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
        self._sync_lock = threading.Lock()
        self._synced: dict[str, Counter[Hashable]] = {name: Counter() for name in FAMILIES}
        self._shared: dict[str, PromCounter] = {}
        if shared:
            # files, not memory: values written here are read (and summed) by whichever worker is scraped
            self._shared = {attr: PromCounter(name, doc, labels, registry=None)
                            for attr, (name, doc, labels) in FAMILIES.items()}
            MultiProcessCollector(self.registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            self.registry.register(self)

    def request(self, surface: str, method: str, route: str, status: int) -> None:
        self.requests[(surface, method, route, status)] += 1

    def exchange_call(self, venue: str, operation: str, outcome: str, seconds: float) -> None:
        self.exchange_calls[(venue, operation, outcome)] += 1
        self.exchange_seconds.labels(venue, operation).observe(seconds)

    def job_attempt(self, kind: str, outcome: str) -> None:
        self.job_attempts[(kind, outcome)] += 1

    def webhook_attempt(self, outcome: str) -> None:
        self.webhook_attempts[outcome] += 1

    def _counts(self, attr: str) -> Mapping[Hashable, int]:
        counts: Mapping[Hashable, int] = getattr(self, attr)
        return counts

    def sync(self) -> None:
        """Multiprocess mode: add what this process counted since the last sync to its file (no-op otherwise)."""
        if not self._shared:
            return
        with self._sync_lock:
            for attr, counter in self._shared.items():
                synced = self._synced[attr]
                for key, total in list(self._counts(attr).items()):
                    delta = total - synced[key]
                    if delta > 0:
                        counter.labels(*_labels(key)).inc(delta)
                        synced[key] = total

    def collect(self) -> Iterator[Metric]:
        for attr, (name, doc, labels) in FAMILIES.items():
            family = CounterMetricFamily(name, doc, labels=list(labels))
            for key, n in list(self._counts(attr).items()):
                family.add_metric(_labels(key), n)
            yield family

    def exposition(self) -> bytes:
        """Return every metric in the Prometheus text format (every worker's, summed, in multiprocess mode)."""
        self.sync()
        return generate_latest(self.registry)
