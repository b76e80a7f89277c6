"""Test harness: real `holdfast serve` processes on free ports, driven by real clients.

Nothing here mocks the store. Session-scoped servers (HTTP and HTTPS) serve most tests;
tests that kill or restart a server start their own with :func:`start_server`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
import requests
import trustme
from botocore.config import Config as BotoConfig

from tests.postgres import SESSION as _POSTGRES
from tests.postgres import SessionPostgres, whole_suite_on_postgres

ROOT_AK = "HFTESTROOTACCESSKEY1"
ROOT_SK = "hf-test-root-secret-key-0123456789abcdef"


def group_pids(pgid: int) -> list[int]:
    """The server's process group: the supervisor, its workers and the index committer."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) == pgid:
                pids.append(int(entry))
        except ProcessLookupError:
            continue
    return pids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    data_dirs: list[Path]
    port: int
    tls: tuple[str, str] | None = None  # (cert, key)
    ca_path: str | None = None
    workers: int = 2
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    index_dsn: str | None = None  # PostgreSQL; None: the embedded SQLite index
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "holdfast.cli", "serve", "--listen", f"127.0.0.1:{self.port}"]
        for d in self.data_dirs:
            cmd += ["--data", str(d)]
        if self.tls:
            cmd += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        if self.index_dsn:
            cmd += ["--index-dsn", self.index_dsn]
        cmd += ["--workers", str(self.workers), *self.extra_args]
        return cmd

    def start(self, timeout: float = 60.0) -> Server:
        env = {
            **os.environ,
            "HOLDFAST_ACCESS_KEY": ROOT_AK,
            "HOLDFAST_SECRET_KEY": ROOT_SK,
            **self.env,
        }
        self.data_dirs[0].parent.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dirs[0].parent / f"server-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            self.command(), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                r = requests.get(
                    f"{self.endpoint}/_holdfast/health", timeout=1, verify=self.ca_path or False
                )
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not healthy after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def kill9(self) -> None:
        """SIGKILL the whole process group: the supervisor and every worker, mid-write."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill9()
        self.proc = None

    def client(self, access_key: str = ROOT_AK, secret_key: str = ROOT_SK, **config):
        """boto3 with its default settings (checksums, retries), pointed at this server."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            verify=self.ca_path if self.tls else None,
            config=BotoConfig(**config) if config else None,
        )


def start_server(tmp_path: Path, tls: TLSFiles | None = None, drives: int = 1, **kw) -> Server:
    """A server on a fresh index: SQLite in its data directory, or with
    HOLDFAST_TEST_INDEX=postgres (or ``index="postgres"``) a new database on the session's
    PostgreSQL."""
    dirs = [tmp_path / f"drive{i}" for i in range(drives)]
    engine = kw.pop("index", None) or ("postgres" if whole_suite_on_postgres() else "sqlite")
    if engine == "postgres" and "index_dsn" not in kw:
        kw["index_dsn"] = _POSTGRES.new_database("srv")
    server = Server(
        data_dirs=dirs,
        port=free_port(),
        tls=(tls.cert, tls.key) if tls else None,
        ca_path=tls.ca if tls else None,
        **kw,
    )
    return server.start()


@pytest.fixture(scope="session")
def postgres() -> Iterator[SessionPostgres]:
    """The session's PostgreSQL (started on first use, stopped at the end); skips the test
    when the binaries are missing."""
    _POSTGRES.ensure()
    yield _POSTGRES


@pytest.fixture
def pg_dsn(postgres) -> str:
    """A fresh, empty database for one test."""
    return postgres.new_database()


def pytest_sessionfinish(session, exitstatus) -> None:
    _POSTGRES.stop()


@dataclass
class TLSFiles:
    cert: str
    key: str
    ca: str


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """One real SeaweedFS for the whole session (the store contract suite and the back-end
    e2e tests each use fresh buckets in it): it takes ~10 s to start on a loaded machine."""
    from tests.backends import SeaweedFS

    weed = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    yield weed
    weed.stop(grace=0)  # its data is thrown away: no need to wait on a clean shutdown


@pytest.fixture(scope="session")
def holdfast_backend(tmp_path_factory) -> Iterator[Server]:
    """A second Holdfast, as an S3 back-end store of the one under test (issue #14)."""
    server = start_server(tmp_path_factory.mktemp("hf-backend"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TLSFiles:
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(str(d / "cert.pem"), str(d / "key.pem"), str(d / "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(files.cert)
    cert.private_key_pem.write_to_path(files.key)
    ca.cert_pem.write_to_path(files.ca)
    return files


@pytest.fixture(scope="session")
def http_server(tmp_path_factory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("http"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def https_server(tmp_path_factory, tls_files) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("https"), tls=tls_files)
    yield server
    server.stop()


@pytest.fixture(params=["http", "https"])
def server(request) -> Server:
    """Runs the test once over HTTP (checksums in headers) and once over HTTPS, where boto3
    sends aws-chunked bodies with trailer checksums."""
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture
def s3(server):
    return server.client()


@pytest.fixture
def bucket(s3) -> str:
    name = f"t-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


def unique(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
