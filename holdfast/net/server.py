"""The node-to-node server: :class:`InternalServer`.

Usage (from the node's event loop; uvloop works)::

    server = InternalServer(identity, stores, peers)   # NodeIdentity, {store id: Store}, Peers
    server.on(Kind.HEARTBEAT, handler)                 # async handler(peer, message) -> result
    await server.start(host, port)                     # --cluster-listen; port 0: any
    ...
    await server.close()

It listens on its own port (``--cluster-listen``), apart from the S3 port and its client
TLS. Each connection is accepted as plain TCP and then upgraded to TLS here, so that a
failed handshake (a certificate from another CA, an expired one, none) is seen, classified,
counted and logged by us rather than dropped silently inside the event loop; then the
client's node name is checked against the layout (holdfast/net/tls.py).

Every frame is checked before anything in it is used (holdfast/net/frames.py). A frame that
fails is counted and logged against the peer, answered with REJECTED, and the connection
is closed: nothing it carried is applied, and the client sends it again on a new connection.

**What it serves**: this node's stores, by drive name (``d0``), to the other nodes'
:class:`holdfast.stores.node.NodeStore` (ops listed in ``_OPS``), plus heartbeats and layout
notices, whose handlers the cluster layer registers with :meth:`InternalServer.on`. Store
calls block, so they run in a thread pool; the event loop only moves frames.

**Blob writes** are sessions that outlive a connection: ``write_open`` makes a writer on the
drive, each DATA frame appends blocks at an explicit offset (a frame sent again after a lost
answer is recognised and acknowledged, not appended twice), and ``write_finish`` checks the
whole blob's CRC32Cs and makes it durable (the Store contract); its answer is remembered, so
a finish sent again gets the same answer. Each block is checked against the CRC32C it came
with before it is written. A session idle for ``session_idle`` seconds is aborted.
A small blob comes whole in one ``write_whole`` request instead (open, data, finish).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import crc32c

from holdfast.net import frames
from holdfast.net.errors import SessionLost, encode_error
from holdfast.net.frames import HEADER_SIZE, BadFrame, Kind
from holdfast.net.tls import (
    NodeIdentity,
    Peers,
    Refused,
    check_client,
    classify_handshake_error,
    refuse,
    server_context,
)
from holdfast.stores.base import BlobInfo, BlobWriter, Store, StoreMissing, qualify_store_id
from holdfast.stores.blocks import CorruptBlock

log = logging.getLogger("holdfast.net")

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]
READ_FRAME_BYTES = 1024 * 1024  # blocks per DATA frame on reads: about this many bytes
STREAM_LIMIT = 4 * 1024 * 1024  # asyncio stream buffer: a whole 1 MiB frame and the next


@dataclass(frozen=True)
class WireBlob:
    """A blob's layout as sent over the wire (the BlobLayout protocol)."""

    blob_id: str
    size: int
    block_size: int
    crcs: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "blob_id": self.blob_id,
            "size": self.size,
            "block_size": self.block_size,
            "crcs": self.crcs.hex(),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> WireBlob:
        size, block_size = int(obj["size"]), int(obj["block_size"])
        if size < 0 or block_size <= 0:
            raise ValueError("bad blob layout")
        return cls(str(obj["blob_id"]), size, block_size, bytes.fromhex(obj["crcs"]))


def info_json(info: BlobInfo | None) -> dict[str, Any] | None:
    return None if info is None else {"blob_id": info.blob_id, "size": info.size,
                                      "mtime": info.mtime}  # fmt: skip


@dataclass
class WriteSession:
    writer: BlobWriter
    block_size: int
    next: int = 0
    touched: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


class InternalServer:
    """See the module docstring."""

    def __init__(
        self,
        identity: NodeIdentity,
        stores: Mapping[str, Store],
        peers: Peers,
        *,
        executor: ThreadPoolExecutor | None = None,
        handshake_timeout: float = 10.0,
        frame_timeout: float = 30.0,
        idle_timeout: float = 600.0,
        session_idle: float = 120.0,
    ) -> None:
        self.identity = identity
        self.name = identity.name
        self.stores = stores
        self.peers = peers
        self.context = server_context(identity)
        self._own_executor = executor is None
        self.executor = executor or ThreadPoolExecutor(8, thread_name_prefix="holdfast-internal")
        self.handshake_timeout = handshake_timeout
        self.frame_timeout = frame_timeout
        self.idle_timeout = idle_timeout
        self.session_idle = session_idle
        self.handlers: dict[Kind, Handler] = {Kind.HEARTBEAT: self._heartbeat}
        self.sessions: dict[bytes, WriteSession] = {}
        self.sessions_lock = threading.Lock()
        self.finished: OrderedDict[bytes, tuple[bool, Any]] = OrderedDict()
        self.port = 0
        self._listener: socket.socket | None = None
        self._acceptor: asyncio.Task | None = None
        self._reaper: asyncio.Task | None = None
        self._handlers: set[asyncio.Task] = set()
        self._connections: set[asyncio.StreamWriter] = set()

    # -- lifecycle --------------------------------------------------------------------------

    def on(self, kind: Kind, handler: Handler) -> None:
        """Answer frames of ``kind`` (HEARTBEAT, LAYOUT) with ``await handler(peer, msg)``."""
        if kind not in (Kind.HEARTBEAT, Kind.LAYOUT):
            raise ValueError(f"no handler for {kind.name} frames")
        self.handlers[kind] = handler

    async def start(self, host: str, port: int, reuse_port: bool = False) -> None:
        self._listener = socket.create_server(
            (host, port), backlog=1024, reuse_port=reuse_port, family=_family(host)
        )
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._acceptor = asyncio.create_task(self._accept_loop())
        self._reaper = asyncio.create_task(self._reap_sessions())

    async def close(self) -> None:
        for task in (self._acceptor, self._reaper):
            if task:
                task.cancel()
        if self._listener:
            self._listener.close()
        for w in list(self._connections):
            w.close()
        for task in list(self._handlers):
            task.cancel()
        for sid in list(self.sessions):
            self._drop_session(sid)
        if self._own_executor:
            self.executor.shutdown(wait=False)

    # -- connections ------------------------------------------------------------------------

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        while True:
            try:
                sock, peername = await loop.sock_accept(self._listener)
            except OSError as e:  # EMFILE and the like: do not spin
                log.warning("internal server: accept failed: %s", e)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._accept(sock, peername))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _accept(self, sock: socket.socket, peername: Any) -> None:
        """TLS on an accepted socket, done here (not by start_server) so that a failed
        handshake raises to us with OpenSSL's reason; then the name check, then frames."""
        address = f"{peername[0]}:{peername[1]}" if peername else "?"
        loop = asyncio.get_running_loop()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = asyncio.StreamReader(limit=STREAM_LIMIT)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol,
                sock,
                ssl=self.context,
                ssl_handshake_timeout=self.handshake_timeout,
            )
        except (ssl.SSLError, OSError) as e:  # TimeoutError too
            sock.close()
            refuse(classify_handshake_error(e), address, f"TLS handshake failed: {e!r}")
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        self._connections.add(writer)
        try:
            try:
                peer = check_client(writer.get_extra_info("ssl_object"), self.peers, address)
            except Refused as e:
                await self._send_json(
                    writer, Kind.ANSWER, 0, {"ok": False, "error": encode_error(e)}
                )
                return
            log.debug("connection from node %s (%s)", peer, address)
            # The greeting: the client sends nothing before it has it, so no request can
            # arrive with the end of the handshake (asyncio's TLS transport could leave such
            # bytes unread until more came: a request then hung until its timeout).
            await self._send_json(
                writer, Kind.ANSWER, 0, {"ok": True, "result": {"node": self.name}}
            )
            await self._serve(peer, reader, writer)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            log.debug("connection from %s ended: %r", address, e)
        finally:
            self._connections.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(
        self, peer: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            try:
                head = await asyncio.wait_for(reader.readexactly(HEADER_SIZE), self.idle_timeout)
            except asyncio.IncompleteReadError:
                return  # the peer hung up between frames: the normal end
            try:
                header = frames.decode_header(head)
                payload = (
                    await asyncio.wait_for(reader.readexactly(header.length), self.frame_timeout)
                    if header.length
                    else b""
                )
                frames.check_payload(head, header, payload)
                log.debug("%s: %s %d (%d bytes)", peer, header.kind.name, header.request_id,
                          header.length)  # fmt: skip
                await self._dispatch(peer, header, memoryview(payload), writer)
            except BadFrame as e:
                frames.reject(peer, e)
                log.debug("%s: rejected a frame: %s", peer, e.reason)
                await self._send_json(writer, Kind.REJECTED, e.request_id, {"reason": e.reason})
                return

    async def _send(
        self, writer: asyncio.StreamWriter, kind: Kind, rid: int, parts: list[bytes | memoryview]
    ) -> None:
        writer.write(frames.encode_header(kind, rid, parts))
        for p in parts:
            if len(p):
                writer.write(p)
        await writer.drain()

    async def _send_json(
        self, writer: asyncio.StreamWriter, kind: Kind, rid: int, obj: dict[str, Any]
    ) -> None:
        await self._send(writer, kind, rid, [frames.json_payload(obj)])

    async def _dispatch(
        self, peer: str, header: frames.Header, payload: memoryview, writer: asyncio.StreamWriter
    ) -> None:
        rid = header.request_id
        if header.kind == Kind.DATA:
            chunk = frames.parse_data(payload, header)
            answer = await self._run(self._append, chunk)
            await self._send_json(writer, Kind.ANSWER, rid, answer)
            return
        if header.kind not in (Kind.REQUEST, Kind.HEARTBEAT, Kind.LAYOUT):
            raise BadFrame(f"a client sent a {header.kind.name} frame", header.kind, rid)
        msg = frames.parse_json(payload, header)
        if header.kind != Kind.REQUEST:
            handler = self.handlers.get(header.kind)
            try:
                if handler is None:
                    raise ValueError(f"this node takes no {header.kind.name} messages")
                answer = {"ok": True, "result": await handler(peer, msg)}
            except Exception as e:  # the handler's failure is the peer's answer
                answer = {"ok": False, "error": encode_error(e)}
            await self._send_json(writer, Kind.ANSWER, rid, answer)
            return
        op, args = msg.get("op"), msg.get("args") or {}
        if op == "read":
            await self._read(writer, rid, args)
            return
        method = _OPS.get(op) if isinstance(op, str) else None
        if method is None:
            answer = {"ok": False, "error": {"type": "ValueError", "message": f"no op {op!r}"}}
        else:
            answer = await self._run(method, self, args)
        await self._send_json(writer, Kind.ANSWER, rid, answer)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
        """Run a blocking store call in the pool; its result or error as an answer."""
        loop = asyncio.get_running_loop()
        try:
            return {"ok": True, "result": await loop.run_in_executor(self.executor, fn, *args)}
        except Exception as e:
            return {"ok": False, "error": encode_error(e)}

    async def _heartbeat(self, peer: str, msg: dict[str, Any]) -> dict[str, Any]:
        return {"node": self.name, "time": time.time()}

    # -- stores -----------------------------------------------------------------------------

    def store(self, args: dict[str, Any]) -> Store:
        drive = str(args.get("drive", ""))
        try:
            return self.stores[qualify_store_id(self.name, drive)]
        except KeyError:
            raise StoreMissing(19, f"node {self.name} has no drive {drive!r}") from None

    async def _read(self, writer: asyncio.StreamWriter, rid: int, args: dict[str, Any]) -> None:
        """Blocks [first, last] of a blob (or of one of its quarantined copies), each
        verified by the store, sent as DATA frames with their CRC32C; then the answer (the
        store's error, if a block could not be read, after the blocks before it)."""
        loop = asyncio.get_running_loop()
        try:
            store = self.store(args)
            blob = WireBlob.from_json(args["blob"])
            first, last = int(args["first"]), int(args["last"])
            copy = args.get("copy")
            reader = await loop.run_in_executor(self.executor, store.open_blob, blob, copy)
        except Exception as e:
            await self._send_json(writer, Kind.ANSWER, rid, {"ok": False, "error": encode_error(e)})
            return
        per_frame = max(1, READ_FRAME_BYTES // blob.block_size)
        error: BaseException | None = None
        try:
            block = first
            while block <= last and error is None:
                upto = min(last + 1, block + per_frame)
                blocks, error = await loop.run_in_executor(
                    self.executor, _read_some, reader, block, upto
                )
                if blocks:
                    crcs = [int.from_bytes(blob.crcs[4 * i : 4 * i + 4], "big")
                            for i in range(block, block + len(blocks))]  # fmt: skip
                    parts = frames.data_parts(
                        frames.NO_SESSION, block * blob.block_size, blocks, crcs
                    )
                    await self._send(writer, Kind.DATA, rid, parts)
                block += len(blocks)
        finally:
            await loop.run_in_executor(self.executor, reader.close)
        answer = {"ok": True, "result": None} if error is None else {
            "ok": False, "error": encode_error(error)}  # fmt: skip
        await self._send_json(writer, Kind.ANSWER, rid, answer)

    # -- write sessions ---------------------------------------------------------------------

    def _session(self, sid: bytes) -> WriteSession:
        s = self.sessions.get(sid)
        if s is None:
            raise SessionLost(5, f"no write session {sid.hex()} on node {self.name}")
        s.touched = time.monotonic()
        return s

    def _append(self, chunk: frames.DataChunk) -> dict[str, int]:
        s = self._session(chunk.session)
        with s.lock:
            end = chunk.offset + len(chunk.data)
            if chunk.offset < s.next and end <= s.next:
                return {"next": s.next}  # sent again after a lost answer: already written
            if chunk.offset != s.next or chunk.offset % s.block_size:
                raise ValueError(f"data at offset {chunk.offset}, expected {s.next}")
            try:
                blocks = frames.check_blocks(chunk, s.block_size)
            except ValueError as e:
                raise CorruptBlock("-", chunk.offset // s.block_size, str(e)) from None
            for b in blocks:  # each block checked above, before any of it is written
                s.writer.write(b)
            s.next = end
            return {"next": s.next}

    def _drop_session(self, sid: bytes) -> None:
        s = self.sessions.pop(sid, None)
        if s is not None:
            s.writer.abort_quietly()

    async def _reap_sessions(self) -> None:
        while True:
            await asyncio.sleep(min(10.0, self.session_idle / 2))
            cutoff = time.monotonic() - self.session_idle
            for sid, s in list(self.sessions.items()):
                if s.touched < cutoff and not s.lock.locked():
                    log.info("write session %s idle, aborted", sid.hex())
                    await asyncio.get_running_loop().run_in_executor(
                        self.executor, self._drop_session, sid
                    )


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _read_some(reader: Any, first: int, upto: int) -> tuple[list[bytes], BaseException | None]:
    out: list[bytes] = []
    for block in range(first, upto):
        try:
            out.append(reader.read_block(block))
        except (CorruptBlock, OSError) as e:
            return out, e
    return out, None


# -- the store operations, each run in the pool ----------------------------------------------------


def _op_ping(srv: InternalServer, a: dict) -> Any:
    return {"node": srv.name}


def _op_identity(srv: InternalServer, a: dict) -> Any:
    return srv.store(a).identity()


def _op_initialize(srv: InternalServer, a: dict) -> Any:
    srv.store(a).initialize(str(a["uuid"]))


def _op_probe(srv: InternalServer, a: dict) -> Any:
    srv.store(a).probe(str(a["uuid"]))


def _op_exists(srv: InternalServer, a: dict) -> Any:
    """Whether the copy (or quarantined copy) can be opened: FileNotFoundError if not."""
    blob = WireBlob.from_json(a["blob"])
    srv.store(a).open_blob(blob, a.get("copy")).close()


def _op_location(srv: InternalServer, a: dict) -> Any:
    return srv.store(a).location()


def _op_space(srv: InternalServer, a: dict) -> Any:
    return list(srv.store(a).space(bool(a.get("fresh"))))


def _op_free_bytes(srv: InternalServer, a: dict) -> Any:
    return srv.store(a).free_bytes()


def _op_repair_room(srv: InternalServer, a: dict) -> Any:
    return srv.store(a).repair_room()


def _op_stat(srv: InternalServer, a: dict) -> Any:
    return info_json(srv.store(a).stat(str(a["blob_id"])))


def _op_delete(srv: InternalServer, a: dict) -> Any:
    srv.store(a).delete(str(a["blob_id"]))


def _op_hours(srv: InternalServer, a: dict) -> Any:
    return srv.store(a).hours()


def _op_list(srv: InternalServer, a: dict) -> Any:
    limit = max(1, min(int(a.get("limit", 1000)), 10_000))
    page = srv.store(a).list_blobs(str(a["hour"]), a.get("cursor"), limit)
    return {"blobs": [info_json(b) for b in page.blobs], "cursor": page.cursor}


def _op_digests(srv: InternalServer, a: dict) -> Any:
    """Anti-entropy: the drive's hash-tree digests, built here so only they travel."""
    hour = a.get("hour")
    return srv.store(a).tree_digests(None if hour is None else str(hour))


def _op_leaf(srv: InternalServer, a: dict) -> Any:
    return srv.store(a).leaf_blobs(str(a["hour"]), str(a["leaf"]))


def _op_quarantine(srv: InternalServer, a: dict) -> Any:
    return srv.store(a).quarantine(str(a["blob_id"]))


def _op_quarantined(srv: InternalServer, a: dict) -> Any:
    return srv.store(a).quarantined(a.get("blob_id"))


def _op_stale_temporary(srv: InternalServer, a: dict) -> Any:
    return srv.store(a).stale_temporary(float(a["older_than"]))


def _op_remove_stale_temporary(srv: InternalServer, a: dict) -> Any:
    return srv.store(a).remove_stale_temporary(float(a["older_than"]))


def _write_args(a: dict) -> tuple[int, bytes]:
    """A write session's block size and id, checked."""
    block_size = int(a["block_size"])
    if not 0 < block_size <= frames.MAX_PAYLOAD // 2:
        raise ValueError(f"block size {block_size}")
    sid = bytes.fromhex(a["session"])
    if len(sid) != 16 or sid == frames.NO_SESSION:
        raise ValueError("a write session id is 16 bytes")
    return block_size, sid


def _remembered(srv: InternalServer, sid: bytes) -> Any:
    """The answer a finished session gave, for the same request sent again."""
    ok, remembered = srv.finished[sid]
    if not ok:
        raise remembered
    return remembered


def _forget(srv: InternalServer, sid: bytes, answer: tuple[bool, Any]) -> None:
    """A session ended: its answer is remembered (the last 4,096), the session dropped."""
    srv.finished[sid] = answer
    srv.sessions.pop(sid, None)
    while len(srv.finished) > 4096:
        srv.finished.popitem(last=False)


def _finish(
    srv: InternalServer, sid: bytes, writer: Any, a: dict, blob_id: str, crcs: bytes
) -> Any:
    """Make the blob durable under its id (or replace a damaged copy) and remember the answer."""
    if a.get("replacing"):
        result: Any = {"quarantined": writer.finish_replacing(blob_id, crcs)}
    else:
        writer.finish(blob_id, crcs)
        result = {"quarantined": None}
    _forget(srv, sid, (True, result))
    return result


def _op_write_open(srv: InternalServer, a: dict) -> Any:
    """Open write session ``session`` (chosen by the writer, so an open sent again after a
    lost answer finds its session instead of leaving a second one behind)."""
    block_size, sid = _write_args(a)
    with srv.sessions_lock:
        if sid in srv.sessions or sid in srv.finished:
            return None
        srv.sessions[sid] = WriteSession(srv.store(a).writer(block_size), block_size)
    return None


def _op_write_finish(srv: InternalServer, a: dict) -> Any:
    sid = bytes.fromhex(a["session"])
    if sid in srv.finished:  # sent again after a lost answer
        return _remembered(srv, sid)
    s = srv._session(sid)
    with s.lock:
        if srv.sessions.get(sid) is not s:
            return _op_write_finish(srv, a)  # finished by a concurrent copy of this request
        crcs = bytes.fromhex(a["crcs"])
        blob_id = str(a["blob_id"])
        try:
            if int(a.get("size", s.next)) != s.next:
                s.writer.abort_quietly()
                raise CorruptBlock(blob_id, -1, f"received {s.next} bytes, sent {a['size']}")
            return _finish(srv, sid, s.writer, a, blob_id, crcs)
        except Exception as e:
            _forget(srv, sid, (False, e))
            raise


def _op_write_whole(srv: InternalServer, a: dict) -> Any:
    """A small blob whole (holdfast/stores/node.py): ``write_open``, its one DATA frame and
    ``write_finish`` in one request. Every block is checked against the blob's CRC32Cs
    before any is written; the answer is remembered under the session like a finish's, so
    the request sent again after a lost answer gets the same answer and writes nothing."""
    block_size, sid = _write_args(a)
    blob_id = str(a["blob_id"])
    crcs = bytes.fromhex(a["crcs"])
    data = memoryview(base64.b64decode(a["data"], validate=True))
    with srv.sessions_lock:
        if sid in srv.finished or sid in srv.sessions:
            running = None
        else:
            running = WriteSession(srv.store(a).writer(block_size), block_size)
            running.lock.acquire()  # before a copy of this request can find it
            srv.sessions[sid] = running
    if running is None:  # a copy of this request: wait for the first one's answer
        s = srv.sessions.get(sid)
        if s is not None:
            with s.lock:
                pass
        if sid not in srv.finished:
            raise SessionLost(5, f"write session {sid.hex()} on node {srv.name} did not finish")
        return _remembered(srv, sid)
    try:
        try:
            if int(a["size"]) != len(data):
                raise CorruptBlock(blob_id, -1, f"received {len(data)} bytes, sent {a['size']}")
            blocks = [data[i : i + block_size] for i in range(0, len(data), block_size)]
            for i, block in enumerate(blocks):
                if crcs[4 * i : 4 * i + 4] != crc32c.crc32c(block).to_bytes(4, "big"):
                    raise CorruptBlock(blob_id, i, "CRC32C mismatch")
            for b in blocks:  # each block checked above, before any of it is written
                running.writer.write(b)
            running.next = len(data)
            return _finish(srv, sid, running.writer, a, blob_id, crcs)
        except Exception as e:
            running.writer.abort_quietly()
            _forget(srv, sid, (False, e))
            raise
    finally:
        running.lock.release()


def _op_write_abort(srv: InternalServer, a: dict) -> Any:
    srv._drop_session(bytes.fromhex(a["session"]))


_OPS: dict[str, Callable[[InternalServer, dict], Any]] = {
    "ping": _op_ping,
    "identity": _op_identity,
    "initialize": _op_initialize,
    "probe": _op_probe,
    "location": _op_location,
    "exists": _op_exists,
    "space": _op_space,
    "free_bytes": _op_free_bytes,
    "repair_room": _op_repair_room,
    "stat": _op_stat,
    "delete": _op_delete,
    "hours": _op_hours,
    "list": _op_list,
    "digests": _op_digests,
    "leaf": _op_leaf,
    "quarantine": _op_quarantine,
    "quarantined": _op_quarantined,
    "stale_temporary": _op_stale_temporary,
    "remove_stale_temporary": _op_remove_stale_temporary,
    "write_open": _op_write_open,
    "write_finish": _op_write_finish,
    "write_abort": _op_write_abort,
    "write_whole": _op_write_whole,
}
