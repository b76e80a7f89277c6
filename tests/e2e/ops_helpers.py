"""Shared by the ops tests: signed admin-API calls, status polling, a webhook receiver that
fails on demand, a real SMTP server (aiosmtpd), and the holdfast CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import ROOT_AK, ROOT_SK, Server, free_port

HOLDFAST = Path(sys.executable).parent / "holdfast"


# The root keys the test servers run with, for CLI commands that sign (admin status).
ROOT_ENV = {"HOLDFAST_ACCESS_KEY": ROOT_AK, "HOLDFAST_SECRET_KEY": ROOT_SK}


def holdfast(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    cmd = [str(HOLDFAST)] if HOLDFAST.exists() else [sys.executable, "-m", "holdfast.cli"]
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env} if env else None,
    )


def api(server: Server, method: str, path: str, body: dict | None = None, keys=(ROOT_AK, ROOT_SK)):
    """A SigV4-signed call to the admin API, as any SDK's signer makes it."""
    url = server.endpoint + path
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    req = AWSRequest(method=method, url=url, data=data, headers=headers)
    S3SigV4Auth(Credentials(*keys), "s3", "us-east-1").add_auth(req)
    return requests.request(method, url, data=data, headers=dict(req.headers), timeout=30)


def status_headers(
    server: Server, path: str, query: str = "", keys=(ROOT_AK, ROOT_SK)
) -> dict[str, str]:
    """Headers of a GET signed with the root keys (SigV4), as status and metrics want."""
    url = server.endpoint + path + (f"?{query}" if query else "")
    req = AWSRequest(method="GET", url=url)
    S3SigV4Auth(Credentials(*keys), "s3", "us-east-1").add_auth(req)
    return dict(req.headers)


def status(server: Server, timeout: float = 2.0) -> dict:
    r = requests.get(
        f"{server.endpoint}/_holdfast/status?format=json",
        headers=status_headers(server, "/_holdfast/status", "format=json"),
        timeout=timeout,
        verify=server.ca_path or False,
    )
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def metrics_text(server: Server, timeout: float = 5.0) -> str:
    """/_holdfast/metrics as root reads it (SigV4-signed)."""
    r = requests.get(
        f"{server.endpoint}/_holdfast/metrics",
        headers=status_headers(server, "/_holdfast/metrics"),
        timeout=timeout,
        verify=server.ca_path or False,
    )
    assert r.status_code == 200, r.text
    return r.text


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        head, _, label_text = series.partition("{")
        if head != name:
            continue
        have = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part)
        if all(have.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(value)
    return total


class Webhook:
    """An HTTP endpoint that answers 500 to its first ``fail_first`` calls, then 200, and
    records every body it accepted."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls = 0
        self.received: list[dict] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with hook.lock:
                    hook.calls += 1
                    fail = hook.calls <= hook.fail_first
                    if not fail:
                        hook.received.append(json.loads(body))
                self.send_response(500 if fail else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?token=s3cr3t-token"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Mailbox:
    """A real SMTP server (aiosmtpd) on a free port, keeping what it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[dict] = []
        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
                box.messages.append(
                    {
                        "from": envelope.mail_from,
                        "to": envelope.rcpt_tos,
                        "data": envelope.content.decode("utf-8", "replace"),
                    }
                )
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.controller.stop()
