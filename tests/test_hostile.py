"""A hostile client against the real HTTP app on both databases: malformed requests (kept here as
data) never answer 500; a team cannot read, probe or train on another team's files; resource
limits are named. (A database that drops connections answers 503: `test_faults.py`, against a
real PostgreSQL.)"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from api.app import create_app
from tests.conftest import DATA_ROOT
from tests.test_api import free_port
from tuner.config import Settings, get_settings
from tuner.store.auth import create_api_key, get_or_create_team
from tuner.store.db import session_factory

GOOD = {"task": {"model": {"name": "mlp"}, "dataset": {"name": "iris"}},
        "budget": {"n_trials": 2}}


def spec(**changes: Any) -> dict[str, Any]:
    """GOOD with `section={...}` merged in (one level deep)."""
    out: dict[str, Any] = {k: dict(v) for k, v in GOOD.items()}
    for k, v in changes.items():
        out[k] = {**out.get(k, {}), **v}
    return out


# (method, path, body or raw bytes, what the answer must be: a status or "4xx")
MALFORMED: list[tuple[str, str, Any, int | str]] = [
    ("GET", "/v1/jobs/abc%00", None, 404),
    ("GET", "/v1/jobs?model=%00", None, 422),
    ("GET", "/v1/recommendations?model=%00&dataset=iris", None, 422),
    ("GET", "/v1/jobs?offset=100000000000000000000", None, 422),
    ("GET", "/v1/jobs?task=100000000000000000000", None, 422),
    ("GET", "/v1/jobs?task=2648935157001&offset=21726", None, 422),  # found by schemathesis
    ("GET", "/v1/recommendations?task=2147483648", None, 422),
    ("GET", "/v1/recommendations?task=100000000000000000000", None, 422),
    ("GET", "/v1/jobs/abc/trials?offset=-1", None, "4xx"),
    ("GET", "/v1/recommendations?model=os:system&dataset=iris", None, 422),
    ("GET", "/v1/recommendations?model=mlp&dataset=file", None, 422),
    ("POST", "/v1/jobs", b"{not json", 422),
    ("POST", "/v1/jobs", b'{"task": {"model": {"name": "mlp\\u0000"}, "dataset": {"name": "iris"}}}',
     422),
    ("POST", "/v1/jobs", spec(task={"model": {"name": "mlp", "params": {"x": "a\u0000b"}},
                                    "dataset": {"name": "iris"}}), 422),
    ("POST", "/v1/jobs", b'{"task": {"model": {"name": "mlp"}, "dataset": {"name": "iris"}},'
                         b' "training": {"divergence_factor": Infinity}}', 422),
    ("POST", "/v1/jobs", b'{"task": {"model": {"name": "linear"}, "dataset": {"name": '
                         b'"quadratic", "params": {"noise": NaN}}}}', 422),
    ("POST", "/v1/jobs", spec(task={"model": {"name": "mlp"}, "dataset": {
        "name": "iris", "params": {"val_fraction": "abc"}}}), 422),
    ("POST", "/v1/jobs", spec(task={"model": {"name": "mlp"}, "dataset": {
        "name": "iris", "params": {"val_fraction": 0.999}}}), 422),
    ("POST", "/v1/jobs", spec(task={"model": {"name": "mlp"}, "dataset": {
        "name": "classification", "params": {"n_features": 4, "n_informative": 9}}}), 422),
    ("POST", "/v1/jobs", spec(task={"model": {"name": "mlp"}, "dataset": {
        "name": "classification", "params": {"n_samples": 100000000}}}), 422),
    ("POST", "/v1/jobs", spec(task={"model": {"name": "mlp", "params": {"hidden": [30000, 30000]}},
                                    "dataset": {"name": "iris"}}), 422),
    ("POST", "/v1/jobs", spec(task={"model": {"name": "mlp", "params": {"hidden": [2**70]}},
                                    "dataset": {"name": "iris"}}), 422),
    ("POST", "/v1/jobs", spec(resources={"cpus_per_trial": 1e-5}), 422),
    ("POST", "/v1/jobs", spec(resources={"gpus_per_trial": 0.00001}), 422),
    ("POST", "/v1/jobs", spec(budget={"n_trials": 2**64}), 422),
    ("POST", "/v1/jobs", spec(training={"seed": -2**70}), 422),
    ("POST", "/v1/jobs", spec(task={"model": {"name": "os:system"},
                                    "dataset": {"name": "iris"}}), 422),
    ("POST", "/v1/jobs", spec(task={"model": {"name": "mlp"}, "dataset": {
        "name": "file", "params": {"path": "../../etc/passwd"}}}), 422),
    ("POST", "/v1/jobs", spec(task={"model": {"name": "mlp"}, "dataset": {
        "name": "file", "params": {"path": "objects.npz"}}}), 422),
    ("POST", "/v1/jobs", spec(task={"model": {"name": "mlp"}, "dataset": {
        "name": "file", "params": {"path": "broken.csv"}}}), 422),
    ("POST", "/v1/jobs", [1, 2, 3], 422),
    ("POST", "/v1/jobs", "just a string", 422),
]


def _nested(depth: int) -> dict[str, Any]:
    d: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        d = {"x": d}
    return d


MALFORMED.append(("POST", "/v1/jobs", spec(task={"model": {"name": "mlp", "params": _nested(900)},
                                                 "dataset": {"name": "iris"}}), 422))


@contextmanager
def serving(db_url: str, log_level: str = "warning", port: int | None = None,
            **settings: Any) -> Iterator[str]:
    """The real app on a local port (a free one unless given), in a thread, for the block;
    yields its URL. Leaving the block stops it as `tuner api` stops: open event streams are
    cut after a grace period."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(
        create_app(db_url, Settings(database_url=db_url, **settings)), host="127.0.0.1", port=port,
        log_level=log_level, timeout_graceful_shutdown=1))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        th.join(10)


class Api:
    def __init__(self, url: str, db_url: str, keys: dict[str, str], root: Path) -> None:
        self.url, self.db_url, self.keys, self.root = url, db_url, keys, root

    def call(self, method: str, path: str, body: Any = None, team: str = "a") -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[team]}"}
        kw: dict[str, Any] = {}
        if isinstance(body, bytes):
            kw["content"], headers["Content-Type"] = body, "application/json"
        elif body is not None:
            kw["json"] = body
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kw)


@pytest.fixture
def api(migrated_url: str) -> Iterator[Api]:
    root = DATA_ROOT  # the session's, which the Ray workers read too
    for team in ("a", "b"):
        (root / team).mkdir(parents=True, exist_ok=True)
    get_settings.cache_clear()
    with session_factory(migrated_url)() as s:
        keys = {t: create_api_key(s, get_or_create_team(s, t)) for t in ("a", "b")}
        s.commit()
    with serving(migrated_url) as url:
        yield Api(url, migrated_url, keys, root)
    get_settings.cache_clear()


def _write_npz(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40, 3)).astype(np.float32)
    np.savez(path, X=X, y=(X[:, 0] > 0).astype(int))


def _write_team_files(root: Path) -> None:
    _write_npz(root / "b" / "secret.npz", seed=0)
    np.savez(root / "a" / "objects.npz", X=np.array([{"a": 1}] * 4, dtype=object),
             y=np.arange(4))
    (root / "a" / "broken.csv").write_text('a,b,label\n1,"2,0\n3,4,1\n')


def test_malformed_requests_never_answer_500(api: Api) -> None:
    _write_team_files(api.root)
    wrong = []
    for method, path, body, want in MALFORMED:
        r = api.call(method, path, body)
        ok = (400 <= r.status_code < 500) if want == "4xx" else r.status_code == want
        if not ok or not r.headers.get("content-type", "").startswith("application/problem+json"):
            wrong.append((method, path, str(body)[:80], r.status_code, r.text[:200]))
    assert wrong == [], "\n".join(map(str, wrong))


def test_a_spec_sent_as_yaml_or_a_form_is_told_to_come_as_json(api: Api) -> None:
    """FastAPI reads only JSON bodies; a spec sent as YAML (or by curl -d, a form) was told
    `Input should be a valid dictionary`. Now it is told what to send."""
    for content_type in ("application/x-yaml", "application/x-www-form-urlencoded"):
        r = httpx.post(api.url + "/v1/jobs", content=b"task: {model: {name: mlp}}\n",
                       headers={"Authorization": f"Bearer {api.keys['a']}",
                                "Content-Type": content_type})
        assert r.status_code == 422 and r.json()["detail"] == (
            "body: a job spec is a JSON object sent as Content-Type: application/json, not "
            f"{content_type}"), r.text
    as_json = api.call("POST", "/v1/jobs", b'"a string"')  # JSON, but not an object
    assert as_json.status_code == 422 and "valid dictionary" in as_json.json()["detail"]


def test_a_query_parameter_the_endpoint_does_not_read_is_named(api: Api) -> None:
    """A typo in a query parameter was ignored: `?model=mlp&dataset=digits&epoch=5` answered
    at the task's default budget and did not say that `epoch` meant nothing. Now it is a 422
    that names it and the parameters the endpoint reads; the parameters it reads still work."""
    typo = api.call("GET", "/v1/recommendations?model=mlp&dataset=digits&epoch=5")
    assert typo.status_code == 422, typo.text
    assert typo.json()["errors"] == [{"field": "epoch", "message": (
        "unknown query parameter; valid choices: batch_size, dataset, early_stopping_patience, "
        "epochs, metric, model, precision, task, training_seed")}], typo.json()
    assert typo.headers["content-type"].startswith("application/problem+json")
    many = api.call("GET", "/v1/jobs?statsu=running&limit=5&ofset=2")
    assert many.status_code == 422 and [e["field"] for e in many.json()["errors"]] == \
        ["ofset", "statsu"], many.text
    assert many.json()["detail"].startswith("ofset: unknown query parameter; valid choices: ")
    none = api.call("GET", "/v1/tasks/1/learning-rates?per_family=3")
    assert none.status_code == 422 and "per_family: unknown query parameter" in none.text
    for path in ("/v1/jobs?status=running&limit=5&offset=0", "/v1/tasks?limit=3",
                 "/v1/recommendations?model=mlp&dataset=digits&epochs=5"):
        assert api.call("GET", path).status_code == 200, path


def test_a_team_cannot_use_or_probe_another_teams_files(api: Api) -> None:
    _write_team_files(api.root)

    def submit(path: str, team: str) -> httpx.Response:
        return api.call("POST", "/v1/jobs", spec(task={"model": {"name": "mlp"}, "dataset": {
            "name": "file", "params": {"path": path}}}), team=team)

    assert submit("secret.npz", "b").status_code == 201  # its own file
    probes = [submit(p, "a") for p in ("secret.npz", "../b/secret.npz", "missing.npz",
                                       str(api.root / "b" / "secret.npz"))]
    assert [r.status_code for r in probes] == [422, 422, 422, 422]
    # Another team's file and a missing one read the same; no server path is revealed.
    assert probes[0].json()["detail"] == probes[2].json()["detail"].replace("missing", "secret")
    for r in probes[:3]:  # (the fourth echoes the absolute path the client sent, nothing more)
        assert str(api.root) not in r.text and "/tmp" not in r.text, r.text
    tasks = api.call("GET", "/v1/tasks", team="a").json()
    assert tasks["count"] == 0  # nothing of team b's file leaked into team a's tasks


# A small job on team b's file.
SECRET_JOB = spec(task={"model": {"name": "linear"}, "dataset": {
    "name": "file", "params": {"path": "secret.npz"}}}, training={"epochs": 2},
    search={"confirm_top_k": 0})


@pytest.mark.usefixtures("ray_session")
def test_a_team_file_job_trains_on_the_data_it_was_submitted_with(api: Api) -> None:
    """The workers read the file from the job's team folder, as the submit check did. Its
    task is the file's contents: rewritten, the next job is a new task, told about from the
    old one's trials as a prediction (`transfer`), never pooled with them; rewritten again
    before that job runs, the job fails saying so, with no trial recorded against a task it was
    not measured on, and a worker that loads the data checks the same (its objective, here
    directly)."""
    from tests.test_jobs import dispatcher, job_of
    from tuner.datasets import data_digest
    from tuner.errors import DataError
    from tuner.objective import Objective, Provenance
    from tuner.spec import JobSpec

    _write_team_files(api.root)
    r = api.call("POST", "/v1/jobs", SECRET_JOB, team="b")
    assert r.status_code == 201, r.text
    dispatcher(api.db_url).run(once=True)
    job = job_of(api.db_url, r.json()["id"])
    assert job.status == "completed", job.error
    assert job.n_complete == 2
    old_task = r.json()["task"]["id"]

    _write_npz(api.root / "b" / "secret.npz", seed=1)
    r = api.call("POST", "/v1/jobs", SECRET_JOB, team="b")
    assert r.status_code == 201, r.text
    new_task, submitted = r.json()["task"]["id"], r.json()["task"]["data_digest"]
    assert new_task != old_task
    rec = api.call("GET", f"/v1/recommendations?task={new_task}", team="b").json()
    assert (rec["method"], rec["source"]) == ("transfer", "team history"), rec["explanation"]
    assert rec["similar_tasks"][0]["task_id"] == old_task

    _write_npz(api.root / "b" / "secret.npz", seed=2)
    dispatcher(api.db_url).run(once=True)
    job = job_of(api.db_url, r.json()["id"])
    assert job.status == "failed"
    assert "changed since the job was submitted" in (job.error or ""), job.error
    assert job.n_complete == 0 and job.n_done == 0
    spec_ = JobSpec.model_validate(SECRET_JOB)
    with pytest.raises(DataError, match="changed since the job was submitted"):
        Objective(spec_, data_scope="b", made_from=Provenance(data_digest=submitted)).data  # noqa: B018
    now = data_digest("file", {"path": "secret.npz"}, "b")
    assert Objective(spec_, data_scope="b", made_from=Provenance(data_digest=now)).data.info.n_train > 0


CHECKS = ("not_a_server_error", "response_schema_conformance", "content_type_conformance",
          "status_code_conformance")


def test_schemathesis_finds_no_server_error(api: Api) -> None:
    """Schemathesis against the running app (a small example count): no 5xx on any route, and
    every answer's status, content type and body as /openapi.json documents them."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{api.url}/openapi.json",
         "--checks", ",".join(CHECKS), "--max-examples", "15", "--workers", "1",
         "--header", f"Authorization: Bearer {api.keys['a']}", "--exclude-path-regex", "events",
         "--seed", "1"],
        check=False, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "operations" in out.lower() or "passed" in out.lower(), out[-2000:]


def _tuner(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_a_database_without_this_versions_tables_is_named_with_what_to_run(db_url: str) -> None:
    """A deploy whose migrate step did not run (or has not yet): the operator's commands fail
    in one line naming `tuner db upgrade`, the API answers 503 (clients wait it out) with the
    same advice and is not ready, and nothing retries it as a lost connection. Then an
    older revision, then the current one."""
    from alembic import command
    from sqlalchemy import text

    from tuner.store.db import engine_for, schema_missing, transient
    from tuner.store.migrate import alembic_config, head, upgrade

    def assert_told(proc: subprocess.CompletedProcess[str], words: str) -> None:
        said = " ".join(proc.stderr.split())  # the console wraps lines
        assert proc.returncode == 2 and words in said, proc.stderr[-2000:]
        assert "Traceback" not in said and "run `tuner db upgrade`" in said

    none_yet = "has no service tables yet"
    assert_told(_tuner("admin", "create-key", "a", "--database-url", db_url), none_yet)
    assert_told(_tuner("api", "--database-url", db_url, "--port", str(free_port())), none_yet)
    try:
        with engine_for(db_url).connect() as conn:
            conn.execute(text("SELECT id FROM tuner_teams"))
        raise AssertionError("a table that is not there was read")
    except Exception as exc:
        assert schema_missing(exc) and not transient(exc)
    with serving(db_url) as url:
        r = httpx.get(url + "/v1/jobs", headers={"Authorization": "Bearer tk_x"})
        assert r.status_code == 503 and r.headers["Retry-After"], r.text
        assert "run `tuner db upgrade`" in r.json()["detail"]
        ready = httpx.get(url + "/readyz")
        assert ready.status_code == 503 and none_yet in ready.json()["detail"]

    previous = f"{int(head()) - 1:04d}"
    command.upgrade(alembic_config(db_url), previous)
    older = f"is at revision {previous}, older than this version of the service"
    assert_told(_tuner("admin", "create-team", "a", "--database-url", db_url), older)
    with serving(db_url) as url:
        ready = httpx.get(url + "/readyz")
        assert ready.status_code == 503 and older in ready.json()["detail"]

    upgrade(db_url)
    made = _tuner("admin", "create-team", "a", "--database-url", db_url)
    assert made.returncode == 0, made.stderr
    with serving(db_url) as url:
        assert httpx.get(url + "/readyz").json() == {"status": "ok"}


def test_a_database_that_cannot_be_reached_is_one_line_and_the_api_serves_503s() -> None:
    """The operator's commands say the database is unavailable in one line (exit 1); `tuner
    api` started before its database is reachable serves anyway (503, not ready) and says so."""
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/tuner"
    for command in (["admin", "create-team", "a"], ["db", "upgrade"],
                    ["serve", "--port", str(free_port())]):
        down = _tuner(*command, "--database-url", nowhere)
        said = " ".join(down.stderr.split())
        assert down.returncode == 1 and "the database is unavailable: connection" in said, \
            (command, said)
        assert "Traceback" not in said
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cli", "api", "--database-url", nowhere,
                             "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < end, "tuner api did not serve"
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ready.status_code == 503 and "connection" in ready.json()["detail"]
        jobs = httpx.get(f"http://127.0.0.1:{port}/v1/jobs",
                         headers={"Authorization": "Bearer tk_x"}, timeout=10)
        assert jobs.status_code == 503 and jobs.headers["Retry-After"]
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert "the database cannot be reached yet" in stderr and "serving, with 503" in stderr


def test_a_dispatcher_pointed_at_no_ray_cluster_says_so_at_once(tmp_path: Path) -> None:
    """A wrong RAY_ADDRESS (or --ray-address): Ray itself retries for minutes, logging its own
    warnings; the dispatcher says in one line that nothing answers there, and exits."""
    from tuner.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    upgrade(url)
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = _tuner("dispatcher", "--once", "--ray-address", address, "--database-url", url)
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and f"error: cannot reach the Ray cluster at {address} " \
        "(Connection refused): is RAY_ADDRESS (or --ray-address) right" in said, said
    assert "Traceback" not in said and time.monotonic() - started < 60


def test_the_cli_says_what_is_wrong_with_a_spec_file_or_an_output_path(tmp_path: Path) -> None:
    """A spec file that is not YAML or JSON, or not text, a figure to a folder that does not
    exist, a database URL of another kind or none: one line naming what is wrong, exit 2 (each
    was a traceback), an empty list where names are asked for, and never a password."""
    (tmp_path / "bad.yaml").write_text("task: [unclosed\n")
    (tmp_path / "bad.json").write_text('{"task": ')
    (tmp_path / "binary.yaml").write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xff")
    cases = {
        ("run", "--spec", str(tmp_path / "bad.yaml")):
            "bad.yaml: not valid YAML at line 2, column 1: expected ',' or ']'",
        ("job", "create", str(tmp_path / "bad.json"), "--database-url", "sqlite://"):
            "bad.json: not a job spec: Expecting value: line 1 column 10",
        ("run", "--spec", str(tmp_path / "binary.yaml")):
            "binary.yaml: not a job spec: 'utf-8' codec can't decode byte",
        ("plot", "0" * 32, "--out", str(tmp_path / "nowhere" / "job.png")):
            f"--out: no folder '{tmp_path / 'nowhere'}' to write into",
        ("db", "upgrade", "--database-url", "mysql://me:secret@db/tuner"):
            "database URL mysql://…: the service keeps its tables in SQLite",
        ("run", "--trials", "1", "--storage", "bogus://x"):
            "not a database URL this service reads (Can't load plugin: sqlalchemy.dialects:bogus)",
        # refused before training, as a submit is (every trial failed, and the job said only
        # "no trial completed")
        ("run", "--model", "cnn", "--dataset", "iris", "--trials", "1"):
            "error: task.model: cnn needs image-shaped input (C, H, W); this dataset gives "
            "(4,)",
        # given but empty is not "every one" (it ran all 14 families; the corpus rebuilt all)
        ("run", "--trials", "1", "--optimizers", ""):
            "invalid spec space.optimizers: must name at least one optimizer family; valid",
        ("run", "--trials", "1", "--schedules", " , "):
            "invalid spec space.schedules: must name at least one schedule; valid choices",
        ("corpus", "build", "--tasks", "", "--out", str(tmp_path / "c.json")):
            "tasks: must name at least one corpus task; valid choices:",
    }
    import torch

    if not torch.cuda.is_available():  # a GPU demanded where there is none: every trial failed
        (tmp_path / "cuda.yaml").write_text("training: {device: cuda}\n")
        cases[("run", "--trials", "1", "--spec", str(tmp_path / "cuda.yaml"))] = (
            "error: training.device: cuda, but this machine has no CUDA GPU that torch "
            "can use; use auto (cuda where there is one) or cpu")
    for args, words in cases.items():
        proc = _tuner(*args)
        said = " ".join(proc.stderr.split())
        assert proc.returncode == 2 and words in said, (args, proc.stderr[-2000:])
        assert "Traceback" not in said and "secret" not in said


def test_a_wrong_setting_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TUNER_* variable that does not parse: every command says which, in one line (exit 2),
    before it starts (the dispatcher printed a traceback from where it first read it, and
    other commands called it an `invalid spec`)."""
    monkeypatch.setenv("TUNER_LEASE_S", "ten")
    for command in (["dispatcher", "--once"], ["db", "upgrade"]):
        proc = _tuner(*command)
        said = " ".join(proc.stderr.split())
        assert proc.returncode == 2 and said.startswith(
            "error: invalid setting TUNER_LEASE_S: Input should be a valid number"), said
