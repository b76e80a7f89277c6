"""A drive on another node (the Store interface's ``"node"`` kind), over the node-to-node
RPC (holdfast/net/): ``NodeStore("n2", "d0", client)`` is node n2's drive d0, store id
``n2/d0``, served there by the node's :class:`holdfast.net.server.InternalServer` from its
LocalStore.

Blob data keeps its per-block CRC32C end to end:

* **writes** of a small blob (up to WHOLE_BYTES, complete before any frame went out) are one
  ``write_whole`` request: open, every block checked against the caller's CRC32Cs, write
  and finish (durable) there, in one round trip. Larger ones open a session with their
  first frame, then stream in DATA frames of whole blocks (about 1 MiB a frame, WINDOW of them in
  flight before the oldest answer is awaited), each block with the CRC32C this writer
  computed of what its caller gave it; the remote node checks every
  block against it before writing it, and ``finish`` checks the whole list against the
  caller's CRCs there, as a local drive does. Frames not yet answered when a connection
  fails or a frame is rejected are sent again, in order, on a new connection (each carries
  its offset, so nothing is appended twice); nothing is durable before ``finish`` answers.
* **reads** ask for the whole blocks a range touches; each arrives with its CRC32C and is
  verified here, against the CRCs the *index* holds (``blob.crcs``), before a byte of it is
  yielded. A stream that breaks off (a frame that failed its check, a dropped connection)
  is asked for again from the first block not yet yielded, with backoff.

Failures look like a local drive's: CorruptBlock, FileNotFoundError, StoreFull,
StoreMissing, and OSError (NodeUnreachable) for a node that does not answer, so
holdfast/stores/verify.py fails over to another copy without knowing the kind.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import crc32c

from holdfast.net.client import Connection, NodeClient, PeerRejected, StreamBroken, observe_rpc
from holdfast.net.errors import NodeUnreachable, PeerNotListening, decode_error
from holdfast.net.frames import BadFrame, Kind, check_blocks, data_parts, parse_json
from holdfast.net.server import WireBlob
from holdfast.stores.base import (
    BlobInfo,
    BlobLayout,
    BlobPage,
    BlobReader,
    BlobWriter,
    Capability,
    Store,
    qualify_store_id,
)
from holdfast.stores.blocks import CorruptBlock, verify_block

CHUNK_BYTES = 1024 * 1024  # a DATA frame carries about this much (whole blocks)
# A blob no larger than this that is complete before any DATA frame went out is sent in one
# ``write_whole`` request (open, data, finish): one round trip instead of three. Its bytes
# travel base64 in the JSON request, which the peer parses on its event loop: kept small.
WHOLE_BYTES = 256 * 1024
WINDOW = 4  # DATA frames a writer has in flight before it waits for the oldest answer
SPACE_TTL = 2.0


def _wire(blob: BlobLayout) -> dict[str, Any]:
    return WireBlob(blob.blob_id, blob.size, blob.block_size, blob.crcs).to_json()


def _info(obj: dict[str, Any] | None) -> BlobInfo | None:
    return None if obj is None else BlobInfo(obj["blob_id"], int(obj["size"]), float(obj["mtime"]))


class NodeBlobWriter(BlobWriter):
    def __init__(self, store: NodeStore, block_size: int) -> None:
        self.store = store
        self.block_size = block_size
        self.size = 0
        self.chunk_bytes = max(1, CHUNK_BYTES // block_size) * block_size
        self.session = secrets.token_bytes(16)
        # The session is opened on the peer with the first DATA frame's send, not here: a
        # small blob never opens one (``write_whole``), and a large one does not wait for
        # the open before its body has started to arrive.
        self._opened = False
        self._buf = bytearray()
        self._sent = 0
        self._done = False
        self._conn: Connection | None = None
        self._inflight: deque[list] = deque()  # [request id, frame parts, sent], oldest first
        self._failures = 0

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.size += len(view)
        if self._buf:
            need = self.chunk_bytes - len(self._buf)
            self._buf += view[:need]
            view = view[need:]
            if len(self._buf) == self.chunk_bytes:
                self._send(memoryview(self._buf))
                self._buf = bytearray()
        while len(view) >= self.chunk_bytes:
            self._send(view[: self.chunk_bytes])
            view = view[self.chunk_bytes :]
        if view:
            self._buf += view

    def _send(self, data: memoryview) -> None:
        """Send one chunk without waiting for its answer: up to WINDOW frames are in
        flight, kept (copied: the caller may reuse its buffer) until answered, and sent
        again in order on a new connection if the connection fails or a frame is rejected
        (the node acknowledges a chunk it already has without appending it again)."""
        if not self._opened:
            self.store.call("write_open", block_size=self.block_size, session=self.session.hex())
            self._opened = True
        bs = self.block_size
        chunk = memoryview(bytes(data))
        blocks = [chunk[i : i + bs] for i in range(0, len(chunk), bs)]
        parts = data_parts(self.session, self._sent, blocks, [crc32c.crc32c(b) for b in blocks])
        self._sent += len(chunk)
        entry: list = [0, parts, time.monotonic()]  # request id, frame, first sent
        self._inflight.append(entry)
        self._transmit([entry])
        while len(self._inflight) >= WINDOW:
            self._ack()

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.store.client.checkout(self.store.node)
        return self._conn

    def _transmit(self, entries: list[list]) -> None:
        try:
            conn = self._connection()
            for entry in entries:
                entry[0] = conn.next_id()
                conn.send(Kind.DATA, entry[0], entry[1])
        except (OSError, BadFrame) as e:
            self._recover(e)

    def _ack(self) -> None:
        """Read the answer to the oldest frame in flight."""
        try:
            conn = self._connection()
            header, payload = conn.recv()
            if header.kind == Kind.REJECTED:
                raise PeerRejected(f"node {self.store.node} rejected a data frame (not applied)")
            if header.kind != Kind.ANSWER or header.request_id != self._inflight[0][0]:
                raise BadFrame(f"unexpected {header.kind.name} {header.request_id}", header.kind)
            answer = parse_json(payload, header)
        except (OSError, BadFrame) as e:
            self._recover(e)
            return
        if not answer.get("ok"):
            self._drop_connection()
            raise decode_error(answer.get("error", {}), self.store.node)
        done = self._inflight.popleft()
        observe_rpc(self.store.node, "write_data", time.monotonic() - done[2])
        self._failures = 0

    def _recover(self, err: BaseException) -> None:
        """The connection failed or a frame was rejected: a new connection, and every frame
        not yet answered sent again, after a backoff; NodeUnreachable after ``attempts``."""
        client = self.store.client
        client.failed(self.store.node, self._conn, err)
        self._conn = None
        if isinstance(err, PeerNotListening):
            raise err  # nothing listens there: not retried (holdfast/net/client.py)
        self._failures += 1
        if self._failures >= client.attempts:
            raise NodeUnreachable(
                f"node {self.store.node}: blob data failed {self._failures} times, last: {err}"
            ) from err
        time.sleep(client.backoff(self._failures - 1))
        self._transmit(list(self._inflight))

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._inflight.clear()

    def _flush(self) -> None:
        """Send what is buffered and wait for every answer."""
        if self._buf:
            self._send(memoryview(self._buf))
            self._buf = bytearray()
        while self._inflight:
            self._ack()
        if self._conn is not None:
            self.store.client.checkin(self._conn)
            self._conn = None

    def _finish(self, blob_id: str, crcs: bytes, replacing: bool) -> str | None:
        if not self._opened and len(self._buf) <= WHOLE_BYTES:
            try:
                result = self._whole(blob_id, crcs, replacing)
            except BaseException:
                self.abort_quietly()
                raise
            if result is not None:
                self._done = True
                return result["quarantined"]
        try:
            self._flush()
            result = self.store.call(
                "write_finish",
                session=self.session.hex(),
                blob_id=blob_id,
                crcs=crcs.hex(),
                size=self.size,
                replacing=replacing,
            )
        except BaseException:
            self.abort_quietly()
            raise
        self._done = True
        return result["quarantined"]

    def _whole(self, blob_id: str, crcs: bytes, replacing: bool) -> dict | None:
        """The whole blob in one request: the peer opens, checks every block against
        ``crcs`` (the caller's, as ``finish`` checks them), writes and makes it durable, and
        remembers its answer under the session like a finish. None from a peer that does not
        know the request (an older Holdfast during an upgrade): the three-step path then."""
        try:
            return self.store.call(
                "write_whole",
                session=self.session.hex(),
                block_size=self.block_size,
                blob_id=blob_id,
                crcs=crcs.hex(),
                size=self.size,
                replacing=replacing,
                data=base64.b64encode(self._buf).decode("ascii"),
            )
        except ValueError as e:
            if "no op 'write_whole'" not in str(e):
                raise
            return None

    def finish(self, blob_id: str, crcs: bytes) -> None:
        self._finish(blob_id, crcs, False)

    def finish_replacing(self, blob_id: str, crcs: bytes) -> str | None:
        return self._finish(blob_id, crcs, True)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._buf = bytearray()
        self._drop_connection()
        if self._opened:  # else the peer has nothing of this blob
            self.store.call("write_abort", session=self.session.hex())


class NodeBlobReader(BlobReader):
    def __init__(self, store: NodeStore, blob: BlobLayout, copy: str | None) -> None:
        self.store = store
        self.blob = blob
        self.copy = copy

    def read_block(self, block: int) -> bytes:
        b = self.blob
        start = block * b.block_size
        return b"".join(
            bytes(x) for x in self.store._blocks(b, block, block, self.copy, start, 1 << 62)
        )

    def close(self) -> None:
        return None


class NodeStore(Store):
    """Drive ``drive`` of node ``node``, through ``client``; see the module docstring."""

    kind = "node"
    capabilities = frozenset(Capability)

    def __init__(
        self,
        node: str,
        drive: str,
        client: NodeClient,
        reserve_percent: float = 0.0,
        repair_reserve_percent: float = 0.0,
    ) -> None:
        self.node = node
        self.drive = drive
        self.client = client
        self.store_id = qualify_store_id(node, drive)
        self.reserve_percent = reserve_percent
        self.repair_reserve_percent = repair_reserve_percent
        self._space: tuple[float, tuple[int, int]] | None = None

    def call(self, op: str, **args: Any) -> Any:
        return self.client.call(self.node, op, {"drive": self.drive, **args})

    def location(self) -> str:
        return f"node {self.node}, drive {self.drive}"

    # -- identity and health ----------------------------------------------------------------

    def identity(self) -> str | None:
        return self.call("identity")

    def initialize(self, uuid: str) -> None:
        self.call("initialize", uuid=uuid)

    def probe(self, uuid: str) -> None:
        self.call("probe", uuid=uuid)

    def forget_cached_state(self) -> None:
        self._space = None

    # -- capacity ---------------------------------------------------------------------------

    def space(self, fresh: bool = False) -> tuple[int, int]:
        now = time.monotonic()
        if not fresh and self._space is not None and now - self._space[0] < SPACE_TTL:
            return self._space[1]
        avail, total = self.call("space", fresh=fresh)
        self.note_space(int(avail), int(total), now)
        return int(avail), int(total)

    def note_space(self, avail: int, total: int, when: float | None = None) -> None:
        """Free space learnt otherwise (heartbeats carry it, so placement makes no call)."""
        self._space = (time.monotonic() if when is None else when, (avail, total))

    def forget_space(self) -> None:
        self._space = None

    # The reserves are the owner's: its drive, its flags. The reserve_percent and
    # repair_reserve_percent this object was built with (0 from ClusterStores) say nothing
    # about another node, and computing the room from them let repair fill a peer's drive
    # to the brim (the storm test, tests/cluster/test_storm.py, saw 99.8 % at a 5 % reserve).

    def free_bytes(self) -> int:
        """Room for a foreground write, net of the owner's write reserve: from the last
        heartbeat (its ``free`` is already net of it), else asked."""
        now = time.monotonic()
        cached = self._space
        if cached is not None and cached[1][1] == 0 and now - cached[0] < SPACE_TTL:
            return cached[1][0]
        free = int(self.call("free_bytes"))
        self.note_space(free, 0, now)
        return free

    def repair_room(self) -> int:
        """Room for repair above the owner's repair reserve, asked fresh each time."""
        return int(self.call("repair_room"))

    # -- blobs ------------------------------------------------------------------------------

    def writer(self, block_size: int) -> NodeBlobWriter:
        return NodeBlobWriter(self, block_size)

    def _blocks(
        self, blob: BlobLayout, first: int, last: int, copy: str | None, start: int, end: int
    ) -> Iterator[memoryview]:
        """Blocks first..last, each verified against the index's CRCs, cut to [start, end);
        a broken stream is asked for again from the next block, with backoff."""
        bs, size = blob.block_size, blob.size
        block = first
        failures = 0
        while block <= last:
            args = {"drive": self.drive, "blob": _wire(blob), "first": block, "last": last,
                    "copy": copy}  # fmt: skip
            try:
                for chunk in self.client.stream(self.node, "read", args):
                    if chunk.offset != block * bs:
                        raise CorruptBlock(blob.blob_id, block, "block sent out of order")
                    try:
                        pieces = check_blocks(chunk, bs)
                    except ValueError as e:
                        raise CorruptBlock(blob.blob_id, block, str(e)) from None
                    for data in pieces:
                        expected = min(bs, size - block * bs)
                        verify_block(data, expected, blob.crcs, block, blob.blob_id)
                        lo = max(start - block * bs, 0)
                        hi = min(end - block * bs, len(data))
                        block += 1
                        yield data if (lo == 0 and hi == len(data)) else data[lo:hi]
                if block <= last:
                    raise CorruptBlock(blob.blob_id, block, "stream ended early")
            except StreamBroken:
                failures += 1
                if failures >= self.client.attempts:
                    raise
                time.sleep(self.client.backoff(failures - 1))

    def read_blocks(self, blob: BlobLayout, start: int, end: int) -> Iterator[bytes]:
        if start >= end:
            return
        bs = blob.block_size
        for data in self._blocks(blob, start // bs, (end - 1) // bs, None, start, end):
            yield bytes(data)

    def open_blob(self, blob: BlobLayout, copy: str | None = None) -> NodeBlobReader:
        self.call("exists", blob=_wire(blob), copy=copy)
        return NodeBlobReader(self, blob, copy)

    def stat(self, blob_id: str) -> BlobInfo | None:
        return _info(self.call("stat", blob_id=blob_id))

    def delete(self, blob_id: str) -> None:
        self.call("delete", blob_id=blob_id)

    # -- listing ----------------------------------------------------------------------------

    def hours(self) -> list[str]:
        return list(self.call("hours"))

    def list_blobs(self, hour: str, cursor: str | None = None, limit: int = 1000) -> BlobPage:
        page = self.call("list", hour=hour, cursor=cursor, limit=limit)
        return BlobPage([b for b in map(_info, page["blobs"]) if b], page["cursor"])

    def tree_digests(self, hour: str | None = None) -> dict[str, str]:
        return dict(self.call("digests", hour=hour))

    def leaf_blobs(self, hour: str, leaf: str) -> dict[str, int]:
        return {str(b): int(n) for b, n in self.call("leaf", hour=hour, leaf=leaf).items()}

    # -- quarantine, leftovers --------------------------------------------------------------

    def quarantine(self, blob_id: str) -> str | None:
        return self.call("quarantine", blob_id=blob_id)

    def quarantined(self, blob_id: str | None = None) -> list[str]:
        return list(self.call("quarantined", blob_id=blob_id))

    def stale_temporary(self, older_than: float) -> int:
        return int(self.call("stale_temporary", older_than=older_than))

    def remove_stale_temporary(self, older_than: float) -> int:
        return int(self.call("remove_stale_temporary", older_than=older_than))
