"""Status answers as soon as health does (issue 18): a monitor that polls both from a node's
first healthy answer never sees status fail, nor a critical state that is only "not
checked yet"; a worker whose ops machinery cannot start says so on the status page."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import requests

from tests.conftest import ROOT_AK, ROOT_SK, Server, free_port
from tests.e2e.ops_helpers import status_headers


def _spawn(tmp_path) -> Server:
    """A server started without waiting for it: the test itself watches it come up."""
    server = Server(data_dirs=[tmp_path / "d0"], port=free_port())
    tmp_path.mkdir(parents=True, exist_ok=True)
    server.log_path = tmp_path / "server.log"
    env = {**os.environ, "HOLDFAST_ACCESS_KEY": ROOT_AK, "HOLDFAST_SECRET_KEY": ROOT_SK}
    server.proc = subprocess.Popen(
        server.command(),
        env=env,
        stdout=open(server.log_path, "ab"),  # noqa: SIM115 - lives as long as the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return server


def _poll_from_first_health(server: Server, seconds: float) -> list[tuple[str, int, str]]:
    """(what, HTTP status, state) for status JSON and HTML, polled from the first health 200
    (new connections each time, so every worker is asked)."""
    deadline = time.monotonic() + 30
    while True:
        assert server.proc.poll() is None, server.log()
        assert time.monotonic() < deadline, server.log()
        try:
            if requests.get(f"{server.endpoint}/_holdfast/health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.01)
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r = requests.get(
            f"{server.endpoint}/_holdfast/status?format=json",
            headers=status_headers(server, "/_holdfast/status", "format=json"),
            timeout=5,
        )
        seen.append(("json", r.status_code, r.json().get("state") if r.ok else r.text))
        r = requests.get(
            f"{server.endpoint}/_holdfast/status",
            headers=status_headers(server, "/_holdfast/status"),
            timeout=5,
        )
        seen.append(("html", r.status_code, ""))
    return seen


def _stop(server: Server) -> None:
    try:
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.proc.pid, signal.SIGKILL)


def test_status_answers_from_the_first_healthy_moment(tmp_path) -> None:
    server = _spawn(tmp_path)
    try:
        seen = _poll_from_first_health(server, 3.0)
    finally:
        _stop(server)
    assert all(code == 200 for _, code, _ in seen), [s for s in seen if s[1] != 200]
    states = {state for what, _, state in seen if what == "json"}
    assert states <= {"starting", "ok"}, seen
    assert "ok" in states, seen


def test_status_names_ops_machinery_that_cannot_start(tmp_path) -> None:
    """The request log directory is a file: every worker's ops machinery fails to start.
    Status still answers, and says why, instead of 503 'ops machinery not running'."""
    ops = tmp_path / "d0" / "ops"
    ops.mkdir(parents=True)
    (ops / "requestlog").write_text("not a directory")
    server = _spawn(tmp_path)
    try:
        seen = _poll_from_first_health(server, 1.0)
        doc = requests.get(
            f"{server.endpoint}/_holdfast/status?format=json",
            headers=status_headers(server, "/_holdfast/status", "format=json"),
            timeout=5,
        ).json()
    finally:
        _stop(server)
    assert all(code == 200 for _, code, _ in seen), [s for s in seen if s[1] != 200]
    assert doc["state"] == "degraded"
    assert any("ops machinery not running" in p["what"] for p in doc["problems"]), doc
