"""docker-compose.yml and the Dockerfile, checked structurally (Docker does not run here): the
services, their health-gated start order, and that every command they run exists."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_services_and_start_order() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "migrate", "api", "dispatcher", "ray-head", "ray-worker"}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "dispatcher"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"}
    assert services["dispatcher"]["depends_on"]["ray-head"] == {"condition": "service_healthy"}
    assert services["dispatcher"]["environment"]["RAY_ADDRESS"] == "ray-head:6379"
    assert services["ray-worker"]["depends_on"]["ray-head"] == {"condition": "service_healthy"}
    gpu = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert "cu128" in services["ray-worker"]["build"]["args"]["TORCH_INDEX"]
    # every service of ours talks to the same database
    for name in ("migrate", "api", "dispatcher", "ray-head", "ray-worker"):
        env = services[name]["environment"]
        assert env["TUNER_DATABASE_URL"] == "postgresql://tuner:tuner@postgres:5432/tuner"


def test_commands_exist() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        cmd = svc.get("command")
        if not cmd:
            continue
        if cmd[0] == "tuner":
            words = [w for w in cmd[1:] if not w.startswith("-")]
            sub = words[:2] if words[:1] in (["db"], ["job"], ["admin"]) else words[:1]
            proc = subprocess.run([sys.executable, "-m", "cli", *sub, "--help"],
                                  capture_output=True, text=True, check=False)
            assert proc.returncode == 0, (name, cmd, proc.stderr)
            for flag in (w.split("=")[0] for w in cmd if w.startswith("--")):
                assert flag in proc.stdout, (name, flag)
        else:
            assert cmd[0] == "ray", cmd
            assert shutil.which("ray", path=str(Path(sys.executable).parent)), "ray CLI missing"


def test_help_lists_each_command_in_one_sentence_not_broken_where_the_source_wraps() -> None:
    """`tuner --help` printed a docstring's line breaks inside the command list ("... with the
    answer each one's history gives" / "today (over HTTP)."). Wide enough, every command's
    summary is one line of the list, the first paragraph of its docstring."""
    env = {**os.environ, "COLUMNS": "400"}
    for sub, command, summary in (
            ([], "tasks", "The team's tasks, the latest job's first, with the answer each one's "
                          "history gives today (over HTTP)."),
            (["corpus"], "starts", "Where the defaults sweep starts each family "
                                   "(`search.sweep_start`), in the sweep's order."),
            (["data"], "digest", "Print the digest a task on PATH holds")):
        out = subprocess.run([sys.executable, "-m", "cli", *sub, "--help"], capture_output=True,
                             text=True, check=True, env=env).stdout
        (line,) = [x for x in out.splitlines() if f" {command} " in x]
        assert summary in line, line


def test_dockerfile_installs_pinned_torch_first() -> None:
    text = (ROOT / "Dockerfile").read_text()
    torch_line = text.index('pip install "torch==2.13.0" --index-url')
    assert torch_line < text.index("pip install -e .")
    for path in ("tuner", "workers", "api", "migrations"):
        assert f"COPY {path} ./{path}" in text
