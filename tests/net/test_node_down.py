"""A node that dies: its drives fail like a pulled local drive (an OSError, after a bounded
number of quick retries, never a hang), and holdfast/stores/verify.py fails over to a copy
on another node in the middle of a stream."""

from __future__ import annotations

import secrets
import time

from holdfast.net.errors import NodeUnreachable
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
            assert isinstance(e, OSError) and "failed 5 times" in str(e)
        assert time.monotonic() - start < 5, "bounded retries, not a hang"
    finally:
        client.close()
        n2.stop()
        n3.stop()
