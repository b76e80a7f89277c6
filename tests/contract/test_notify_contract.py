"""The index contract for event notifications and SSE key re-sealing, on every engine: the
object writes put matching events into the outbox in their own transaction (and a refused
write puts none), streams come out in order, heads only while they back off, and header
compare-and-set."""

from __future__ import annotations

import json
import time

import pytest

from holdfast.index.errors import ConditionFailed
from holdfast.index.notify import CONFIG_NAME
from holdfast.index.records import UploadRecord
from tests.contract.test_index_contract import bucket, obj

pytestmark = pytest.mark.anyio


def config(*rules: dict) -> str:
    return json.dumps({"rules": list(rules)})


RULE = {"id": "r", "target": "t1", "events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}


async def test_writes_queue_matching_events_in_their_transaction(index) -> None:
    b = await bucket(index)
    await index.put_object(obj(b, "before"))  # no configuration yet: no event
    await index.set_bucket_config(
        b,
        CONFIG_NAME,
        config(
            {**RULE, "prefix": "in/"},
            {"id": "p", "target": "t2", "events": ["s3:ObjectCreated:Put"], "suffix": ".jpg"},
        ),
    )
    await index.put_object(obj(b, "in/a.jpg", etag='"e1"', size=7))
    await index.put_object(obj(b, "out/b.jpg"))
    copied = obj(b, "in/c")
    copied.origin = "Copy"
    await index.put_object(copied)
    with pytest.raises(ConditionFailed):
        await index.put_object(obj(b, "in/a.jpg"), if_absent=True)  # refused: no event
    assert await index.delete_object(b, "in/a.jpg") is True
    assert await index.delete_object(b, "in/missing") is False  # nothing removed: no event
    await index.delete_objects(b, ["in/c", "in/nothing"])

    streams = await index.due_notifications(10, 10)
    by_target = {s[0].target: s for s in streams}
    t1 = [(e.event, e.key) for e in by_target["t1"]]
    assert t1 == [
        ("ObjectCreated:Put", "in/a.jpg"),
        ("ObjectCreated:Copy", "in/c"),
        ("ObjectRemoved:Delete", "in/a.jpg"),
        ("ObjectRemoved:Delete", "in/c"),
    ]
    first = by_target["t1"][0]
    assert (first.size, first.etag, first.config_id, first.bucket) == (7, "e1", "r", b)
    assert [(e.event, e.key) for e in by_target["t2"]] == [
        ("ObjectCreated:Put", "in/a.jpg"),
        ("ObjectCreated:Put", "out/b.jpg"),
    ]
    ids = [e.id for e in by_target["t1"]]
    assert ids == sorted(ids)


async def test_multipart_and_versions_events(index) -> None:
    b = await bucket(index)
    await index.set_bucket_config(b, "versioning", "Enabled")
    await index.set_bucket_config(b, CONFIG_NAME, config(RULE))
    up = UploadRecord("u1", b, "mp", "alice", time.time(), "x/y", {}, {}, None, None)
    await index.create_upload(up)
    ref = await index.complete_upload("u1", obj(b, "mp"))
    marker = await index.delete_object(b, "mp")
    await index.delete_version(b, "mp", ref.seq)
    (stream,) = await index.due_notifications(10, 10)
    assert [(e.event, e.vseq, e.vnull) for e in stream] == [
        ("ObjectCreated:CompleteMultipartUpload", ref.seq, False),
        ("ObjectRemoved:DeleteMarkerCreated", marker.seq, False),
        ("ObjectRemoved:Delete", ref.seq, False),
    ]


async def test_streams_back_off_dead_letter_and_retry(index) -> None:
    b = await bucket(index)
    await index.set_bucket_config(b, CONFIG_NAME, config(RULE))
    for k in ("k1", "k2", "k3"):
        await index.put_object(obj(b, k))
    (stream,) = await index.due_notifications(10, 2)
    assert [e.key for e in stream] == ["k1", "k2"]  # per_stream caps the read
    await index.finish_notifications([stream[0].id])
    head = (await index.due_notifications(10, 10))[0][0]
    assert head.key == "k2"
    await index.defer_notification(head.id, time.time() + 3600, "HTTP 500", dead=False)
    assert await index.due_notifications(10, 10) == []  # the head waits: the stream waits
    summary = await index.notification_summary()
    assert summary["t1"]["pending"]["rows"] == 2
    await index.defer_notification(head.id, 0, "HTTP 500", dead=True)
    (stream,) = await index.due_notifications(10, 10)
    assert [e.key for e in stream] == ["k3"]  # the dead one no longer holds the stream
    (dead,) = await index.dead_notifications()
    assert (dead.key, dead.attempts, dead.state, dead.last_error) == ("k2", 2, "dead", "HTTP 500")
    assert await index.retry_dead_notifications("t1") == 1
    (stream,) = await index.due_notifications(10, 10)
    assert [e.key for e in stream] == ["k2", "k3"]


async def test_sealed_header_scan_and_compare_and_set(index) -> None:
    b = await bucket(index)
    await index.set_bucket_config(b, "versioning", "Enabled")
    await index.put_object(obj(b, "a", headers={"x-holdfast-sse": "v1"}))
    await index.put_object(obj(b, "a", headers={"x-holdfast-sse": "v2"}))
    await index.put_object(obj(b, "plain"))
    (cur,) = await index.scan_sealed("objects", None, 10, "x-holdfast-sse")
    (old,) = await index.scan_sealed("versions", None, 10, "x-holdfast-sse")
    assert (cur[0], cur[1], cur[3], old[3]) == (b, "a", "v2", "v1")
    assert await index.scan_sealed("objects", cur[:3], 10, "x-holdfast-sse") == []
    assert not await index.replace_header(b, "a", old[2], "x-holdfast-sse", "stale", "v9")
    assert await index.replace_header(b, "a", old[2], "x-holdfast-sse", "v1", "v1b")
    assert await index.replace_header(b, "a", cur[2], "x-holdfast-sse", "v2", "v2b")
    got = await index.get_version(b, "a", old[2])
    assert got.headers["x-holdfast-sse"] == "v1b"
    assert (await index.get_object(b, "a")).headers["x-holdfast-sse"] == "v2b"
    up = UploadRecord(
        "u", b, "k", "alice", time.time(), "", {"x-holdfast-sse": "u1"}, {}, None, None
    )
    await index.create_upload(up)
    assert not await index.replace_upload_header("u", "x-holdfast-sse", "nope", "u2")
    assert await index.replace_upload_header("u", "x-holdfast-sse", "u1", "u2")
    assert (await index.get_upload("u")).headers["x-holdfast-sse"] == "u2"
