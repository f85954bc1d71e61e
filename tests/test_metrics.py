"""Prometheus metrics stay right with several API processes (summed over all of them), and show
the dispatcher's work, trials by state, the queue and database retries."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from api.app import create_app
from tests.test_api import FAST, Service, free_port, service  # noqa: F401
from tuner.client import Client
from tuner.config import Settings
from tuner.store.auth import create_api_key, get_or_create_team
from tuner.store.db import session_factory, with_retries

pytestmark = pytest.mark.usefixtures("ray_session")


def value(metrics: str, name: str) -> float:
    """The sample `name` (with its labels, exactly) in a Prometheus text page."""
    m = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    assert m, f"{name} not in /metrics:\n{metrics[:3000]}"
    return float(m.group(1))


def _wait_up(url: str, proc: subprocess.Popen[str]) -> None:
    end = time.monotonic() + 120
    while time.monotonic() < end:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.3)
    raise AssertionError(f"{url} did not come up")


def test_metrics_summed_over_api_processes(migrated_url: str, tmp_path: Path) -> None:
    with session_factory(migrated_url)() as s:
        key = create_api_key(s, get_or_create_team(s, "m"))
        s.commit()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "api", "--workers", "2", "--port",
                             str(port), "--database-url", migrated_url], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc)
        n = 40
        for _ in range(n):  # new connections: spread over both processes
            assert httpx.get(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {key}"},
                             timeout=30).status_code == 200
        sample = 'tuner_http_requests_total{method="GET",route="/v1/jobs",status="200"}'
        for _ in range(6):  # whichever process answers, it counts every process's requests
            page = httpx.get(f"{url}/metrics", timeout=30).text
            assert value(page, sample) == n
            assert value(page, 'tuner_jobs{status="queued"}') == 0
            assert value(page, "tuner_queue_depth") == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    # Both processes served (the sum above is not one process's count).
    assert len(set(re.findall(r"Started server process \[(\d+)\]", out))) == 2, out[-2000:]


async def _asgi_get(app: Any, path: str, send: Any) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"test")], "client": ("127.0.0.1", 1),
             "server": ("test", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    await app(scope, receive, send)


def test_request_counted_before_its_answer_is_sent(migrated_url: str) -> None:
    """A client that has its whole answer finds it counted at once (the count came after the
    last body message, so a scrape right after a request could miss it)."""
    app = create_app(migrated_url, Settings(database_url=migrated_url))
    sample = 'tuner_http_requests_total{method="GET",route="/healthz",status="200"}'
    seen: list[float] = []

    async def scrape() -> str:
        parts: list[bytes] = []

        async def keep(message: dict[str, Any]) -> None:
            parts.append(message.get("body", b""))

        await _asgi_get(app, "/metrics", keep)
        return b"".join(parts).decode()

    async def client(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            page = await scrape()  # the client holds its answer now
            seen.append(value(page, sample) if sample in page else 0.0)

    async def main() -> None:
        for _ in range(3):
            await _asgi_get(app, "/healthz", client)

    asyncio.run(main())
    assert seen == [1.0, 2.0, 3.0]


def test_trial_dispatcher_and_retry_metrics(service: Service) -> None:  # noqa: F811
    def scrape() -> str:
        return httpx.get(f"{service.url}/metrics", timeout=30).text

    before = scrape()
    claimed = value(before, "tuner_dispatcher_jobs_claimed_total")
    started = value(before, "tuner_dispatcher_workers_started_total")
    client = Client(service.url, service.key_a)
    job = client.submit(FAST)
    final = client.wait(job["id"])
    assert final["status"] == "completed"
    after = scrape()
    p = final["progress"]
    for state in ("complete", "pruned", "diverged", "failed"):
        assert value(after, f'tuner_trials{{state="{state}"}}') == p[state]
    assert value(after, 'tuner_trials{state="running"}') == 0
    assert value(after, "tuner_dispatcher_jobs_claimed_total") == claimed + 1
    assert value(after, "tuner_dispatcher_workers_started_total") >= started + 2  # parallelism 2
    assert value(after, "tuner_dispatcher_workers_running") == 0
    assert value(after, 'tuner_jobs{status="completed"}') == 1

    # A transient database error retried is counted.
    retries = value(after, "tuner_db_retries_total")
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return "ok"

    assert with_retries(flaky, base_delay=0.01, what="test") == "ok"
    assert value(scrape(), "tuner_db_retries_total") == retries + 1


def test_dispatcher_serves_its_metrics(migrated_url: str, ray_session: str,
                                       tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cli", "dispatcher", "--database-url",
                             migrated_url, "--ray-address", ray_session, "--metrics-port",
                             str(port)], text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        end = time.monotonic() + 120
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < end, "the dispatcher's metrics never came up"
                time.sleep(0.3)
        assert value(page, "tuner_dispatcher_jobs_claimed_total") == 0
        assert value(page, "tuner_dispatcher_workers_running") == 0
        assert value(page, "tuner_db_retries_total") == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
