"""Prometheus metrics: request counts and latencies per route; jobs by status, the queue,
trials by state (from the database, the same in every process); database retries and, in a
process that also dispatches (`tuner serve`), the dispatcher's (tuner.metrics). With
`PROMETHEUS_MULTIPROC_DIR` set (`tuner api --workers N` sets it), every process writes its
counters there and `/metrics` sums them, so any process answers for all."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tuner.store.models import JOB_STATUSES
from tuner.store.queries import job_and_trial_counts


class JobsCollector(Collector):
    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("tuner_jobs", "Jobs by status", labels=["status"])
        trials = GaugeMetricFamily("tuner_trials", "Trials by state, all jobs (running: trials "
                                                   "of running jobs)", labels=["state"])
        try:
            with self.app.state.sessions() as s:
                counts, states = job_and_trial_counts(s)
        except Exception:  # the database being down must not break /metrics
            counts, states = {}, {}
        for status in JOB_STATUSES:
            g.add_metric([status], float(counts.get(status, 0)))
        yield g
        yield GaugeMetricFamily("tuner_queue_depth", "Jobs queued, waiting for a dispatcher",
                                value=float(counts.get("queued", 0)))
        for state, n in states.items():
            trials.add_metric([state], float(n))
        yield trials


class Measure:
    """Count and time every request by route template (a plain ASGI middleware: Starlette's
    BaseHTTPMiddleware runs each request through an extra task and stream). A request is
    counted before its last body message goes out, so a client that has its answer sees it
    counted on its next scrape; one that ends without an answer is counted when it ends."""

    def __init__(self, app: Any, requests: Counter, latency: Histogram) -> None:
        self.app, self.requests, self.latency = app, requests, latency

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        counted = False

        def count() -> None:
            nonlocal counted
            counted = True
            path = getattr(scope.get("route"), "path", "unmatched")
            self.latency.labels(scope["method"], path).observe(time.perf_counter() - t0)
            self.requests.labels(scope["method"], path, str(status)).inc()

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif (message["type"] == "http.response.body" and not message.get("more_body")
                  and not counted):
                count()
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if not counted:
                count()


def install(app: FastAPI) -> None:
    registry = CollectorRegistry()
    requests = Counter("tuner_http_requests_total", "HTTP requests",
                       ["method", "route", "status"], registry=registry)
    latency = Histogram("tuner_http_request_duration_seconds", "HTTP request latency",
                        ["method", "route"], registry=registry)

    app.add_middleware(Measure, requests=requests, latency=latency)
    jobs = CollectorRegistry()
    jobs.register(JobsCollector(app))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            every = CollectorRegistry()
            multiprocess.MultiProcessCollector(every)  # type: ignore[no-untyped-call]  # all processes' counters, summed
            body = generate_latest(every) + generate_latest(jobs)
        else:
            body = generate_latest(registry) + generate_latest(jobs) + generate_latest(REGISTRY)
        return Response(body, media_type="text/plain; version=0.0.4")
