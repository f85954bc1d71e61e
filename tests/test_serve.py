"""`tuner serve`, the embedded default, as a user runs it: one command, a key saved for the CLI,
clean Ctrl-C, and a running job that resumes at the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_api import free_port
from tests.test_jobs import SLEEPS


def _start(cwd: Path, env: dict[str, str], port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)],
                            cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.3)
    raise AssertionError("tuner serve did not come up")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    return out


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, cwd=cwd,
                          text=True, capture_output=True, timeout=600, check=False)


@pytest.mark.usefixtures("ray_session")
def test_serve_submit_ctrl_c_and_resume(tmp_path: Path, ray_session: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNER_")}
    env.update(TUNER_HOME=str(tmp_path / "home"), TUNER_URL=f"http://127.0.0.1:{port}",
               RAY_ADDRESS=ray_session, TUNER_POLL_S="0.3", TUNER_HEARTBEAT_INTERVAL="1",
               TUNER_GRACE_PERIOD="3", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = _start(tmp_path, env, port)
    assert (tmp_path / "tuner.db").exists()  # the SQLite default, in the working directory
    creds = json.loads((tmp_path / "home" / "credentials.json").read_text())
    assert list(creds) == [f"http://127.0.0.1:{port}"]
    # Trials that wait rather than train (the test plugin's `sleeps`): what matters here is
    # that one is running at the Ctrl-C, not what it computes (a trained model took 90 s of
    # the suite). The CLI finds the key on its own (no TUNER_API_KEY).
    waits = tmp_path / "waits.json"
    waits.write_text(json.dumps({**SLEEPS, "training": {"epochs": 4}}))
    job_id = _cli(["submit", str(waits)], env, tmp_path).stdout.strip()
    assert len(job_id) == 32
    end = time.monotonic() + 120
    while json.loads(_cli(["status", job_id, "--json"], env, tmp_path).stdout)["progress"][
            "done"] < 1:
        assert time.monotonic() < end
        time.sleep(0.5)
    out = _stop(proc)  # Ctrl-C while a trial runs
    assert "running jobs will resume" in out
    proc = _start(tmp_path, env, port)
    try:
        # Ctrl-C on `tuner submit --wait` stops the following, not the job, and says so.
        follow = subprocess.Popen(
            [sys.executable, "-m", "cli", "submit", str(waits), "--trials", "2", "--epochs",
             "200", "--wait"], env=env, cwd=tmp_path, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        end = time.monotonic() + 120
        while not (followed := [j for j in json.loads(_cli(["jobs", "--json"], env, tmp_path)
                                                      .stdout)["data"] if j["id"] != job_id]):
            assert time.monotonic() < end
            time.sleep(0.5)
        time.sleep(1)  # following it
        follow.send_signal(signal.SIGINT)
        _, said = follow.communicate(timeout=60)
        said = " ".join(said.split())
        other = followed[0]["id"]
        assert follow.returncode == 130 and "Traceback" not in said, said
        assert f"stopped following job {other}; it goes on in the service: `tuner status " \
            f"{other}` shows it, `tuner cancel {other}` stops it" in said, said
        assert _cli(["cancel", other], env, tmp_path).returncode == 0
        # ... and on several splits, of every job it submitted.
        follow = subprocess.Popen(
            [sys.executable, "-m", "cli", "submit", str(waits), "--trials", "2", "--epochs",
             "200", "--splits", "2", "--wait"], env=env, cwd=tmp_path, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        end = time.monotonic() + 120
        while len(split_jobs := [j["id"] for j in json.loads(_cli(["jobs", "--json"], env,
                                                                 tmp_path).stdout)["data"]
                                 if j["id"] not in (job_id, other)]) < 2:
            assert time.monotonic() < end
            time.sleep(0.5)
        time.sleep(1)
        follow.send_signal(signal.SIGINT)
        _, said = follow.communicate(timeout=60)
        said = " ".join(said.split())
        assert follow.returncode == 130 and "Traceback" not in said, said
        assert f"stopped following jobs {' '.join(sorted(split_jobs, key=said.find))}; they go " \
               f"on in the service: `tuner status <id>` shows one, `tuner cancel <id>` stops " \
               f"one (`tuner jobs` lists them)" in said, said
        for j in split_jobs:
            assert _cli(["cancel", j], env, tmp_path).returncode == 0
        done = _cli(["submit", "--model", "linear", "--dataset", "iris", "--trials", "2",
                     "--epochs", "2", "--wait", "--json"], env, tmp_path)
        assert done.returncode == 0, done.stderr
        status = json.loads(_cli(["status", job_id, "--json"], env, tmp_path).stdout)
        end = time.monotonic() + 120
        while status["status"] == "running":
            assert time.monotonic() < end
            time.sleep(0.5)
            status = json.loads(_cli(["status", job_id, "--json"], env, tmp_path).stdout)
        assert status["status"] == "completed", status["error"]
        assert status["progress"]["done"] == 3  # resumed, nothing lost
    finally:
        out = _stop(proc)
    assert "created and saved" not in out  # the saved key was reused


@pytest.mark.usefixtures("ray_session")
def test_readme_curl_examples_work_as_written(tmp_path: Path, ray_session: str) -> None:
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    block = readme.split("<!-- readme-curl-begin -->")[1].split("<!-- readme-curl-end -->")[0]
    script = block.split("```bash")[1].split("```")[0]
    port = free_port()
    script = "set -euo pipefail\n" + script.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNER_")}
    env.update(TUNER_HOME=str(tmp_path / "home"), RAY_ADDRESS=ray_session, TUNER_POLL_S="0.3",
               PYTHONPATH=str(root))
    proc = _start(tmp_path, env, port)
    try:
        run = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, text=True,
                             capture_output=True, timeout=600, check=False)
    finally:
        _stop(proc)
    assert run.returncode == 0, run.stderr + run.stdout
    out = run.stdout
    assert "event: progress" in out and "event: end" in out
    assert '"method":"direct"' in out.replace(" ", "")
    assert '"status":401' in out.replace(" ", "")


def test_serve_on_a_port_in_use_stops_before_it_starts_anything(tmp_path: Path) -> None:
    """Another server holds the port: `tuner serve` says so in one line and exits 2 before it
    migrates, saves a key (it would replace the saved key of the server already there with one
    of its own database) or starts Ray; `tuner api` the same."""
    import socket

    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNER_")}
    env.update(TUNER_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        for command in ("serve", "api"):
            proc = _cli([command, "--port", str(port)], env, tmp_path)
            said = " ".join(proc.stderr.split())
            assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
            assert f"error: cannot serve on 127.0.0.1:{port}: Address already in use" in said
            assert "Traceback" not in said and "Ray" not in said
    assert not (tmp_path / "home").exists() and not (tmp_path / "tuner.db").exists()


def _raylet_of(pid: int) -> Any:
    import psutil

    return next(p for p in psutil.Process(pid).children(recursive=True)
                if "raylet" in " ".join(p.cmdline()[:1]))


def test_serve_starts_its_local_ray_again_when_its_raylet_dies(tmp_path: Path) -> None:
    """The local Ray that `tuner serve` started loses its raylet (the OOM killer, say): the
    job it ran is handed back and the command starts itself again (the same process, exec'd,
    with a new Ray), and the job resumes and completes. (Every job claimed after the raylet died failed at
    once, its spec blamed: "1.0 CPUs per trial but the Ray cluster has 0".)"""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TUNER_") and k != "RAY_ADDRESS"}  # its own local Ray
    env.update(TUNER_HOME=str(tmp_path / "home"), TUNER_URL=f"http://127.0.0.1:{port}",
               TUNER_POLL_S="0.3", TUNER_HEARTBEAT_INTERVAL="1", TUNER_GRACE_PERIOD="3",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    log = tmp_path / "serve.log"
    with log.open("w") as out:  # not a pipe: a dying raylet's dump would fill it
        proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port),
                                 "--num-cpus", "1"], cwd=tmp_path, env=env, text=True,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < end, log.read_text()
            time.sleep(0.3)
        waits = tmp_path / "waits.json"
        waits.write_text(json.dumps({**SLEEPS, "training": {"epochs": 3},
                                     "budget": {"n_trials": 2, "parallelism": 1}}))
        from tuner.client import Client

        key = json.loads((tmp_path / "home" / "credentials.json").read_text())[env["TUNER_URL"]]
        client = Client(env["TUNER_URL"], key)
        job_id = client.submit(json.loads(waits.read_text()))["id"]

        def status(job: str) -> dict[str, Any]:
            return dict(client.job(job))

        end = time.monotonic() + 120
        while status(job_id)["progress"]["running"] < 1:  # a trial is on the raylet
            assert time.monotonic() < end, log.read_text()
            time.sleep(0.5)
        _raylet_of(proc.pid).kill()
        end = time.monotonic() + 180
        while (job := status(job_id))["status"] == "running":
            assert proc.poll() is None and time.monotonic() < end, log.read_text()
            time.sleep(0.5)
        assert job["status"] == "completed", (job["error"], log.read_text())
        assert job["progress"]["done"] == 2
        said = log.read_text()
        assert f"job {job_id}: Ray failed under its watch (the local Ray's raylet process " \
               "ended); handing it back" in said
        assert ("the local Ray's raylet process ended: starting this command again, with a "
                "new Ray (its jobs were handed back and resume)") in " ".join(said.split())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(90)
    assert proc.returncode == 0, log.read_text()[-3000:]
