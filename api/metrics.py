"""Prometheus metrics: request counts and latencies per route, jobs per status."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tuner.store.models import JOB_STATUSES
from tuner.store.queries import job_status_counts


class JobsCollector(Collector):
    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("tuner_jobs", "Jobs by status", labels=["status"])
        try:
            with self.app.state.sessions() as s:
                counts = job_status_counts(s)
        except Exception:  # the database being down must not break /metrics
            counts = {}
        for status in JOB_STATUSES:
            g.add_metric([status], float(counts.get(status, 0)))
        yield g


def install(app: FastAPI) -> None:
    registry = CollectorRegistry()
    requests = Counter("tuner_http_requests_total", "HTTP requests",
                       ["method", "route", "status"], registry=registry)
    latency = Histogram("tuner_http_request_duration_seconds", "HTTP request latency",
                        ["method", "route"], registry=registry)
    registry.register(JobsCollector(app))

    @app.middleware("http")
    async def _measure(request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        response = await call_next(request)
        route: Any = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        latency.labels(request.method, path).observe(time.perf_counter() - t0)
        requests.labels(request.method, path, str(response.status_code)).inc()
        return response

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")
