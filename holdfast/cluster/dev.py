"""``holdfast cluster dev --nodes N --dir DIR``: a whole cluster on one machine, to try
Holdfast as a cluster and for scripts (issue #17, DESIGN.md "cluster.json").

It starts, each in a process group of its own so that each can be stopped whole:
* a PostgreSQL from the machine's binaries (holdfast/index/postgres/devserver.py: as the
  ``postgres`` user when run as root; a directory that user cannot reach is named in one
  line with what to do), data in DIR/postgres;
* a cluster CA and node certificates (``holdfast cluster init``'s code), in DIR/pki;
* N nodes (``holdfast serve`` with the index DSN, node name, certificate and
  ``--cluster-listen``) on loopback ports, data in DIR/nodes/NAME/data;

applies a layout with the N nodes (recorded in the history as applied by ``cluster dev``),
writes DIR/cluster.json, prints each node's S3 endpoint and the credentials, and waits.
Ctrl-C or SIGTERM stops everything it started. Started again with the same DIR, it keeps
the data, the certificates, the credentials and the ports.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from holdfast.cluster.commands import CLUSTER_NAME_META
from holdfast.cluster.layout import Layout
from holdfast.config import Config
from holdfast.index import open_index
from holdfast.index.errors import IndexError_
from holdfast.index.postgres.devserver import DevPostgres, DevServerError, free_port
from holdfast.index.records import LayoutRecord, NodeRecord
from holdfast.masterkey import ENV as MASTER_KEY_ENV
from holdfast.masterkey import encode_key, new_key
from holdfast.net import pki
from holdfast.service.users import load_root_credentials

CLUSTER_JSON = "cluster.json"
DEV_CLUSTER_NAME = "dev"
READY_TIMEOUT = 60.0


class DevError(RuntimeError):
    """One line: what went wrong and what to do."""


@dataclass
class DevNode:
    name: str
    s3_port: int
    cluster_port: int
    data: Path
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None

    @property
    def s3(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "s3": self.s3,
            "pid": self.proc.pid if self.proc else None,
            "data": str(self.data),
            "argv": self.argv,
            "env": self.env,
        }


def _previous(directory: Path) -> dict:
    try:
        return json.loads((directory / CLUSTER_JSON).read_text())
    except (OSError, ValueError):
        return {}


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


class DevCluster:
    def __init__(self, directory: Path, count: int, workers: int = 1) -> None:
        if count < 1:
            raise DevError("--nodes must be at least 1")
        self.dir = directory.resolve()
        self.count = count
        self.workers = workers
        self.names = [f"n{i}" for i in range(1, count + 1)]
        self.pg: DevPostgres | None = None
        self.nodes: list[DevNode] = []
        self.dsn = ""
        self.stopping = threading.Event()

    # -- setting up --------------------------------------------------------------------------

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # PostgreSQL runs as the postgres user, under DIR/postgres: let it through DIR
            # (search only; the secrets in DIR are mode 0600). Directories above DIR are
            # the user's: the devserver names the first one that blocks, in one line.
            self.dir.chmod(self.dir.stat().st_mode | 0o011)
        previous = _previous(self.dir)
        old_nodes = {n["name"]: n for n in previous.get("nodes", [])}
        old_dsn = (previous.get("index") or {}).get("dsn", "")
        pg_port = _port_of(old_dsn) if old_dsn else 0
        try:
            self.pg = DevPostgres(self.dir / "postgres", port=pg_port).start()
        except DevServerError as e:
            raise DevError(f"PostgreSQL: {e}") from None
        self.dsn = self.pg.dsn()
        self.creds = load_root_credentials(self.dir)
        self.master_key = _master_key(self.dir)
        pki_dir = self.dir / "pki"
        try:
            if not (pki_dir / pki.CA_CERT).exists():
                pki.init_cluster(pki_dir, DEV_CLUSTER_NAME, self.names, ["127.0.0.1"])
            for name in self.names:
                if not pki.node_files(pki_dir, name).cert.exists():
                    pki.issue_node(pki_dir, name, ["127.0.0.1"])
        except pki.PkiError as e:
            raise DevError(f"certificates in {pki_dir}: {e}") from None
        taken: set[int] = set()
        for name in self.names:
            old = old_nodes.get(name)
            s3_port = _port_of(old["s3"]) if old else self._free(taken)
            cluster_port = self._old_cluster_port(old) or self._free(taken)
            taken |= {s3_port, cluster_port}
            self.nodes.append(self._node(name, s3_port, cluster_port, pki_dir))
        asyncio.run(self._apply_layout())
        for node in self.nodes:
            self._spawn(node)
        self.write_json()
        for node in self.nodes:
            self._wait_ready(node)

    @staticmethod
    def _free(taken: set[int]) -> int:
        while (port := free_port()) in taken:
            pass
        return port

    @staticmethod
    def _old_cluster_port(old: dict | None) -> int | None:
        if not old:
            return None
        argv = old.get("argv") or []
        if "--cluster-listen" in argv:
            return _port_of(argv[argv.index("--cluster-listen") + 1])
        return None

    def _node(self, name: str, s3_port: int, cluster_port: int, pki_dir: Path) -> DevNode:
        files = pki.node_files(pki_dir, name)
        data = self.dir / "nodes" / name / "data"
        argv = [
            sys.executable,
            "-m",
            "holdfast.cli",
            "serve",
            "--data",
            str(data),
            "--listen",
            f"127.0.0.1:{s3_port}",
            "--workers",
            str(self.workers),
            "--index-dsn",
            self.dsn,
            "--node-name",
            name,
            "--cluster-listen",
            f"127.0.0.1:{cluster_port}",
            "--node-cert",
            str(files.cert),
            "--node-key",
            str(files.key),
            "--cluster-ca",
            str(files.ca),
        ]
        env = {
            "HOLDFAST_ACCESS_KEY": self.creds.access_key,
            "HOLDFAST_SECRET_KEY": self.creds.secret_key,
            # One master key for every node: users' secrets sealed through one node must
            # open on the others (they share the index).
            MASTER_KEY_ENV: self.master_key,
        }
        return DevNode(name, s3_port, cluster_port, data, argv, env)

    async def _apply_layout(self) -> None:
        config = Config(data_dirs=[str(self.dir)])
        config.index_dsn = self.dsn
        index = open_index(config, role="tool")
        try:
            await index.start()
            current = Layout.of(await index.get_layout())
            wanted = tuple(
                NodeRecord(n.name, n.s3, f"127.0.0.1:{n.cluster_port}") for n in self.nodes
            )
            kept = tuple(n for n in current.nodes if n.name not in self.names)
            nodes = tuple(sorted(wanted + kept, key=lambda n: n.name))
            if nodes != current.nodes:
                from holdfast.cluster.layout import diff

                await index.apply_layout(
                    current.version,
                    LayoutRecord(
                        current.version + 1,
                        nodes,
                        time.time(),
                        "holdfast cluster dev",
                        json.dumps(diff(current.nodes, nodes)),
                        "{}",
                    ),
                    drop_staged=False,
                )
            if await index.get_meta(CLUSTER_NAME_META) is None:
                await index.set_meta(CLUSTER_NAME_META, DEV_CLUSTER_NAME)
        except IndexError_ as e:
            raise DevError(f"the index engine at {self.dsn}: {e}") from None
        finally:
            await index.close()

    def _spawn(self, node: DevNode) -> None:
        node.data.mkdir(parents=True, exist_ok=True)
        log = open(node.data.parent / "node.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            node.proc = subprocess.Popen(
                node.argv,
                env={**os.environ, **node.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its pid leads its own process group
            )
        finally:
            log.close()

    def _wait_ready(self, node: DevNode) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and not self.stopping.is_set():
            if node.proc is not None and node.proc.poll() is not None:
                raise DevError(
                    f"node {node.name} exited at start (code {node.proc.returncode}): "
                    f"{_tail(node.data.parent / 'node.log')}"
                )
            try:
                if requests.get(f"{node.s3}/_holdfast/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        if not self.stopping.is_set():
            raise DevError(
                f"node {node.name} not ready after {READY_TIMEOUT:.0f} s; see "
                f"{node.data.parent / 'node.log'}"
            )

    def write_json(self) -> None:
        doc = {
            "index": {"dsn": self.dsn, "pid": self.pg.pid if self.pg else None},
            "nodes": [n.to_json() for n in self.nodes],
            "access_key": self.creds.access_key,
            "secret_key": self.creds.secret_key,
        }
        path = self.dir / CLUSTER_JSON
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the secret
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
        os.replace(tmp, path)

    def banner(self) -> str:
        lines = [f"Holdfast dev cluster: {self.count} nodes, index {self.dsn}"]
        for n in self.nodes:
            lines.append(f"  {n.name}: S3 {n.s3}   node-to-node 127.0.0.1:{n.cluster_port} (mTLS)")
        source = (
            "from HOLDFAST_ACCESS_KEY / HOLDFAST_SECRET_KEY"
            if self.creds.source == "environment"
            else f"saved in {self.creds.source}"
            if self.creds.source != "generated"
            else "generated now, saved in DIR"
        )
        lines += [
            f"  credentials ({source}):",
            f"  export AWS_ACCESS_KEY_ID={self.creds.access_key}",
            f"  export AWS_SECRET_ACCESS_KEY={self.creds.secret_key}",
            f"  export AWS_ENDPOINT_URL={self.nodes[0].s3}",
            "  export AWS_DEFAULT_REGION=us-east-1",
            f"  {self.dir / CLUSTER_JSON} describes it all; Ctrl-C stops it",
        ]
        return "\n".join(lines)

    # -- stopping ----------------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()
        for node in self.nodes:
            _signal_group(node.proc, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for node in self.nodes:
            if node.proc is None:
                continue
            try:
                node.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(node.proc, signal.SIGKILL)
                node.proc.wait(5)
        if self.pg is not None:
            self.pg.stop()


def _master_key(directory: Path) -> str:
    path = directory / "master-key.b64"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(encode_key(new_key()))
    return path.read_text().strip()


def _signal_group(proc: subprocess.Popen | None, sig: int) -> None:
    if proc is None:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


def run(args) -> int:
    cluster = DevCluster(Path(args.dir), args.nodes, workers=args.workers)
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        cluster.stopping.set()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        cluster.start()
        if not stop.is_set():
            print(cluster.banner(), flush=True)
            while not stop.wait(0.5):
                pass
        return 0
    except DevError as e:
        print(f"holdfast: {e}", file=sys.stderr)
        return 2
    finally:
        print("holdfast: stopping the dev cluster", file=sys.stderr, flush=True)
        cluster.stop()
