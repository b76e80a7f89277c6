"""The node's index committer (holdfast/index/committer.py): its frames carry a checksum and
are refused whole when it fails, only known classes cross the socket, and a real committer
on a real index group-commits what workers send and never applies a damaged request."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from holdfast.index.committer import (
    CommitterClient,
    CommitterServer,
    CommitterUnavailable,
    CorruptMessage,
    OutcomeUnknown,
    RemoteError,
    _portable,
    encode_frame,
    read_frames,
)
from holdfast.index.records import BucketRecord, ObjectRecord, Segment
from holdfast.index.sqlite import ConditionFailed, Forbidden, NotFound, SqliteIndex


def _record(key: str, body: bytes = b"x" * 100) -> ObjectRecord:
    seg = Segment("inline", len(body), 1 << 20, b"\0\0\0\0", ())
    return ObjectRecord("b", key, len(body), '"e"', time.time(), [seg], inline=body)


def test_frames_round_trip_whole_and_split_anywhere() -> None:
    messages = [(1, "put_object", (_record("a"), False, None, "root")), (2, True, None)]
    stream = b"".join(encode_frame(m) for m in messages)
    for cut in range(0, len(stream), 97):  # arriving in two pieces, split at any byte
        buf = bytearray(stream[:cut])
        got = list(read_frames(buf))
        buf += stream[cut:]
        got += list(read_frames(buf))
        assert got == messages and not buf


@pytest.mark.parametrize("where", [8, 40, -1])
def test_a_flipped_bit_is_refused_never_decoded(where: int) -> None:
    frame = bytearray(encode_frame((1, "delete_object", ("b", "k"))))
    frame[where] ^= 0x04
    with pytest.raises(CorruptMessage, match="checksum"):
        list(read_frames(frame))


def test_an_absurd_length_is_refused() -> None:
    frame = bytearray(encode_frame((1, True, None)))
    frame[0] = 0xFF
    with pytest.raises(CorruptMessage, match="frame of"):
        list(read_frames(frame))


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_only_known_classes_are_built() -> None:
    with pytest.raises(CorruptMessage, match="may not cross"):
        list(read_frames(bytearray(encode_frame((1, "put_object", (_Evil(),))))))


def test_errors_cross_with_their_details() -> None:
    for missing in (True, False):
        (back,) = list(read_frames(bytearray(encode_frame(ConditionFailed(missing)))))
        assert isinstance(back, ConditionFailed) and back.missing is missing
    (full,) = list(read_frames(bytearray(encode_frame(sqlite3.OperationalError("disk is full")))))
    assert isinstance(full, sqlite3.OperationalError) and "full" in str(full)
    assert isinstance(_portable(KeyError("x")), RemoteError)
    assert isinstance(_portable(NotFound("b")), NotFound)


@pytest.fixture
def committer(tmp_path: Path):
    """A real committer on a real index, serving on a test-only socket name."""
    index = SqliteIndex(tmp_path / "index.db")
    index.create_bucket(BucketRecord("b", "root", 0, "us-east-1"))
    name = b"\0holdfast-commit-test-" + str(tmp_path).encode()[-40:]
    server = CommitterServer(index, name)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX) as s:
            if s.connect_ex(name) == 0:
                break
        time.sleep(0.02)
    return index, name


def test_concurrent_writes_are_committed_in_groups(committer) -> None:
    index, name = committer
    fsyncs = []
    real = index._sync_wal
    index._sync_wal = lambda: (fsyncs.append(1), real())[1]

    async def run() -> list:
        client = CommitterClient(name)
        puts = [client.call("put_object", _record(f"k{i}"), False, None, "root") for i in range(64)]
        results = await asyncio.gather(*puts)
        with pytest.raises(ConditionFailed) as failed:
            await client.call("put_object", _record("k1"), True, None, "root")
        assert failed.value.missing is False  # If-None-Match: * on an existing key
        with pytest.raises(Forbidden):
            await client.call("put_object", _record("k1"), False, None, "somebody-else")
        with pytest.raises(NotFound):
            await client.call(
                "put_object", dataclasses.replace(_record("k"), bucket="nope"), False, None, "root"
            )
        client.close()
        return results

    assert asyncio.run(run()) == [None] * 64
    assert all(index.get_object("b", f"k{i}") is not None for i in range(64))
    assert len(fsyncs) < 64 / 2, f"{len(fsyncs)} fsyncs for 64 concurrent PUTs"


def test_a_damaged_request_is_never_applied_and_drops_the_connection(committer) -> None:
    index, name = committer
    good = encode_frame((1, "put_object", (_record("good"), False, None, "root")))
    bad = bytearray(encode_frame((2, "put_object", (_record("bad"), False, None, "root"))))
    bad[-3] ^= 0x10
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(name)
        s.sendall(good + bytes(bad))
        s.settimeout(5)
        answers = b""
        while chunk := s.recv(65536):  # the committer answers what it read, then hangs up
            answers += chunk
    assert list(read_frames(bytearray(answers))) == [(1, True, None)]
    assert index.get_object("b", "good") is not None
    assert index.get_object("b", "bad") is None


def test_a_method_outside_the_list_is_refused(committer) -> None:
    index, name = committer
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(name)
        s.sendall(encode_frame((1, "delete_bucket", ("b",))))
        s.settimeout(5)
        assert s.recv(65536) == b""  # hung up, nothing answered
    assert index.get_bucket("b") is not None


def test_no_committer_means_unavailable_and_a_lost_one_means_unknown(tmp_path) -> None:
    async def run() -> None:
        client = CommitterClient(b"\0holdfast-commit-test-nobody-listens")
        with pytest.raises(CommitterUnavailable):
            await client.call("delete_object", "b", "k")
        with pytest.raises(CommitterUnavailable):  # and it does not retry at once
            await client.call("delete_object", "b", "k")

        silent = socket.socket(socket.AF_UNIX)  # accepts, never answers, then goes away
        silent.bind(b"\0holdfast-commit-test-silent")
        silent.listen()
        client = CommitterClient(b"\0holdfast-commit-test-silent")
        call = asyncio.ensure_future(client.call("delete_object", "b", "k"))
        await asyncio.sleep(0.1)
        conn, _ = silent.accept()
        conn.close()
        silent.close()
        with pytest.raises(OutcomeUnknown):
            await asyncio.wait_for(call, 5)

    asyncio.run(run())


def test_a_committer_that_stops_answering_is_given_up_and_backed_off(tmp_path) -> None:
    async def run() -> None:
        name = b"\0holdfast-commit-test-wedged"
        wedged = socket.socket(socket.AF_UNIX)  # accepts, reads nothing, answers nothing
        wedged.bind(name)
        wedged.listen()
        client = CommitterClient(name, answer_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(OutcomeUnknown):
            await asyncio.wait_for(client.call("delete_object", "b", "k"), 5)
        assert 0.3 <= time.monotonic() - started < 2
        with pytest.raises(CommitterUnavailable):  # not retried at once: commit locally
            await client.call("delete_object", "b", "k")
        wedged.close()

    asyncio.run(run())
