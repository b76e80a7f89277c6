"""The index contract: every operation of holdfast/index/base.py, run against every engine
(tests/contract/conftest.py), each test on a fresh index. What the service relies on is here:
binary key order, one transaction per write, conditions checked inside it, listing pages
stable under concurrent writes, blobs handed to the GC exactly when no row refers to them."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from holdfast.index.errors import (
    ConditionFailed,
    Conflict,
    Forbidden,
    NotEmpty,
    NotFound,
)
from holdfast.index.records import (
    BackendRecord,
    BucketRecord,
    ObjectRecord,
    PartRecord,
    RepairTask,
    Segment,
    UploadRecord,
    UserRecord,
)

pytestmark = pytest.mark.anyio

_blobs = iter(range(10**9))


def seg(size: int = 10, stores: tuple[str, ...] = ("d0",), blob: str | None = None) -> Segment:
    return Segment(blob or f"blob{next(_blobs):06d}", size, 1024, b"\0\0\0\1", stores)


def obj(bucket: str, key: str, etag: str = '"e1"', size: int = 10, **kw) -> ObjectRecord:
    segments = kw.pop("segments", None) or [seg(size)]
    return ObjectRecord(bucket, key, size, etag, time.time(), segments, **kw)


async def bucket(index, name: str = "b", owner: str = "alice") -> str:
    await index.create_bucket(BucketRecord(name, owner, time.time(), "us-east-1"))
    return name


# -- lifecycle, meta -----------------------------------------------------------------------------


async def test_start_migrates_once_and_records_the_version(index, make_index) -> None:
    version = await index.schema_version()
    assert version >= 1
    again = await make_index()  # a second process of the node, or a second node
    await again.start()
    try:
        assert await again.schema_version() == version
    finally:
        await again.close()


async def test_two_handles_starting_at_once_both_end_up_migrated(make_index) -> None:
    a, b = await make_index(), await make_index()
    await asyncio.gather(a.start(), b.start())
    try:
        assert await a.schema_version() == await b.schema_version() >= 1
        await a.set_meta("k", "v")
        assert await b.get_meta("k") == "v"  # one index, not two
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_meta(index) -> None:
    assert await index.get_meta("nothing") is None
    await index.set_meta("cursor", "1")
    await index.set_meta("cursor", "2")
    assert await index.get_meta("cursor") == "2"


async def test_probe_and_status_counts(index) -> None:
    probe = await index.probe(2.0)
    assert probe["readable"] and probe["writable"] and probe["error"] is None
    await bucket(index)
    await index.put_object(obj("b", "k", size=7, segments=[seg(7, ("d0", "d1"))]))
    await index.put_object(obj("b", "bad"))
    await index.mark_object_state("b", "bad", '"e1"', "corrupt")
    counts = await index.status_counts(2.0, examples=5)
    assert counts["buckets"] == 1 and counts["objects"] == 2
    assert counts["stored_bytes"] == 7 + 10  # the objects' sizes, one copy each
    assert counts["corrupt_objects"] == 1
    assert counts["corrupt_examples"] == [{"bucket": "b", "key": "bad", "state": "corrupt"}]
    assert counts["damaged"] == {"count": 1, "examples": ["b/bad"]}
    assert "repair_queue" in counts and "gc_queue" in counts


# -- users ---------------------------------------------------------------------------------------


async def test_users(index) -> None:
    await index.add_user(UserRecord("bob", "AKBOB", "secret", created=1.0))
    with pytest.raises(Conflict):
        await index.add_user(UserRecord("bob", "AKOTHER", "secret"))
    with pytest.raises(Conflict):
        await index.add_user(UserRecord("carol", "AKBOB", "secret"))
    await index.add_user(UserRecord("alice", "AKALICE", "s2"))
    assert (await index.get_user_by_key("AKBOB")).name == "bob"
    assert await index.get_user_by_key("AKNONE") is None
    assert [u.name for u in await index.list_users()] == ["alice", "bob"]
    assert await index.set_user_disabled("bob", True) is True
    assert (await index.get_user_by_key("AKBOB")).disabled is True
    assert await index.set_user_disabled("nobody", True) is False
    await bucket(index, "owned", owner="bob")
    with pytest.raises(NotEmpty, match="owned"):
        await index.delete_user("bob")
    await index.delete_bucket("owned")
    assert await index.delete_user("bob") is True
    assert await index.delete_user("bob") is False


async def test_replace_user_secret_is_a_compare_and_set(index) -> None:
    await index.add_user(UserRecord("bob", "AKBOB", "plain"))
    assert await index.replace_user_secret("AKBOB", "other", "sealed-1") is False
    assert (await index.get_user_by_key("AKBOB")).secret_key == "plain"
    assert await index.replace_user_secret("AKBOB", "plain", "sealed-1") is True
    assert (await index.get_user_by_key("AKBOB")).secret_key == "sealed-1"
    assert await index.replace_user_secret("AKNONE", "plain", "x") is False
    await index.purge_history()  # whatever the engine keeps of old rows is gone; no error
    assert (await index.get_user_by_key("AKBOB")).secret_key == "sealed-1"


# -- buckets -------------------------------------------------------------------------------------


async def test_buckets(index) -> None:
    await bucket(index, "b2", "alice")
    await bucket(index, "b1", "alice")
    await bucket(index, "x", "bob")
    with pytest.raises(Conflict):
        await bucket(index, "x", "alice")
    assert (await index.get_bucket("x")).owner == "bob"
    assert await index.get_bucket("none") is None
    assert [b.name for b in await index.list_buckets("alice")] == ["b1", "b2"]
    await index.put_object(obj("b1", "k"))
    with pytest.raises(NotEmpty):
        await index.delete_bucket("b1")
    await index.delete_object("b1", "k")
    await index.delete_bucket("b1")
    with pytest.raises(NotFound):
        await index.delete_bucket("b1")
    assert await index.get_bucket("b1") is None


async def test_bucket_usage_and_damaged_keys(index) -> None:
    """Per-bucket object counts and sizes (the UI's bucket list, ``holdfast bucket list``),
    one owner's only when asked, and the damaged keys of one listing page."""
    await bucket(index, "u1", "alice")
    await bucket(index, "u2", "alice")
    await bucket(index, "u3", "bob")
    await index.put_object(obj("u1", "a", size=100))
    await index.put_object(obj("u1", "b", size=50, segments=[seg(50, ("d0", "d1"))]))
    await index.put_object(obj("u1", "c", size=7))
    await index.put_object(obj("u3", "z", size=1))
    await index.delete_object("u1", "c")
    await index.mark_object_state("u1", "b", '"e1"', "corrupt")
    mine = {u.bucket.name: u for u in await index.bucket_usage("alice")}
    assert list(mine) == ["u1", "u2"]
    assert (mine["u1"].objects, mine["u1"].bytes, mine["u1"].damaged) == (2, 150, 1)
    assert mine["u1"].stored_bytes == 100 + 2 * 50  # every copy counted
    assert (mine["u2"].objects, mine["u2"].bytes, mine["u2"].damaged) == (0, 0, 0)
    assert [u.bucket.name for u in await index.bucket_usage()] == ["u1", "u2", "u3"]
    assert await index.damaged_keys("u1", "a", "b") == {"b"}
    assert await index.damaged_keys("u1", "a", "a") == set()
    assert await index.damaged_keys("u3", "a", "z") == set()


async def test_deleting_a_bucket_aborts_its_uploads(index) -> None:
    await bucket(index)
    await index.create_upload(_upload("u1"))
    part = seg()
    assert await index.put_part(_part("u1", 1, part))
    await index.delete_bucket("b")
    assert await index.get_upload("u1") is None
    assert part.blob_id in {b for b, _ in await index.due_garbage(100)}


# -- objects -------------------------------------------------------------------------------------


async def test_put_get_replace_delete(index) -> None:
    await bucket(index)
    first = obj("b", "k", headers={"content-encoding": "gzip"}, meta={"a": "1"})
    await index.put_object(first)
    got = await index.get_object("b", "k")
    assert got.etag == '"e1"' and got.headers == {"content-encoding": "gzip"}
    assert got.meta == {"a": "1"} and got.segments == first.segments
    assert await index.is_live(first.segments[0].blob_id)
    assert await index.get_object_in("b", "k") == ("alice", got)
    assert await index.get_object_in("b", "none") == ("alice", None)
    assert await index.get_object_in("nobucket", "k") == (None, None)

    second = obj("b", "k", etag='"e2"')
    await index.put_object(second)
    assert (await index.get_object("b", "k")).etag == '"e2"'
    old = first.segments[0].blob_id
    assert not await index.is_live(old)
    assert (old, ["d0"]) in await index.due_garbage(100)

    assert await index.delete_object("b", "k") is True
    assert await index.delete_object("b", "k") is False
    assert await index.get_object("b", "k") is None
    assert not await index.is_live(second.segments[0].blob_id)


async def test_inline_objects_keep_their_bytes_and_free_no_blob(index) -> None:
    await bucket(index)
    data = bytes(range(256)) * 4
    inline = obj("b", "small", size=len(data), segments=[seg(len(data), ())], inline=data)
    await index.put_object(inline)
    assert (await index.get_object("b", "small")).inline == data
    await index.delete_object("b", "small")
    assert await index.due_garbage(100) == []


async def test_delete_objects_is_one_batch(index) -> None:
    await bucket(index)
    for k in ("a", "b", "c"):
        await index.put_object(obj("b", k))
    await index.delete_objects("b", ["a", "c", "missing"])
    assert [e.key for e in await index.list_keys("b", "", None, False, 10)] == ["b"]


async def test_conditional_writes(index) -> None:
    await bucket(index)
    await index.put_object(obj("b", "k"), if_absent=True)
    with pytest.raises(ConditionFailed) as e:
        await index.put_object(obj("b", "k"), if_absent=True)
    assert e.value.missing is False
    with pytest.raises(ConditionFailed) as e:
        await index.put_object(obj("b", "k", etag='"e2"'), if_etag="other")
    assert e.value.missing is False
    with pytest.raises(ConditionFailed) as e:
        await index.put_object(obj("b", "none"), if_etag="e1")
    assert e.value.missing is True
    await index.put_object(obj("b", "k", etag='"e2"'), if_etag="e1")
    assert (await index.get_object("b", "k")).etag == '"e2"'
    # A failed condition changes nothing and frees nothing.
    assert (await index.get_object("b", "k")).etag == '"e2"'


async def test_owner_is_checked_in_the_commit(index) -> None:
    await bucket(index, "b", "alice")
    with pytest.raises(NotFound):
        await index.put_object(obj("nobucket", "k"), owner="alice")
    with pytest.raises(Forbidden):
        await index.put_object(obj("b", "k"), owner="mallory")
    await index.put_object(obj("b", "k"), owner="alice")
    assert await index.get_object("b", "k") is not None


async def test_racing_conditional_writes_let_exactly_one_win(index, make_index) -> None:
    """If-None-Match: * from many writers at once (two handles, as two processes or two
    nodes would): one creates the key, every other one fails; then If-Match with the same
    etag: again exactly one wins."""
    other = await make_index()
    await other.start()
    try:
        await bucket(index)
        handles = [index, other] * 8

        async def attempt(i: int, round: str, **cond) -> bool:
            try:
                await handles[i].put_object(obj("b", "k", etag=f'"{round}{i}"'), **cond)
            except ConditionFailed:
                return False
            return True

        won = await asyncio.gather(*(attempt(i, "a", if_absent=True) for i in range(16)))
        assert sum(won) == 1
        current = (await index.get_object("b", "k")).etag.strip('"')
        won = await asyncio.gather(*(attempt(i, "b", if_etag=current) for i in range(16)))
        assert sum(won) == 1
    finally:
        await other.close()


async def test_object_states(index) -> None:
    await bucket(index)
    await index.put_object(obj("b", "k"))
    await index.mark_object_state("b", "k", '"other"', "corrupt")  # another version: no-op
    assert (await index.get_object("b", "k")).state == "ok"
    await index.mark_object_state("b", "k", '"e1"', "corrupt")
    assert (await index.get_object("b", "k")).state == "corrupt"
    assert await index.damaged_objects(10) == (1, [("b", "k")])
    assert await index.set_state_if("b", "k", '"e1"', "ok", "ok") is False
    assert await index.set_state_if("b", "k", '"e1"', "corrupt", "ok") is True
    assert await index.damaged_objects(10) == (0, [])


async def test_move_copy_is_a_compare_and_set(index) -> None:
    """A drain records a moved copy only if the row still has it where it was."""
    await bucket(index)
    s = seg(stores=("n1/d0", "n3/d0"))
    await index.put_object(obj("b", "k", segments=[s]))
    assert await index.move_copy("b", "k", None, s.blob_id, "n3/d0", "n2/d0") is True
    assert (await index.get_object("b", "k")).segments[0].stores == ("n1/d0", "n2/d0")
    # Again: the copy is no longer on n3, so nothing changes.
    assert await index.move_copy("b", "k", None, s.blob_id, "n3/d0", "n2/d0") is False
    # Not onto a store that already holds a copy, nor for another blob, nor a missing row.
    assert await index.move_copy("b", "k", None, s.blob_id, "n1/d0", "n2/d0") is False
    assert await index.move_copy("b", "k", None, "nope", "n1/d0", "n4/d0") is False
    assert await index.move_copy("b", "gone", None, s.blob_id, "n1/d0", "n4/d0") is False
    assert (await index.get_object("b", "k")).segments[0].stores == ("n1/d0", "n2/d0")
    # The bucket's totals do not change: as many copies as before.
    usage = {u.bucket.name: u for u in await index.bucket_usage(None)}
    assert usage["b"].stored_bytes == 2 * s.size


# -- listing -------------------------------------------------------------------------------------

KEYS = ["a", "a/b", "a/c/d", "b", "é", "z", "\U0001f600", "\ufffd", "a b", "A", "~"]


async def test_keys_list_in_binary_utf8_order(index) -> None:
    await bucket(index)
    for k in KEYS:
        await index.put_object(obj("b", k))
    listed = [e.key for e in await index.list_keys("b", "", None, False, 100)]
    assert listed == sorted(KEYS, key=lambda k: k.encode("utf-8"))
    assert [e.key for e in await index.list_keys("b", "a/", None, False, 100)] == ["a/b", "a/c/d"]
    assert [e.key for e in await index.list_keys("b", "", "b", False, 2)] == ["z", "~"]
    assert [e.key for e in await index.list_keys("b", "", "b", True, 2)] == ["b", "z"]
    entry = (await index.list_keys("b", "a", None, False, 1))[0]
    assert (entry.key, entry.size, entry.etag) == ("a", 10, '"e1"')


async def test_list_page_with_delimiter_and_marker(index) -> None:
    await bucket(index)
    for k in ("a/1", "a/2", "b", "c/1", "c/2/3", "d"):
        await index.put_object(obj("b", k))
    page = await index.list_page("b", "", "/", None, 3)
    assert page.prefixes == ["a/", "c/"] and [e.key for e in page.entries] == ["b"]
    assert page.truncated and page.last == "c/"
    page = await index.list_page("b", "", "/", page.last, 3)
    assert [e.key for e in page.entries] == ["d"] and not page.truncated
    page = await index.list_page("b", "c/", "/", None, 10)
    assert [e.key for e in page.entries] == ["c/1"] and page.prefixes == ["c/2/"]


def _reference_listing(keys, prefix: str, delimiter: str) -> list[str]:
    """Every key and common prefix one full listing returns, in order, by brute force."""
    out: list[str] = []
    for k in sorted(keys, key=lambda k: k.encode("utf-8")):
        if not k.startswith(prefix):
            continue
        i = k.find(delimiter, len(prefix)) if delimiter else -1
        item = k[: i + len(delimiter)] if i >= 0 else k
        if not out or out[-1] != item:
            out.append(item)
    return out


async def test_delimiter_pages_match_a_brute_force_listing(index) -> None:
    """Pages of every size, from every marker (keys, common prefixes, and strings inside a
    group), with one- and several-character delimiters, non-ASCII ones included, match the
    listing computed by brute force. PostgreSQL builds a delimiter page in one recursive
    statement (a skip scan), SQLite with a seek per group: both must agree with this."""
    await bucket(index)
    rng = random.Random(1717)
    parts = ["a", "b", "/", "//", "é", "-", "\U0001f600", "ab", "z", "\u00ff"]
    keys = {"".join(rng.choice(parts) for _ in range(rng.randint(1, 5))) for _ in range(160)}
    keys |= {"a", "a/", "a//", "a/b/", "é-é", "z\u00ff"}
    await index.import_objects(obj("b", k) for k in keys)
    for prefix, delimiter in [
        ("", "/"),
        ("a", "/"),
        ("a/", "/"),
        ("", "//"),
        ("", "é"),
        ("", "-é"),
        ("b", "\U0001f600"),
        ("", "\u00ff"),
        ("", ""),
    ]:
        expected = _reference_listing(keys, prefix, delimiter)
        for max_keys in (1, 2, 5, 1000):
            got, after = [], None
            for _ in range(len(expected) + 2):
                page = await index.list_page("b", prefix, delimiter, after, max_keys)
                items = sorted(
                    [e.key for e in page.entries] + page.prefixes, key=lambda k: k.encode("utf-8")
                )
                assert len(items) <= max_keys
                got += items
                if not page.truncated:
                    break
                assert page.last == items[-1]
                after = page.last
            assert got == expected, (prefix, delimiter, max_keys)
        for after in ["a/", "a/b", "a", "b/a", "é", "zz", "a//b", "\U0001f600"]:
            page = await index.list_page("b", prefix, delimiter, after, 1000)
            items = sorted(
                [e.key for e in page.entries] + page.prefixes, key=lambda k: k.encode("utf-8")
            )
            tail = [i for i in expected if i.encode("utf-8") > after.encode("utf-8")]
            tail = [i for i in tail if not (i.endswith(delimiter or "\0") and after.startswith(i))]
            assert items == tail, (prefix, delimiter, after)


async def test_pagination_is_stable_under_concurrent_writes(index, make_index) -> None:
    """Keys present for the whole listing come back exactly once and in order, however
    many other keys are written and deleted between (and during) the pages."""
    writer = await make_index()
    await writer.start()
    try:
        await bucket(index)
        stable = [f"k{i:04d}" for i in range(0, 400, 2)]
        await index.import_objects(obj("b", k) for k in stable)
        rng = random.Random(17)
        stop = asyncio.Event()

        async def churn() -> None:
            n = 0
            while not stop.is_set() and n < 2000:
                k = f"k{rng.randrange(400) | 1:04d}{rng.choice(['', 'x', '/y'])}"
                if rng.random() < 0.6:
                    await writer.put_object(obj("b", k))
                else:
                    await writer.delete_object("b", k)
                n += 1
                await asyncio.sleep(0)

        churner = asyncio.create_task(churn())
        seen: list[str] = []
        after = None
        for delimiter in ("", "/"):
            seen, after = [], None
            while True:
                page = await index.list_page("b", "", delimiter, after, 7)
                seen += sorted([e.key for e in page.entries] + page.prefixes)
                await asyncio.sleep(0.001)
                if not page.truncated:
                    break
                after = page.last
            assert seen == sorted(seen) and len(seen) == len(set(seen))
            assert [k for k in seen if k in set(stable)] == stable
        stop.set()
        await churner
    finally:
        await writer.close()


# -- multipart -----------------------------------------------------------------------------------


def _upload(upload_id: str, key: str = "k", initiated: float | None = None) -> UploadRecord:
    return UploadRecord(
        upload_id, "b", key, "alice", initiated or time.time(), "text/plain", {}, {}, None, None
    )


def _part(upload_id: str, number: int, segment: Segment) -> PartRecord:
    return PartRecord(
        upload_id, number, segment.size, f'"p{number}"', b"\1" * 16, None, time.time(), segment
    )


async def test_multipart_lifecycle(index) -> None:
    await bucket(index)
    await index.create_upload(_upload("u1", "k", 1.0))
    await index.create_upload(_upload("u2", "k", 2.0))
    await index.create_upload(_upload("u3", "j", 3.0))
    assert (await index.get_upload("u1")).key == "k"
    assert await index.get_upload("none") is None
    listed = await index.list_uploads("b", "", None, None, 10)
    assert [u.upload_id for u in listed] == ["u3", "u1", "u2"]
    assert [u.upload_id for u in await index.list_uploads("b", "", "k", "u1", 10)] == ["u2"]
    assert [u.upload_id for u in await index.list_uploads("b", "k", None, None, 10)] == ["u1", "u2"]

    p1, p1b, p2 = seg(), seg(), seg()
    assert await index.put_part(_part("u1", 1, p1))
    assert await index.put_part(_part("u1", 1, p1b))  # replaces: p1 is garbage
    assert await index.put_part(_part("u1", 2, p2))
    assert [p.part_number for p in await index.list_parts("u1")] == [1, 2]
    assert [p.part_number for p in await index.list_parts("u1", after=1)] == [2]
    assert (await index.list_parts("u1"))[0].segment == p1b
    scanned = await index.scan_parts(None, 10)
    assert [(p.upload_id, p.part_number) for p in scanned] == [("u1", 1), ("u1", 2)]
    assert await index.scan_parts(("u1", 1), 10) == scanned[1:]

    final = obj("b", "k", segments=[p1b])  # part 2 left out: freed by the completion
    assert await index.complete_upload("u1", final) is True
    assert await index.complete_upload("u1", final) is False
    assert (await index.get_object("b", "k")).segments == [p1b]
    garbage = {b for b, _ in await index.due_garbage(100)}
    assert {p1.blob_id, p2.blob_id} <= garbage and p1b.blob_id not in garbage
    assert await index.is_live(p1b.blob_id)

    p3 = seg()
    assert await index.put_part(_part("u2", 1, p3))
    assert await index.abort_upload("u2") is True
    assert await index.abort_upload("u2") is False
    assert await index.put_part(_part("u2", 2, seg())) is False  # the upload is gone
    assert p3.blob_id in {b for b, _ in await index.due_garbage(100)}


# -- garbage, repair -----------------------------------------------------------------------------


async def test_garbage_waits_for_its_grace(make_index) -> None:
    index = await make_index(gc_grace_seconds=3600)
    await index.start()
    try:
        await bucket(index)
        first = obj("b", "k", segments=[seg(stores=("d0", "d1"))])
        await index.put_object(first)
        await index.delete_object("b", "k")
        assert await index.due_garbage(10) == []
        blob = first.segments[0].blob_id
        assert await index.due_garbage(10, now=time.time() + 7200) == [(blob, ["d0", "d1"])]
        assert await index.known_blobs([blob, "unknown"]) == {blob}
        missed = [RepairTask(blob, "d1", "delete", "missed-delete")]
        await index.forget_garbage([blob], missed)
        assert await index.due_garbage(10, now=time.time() + 7200) == []
        assert [(t.blob_id, t.store_id, t.op) for t in await index.repairs()] == [
            (blob, "d1", "delete")
        ]
    finally:
        await index.close()


async def test_repair_queue(index) -> None:
    await bucket(index)
    live = obj("b", "k", segments=[seg(100, ("d0", "d1"))])
    await index.put_object(live)
    s = live.segments[0]
    copy = RepairTask(s.blob_id, "d1", "copy", "corrupt", s, "b/k")
    assert await index.queue_repairs([copy]) == 1
    assert await index.queue_repairs([copy]) == 0  # one row per (blob, drive)
    assert await index.queue_repairs([]) == 0
    due = await index.due_repairs(["d1"], 10)
    assert [(t.blob_id, t.op, t.ref, t.segment) for t in due] == [(s.blob_id, "copy", "b/k", s)]
    assert await index.due_repairs(["d0"], 10) == []
    summary = await index.repair_summary()
    assert summary["d1"]["copy"]["rows"] == 1 and summary["d1"]["copy"]["bytes"] == 100

    await index.defer_repair(due[0], time.time() + 3600, "peer down")
    assert await index.due_repairs(["d1"], 10) == []
    (row,) = await index.repairs()
    assert row.attempts == 1 and row.last_error == "peer down"

    assert await index.finish_repair(row) is True  # still live
    assert await index.repairs() == []

    # A delete replaces a pending copy of the same blob on the same drive, never the reverse.
    await index.queue_repairs([copy])
    await index.queue_repairs([RepairTask(s.blob_id, "d1", "delete", "missed-delete")])
    await index.queue_repairs([copy])
    assert [t.op for t in await index.repairs()] == ["delete"]
    await index.delete_object("b", "k")
    assert await index.finish_repair((await index.repairs())[0]) is False  # no longer live


async def test_deferred_copies_are_queued_with_the_commit(index) -> None:
    await bucket(index)
    s = Segment("blobdeferred", 10, 1024, b"\0\0\0\1", ("d0", "d1"), deferred=("d1",))
    await index.put_object(obj("b", "k", segments=[s]))
    assert [(t.blob_id, t.store_id, t.reason) for t in await index.repairs()] == [
        ("blobdeferred", "d1", "deferred")
    ]


async def test_copies_added_after_the_write_are_recorded_with_their_repairs(index) -> None:
    await bucket(index)
    s = seg(100, ("d0",))
    await index.put_object(obj("b", "k", segments=[s]))
    # Only while the object is the one the caller looked at (same etag).
    assert await index.add_copies("b", "k", '"other"', {s.blob_id: ["@s3/ext"]}) == 0
    assert await index.add_copies("b", "k", '"e1"', {s.blob_id: ["@s3/ext"]}) == 1
    assert (await index.get_object("b", "k")).segments[0].stores == ("d0", "@s3/ext")
    (task,) = await index.repairs()
    assert (task.blob_id, task.store_id, task.op, task.reason, task.ref) == (
        s.blob_id,
        "@s3/ext",
        "copy",
        "push",
        "b/k",
    )
    assert task.segment.stores == ("d0", "@s3/ext")
    # Asked again: nothing new (the store is listed already).
    assert await index.add_copies("b", "k", '"e1"', {s.blob_id: ["@s3/ext"]}) == 0
    assert await index.add_copies("b", "nope", '"e1"', {s.blob_id: ["@s3/ext"]}) == 0


# -- integrity walk, totals, references ----------------------------------------------------------


async def test_scan_totals_and_references(index) -> None:
    await bucket(index, "a")
    await bucket(index, "b")
    await index.import_objects([obj("a", "1"), obj("a", "2"), obj("b", "1")])
    scanned = await index.scan_objects(None, 2)
    assert [(o.bucket, o.key) for o in scanned] == [("a", "1"), ("a", "2")]
    assert [(o.bucket, o.key) for o in await index.scan_objects(("a", "2"), 5)] == [("b", "1")]
    assert scanned[0].segments and scanned[0].size == 10
    assert await index.totals() == (3, 30)
    assert await index.integrity_check(quick=True) == ["ok"]
    assert await index.reference_problems() == {"unmarked": [], "unreferenced": []}
    await index.register_drive("d0", "/x", lambda u: u)
    await index.fix_references([], [scanned[0].segments[0].blob_id])  # as if unreferenced
    assert not await index.is_live(scanned[0].segments[0].blob_id)
    problems = await index.reference_problems()
    assert problems["unmarked"] == [scanned[0].segments[0].blob_id]
    await index.fix_references(problems["unmarked"], [])
    assert await index.reference_problems() == {"unmarked": [], "unreferenced": []}


async def test_import_objects(index) -> None:
    await bucket(index)
    assert await index.import_objects((obj("b", f"k{i}") for i in range(25)), batch=10) == 25
    assert len(await index.list_keys("b", "", None, False, 100)) == 25


# -- drives, placement ---------------------------------------------------------------------------


async def test_drives_and_policies(index) -> None:
    adopted: list[str] = []

    def adopt(new: str) -> str:
        adopted.append(new)
        return new

    first = await index.register_drive("d0", "/data/0", adopt)
    assert await index.register_drive("d0", "/data/0", adopt) == first  # known: kept
    assert adopted == [first] and await index.drives() == {"d0": first}
    await index.set_bucket_policy("b", 2, 1)
    assert await index.bucket_policies() == {"b": (2, 1, "")}
    await index.set_bucket_policy("b", None, None)
    assert await index.bucket_policies() == {}


async def test_policies_keep_their_spread_by_kind(index) -> None:
    await index.set_bucket_policy("b", 3, 2, "kinds=2,s3>=1")
    await index.set_bucket_policy("c", 2, 1)
    assert await index.bucket_policies() == {"b": (3, 2, "kinds=2,s3>=1"), "c": (2, 1, "")}
    await index.set_bucket_policy("b", 2, 1, "kinds=2")  # replaced whole
    await index.set_bucket_policy("c", 2, 2, "")
    assert await index.bucket_policies() == {"b": (2, 1, "kinds=2"), "c": (2, 2, "")}


# -- back-end stores -----------------------------------------------------------------------------


def backend(name: str, secret: bytes = b"sealed-1") -> BackendRecord:
    settings = {"endpoint": "http://127.0.0.1:1", "bucket": "bkt", "prefix": f"{name}/"}
    return BackendRecord(name, "s3", f"@s3/{name}", settings, secret, time.time())


async def test_backend_stores_are_recorded_with_their_identity(index) -> None:
    assert await index.backend_stores() == []
    await index.register_drive("d0", "/data/0", lambda u: u)
    ext = backend("ext")
    await index.add_backend_store(ext, "uuid-ext", "http://127.0.0.1:1/bkt/ext/")
    await index.add_backend_store(backend("another"), "uuid-another", "x")
    # Listed by name, settings and sealed credentials as given.
    listed = await index.backend_stores()
    assert [r.name for r in listed] == ["another", "ext"]
    assert listed[1] == ext and isinstance(listed[1].secret, bytes)
    drives = await index.drives()
    assert drives["@s3/ext"] == "uuid-ext" and drives["@s3/another"] == "uuid-another"
    assert "d0" in drives


async def test_a_backend_store_name_is_taken_once(index) -> None:
    await index.add_backend_store(backend("ext"), "uuid-1", "x")
    with pytest.raises(Conflict):
        await index.add_backend_store(backend("ext", b"other"), "uuid-2", "y")
    (kept,) = await index.backend_stores()
    assert kept.secret == b"sealed-1"  # nothing of the refused add written
    assert (await index.drives())["@s3/ext"] == "uuid-1"


async def test_backend_secret_is_replaced(index) -> None:
    await index.add_backend_store(backend("ext"), "uuid-1", "x")
    await index.add_backend_store(backend("other"), "uuid-2", "y")
    await index.set_backend_secret("ext", b"resealed")
    secrets = {r.name: r.secret for r in await index.backend_stores()}
    assert secrets == {"ext": b"resealed", "other": b"sealed-1"}


async def test_removing_a_backend_store_forgets_its_drive_and_repairs(index) -> None:
    await bucket(index)
    live = obj("b", "k", segments=[seg(100, ("d0", "@s3/ext"))])
    await index.put_object(live)
    s = live.segments[0]
    await index.register_drive("d0", "/data/0", lambda u: u)
    await index.add_backend_store(backend("ext"), "uuid-1", "x")
    await index.queue_repairs(
        [
            RepairTask(s.blob_id, "@s3/ext", "copy", "deferred", s, "b/k"),
            RepairTask(s.blob_id, "d0", "copy", "corrupt", s, "b/k"),
        ]
    )
    assert await index.remove_backend_store("ext")
    assert not await index.remove_backend_store("ext")
    assert await index.backend_stores() == []
    assert "@s3/ext" not in await index.drives() and "d0" in await index.drives()
    assert [(t.store_id, t.op) for t in await index.repairs()] == [("d0", "copy")]


# -- once per cluster ----------------------------------------------------------------------------


async def test_a_job_has_one_leader(index, make_index) -> None:
    other = await make_index()
    await other.start()
    try:
        lease = await index.try_lead("workers")
        assert lease is not None and lease.held
        assert await other.try_lead("workers") is None
        other_job = await other.try_lead("scrub")
        assert other_job is not None  # jobs are independent
        await lease.release()
        assert not lease.held
        taken = await asyncio.wait_for(other.lead("workers", 0.05), 5)
        assert taken.held
        await taken.release()
        await other_job.release()
    finally:
        await other.close()


# -- tags and bucket configurations --------------------------------------------------------------


async def test_object_tags_are_kept_replaced_and_go_with_the_version(index) -> None:
    await bucket(index)
    assert (await index.get_object("b", "k")) is None
    assert not await index.set_object_tags("b", "k", [("a", "1")])  # no such key
    await index.put_object(obj("b", "k", tags=[("z", "1"), ("a", "")]))
    assert (await index.get_object("b", "k")).tags == [("z", "1"), ("a", "")]
    assert (await index.get_object_in("b", "k"))[1].tags == [("z", "1"), ("a", "")]
    assert await index.set_object_tags("b", "k", [("x", "y")])
    assert (await index.get_object("b", "k")).tags == [("x", "y")]
    assert await index.set_object_tags("b", "k", [])
    assert (await index.get_object("b", "k")).tags == []
    await index.put_object(obj("b", "k", tags=[("n", "2")]))
    await index.put_object(obj("b", "k"))  # a new version without tags has none
    assert (await index.get_object("b", "k")).tags == []
    [scanned] = await index.scan_objects(None, 10)
    assert scanned.key == "k"


async def test_upload_tags_are_kept(index) -> None:
    await bucket(index)
    up = UploadRecord("u1", "b", "k", "alice", time.time(), "t", {}, {}, None, None, [("a", "b")])
    await index.create_upload(up)
    assert (await index.get_upload("u1")).tags == [("a", "b")]
    assert (await index.list_uploads("b", "", None, None, 10))[0].tags == [("a", "b")]
    await index.complete_upload("u1", obj("b", "k", tags=[("a", "b")]))
    assert (await index.get_object("b", "k")).tags == [("a", "b")]


async def test_bucket_configs(index) -> None:
    assert not await index.set_bucket_config("b", "tagging", "[]")  # no such bucket
    await bucket(index)
    assert await index.get_bucket_config("b", "tagging") is None
    assert await index.set_bucket_config("b", "tagging", '[["a","1"]]')
    assert await index.set_bucket_config("b", "tagging", '[["a","2"]]')
    assert await index.set_bucket_config("b", "other", "x")
    assert await index.get_bucket_config("b", "tagging") == '[["a","2"]]'
    assert await index.set_bucket_config("b", "other", None)
    assert await index.get_bucket_config("b", "other") is None
    await index.delete_bucket("b")  # configurations go with the bucket
    assert not await index.set_bucket_config("b", "tagging", None)
    await bucket(index)
    assert await index.get_bucket_config("b", "tagging") is None


# -- versions ----------------------------------------------------------------------------------


async def versioned(index, state: str = "Enabled") -> str:
    await bucket(index)
    assert await index.set_bucket_config("b", "versioning", state)
    return "b"


async def test_unversioned_bucket_answers_as_before(index) -> None:
    await bucket(index)
    assert await index.put_object(obj("b", "k")) is None
    assert (await index.get_object("b", "k")).vnull
    assert (await index.get_version("b", "k", None)).key == "k"
    assert await index.delete_object("b", "k") is True
    assert await index.list_versions("b", "", None, 10) == []


async def test_versions_kept_ordered_and_listed(index) -> None:
    await bucket(index)
    await index.put_object(obj("b", "k", etag='"e0"'))  # the null version, before versioning
    assert await index.set_bucket_config("b", "versioning", "Enabled")
    r1 = await index.put_object(obj("b", "k", etag='"e1"'))
    r2 = await index.put_object(obj("b", "k", etag='"e2"'))
    assert not r1.null and not r2.null and r2.seq > r1.seq > 0
    current = await index.get_object("b", "k")
    assert current.etag == '"e2"' and current.vseq == r2.seq and not current.vnull
    assert (await index.get_version("b", "k", r1.seq)).etag == '"e1"'
    assert (await index.get_version("b", "k", None)).etag == '"e0"'
    listed = await index.list_versions("b", "", None, 10)
    assert [(e.key, e.seq, e.null, e.latest) for e in listed] == [
        ("k", r2.seq, False, True),
        ("k", r1.seq, False, False),
        ("k", 0, True, False),
    ]
    # Keys list as before: only the current version.
    assert [e.key for e in await index.list_keys("b", "", None, False, 10)] == ["k"]
    # Pages: strictly after (key, seq).
    assert [e.seq for e in await index.list_versions("b", "", ("k", r2.seq), 10)] == [r1.seq, 0]
    assert await index.list_versions("b", "", ("k", -1), 10) == []


async def test_delete_marker_and_deleting_versions(index) -> None:
    await versioned(index)
    v1 = obj("b", "k", etag='"e1"')
    r1 = await index.put_object(v1)
    r2 = await index.put_object(obj("b", "k", etag='"e2"'))
    marker = await index.delete_object("b", "k")
    assert marker.marker and marker.seq > r2.seq
    assert await index.get_object("b", "k") is None
    assert (await index.get_object_in("b", "k")) == ("alice", None)
    assert (await index.current_marker("b", "k")).vseq == marker.seq
    assert (await index.get_version("b", "k", marker.seq)).delete_marker
    assert await index.list_keys("b", "", None, False, 10) == []
    listed = await index.list_versions("b", "", None, 10)
    assert [(e.seq, e.marker, e.latest) for e in listed] == [
        (marker.seq, True, True),
        (r2.seq, False, False),
        (r1.seq, False, False),
    ]
    # Every version's blobs stay live until that version is deleted.
    assert await index.is_live(v1.segments[0].blob_id)
    with pytest.raises(NotEmpty):
        await index.delete_bucket("b")
    # Removing the marker uncovers the version before it.
    assert (await index.delete_version("b", "k", marker.seq)).delete_marker
    assert (await index.get_object("b", "k")).etag == '"e2"'
    assert await index.current_marker("b", "k") is None
    # Removing the current version makes the one before current.
    assert (await index.delete_version("b", "k", r2.seq)).etag == '"e2"'
    assert (await index.get_object("b", "k")).vseq == r1.seq
    assert await index.delete_version("b", "k", r2.seq) is None

    def refuse(version):
        raise Forbidden("locked")

    with pytest.raises(Forbidden):
        await index.delete_version("b", "k", r1.seq, refuse)
    assert (await index.get_object("b", "k")).vseq == r1.seq
    assert (await index.delete_version("b", "k", r1.seq)).etag == '"e1"'
    assert not await index.is_live(v1.segments[0].blob_id)
    assert await index.list_versions("b", "", None, 10) == []
    await index.delete_bucket("b")


async def test_version_lock_is_kept_changed_in_the_transaction_and_goes_with_the_version(
    index,
) -> None:
    await versioned(index)
    assert await index.set_version_lock("b", "k", 1, lambda v: ("GOVERNANCE", 1.0, False)) is None
    locked = obj("b", "k", etag='"e1"')
    locked.retention_mode, locked.retain_until = "COMPLIANCE", 4_000_000_000.0
    r1 = await index.put_object(locked)
    got = await index.get_object("b", "k")
    assert (got.retention_mode, got.retain_until, got.legal_hold) == (
        "COMPLIANCE",
        4_000_000_000.0,
        False,
    )
    assert (await index.get_object_in("b", "k"))[1].retention_mode == "COMPLIANCE"
    # A newer version pushes it into the history: the lock goes with it.
    r2 = await index.put_object(obj("b", "k", etag='"e2"'))
    old = await index.get_version("b", "k", r1.seq)
    assert (old.retention_mode, old.retain_until) == ("COMPLIANCE", 4_000_000_000.0)
    assert (await index.get_object("b", "k")).retention_mode is None
    # The change is computed from the version as it is, inside the transaction.
    seen = []

    def hold(version):
        seen.append(version.retain_until)
        return version.retention_mode, version.retain_until, True

    assert (await index.set_version_lock("b", "k", r1.seq, hold)).etag == '"e1"'
    assert seen == [4_000_000_000.0]
    assert (await index.get_version("b", "k", r1.seq)).legal_hold

    def refuse(version):
        raise Forbidden("locked")

    with pytest.raises(Forbidden):
        await index.set_version_lock("b", "k", r1.seq, refuse)
    assert (await index.get_version("b", "k", r1.seq)).legal_hold
    # The current version too; clearing leaves nothing.
    await index.set_version_lock("b", "k", r2.seq, lambda v: ("GOVERNANCE", 5.0, False))
    assert (await index.get_object("b", "k")).retention_mode == "GOVERNANCE"
    await index.set_version_lock("b", "k", r2.seq, lambda v: (None, None, False))
    assert (await index.get_object("b", "k")).retain_until is None
    # Deleting the current version uncovers the locked one, still locked.
    await index.delete_version("b", "k", r2.seq)
    current = await index.get_object("b", "k")
    assert (current.vseq, current.retention_mode, current.legal_hold) == (
        r1.seq,
        "COMPLIANCE",
        True,
    )


async def test_version_tags_are_set_per_version_in_the_transaction(index) -> None:
    await versioned(index)
    nothing = lambda v: None  # noqa: E731
    assert await index.set_version_tags("b", "k", 1, [("a", "b")], nothing) is None
    r1 = await index.put_object(obj("b", "k", etag='"e1"', tags=[("v", "1")]))
    r2 = await index.put_object(obj("b", "k", etag='"e2"', tags=[("v", "2")]))
    # A noncurrent version's tags change alone; the current version's too.
    assert (await index.set_version_tags("b", "k", r1.seq, [("x", "y")], nothing)).etag == '"e1"'
    assert (await index.get_version("b", "k", r1.seq)).tags == [("x", "y")]
    assert (await index.get_object("b", "k")).tags == [("v", "2")]
    await index.set_version_tags("b", "k", r2.seq, [], nothing)
    assert (await index.get_object("b", "k")).tags == []
    assert (await index.get_version("b", "k", r1.seq)).tags == [("x", "y")]
    # The check sees the version inside the transaction and may refuse: nothing changes.
    marker = await index.delete_object("b", "k")

    def no_markers(version):
        if version.delete_marker:
            raise Forbidden("a delete marker has no tags")

    with pytest.raises(Forbidden):
        await index.set_version_tags("b", "k", marker.seq, [("a", "b")], no_markers)
    await index.set_version_tags("b", "k", r1.seq, [("z", "z")], no_markers)
    assert (await index.get_version("b", "k", r1.seq)).tags == [("z", "z")]


async def test_suspended_bucket_replaces_the_null_version(index) -> None:
    await versioned(index)
    kept = await index.put_object(obj("b", "k", etag='"kept"'))
    assert await index.set_bucket_config("b", "versioning", "Suspended")
    n1 = obj("b", "k", etag='"n1"')
    r1 = await index.put_object(n1)
    assert r1.null and r1.seq > kept.seq
    r2 = await index.put_object(obj("b", "k", etag='"n2"'))
    assert r2.null
    assert not await index.is_live(n1.segments[0].blob_id)  # the replaced null version
    listed = await index.list_versions("b", "", None, 10)
    assert [(e.null, e.etag) for e in listed] == [(True, '"n2"'), (False, '"kept"')]
    marker = await index.delete_object("b", "k")  # a null delete marker replaces n2
    assert marker.null and marker.marker
    listed = await index.list_versions("b", "", None, 10)
    assert [(e.null, e.marker) for e in listed] == [(True, True), (False, False)]


async def test_delete_objects_in_a_versioned_bucket_writes_markers(index) -> None:
    await versioned(index)
    await index.put_object(obj("b", "a"))
    answers = await index.delete_objects("b", ["a", "missing"])
    assert all(a.marker for a in answers)
    assert [e.key for e in await index.list_versions("b", "", None, 10)] == ["a", "a", "missing"]


async def test_fsck_sees_noncurrent_versions(index) -> None:
    await versioned(index)
    await index.put_object(obj("b", "k"))
    await index.put_object(obj("b", "k"))
    await index.delete_object("b", "k")
    assert await index.reference_problems() == {"unmarked": [], "unreferenced": []}
    # The scrubber's and fsck's walk over noncurrent versions: data only, resumable.
    scanned = await index.scan_versions(None, 10)
    assert [(v.key, len(v.segments)) for v in scanned] == [("k", 1), ("k", 1)]
    assert scanned[0].vseq < scanned[1].vseq
    rest = await index.scan_versions(("b", "k", scanned[0].vseq), 10)
    assert [v.vseq for v in rest] == [scanned[1].vseq]


async def test_concurrent_writers_of_one_key_get_commit_ordered_versions(make_index) -> None:
    first = await make_index()
    await first.start()
    second = await make_index()
    await second.start()
    try:
        await versioned(first)

        async def write(index, n):
            return await index.put_object(obj("b", "k", etag=f'"{n}"'))

        refs = await asyncio.gather(*(write((first, second)[n % 2], n) for n in range(20)))
        seqs = sorted(r.seq for r in refs)
        assert len(set(seqs)) == 20
        listed = await first.list_versions("b", "", None, 100)
        assert [e.seq for e in listed] == seqs[::-1]
        assert [e.latest for e in listed] == [True] + [False] * 19
        current = await first.get_object("b", "k")
        assert current.vseq == seqs[-1]
    finally:
        await second.close()
        await first.close()


async def test_bucket_access(index) -> None:
    """The bucket row and the named configuration documents in one read."""
    assert await index.get_bucket_access("b", ("policy", "acl")) == (None, {})
    await bucket(index)
    record, docs = await index.get_bucket_access("b", ("policy", "acl"))
    assert record.name == "b" and docs == {}
    await index.set_bucket_config("b", "policy", "{}")
    await index.set_bucket_config("b", "tagging", "[]")  # not asked for
    record, docs = await index.get_bucket_access("b", ("policy", "acl"))
    assert record.owner == (await index.get_bucket("b")).owner and docs == {"policy": "{}"}
    await index.set_bucket_config("b", "acl", "x")
    assert (await index.get_bucket_access("b", ("policy", "acl")))[1] == {
        "policy": "{}",
        "acl": "x",
    }
    assert (await index.get_bucket_access("b", ()))[1] == {}


async def test_object_access(index) -> None:
    """GET's one read: the bucket, the named documents and the current object together, each
    as current as a read of its own (a document or object changed since is seen)."""
    names = ("policy", "acl")
    assert await index.get_object_access("b", names, "k") == (None, {}, None)
    await bucket(index)
    record, docs, got = await index.get_object_access("b", names, "k")
    assert record == await index.get_bucket("b") and docs == {} and got is None
    first = obj("b", "k", headers={"content-encoding": "gzip"}, meta={"a": "1"}, tags=[("t", "v")])
    await index.put_object(first)
    await index.set_bucket_config("b", "policy", "{}")
    await index.set_bucket_config("b", "acl", "x")
    await index.set_bucket_config("b", "tagging", "[]")  # not asked for
    record, docs, got = await index.get_object_access("b", names, "k")
    assert docs == {"policy": "{}", "acl": "x"}
    assert got == await index.get_object("b", "k") and got.tags == [("t", "v")]
    await index.put_object(obj("b", "k", etag='"e2"'))
    await index.set_bucket_config("b", "policy", None)
    _, docs, got = await index.get_object_access("b", names, "k")
    assert docs == {"acl": "x"} and got.etag == '"e2"'
    assert (await index.get_object_access("b", (), "none"))[1:] == ({}, None)


async def test_set_object_headers_changes_one_version(index) -> None:
    """PutObjectAcl's write: one version's stored-header map, current or by number."""
    await bucket(index)
    await index.put_object(obj("b", "k", etag='"e0"', headers={"cache-control": "no"}))
    assert await index.set_bucket_config("b", "versioning", "Enabled")
    r1 = await index.put_object(obj("b", "k", etag='"e1"'))

    def add(headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "x-acl": "a"}

    found = await index.set_object_headers("b", "k", None, add, current=True)
    assert found is not None and found.etag == '"e1"'
    assert (await index.get_object("b", "k")).headers == {"x-acl": "a"}
    found = await index.set_object_headers("b", "k", None, add)  # the "null" version
    assert found is not None and found.etag == '"e0"'
    null = await index.get_version("b", "k", None)
    assert null.headers == {"cache-control": "no", "x-acl": "a"}
    assert (await index.get_version("b", "k", r1.seq)).headers == {"x-acl": "a"}
    assert await index.set_object_headers("b", "nope", None, add, current=True) is None
    assert await index.set_object_headers("b", "k", r1.seq + 99, add) is None
    marker = await index.delete_object("b", "k")
    assert await index.set_object_headers("b", "k", marker.seq, add) is None
    assert await index.set_object_headers("b", "k", None, add, current=True) is None
