"""The node's index committer under faults: kill -9 it in the middle of a stream of PUTs.

No acknowledged PUT may be lost or changed (DESIGN.md invariant 1), writes must keep being
accepted while it is gone (workers commit locally), and the supervisor must bring it back.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import threading
import time

import pytest
from botocore.exceptions import ClientError

from holdfast.index.committer import COMMITTER_PROCESS_NAME, encode_frame, socket_name
from holdfast.index.records import ObjectRecord, Segment
from holdfast.server import WORKER_NAME
from tests.conftest import group_pids, start_server
from tests.e2e.ops_helpers import metric_value, metrics_text
from tests.faults.support import wait_for


def _processes(pgid: int) -> list[tuple[int, str, bytes]]:
    """(pid, comm, cmdline) of each process of the server's group still running."""
    found = []
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                found.append((pid, comm, f.read()))
        except FileNotFoundError:
            continue
    return found


def committer_pids(pgid: int) -> list[int]:
    return [pid for pid, comm, _ in _processes(pgid) if comm == COMMITTER_PROCESS_NAME]


def worker_pids(pgid: int) -> set[int]:
    return {pid for pid, comm, _ in _processes(pgid) if comm == WORKER_NAME}


def committed(server, path: str) -> float:
    text = metrics_text(server)
    return metric_value(text, "holdfast_index_writes_total", path=path) or 0.0


def test_killing_the_committer_loses_no_acknowledged_put(tmp_path) -> None:
    server = start_server(tmp_path, workers=2)
    try:
        pgid = os.getpgid(server.proc.pid)
        wait_for("the committer", lambda: len(committer_pids(pgid)) == 1, 10)
        s3 = server.client(retries={"max_attempts": 1})
        s3.create_bucket(Bucket="committer-test")
        acknowledged: dict[str, str] = {}
        failures: list[str] = []
        stop = threading.Event()

        def writer(n: int) -> None:
            client = server.client(retries={"max_attempts": 1})
            i = 0
            while not stop.is_set() and i < 2000:
                key, body = f"w{n}/{i}", os.urandom(1000 + i)
                i += 1
                try:
                    client.put_object(Bucket="committer-test", Key=key, Body=body)
                except Exception as e:  # a write in flight when it died: 500, never a lie
                    failures.append(f"{key}: {e}")
                    continue
                acknowledged[key] = hashlib.md5(body).hexdigest()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        wait_for("writes through the committer", lambda: committed(server, "committer") >= 50)
        (victim,) = committer_pids(pgid)
        os.kill(victim, signal.SIGKILL)
        before = len(acknowledged)
        wait_for("writes to go on without it", lambda: len(acknowledged) >= before + 50)
        wait_for("a new committer", lambda: [p for p in committer_pids(pgid) if p != victim])
        wait_for("a worker to commit locally", lambda: committed(server, "local") >= 1)
        resumed = committed(server, "committer")
        wait_for(
            "writes through the new committer", lambda: committed(server, "committer") > resumed
        )
        stop.set()
        for t in threads:
            t.join(30)

        assert len(failures) <= 8, failures  # at most the writes in flight at the kill
        for key, md5 in acknowledged.items():
            body = s3.get_object(Bucket="committer-test", Key=key)["Body"].read()
            assert hashlib.md5(body).hexdigest() == md5, key
        assert "Traceback" not in server.log()
    finally:
        server.stop()


def test_a_killed_worker_is_replaced_and_the_node_keeps_serving(tmp_path) -> None:
    server = start_server(tmp_path, workers=2)
    try:
        pgid = os.getpgid(server.proc.pid)
        workers = wait_for("two workers", lambda: (w := worker_pids(pgid)) and len(w) == 2 and w)
        os.kill(min(workers), signal.SIGKILL)
        new = wait_for(
            "a replacement worker",
            lambda: (w := worker_pids(pgid)) and len(w) == 2 and w != workers and w,
            15,
        )
        assert min(workers) not in new
        s3 = server.client()
        s3.create_bucket(Bucket="after-kill")
        for i in range(20):  # new connections: both workers, old and new, answer
            server.client().put_object(Bucket="after-kill", Key=f"k{i}", Body=b"x" * i)
        assert len(s3.list_objects_v2(Bucket="after-kill")["Contents"]) == 20
        assert "exited" in server.log()  # the supervisor said what happened
    finally:
        server.stop()


def _committer_socket(server) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(socket_name(server.data_dirs[0] / "index" / "holdfast.db"))
    return sock


def _put_request(key: str) -> bytes:
    seg = Segment("inline", 1, 1 << 20, b"\0\0\0\0", ())
    record = ObjectRecord("committer-test", key, 1, '"e"', time.time(), [seg], inline=b"x")
    return encode_frame((1, "put_object", (record, False, None, "root")))


def test_a_damaged_message_is_counted_refused_and_never_applied(tmp_path) -> None:
    """Invariant 4 on a running node: the committer checks every frame it is sent."""
    server = start_server(tmp_path, workers=2)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="committer-test")
        pgid = os.getpgid(server.proc.pid)
        wait_for("the committer", lambda: len(committer_pids(pgid)) == 1, 10)
        frame = bytearray(_put_request("damaged"))
        frame[5] ^= 0x01  # the CRC field: the payload is intact, so only the check refuses it
        with _committer_socket(server) as sock:
            sock.sendall(frame)
            assert sock.recv(65536) == b""  # no answer: the connection is dropped

        def rejected() -> float:
            text = metrics_text(server)
            return metric_value(
                text, "holdfast_committer_messages_rejected_total", side="committer"
            )

        wait_for("the rejection to be counted", lambda: rejected() == 1, 10)
        assert s3.list_objects_v2(Bucket="committer-test").get("KeyCount") == 0
        s3.put_object(Bucket="committer-test", Key="after", Body=b"ok")  # still serving
        assert committed(server, "committer") >= 1
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_another_users_process_is_refused(tmp_path) -> None:
    server = start_server(tmp_path, workers=2)
    try:
        server.client().create_bucket(Bucket="committer-test")
        pgid = os.getpgid(server.proc.pid)
        wait_for("the committer", lambda: len(committer_pids(pgid)) == 1, 10)
        name = socket_name(server.data_dirs[0] / "index" / "holdfast.db")
        frame = _put_request("intruder")
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # as nobody: connect, send a well-formed write, report what came back
            code = 1
            try:
                os.setuid(65534)
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(5)
                    sock.connect(name)
                    try:
                        sock.sendall(frame)
                        got = len(sock.recv(65536))
                    except (ConnectionResetError, BrokenPipeError):
                        got = 0  # closed before reading what was sent
                    os.write(write_end, str(got).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        _, status = os.waitpid(child, 0)
        answer = os.read(read_end, 64)
        os.close(read_end)
        assert os.waitstatus_to_exitcode(status) == 0
        assert answer == b"0"  # hung up on, no answer
        with pytest.raises(ClientError):
            server.client().head_object(Bucket="committer-test", Key="intruder")
        assert "refused a connection from another user" in server.log()
    finally:
        server.stop()


def test_a_stopped_committer_holds_puts_only_until_the_answer_timeout(tmp_path) -> None:
    """SIGSTOP: the committer still accepts connections but answers nothing. The PUT sent to
    it gets a 500 once the workers give up on it (its outcome is unknown: it was handed over);
    the writes after it are committed locally at once; nothing acknowledged is lost."""
    server = start_server(tmp_path, workers=2, env={"HOLDFAST_INDEX_COMMITTER_TIMEOUT": "1.5"})
    stopped: list[int] = []
    try:
        pgid = os.getpgid(server.proc.pid)
        wait_for("the committer", lambda: len(committer_pids(pgid)) == 1, 10)
        # max_attempts counts retries in botocore: 0 shows the 500 instead of retrying it
        s3 = server.client(retries={"max_attempts": 0}, read_timeout=30)
        s3.create_bucket(Bucket="wedged")
        for i in range(20):  # both workers connected to the committer
            s3.put_object(Bucket="wedged", Key=f"before/{i}", Body=b"x" * 100)
        wait_for("writes through the committer", lambda: committed(server, "committer") >= 20, 10)
        (pid,) = committer_pids(pgid)
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)

        started = time.monotonic()
        outcomes = []
        for i in range(6):  # the first one or two reach the stopped committer
            try:
                s3.put_object(Bucket="wedged", Key=f"during/{i}", Body=b"y" * 100)
                outcomes.append("ok")
            except ClientError as e:
                assert e.response["Error"]["Code"] == "InternalError", e.response
                outcomes.append("500")
        elapsed = time.monotonic() - started
        assert "500" in outcomes, "a write held by the stopped committer must not succeed"
        assert outcomes[-3:] == ["ok"] * 3, outcomes  # then committed locally
        assert elapsed < 15, f"PUTs were held {elapsed:.1f} s"
        assert committed(server, "local") >= 3
        for i in range(20):
            assert s3.get_object(Bucket="wedged", Key=f"before/{i}")["Body"].read() == b"x" * 100
        for i, outcome in enumerate(outcomes):
            if outcome == "ok":
                body = s3.get_object(Bucket="wedged", Key=f"during/{i}")["Body"].read()
                assert body == b"y" * 100
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        server.stop()
