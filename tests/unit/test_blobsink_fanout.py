"""BlobSink writes a blob's copies concurrently (holdfast/service/blobsink.py): every writer
gets each piece at the same time, and the copies are made durable at the same time, with the
write quorum and failover kept. The writers here are stand-ins that can only succeed when
the sink calls them at once (a barrier every writer must reach), or that fail on cue."""

from __future__ import annotations

import threading
import time

import pytest

from holdfast.service.blobsink import BlobSink, QuorumLost

BLOCK = 4096


class Body:
    def update(self, data) -> None:
        pass

    def finish(self) -> object:
        return "verified"


class Writer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.data = bytearray()
        self.finished: str | None = None
        self.aborted = False

    def write(self, data) -> None:
        self.store.step("write")
        self.data += data

    def finish(self, blob_id: str, crcs: bytes) -> None:
        self.store.step("finish")
        self.finished = blob_id

    def abort(self) -> None:
        self.aborted = True

    def abort_quietly(self) -> None:
        self.aborted = True


class Store:
    kind = "local"

    def __init__(self, store_id: str, barrier: threading.Barrier | None = None) -> None:
        self.store_id = store_id
        self.barrier = barrier
        self.fail: dict[str, BaseException] = {}
        self.threads: set[int] = set()
        self.writers: list[Writer] = []

    def writer(self, block_size: int) -> Writer:
        w = Writer(self)
        self.writers.append(w)
        return w

    def step(self, what: str) -> None:
        self.threads.add(threading.get_ident())
        if what in self.fail:
            raise self.fail[what]
        if self.barrier is not None:
            self.barrier.wait()  # BrokenBarrierError unless every writer is here at once


def test_every_copy_is_written_and_made_durable_at_the_same_time():
    barrier = threading.Barrier(3, timeout=5)
    stores = [Store(f"n{i}/d0", barrier) for i in (1, 2, 3)]
    sink = BlobSink(stores, BLOCK, min_copies=2)
    for _ in range(3):
        sink.absorb(Body(), b"x" * 10_000)
    segment, verified = sink.seal(Body(), b"y" * 100)
    assert verified == "verified" and segment.size == 30_100
    assert segment.stores == ("n1/d0", "n2/d0", "n3/d0") and segment.deferred == ()
    for s in stores:
        (w,) = s.writers
        assert bytes(w.data) == b"x" * 30_000 + b"y" * 100
        assert w.finished == segment.blob_id
    assert len(set().union(*(s.threads for s in stores))) == 3  # three threads at once


def test_a_copy_that_fails_is_dropped_and_owed_while_the_others_go_on():
    stores = [Store("n1/d0"), Store("n2/d0"), Store("n3/d0")]
    stores[1].fail["write"] = OSError("peer gone")
    sink = BlobSink(stores, BLOCK, min_copies=2)
    sink.absorb(Body(), b"x" * 5000)
    segment, _ = sink.seal(Body(), b"")
    assert segment.stores == ("n1/d0", "n3/d0", "n2/d0") and segment.deferred == ("n2/d0",)
    assert stores[1].writers[0].aborted
    assert stores[0].writers[0].finished == stores[2].writers[0].finished == segment.blob_id


def test_a_failed_finish_is_owed_too():
    stores = [Store("n1/d0"), Store("n2/d0")]
    stores[0].fail["finish"] = OSError("fsync failed")
    sink = BlobSink(stores, BLOCK, min_copies=1)
    sink.absorb(Body(), b"x" * 5000)
    segment, _ = sink.seal(Body(), b"")
    assert segment.stores == ("n2/d0", "n1/d0") and segment.deferred == ("n1/d0",)


def test_below_the_quorum_the_write_fails_and_every_writer_is_aborted():
    stores = [Store("n1/d0"), Store("n2/d0"), Store("n3/d0")]
    stores[0].fail["write"] = OSError("drive pulled")
    stores[2].fail["write"] = OSError("peer gone")
    sink = BlobSink(stores, BLOCK, min_copies=2)
    with pytest.raises(QuorumLost):
        sink.absorb(Body(), b"x" * 5000)
    assert all(s.writers[0].aborted for s in stores)


def test_an_unexpected_error_is_raised_only_once_every_writer_has_stopped():
    """A bug in one writer must not leave another still writing when the caller aborts."""
    done = threading.Event()

    class Slow(Store):
        def step(self, what: str) -> None:
            time.sleep(0.3)
            done.set()

    stores = [Store("n1/d0"), Slow("n2/d0")]
    stores[0].fail["write"] = ValueError("a bug")
    sink = BlobSink(stores, BLOCK, min_copies=1)
    with pytest.raises(ValueError, match="a bug"):
        sink.absorb(Body(), b"x" * 5000)
    assert done.is_set()
