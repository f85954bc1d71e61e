"""The OpenAPI contract matches what the service sends: a client generated from /openapi.json
(datamodel-code-generator, pydantic v2 models) validates real answers, error documents
included; server-sent events carry ids and resume with Last-Event-ID."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.test_api import FAST, Service, service  # noqa: F401  # the real API + dispatcher + Ray
from tuner.client import Client

pytestmark = pytest.mark.usefixtures("ray_session")


def generated_client(url: str, tmp_path: Path) -> ModuleType:
    import httpx

    spec = tmp_path / "openapi.json"
    spec.write_bytes(httpx.get(f"{url}/openapi.json", timeout=30).content)
    out = tmp_path / "generated_models.py"
    subprocess.run([str(Path(sys.executable).parent / "datamodel-codegen"), "--input", str(spec),
                    "--input-file-type", "openapi", "--output", str(out),
                    "--output-model-type", "pydantic_v2.BaseModel"],
                   check=True, capture_output=True, text=True, timeout=120)
    mod_spec = importlib.util.spec_from_file_location("generated_models", out)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules["generated_models"] = module  # its annotations are resolved by module name
    mod_spec.loader.exec_module(module)
    return module


def _schema_of(doc: dict[str, Any], path: str, method: str, status: int, media: str) -> str:
    """The schema the document promises for this answer in this media type."""
    content = doc["paths"][path][method]["responses"][str(status)]["content"]
    assert media in content, (path, status, media, list(content))
    return str(content[media]["schema"]["$ref"].rsplit("/", 1)[1])


def test_generated_client_validates_real_answers(service: Service,  # noqa: F811
                                                 tmp_path: Path) -> None:
    import httpx

    models = generated_client(service.url, tmp_path)
    doc = httpx.get(f"{service.url}/openapi.json", timeout=30).json()
    client = Client(service.url, service.key_a)
    job = client.submit(FAST)
    assert client.wait(job["id"])["status"] == "completed"
    task_id = client.job(job["id"])["task"]["id"]
    checked: list[tuple[str, int]] = []

    def check(method: str, template: str, path: str, status: int, key: str | None = None,
              **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {key or service.key_a}", **kw.pop("headers", {})}
        r = httpx.request(method.upper(), service.url + path, headers=headers, timeout=60, **kw)
        assert r.status_code == status, r.text
        name = _schema_of(doc, template, method, status, r.headers["content-type"].split(";")[0])
        model = getattr(models, name)
        checked.append((template, status))
        return model.model_validate(r.json())  # raises if the answer breaks the contract

    jid = job["id"]
    got = check("get", "/v1/jobs/{job_id}", f"/v1/jobs/{jid}", 200)
    assert got.best is not None and got.by_optimizer[0].best.value == got.best.value
    check("get", "/v1/jobs", "/v1/jobs", 200)
    trials = check("get", "/v1/jobs/{job_id}/trials", f"/v1/jobs/{jid}/trials", 200)
    assert trials.data[0].steps[0].step == 1  # typed down to the steps
    check("get", "/v1/jobs/{job_id}/figures", f"/v1/jobs/{jid}/figures", 200)
    check("get", "/v1/tasks", "/v1/tasks", 200)
    direct = check("get", "/v1/recommendations", f"/v1/recommendations?task={task_id}", 200)
    assert direct.method == "direct" and direct.ranking[0].expected is not None
    prior = check("get", "/v1/recommendations",
                  "/v1/recommendations?model=linear&dataset=diabetes&metric=val_loss", 200)
    assert prior.method in ("transfer", "prior")
    check("get", "/v1/tasks/{task_id}/learning-rates", f"/v1/tasks/{task_id}/learning-rates", 200)
    # Error answers are problem documents, as documented.
    p401 = check("get", "/v1/jobs/{job_id}", f"/v1/jobs/{jid}", 401, key="tk_wrong")
    assert p401.status == 401
    p404 = check("get", "/v1/jobs/{job_id}", f"/v1/jobs/{jid}", 404, key=service.key_b)
    assert "not found" in p404.detail
    p422 = check("post", "/v1/jobs", "/v1/jobs", 422,
                 json={**FAST, "search": {"sampler": "nope"}})
    assert p422.errors and p422.errors[0]["field"] == "search.sampler"
    check("post", "/v1/jobs", "/v1/jobs", 201, json=FAST, headers={"Idempotency-Key": "k1"})
    p409 = check("post", "/v1/jobs", "/v1/jobs", 409, json={**FAST, "training": {"epochs": 3}},
                 headers={"Idempotency-Key": "k1"})
    assert p409.status == 409
    p413 = check("post", "/v1/jobs", "/v1/jobs", 413, content=b"x" * 300_000,
                 headers={"Content-Type": "application/json"})
    assert p413.status == 413
    assert len(checked) == 14


def test_events_have_ids_and_resume(service: Service) -> None:  # noqa: F811
    import httpx

    client = Client(service.url, service.key_a)
    job = client.submit({**FAST, "budget": {"n_trials": 4, "parallelism": 2}})
    seen = list(client.events(job["id"]))
    assert seen[-1][0] == "end"
    headers = {"Authorization": f"Bearer {service.key_a}"}
    url = f"{service.url}/v1/jobs/{job['id']}/events"
    raw = httpx.get(url, headers=headers, timeout=60).text
    ids = [line[3:].strip() for line in raw.splitlines() if line.startswith("id:")]
    # A finished job: its last progress, then the end, each with an id.
    assert len(ids) == 2 and ids[1] == f"end.{ids[0]}" and ids[0].startswith("completed.")
    resumed = httpx.get(url, headers={**headers, "Last-Event-ID": ids[0]}, timeout=60).text
    assert "event: progress" not in resumed and "event: end" in resumed
