"""An external S3 service as a store (issue #14, docs/stores.md), end to end: a real
`holdfast serve` with one local drive and a back-end registered with `holdfast store add`,
policy "2 copies on 2 kinds" (``--copies 2 --spread kinds=2``), driven with boto3.

The back-end is a real SeaweedFS (one per session: tests/conftest.py) and, for the landing and corruption cases,
a second Holdfast. Bad input to ``store add`` is refused with one line and changes nothing.
"""

from __future__ import annotations

import http.server
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.backends import WEED_AK, WEED_SK, SeaweedFS, flip_object_byte, raw_client
from tests.conftest import ROOT_AK, ROOT_SK, Server, free_port
from tests.e2e.ops_helpers import api, metric_value, metrics_text, status

SIZE = 3 * 1024 * 1024 + 12345  # several blocks, well above the inline limit


def holdfast_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOLDFAST_ACCESS_KEY": ROOT_AK, "HOLDFAST_SECRET_KEY": ROOT_SK}
    proc = subprocess.run(
        [sys.executable, "-m", "holdfast.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"holdfast {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
    return proc


@pytest.fixture
def weed(seaweedfs) -> SeaweedFS:
    """The session's SeaweedFS (tests/conftest.py); each test uses a bucket of its own."""
    return seaweedfs


class Node:
    """The Holdfast under test and its back-end."""

    def __init__(self, tmp: Path, endpoint: str, ak: str, sk: str, raw) -> None:
        self.drive = tmp / "drive0"
        self.endpoint, self.ak, self.sk, self.raw = endpoint, ak, sk, raw
        self.bucket = f"hf-{uuid.uuid4().hex[:10]}"
        self.prefix = "holdfast/"
        raw.create_bucket(Bucket=self.bucket)
        self.server: Server | None = None

    def add_store(self, name: str = "ext", **over: str) -> subprocess.CompletedProcess:
        opts = {
            "--s3": self.endpoint,
            "--bucket": self.bucket,
            "--access-key": self.ak,
            "--secret-key": self.sk,
            "--prefix": self.prefix,
            "--quota": "1G",
            **over,
        }
        argv = ["store", "add", name, "--data", str(self.drive)]
        for k, v in opts.items():
            argv += [k, v]
        return holdfast_cli(*argv, check=False)

    def start(self, *extra: str) -> Server:
        self.server = Server(
            data_dirs=[self.drive],
            port=free_port(),
            extra_args=[
                "--copies",
                "2",
                "--spread",
                "kinds=2",
                "--drive-probe-cap",
                "1",
                "--repair-backoff-base",
                "0.2",
                "--repair-backoff-cap",
                "1",
                "--scrub-interval",
                "1",
                *extra,
            ],
        )
        return self.server.start()

    def where(self, bucket: str, key: str) -> dict:
        out = holdfast_cli(
            "object", "where", bucket, key, "--json", "--data", str(self.drive)
        ).stdout
        return json.loads(out)

    def local_blob(self, blob_id: str) -> Path:
        (path,) = (self.drive / "drive" / "blobs").glob(f"*/*/{blob_id}")
        return path

    def backend_key(self, blob_id: str) -> str:
        return f"{self.prefix}blobs/{blob_id[:8]}/{blob_id}"


def wait_for(what, timeout: float = 30.0, step: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(step)


def _node(request, tmp_path: Path, kind: str) -> Node:
    if kind == "seaweedfs":
        w = request.getfixturevalue("weed")
        return Node(tmp_path, w.endpoint, WEED_AK, WEED_SK, w.client())
    b = request.getfixturevalue("holdfast_backend")
    return Node(tmp_path, b.endpoint, ROOT_AK, ROOT_SK, raw_client(b.endpoint, ROOT_AK, ROOT_SK))


@pytest.fixture(
    params=[
        "seaweedfs",
        # The store contract suite runs the s3 kind against a second Holdfast by default;
        # end to end the same way it costs a third server start: slow only.
        pytest.param("holdfast", marks=pytest.mark.slow),
    ]
)
def node(request, tmp_path):
    n = _node(request, tmp_path, request.param)
    assert n.add_store().returncode == 0
    n.start()
    yield n
    if n.server is not None:
        n.server.stop()


def test_copies_land_on_both_kinds_and_a_bad_copy_is_read_around_and_repaired(node: Node):
    s3 = node.server.client()
    s3.create_bucket(Bucket="data")
    data = secrets.token_bytes(SIZE)
    s3.put_object(Bucket="data", Key="obj", Body=data)
    found = node.where("data", "obj")
    (seg,) = found["segments"]
    assert {c["kind"] for c in seg["copies"]} == {"local", "s3"}
    assert all(c["state"] == "ok" for c in seg["copies"]), seg
    assert found["meets_policy"] and found["policy"]["spread"] == "kinds=2"
    blob = seg["blob_id"]
    key = node.backend_key(blob)
    assert node.raw.get_object(Bucket=node.bucket, Key=key)["Body"].read() == data

    # The local copy rots: the GET is served from the back-end, whole and right.
    path = node.local_blob(blob)
    raw = bytearray(path.read_bytes())
    raw[1024 * 1024 + 5] ^= 1
    path.write_bytes(bytes(raw))
    assert s3.get_object(Bucket="data", Key="obj")["Body"].read() == data

    # The back-end's copy is overwritten through its own S3 API: the GET is right anyway (the
    # local copy serves it), and the scrubber, reading every copy on every store, finds the
    # bad one, which repair re-writes (once the local one is back in shape too).
    wait_for(lambda: node.local_blob(blob).read_bytes() == data, timeout=30)
    flip_object_byte(node.raw, node.bucket, key, 2 * 1024 * 1024 + 7)
    assert s3.get_object(Bucket="data", Key="obj")["Body"].read() == data
    wait_for(lambda: node.raw.get_object(Bucket=node.bucket, Key=key)["Body"].read() == data)
    quarantined = node.raw.list_objects_v2(Bucket=node.bucket, Prefix=node.prefix + "quarantine/")
    assert [o["Key"].rsplit("/", 1)[1].split(".")[0] for o in quarantined["Contents"]] == [blob]
    again = node.where("data", "obj")
    assert again["meets_policy"], again

    # The same through the admin API: where, push, and the stores with their health.
    r = api(node.server, "GET", "/_holdfast/api/objects/where?bucket=data&key=obj")
    assert r.status_code == 200 and r.json()["meets_policy"], r.text
    assert {c["kind"] for c in r.json()["segments"][0]["copies"]} == {"local", "s3"}
    r = api(node.server, "POST", "/_holdfast/api/objects/push", {"bucket": "data", "key": "obj"})
    assert r.status_code == 202 and r.json()["copies"] == 2, r.text
    r = api(node.server, "GET", "/_holdfast/api/stores")
    ext = next(s for s in r.json()["stores"] if s["kind"] == "s3")
    assert ext["state"] == "up" and node.sk not in r.text
    assert (
        api(node.server, "GET", "/_holdfast/api/objects/where?bucket=data&key=nope").status_code
        == 404
    )
    # ... and the status page and metrics.
    assert any(d.get("kind") == "s3" for d in status(node.server)["drives"])
    text = metrics_text(node.server)
    assert metric_value(text, "holdfast_drive_up", drive="ext", path=ext["path"]) == 1
    assert (
        metric_value(
            text, "holdfast_backend_requests_total", store="@s3/ext", op="put", outcome="ok"
        )
        >= 1
    )


@pytest.mark.slow  # two SeaweedFS starts and a repair catching up: about 90 s
def test_back_end_down_writes_continue_at_the_quorum_and_repair_catches_up(
    weed: SeaweedFS, tmp_path: Path
):
    n = Node(tmp_path, weed.endpoint, WEED_AK, WEED_SK, weed.client())
    assert n.add_store().returncode == 0
    n.start()
    try:
        s3 = n.server.client()
        s3.create_bucket(Bucket="data")
        weed.stop()
        down_at = time.monotonic()
        sent_before = metric_value(
            metrics_text(n.server), "holdfast_backend_requests_total", store="@s3/ext"
        )
        bodies = {f"k{i}": secrets.token_bytes(200_000 + i) for i in range(4)}
        for k, body in bodies.items():
            s3.put_object(Bucket="data", Key=k, Body=body)  # acknowledged at min_copies 1
        for k, body in bodies.items():
            assert s3.get_object(Bucket="data", Key=k)["Body"].read() == body
        state = n.where("data", "k0")
        assert not state["meets_policy"]
        (seg,) = state["segments"]
        s3_copy = next(c for c in seg["copies"] if c["kind"] == "s3")
        assert s3_copy["repair_queued"], seg
        time.sleep(10)  # a while down, for the retry bound below to mean something
        # No storm while it is down: the breaker's probes (backing off to --drive-probe-cap)
        # and the first writes' bounded retries, not a retry per queued copy per tick.
        sent = (
            metric_value(metrics_text(n.server), "holdfast_backend_requests_total", store="@s3/ext")
            - sent_before
        )
        assert sent <= 20 + 6 * (time.monotonic() - down_at), sent
        weed.start()
        for k, body in bodies.items():
            blob = n.where("data", k)["segments"][0]["blob_id"]
            key = n.backend_key(blob)

            def landed(key=key, body=body) -> bool:
                try:
                    return n.raw.get_object(Bucket=n.bucket, Key=key)["Body"].read() == body
                except Exception:  # noqa: BLE001 - not there yet
                    return False

            wait_for(landed, timeout=60)
        assert n.where("data", "k3")["meets_policy"]
    finally:
        if weed.proc is None:
            weed.start()
        n.server.stop()


# -- bad input to `holdfast store add` ------------------------------------------------------------


@pytest.fixture(scope="module")
def not_s3():
    """A plain web server: answers HTTP, but not as S3."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_store_add_refuses_bad_input_and_changes_nothing(weed: SeaweedFS, not_s3, tmp_path):
    n = Node(tmp_path, weed.endpoint, WEED_AK, WEED_SK, weed.client())
    cases = {
        "wrong URL": ({"--s3": f"http://127.0.0.1:{free_port()}"}, "cannot connect"),
        "bad credentials": ({"--secret-key": "wrong-secret"}, "credentials were refused"),
        "missing bucket": ({"--bucket": "no-such-bucket-here"}, "no such bucket"),
        "not S3": ({"--s3": not_s3}, "does not answer as an S3 service"),
        "not a URL": ({"--s3": "ftp://x"}, "not an http(s) URL"),
        "no quota": ({"--quota": "0"}, "--quota"),
    }
    # Each refusal is its own process: run them side by side (each ~2 s of start-up).
    with ThreadPoolExecutor(len(cases)) as pool:
        running = {what: pool.submit(n.add_store, **over) for what, (over, _) in cases.items()}
    for what, (_, message) in cases.items():
        proc = running[what].result()
        assert proc.returncode == 2, (what, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (what, proc.stderr)
        assert n.sk not in proc.stderr and n.sk not in proc.stdout
    listed = json.loads(holdfast_cli("store", "list", "--json", "--data", str(n.drive)).stdout)
    assert [r["kind"] for r in listed] == ["local"], "nothing was registered"
    assert "Contents" not in n.raw.list_objects_v2(Bucket=n.bucket), "nothing was written"
    # The good one goes in; its secret is shown nowhere and stored sealed.
    ok = n.add_store()
    assert ok.returncode == 0, ok.stderr
    assert n.sk not in ok.stdout + ok.stderr
    listed = holdfast_cli("store", "list", "--json", "--data", str(n.drive)).stdout
    assert n.sk not in listed and n.ak not in listed and '"s3"' in listed
    db = (n.drive / "index" / "holdfast.db").read_bytes()
    assert n.sk.encode() not in db
    again = n.add_store()
    assert again.returncode == 2 and "exists" in again.stderr
    drive_name = n.add_store("d1")
    assert drive_name.returncode == 2 and "names its drives" in drive_name.stderr


def test_store_remove_shows_its_blast_radius_and_an_unmeetable_policy_is_refused(
    weed: SeaweedFS, tmp_path: Path
):
    n = Node(tmp_path, weed.endpoint, WEED_AK, WEED_SK, weed.client())
    assert n.add_store().returncode == 0
    n.start()
    try:
        s3 = n.server.client()
        for b in ("both", "only-s3"):
            s3.create_bucket(Bucket=b)
        drive = str(n.drive)
        holdfast_cli(
            "bucket", "policy", "only-s3", "--copies", "1", "--spread", "s3>=1", "--data", drive
        )
        time.sleep(2.5)  # servers reload bucket policies every 2 s
        s3.put_object(Bucket="both", Key="a", Body=secrets.token_bytes(100_000))
        s3.put_object(Bucket="only-s3", Key="b", Body=secrets.token_bytes(150_000))
        assert [c["kind"] for c in n.where("only-s3", "b")["segments"][0]["copies"]] == ["s3"]
    finally:
        n.server.stop()
    proc = holdfast_cli("store", "remove", "ext", "--json", "--data", drive, check=False)
    assert proc.returncode == 2 and "--force" in proc.stderr, proc.stderr
    radius = json.loads(proc.stdout)
    assert radius["objects_below_policy"] == 1 and radius["objects_losing_every_copy"] == 1
    assert radius["bytes_to_move"] == 250_000
    listed = json.loads(holdfast_cli("store", "list", "--json", "--data", drive).stdout)
    assert [r["kind"] for r in listed] == ["local", "s3"], "refused: nothing changed"
    holdfast_cli("store", "remove", "ext", "--force", "--data", drive)
    listed = json.loads(holdfast_cli("store", "list", "--json", "--data", drive).stdout)
    assert [r["kind"] for r in listed] == ["local"]

    # With the back-end gone, a policy wanting a copy on s3 cannot be met: refused, with the
    # reason; registered again, a policy of 2 copies on 2 kinds is accepted and shown.
    proc = holdfast_cli(
        "bucket",
        "policy",
        "both",
        "--copies",
        "1",
        "--spread",
        "s3>=1",
        "--data",
        drive,
        check=False,
    )
    assert proc.returncode == 2 and "0 copies on s3 stores" in proc.stderr, proc.stderr
    assert n.add_store("ext2").returncode == 0
    holdfast_cli(
        "bucket", "policy", "both", "--copies", "2", "--spread", "kinds=2", "--data", drive
    )
    shown = json.loads(holdfast_cli("bucket", "policy", "both", "--json", "--data", drive).stdout)
    assert shown["spread"] == "kinds=2" and shown["copies"] == 2


def test_a_store_added_or_removed_while_serving_is_used_without_a_restart(
    weed: SeaweedFS, tmp_path: Path
):
    """``store add`` on a running node: every serving process takes the store in within a
    couple of seconds (the drive monitor), the default policy grows to 2 copies, and new
    objects land on it; ``store remove`` lets it go the same way. No restart either time."""
    n = Node(tmp_path, weed.endpoint, WEED_AK, WEED_SK, weed.client())
    n.server = Server(data_dirs=[n.drive], port=free_port(), extra_args=[])
    n.server.start()
    try:
        s3 = n.server.client()
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="before", Body=secrets.token_bytes(100_000))
        assert [c["kind"] for c in n.where("data", "before")["segments"][0]["copies"]] == ["local"]
        assert n.add_store().returncode == 0

        def kinds_of_new_object() -> set[str]:
            key = f"after-{uuid.uuid4().hex[:6]}"
            s3.put_object(Bucket="data", Key=key, Body=secrets.token_bytes(100_000))
            return {c["kind"] for c in n.where("data", key)["segments"][0]["copies"]}

        # Both serving processes (each PUT may land on either) take it in.
        wait_for(lambda: all(kinds_of_new_object() == {"local", "s3"} for _ in range(6)), 20)
        r = api(n.server, "GET", "/_holdfast/api/stores")
        assert any(s["kind"] == "s3" and s["state"] == "up" for s in r.json()["stores"]), r.text
        # The object written before falls short of the policy now (2 copies): push gives it
        # the copy it is owed on the new store, through the repair queue.
        assert not n.where("data", "before")["meets_policy"]
        out = holdfast_cli("object", "push", "data", "before", "--json", "--data", str(n.drive))
        assert json.loads(out.stdout)["added"] == 1, out.stdout
        wait_for(lambda: n.where("data", "before")["meets_policy"], 60)
        copies = n.where("data", "before")["segments"][0]["copies"]
        assert {(c["kind"], c["state"]) for c in copies} == {("local", "ok"), ("s3", "ok")}

        holdfast_cli("store", "remove", "ext", "--force", "--data", str(n.drive))
        wait_for(lambda: all(kinds_of_new_object() == {"local"} for _ in range(6)), 20)
        r = api(n.server, "GET", "/_holdfast/api/stores")
        assert [s["kind"] for s in r.json()["stores"]] == ["local"], r.text
    finally:
        n.server.stop()


class SlowProxy:
    """A TCP proxy on loopback that holds each chunk coming back from the back-end for
    ``delay`` seconds: a back-end that answers, but at a crawl."""

    def __init__(self, upstream: str) -> None:
        import socket
        from urllib.parse import urlsplit

        u = urlsplit(upstream)
        self.target = (u.hostname, u.port)
        self.delay = 0.0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(self.target)
            except OSError:  # the back-end is not there: so the client sees
                with_suppressed_close(client)
                continue
            threading.Thread(target=self._pump, args=(client, up, 0.0), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, None), daemon=True).start()

    def _pump(self, src, dst, fixed: float | None) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                time.sleep(self.delay if fixed is None else fixed)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with_suppressed_close(s)

    def close(self) -> None:
        self.closed = True
        self.sock.close()


def with_suppressed_close(sock) -> None:
    try:
        sock.close()
    except OSError:
        pass


def test_a_slow_back_end_trips_its_breaker_and_writes_go_on_without_it(
    weed: SeaweedFS, tmp_path: Path
):
    """A back-end that answers every request, but slowly (past --backend-slow), is taken out
    like a failing drive: its breaker opens after a few slow answers, writes are acknowledged
    at min_copies with its copies queued, and once it answers in time again the probe brings
    it back and repair makes the missing copies."""
    proxy = SlowProxy(weed.endpoint)
    n = Node(tmp_path, proxy.endpoint, WEED_AK, WEED_SK, weed.client())
    assert n.add_store().returncode == 0
    n.start("--backend-slow", "1.0")
    try:
        s3 = n.server.client()
        s3.create_bucket(Bucket="data")
        proxy.delay = 2.0  # twice the limit: slow whatever the load; in time again at 0
        written = {}

        def store_state() -> dict:
            r = api(n.server, "GET", "/_holdfast/api/stores")
            return next(s for s in r.json()["stores"] if s["kind"] == "s3")

        def tripped() -> bool:
            key = f"k{len(written)}"
            written[key] = secrets.token_bytes(50_000 + len(written))
            s3.put_object(Bucket="data", Key=key, Body=written[key])
            seen.append(store_state())  # from whichever serving process answered
            return seen[-1]["state"] == "down"

        seen: list[dict] = []
        wait_for(tripped, timeout=90, step=0.1)
        assert "slow" in seen[-1]["reason"], seen[-1]
        text = metrics_text(n.server)
        assert (
            metric_value(text, "holdfast_backend_slow_requests_total", store="@s3/ext", op="put")
            >= 1
        )

        # Down: a new object is acknowledged with its local copy, the back-end's queued.
        # Each serving process has its own breaker, and the PUT may reach one that has not
        # tripped yet (its slow answers then trip it): written until one is deferred.
        def deferred() -> bool:
            s3.put_object(Bucket="data", Key="while-down", Body=b"x" * 70_000)
            (seg,) = n.where("data", "while-down")["segments"]
            return next(c for c in seg["copies"] if c["kind"] == "s3")["repair_queued"]

        wait_for(deferred, timeout=90, step=0.1)
        proxy.delay = 0.0
        wait_for(lambda: store_state()["state"] == "up", timeout=90)
        wait_for(lambda: n.where("data", "while-down")["meets_policy"], timeout=90)
        for key, body in written.items():
            assert s3.get_object(Bucket="data", Key=key)["Body"].read() == body
    finally:
        n.server.stop()
        proxy.close()
