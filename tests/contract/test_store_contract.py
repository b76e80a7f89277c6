"""The Store contract (holdfast/stores/base.py): every kind of store passes the same tests.

Kinds: ``"local"`` (a drive of this node), ``"node"`` (a drive on another node: a real
internal server in its own process, with certificates from ``holdfast cluster init``, reached
over mutual TLS) and ``"s3"`` (an external S3 service, issue #14), run against a real
SeaweedFS and against a second Holdfast (one of each per session, each store a fresh prefix
in a fresh bucket). A :class:`Harness` says how to make a fresh, initialized store of a kind,
and how to damage a stored copy behind the store's back (bit rot, a short copy) the way that
medium can be damaged; for S3 that is overwriting the object through the service's own API.
Everything else here is written against the interface only.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from holdfast.stores.base import (
    Capability,
    CorruptBlock,
    Store,
    StoreMissing,
    blob_hour,
    new_blob_id,
)
from holdfast.stores.blocks import BlockChecksummer
from holdfast.stores.local import LocalStore
from holdfast.stores.node import NodeStore
from holdfast.stores.s3 import MIN_PART_SIZE, S3Settings, S3Store
from holdfast.stores.verify import Copy, CopyReader, NoGoodCopy, copy_state, with_quarantined
from tests.backends import (
    WEED_AK,
    WEED_SK,
    flip_object_byte,
    raw_client,
    truncate_object,
)
from tests.conftest import ROOT_AK, ROOT_SK
from tests.net import support as net_support

BLOCK = 4096  # small blocks: multi-block blobs stay small


@dataclass
class Harness:
    kind: str
    make: Callable[..., Store]  # (request, scratch dir, store name) -> an initialized store
    flip: Callable[[Store, str, int], None]  # flip the byte at an offset of a stored copy
    truncate: Callable[[Store, str, int], None]  # cut a stored copy to a length
    session: str | None = None  # a fixture the kind needs once per session (its server)


def _local_make(request, tmp: Path, name: str) -> Store:
    store = LocalStore(f"node-test/{name}", tmp / name / "drive")
    store.initialize(str(uuid.uuid4()))
    return store


def _local_flip(store: Store, blob_id: str, offset: int) -> None:
    assert isinstance(store, LocalStore)
    with open(store.blob_path(blob_id), "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def _local_truncate(store: Store, blob_id: str, length: int) -> None:
    assert isinstance(store, LocalStore)
    os.truncate(store.blob_path(blob_id), length)


def _s3_maker(service: str, credentials: Callable):
    """A fresh bucket per test (buckets are cheap), a prefix per store in it."""

    def make(request, tmp: Path, name: str) -> Store:
        svc = request.getfixturevalue(service)
        ak, sk = credentials(svc)
        client = raw_client(svc.endpoint, ak, sk)
        bucket = request.node.__dict__.setdefault("_backend_bucket", {}).get(service)
        if bucket is None:
            bucket = f"hf-{uuid.uuid4().hex[:12]}"
            client.create_bucket(Bucket=bucket)
            request.node._backend_bucket[service] = bucket
        settings = S3Settings(svc.endpoint, bucket, ak, sk, prefix=f"{name}/", quota=1024**3)
        store = S3Store(f"s3-{service}/{name}", settings, part_size=MIN_PART_SIZE)
        store.raw = client  # type: ignore[attr-defined]  (for flip/truncate below)
        store.initialize(str(uuid.uuid4()))
        return store

    return make


def _s3_flip(store: Store, blob_id: str, offset: int) -> None:
    assert isinstance(store, S3Store)
    flip_object_byte(store.raw, store.bucket, store.blob_key(blob_id), offset)  # type: ignore[attr-defined]


def _s3_truncate(store: Store, blob_id: str, length: int) -> None:
    assert isinstance(store, S3Store)
    truncate_object(store.raw, store.bucket, store.blob_key(blob_id), length)  # type: ignore[attr-defined]


class NodeKind:
    """Drives of node n2, served by a real internal server process (tests/net/node_server.py)
    and reached by n1's NodeClient; the copies are damaged on n2's disk directly."""

    server = None
    client = None

    def make(self, tmp: Path, name: str) -> Store:
        assert self.client is not None, "the node_server fixture starts the server"
        store = NodeStore("n2", f"{name}-{uuid.uuid4().hex[:8]}", self.client)
        store.initialize(str(uuid.uuid4()))
        return store

    def _blob_path(self, store: Store, blob_id: str) -> Path:
        assert isinstance(store, NodeStore) and self.server is not None
        return LocalStore(store.store_id, self.server.root / store.drive).blob_path(blob_id)

    def flip(self, store: Store, blob_id: str, offset: int) -> None:
        with open(self._blob_path(store, blob_id), "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0x01]))

    def truncate(self, store: Store, blob_id: str, length: int) -> None:
        os.truncate(self._blob_path(store, blob_id), length)


NODE_KIND = NodeKind()

HARNESSES = {
    "local": Harness("local", _local_make, _local_flip, _local_truncate),
    "node": Harness(
        "node",
        lambda request, tmp, name: NODE_KIND.make(tmp, name),
        NODE_KIND.flip,
        NODE_KIND.truncate,
        "node_server",
    ),
    "s3-seaweedfs": Harness(
        "s3",
        _s3_maker("seaweedfs", lambda svc: (WEED_AK, WEED_SK)),
        _s3_flip,
        _s3_truncate,
        "seaweedfs",
    ),
    "s3-holdfast": Harness(
        "s3",
        _s3_maker("holdfast_backend", lambda svc: (ROOT_AK, ROOT_SK)),
        _s3_flip,
        _s3_truncate,
        "holdfast_backend",
    ),
}


@pytest.fixture(scope="session")
def node_server(tmp_path_factory) -> Iterator[NodeKind]:
    work = tmp_path_factory.mktemp("node-store")
    cluster = net_support.cluster_init(work / "cluster")
    server = net_support.start_node(work / "n2", cluster, "n2")
    NODE_KIND.server = server
    NODE_KIND.client = net_support.client_for(cluster, "n1", {"n2": server.port})
    yield NODE_KIND
    NODE_KIND.client.close()
    server.stop()


@pytest.fixture(params=sorted(HARNESSES))
def harness(request) -> Harness:
    h = HARNESSES[request.param]
    if h.session:
        request.getfixturevalue(h.session)
    make = h.make
    return Harness(h.kind, lambda tmp, name: make(request, tmp, name), h.flip, h.truncate)


@pytest.fixture
def store(harness: Harness, tmp_path: Path) -> Store:
    return harness.make(tmp_path, "s0")


@dataclass(frozen=True)
class Blob:
    """A blob as the index knows it (the BlobLayout protocol), plus its bytes."""

    blob_id: str
    size: int
    block_size: int
    crcs: bytes
    data: bytes


def crcs_of(data: bytes, block_size: int = BLOCK) -> bytes:
    c = BlockChecksummer(block_size)
    c.update(data)
    return c.finish()


def put(store: Store, data: bytes, blob_id: str | None = None, piece: int = 1000) -> Blob:
    """Stream ``data`` in odd-sized pieces (never block-aligned) and finish it."""
    blob_id = blob_id or new_blob_id()
    writer = store.writer(BLOCK)
    for i in range(0, len(data), piece):
        writer.write(data[i : i + piece])
    crcs = crcs_of(data)
    writer.finish(blob_id, crcs)
    return Blob(blob_id, len(data), BLOCK, crcs, data)


def read(store: Store, blob: Blob, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.read_blocks(blob, start, blob.size if end is None else end))


def everything(store: Store) -> Iterator[str]:
    for hour in store.hours():
        cursor = None
        while True:
            page = store.list_blobs(hour, cursor)
            yield from (b.blob_id for b in page.blobs)
            cursor = page.cursor
            if cursor is None:
                break


# -- what every store declares ------------------------------------------------------------------


def test_declares_kind_and_capabilities(harness: Harness, store: Store):
    assert store.kind == harness.kind
    assert store.capabilities <= frozenset(Capability)
    assert Capability.RANGED_READS in store.capabilities, "GET fails over mid-stream by range"
    assert "/" in store.store_id, "store ids are node/drive, unique in the cluster"
    assert store.location()


# -- write, read, verify -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, 3 * BLOCK + 17])
def test_write_then_read_back(store: Store, size: int):
    data = secrets.token_bytes(size)
    blob = put(store, data)
    assert read(store, blob) == data
    info = store.stat(blob.blob_id)
    assert info is not None and info.size == size
    assert sum(store.verify(blob)) == size
    assert copy_state(store, blob) == "ok"


def test_a_large_blob_streams_through(harness: Harness, store: Store):
    """Larger than two S3 parts (multipart for that kind), read back whole and by range."""
    data = secrets.token_bytes(2 * 5 * 1024**2 + 3 * BLOCK + 5)
    blob = put(store, data, piece=256 * 1024 + 3)
    assert read(store, blob) == data
    mid = 5 * 1024**2 - 7
    assert read(store, blob, mid, mid + 3 * BLOCK) == data[mid : mid + 3 * BLOCK]
    assert store.stale_temporary(0) == 0, "nothing of the upload is left behind"
    harness.flip(store, blob.blob_id, 7 * 1024**2)
    with pytest.raises(CorruptBlock) as err:
        read(store, blob)
    assert err.value.block == 7 * 1024**2 // BLOCK


def test_ranged_reads(store: Store):
    data = secrets.token_bytes(4 * BLOCK + 100)
    blob = put(store, data)
    cuts = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 5, 4 * BLOCK, len(data)]
    for start in cuts:
        for end in cuts:
            if start <= end:
                assert read(store, blob, start, end) == data[start:end], (start, end)
    with store.open_blob(blob) as reader:
        assert reader.read_block(2) == data[2 * BLOCK : 3 * BLOCK]
        assert reader.read_block(4) == data[4 * BLOCK :]


def test_a_corrupt_block_is_never_served(harness: Harness, store: Store):
    data = secrets.token_bytes(3 * BLOCK)
    blob = put(store, data)
    harness.flip(store, blob.blob_id, BLOCK + 10)  # block 1
    with pytest.raises(CorruptBlock) as err:
        read(store, blob)
    assert err.value.block == 1
    got = b""
    with pytest.raises(CorruptBlock):
        for chunk in store.read_blocks(blob, 0, blob.size):
            got += chunk
    assert data.startswith(got) and len(got) <= BLOCK, "bytes of the bad block went out"
    # Ranges that do not touch the bad block still read.
    assert read(store, blob, 0, BLOCK) == data[:BLOCK]
    assert read(store, blob, 2 * BLOCK, 3 * BLOCK) == data[2 * BLOCK :]
    with pytest.raises(CorruptBlock):
        read(store, blob, BLOCK + 20, BLOCK + 21)
    with store.open_blob(blob) as reader:
        assert reader.read_block(0) == data[:BLOCK]
        with pytest.raises(CorruptBlock):
            reader.read_block(1)
    with pytest.raises(CorruptBlock):
        sum(store.verify(blob))
    assert copy_state(store, blob) == "bad"


def test_a_short_copy_is_corrupt(harness: Harness, store: Store):
    data = secrets.token_bytes(2 * BLOCK)
    blob = put(store, data)
    harness.truncate(store, blob.blob_id, 2 * BLOCK - 1)
    with pytest.raises(CorruptBlock):
        sum(store.verify(blob))
    with pytest.raises(CorruptBlock):
        read(store, blob, BLOCK, 2 * BLOCK)


def test_a_write_that_fails_its_checksum_leaves_nothing(store: Store):
    data = secrets.token_bytes(2 * BLOCK + 3)
    blob_id = new_blob_id()
    writer = store.writer(BLOCK)
    writer.write(data[:BLOCK])
    writer.write(bytes([data[BLOCK] ^ 1]) + data[BLOCK + 1 :])  # one bit lost in transit
    with pytest.raises(CorruptBlock) as err:
        writer.finish(blob_id, crcs_of(data))
    assert err.value.block == 1
    assert store.stat(blob_id) is None
    assert blob_id not in set(everything(store))
    with pytest.raises(FileNotFoundError):
        read(store, Blob(blob_id, len(data), BLOCK, crcs_of(data), data))
    assert store.stale_temporary(0) == 0, "the received bytes must not linger"
    # Too few bytes for the checksums (a truncated stream) fails the same way.
    writer = store.writer(BLOCK)
    writer.write(data[:BLOCK])
    with pytest.raises(CorruptBlock):
        writer.finish(blob_id, crcs_of(data))
    assert store.stat(blob_id) is None


def test_abort_leaves_nothing(store: Store):
    writer = store.writer(BLOCK)
    writer.write(b"x" * 5000)
    writer.abort()
    writer.abort_quietly()  # twice is harmless
    assert list(everything(store)) == []
    assert store.stale_temporary(0) == 0


def test_replacing_a_bad_copy_quarantines_it(harness: Harness, store: Store):
    if Capability.QUARANTINE not in store.capabilities:
        pytest.skip(f"{store.kind} stores keep no quarantine")
    data = secrets.token_bytes(2 * BLOCK)
    blob = put(store, data)
    harness.flip(store, blob.blob_id, 5)
    writer = store.writer(BLOCK)
    writer.write(data)
    name = writer.finish_replacing(blob.blob_id, blob.crcs)
    assert name is not None and store.quarantined(blob.blob_id) == [name]
    assert name in store.quarantined()
    assert read(store, blob) == data
    with store.open_blob(blob, name) as bad:
        assert bad.read_block(1) == data[BLOCK:], "a bad copy's good blocks stay readable"
        with pytest.raises(CorruptBlock):
            bad.read_block(0)


# -- delete, listing ------------------------------------------------------------------------------


def test_delete(store: Store):
    blob = put(store, b"gone soon" * 100)
    store.delete(blob.blob_id)
    assert store.stat(blob.blob_id) is None
    with pytest.raises(FileNotFoundError):
        read(store, blob)
    with pytest.raises(FileNotFoundError):
        store.open_blob(blob)
    assert copy_state(store, blob) == "missing"
    store.delete(blob.blob_id)  # deleting what is not there is no error


def test_listing_by_hour_in_pages(store: Store):
    if Capability.LISTING not in store.capabilities:
        pytest.skip(f"{store.kind} stores cannot list")
    now = time.time()
    old = [put(store, b"o" * 10, new_blob_id(now - 7200)).blob_id for _ in range(5)]
    new = [put(store, b"n" * 10, new_blob_id(now)).blob_id for _ in range(40)]
    hours = store.hours()
    assert hours == sorted(hours) and {blob_hour(old[0]), blob_hour(new[0])} <= set(hours)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list_blobs(blob_hour(new[0]), cursor, limit=3)
        pages += 1
        seen += [b.blob_id for b in page.blobs]
        assert all(b.size == 10 and b.mtime <= time.time() + 1 for b in page.blobs)
        cursor = page.cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(new), "every blob once, no other hour's"
    assert pages > 1, "a small limit pages"
    assert sorted(everything(store)) == sorted(old + new)
    assert store.list_blobs("00000001").blobs == []


# -- capacity, health ------------------------------------------------------------------------------


def test_free_space(store: Store):
    avail, total = store.space(fresh=True)
    if Capability.FREE_SPACE in store.capabilities:
        assert 0 <= avail <= total and total > 0
    assert store.free_bytes() <= avail
    assert store.repair_room() <= avail
    store.forget_space()


def test_a_node_stores_room_is_counted_against_its_owners_reserves(request, tmp_path: Path):
    """Another node's drive is filled up to *its* reserves, which only it knows: a
    NodeStore built without them (as a cluster node builds its peers') must not take the
    whole drive (repair filled a peer's drive to 99.8 % before: tests/cluster/test_storm.py)."""
    request.getfixturevalue("node_server")
    from tests.net.node_server import REPAIR_RESERVE, RESERVE

    store = NODE_KIND.make(tmp_path, "room")
    assert store.reserve_percent == store.repair_reserve_percent == 0
    avail, total = store.space(fresh=True)
    slack = 4 * 1024 * 1024  # anything else writing on the same filesystem meanwhile
    assert store.repair_room() <= avail - total * REPAIR_RESERVE / 100 + slack
    assert store.repair_room() >= avail - total * REPAIR_RESERVE / 100 - slack
    store.forget_space()
    assert store.free_bytes() <= avail - total * RESERVE / 100 + slack


def test_health_identity_and_probe(harness: Harness, tmp_path: Path):
    store = harness.make(tmp_path, "h0")
    me = store.identity()
    assert me is not None
    store.probe(me)  # the right store, taking durable writes
    with pytest.raises(StoreMissing):
        store.probe(str(uuid.uuid4()))
    store.initialize(str(uuid.uuid4()))  # adopting again keeps the identity it has
    assert store.identity() == me
    store.forget_cached_state()


# -- "a good block from any copy" (holdfast/stores/verify.py) over stores of this kind ----------


def test_copies_damaged_in_different_places_make_a_whole_blob(harness: Harness, tmp_path: Path):
    a, b = harness.make(tmp_path, "a"), harness.make(tmp_path, "b")
    data = secrets.token_bytes(4 * BLOCK)
    blob = put(a, data)
    put(b, data, blob.blob_id)
    harness.flip(a, blob.blob_id, BLOCK + 1)  # a: block 1 bad
    harness.flip(b, blob.blob_id, 3 * BLOCK + 1)  # b: block 3 bad
    reported: list[tuple[str, type]] = []
    failovers: list[int] = []
    copies = [Copy(a.store_id, a), Copy(b.store_id, b)]
    reader = CopyReader(
        blob,
        copies,
        lambda c, e: reported.append((c.store_id, type(e))),
        lambda: failovers.append(1),
    )
    assert b"".join(reader.stream(0, blob.size)) == data
    assert reported == [(a.store_id, CorruptBlock), (b.store_id, CorruptBlock)]
    assert len(failovers) == 2
    # A range, and block by block (repair), likewise.
    assert (
        b"".join(CopyReader(blob, copies).stream(BLOCK + 7, 3 * BLOCK + 9))
        == data[BLOCK + 7 : 3 * BLOCK + 9]
    )
    with CopyReader(blob, copies) as blocks:
        assert b"".join(blocks.block(i) for i in range(4)) == data
        # Each block from the first copy that has it right: b is never needed.
        assert [(str(f.copy), f.offset) for f in blocks.failures] == [(a.store_id, BLOCK)]


def test_no_good_copy_is_an_error_not_bytes(harness: Harness, tmp_path: Path):
    a, b = harness.make(tmp_path, "a"), harness.make(tmp_path, "b")
    data = secrets.token_bytes(3 * BLOCK)
    blob = put(a, data)
    put(b, data, blob.blob_id)
    for s in (a, b):
        harness.flip(s, blob.blob_id, 2 * BLOCK + 3)
    got = b""
    with pytest.raises(NoGoodCopy) as err:
        for chunk in CopyReader(blob, [Copy(a.store_id, a), Copy(b.store_id, b)]).stream(
            0, blob.size
        ):
            got += chunk
    assert got == data[: 2 * BLOCK] and err.value.offset == 2 * BLOCK
    assert {str(f.copy) for f in err.value.failures} == {a.store_id, b.store_id}


def test_missing_and_unknown_copies_fall_through(harness: Harness, tmp_path: Path):
    a, b = harness.make(tmp_path, "a"), harness.make(tmp_path, "b")
    data = secrets.token_bytes(2 * BLOCK)
    blob = put(b, data)
    copies = [Copy("elsewhere/d9", None), Copy(a.store_id, a), Copy(b.store_id, b)]
    reported: list[str] = []
    reader = CopyReader(blob, copies, lambda c, e: reported.append(c.store_id))
    assert b"".join(reader.stream(0, blob.size)) == data
    assert reported == [a.store_id], "an unknown store is not a failure of a known one"
    assert zlib.crc32(b"".join(CopyReader(blob, copies).stream(0, blob.size))) == zlib.crc32(data)


def test_quarantined_copies_are_a_last_resort(harness: Harness, tmp_path: Path):
    a = harness.make(tmp_path, "a")
    if Capability.QUARANTINE not in a.capabilities:
        pytest.skip(f"{a.kind} stores keep no quarantine")
    data = secrets.token_bytes(2 * BLOCK)
    blob = put(a, data)
    harness.flip(a, blob.blob_id, 3)  # block 0 bad in the copy that gets quarantined
    assert a.quarantine(blob.blob_id) is not None
    put(a, data[:BLOCK] + bytes(BLOCK), blob.blob_id)  # a new copy, block 1 wrong...
    harness.flip(a, blob.blob_id, 0)  # ...and block 0 too, so only the pair is whole
    copies = with_quarantined(blob.blob_id, [Copy(a.store_id, a)], {a.store_id: a})
    assert len(copies) == 2 and copies[1].quarantined
    with CopyReader(blob, copies) as reader:
        with pytest.raises(NoGoodCopy):
            reader.block(0)  # bad in both
        assert reader.block(1) == data[BLOCK:], "block 1 comes from the quarantined copy"


# -- a drive on another node: how many round trips a write takes (issue 16) ----------------------


def _rpcs(op: str) -> float:
    return (
        REGISTRY.get_sample_value("holdfast_internal_rpc_seconds_count", {"peer": "n2", "op": op})
        or 0.0
    )


def test_a_small_blob_goes_to_another_node_in_one_request(node_server, tmp_path: Path):
    """A blob complete before any data frame went out is one ``write_whole`` request (open,
    data, finish): no session opened beforehand, no data frame, no separate finish. A
    larger one opens its session with its first frame. Either way the blob reads back."""
    store = node_server.make(tmp_path, "w")
    ops = ("write_open", "write_data", "write_finish", "write_whole")
    before = {op: _rpcs(op) for op in ops}
    small = put(store, secrets.token_bytes(3 * BLOCK + 5))
    counts = {op: _rpcs(op) - before[op] for op in ops}
    assert counts == {"write_open": 0, "write_data": 0, "write_finish": 0, "write_whole": 1}
    assert read(store, small) == small.data
    big_data = secrets.token_bytes(2 * 1024 * 1024 + 7)
    big = put(store, big_data, piece=256 * 1024)
    counts = {op: _rpcs(op) - before[op] for op in ops}
    assert counts["write_open"] == 1 and counts["write_finish"] == 1
    assert counts["write_data"] == 3 and counts["write_whole"] == 1
    assert read(store, big) == big_data


def test_a_whole_blob_request_sent_again_writes_once(node_server, tmp_path: Path):
    """A ``write_whole`` sent again after a lost answer gets the first one's answer and
    writes nothing more; one whose bytes do not match their CRC32Cs stores nothing."""
    store = node_server.make(tmp_path, "w")
    data = secrets.token_bytes(BLOCK + 9)
    blob_id, crcs = new_blob_id(), crcs_of(data)
    args = {"session": secrets.token_hex(16), "block_size": BLOCK, "blob_id": blob_id,
            "crcs": crcs.hex(), "size": len(data), "replacing": False,
            "data": base64.b64encode(data).decode()}  # fmt: skip
    assert store.call("write_whole", **args) == {"quarantined": None}
    assert store.call("write_whole", **args) == {"quarantined": None}
    assert list(everything(store)) == [blob_id]
    assert read(store, Blob(blob_id, len(data), BLOCK, crcs, data)) == data
    bad = bytes([data[0] ^ 1]) + data[1:]
    other = new_blob_id()
    with pytest.raises(CorruptBlock) as err:
        store.call("write_whole", **{**args, "session": secrets.token_hex(16), "blob_id": other,
                                     "data": base64.b64encode(bad).decode()})  # fmt: skip
    assert err.value.block == 0
    assert store.stat(other) is None and store.stale_temporary(0) == 0
