"""A node that dies: its drives fail like a pulled local drive (an OSError, after a bounded
number of quick retries, never a hang), and holdfast/stores/verify.py fails over to a copy
on another node in the middle of a stream."""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from holdfast.net.errors import NodeUnreachable, PeerNotListening
from holdfast.stores.base import new_blob_id
from holdfast.stores.blocks import BlockChecksummer
from holdfast.stores.node import NodeStore
from holdfast.stores.verify import Copy, CopyReader
from tests.net import support

BS = 64 * 1024


class Blob:
    def __init__(self, data: bytes) -> None:
        c = BlockChecksummer(BS)
        c.update(data)
        self.blob_id, self.size, self.block_size, self.crcs = (
            new_blob_id(),
            len(data),
            BS,
            c.finish(),
        )


def test_a_dead_node_fails_over_mid_stream_and_fails_fast(tmp_path):
    cluster = support.cluster_init(tmp_path / "cluster")
    n2 = support.start_node(tmp_path / "n2", cluster, "n2")
    n3 = support.start_node(tmp_path / "n3", cluster, "n3")
    client = support.client_for(cluster, "n1", {"n2": n2.port, "n3": n3.port})
    try:
        a, b = NodeStore("n2", "d0", client), NodeStore("n3", "d0", client)
        data = secrets.token_bytes(256 * BS)  # 16 MiB: more than the socket buffers hold
        blob = Blob(data)
        for store in (a, b):
            w = store.writer(BS)
            w.write(data)
            w.finish(blob.blob_id, blob.crcs)
        failed: list[str] = []
        reader = CopyReader(blob, [Copy(a.store_id, a), Copy(b.store_id, b)],
                            lambda c, e: failed.append(f"{c.store_id}:{type(e).__name__}"))  # fmt: skip
        got = bytearray()
        start = time.monotonic()
        for chunk in reader.stream(0, blob.size):
            got += chunk
            if len(got) == BS:
                n2.stop()  # SIGKILL n2 after its first block
        assert bytes(got) == data, "the stream went on from n3, every byte right"
        assert failed and failed[0].startswith("n2/d0:")
        assert time.monotonic() - start < 10
        start = time.monotonic()
        try:
            a.stat(blob.blob_id)
            raise AssertionError("a dead node answered")
        except NodeUnreachable as e:
            assert isinstance(e, OSError)
        assert time.monotonic() - start < 5, "bounded retries, not a hang"
    finally:
        client.close()
        n2.stop()
        n3.stop()


def test_a_killed_node_costs_one_attempt_not_a_backoff_per_idle_connection(tmp_path):
    """SIGKILL of a node leaves this node's idle connections to it dead. The first call
    after it meets one closed, drops them all (they were made to the same process) and
    finds nothing listening: one retry at most, not one backoff per connection and five
    attempts. bench/cluster_faults.py measured what the old way cost during a GET load."""
    cluster = support.cluster_init(tmp_path / "cluster")
    n2 = support.start_node(tmp_path / "n2", cluster, "n2")
    sleeps: list[float] = []
    client = support.client_for(cluster, "n1", {"n2": n2.port}, sleep=sleeps.append)
    try:
        store = NodeStore("n2", "d0", client)
        with ThreadPoolExecutor(4) as pool:  # four idle connections in the pool
            list(pool.map(lambda _: store.stat(new_blob_id()), range(8)))
        assert not client.unreachable("n2")
        n2.stop()  # SIGKILL
        with pytest.raises(PeerNotListening):
            store.stat(new_blob_id())
        assert len(sleeps) <= 1, sleeps
        assert client.unreachable("n2")
        sleeps.clear()
        with pytest.raises(PeerNotListening):
            store.stat(new_blob_id())
        assert sleeps == []
    finally:
        client.close()
        n2.stop()
