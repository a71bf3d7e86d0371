"""Metrics: counted in plain dictionaries on the request path, exposed in Prometheus format.

Incrementing a labelled ``prometheus_client`` counter takes a lock and a label lookup on every
request; here a request costs one dictionary increment, and a collector turns the dictionaries
into metric families when ``/metrics`` is scraped. Exchange-call latencies (milliseconds to
seconds each) use a real ``Histogram``. One registry per core, so several apps in one process
(tests) never mix their figures. With ``strongroom serve --workers N`` each worker counts its own
requests: scrape them through a load balancer that sums, or run one worker per port.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics(Collector):
    """Strongroom's figures for one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests: Counter[tuple[str, str, str, int]] = Counter()  # (surface, method, route, status)
        self.auth: Counter[tuple[str, str]] = Counter()  # (scheme, outcome: ok or a refusal reason)
        self.rate_limited: Counter[str] = Counter()  # the limit's name: ip, key, auth-fail, login-fail, ...
        self.exchange_calls: Counter[tuple[str, str, str]] = Counter()  # (venue, operation, outcome)
        self.exchange_seconds = Histogram(
            "strongroom_exchange_call_seconds", "Latency of calls to exchanges, by venue and operation.",
            ["venue", "operation"], registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
        self.registry.register(self)

    def request(self, surface: str, method: str, route: str, status: int) -> None:
        self.requests[(surface, method, route, status)] += 1

    def exchange_call(self, venue: str, operation: str, outcome: str, seconds: float) -> None:
        self.exchange_calls[(venue, operation, outcome)] += 1
        self.exchange_seconds.labels(venue, operation).observe(seconds)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("strongroom_http_requests", "HTTP requests answered, by surface, route "
                                       "template and status.", labels=["surface", "method", "route", "status"])
        for (surface, method, route, status), n in list(self.requests.items()):
            requests.add_metric([surface, method, route, str(status)], n)
        yield requests
        auth = CounterMetricFamily("strongroom_authentications", "Authentications by scheme and outcome "
                                   "(ok, or the refusal reason).", labels=["scheme", "outcome"])
        for (scheme, outcome), n in list(self.auth.items()):
            auth.add_metric([scheme, outcome], n)
        yield auth
        limited = CounterMetricFamily("strongroom_rate_limit_rejections", "Requests refused by a rate limit or "
                                      "failure budget, by limit.", labels=["limit"])
        for limit, n in list(self.rate_limited.items()):
            limited.add_metric([limit], n)
        yield limited
        calls = CounterMetricFamily("strongroom_exchange_calls", "Calls to exchanges by venue, operation and "
                                    "outcome.", labels=["venue", "operation", "outcome"])
        for (venue, operation, outcome), n in list(self.exchange_calls.items()):
            calls.add_metric([venue, operation, outcome], n)
        yield calls

    def exposition(self) -> bytes:
        """Return every metric in the Prometheus text format."""
        return generate_latest(self.registry)
