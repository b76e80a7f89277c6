"""The storm test (issue #13, "Repair and rebalancing without a storm"; EBS, 2011).

A cluster about 85 % full loses nodes while writes go on, so the survivors owe the lost
nodes every copy written meanwhile (their hinted-handoff log, in the repair queue); then
the lost nodes all come back at once, and the whole backlog is due at the same moment.
The cluster must work it off without a storm. Measured, and asserted:

1. **repair rate**: the bytes repair moved in every one-second window (the repair worker's
   own per-second record, ``repair.rate`` in the integrity status, which counts each block
   when it is written) never exceed ``--repair-rate``; the record is checked against the
   bytes owed, so it cannot have missed the transfer;
2. **placement attempts** (repair attempts: each tries to place one owed copy on its
   target) in every 60-s window stay under a stated bound: every owed copy once, plus for
   each target drive the backoff's most retries in a minute (``max_attempts``), plus the
   concurrency; and retries alone under the retry part of it;
3. **reserve**: no node's drive (a small tmpfs of its own) ever has less free than its
   reserve (sampled every half second throughout);
4. **foreground p99**: a bounded, paced client loop against the surviving nodes (GETs and
   small PUTs), before the outage (baseline) and while the returning nodes are repaired:
   p99 during recovery at most 3x the baseline's;
5. **convergence**: in the end every object has its policy's copies, one per node, each
   on its node's drive with its full length, and nothing is owed.

The policy of the storm bucket is one copy per node (copies = the number of nodes), so
that every write made during the outage is owed to *each* node that was away: with fewer
copies, placement simply writes to the nodes that are up and nothing is owed at all.
In the full variant one returning node also finds its drive mostly taken (a junk file put
there while it was away, as if another tenant had used the disk): repair must fill it only
up to its repair reserve, back off instead of retrying in a loop, and finish once the junk
is removed.

``test_storm_quick`` (default run): 3 nodes, 1 away. ``test_storm_full`` (slow): 5 nodes,
2 away, both killed during writes and restarted together. Both print their figures and
write them to ``storm-report.json`` (and to ``$HOLDFAST_STORM_REPORT`` if set).

Needs root (tmpfs drives, network namespaces) and PostgreSQL's binaries; skips otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import psycopg
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from holdfast.config import Config
from holdfast.index import open_index
from holdfast.index.postgres.devserver import find_bin_dir
from holdfast.workers.limits import max_attempts
from tests.cluster import netns
from tests.cluster.nemesis import ACCESS_KEY, SECRET_KEY, NetCluster
from tests.faults.support import Mounts

WHY_NOT = netns.unavailable()
pytestmark = [
    pytest.mark.skipif(find_bin_dir() is None, reason="no PostgreSQL binaries"),
    pytest.mark.skipif(WHY_NOT is not None, reason=f"no network namespaces: {WHY_NOT}"),
]

MIB = 1024 * 1024
BUCKET = "storm"
FG_BUCKET = "foreground"


@dataclass
class Scenario:
    name: str
    nodes: int
    away: tuple[int, ...]  # node indexes killed during the writes, then restarted together
    drive_mib: int
    fill_object: int  # bytes of each object written before the outage
    owed_object: int  # bytes of each object written during it (what the away nodes are owed)
    before: float  # share of each drive filled before the outage
    target: float  # share filled once everything is repaired (~0.85)
    repair_rate: int  # --repair-rate, bytes/s
    baseline_seconds: float
    probe_rate: float  # foreground requests per second, in total
    squeeze: bool = False  # one away node comes back with too little room (junk)
    # "kill": kill -9, then started again; "pause": SIGSTOP, then SIGCONT (no restart, so
    # it is quick; the node leading the background work is not paused, or nothing would
    # repair while it is stopped: its lease's connection stays up)
    how: str = "kill"
    reserve: int = 5  # --reserve and --repair-reserve, percent
    concurrency: int = 2
    ops: float = 20.0
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    recovery_deadline: float = 300.0

    def flags(self) -> list[str]:
        return [
            "--repair-rate", str(self.repair_rate),
            "--repair-concurrency", str(self.concurrency),
            "--repair-ops", str(self.ops),
            "--repair-backoff-base", str(self.backoff_base),
            "--repair-backoff-cap", str(self.backoff_cap),
            "--reserve", str(self.reserve),
            "--repair-reserve", str(self.reserve),
            "--scrub-rate", "0",  # the scrubber's reads are not part of this storm
        ]  # fmt: skip


QUICK = Scenario(
    name="quick",
    nodes=3,
    away=(2,),
    drive_mib=24,
    fill_object=MIB,
    owed_object=256 * 1024,
    before=0.55,
    target=0.85,
    repair_rate=2 * MIB,
    baseline_seconds=8,
    probe_rate=10,
    how="pause",
    squeeze=True,
    backoff_cap=2.0,
    recovery_deadline=150,
)

FULL = Scenario(
    name="full",
    nodes=5,
    away=(3, 4),
    drive_mib=64,
    fill_object=MIB,
    owed_object=256 * 1024,
    before=0.55,
    target=0.85,
    repair_rate=4 * MIB,
    baseline_seconds=20,
    probe_rate=8,
    squeeze=True,
    recovery_deadline=480,
)


# ---- the cluster, on small tmpfs drives -------------------------------------------------


@pytest.fixture
def storm_env():
    if os.geteuid() != 0:
        pytest.skip("the storm test mounts tmpfs drives: it needs root")
    root = Path(tempfile.mkdtemp(prefix="holdfast-storm-"))
    root.chmod(0o711)
    mounts = Mounts()
    made: dict = {}
    try:
        yield root, mounts, made
    finally:
        try:
            if "cluster" in made:
                made["cluster"].stop()
        finally:
            if "net" in made:
                made["net"].down()
            mounts.cleanup()
            shutil.rmtree(root, ignore_errors=True)


def _start(env, sc: Scenario) -> NetCluster:
    root, mounts, made = env
    net = netns.Net(sc.nodes, tag=30 + os.getpid() % 150)
    made["net"] = net
    c = NetCluster(root / "c", net, count=sc.nodes)
    made["cluster"] = c
    for name in c.names:  # each node's only drive: a small filesystem of its own
        mounts.tmpfs(root / "c" / "nodes" / name, sc.drive_mib)
    c.extra_args = sc.flags()
    net.up()
    c.start()
    return c


def _disk(c: NetCluster, i: int) -> tuple[int, int]:
    """(free, total) bytes of node i's drive, as the node sees it (statvfs)."""
    st = os.statvfs(c.root / "nodes" / c.names[i])
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def _status_file(c: NetCluster, i: int) -> dict:
    try:
        return json.loads(
            (c.root / "nodes" / c.names[i] / "index" / "integrity-status.json").read_text()
        )
    except (OSError, ValueError):
        return {}


def _leader(c: NetCluster) -> int | None:
    """The node whose process leads the background work (it publishes every second)."""
    for i in range(c.count):
        st = _status_file(c, i)
        if "repair" in st and time.time() - st.get("written_at", 0) < 3:
            return i
    return None


def _peer_state(c: NetCluster, i: int, peer: str) -> str:
    return c.status(i)["cluster"]["peers"][peer]["state"]


def _eventually(what: str, probe, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as e:  # a node answering slowly: try again
            last = e
        time.sleep(every)
    raise AssertionError(f"not seen within {timeout:.0f}s: {what} ({last})")


def _sql(c: NetCluster, query: str, *args) -> list[tuple]:
    with psycopg.connect(c.dsn, connect_timeout=10, autocommit=True) as db:
        return list(db.execute(query, args))


def _set_policy(c: NetCluster, copies: int, min_copies: int) -> None:
    async def go() -> None:
        index = open_index(Config(index_dsn=c.dsn), role="tool")
        await index.start()
        try:
            await index.set_bucket_policy(BUCKET, copies, min_copies)
        finally:
            await index.close()

    asyncio.run(go())


def _writer(c: NetCluster, i: int):
    """A client for the load that fills the cluster: it may retry (not what is measured)."""
    return boto3.client(
        "s3",
        endpoint_url=c.s3_url(i),
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=BotoConfig(connect_timeout=5, read_timeout=60, retries={"total_max_attempts": 4}),
    )


def _write(c: NetCluster, nodes: list[int], prefix: str, count: int, size: int) -> list[str]:
    """``count`` objects of ``size`` bytes through ``nodes`` in turn, two at a time."""
    keys = [f"{prefix}{n:04d}" for n in range(count)]
    errors: list[str] = []

    def run(part: list[tuple[int, str]]) -> None:
        clients = {i: _writer(c, i) for i in nodes}
        for n, key in part:
            try:
                clients[nodes[n % len(nodes)]].put_object(
                    Bucket=BUCKET, Key=key, Body=os.urandom(size)
                )
            except (ClientError, BotoCoreError) as e:
                errors.append(f"{key}: {e}")

    items = list(enumerate(keys))
    threads = [threading.Thread(target=run, args=(items[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, errors[:5]
    return keys


# ---- what is watched while it runs ------------------------------------------------------


class Watch:
    """Samples, every half second, each node's drive (statvfs) and the repair record each
    node's background process publishes (``repair.rate``, per process), until stopped."""

    def __init__(self, c: NetCluster) -> None:
        self.c = c
        self.min_free_share = {name: 1.0 for name in c.names}
        self.max_used_share = {name: 0.0 for name in c.names}
        # (node, pid) -> second -> [bytes, attempts, retries]
        self.records: dict[tuple[str, int], dict[int, list[int]]] = {}
        self.busiest: dict[tuple[str, int], int] = {}
        self.limit: int | None = None
        self.failures: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Watch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        time.sleep(2.5)  # the leader publishes its record once a second: its last second too
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def sample(self) -> None:
        self.samples += 1
        for i, name in enumerate(self.c.names):
            free, total = _disk(self.c, i)
            self.min_free_share[name] = min(self.min_free_share[name], free / total)
            self.max_used_share[name] = max(self.max_used_share[name], 1 - free / total)
            st = _status_file(self.c, i)
            rate = (st.get("repair") or {}).get("rate")
            if not rate or "pid" not in st:
                continue
            key = (name, int(st["pid"]))
            per = self.records.setdefault(key, {})
            for second, nbytes, attempts, retries in rate["seconds"]:
                per[int(second)] = [nbytes, attempts, retries]
            self.busiest[key] = max(self.busiest.get(key, 0), rate["busiest_window_bytes"])
            self.limit = st["repair"]["limits"]["bytes_per_second"]
            for kind, n in st["repair"].get("failures", {}).items():
                self.failures[f"{name}/{st['pid']}:{kind}"] = n

    def per_second(self) -> dict[int, list[int]]:
        """The cluster's record: every leading process's seconds, added up (two leaders
        overlap only for a moment when the lease changes hands)."""
        out: dict[int, list[int]] = {}
        for per in self.records.values():
            for second, values in per.items():
                slot = out.setdefault(second, [0, 0, 0])
                for k in range(3):
                    slot[k] += values[k]
        return out


def _window_max(per: dict[int, list[int]], column: int, seconds: int) -> int:
    if not per:
        return 0
    first, last = min(per), max(per)
    best = 0
    for start in range(first, last + 1):
        best = max(best, sum(per.get(s, [0, 0, 0])[column] for s in range(start, start + seconds)))
    return best


# ---- the foreground client loop ---------------------------------------------------------


@dataclass
class Probe:
    """Paced foreground requests (GETs of small objects, one PUT in five) against the
    surviving nodes, from two threads; each latency recorded with its phase."""

    c: NetCluster
    nodes: list[int]
    rate: float
    keys: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    slowest: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    phase: str = "baseline"

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def prepare(self) -> None:
        s3 = _writer(self.c, self.nodes[0])
        s3.create_bucket(Bucket=FG_BUCKET)
        self.keys = [f"fg{n}" for n in range(8)]
        for key in self.keys:
            s3.put_object(Bucket=FG_BUCKET, Key=key, Body=os.urandom(16 * 1024))

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(2)
        ]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _run(self, k: int) -> None:
        clients = [self.c.client(i, 30.0) for i in self.nodes]
        interval = 2.0 / self.rate  # two threads share the rate
        n = k
        next_at = time.monotonic() + k * interval / 2
        while not self._stop.is_set():
            next_at += interval
            n += 1
            s3 = clients[n % len(clients)]
            key = self.keys[n % len(self.keys)]
            phase = self.phase
            t0 = time.monotonic()
            try:
                if n % 5 == 0:
                    s3.put_object(Bucket=FG_BUCKET, Key=f"w{k}-{n}", Body=os.urandom(16 * 1024))
                else:
                    s3.get_object(Bucket=FG_BUCKET, Key=key)["Body"].read()
                took = time.monotonic() - t0
                with self._lock:
                    self.latencies.setdefault(phase, []).append(took)
                    slow = self.slowest.setdefault(phase, [])
                    slow.append((round(took, 3), round(t0, 1)))
                    slow.sort(reverse=True)
                    del slow[5:]
            except (ClientError, BotoCoreError) as e:
                with self._lock:
                    self.errors.setdefault(phase, []).append(str(e)[:200])
            self._stop.wait(max(0.0, next_at - time.monotonic()))


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


# ---- the run ------------------------------------------------------------------------------


def _owed(c: NetCluster) -> dict[str, tuple[int, int]]:
    return {
        sid: (int(n), int(b))
        for sid, n, b in _sql(
            c, "SELECT store_id, count(*), coalesce(sum(size), 0) FROM repair_queue GROUP BY 1"
        )
    }


def _check_copies(c: NetCluster, keys: list[str], copies: int) -> list[str]:
    """Every object: ``copies`` copies on distinct nodes, each a file of the full length on
    its node's drive."""
    problems = []
    files: dict[str, dict[str, int]] = {}
    for name in c.names:
        root = c.root / "nodes" / name / "drive" / "blobs"
        files[name] = {p.name: p.stat().st_size for p in root.rglob("*") if p.is_file()}
    rows = dict(_sql(c, "SELECT key, segments::text FROM objects WHERE bucket = %s", BUCKET))
    for key in keys:
        if key not in rows:
            problems.append(f"{key}: not in the index")
            continue
        for seg in json.loads(rows[key]):
            nodes = [s.split("/")[0] for s in seg["st"]]
            if len(set(nodes)) != copies:
                problems.append(f"{key}: copies on {nodes}, want {copies} distinct nodes")
            for node in nodes:
                if files.get(node, {}).get(seg["id"]) != seg["size"]:
                    problems.append(f"{key}: no whole copy of {seg['id']} on {node}")
    return problems


def run_storm(env, sc: Scenario) -> dict:
    t_start = time.monotonic()
    marks: dict[str, float] = {}

    def mark(what: str) -> None:
        marks[what] = round(time.monotonic() - t_start, 1)

    c = _start(env, sc)
    mark("cluster started")
    up = [i for i in range(sc.nodes) if i not in sc.away]
    c.client(0).create_bucket(Bucket=BUCKET)
    for i in range(sc.nodes):
        for peer in c.names:
            if peer != c.names[i]:
                _eventually(
                    f"{c.names[i]} sees {peer} up",
                    lambda i=i, peer=peer: _peer_state(c, i, peer) == "up",
                    90,
                )
    _set_policy(c, sc.nodes, 2)  # one copy per node; acknowledged at 2
    # The policy reaches every node's workers within a few seconds: wait for a PUT that
    # lands a copy on every node.
    probe_writer = _writer(c, 0)

    def spread() -> bool:
        probe_writer.put_object(Bucket=BUCKET, Key="policy-probe", Body=b"p" * 70_000)
        rows = _sql(
            c, "SELECT segments::text FROM objects WHERE bucket=%s AND key='policy-probe'", BUCKET
        )
        return len(json.loads(rows[0][0])[0]["st"]) == sc.nodes

    _eventually("the one-copy-per-node policy in force", spread, 60, every=1)
    mark("policy in force")

    # 1. Fill every node to `before`.
    free, total = _disk(c, 0)
    used0 = total - free
    fill_keys = _write(
        c,
        list(range(sc.nodes)),
        "fill",
        max(1, int((sc.before * total - used0) / sc.fill_object)),
        sc.fill_object,
    )
    watch = Watch(c).start()
    mark("filled")

    if sc.how == "pause":
        leader = _eventually("a leader", lambda: _leader(c) is not None and (_leader(c),), 30)[0]
        away = [i for i in range(sc.nodes - 1, -1, -1) if i != leader][: len(sc.away)]
        sc = dataclasses.replace(sc, away=tuple(away))
        up = [i for i in range(sc.nodes) if i not in sc.away]

    # 2. Baseline of the foreground loop.
    probe = Probe(c, up, sc.probe_rate)
    probe.prepare()
    probe.start()
    time.sleep(sc.baseline_seconds)
    probe.phase = "outage"

    # 3. The away nodes go; writes go on through the others until about `target`.
    for i in sc.away:
        if sc.how == "pause":
            c.pause(i)
        else:
            c.kill9(i)
    for i in sc.away:
        _eventually(
            f"{c.names[i]} judged down",
            lambda i=i: _peer_state(c, up[0], c.names[i]) != "up",
            60,
        )
    free, total = _disk(c, up[0])
    owed_count = max(1, int((sc.target * total - (total - free)) / sc.owed_object))
    mark("away nodes down")
    owed_keys = _write(c, up, "owed", owed_count, sc.owed_object)
    mark("owed copies written")
    owed = _owed(c)
    away_stores = {sid for sid in owed if sid.split("/")[0] in {c.names[i] for i in sc.away}}
    owed_rows = sum(owed[s][0] for s in away_stores)
    owed_bytes = sum(owed[s][1] for s in away_stores)
    assert owed_rows >= owed_count * len(sc.away), owed

    junk = None
    if sc.squeeze:
        # While it is away, most of one node's room goes to something else: it can take
        # only about half of what it is owed above its repair reserve.
        squeezed = sc.away[-1]
        free, total = _disk(c, squeezed)
        mine = owed[f"{c.names[squeezed]}/d0"][1]
        junk_size = free - total * sc.reserve // 100 - mine // 2
        junk = c.root / "nodes" / c.names[squeezed] / "junk"
        with open(junk, "wb") as f:
            for _ in range(junk_size // MIB):
                f.write(b"\0" * MIB)
            f.write(b"\0" * (junk_size % MIB))

    # 4. Both (all) back at once.
    t_back = time.monotonic()
    for i in sc.away:
        if sc.how == "pause":
            c.resume(i)
        else:
            c.spawn(i)
    for i in sc.away:
        c.wait_healthy(i, 120)
    probe.phase = "recovery"
    t_healthy = time.monotonic()
    mark("back and healthy")

    def remaining() -> int:
        now = _owed(c)
        return sum(now.get(s, (0, 0))[0] for s in away_stores)

    squeeze_report = {}
    if junk is not None:
        name = c.names[sc.away[-1]]
        store = f"{name}/d0"
        _eventually(
            f"repair stopped at {name}'s reserve",
            lambda: (
                any(k.endswith("target-full") for k in watch.failures)
                and _owed(c).get(store, (0, 0))[0] > 0
            ),
            sc.recovery_deadline,
            every=1,
        )
        t_full = time.monotonic()
        time.sleep(2 * sc.backoff_cap)  # backing off, not retrying in a loop
        free, total = _disk(c, sc.away[-1])
        squeeze_report = {
            "node": name,
            "owed_copies_left_when_full": _owed(c).get(store, (0, 0))[0],
            "free_share_when_full": round(free / total, 4),
            "seconds_waited_full": round(time.monotonic() - t_full, 1),
        }
        junk.unlink()
        squeeze_report["freed_at"] = round(time.monotonic() - t_back, 1)

    _eventually("every owed copy made", lambda: remaining() == 0, sc.recovery_deadline, every=1)
    t_done = time.monotonic()
    mark("repaired")
    # Keep the loop going a little past the end so the recovery phase has its samples.
    time.sleep(max(0.0, 5 - (t_done - t_healthy)))
    probe.stop()
    watch.stop()

    # ---- the figures ----
    per = watch.per_second()
    limit = watch.limit or sc.repair_rate
    busiest_aligned = max((v[0] for v in per.values()), default=0)
    busiest_sliding = max(watch.busiest.values(), default=0)
    recorded_bytes = sum(v[0] for v in per.values())
    attempts_minute = _window_max(per, 1, 60)
    retries_minute = _window_max(per, 2, 60)
    targets = sc.nodes  # every drive may be a target
    retry_bound = targets * (max_attempts(sc.backoff_base, sc.backoff_cap, 60) + sc.concurrency)
    attempts_bound = min(int(60 * sc.ops) + sc.concurrency, owed_rows + retry_bound)
    base, rec = probe.latencies.get("baseline", []), probe.latencies.get("recovery", [])
    fills = {}
    for i, name in enumerate(c.names):
        free, total = _disk(c, i)
        fills[name] = round(1 - free / total, 4)
    report = {
        "scenario": sc.name,
        "nodes": sc.nodes,
        "away": [c.names[i] for i in sc.away],
        "drive_bytes": total,
        "objects": len(fill_keys) + len(owed_keys),
        "owed_copies": owed_rows,
        "owed_bytes": owed_bytes,
        "fill_end": fills,
        "fill_end_mean": round(sum(fills.values()) / len(fills), 4),
        "repair_limit_bytes_per_second": limit,
        "busiest_second_bytes": busiest_aligned,
        "busiest_sliding_window_bytes": busiest_sliding,
        "repair_bytes_recorded": recorded_bytes,
        "attempts_busiest_minute": attempts_minute,
        "retries_busiest_minute": retries_minute,
        "attempts_bound_per_minute": attempts_bound,
        "retries_bound_per_minute": retry_bound,
        "repair_failures": watch.failures,
        "min_free_share": {k: round(v, 4) for k, v in watch.min_free_share.items()},
        "max_used_share": {k: round(v, 4) for k, v in watch.max_used_share.items()},
        "reserve_share": sc.reserve / 100,
        "baseline_p99_s": round(p99(base), 4) if len(base) > 2 else None,
        "recovery_p99_s": round(p99(rec), 4) if len(rec) > 2 else None,
        "baseline_requests": len(base),
        "recovery_requests": len(rec),
        "foreground_errors": {k: len(v) for k, v in probe.errors.items()},
        "slowest_requests": {
            phase: [(took, round(at - t_start, 1)) for took, at in slow]
            for phase, slow in probe.slowest.items()
        },
        "seconds_to_healthy": round(t_healthy - t_back, 1),
        "seconds_to_repaired": round(t_done - t_back, 1),
        "seconds_total": round(time.monotonic() - t_start, 1),
        "squeeze": squeeze_report,
        "timeline": marks,
        "load_average": os.getloadavg(),
        "per_second": {str(s): v for s, v in sorted(per.items()) if v[0] or v[1]},
    }
    copies_problems = _check_copies(c, fill_keys + owed_keys, sc.nodes)
    report["copies_problems"] = len(copies_problems)
    text = json.dumps(report, indent=1)
    (c.root / "storm-report.json").write_text(text)
    if os.environ.get("HOLDFAST_STORM_REPORT"):
        Path(os.environ["HOLDFAST_STORM_REPORT"]).write_text(text)
    summary = {k: v for k, v in report.items() if k != "per_second"}
    print(f"\nstorm {sc.name}:")
    for k, v in summary.items():
        print(f"  {k}: {json.dumps(v)}")

    # ---- the five properties ----
    # 1. The repair rate, in every one-second window.
    assert busiest_sliding <= limit, f"a 1-s window moved {busiest_sliding} > {limit}"
    assert busiest_aligned <= limit, f"a second moved {busiest_aligned} > {limit}"
    assert recorded_bytes >= owed_bytes, "the record missed bytes repair moved"
    # 2. Placement attempts per minute.
    assert retries_minute <= retry_bound, (retries_minute, retry_bound)
    assert attempts_minute <= attempts_bound, (attempts_minute, attempts_bound)
    # 3. No drive past its reserve.
    for name, share in watch.min_free_share.items():
        assert share >= sc.reserve / 100, f"{name} filled past its reserve: {share:.4f} free"
    # 4. Foreground p99 within 3x its baseline.
    assert len(base) >= 10 and len(rec) >= 10, (len(base), len(rec))
    assert not probe.errors.get("baseline") and not probe.errors.get("recovery"), probe.errors
    assert p99(rec) <= 3 * p99(base), (p99(rec), p99(base))
    # 5. Every object has its policy's copies.
    assert not copies_problems, copies_problems[:10]
    assert 0.75 <= report["fill_end_mean"] <= 0.95, report["fill_end_mean"]
    return report


def test_storm_quick(storm_env) -> None:
    run_storm(storm_env, QUICK)


@pytest.mark.slow
def test_storm_full(storm_env) -> None:
    run_storm(storm_env, FULL)
