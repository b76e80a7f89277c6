"""The bit-flipping proxy (issue #17): between two nodes, a proxy flips single bits in a share
of what it forwards. Every corrupted message must be rejected and none applied, no corrupt
byte stored or served, and the rejected-messages counter must agree with the flips made.

**Where the flips land, and why.** A proxy that flips bits in the TLS *ciphertext* only
tests TLS: the record's MAC fails, OpenSSL drops the connection, and the frame checksums
never see a damaged byte (:func:`test_flips_in_tls_records_are_caught_by_tls` shows exactly
that: connections fail and are retried, and no frame is ever counted as rejected). To test
the frames' own checksums, :class:`FlippingProxy` terminates TLS on both sides, as a node
would: it holds certificates from the cluster CA (the name of the node it impersonates on
each side), so both legs are real mutual TLS, and it flips bits in the *plaintext frame
stream* between them, where nothing but the frame checksums stands between a flipped bit
and the store. It reads whole frames (trusting the real sender's header for the length)
and picks each frame for a flip with a probability that grows with its size (each byte
with probability FLIP_PER_BYTE; at least MIN_FRAME_SHARE, at most MAX_FRAME_SHARE a frame), then flips one random
bit at a random position of the frame: header, checksums or payload alike.

At most one flip per connection: the receiver of a corrupted frame ends the connection
(its framing can no longer be trusted), so frames behind it would never be read and could
not be counted; with one flip per connection, every flip is the first damaged frame its
receiver sees, and the counter must equal the flips exactly. The sender then retries on a
new connection, where the proxy may flip again.
"""

from __future__ import annotations

import random
import secrets
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from holdfast.net import pki
from holdfast.net.frames import HEADER_SIZE, Kind
from holdfast.net.tls import client_context, server_context
from holdfast.stores.base import new_blob_id
from holdfast.stores.blocks import BlockChecksummer
from holdfast.stores.local import LocalStore
from holdfast.stores.node import NodeStore
from tests.net import support

REJECTED = "holdfast_internal_messages_rejected_total"
BS = 16 * 1024
FLIP_PER_BYTE = 1 / 150_000
MIN_FRAME_SHARE = 0.04
MAX_FRAME_SHARE = 0.5  # 1 MiB frames: every other one, so a retried window still gets through


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        got = sock.recv(n - len(buf))
        if not got:
            raise ConnectionResetError
        buf += got
    return bytes(buf)


def _hang_up(socks) -> None:
    """shutdown() first: a plain close() does not wake the other pump's blocked recv, and
    the kernel sends no FIN while it holds the socket, so the node would wait for a timeout."""
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


@dataclass
class Flip:
    direction: str
    kind: int
    position: int  # byte of the frame (0-19: header)
    length: int


class FlippingProxy:
    """See the module docstring. ``tls=False``: a plain TCP proxy flipping bits in the TLS
    records themselves."""

    def __init__(self, target: int, server_ctx, client_ctx, seed: int, tls: bool = True) -> None:
        self.target = target
        self.server_ctx = server_ctx
        self.client_ctx = client_ctx
        self.tls = tls
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.flips: list[Flip] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(conn,), daemon=True).start()

    def _connect(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for s in (conn, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                conn = self.server_ctx.wrap_socket(conn, server_side=True)
                upstream = self.client_ctx.wrap_socket(upstream)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        state = {"flipped": False}
        pump = self._pump_frames if self.tls else self._pump_bytes
        for a, b, name in ((conn, upstream, "to-server"), (upstream, conn, "to-client")):
            threading.Thread(target=pump, args=(a, b, name, state, (conn, upstream)),
                             daemon=True).start()  # fmt: skip

    def _maybe_flip(self, data: bytes, direction: str, state: dict, kind: int) -> bytes:
        with self.lock:
            if state["flipped"]:
                return data
            share = min(MAX_FRAME_SHARE, max(MIN_FRAME_SHARE, 1 - (1 - FLIP_PER_BYTE) ** len(data)))
            if self.rng.random() >= share:
                return data
            state["flipped"] = True
            pos = self.rng.randrange(len(data))
            bit = self.rng.randrange(8)
            self.flips.append(Flip(direction, kind, pos, len(data)))
        out = bytearray(data)
        out[pos] ^= 1 << bit
        return bytes(out)

    def _pump_frames(self, src, dst, direction, state, both) -> None:
        try:
            while True:
                head = _recv_exactly(src, HEADER_SIZE)
                length = struct.unpack_from(">I", head, 8)[0]
                frame = head + _recv_exactly(src, length)
                dst.sendall(self._maybe_flip(frame, direction, state, head[3]))
        except (OSError, ssl.SSLError):
            pass
        finally:
            _hang_up(both)

    def _pump_bytes(self, src, dst, direction, state, both) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(self._maybe_flip(data, direction, state, 0))
        except OSError:
            pass
        finally:
            _hang_up(both)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("bitflip")
    cluster = support.cluster_init(work / "cluster", ("n1", "n2"))
    # The proxy's own certificate for its client-facing side: it claims to be n2.
    ca_cert, ca_key = pki.load_ca(cluster)
    cert, key = pki.make_node_cert(ca_cert, ca_key, "n2")
    pki.write_pair(cert, key, work / "proxy-n2.pem", work / "proxy-n2.key")
    return cluster


@pytest.fixture
def n2(cluster, tmp_path) -> Iterator[support.ServerProcess]:
    server = support.start_node(tmp_path / "n2", cluster, "n2", ("n1", "n2"))
    yield server
    server.stop()


def proxy_contexts(cluster: Path):
    n1 = support.identity(cluster, "n1")
    work = cluster.parent
    posing_n2 = support.NodeIdentity("n2", "", work / "proxy-n2.pem", work / "proxy-n2.key", n1.ca)
    return server_context(posing_n2), client_context(n1)


@dataclass
class Written:
    blob_id: str
    size: int
    block_size: int
    crcs: bytes
    data: bytes


def write(store: NodeStore, data: bytes, rng: random.Random) -> Written:
    c = BlockChecksummer(BS)
    c.update(data)
    crcs = c.finish()
    writer = store.writer(BS)
    i = 0
    while i < len(data):
        n = rng.randint(1, 3 * BS)
        writer.write(data[i : i + n])
        i += n
    blob_id = new_blob_id()
    writer.finish(blob_id, crcs)
    return Written(blob_id, len(data), BS, crcs, data)


def workload(
    store: NodeStore, rng: random.Random, count: int, big: bool = True
) -> dict[str, Written]:
    """Writes, reads (whole and ranged), stats, deletes and heartbeats; returns the blobs
    that must be on the drive afterwards. Every answer is checked exactly."""
    kept: dict[str, Written] = {}
    for i in range(count):
        size = rng.choice([0, 1, BS - 1, BS, rng.randint(1, 6 * BS)])
        if big and i % 12 == 5:
            size = rng.randint(160 * BS, 200 * BS)  # several 1 MiB frames in flight at once
        data = secrets.token_bytes(size)
        blob = write(store, data, rng)
        assert b"".join(store.read_blocks(blob, 0, blob.size)) == data, "corrupt bytes served"
        if blob.size > 2:
            a = rng.randrange(blob.size - 1)
            b = rng.randint(a + 1, blob.size)
            assert b"".join(store.read_blocks(blob, a, b)) == data[a:b]
        info = store.stat(blob.blob_id)
        assert info is not None and info.size == blob.size
        store.client.call("n2", "heartbeat", {"seq": i}, kind=Kind.HEARTBEAT)
        if i % 3 == 2:
            store.delete(blob.blob_id)
            assert store.stat(blob.blob_id) is None
        else:
            kept[blob.blob_id] = blob
    return kept


def rejected_total(n2: support.ServerProcess) -> float:
    return n2.sample(REJECTED) + support.local_sample(REJECTED)


def test_every_flipped_frame_is_rejected_and_none_applied(cluster, n2):
    server_ctx, client_ctx = proxy_contexts(cluster)
    proxy = FlippingProxy(n2.port, server_ctx, client_ctx, seed=20081)
    client = support.client_for(
        cluster, "n1", {"n2": proxy.port}, attempts=40, backoff_base=0.001, backoff_cap=0.01
    )
    store = NodeStore("n2", "d0", client)
    before = rejected_total(n2)
    try:
        kept = workload(store, random.Random(7), 36)
    finally:
        client.close()
        proxy.close()
    flips = proxy.flips
    kinds = {Kind(f.kind).name for f in flips if f.kind in set(Kind)}
    assert len(flips) >= 15, f"too few flips to mean anything: {len(flips)}"
    assert {"REQUEST", "ANSWER", "DATA"} <= kinds, kinds
    assert any(f.position < HEADER_SIZE for f in flips), "no header was hit"
    assert any(f.kind == Kind.DATA and f.length > 512 * 1024 for f in flips), (
        "no frame of a write with several frames in flight was hit"
    )
    assert support.wait_for(lambda: rejected_total(n2) - before >= len(flips), 5)
    assert rejected_total(n2) - before == len(flips), "every flip rejected, each counted once"
    # What n2's drive holds, read directly from its disk: exactly the kept blobs, each intact;
    # nothing a damaged message could have written, deleted or left half-written.
    drive = LocalStore("n2/d0", n2.root / "d0")
    on_disk = {b.blob_id for h in drive.hours() for b in drive.list_blobs(h, limit=10_000).blobs}
    assert on_disk == set(kept)
    for blob in kept.values():
        assert b"".join(drive.read_blocks(blob, 0, blob.size)) == blob.data
    assert drive.stale_temporary(0) == 0
    assert drive.quarantined() == []


def test_flips_in_tls_records_are_caught_by_tls(cluster, n2):
    """The control: flipping ciphertext breaks TLS records (MAC failure), not frames."""
    proxy = FlippingProxy(n2.port, None, None, seed=2017, tls=False)
    client = support.client_for(
        cluster, "n1", {"n2": proxy.port}, attempts=40, backoff_base=0.001, backoff_cap=0.01
    )
    store = NodeStore("n2", "d0", client)
    before = rejected_total(n2)
    try:
        # No multi-MiB blobs here: one flip in any 64 KiB of ciphertext ends the connection,
        # so a window of 1 MiB frames would rarely get through. How many flips a round gets
        # depends on how the bytes happen to be chunked: more rounds (at most 4) until 3.
        kept: dict[str, Written] = {}
        for round_ in range(4):
            kept.update(workload(store, random.Random(8 + round_), 9, big=False))
            if len(proxy.flips) >= 3:
                break
    finally:
        client.close()
        proxy.close()
    assert len(proxy.flips) >= 3
    assert rejected_total(n2) == before, "TLS let a damaged record through to the frames"
    drive = LocalStore("n2/d0", n2.root / "d0")
    for blob in kept.values():
        assert b"".join(drive.read_blocks(blob, 0, blob.size)) == blob.data


def test_a_proxy_without_flips_changes_nothing(cluster, n2):
    """The proxy itself is transparent (so the counts above are the flips' doing)."""
    server_ctx, client_ctx = proxy_contexts(cluster)
    proxy = FlippingProxy(n2.port, server_ctx, client_ctx, seed=1)
    proxy.rng = random.Random(1)
    proxy.rng.random = lambda: 1.0  # never flip
    client = support.client_for(cluster, "n1", {"n2": proxy.port}, attempts=1)
    before = rejected_total(n2)
    try:
        workload(NodeStore("n2", "d0", client), random.Random(9), 6)
    finally:
        client.close()
        proxy.close()
    assert rejected_total(n2) == before and proxy.flips == []
