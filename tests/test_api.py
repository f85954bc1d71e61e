"""The HTTP API end to end: the app served by uvicorn, a real dispatcher on a real local Ray,
real training, SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from rich.console import Console

from api.app import create_app
from tuner.client import ApiError, Client
from tuner.config import Settings
from tuner.store.auth import create_api_key, get_or_create_team, revoke_key
from tuner.store.db import session_factory
from workers.dispatcher import Dispatcher, DispatcherConfig

pytestmark = pytest.mark.usefixtures("ray_session")

FAST: dict[str, Any] = {
    "task": {"model": {"name": "mlp", "params": {"hidden": [16]}}, "dataset": {"name": "iris"}},
    "space": {"optimizers": ["adam", "sgd", "momentum", "rmsprop"]},
    "training": {"epochs": 4}, "budget": {"n_trials": 8, "parallelism": 2},
}
KEY_CACHE_S = 1.0  # the API's key cache in these tests (the default is 5 s)
SLOW: dict[str, Any] = {
    "task": {"model": {"name": "mlp", "params": {"hidden": [256, 256]}},
             "dataset": {"name": "digits"}},
    "training": {"epochs": 12, "batch_size": 8}, "search": {"pruner": "none", "confirm_top_k": 0},
    "budget": {"n_trials": 20, "parallelism": 1},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    url: str
    db_url: str
    key_a: str
    key_b: str

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture
def service(migrated_url: str) -> Iterator[Service]:
    with serving(migrated_url) as svc:
        yield svc


@contextmanager
def serving(migrated_url: str, **settings: Any) -> Iterator[Service]:
    """The app under uvicorn and a dispatcher, in this process; `settings`: the API's."""
    with session_factory(migrated_url)() as s:
        key_a = create_api_key(s, get_or_create_team(s, "team-a"))
        key_b = create_api_key(s, get_or_create_team(s, "team-b"))
        s.commit()
    port = free_port()
    app = create_app(migrated_url, Settings(database_url=migrated_url, poll_s=0.2,
                                            key_cache_s=KEY_CACHE_S, **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    web = threading.Thread(target=server.run, daemon=True)
    web.start()
    d = Dispatcher(DispatcherConfig.from_settings(
        migrated_url, poll_s=0.3, heartbeat_interval=1, grace_period=3, stop_grace_s=2))
    worker = threading.Thread(target=d.run, daemon=True)
    worker.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield Service(f"http://127.0.0.1:{port}", migrated_url, key_a, key_b)
    finally:
        d.stop_event.set()
        server.should_exit = True
        worker.join(60)
        web.join(10)


def events(svc: Service, key: str, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    return list(Client(svc.url, key).events(job_id))


def test_submit_events_trials_recommendation(service: Service) -> None:
    with service.http(service.key_a) as h:
        r = h.post("/v1/jobs", json=FAST)
        assert r.status_code == 201, r.text
        job = r.json()
        assert r.headers["location"] == f"/v1/jobs/{job['id']}" == job["links"]["self"]
        assert job["status"] == "queued" and job["progress"]["n_trials"] == 8
        # 25% of the budget is reserved for the confirmation race: 6 search trials, up to 2 runs.
        assert job["confirmation"] == {"reserved": 2, "runs": 0, "share_of_budget": 0.0,
                                       "note": None}
        # Said at submit: the budget covers the defaults sweep of 2 of the 4 families, the
        # two whose starts score best on the reference corpus.
        from tuner import corpus

        order = [s.optimizer for s in corpus.sweep_starts(corpus.load())
                 if s.optimizer in FAST["space"]["optimizers"]]
        assert job["notes"][1] == ("the budget covers the defaults sweep of 2 of 4 families "
                                   "(search.sweep_share x budget.n_trials = 2); left to the "
                                   f"sampler: {', '.join(order[2:])}")
        # The order is not settled at submit: the job's start orders the sweep by the team's
        # ranking for iris (here transferred from the reference corpus) and rewrites the notes,
        # which the progress events carry.
        planned = "planned at submit: when the job starts, the service orders the sweep"
        assert planned in job["notes"][0]
        evs = events(service, service.key_a, job["id"])
        kinds = [e for e, _ in evs]
        assert kinds[-1] == "end" and set(kinds[:-1]) == {"progress"}
        started = [d["notes"] for e, d in evs if e == "progress"][-1]
        assert started == evs[-1][1]["notes"] and planned not in started[0]
        assert started[0].startswith("defaults sweep, in this order (")
        dones = [d["progress"]["done"] for e, d in evs if e == "progress"]
        assert dones == sorted(dones) and len(dones) >= 2  # progress as trials finish
        final = evs[-1][1]
        assert final["status"] == "completed", final["error"]
        n = final["progress"]["done"]
        assert n == final["progress"]["n_trials"] == 6 + final["confirmation"]["runs"]
        assert 1 <= final["confirmation"]["runs"] <= 2 and "stopped" in \
            final["confirmation"]["note"]

        got = h.get(f"/v1/jobs/{job['id']}").json()
        assert got["best"]["value"] == got["progress"]["best_value"]
        assert got["by_optimizer"][0]["best"]["value"] == got["best"]["value"]

        trials = h.get(f"/v1/jobs/{job['id']}/trials").json()
        assert trials["count"] == n == len(trials["data"])
        for t in trials["data"]:
            assert {"params", "state", "stop_reason", "stop_step", "steps"} <= set(t)
            if t["state"] in ("complete", "pruned"):
                assert [s["step"] for s in t["steps"]] == list(range(1, t["stop_step"] + 1))
        page = h.get(f"/v1/jobs/{job['id']}/trials", params={"offset": 6, "limit": 5}).json()
        assert [t["number"] for t in page["data"]] == list(range(6, n)) and page["count"] == n
        bare = h.get(f"/v1/jobs/{job['id']}/trials", params={"steps": "false"})
        assert bare.status_code == 200 and bare.json()["count"] == n
        assert all("steps" not in t and "params" in t for t in bare.json()["data"])
        # One state's trials (a traceback is kept only where a trial raised: none here)
        done = h.get(f"/v1/jobs/{job['id']}/trials", params={"state": "complete"}).json()
        assert done["count"] == len(done["data"]) == sum(
            t["state"] == "complete" for t in trials["data"]) >= 1
        assert all(t["state"] == "complete" and t["traceback"] is None for t in done["data"])
        one = h.get(f"/v1/jobs/{job['id']}/trials/{done['data'][0]['number']}")
        assert one.status_code == 200 and one.json() == next(
            t for t in trials["data"] if t["number"] == done["data"][0]["number"])
        gone = h.get(f"/v1/jobs/{job['id']}/trials/{n + 5}")
        assert gone.status_code == 404 and gone.json()["detail"] == (
            f"job {job['id']} has no finished trial {n + 5} ({n} finished so far)")
        # past the column's range: not there either (no database error); past int64 or not a
        # number: the field named
        assert h.get(f"/v1/jobs/{job['id']}/trials/{2**63 - 1}").status_code == 404
        for bad_number in (str(2**63), "-1", "x"):
            r = h.get(f"/v1/jobs/{job['id']}/trials/{bad_number}")
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "number", r.text
        bad = h.get(f"/v1/jobs/{job['id']}/trials", params={"state": "finished"})
        assert bad.status_code == 422 and bad.json()["detail"] == (
            "state: unknown 'finished'; valid choices: complete, pruned, diverged, failed")
        assert bad.json()["errors"] == [{"field": "state", "message": "unknown state"}]
        assert sum(t["confirm_of"] is not None for t in trials["data"]) == \
            final["confirmation"]["runs"]

        rec = h.get("/v1/recommendations", params={"model": "mlp", "dataset": "iris"}).json()
        assert rec["method"] == "direct" and rec["metric"] == "val_accuracy"
        # Held against a model that ignores its inputs, on this split's validation set: what
        # predicting the training set's most common class scores there (the job stored it)
        from tuner.datasets import load_dataset, no_skill

        assert rec["no_skill"]["value"] == pytest.approx(
            no_skill(load_dataset("iris", {}, 0), "val_accuracy")) and rec["no_skill"][
            "predicts"] == "the training set's most common class"
        # (0.33 on iris's three balanced classes) as the best family's interval stands to it:
        # a job this small may leave its interval reaching down to it; said where it does
        ns, x = rec["no_skill"], rec["ranking"][0]["expected"]
        assert ns["verdict"] == ("no_better" if x["value"] <= ns["value"] else
                                 "above" if x["low"] > ns["value"] else "not_shown"), (ns, x)
        assert (ns["clause"] == "") == (ns["verdict"] == "above")
        assert rec["summary"].startswith(ns["clause"]) and ns["summary"].startswith(
            f"the best family, {rec['ranking'][0]['optimizer']}")
        assert ("predicting" in rec["in_short"]) == (ns["verdict"] != "above")
        assert rec["source"] == "team history" and rec["budget"] == {
            "epochs": 4, "batch_size": 64, "early_stopping_patience": None, "precision": "fp32",
            "training_seed": 0, "training_format": 1}
        # The default job repeated configurations (its confirmation runs). On iris's 30
        # validation examples the repeats may all land on the same value: then no spread was
        # measured, and nothing is separated; else the intervals are confidence intervals.
        assert rec["noise"]["dof"] >= 1
        if rec["noise"]["sigma"] is None:
            assert rec["noise"]["source"].startswith("none measured: every configuration run")
            assert all(e["expected"]["kind"] == "spread" for e in rec["ranking"])
            assert rec["verdict"] in ("not_separated", "one_family")
        else:
            assert all(e["expected"]["kind"] in ("t", "noise") for e in rec["ranking"])
            # Never "not separated" with a noise estimate. ("one_family" when the sampled
            # trials of the other families were all pruned: the sweep runs 2 of 4 families.)
            assert rec["verdict"] in ("winner", "tied", "one_family")
        assert max(e["best_trial_value"] for e in rec["ranking"]) == got["best"]["value"]
        assert rec["start_from"]["optimizer"] == rec["ranking"][0]["optimizer"]
        # The answer in a team's own loop: the recipe is a configuration the job trained, and
        # its schedule gives the learning rates that trial recorded (iris: 120 / 64 -> 2 steps).
        from tests.test_recipe import replayed_lrs
        from tuner.recipe import recipe

        r = recipe(rec)
        assert (r.family, r.epochs, r.batch_size) == (rec["ranking"][0]["optimizer"], 4, 64)
        ran = [t for t in trials["data"] if t["params"] == r.params and t["state"] == "complete"]
        assert ran and replayed_lrs(r, 2, [s["value"] for s in ran[0]["steps"]]) == \
            pytest.approx([s["lr"] for s in ran[0]["steps"]], rel=1e-9)
        tasks = h.get("/v1/tasks").json()
        assert tasks["count"] == 1 and tasks["data"][0]["n_trials"] == n
        assert rec["tasks"][0]["n_trials"] == n and rec["tasks"][0]["n_jobs"] == 1
        by_id = h.get("/v1/recommendations", params={"task": tasks["data"][0]["id"]}).json()
        assert by_id["method"] == "direct" and by_id["ranking"] == rec["ranking"]
        # Asked again, the answer comes from the cache as stored JSON: the same document.
        again = h.get("/v1/recommendations", params={"task": tasks["data"][0]["id"]})
        assert again.headers["content-type"] == "application/json" and again.json() == by_id
        assert {"expected", "evidence", "robustness", "cost"} <= set(rec["ranking"][0])
        # A task that is not the team's is not found, as a job is (not a spec error).
        for missing in (h.get("/v1/recommendations", params={"task": 99999}),
                        h.get("/v1/tasks/99999/learning-rates")):
            assert missing.status_code == 404 and missing.json()["title"] == "Not found"
            assert missing.json()["detail"] == "task 99999 not found in your team"
        # The team's task, asked for with another model: not "not found" (it is there), but
        # which field does not match it.
        mine = tasks["data"][0]
        clash = h.get("/v1/recommendations", params={"task": mine["id"], "model": "cnn"})
        assert clash.status_code == 422 and clash.json()["detail"] == (
            f"model: task {mine['id']} is model {mine['model']['name']} on dataset "
            f"{mine['dataset']['name']} ({mine['metric']}), not model cnn; give task alone, or "
            f"the model and dataset without it"), clash.json()
        # A team file is no task until a job ran on it: the query cannot give its params, and
        # the answer says what to do (it named the spec field `task.dataset.params.path`).
        unnamed = h.get("/v1/recommendations", params={"model": "mlp", "dataset": "file"})
        assert unnamed.status_code == 422 and unnamed.json()["errors"][0]["field"] == "dataset"
        assert unnamed.json()["detail"] == (
            "dataset: 'file' names no task without its params (dataset.params.path: required), "
            "which a query cannot give, and none of the team's tasks is mlp on file yet: submit "
            "a job on it, then ask with task=<id> (or model and dataset, which then find it)")
        same = h.get("/v1/recommendations", params={"task": mine["id"],
                                                    "model": mine["model"]["name"]}).json()
        assert same["ranking"] == rec["ranking"]
        # Early stopping is part of the budget: this job ran without, and 0 asks for that.
        task_id = tasks["data"][0]["id"]
        none = h.get("/v1/recommendations", params={"task": task_id,
                                                    "early_stopping_patience": 0}).json()
        assert none["method"] == "direct" and none["ranking"] == rec["ranking"]
        other = h.get("/v1/recommendations", params={"task": task_id,
                                                     "early_stopping_patience": 2}).json()
        assert other["method"] == "transfer" and other["budget"]["early_stopping_patience"] == 2
        lrs = h.get(f"/v1/tasks/{task_id}/learning-rates",
                    params={"early_stopping_patience": 2}).json()
        assert lrs["budget"]["early_stopping_patience"] == 2 and lrs["families"] == {}
        assert h.get(f"/v1/tasks/{task_id}/learning-rates").json()["families"]  # this job's
        bad = h.get("/v1/recommendations", params={"task": task_id,
                                                   "early_stopping_patience": -1})
        assert bad.status_code == 422 and "early_stopping_patience" in bad.text
        # So is the precision: this job ran fp32; bf16 is another budget, not in its history.
        assert h.get("/v1/recommendations", params={"task": task_id, "precision": "fp32"}
                     ).json()["ranking"] == rec["ranking"]
        bf16 = h.get("/v1/recommendations", params={"task": task_id, "precision": "bf16"}).json()
        assert bf16["method"] == "transfer" and bf16["budget"]["precision"] == "bf16"
        bad = h.get("/v1/recommendations", params={"task": task_id, "precision": "fp8"})
        assert bad.status_code == 422 and "precision" in bad.text and "bf16" in bad.text
        # And the training seed, which draws the split: seed 3 is another validation set.
        split3 = h.get("/v1/recommendations", params={"task": task_id, "training_seed": 3})
        assert split3.json()["method"] == "transfer" and split3.json()["budget"]["training_seed"] == 3
        bad = h.get("/v1/recommendations", params={"task": task_id, "training_seed": -1})
        assert bad.status_code == 422 and "training_seed" in bad.text
        listed = h.get("/v1/jobs", params={"status": "completed", "model": "mlp"}).json()
        assert listed["count"] == 1 and listed["data"][0]["id"] == job["id"]
        assert h.get("/v1/jobs", params={"dataset": "digits"}).json()["count"] == 0


def test_team_isolation(service: Service) -> None:
    with service.http(service.key_a) as a, service.http(service.key_b) as b:
        job = a.post("/v1/jobs", json={**FAST, "budget": {"n_trials": 2}}).json()
        Client(service.url, service.key_a).wait(job["id"])
        missing = b.get("/v1/jobs/" + "0" * 32)
        short = job["id"][:8]  # as the web UI lists it: the job for its team, no other
        assert a.get(f"/v1/jobs/{short}/trials").json()["count"] == 2
        for r in (b.get(f"/v1/jobs/{job['id']}"), b.get(f"/v1/jobs/{job['id']}/trials"),
                  b.get(f"/v1/jobs/{job['id']}/events"), b.post(f"/v1/jobs/{job['id']}/cancel"),
                  b.get(f"/v1/jobs/{short}")):
            assert r.status_code == 404 == missing.status_code
            assert r.json()["title"] == missing.json()["title"] == "Not found"
        assert b.get("/v1/jobs").json() == {"data": [], "count": 0}
        assert b.get("/v1/tasks").json() == {"data": [], "count": 0}
        a_task = a.get("/v1/tasks").json()["data"][0]["id"]
        assert b.get("/v1/recommendations", params={"task": a_task}).status_code == 404
        assert b.get(f"/v1/tasks/{a_task}/learning-rates").status_code == 404
        # Team b has no history: its answer comes from the read-only reference corpus, never
        # from team a's trials.
        rec_b = b.get("/v1/recommendations", params={"model": "mlp", "dataset": "iris"}).json()
        assert rec_b["method"] == "transfer" and rec_b["source"] == "reference corpus"
        assert rec_b["tasks"] == [] and all(
            n["source"] == "reference corpus" for n in rec_b["similar_tasks"])
        assert rec_b["ranking"][0]["rank"] == 1 and rec_b["start_from"] is not None
        # The corpus is not a team's data: no route reaches it.
        assert b.get(f"/v1/jobs/{rec_b['similar_tasks'][0]['task_id']}").status_code == 404
        assert a.get("/v1/recommendations",
                     params={"model": "mlp", "dataset": "iris"}).json()["method"] == "direct"
        assert a.get(f"/v1/jobs/{job['id']}").json()["status"] == "completed"


def test_auth_failures_and_health(service: Service) -> None:
    with service.http() as anon:
        r = anon.get("/v1/jobs")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.headers["content-type"] == "application/problem+json"
        assert anon.get("/healthz").json() == {"status": "ok"}
        assert anon.get("/readyz").json() == {"status": "ok"}
        assert anon.get("/openapi.json").json()["paths"]["/v1/jobs"]
        assert anon.get("/docs").status_code == 200
    with service.http("tk_wrong") as bad:
        assert bad.get("/v1/jobs").status_code == 401
    with service.http(service.key_b) as b:
        assert b.get("/v1/models").status_code == 200  # its team is now cached
        with session_factory(service.db_url)() as s:
            revoke_key(s, service.key_b[:12])
            s.commit()
        # The API keeps a key's team for key_cache_s: a revoked key stops within that time.
        t0 = time.monotonic()
        assert b.get("/v1/models").status_code == 200  # served from the cache
        while b.get("/v1/models").status_code == 200:
            assert time.monotonic() - t0 < KEY_CACHE_S + 0.5, "the revoked key still works"
            time.sleep(0.05)
        assert b.get("/v1/models").status_code == 401
    with service.http(service.key_a) as a:
        assert {m["name"] for m in a.get("/v1/models").json()} >= {"mlp", "cnn", "tiny_mlp"}
        assert "digits" in {d["name"] for d in a.get("/v1/datasets").json()}
        assert "adam.lr" in a.get("/v1/space").json()["optimizers"]["adam"]["params"]
        metrics = a.get("/metrics").text
        assert 'tuner_http_requests_total{method="GET",route="/v1/jobs",status="401"}' in metrics
        assert 'tuner_jobs{status="queued"}' in metrics


def test_idempotent_submit(service: Service) -> None:
    spec = {**FAST, "budget": {"n_trials": 2}}
    with service.http(service.key_a) as h:
        r1 = h.post("/v1/jobs", json=spec, headers={"Idempotency-Key": "abc"})
        r2 = h.post("/v1/jobs", json=spec, headers={"Idempotency-Key": "abc"})
        assert (r1.status_code, r2.status_code) == (201, 200)
        assert r1.json()["id"] == r2.json()["id"]
        r3 = h.post("/v1/jobs", json={**spec, "budget": {"n_trials": 3}},
                    headers={"Idempotency-Key": "abc"})
        assert r3.status_code == 409 and "different job spec" in r3.json()["detail"]
        assert h.get("/v1/jobs").json()["count"] == 1
    with service.http(service.key_b) as b:  # keys are per team
        assert b.post("/v1/jobs", json=spec, headers={"Idempotency-Key": "abc"}).status_code == 201


def test_a_submission_whose_answer_is_lost_is_sent_again_as_the_same_job(
        service: Service) -> None:
    """The answer to a submission does not come back in time (a large data folder read for the
    first time, a dropped connection) after the server created the job: the client sends it
    again under the same Idempotency-Key and gets that job, not a second one."""
    spec = {**FAST, "budget": {"n_trials": 2}}
    once, sent = _losing(1)
    with Client(service.url, service.key_b, transport=once) as c:
        before = c.jobs()["count"]
        job = c.submit(spec)
        assert len(sent) == 2 and sent[0] == sent[1]  # once more, under its key
        assert c.jobs()["count"] == before + 1 and c.job(job["id"])["id"] == job["id"]
        always, sent = _losing(10)
        with pytest.raises(ApiError, match=r"did not answer in time.*submit again with "
                                           r"idempotency key [0-9a-f]{32} to get it"):
            Client(service.url, service.key_b, transport=always).submit(spec, retries=1)
        assert len(sent) == 2 and c.jobs()["count"] == before + 2  # one job, made by its first send


def test_a_submission_on_data_read_for_the_first_time_is_answered_while_it_is_read(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The first submission on a large data folder: the server reads it (its digest is part of
    the task) for at most TUNER_DIGEST_WAIT_S, then answers 503 with how far it got, creating
    nothing, while the read goes on; the client sends it again under its Idempotency-Key until
    the job is created: one job, on the digest of the whole data."""
    import hashlib

    from tests.conftest import DATA_ROOT
    from tests.test_data_models import _gated

    run = uuid.uuid4().hex[:8]  # new files on each backend: nothing read or loaded before
    folder = DATA_ROOT / "team-a"
    folder.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{i % 7},{i % 3},{i % 2}" for i in range(120))
    (folder / f"first-read-{run}.csv").write_text(f"a,b,label\n{rows}\n")
    size = (folder / f"first-read-{run}.csv").stat().st_size
    spec = {"task": {"model": {"name": "mlp", "params": {"hidden": [4]}},
                     "dataset": {"name": "file", "params": {"path": f"first-read-{run}.csv"}}},
            "training": {"epochs": 1}, "budget": {"n_trials": 1}}
    gate, reads = _gated(monkeypatch)
    with serving(migrated_url, digest_wait_s=0.2) as svc, svc.http(svc.key_a) as h:
        r = h.post("/v1/jobs", json=spec, headers={"Idempotency-Key": "first-read"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert r.json()["progress"] == {"field": "task.dataset", "stage": "reading",
                                        "read_bytes": 0, "total_bytes": size,
                                        "elsewhere": False, "seconds": 0.0}
        assert "still reading your data to identify it" in r.json()["detail"]
        assert h.get("/v1/jobs").json()["count"] == 0  # nothing created meanwhile
        seen: list[dict[str, Any]] = []
        submitted: list[dict[str, Any]] = []
        sender = threading.Thread(target=lambda: submitted.append(Client(
            svc.url, svc.key_a).submit(spec, "first-read", on_reading=seen.append)))
        sender.start()
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen and seen[0]["total_bytes"] == size  # the client was told, and waits
        gate.set()
        sender.join(60)
        (job,) = submitted
        assert reads == [f"first-read-{run}.csv"]  # one read, whatever the number of sends
        assert h.get("/v1/jobs").json()["count"] == 1
        digest = hashlib.sha256((folder / f"first-read-{run}.csv").read_bytes()).hexdigest()[:16]
        assert job["task"]["data_digest"] == digest
        # known now: a new submission on the same data is answered at once
        again = h.post("/v1/jobs", json=spec)
        assert again.status_code == 201 and again.json()["task"]["id"] == job["task"]["id"]
        # Asked by names with another metric: the task is there, measured by val_accuracy, and
        # the answer says so (it said "none of the team's tasks is mlp on file yet").
        by_loss = h.get("/v1/recommendations",
                        params={"model": "mlp", "dataset": "file", "metric": "val_loss"})
        assert by_loss.status_code == 422 and by_loss.json()["errors"][0]["field"] == "metric"
        assert by_loss.json()["detail"].endswith(
            f"and none of the team's tasks of mlp on file is measured by val_loss: task "
            f"{job['task']['id']} is, by val_accuracy (ask with task=<id>, or "
            f"metric=val_accuracy)"), by_loss.json()
        # `tuner submit` shows the read's progress while it waits
        gate.clear()
        (folder / f"second-read-{run}.csv").write_text(f"a,b,label\n{rows}\n9,9,1\n")
        spec["task"]["dataset"]["params"]["path"] = f"second-read-{run}.csv"
        (tmp_path / "job.json").write_text(json.dumps(spec))
        cli = subprocess.Popen(
            [str(Path(sys.executable).parent / "tuner"), "submit", str(tmp_path / "job.json")],
            env={**os.environ, "TUNER_URL": svc.url, "TUNER_API_KEY": svc.key_a},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while f"second-read-{run}.csv" not in reads and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the server's answer after its 0.2 s wait, and the CLI's line
        gate.set()
        out, errs = cli.communicate(timeout=120)
        assert cli.returncode == 0, errs
        assert "the server is reading task.dataset for the first time, to identify it: " \
               f"0 B of {size + 6} B read; the job is created when it is done" in " ".join(
                   errs.split()), errs
        assert h.get(f"/v1/jobs/{out.strip()}").status_code == 200
        # Read, the data may still take long to load and check (a large hf: folder builds its
        # Arrow cache): that too goes on in the background, answered the same way.
        from tuner import tasks

        loaded, real = threading.Event(), tasks._inspect
        monkeypatch.setattr(tasks, "_inspect", lambda *a: (loaded.wait(30), real(*a))[1])
        (folder / f"third-read-{run}.csv").write_text(f"a,b,label\n{rows}\n8,8,0\n")
        spec["task"]["dataset"]["params"]["path"] = f"third-read-{run}.csv"
        r = h.post("/v1/jobs", json=spec, headers={"Idempotency-Key": "third-read"})
        assert r.status_code == 503 and r.json()["progress"]["stage"] == "loading", r.text
        assert "still loading your data to check the job against it" in r.json()["detail"]
        assert h.get("/v1/jobs").json()["count"] == 3  # nothing created meanwhile
        loaded.set()
        third = Client(svc.url, svc.key_a).submit(spec, "third-read")
        assert h.get("/v1/jobs").json()["count"] == 4 and third["task"]["id"] not in (
            job["task"]["id"], again.json()["task"]["id"])
        for j in (job["id"], again.json()["id"], out.strip(), third["id"]):
            h.post(f"/v1/jobs/{j}/cancel")


def _losing(n: int) -> tuple[httpx.HTTPTransport, list[str]]:
    """A transport whose first `n` job submissions reach the server but whose answers are lost
    (a read timeout); and the Idempotency-Keys they were sent with."""
    sent: list[str] = []

    class Lost(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)  # the server did the work
            if request.method == "POST":
                sent.append(request.headers["Idempotency-Key"])
                if len(sent) <= n:
                    response.close()
                    raise httpx.ReadTimeout("no answer in time", request=request)
            return response

    return Lost(), sent


BAD_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    ({"task": {"model": {"name": "resnet"}, "dataset": {"name": "iris"}}}, "task.model.name",
     "valid choices: cnn, hf:<name>, linear, mlp, timm:<name>"),
    ({"task": {"model": {"name": "mlp"}, "dataset": {"name": "mnist"}}}, "task.dataset.name",
     "valid choices: breast_cancer"),
    ({"task": {**FAST["task"], "metric": "f1"}}, "task.metric", "val_accuracy, val_loss, val_r2"),
    ({"task": {**FAST["task"], "direction": "up"}}, "task.direction", "maximize"),
    ({"task": {**FAST["task"], "metric": "val_loss", "direction": "maximize"}}, "task",
     "contradicts"),
    ({"space": {"optimizers": ["adamm"]}}, "space.optimizers", "nesterov"),
    ({"space": {"schedules": ["linear"]}}, "space.schedules", "polynomial"),
    ({"space": {"overrides": {"adam.lr": {"low": 1, "high": 0.1}}}}, "space", "low (1.0) > high"),
    ({"space": {"overrides": {"sgd.lr": 9.0}}}, "space", "outside its range"),
    ({"space": {"lookahead_bases": ["proximal"]}}, "space.lookahead_bases", "Lookahead base"),
    ({"training": {"epochs": 0}}, "training.epochs", "greater than or equal to 1"),
    ({"training": {"epochs": 100000}}, "training.epochs", "less than or equal to 1000"),
    ({"training": {"batch_size": -1}}, "training.batch_size", "greater than or equal to 1"),
    ({"training": {"precision": "fp8"}}, "training.precision", "'fp32' or 'bf16'"),
    ({"budget": {"n_trials": 10**6}}, "budget.n_trials", "less than or equal to 10000"),
    ({"budget": {"timeout_s": -5}}, "budget.timeout_s", "greater than 0"),
    ({"budget": {"parallelism": 0}}, "budget.parallelism", "greater than or equal to 1"),
    ({"search": {"sampler": "bayes"}}, "search.sampler", "cmaes, gp, qmc, random, tpe"),
    ({"search": {"pruner": "x"}}, "search.pruner", "asha, hyperband"),
    ({"search": {"warm_start": "maybe"}}, "search.warm_start", "'none', 'task' or 'similar'"),
    ({"resources": {"cpus_per_trial": 0}}, "resources.cpus_per_trial", "greater than 0"),
    ({"resources": {"gpus_per_trial": 2.5}}, "resources.gpus_per_trial", "whole number"),
    ({"surprise": 1}, "surprise", "no field 'surprise' in a job spec; its fields: task, space"),
    ({"search": {"n_trials": 3}}, "search.n_trials", "did you mean budget.n_trials?"),
    # Checked against the real data, before anything is created:
    ({"task": {"model": {"name": "cnn"}, "dataset": {"name": "iris"}}}, "task.model",
     "cnn needs image-shaped input"),
    ({"task": {"model": {"name": "mlp", "params": {"hidden": "64"}}, "dataset": {"name": "iris"}}},
     "task.model.params.hidden", "should be a list, got '64'"),
    ({"budget": {"n_trials": 2, "parallelism": 8}}, "budget.parallelism",
     "8 concurrent trials for only 2 trials"),
]


def test_validation_errors_name_the_field(service: Service) -> None:
    with service.http(service.key_a) as h:
        for patch, field, fragment in BAD_FIELDS:
            body = {**FAST, **patch}
            r = h.post("/v1/jobs", json=body)
            assert r.status_code == 422, (patch, r.text)
            p = r.json()
            assert r.headers["content-type"] == "application/problem+json"
            assert p["status"] == 422 and p["instance"] == "/v1/jobs"
            assert field in [e["field"] for e in p["errors"]], (field, p)
            assert fragment in p["detail"], (fragment, p["detail"])
        big = h.post("/v1/jobs", content=b"{" + b" " * (300 * 1024) + b"}",
                     headers={"content-type": "application/json"})
        assert big.status_code == 413 and big.json()["title"] == "Payload too large"
        assert h.post("/v1/jobs", content=b"not json",
                      headers={"content-type": "application/json"}).status_code == 422
        assert h.get("/v1/jobs", params={"status": "done"}).json()["errors"][0]["field"] == "status"
        assert h.get("/v1/recommendations").status_code == 422
        # the field named is the one missing
        half = h.get("/v1/recommendations", params={"model": "mlp"})
        assert half.status_code == 422 and half.json()["errors"] == [
            {"field": "dataset", "message": "required without task"}]
        metric = h.get("/v1/recommendations", params={"model": "mlp", "dataset": "iris",
                                                       "metric": "nope"}).json()
        assert metric["errors"] == [{"field": "metric", "message": "unknown 'nope'; valid "
                                     "choices: val_accuracy, val_loss, val_r2"}], metric
        # ... by the query's own names, not the job spec's it is read into (`task.metric`)
        for params, field, words in (
                ({"model": "mlp", "dataset": "iris", "metric": "val_r2"}, "metric",
                 "'val_r2' does not apply to a classification dataset"),
                ({"model": "resnetx", "dataset": "iris"}, "model", "unknown model 'resnetx'"),
                ({"model": "mlp", "dataset": "irisx"}, "dataset", "unknown dataset 'irisx'"),
                ({"model": "cnn", "dataset": "iris"}, "model", "cnn needs image-shaped input")):
            got = h.get("/v1/recommendations", params=params).json()
            assert [e["field"] for e in got["errors"]] == [field], got
            assert got["errors"][0]["message"].startswith(words), got
        assert h.get("/v1/jobs").json()["count"] == 0  # nothing half-created


def test_cancel_over_http(service: Service) -> None:
    with service.http(service.key_a) as h:
        job = h.post("/v1/jobs", json=SLOW).json()
        deadline = time.monotonic() + 120
        while h.get(f"/v1/jobs/{job['id']}").json()["progress"]["done"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        r = h.post(f"/v1/jobs/{job['id']}/cancel")
        assert r.status_code == 202
        final = Client(service.url, service.key_a).wait(job["id"])
        assert final["status"] == "cancelled" and final["progress"]["done"] < 20
        queued = h.post("/v1/jobs", json={**SLOW, "budget": {"n_trials": 1}}).json()
        # a queued job can be cancelled before any dispatcher takes it (or just after)
        assert h.post(f"/v1/jobs/{queued['id']}/cancel").json()["status"] in (
            "cancelled", "running")


def test_a_failed_trials_traceback_through_the_cli(service: Service, tmp_path: Any) -> None:
    """A team's loop that raises, through the service: `tuner trials` prints the traceback the
    service kept (files under their import roots), and `tuner rerun` raises it again here, its
    whole traceback from the trial's own frames, saying the service's error."""
    env = {**os.environ, "TUNER_URL": service.url, "TUNER_API_KEY": service.key_a,
           "TUNER_HOME": str(tmp_path)}
    client = Client(service.url, service.key_a)
    job = client.submit({"task": {"trainable": {"name": "crashes"}}, "training": {"epochs": 2},
                         "search": {"confirm_top_k": 0}, "budget": {"n_trials": 1}})
    final = client.wait(job["id"])
    assert final["status"] == "failed" and final["error"].endswith(
        f"(`tuner trials {job['id']} --state failed` prints their tracebacks)"), final["error"]
    listed = _cli(["trials", job["id"], "--state", "failed"], env)
    assert listed.returncode == 0, listed.stderr
    text = listed.stdout
    assert re.search(r"trials? [\d, ]+ failed:\nTraceback \(most recent call last\):\n", text), text
    assert 'File "tuner_example_plugin/trainables.py", line ' in text and \
        "ValueError: the team's loader lost its shard" in text, text
    # --pdb: the debugger, in the team's frame that raised (here told to print a local, quit)
    again = subprocess.run([sys.executable, "-m", "cli", "rerun", job["id"], "0", "--pdb"],
                           env=env, text=True, capture_output=True, timeout=600, check=False,
                           input="p epoch\nq\n")
    assert again.returncode == 1, again.stderr
    assert re.search(r"trainables\.py\(\d+\)crashes\(\)\n-> raise ValueError", again.stdout) \
        and "(Pdb) 2\n" in again.stdout, again.stdout
    tb = again.stderr
    assert re.search(r'Traceback \(most recent call last\):\n  File "[^"]+tuner/objective\.py"',
                     tb), tb  # from the trial's own frames: not Optuna's, not the command's
    assert re.search(r'tuner_example_plugin/trainables\.py", line \d+, in crashes\n\s+raise '
                     r'ValueError', tb) and "optuna" not in tb, tb
    assert " ".join(tb.split()).endswith(
        f"trial 0 of job {job['id']} raised here, as in the service (ValueError: the team's "
        f"loader lost its shard)"), tb


def test_tuner_rerun_of_a_job_on_the_teams_own_file(tmp_path: Path) -> None:
    """A job on a team's CSV, run again on the user's machine: the service read
    `<data root>/team-a/`; `tuner rerun` reads `TUNER_DATA_ROOT` as the team's folder. Pointed
    at the service's root instead, it said only `no such file ... under the data root`: now
    it names the root it read and what to point it at; at a copy of the folder it reruns the
    trial value for value; at a file of the same name with other contents it trains nothing,
    saying so. (Client-side: one database backend is enough.)"""
    from tests.conftest import DATA_ROOT
    from tuner.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'rerun.db'}"
    upgrade(url)
    name = f"rerun-{uuid.uuid4().hex[:8]}.csv"
    rows = "\n".join(f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(120))
    (DATA_ROOT / "team-a").mkdir(parents=True, exist_ok=True)
    (DATA_ROOT / "team-a" / name).write_text(f"a,b,label\n{rows}\n")
    spec = {"task": {"model": {"name": "linear"},
                     "dataset": {"name": "file", "params": {"path": name}}},
            "training": {"epochs": 2}, "budget": {"n_trials": 1}}
    with serving(url) as svc:
        job = Client(svc.url, svc.key_a).submit(spec)
        env = {**os.environ, "TUNER_URL": svc.url, "TUNER_API_KEY": svc.key_a,
               "TUNER_HOME": str(tmp_path)}
        deadline = time.monotonic() + 120
        while Client(svc.url, svc.key_a).job(job["id"])["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        recorded = Client(svc.url, svc.key_a).trial(job["id"], 0)
        assert recorded["state"] == "complete", recorded
        at_root = _cli(["rerun", job["id"], "0"], {**env, "TUNER_DATA_ROOT": str(DATA_ROOT)})
        said = " ".join(at_root.stderr.split())
        assert at_root.returncode == 2 and (
            f"error: task.dataset.params.path: no such file {name!r} under the data root here, "
            f"{DATA_ROOT.resolve()} (TUNER_DATA_ROOT): point it at a copy of your team's data "
            f"folder (the service reads a job's files from <its data root>/<team>/)") in said, said
        copy = tmp_path / "mine"
        copy.mkdir()
        (copy / name).write_text((DATA_ROOT / "team-a" / name).read_text())
        ran = _cli(["rerun", job["id"], "0", "--json"], {**env, "TUNER_DATA_ROOT": str(copy)})
        assert ran.returncode == 0, ran.stderr
        assert [s["value"] for s in json.loads(ran.stdout)["here"]["steps"]] == \
            [s["value"] for s in recorded["steps"]]
        (copy / name).write_text(f"a,b,label\n{rows}\n1,1,1\n")  # a row more
        other = _cli(["rerun", job["id"], "0"], {**env, "TUNER_DATA_ROOT": str(copy)})
        said = " ".join(other.stderr.split())
        assert other.returncode == 2 and "task.dataset: the data here is not what the job " \
            f"trained on (digest {job['task']['data_digest']}, here" in said, said


def test_tuner_rerun_prints_the_run_beside_the_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tuner rerun`'s table: each epoch here beside the service's, then how it ended in each
    and whether the epochs both ran agree (a pruned trial, run to the end here)."""
    import cli.remote

    def steps(values: list[float]) -> list[dict[str, Any]]:
        return [{"step": i + 1, "value": v, "train_loss": 0.5, "lr": 0.01}
                for i, v in enumerate(values)]

    here = {"state": "complete", "value": 0.96, "detail": "", "device": "cpu",
            "steps": steps([0.8, 0.9, 0.94, 0.96])}
    pruned = {"state": "pruned", "stop_step": 2, "value": 0.9, "steps": steps([0.8, 0.9])}
    for service, said in ((pruned, "the 2 epochs both ran gave the same values"),
                          ({**pruned, "steps": steps([0.8, 0.875])},
                           "over the 2 epochs both ran the values differ by up to 0.025")):
        shown = Console(width=150, record=True, file=io.StringIO())
        monkeypatch.setattr(cli.remote, "out", shown)
        cli.remote.print_rerun(service, here, "val_accuracy")
        text = shown.export_text()
        rows = [ln.split() for ln in text.splitlines()
                if ln.strip()[:1].isdigit() and len(ln.split()) == 5]
        assert [r[:3] for r in rows] == [["1", "0.8", "0.8"], ["2", "0.9", service["steps"][1][
            "value"].__format__(".4g")], ["3", "0.94", "-"], ["4", "0.96", "-"]], text
        assert (f"here: complete, val_accuracy 0.96 (on cpu); in the service: pruned at epoch "
                f"2, val_accuracy 0.9; {said}") in " ".join(text.split()), text


def test_tuner_trials_prints_each_failures_traceback_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tuner trials` prints the failed trials' tracebacks below the table, once per distinct
    traceback with the trials that raised it (a bug that fails every trial is one traceback),
    the first three, then where the rest are."""
    import cli.remote

    shown = Console(width=120, record=True, file=io.StringIO())
    monkeypatch.setattr(cli.remote, "out", shown)
    tb = ("Traceback (most recent call last):\n  File \"team/loop.py\", line {n}, in fit\n"
          "    raise ValueError('x')\nValueError: x [bold]\n")
    trials = [{"number": i, "traceback": tb.format(n=1)} for i in (0, 2, 5)]
    trials += [{"number": 1, "traceback": None}]  # pruned: nothing raised
    trials += [{"number": 10 + i, "traceback": tb.format(n=10 + i)} for i in range(3)]
    cli.remote.print_tracebacks(trials, "j1")
    text = shown.export_text()
    assert text.count("Traceback (most recent call last):") == 3, text
    assert "trials 0, 2, 5 failed:\n" in text and "trial 10 failed:\n" in text
    assert "trial 12 failed" not in text and "ValueError: x [bold]" in text  # not markup
    assert "1 more traceback: `tuner trials j1 --state failed --json`\n" in text, text
    assert " ".join(text.split()).endswith(  # where to take it from there
        "`tuner rerun j1 0` runs a trial again here, where the plugin is installed, with its "
        "whole traceback (--pdb: in the debugger)"), text


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, text=True,
                          capture_output=True, timeout=600, check=False)


def test_cli_and_python_client(service: Service, tmp_path: Any,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "TUNER_URL": service.url, "TUNER_API_KEY": service.key_a,
           "TUNER_HOME": str(tmp_path)}
    done = _cli(["submit", "--model", "linear", "--dataset", "wine", "--trials", "4",
                 "--epochs", "3", "--optimizers", "adam,sgd", "--wait", "--json"], env)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "completed" and job["progress"]["done"] == 4
    assert "completed" in done.stderr or "4/4" in done.stderr  # the progress bar
    bad = _cli(["submit", "--model", "linear", "--dataset", "wine", "--trials", "2",
                "--parallelism", "3"], env)
    assert bad.returncode == 2 and " ".join(bad.stderr.split()) == (
        "error: budget.parallelism: 3 concurrent trials for only 2 trials; use at most 2"), \
        bad.stderr  # said once: the one error's message is the detail
    # The submit's notes, then those the job's start wrote (it ordered the sweep).
    said = " ".join(done.stderr.split())  # unwrapped
    assert "planned at submit" in said and "note (at the job's start): defaults sweep" in said, \
        said
    status = json.loads(_cli(["status", job["id"], "--json"], env).stdout)
    assert status["id"] == job["id"]
    trials = _cli(["trials", job["id"]], env).stdout
    # Every family the job ran shows in the table (which ones: one at defaults, three sampled).
    assert "Trials of" in trials and job["by_optimizer"]
    assert all(e["optimizer"] in trials for e in job["by_optimizer"])
    # one state's trials; a state that is none names the choices
    none_failed = _cli(["trials", job["id"], "--state", "failed"], env)
    assert none_failed.returncode == 0 and f"Trials of {job['id']} (0 failed)" in " ".join(
        none_failed.stdout.split()), none_failed.stdout
    bad_state = _cli(["trials", job["id"], "--state", "finished"], env)
    assert bad_state.returncode == 2 and "state: unknown 'finished'; valid choices: complete, " \
        "pruned, diverged, failed" in " ".join(bad_state.stderr.split()), bad_state.stderr
    # A trial run again here: its configuration at its seed on the job's split, with the torch
    # threads its worker had, gives the values the service recorded, epoch by epoch
    listed = Client(service.url, service.key_a).trials(job["id"])["data"]
    # (a confirmation run's seed, where there is one: not the job's own)
    again = min((t for t in listed if t["state"] == "complete"), key=lambda t: t["seed"] == 0)
    ran = _cli(["rerun", job["id"], str(again["number"]), "--json"], env)
    assert ran.returncode == 0, ran.stderr
    both = json.loads(ran.stdout)
    assert both["seed"] == again["seed"] and both["here"]["state"] == "complete"
    assert [(s["step"], s["value"]) for s in both["here"]["steps"]] == [
        (s["step"], s["value"]) for s in again["steps"]]
    assert f"seed {again['seed']}, 3 epochs on the job's split (training.seed 0), never " \
        "pruned, 1 torch thread as its worker" in " ".join(ran.stderr.split()), ran.stderr
    import torch

    if not torch.cuda.is_available():  # where to train here: a GPU this machine lacks is said
        cuda = _cli(["rerun", job["id"], str(again["number"]), "--device", "cuda"], env)
        assert cuda.returncode == 2 and "training.device: cuda, but this machine has no CUDA " \
            "GPU that torch can use" in " ".join(cuda.stderr.split()), cuda.stderr
    missing = _cli(["rerun", job["id"], "99"], env)
    assert missing.returncode == 1 and "has no finished trial 99" in missing.stderr
    assert job["id"] in _cli(["jobs"], env).stdout
    # In a narrow terminal the id stays whole (cut to `ed0ba40a…` it could not be copied): the
    # frame, then the creation time give way; at 80 columns with a long trainable name too.
    from cli.remote import jobs_table

    listed = Client(service.url, service.key_a).jobs()
    listed["data"][0]["task"]["model"] = "trainable:digits_loop_with_a_long_name"
    for width in (80, 100, 130):
        shown = Console(width=width, record=True, file=io.StringIO())
        shown.print(jobs_table(listed, width))
        lines = shown.export_text().splitlines()
        assert max(map(len, lines)) <= width and any(job["id"] in ln for ln in lines), lines
        assert ("created" in "".join(lines[:3])) == (width > 80) and "completed" in "".join(lines)
    # A task's parameters tell jobs on two of a team's CSVs apart (both were `file`)
    assert Client(service.url, service.key_a).job(job["id"])["task"]["dataset_params"] == {}
    listed["data"][0]["task"].update(dataset="file", dataset_params={"path": "houses.csv"})
    shown = Console(width=130, record=True, file=io.StringIO())
    shown.print(jobs_table(listed, 130))
    assert 'path="houses.csv"' in shown.export_text()  # under `file`, in the dataset column
    rec = json.loads(_cli(["recommend", "--model", "linear", "--dataset", "wine", "--json"],
                          env).stdout)
    assert rec["method"] == "direct" and {r["optimizer"] for r in rec["ranking"]} <= {"adam",
                                                                                      "sgd"}
    # In a narrow terminal the interval keeps its run count (`... ×` was all that showed of
    # `0.9861 [0.9723, 0.9999] ×3`): names wrap and the costs give way first.
    import cli.render

    for width in (90, 130):
        shown_rec = Console(width=width, record=True, file=io.StringIO())
        monkeypatch.setattr(cli.render, "out", shown_rec)
        cli.render.print_recommendation(
            {**rec, "ranking": [{**r, "optimizer": f"{r['optimizer']} (tied with adamw)"}
                                for r in rec["ranking"]]})
        text = shown_rec.export_text()
        for r in rec["ranking"]:
            assert cli.render._expected(r["expected"]) in text, (width, text)
    # The answer in one line, last (the job ran no baseline: said so).
    from tuner.recommend import brief

    assert rec["baseline"]["verdict"] == "not_run"
    assert " ".join(text.split()).endswith(
        f"in short: {brief(rec)}; AdamW at lr 1e-3 with cosine not run at this budget "
        f"(search.baseline or --baseline runs it)"), text
    # The team's tasks with each one's answer in a few words (the same words as /ui/tasks).

    listed = json.loads(_cli(["tasks", "--json"], env).stdout)
    assert listed["count"] == 1 and listed["data"][0]["answer"]["brief"] == brief(rec), listed
    assert listed["data"][0]["n_trials"] == 4 and listed["data"][0]["answer"]["method"] == "direct"
    assert listed["data"][0]["answer"]["against_default"] == "not run (search.baseline)"
    table = _cli(["tasks"], {**env, "COLUMNS": "300"})
    assert table.returncode == 0 and "Tasks (1)" in table.stdout, table.stderr
    assert brief(rec) in table.stdout and "linear" in table.stdout and "wine" in table.stdout
    assert "vs AdamW 1e-3 + cosine" in table.stdout and "not run (search.baseline)" in table.stdout
    # A budget never run (early stopping after 3 epochs): said so, the job without it listed apart.
    shown = _cli(["recommend", "--model", "linear", "--dataset", "wine",
                  "--early-stopping-patience", "3"], {**env, "COLUMNS": "300"})
    assert shown.returncode == 0, shown.stderr
    assert "  1. " in shown.stdout and "lr=" in shown.stdout  # each configuration on a line
    assert "budget: 3 epochs, batch size 64, early stopping patience 3; also in history: 3 " \
           "epochs/batch 64/no early stopping " \
           f"({sum(e['evidence']['n_trials'] for e in rec['ranking'])} trials)" in shown.stdout
    bad = _cli(["submit", "--model", "linear", "--dataset", "wine", "--optimizers", "adamz"], env)
    assert bad.returncode == 2 and "unknown optimizer family 'adamz'" in bad.stderr
    # Two fields one section off: each problem once, on its own line, with where it belongs
    # (the joined detail printed both messages twice, as "Extra inputs are not permitted").
    (tmp_path / "off.json").write_text(json.dumps(
        {**FAST, "search": {"n_trials": 3, "optimizers": ["adam"]}}))
    off = _cli(["submit", str(tmp_path / "off.json")], {**env, "COLUMNS": "300"})
    lines = off.stderr.strip().splitlines()
    assert off.returncode == 2 and lines[0] == "error: Invalid request: 2 problems", off.stderr
    assert [ln.split(";")[-1] for ln in lines[1:]] == [
        " did you mean budget.n_trials?", " did you mean space.optimizers?"], off.stderr
    nokey = _cli(["jobs"], {**env, "TUNER_API_KEY": "tk_nope"})
    assert nokey.returncode == 1 and "invalid or revoked API key" in nokey.stderr
    missing = _cli(["status", "nope"], env)  # as `tuner job show nope` on the database
    assert missing.returncode == 1 and "job 'nope' not found" in missing.stderr, missing.stderr
    with Client(service.url, service.key_a) as c:
        second = c.submit({**FAST, "budget": {"n_trials": 2}}, idempotency_key="k1")
        assert c.submit({**FAST, "budget": {"n_trials": 2}}, idempotency_key="k1")["id"] == \
            second["id"]
        assert c.cancel(second["id"])["status"] in ("cancelled", "running")
        assert c.wait(second["id"])["status"] in ("cancelled", "completed")
        assert c.jobs()["count"] == 2 and c.tasks()["count"] == 2
        # Paged, the latest job's task first: the second job's, then the first's.
        latest = c.tasks(limit=1)
        assert latest["count"] == 2 and [t["id"] for t in latest["data"]] == [
            c.job(second["id"])["task"]["id"]]
        assert [t["id"] for t in c.tasks(offset=1)["data"]] == [job["task"]["id"]]
    table = _cli(["tasks", "--no-answers", "--limit", "1"], {**env, "COLUMNS": "300"})
    assert "Tasks (1-1 of 2)" in table.stdout, table.stdout


def test_submit_on_several_splits_and_the_answer_across_them(service: Service,
                                                            tmp_path: Any) -> None:
    """`tuner submit --splits 2`: the job twice, on training.seed 3 and 4 (two data splits),
    each followed in turn; the answer about their task reads the two splits. Sent again with
    the same idempotency key, it makes no job twice."""
    env = {**os.environ, "TUNER_URL": service.url, "TUNER_API_KEY": service.key_a,
           "TUNER_HOME": str(tmp_path), "COLUMNS": "200"}
    args = ["submit", "--model", "linear", "--dataset", "iris", "--trials", "3", "--epochs", "2",
            "--optimizers", "adam,sgd", "--pruner", "none", "--seed", "3", "--splits", "2",
            "--idempotency-key", "two-splits"]
    done = _cli([*args, "--wait", "--json"], env)
    assert done.returncode == 0, done.stderr
    jobs = json.loads(done.stdout)
    assert [j["spec"]["training"]["seed"] for j in jobs] == [3, 4]
    assert all(j["status"] == "completed" for j in jobs) and jobs[0]["id"] != jobs[1]["id"]
    assert jobs[0]["task"]["id"] == jobs[1]["task"]["id"]  # one task, two splits
    said = " ".join(done.stderr.split())
    # both submitted before the first is followed (said after it had completed, the second
    # read as submitted then)
    assert f"job {jobs[0]['id']} submitted (training.seed 3) job {jobs[1]['id']} submitted " \
           f"(training.seed 4) following job {jobs[0]['id']} (training.seed 3)" in said, said
    assert said.index(f"following job {jobs[1]['id']} (training.seed 4)") > said.index(
        "following job " + jobs[0]["id"]), said
    again = _cli(args, env)  # no --wait: the ids, one a line, the same jobs
    assert again.returncode == 0 and again.stdout.split() == [j["id"] for j in jobs]
    # Followed in words, it ends with the first split's answer read with the other, in short.
    followed = _cli([*args, "--wait"], {**env, "COLUMNS": "300"})
    assert followed.returncode == 0, followed.stderr
    text = " ".join(followed.stdout.split())
    assert "by data split (each ranked on its own): training.seed 3 (this answer): " in text \
        and "training.seed 4: " in text and "in short: " in text, text
    assert f"the whole answer: `tuner recommend --task {jobs[0]['task']['id']} --epochs 2 " \
           f"--batch-size 64 --training-seed 3`" in " ".join(followed.stderr.split()), \
        followed.stderr
    rec = Client(service.url, service.key_a).recommend(task=jobs[0]["task"]["id"])
    assert rec["method"] == "direct" and rec["splits"] is not None, rec.get("summary")
    assert sorted(rec["splits"]["training_seeds"]) == [3, 4]
    shown = _cli(["recommend", "--task", str(jobs[0]["task"]["id"])], env)
    assert "by data split (each ranked on its own): training.seed " in " ".join(
        shown.stdout.split()), shown.stdout
    # One split followed to its end ends with the answer too, after the job's best trial (the
    # luckiest run, which it ended on and was read as the answer); `tuner status` points to it.
    one = _cli(["submit", "--model", "linear", "--dataset", "iris", "--trials", "2", "--epochs",
                "2", "--optimizers", "adam", "--pruner", "none", "--seed", "5", "--wait"],
               {**env, "COLUMNS": "300"})
    assert one.returncode == 0, one.stderr
    text, said = " ".join(one.stdout.split()), " ".join(one.stderr.split())
    assert text.rindex("in short: ") > text.rindex("best trial: "), text
    (one_id,) = re.findall(r"job ([0-9a-f]{32}) submitted", said)
    asked = (f"tuner recommend --task {jobs[0]['task']['id']} --epochs 2 --batch-size 64 "
             f"--training-seed 5`")
    assert f"the whole answer: `{asked}" in said, said
    shown = _cli(["status", one_id], {**env, "COLUMNS": "300"})
    assert f"(the best trial is the luckiest run): `{asked}" in " ".join(shown.stderr.split()), \
        shown.stderr
    # ... after the answer in one line, as `submit --wait` ends and the job's page says it
    assert shown.stdout.rstrip().splitlines()[-1] == text[text.rindex("in short: "):], \
        shown.stdout
    plain = _cli(["submit", "--model", "linear", "--dataset", "iris", "--trials", "2",
                  "--splits", "0"], env)
    assert plain.returncode == 2 and "--splits" in plain.stderr, plain.stderr


def test_the_cli_names_the_other_tasks_an_answer_left_apart(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.render import print_recommendation
    from tuner.recommend import prior_ranking

    monkeypatch.setenv("COLUMNS", "200")
    other = {"id": 7, "model": {"name": "mlp", "params": {"hidden": [128]}},
             "dataset": {"name": "iris", "params": {}}}
    print_recommendation({"method": "prior", "source": "literature defaults", "tasks": [],
                          "other_tasks": [other], "start_from": None, **prior_ranking()})
    shown = capsys.readouterr().out
    assert "other task 7 with this model and dataset, not pooled (ask with --task 7): model " \
        "hidden=[128], dataset -" in shown
    # A data file rewritten: the same parameters, another digest, which the line names (it
    # named the same parameters twice and nothing that told the tasks apart).
    same = {"model": {"name": "mlp", "params": {"hidden": [64]}},
            "dataset": {"name": "file", "params": {"path": "churn.csv"}}, "model_digest": None}
    print_recommendation({"method": "prior", "source": "literature defaults",
                          "tasks": [{"id": 2, **same, "data_digest": "b56014f4bb90fc67"}],
                          "other_tasks": [{"id": 1, **same, "data_digest": "e805dbd4a083cfe3"}],
                          "start_from": None, **prior_ranking()})
    shown = " ".join(capsys.readouterr().out.split())
    assert "other task 1 with this model and dataset, not pooled (ask with --task 1): model " \
        "hidden=[64], dataset path=churn.csv, data e805dbd4a083cfe3 (this task's: " \
        "b56014f4bb90fc67)" in shown, shown
    assert "model files" not in shown and "code" not in shown.split("other task 1")[1]


_LOOP = {"model": {"name": "trainable:digits_loop", "params": {"width": 64}},
         "dataset": {"name": "digits (own pipeline)", "params": {}}, "metric": "val_accuracy"}
# Tasks as the API lists them: two of one trainable whose plugin code changed, one of another
# width, one of a team file (`tuner tasks` and /ui/tasks name them apart).
TWIN_TASKS = [{**_LOOP, "id": 4, "code_digest": "ce1c97075d8426ec"},
              {**_LOOP, "id": 1, "code_digest": "11e1a1cbee6357e9"},
              {**_LOOP, "id": 3, "code_digest": "11e1a1cbee6357e9",
               "model": {"name": "trainable:digits_loop", "params": {"width": 48}}},
              {**_LOOP, "id": 5, "data_digest": "c771c63732492a5a", "model": {"name": "mlp"}}]


def test_tuner_tasks_tells_apart_tasks_of_the_same_names() -> None:
    """Two tasks of one trainable whose plugin code changed (a new task, by design) read the
    same in `tuner tasks`: the dataset column names the digest they differ in, and a data digest
    always (a team's rewritten CSV is a new task too)."""
    from cli.render import digests_shown

    rows = [*TWIN_TASKS, {**TWIN_TASKS[0], "id": 6, "model_digest": "0123456789abcdef",
                          "code_digest": "11e1a1cbee6357e9"}]
    assert [digests_shown(t, rows) for t in rows] == [
        ["model files none", "code ce1c9707"], ["model files none", "code 11e1a1cb"], [],
        ["data c771c637"], ["model files 01234567", "code 11e1a1cb"]]


def test_the_cli_says_what_a_family_stopped_early_may_be(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.render import print_recommendation
    from tests.test_recommend import confirmed
    from tuner.recommend import rank_families

    monkeypatch.setenv("COLUMNS", "300")
    rec = rank_families(confirmed("adam", [0.95, 0.951, 0.949]), "maximize", incomplete={
        "rmsprop": {"n_trials": 2, "max_stop_epoch": 9, "best_intermediate_value": 0.952},
        "nadam": {"n_trials": 1, "max_stop_epoch": 3, "best_intermediate_value": 0.80}})
    print_recommendation({"method": "direct", "source": "team history", "metric": "val_accuracy",
                          **rec})
    shown = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert "not ranked: rmsprop: 2 trials, none complete (stopped by epoch 9, best intermediate " \
        "value 0.952): already within the best leader's 95% interval when stopped; a complete " \
        "run would tell whether it is as good as the leaders" in shown
    assert "not ranked: nadam: 1 trial, none complete (stopped by epoch 3, best intermediate " \
        "value 0.8) not ranked: rmsprop" in shown  # nothing said of nadam: below the leader


def test_the_cli_marks_a_tie_below_the_leaders_as_its_own(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Families tied with each other but separated from the leaders are not marked `(tie)`
    like the leaders: they name whom they are tied with."""
    from cli.render import print_recommendation
    from tests.test_recommend import confirmed
    from tuner.recommend import rank_families

    monkeypatch.setenv("COLUMNS", "200")
    rec = rank_families(confirmed("adam", [0.950, 0.952, 0.948]) + confirmed(
        "adamw", [0.951, 0.953, 0.949]) + confirmed("sgd", [0.900, 0.902, 0.898])
        + confirmed("momentum", [0.899, 0.901, 0.897]), "maximize")
    assert rec["ties"] == [["adamw", "adam"], ["sgd", "momentum"]]
    print_recommendation({"method": "direct", "source": "team history", "metric": "val_accuracy",
                          **rec})
    shown = capsys.readouterr().out
    rows = {line.split()[3]: line for line in shown.splitlines() if line.startswith("│")}
    assert "adamw (tie)" in rows["adamw"] and "adam (tie)" in rows["adam"]
    assert "sgd (tied with momentum)" in rows["sgd"]
    assert "momentum (tied with sgd)" in rows["momentum"] and "(tie)" not in rows["momentum"]
    # each value with its interval and the runs behind it; the noise with its size
    assert "0.951 [0.946, 0.956] ×3" in rows["adamw"]
    # each family ran one learning rate: no range of good learning rates was measured (not 0.00)
    assert all("one lr" in row and "0.00 " not in row for row in rows.values()), rows
    # ... over which configurations, by family
    assert "noise: pooled sd 0.002 over 8 degrees of freedom: seed-to-seed spread of 4 " \
        "repeated configurations whose runs differ: adam, adamw, sgd and momentum" \
        in " ".join(shown.split()), shown
    single = rank_families(confirmed("adam", [0.95]) + confirmed("sgd", [0.90]), "maximize")
    print_recommendation({"method": "direct", "source": "team history", "metric": "val_accuracy",
                          **single})
    shown = capsys.readouterr().out  # no repeats: a range, not a confidence interval
    assert "0.95 (range 0.95-0.95, no repeats)" in shown and "noise: none: no configuration" in shown
    # No noise measured (`not_separated`): the leading group is level on the values seen, not a
    # tie within the noise (it was marked `(tie)` beside a summary saying "not separated").
    from tests.test_recommend import trial

    level = rank_families([trial("adam", 0.9, 1e-3), trial("nadam", 0.9, 2e-3),
                           trial("sgd", 0.7, 1e-2)], "maximize")
    assert level["verdict"] == "not_separated"
    print_recommendation({"method": "direct", "source": "team history", "metric": "val_accuracy",
                          **level})
    shown = capsys.readouterr().out
    rows = {line.split()[3]: line for line in shown.splitlines() if line.startswith("│")}
    assert "adam (level)" in rows["adam"] and "nadam (level)" in rows["nadam"], rows
    assert "(tie)" not in shown
    # ... and so says `tuner run`'s line of expected values (it showed [0.95, 0.95] ×1)
    from cli.render import print_leaderboard
    from tuner.recommend import in_short

    print_leaderboard({"metric": "val_accuracy", "direction": "maximize", "by_optimizer": [],
                       "counts": {"complete": 2, "pruned": 0, "diverged": 0, "failed": 0},
                       "best": None, "answer": {**single, "ranking": [
                           {**e, "runs": 1} for e in single["ranking"]],
                           "in_short": in_short({**single, "method": "direct"})}})
    shown = " ".join(capsys.readouterr().out.split())
    assert "adam 0.95 (range 0.95-0.95, no repeats) · sgd 0.9 (range 0.9-0.9, no repeats)" \
        in shown, shown
    # with no trial complete, it says why (the trials' tracebacks scrolled past above it)
    for trials, why in (
            ([{"number": 0, "state": "pruned", "detail": ""},
              {"number": 1, "state": "failed", "detail": "RuntimeError: boom"}],
             "no trial completed; first failure (trial 1): RuntimeError: boom"),
            ([{"number": 0, "state": "diverged", "detail": "loss became nan"}],
             "no trial completed; first divergence (trial 0): loss became nan"),
            ([{"number": 0, "state": "pruned", "detail": ""}], "no trial completed")):
        print_leaderboard({"metric": "val_accuracy", "direction": "maximize",
                           "by_optimizer": [], "counts": {"complete": 0, "pruned": 1,
                                                          "diverged": 0, "failed": 1},
                           "best": None, "answer": None, "trials": trials})
        shown = " ".join(capsys.readouterr().out.split())
        assert shown.endswith(why), shown
    # a transferred answer says where each family's configuration comes from: the corpus's
    # task by its name, the team's by its id (it printed a bare "2 (0.29)")
    from tuner.recommend import transfer_ranking

    near = [({"task_id": "ref:mlp-wine", "similarity": 0.67, "source": "reference corpus"},
             single), ({"task_id": 2, "similarity": 0.29, "source": "team history"},
                       rank_families(confirmed("nadam", [0.9, 0.91]), "maximize"))]
    print_recommendation({"method": "transfer", "source": "team history and reference corpus",
                          "metric": "val_accuracy", **transfer_ranking(near)})
    shown = capsys.readouterr().out
    assert "ref:mlp-wine (0.67)" in shown and "task 2 (0.29)" in shown, shown
    # a family tried but never complete says how many of its trials ran out of memory
    oom = rank_families(confirmed("adam", [0.95]), "maximize", incomplete={"adamw": {
        "n_trials": 2, "n_failed": 2, "n_out_of_memory": 2, "max_stop_epoch": 0}})
    print_recommendation({"method": "direct", "source": "team history", "metric": "val_accuracy",
                          **oom})
    shown = capsys.readouterr().out
    assert "not ranked: adamw: 2 trials, none complete: 2 out of memory (stopped by epoch 0)" \
        in shown
    # and how the others ended: a diverged trial is not one the pruner stopped
    ends = rank_families(confirmed("adam", [0.95]), "maximize", incomplete={"nesterov": {
        "n_trials": 3, "n_pruned": 1, "n_diverged": 1, "n_failed": 1, "max_stop_epoch": 1}})
    print_recommendation({"method": "direct", "source": "team history", "metric": "val_accuracy",
                          **ends})
    assert "not ranked: nesterov: 3 trials, none complete: 1 pruned, 1 diverged, 1 failed " \
        "(stopped by epoch 1)" in capsys.readouterr().out


def test_a_second_job_on_a_task_measures_instead_of_repeating(service: Service) -> None:
    """The same spec twice: the second job's sweep starts and its sampler's first draws are the
    first job's configurations. Each must run with a seed the first job did not use (the same
    configuration and seed would only give the same value again), so the second job's runs of
    a shared configuration are repeats that measure the noise."""
    from tuner.trial import config_key

    spec = {**FAST, "task": {**FAST["task"], "dataset": {"name": "wine"}},
            "search": {"sweep_share": 1.0}, "budget": {"n_trials": 6, "parallelism": 1}}
    c = Client(service.url, service.key_a)
    runs = []
    for _ in range(2):
        job = c.submit(spec)
        assert c.wait(job["id"])["status"] == "completed"
        runs.append({(config_key(t["optimizer"], t["schedule"], t["params"]), t["seed"])
                     for t in c.trials(job["id"])["data"] if t["optimizer"]})
    first, second = runs
    assert not first & second, "the second job repeated a run of the first"
    # Both sweeps start every family at the configuration learned from the reference corpus:
    # the same configurations, run again with new seeds.
    shared = {k for k, _ in first} & {k for k, _ in second}
    assert len(shared) >= len(FAST["space"]["optimizers"])


def test_the_cli_names_a_budget_of_another_releases_training_code() -> None:
    """`tuner recommend` shows the budget's parts past epochs and batch size: this release's
    training code goes unsaid, another release's is named."""
    from cli.render import _budget_parts
    from tuner.spec import TRAINING_FORMAT

    budget = {"epochs": 3, "batch_size": 64, "early_stopping_patience": None,
              "precision": "fp32", "training_seed": 0, "training_format": TRAINING_FORMAT}
    assert _budget_parts(budget, ", ") == ""
    assert _budget_parts({**budget, "training_format": TRAINING_FORMAT + 1, "training_seed": 2},
                         "/") == f"/training.seed 2/training format {TRAINING_FORMAT + 1} " \
                                 "(another release's)"
