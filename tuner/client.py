"""Python client for the tuning service's HTTP API (httpx).

    from tuner.client import Client
    c = Client()                         # TUNER_URL / TUNER_API_KEY, or `tuner serve`'s key file
    job = c.submit({"task": {"model": {"name": "mlp"}, "dataset": {"name": "digits"}}})
    final = c.wait(job["id"])
    print(c.recommend(model="mlp", dataset="digits")["ranking"][0])
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
UNREACHABLE_RETRY_S = 1.0  # between attempts while a service that answered before is unreachable
log = logging.getLogger(__name__)


class ApiError(Exception):
    """A problem document from the service (or a transport failure)."""

    def __init__(self, status: int, detail: str, body: dict[str, Any] | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail, self.body = status, detail, body or {}
        self.retry_after = retry_after  # seconds, where the server said when to come back


def tuner_home() -> Path:
    return Path(os.environ.get("TUNER_HOME", Path.home() / ".tuner"))


def credentials_path() -> Path:
    return tuner_home() / "credentials.json"


def save_credentials(url: str, api_key: str) -> Path:
    """Remember a key for `url` (mode 0600); the CLI and Client pick it up."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[url.rstrip("/")] = api_key
    path.write_text(json.dumps(data, indent=2))
    path.chmod(0o600)
    return path


def saved_key(url: str) -> str | None:
    path = credentials_path()
    if not path.exists():
        return None
    key = json.loads(path.read_text()).get(url.rstrip("/"))
    return str(key) if key else None


class Client:
    """`unavailable_s`: how long a request that is safe to send again (a read, a cancel, a
    submission under its Idempotency-Key, the event stream) keeps being sent again while the
    service answers 503 (its database restarting or failing over), after each `Retry-After`,
    and while a service that has answered this client before refuses or drops the connection
    (the API restarting: a deploy, `tuner serve` stopped and started again). A service that
    never answered is not waited for: a wrong URL fails at once."""

    def __init__(self, url: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None,
                 unavailable_s: float = 120.0) -> None:
        self.url = (url or os.environ.get("TUNER_URL") or DEFAULT_URL).rstrip("/")
        self.unavailable_s = unavailable_s
        key = api_key or os.environ.get("TUNER_API_KEY") or saved_key(self.url)
        if not key:
            raise ApiError(401, f"no API key for {self.url}: set TUNER_API_KEY, or start "
                                "`tuner serve`, which saves one")
        self.http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                 headers={"Authorization": f"Bearer {key}"})
        self.answered = False  # has the service answered this client yet (any status)?

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, *, again: bool | None = None,
                 **kw: Any) -> httpx.Response:
        """One call; `again` (default: for GET): safe to send again while the service is
        unavailable (`unavailable_s`)."""
        waited = _Unavailable(self.unavailable_s if (method == "GET" if again is None else again)
                              else 0.0, self.url)
        while True:
            try:
                r = self.http.request(method, path, **kw)
            except httpx.TimeoutException as exc:
                raise ApiError(0, f"{self.url} did not answer in time ({type(exc).__name__}: "
                                  f"{exc})") from exc
            except httpx.HTTPError as exc:
                if self.answered and waited.then_reconnect(exc):
                    continue
                raise ApiError(0, f"cannot reach {self.url}: {exc}{waited.for_how_long()}"
                               ) from exc
            self.answered = True
            if r.status_code < 400:
                return r
            error = _error(r)
            if not waited.then_again(error):
                raise error

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        return self._request(method, path, **kw).json()

    # jobs -------------------------------------------------------------------------------------
    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None,
               retries: int = 2,
               on_reading: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Queue a job. It is sent with an Idempotency-Key (a new one unless given), so a
        submission whose answer did not come back in time (a lost response) is sent again, up
        to `retries` times, under that key: it gives the job the first one created, never a
        second job. While the server is still preparing the job's data for the first time (reading
        or loading a large folder: it answers 503 with `progress`), the submission is sent again after the
        server's `Retry-After`, for as long as that lasts; `on_reading(progress)` is told each
        time (stage, read_bytes, total_bytes, elsewhere, seconds)."""
        key = idempotency_key or uuid.uuid4().hex
        timeouts = 0
        while True:
            try:
                out: dict[str, Any] = self._call("POST", "/v1/jobs", json=spec, again=True,
                                                 headers={"Idempotency-Key": key})
                return out
            except ApiError as exc:
                if exc.status == 503 and isinstance(exc.body.get("progress"), dict):
                    if on_reading is not None:
                        on_reading(exc.body["progress"])
                    time.sleep(exc.retry_after if exc.retry_after is not None else 1.0)
                    continue
                if not isinstance(exc.__cause__, httpx.TimeoutException):
                    raise
                timeouts += 1
                if timeouts > retries:
                    raise ApiError(0, f"{exc.detail}; the server may still create the job: "
                                      f"submit again with idempotency key {key} to get it, "
                                      "not a second one") from exc

    def job(self, job_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("GET", f"/v1/jobs/{job_id}")
        return out

    def jobs(self, **filters: Any) -> dict[str, Any]:
        params = {k: v for k, v in filters.items() if v is not None}
        out: dict[str, Any] = self._call("GET", "/v1/jobs", params=params)
        return out

    def trials(self, job_id: str, offset: int = 0, limit: int = 1000,
               steps: bool = True, state: str | None = None) -> dict[str, Any]:
        """A page of the job's trials (those in `state`: complete, pruned, diverged or
        failed; a failed trial with its `traceback`)."""
        params: dict[str, Any] = {"offset": offset, "limit": limit, "steps": steps}
        if state is not None:
            params["state"] = state
        out: dict[str, Any] = self._call("GET", f"/v1/jobs/{job_id}/trials", params=params)
        return out

    def trial(self, job_id: str, number: int) -> dict[str, Any]:
        """One finished trial of the job, with its steps (and a failed one's traceback)."""
        out: dict[str, Any] = self._call("GET", f"/v1/jobs/{job_id}/trials/{number}")
        return out

    def trials_table(self, job_id: str, fmt: str = "csv") -> bytes:
        """Every trial of the job as CSV or Parquet bytes (one row per trial)."""
        return self._request("GET", f"/v1/jobs/{job_id}/trials", params={"format": fmt}).content

    def figures(self, job_id: str) -> dict[str, Any]:
        """The job's figures as data (tuner.figures.job_figures)."""
        out: dict[str, Any] = self._call("GET", f"/v1/jobs/{job_id}/figures")
        return out

    def cancel(self, job_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("POST", f"/v1/jobs/{job_id}/cancel", again=True)
        return out

    def events(self, job_id: str, reconnects: int = 3) -> Iterator[tuple[str, dict[str, Any]]]:
        """Server-sent events of a job: ("progress", {...})..., then ("end", job). A dropped
        stream is resumed from the last event's id (`Last-Event-ID`), so no event is repeated:
        up to `reconnects` times in a row without an event between, and for as long as
        `unavailable_s` while the service answers 503 or, having answered before, cannot be
        reached (restarting)."""
        last_id: str | None = None
        drops, waited = 0, _Unavailable(self.unavailable_s, self.url)
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with self.http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers,
                                      timeout=httpx.Timeout(60.0, read=None)) as r:
                    self.answered = True
                    if r.status_code >= 400:
                        r.read()
                        error = _error(r)
                        if waited.then_again(error):
                            continue
                        raise error
                    waited = _Unavailable(self.unavailable_s, self.url)
                    for event_id, event, data in _sse(r.iter_lines()):
                        last_id, drops = event_id or last_id, 0
                        yield event, data
                        if event == "end":
                            return
                lost: Exception | None = None
            except httpx.ConnectError as exc:
                # Not connected at all: the service is down or restarting, not a stream dropped.
                if self.answered and waited.then_reconnect(exc):
                    continue
                lost = exc
            except httpx.HTTPError as exc:
                lost = exc
            drops += 1
            if drops > reconnects:
                raise ApiError(0, f"lost the event stream from {self.url}: {lost}"
                                  f"{waited.for_how_long()}" if lost else
                                  f"the event stream from {self.url} ended before the job did"
                               ) from lost

    def wait(self, job_id: str,
             on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Follow a job's events until it ends; returns the final job."""
        for event, data in self.events(job_id):
            if event == "progress" and on_progress is not None:
                on_progress(data)
            if event == "end":
                return data
        return self.job(job_id)

    # history and registry ---------------------------------------------------------------------
    def tasks(self, *, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """A page of the team's tasks, the latest job's first; `count`: all of them."""
        out: dict[str, Any] = self._call("GET", "/v1/tasks",
                                         params={"offset": offset, "limit": limit})
        return out

    def recommend(self, *, model: str | None = None, dataset: str | None = None,
                  metric: str | None = None, task: int | None = None,
                  epochs: int | None = None, batch_size: int | None = None,
                  early_stopping_patience: int | None = None,
                  precision: str | None = None,
                  training_seed: int | None = None) -> dict[str, Any]:
        """The ranking for a task at one training budget (`early_stopping_patience` 0: without
        early stopping; `precision` fp32 or bf16; `training_seed` the jobs' training.seed, which
        draws the data split; parts not given: the most recent budget in the history)."""
        params = {k: v for k, v in {"model": model, "dataset": dataset, "metric": metric,
                                    "task": task, "epochs": epochs, "batch_size": batch_size,
                                    "early_stopping_patience": early_stopping_patience,
                                    "precision": precision,
                                    "training_seed": training_seed}.items()
                  if v is not None}
        out: dict[str, Any] = self._call("GET", "/v1/recommendations", params=params)
        return out

    def learning_rates(self, task_id: int, epochs: int | None = None,
                       batch_size: int | None = None) -> dict[str, Any]:
        """Per family, [learning rate, value] of every complete trial of the task."""
        params = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size}.items()
                  if v is not None}
        out: dict[str, Any] = self._call("GET", f"/v1/tasks/{task_id}/learning-rates",
                                         params=params)
        return out

    def models(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._call("GET", "/v1/models")
        return out

    def datasets(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._call("GET", "/v1/datasets")
        return out


def _error(r: httpx.Response) -> ApiError:
    """An error answer (its body read) as an ApiError: the problem's detail, the body, and
    the server's Retry-After."""
    try:
        body = r.json()
        detail = str(body.get("detail", r.text))
    except ValueError:
        body, detail = {}, r.text
    try:
        after = float(r.headers.get("Retry-After", ""))
    except ValueError:
        after = None
    return ApiError(r.status_code, detail, body, after)


class _Unavailable:
    """How long a call has found the service unavailable, and whether to send it again: after
    a 503 (its database unavailable), after the server's Retry-After (2 s if none); when the
    service could not be reached (restarting), after UNREACHABLE_RETRY_S; until `budget_s` has
    passed since the first. A 503 about a submission's data still being read (`progress`) is
    not this. The first wait of an outage is logged (a warning), so a command that pauses says
    why."""

    def __init__(self, budget_s: float, url: str = "") -> None:
        self.budget_s, self.url = budget_s, url
        self.since: float | None = None

    def then_again(self, error: ApiError) -> bool:
        if error.status != 503 or "progress" in error.body:
            return False
        return self._wait(error.retry_after if error.retry_after is not None else 2.0,
                          f"answers 503 ({error.detail})")

    def then_reconnect(self, error: httpx.HTTPError) -> bool:
        """The service answered before and now cannot be reached, or dropped the connection
        before answering (ConnectError, RemoteProtocolError, ReadError...; not a timeout, and
        not an error of the request itself)."""
        if isinstance(error, httpx.TimeoutException) or \
                not isinstance(error, httpx.TransportError):
            return False
        return self._wait(UNREACHABLE_RETRY_S,
                          f"cannot be reached ({type(error).__name__}: {error})")

    def for_how_long(self) -> str:
        """' (tried again for N s)' once the call has waited, else ''."""
        return "" if self.since is None else \
            f" (tried again for {time.monotonic() - self.since:.0f} s)"

    def _wait(self, after: float, why: str) -> bool:
        if self.budget_s <= 0:
            return False
        now = time.monotonic()
        if self.since is None:
            self.since = now
            log.warning("the service at %s %s; trying again for up to %.0f s", self.url, why,
                        self.budget_s)
        if now + after - self.since > self.budget_s:
            return False
        time.sleep(after)
        return True


def _sse(lines: Iterator[str]) -> Iterator[tuple[str | None, str, dict[str, Any]]]:
    """(id, event, data) of each server-sent event."""
    event_id, event, data = None, "message", []
    for line in lines:
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield event_id, event, json.loads("\n".join(data))
            event_id, event, data = None, "message", []
