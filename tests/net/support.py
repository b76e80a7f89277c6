"""Helpers for the node-to-node tests: a cluster made by ``holdfast cluster init``, internal
servers in their own processes (tests/net/node_server.py), their metrics, and clients."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from holdfast.net import pki
from holdfast.net.client import NodeClient
from holdfast.net.tls import NodeIdentity, StaticPeers

NODES = ("n1", "n2", "n3")


def cluster_init(directory: Path, nodes: tuple[str, ...] = NODES) -> Path:
    """A cluster made the way users make one: the CLI."""
    subprocess.run(
        [sys.executable, "-m", "holdfast.cli", "cluster", "init", "--dir", str(directory),
         "--name", "test", "--nodes", ",".join(nodes)],
        check=True, capture_output=True,
    )  # fmt: skip
    return directory


def identity(cluster: Path, name: str) -> NodeIdentity:
    f = pki.node_files(cluster, name)
    return NodeIdentity.load(f.cert, f.key, f.ca)


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    port: int
    root: Path
    metrics: Path

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A counter of the server process (summed over label sets not given)."""
        registry = CollectorRegistry()
        MultiProcessCollector(registry, str(self.metrics))
        return total(registry, name, labels)


def total(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    out = 0.0
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in (labels or {}).items()):
                out += s.value
    return out


def local_sample(name: str, labels: dict[str, str] | None = None) -> float:
    """A counter of this (the test) process: the clients' side."""
    return total(REGISTRY, name, labels)


def start_server(
    work: Path, cert: Path, key: Path, ca: Path, allow: tuple[str, ...] = NODES
) -> ServerProcess:
    root = work / "drives"
    metrics = work / "metrics"
    for d in (root, metrics):
        d.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.net.node_server", "--cert", str(cert), "--key", str(key),
         "--ca", str(ca), "--allow", ",".join(allow), "--root", str(root)],
        stdout=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"internal server did not start: {line!r}")
    return ServerProcess(proc, int(line), root, metrics)


def start_node(work: Path, cluster: Path, name: str, allow: tuple[str, ...] = NODES):
    f = pki.node_files(cluster, name)
    return start_server(work, f.cert, f.key, f.ca, allow)


def client_for(
    cluster_or_identity: Path | NodeIdentity, name: str, peers: dict[str, int], **kw
) -> NodeClient:
    ident = (
        cluster_or_identity
        if isinstance(cluster_or_identity, NodeIdentity)
        else identity(cluster_or_identity, name)
    )
    return NodeClient(ident, StaticPeers({n: ("127.0.0.1", p) for n, p in peers.items()}), **kw)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
