"""The nemesis suite's cluster, workload and checker (issue #13).

* :class:`NetCluster`: PostgreSQL in the root namespace (on the bridge's index address) and
  N ``holdfast serve`` nodes, each in its own namespace (tests/cluster/netns.py), with the
  cluster's certificates, layout and one master key, as ``holdfast cluster dev`` makes them.
* :class:`Workload`: threads doing PUT, GET, LIST and DELETE with boto3 against random
  nodes over a small key space (so writes to one key race), bounded in count and time,
  plus requests that are the client's mistake (a wrong Content-MD5, a bucket that does not
  exist). Every call is recorded with its start and end time and its outcome.
* :func:`check`: a linearizability-lite checker over that history. A write is *acknowledged*
  (2xx), *failed* (a 4xx the client caused: it did nothing) or *indeterminate* (a timeout, a
  reset, a 503: it may or may not have happened). For each read (GET, LIST, and the final
  reads from every node after healing), the value must be the one of a write that could be
  current: begun before the read ended, and not followed by an acknowledged write that
  began after it ended and ended before the read began. So an acknowledged PUT is never
  lost, a read never goes back past an acknowledged write (read-after-write, across
  nodes), a deleted object does not come back, and a byte that is not exactly what some
  PUT sent is "corrupt".
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from holdfast.cluster.commands import CLUSTER_NAME_META
from holdfast.config import Config
from holdfast.index import open_index
from holdfast.index.postgres.devserver import DevPostgres
from holdfast.index.records import LayoutRecord, NodeRecord
from holdfast.masterkey import ENV as MASTER_KEY_ENV
from holdfast.masterkey import encode_key, new_key
from holdfast.net import pki
from tests.cluster.netns import Net

REPO = Path(__file__).resolve().parents[2]
ACCESS_KEY = "HFNEMESISACCESSKEY01"
SECRET_KEY = "holdfast-nemesis-secret-key-000000000001"
S3_PORT = 9000
CLUSTER_PORT = 7400


class NetCluster:
    def __init__(self, root: Path, net: Net, count: int = 3, extra_env: dict | None = None):
        self.root = root
        self.net = net
        self.count = count
        self.names = [f"n{i + 1}" for i in range(count)]
        self.pg: DevPostgres | None = None
        self.procs: list[subprocess.Popen | None] = [None] * count
        self.stopped: set[int] = set()
        self.master_key = encode_key(new_key())
        self.extra_env: dict[int, dict[str, str]] = {}
        self.extra_args: list[str] = []  # more `holdfast serve` flags, for every node
        self.dsn = ""

    def s3_url(self, i: int) -> str:
        return f"http://{self.net.addr(i)}:{S3_PORT}"

    def start(self) -> NetCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)  # PostgreSQL runs as its own user under it
        hba = self.root / "pg_hba.conf"
        hba.write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
            f"host all all 10.213.{self.net.tag}.0/24 trust\n"
        )
        hba.chmod(0o644)
        self.pg = DevPostgres(
            self.root / "postgres",
            settings={
                "listen_addresses": f"127.0.0.1,{self.net.index_addr}",
                "hba_file": str(hba),
            },
        ).start()
        self.dsn = f"postgresql://postgres@{self.net.index_addr}:{self.pg.port}/postgres"
        pki_dir = self.root / "pki"
        ips = [self.net.addr(i) for i in range(self.count)]
        pki.init_cluster(pki_dir, "nemesis", self.names, ips)
        asyncio.run(self._apply_layout())
        for i in range(self.count):
            self.spawn(i)
        for i in range(self.count):
            self.wait_healthy(i)
        return self

    async def _apply_layout(self) -> None:
        index = open_index(Config(index_dsn=self.pg.dsn()), role="tool")  # type: ignore[union-attr]
        await index.start()
        try:
            nodes = tuple(
                NodeRecord(name, self.s3_url(i), f"{self.net.addr(i)}:{CLUSTER_PORT}")
                for i, name in enumerate(self.names)
            )
            await index.apply_layout(
                0, LayoutRecord(1, nodes, time.time(), "nemesis", "{}", "{}"), drop_staged=False
            )
            await index.set_meta(CLUSTER_NAME_META, "nemesis")
        finally:
            await index.close()

    def argv(self, i: int) -> list[str]:
        files = pki.node_files(self.root / "pki", self.names[i])
        addr = self.net.addr(i)
        return [
            *self.net.exec_prefix(i),
            sys.executable,
            "-m",
            "holdfast.cli",
            "serve",
            "--data",
            str(self.root / "nodes" / self.names[i]),
            "--listen",
            f"{addr}:{S3_PORT}",
            "--workers",
            "1",
            "--index-dsn",
            self.dsn,
            "--node-name",
            self.names[i],
            "--cluster-listen",
            f"{addr}:{CLUSTER_PORT}",
            "--node-cert",
            str(files.cert),
            "--node-key",
            str(files.key),
            "--cluster-ca",
            str(files.ca),
            *self.extra_args,
        ]

    def spawn(self, i: int) -> None:
        log_path = self.root / f"{self.names[i]}.log"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")},
            "PYTHONPATH": str(REPO),
            "HOLDFAST_ACCESS_KEY": ACCESS_KEY,
            "HOLDFAST_SECRET_KEY": SECRET_KEY,
            MASTER_KEY_ENV: self.master_key,
            **self.extra_env.get(i, {}),
        }
        with open(log_path, "ab") as log:
            self.procs[i] = subprocess.Popen(
                self.argv(i),
                env=env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # `ip netns exec` execs: the pid leads the node's group
            )

    def log(self, i: int) -> str:
        try:
            return (self.root / f"{self.names[i]}.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def wait_healthy(self, i: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[i]
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"node {self.names[i]} exited:\n{self.log(i)}")
            try:
                if requests.get(f"{self.s3_url(i)}/_holdfast/health", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"node {self.names[i]} not healthy after {timeout}s:\n{self.log(i)}")

    def signal(self, i: int, sig: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill9(self, i: int) -> None:
        self.signal(i, signal.SIGKILL)
        proc = self.procs[i]
        if proc is not None:
            proc.wait(30)

    def pause(self, i: int) -> None:
        self.signal(i, signal.SIGSTOP)
        self.stopped.add(i)

    def resume(self, i: int) -> None:
        self.signal(i, signal.SIGCONT)
        self.stopped.discard(i)

    def status(self, i: int, timeout: float = 5.0) -> dict:
        """The node's status page as root (signed), JSON."""
        url = f"{self.s3_url(i)}/_holdfast/status?format=json"
        req = AWSRequest(method="GET", url=url)
        S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(req)
        return requests.get(url, headers=dict(req.headers), timeout=timeout).json()

    def client(self, i: int, timeout: float = 5.0):
        return boto3.client(
            "s3",
            endpoint_url=self.s3_url(i),
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=BotoConfig(
                connect_timeout=2,
                read_timeout=timeout,
                retries={"total_max_attempts": 1},  # every error seen, none hidden
            ),
        )

    def stop(self) -> None:
        for i in range(self.count):
            self.resume(i)
            self.signal(i, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for i, proc in enumerate(self.procs):
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.signal(i, signal.SIGKILL)
                proc.wait(10)
        if self.pg is not None:
            self.pg.stop()
            self.pg = None


# ---- the workload -------------------------------------------------------------------------


@dataclass
class Op:
    kind: str  # put, delete, get, list, mistake
    key: str
    node: int
    start: float
    end: float = 0.0
    outcome: str = ""  # ok, failed (a 4xx), unknown (timeout, reset, 5xx)
    status: int = 0
    value: str | None = None  # put: the value written; get: the value read (None: 404)
    listed: frozenset[str] = frozenset()
    error: str = ""
    message: str = ""  # the S3 error's Message
    phase: str = ""

    @property
    def effect_end(self) -> float:
        """Until when the write may take effect: an indeterminate one (timeout, reset, 5xx)
        may still be carried out after the client gave up, so it has no end (as in
        linearizability, a call without an answer may take effect at any later time)."""
        return self.end if self.outcome == "ok" else float("inf")


def _value_of(body: bytes) -> str:
    """A PUT's body names its own write id first, so a read names the write it saw."""
    head, _, rest = body.partition(b"|")
    if hashlib.sha256(rest).hexdigest()[:16].encode() != head[-16:]:
        return "CORRUPT:" + body[:40].hex()
    return head.decode().partition(":")[0]


def _body(write_id: str, rng: random.Random) -> bytes:
    rest = rng.randbytes(rng.choice([10, 3000, 70_000]))
    return f"{write_id}:{hashlib.sha256(rest).hexdigest()[:16]}|".encode() + rest


class Workload:
    """Concurrent clients; ``run`` returns when ``seconds`` passed or ``max_ops`` were done."""

    def __init__(self, cluster: NetCluster, bucket: str, keys: int = 12, threads: int = 4):
        self.cluster = cluster
        self.bucket = bucket
        self.keys = [f"k{i:02d}" for i in range(keys)]
        self.threads = threads
        self.ops: list[Op] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.count = 0
        self.phase = "setup"
        self.by_phase: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def _record(self, op: Op) -> None:
        with self.lock:
            self.ops.append(op)
            detail = "" if op.outcome == "ok" else f" {op.status or ''} {op.error}".rstrip()
            self.by_phase[self.phase][f"{op.kind}:{op.outcome}{detail}"] += 1

    def _one(self, rng: random.Random, clients: list) -> None:
        node = rng.randrange(self.cluster.count)
        s3 = clients[node]
        key = rng.choice(self.keys)
        roll = rng.random()
        op = Op("get", key, node, time.monotonic())
        try:
            if roll < 0.35:
                op.kind = "put"
                op.value = f"w{uuid.uuid4().hex[:12]}"
                s3.put_object(Bucket=self.bucket, Key=key, Body=_body(op.value, rng))
            elif roll < 0.45:
                op.kind = "delete"
                s3.delete_object(Bucket=self.bucket, Key=key)
            elif roll < 0.85:
                try:
                    op.value = _value_of(s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
                except ClientError as e:
                    if e.response["Error"]["Code"] != "NoSuchKey":
                        raise
                    op.value = None
            elif roll < 0.95:
                op.kind = "list"
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
                op.listed = frozenset(o["Key"] for p in pages for o in p.get("Contents", []))
            else:
                op.kind = "mistake"
                if rng.random() < 0.5:
                    s3.put_object(
                        Bucket=self.bucket,
                        Key="mistake",
                        Body=b"abc",
                        ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==",
                    )
                else:
                    s3.get_object(Bucket=f"no-such-{uuid.uuid4().hex[:8]}", Key="x")
            op.outcome, op.status = "ok", 200
        except ClientError as e:
            op.status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            op.error = e.response.get("Error", {}).get("Code", "")
            op.message = e.response.get("Error", {}).get("Message", "")
            op.outcome = "failed" if 400 <= op.status < 500 else "unknown"
        except (BotoCoreError, OSError) as e:
            op.outcome, op.error = "unknown", type(e).__name__
        op.end = time.monotonic()
        op.phase = self.phase
        self._record(op)

    def _thread(self, seed: int, deadline: float, max_ops: int) -> None:
        rng = random.Random(seed)
        clients = [self.cluster.client(i) for i in range(self.cluster.count)]
        while not self.stop.is_set() and time.monotonic() < deadline:
            with self.lock:
                if self.count >= max_ops:
                    return
                self.count += 1
            self._one(rng, clients)

    def start(self, seconds: float, max_ops: int) -> list[threading.Thread]:
        deadline = time.monotonic() + seconds
        threads = [
            threading.Thread(target=self._thread, args=(s, deadline, max_ops), daemon=True)
            for s in range(self.threads)
        ]
        for t in threads:
            t.start()
        return threads

    def final_reads(self) -> None:
        """After healing: every key read from every node."""
        self.phase = "final"
        for node in range(self.cluster.count):
            s3 = self.cluster.client(node, timeout=15)
            for key in self.keys:
                op = Op("get", key, node, time.monotonic())
                try:
                    op.value = _value_of(s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
                    op.outcome = "ok"
                except ClientError as e:
                    if e.response["Error"]["Code"] == "NoSuchKey":
                        op.value, op.outcome = None, "ok"
                    else:
                        op.outcome, op.error = "unknown", e.response["Error"]["Code"]
                op.end = time.monotonic()
                op.kind = "final"
                self._record(op)


# ---- the checker --------------------------------------------------------------------------

UNKNOWN_OUTCOME = "The write may not have been applied"


@dataclass
class Report:
    ops: int = 0
    violations: list[str] = field(default_factory=list)
    by_phase: dict = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)  # 500s
    # 500s that say the write may or may not have been applied: a write whose statement
    # reached the index just as it became unreachable (holdfast/service/objects.py,
    # _outcome_unknown). Checked as writes of unknown outcome, like a timeout; not errors.
    unknown_outcomes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.ops} operations, {len(self.violations)} violations"]
        for phase, counts in self.by_phase.items():
            lines.append(f"  {phase}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        lines += [f"  VIOLATION {v}" for v in self.violations[:20]]
        lines += [f"  500: {e}" for e in self.server_errors[:10]]
        lines += [f"  500, outcome unknown: {e}" for e in self.unknown_outcomes[:10]]
        return "\n".join(lines)


def _possible(writes: list[Op], start: float, end: float) -> set[str | None]:
    """Values a read over [start, end] may return: from writes (and the initial absence)
    that no acknowledged write is known to have replaced before the read began."""
    candidates = [w for w in writes if w.outcome != "failed" and w.start < end]
    acked = [w for w in candidates if w.outcome == "ok" and w.end < start]
    values: set[str | None] = set()
    if not any(a.end < start for a in acked):
        values.add(None)  # nothing acknowledged before the read: absent is allowed
    for w in candidates:
        replaced = any(a.start > w.effect_end and a.end < start for a in acked)
        if not replaced:
            values.add(w.value if w.kind == "put" else None)
    return values


def _history(writes: list[Op], start: float, end: float) -> str:
    """The key's writes near a read, relative to its start, for a violation's message."""
    near = [w for w in writes if w.start < end][-6:]
    return " | writes: " + "; ".join(
        f"{w.kind} {w.value or ''} on n{w.node + 1} {w.outcome}{w.status or ''}{w.error} "
        f"[{w.start - start:+.2f}, {w.end - start:+.2f}] ({w.phase})"
        for w in near
    )


def check(workload: Workload) -> Report:
    ops = sorted(workload.ops, key=lambda o: o.start)
    report = Report(ops=len(ops), by_phase={k: dict(v) for k, v in workload.by_phase.items()})
    writes: dict[str, list[Op]] = collections.defaultdict(list)
    for op in ops:
        if op.kind in ("put", "delete"):
            writes[op.key].append(op)
        if op.status == 500 or op.error == "InternalError":
            where = f"{op.kind} {op.key} on n{op.node + 1}: {op.error}"
            if op.kind in ("put", "delete") and op.message.startswith(UNKNOWN_OUTCOME):
                report.unknown_outcomes.append(where)
            else:
                report.server_errors.append(where)
        if op.kind == "mistake" and (op.outcome == "ok" or op.status >= 500 and op.status != 503):
            report.violations.append(
                f"a client mistake got {op.status or op.error} (outcome {op.outcome})"
            )
    for op in ops:
        if op.outcome != "ok":
            if op.kind == "final":
                report.violations.append(f"final read of {op.key} on n{op.node + 1}: {op.error}")
            continue
        if op.kind in ("get", "final"):
            if op.value is not None and op.value.startswith("CORRUPT"):
                report.violations.append(f"corrupt bytes for {op.key}: {op.value}")
                continue
            allowed = _possible(writes[op.key], op.start, op.end)
            if op.value not in allowed:
                report.violations.append(
                    f"{op.kind} {op.key} on n{op.node + 1} read {op.value}, allowed "
                    f"{sorted(map(str, allowed))}" + _history(writes[op.key], op.start, op.end)
                )
        elif op.kind == "list":
            for key in workload.keys:
                allowed = _possible(writes[key], op.start, op.end)
                present = key in op.listed
                if present and allowed == {None}:
                    report.violations.append(
                        f"list on n{op.node + 1} shows deleted {key}"
                        + _history(writes[key], op.start, op.end)
                    )
                if not present and None not in allowed:
                    report.violations.append(
                        f"list on n{op.node + 1} misses {key}"
                        + _history(writes[key], op.start, op.end)
                    )
    report.violations += [f"500 {e}" for e in report.server_errors]
    return report


def write_report(path: Path, name: str, report: Report) -> None:
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc[name] = {
        "ops": report.ops,
        "violations": report.violations,
        "unknown_outcome_500s": report.unknown_outcomes,
        "by_phase": report.by_phase,
    }
    path.write_text(json.dumps(doc, indent=2))
