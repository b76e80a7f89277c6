"""One committer for the node: the worker processes send their hot-path index writes (PUT and
DELETE of objects) to a single process, which group-commits them all together.

Why a process of its own: each worker used to group-commit only its own writes, so at 16
client connections a transaction held 3-8 writes, the two workers took turns on the write
lock (each turn invalidating the other's page cache), and the commit thread fought the event
loop for its process's GIL. A transaction's fixed cost (lock, WAL header, fsync, wake-ups)
is ~0.45 ms of CPU here, so the batch size decides the cost of a small PUT
(docs/performance.md has the numbers).

The committer is an optimisation, never a dependency. A worker that cannot reach it commits
locally, exactly as before, under the same cross-process write lock. A write already sent
when the connection broke has an unknown outcome: it is reported as :class:`OutcomeUnknown`,
never retried blindly, and its caller must not act as if it failed (the object may be live).

Every frame carries a CRC32C of its payload (DESIGN.md: every internal message carries a
checksum). A frame that fails it is rejected, counted, logged and never applied, and the
connection is dropped, since its framing can no longer be trusted. Payloads are pickles read
by an unpickler that builds only the record and error classes listed in ``_ALLOWED``; the
socket is in the abstract namespace and takes connections only from this user.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import io
import logging
import os
import pickle
import selectors
import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crc32c

from holdfast.index.errors import OutcomeUnknown  # the write was sent, no answer came back
from holdfast.workers.counters import count

__all__ = ["OutcomeUnknown"]

log = logging.getLogger("holdfast.committer")

# Set by the supervisor in the workers' environment when it runs a committer; an operator's
# "0" turns the committer off.
COMMITTER_ENV = "HOLDFAST_INDEX_COMMITTER"

# The committer's name in ps, top and /proc/<pid>/comm (at most 15 bytes).
COMMITTER_PROCESS_NAME = "holdfast-commit"

# The index methods a worker may ask the committer to run: the writes of every small PUT and
# DELETE. Everything else stays local.
REMOTE_METHODS = frozenset({"put_object", "delete_object", "delete_objects"})

_HEADER = struct.Struct(">II")  # payload length, CRC32C of the payload
MAX_FRAME_BYTES = 64 * 1024 * 1024  # a 1,000-key delete is ~1 MiB; an inline object ≤ 1 MiB
RECONNECT_SECONDS = 1.0
# A committer that stops answering (stopped, wedged) must not hold every PUT forever: once a
# pending write has had no answer for this long, the worker drops the connection (the writes
# in flight get an unknown outcome, so a 500) and commits locally, trying the committer
# again after a backoff that doubles up to MAX_RETRY_SECONDS. Seconds; the environment
# variable overrides it.
ANSWER_TIMEOUT_ENV = "HOLDFAST_INDEX_COMMITTER_TIMEOUT"
DEFAULT_ANSWER_TIMEOUT = 10.0
MAX_RETRY_SECONDS = 60.0
WATCH_EVERY = 0.5

_ALLOWED = {
    ("holdfast.index.records", "ObjectRecord"),
    ("holdfast.index.records", "Segment"),
    ("holdfast.index.records", "VersionRef"),
    ("holdfast.index.errors", "NotFound"),
    ("holdfast.index.errors", "Forbidden"),
    ("holdfast.index.errors", "Conflict"),
    ("holdfast.index.errors", "NotEmpty"),
    ("holdfast.index.errors", "ConditionFailed"),
    ("holdfast.index.committer", "RemoteError"),
    ("sqlite3", "OperationalError"),
    ("sqlite3", "IntegrityError"),
    ("sqlite3", "DatabaseError"),
}


class CorruptMessage(Exception):
    """A frame whose checksum, size or contents are wrong: never applied."""


class CommitterUnavailable(Exception):
    """No connection to the committer: the write was not sent and may be committed locally."""


class RemoteError(Exception):
    """An error raised in the committer whose class may not cross the socket."""


def socket_name(index_path: Path) -> bytes:
    """An abstract-namespace name (no file to go stale, no path-length limit) unique to the
    index file, so two servers on one machine never meet."""
    digest = hashlib.sha256(str(index_path.resolve()).encode()).hexdigest()[:32]
    return b"\0holdfast-commit-" + digest.encode()


def encode_frame(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=5)
    return _HEADER.pack(len(payload), crc32c.crc32c(payload)) + payload


class _Unpickler(pickle.Unpickler):
    _classes: dict[tuple[str, str], Any] = {}  # each allowed class, looked up once

    def find_class(self, module: str, name: str) -> Any:
        cls = self._classes.get((module, name))
        if cls is None:
            if (module, name) not in _ALLOWED:
                raise CorruptMessage(f"class {module}.{name} may not cross the committer socket")
            cls = self._classes[module, name] = super().find_class(module, name)
        return cls


def decode_payload(payload: bytes | memoryview, crc: int) -> Any:
    if crc32c.crc32c(payload) != crc:
        raise CorruptMessage("checksum mismatch")
    try:
        return _Unpickler(io.BytesIO(payload)).load()
    except CorruptMessage:
        raise
    except Exception as e:
        raise CorruptMessage(f"undecodable payload: {e}") from None


def read_frames(buf: bytearray) -> Iterator[Any]:
    """Decode and remove each whole frame at the start of ``buf`` in turn; stops at a
    partial frame and raises at a damaged one (the frames before it are yielded first)."""
    while len(buf) >= _HEADER.size:
        size, crc = _HEADER.unpack_from(buf)
        if size > MAX_FRAME_BYTES:
            raise CorruptMessage(f"frame of {size} bytes")
        end = _HEADER.size + size
        if len(buf) < end:
            return
        payload = bytes(buf[_HEADER.size : end])
        del buf[:end]
        yield decode_payload(payload, crc)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if the other side may rebuild it, else a RemoteError naming it."""
    cls = type(exc)
    if (cls.__module__, cls.__name__) in _ALLOWED:
        return exc
    return RemoteError(f"{cls.__name__}: {exc}")


def _rejected(channel: str, error: Exception) -> None:
    log.error("internal message rejected on %s: %s", channel, error)
    count("INTERNAL_MESSAGES_REJECTED", 1, channel)


# -- the committer process -------------------------------------------------------------------


class CommitterServer:
    """One thread does everything: it takes whatever requests have arrived on every worker
    connection, commits them in one transaction (one fsync), queues the answers, and goes
    round again; requests that arrive during the fsync wait in the socket buffers and make
    the next group. No thread hand-offs and no GIL contention: with a reader thread per
    worker and a commit thread, GIL hand-offs cost more than the commits saved."""

    def __init__(self, index: Any, name: bytes) -> None:
        self.index = index
        self.name = name
        self.selector = selectors.DefaultSelector()

    def serve_forever(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.name)
        listener.listen(64)
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, None)
        log.info("index committer ready")
        while True:
            self.serve_once()

    def serve_once(self) -> None:
        calls: list[tuple[_Peer, int, str, tuple]] = []
        doomed: list[_Peer] = []
        for key, events in self.selector.select():
            peer = key.data
            if peer is None:
                self._accept(key.fileobj)  # type: ignore[arg-type]
                continue
            if events & selectors.EVENT_WRITE:
                self._flush(peer)
            if events & selectors.EVENT_READ:
                calls += self._receive(peer)
                if peer.doomed:
                    doomed.append(peer)
        if calls:
            self._commit(calls)
        for peer in doomed:  # after the answers to the requests that came before the damage
            self._hang_up(peer)

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        if not _same_user(conn):
            log.error("committer: refused a connection from another user")
            conn.close()
            return
        conn.setblocking(False)
        self.selector.register(conn, selectors.EVENT_READ, _Peer(conn))

    def _receive(self, peer: _Peer) -> list[tuple[_Peer, int, str, tuple]]:
        try:
            data = peer.conn.recv(1 << 20)
        except BlockingIOError:
            return []
        except OSError as e:
            log.info("committer: worker connection failed: %s", e)
            data = b""
        if not data:
            self._close(peer)
            return []
        peer.inbox += data
        calls = []
        try:
            for message in read_frames(peer.inbox):
                req_id, method, args = _request(message)
                calls.append((peer, req_id, method, args))
        except CorruptMessage as e:
            _rejected("committer", e)
            peer.doomed = True  # the requests before it are committed and answered first
        return calls

    def _commit(self, calls: list[tuple[_Peer, int, str, tuple]]) -> None:
        outcomes = self.index.commit_calls(
            [(getattr(self.index, method), args) for _, _, method, args in calls]
        )
        count("INDEX_WRITES", sum(ok for ok, _ in outcomes), "committer")
        answered = set()
        for (peer, req_id, _, _), (ok, value) in zip(calls, outcomes, strict=True):
            if peer.conn.fileno() < 0:
                continue  # the worker is gone; its writes are committed all the same
            peer.outbox += encode_frame((req_id, ok, value if ok else _portable(value)))
            answered.add(peer)
        for peer in answered:
            self._flush(peer)

    def _flush(self, peer: _Peer) -> None:
        """Send what fits now; the rest when the socket has room (the selector says so)."""
        try:
            sent = peer.conn.send(peer.outbox) if peer.outbox else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(peer)
            return
        del peer.outbox[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.outbox else 0)
        self.selector.modify(peer.conn, events, peer)

    def _hang_up(self, peer: _Peer) -> None:
        """Close a connection whose framing can no longer be trusted, after a last try
        (bounded) at sending the answers it is owed."""
        try:
            peer.conn.settimeout(1.0)
            peer.conn.sendall(peer.outbox)
        except OSError:
            pass
        self._close(peer)

    def _close(self, peer: _Peer) -> None:
        if peer.conn.fileno() >= 0:
            self.selector.unregister(peer.conn)
            peer.conn.close()


class _Peer:
    """One worker's connection and its unparsed input and unsent answers."""

    __slots__ = ("conn", "inbox", "outbox", "doomed")

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.doomed = False


def _request(message: Any) -> tuple[int, str, tuple]:
    try:
        req_id, method, args = message
    except (TypeError, ValueError):
        raise CorruptMessage("malformed request") from None
    if method not in REMOTE_METHODS or not isinstance(args, tuple):
        raise CorruptMessage(f"method {method!r} is not served by the committer")
    return req_id, method, args


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def set_process_name(name: str) -> None:
    """prctl(PR_SET_NAME): so operators (and the metrics' role label) can tell the committer
    from the workers, which are started the same way (and whose command line is the
    forkserver's they were forked from: holdfast/server.py)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError) as e:
        log.debug("process name not set: %s", e)


def run_committer(index_path: Path, gc_grace_seconds: float) -> None:
    """Entry point of the committer process (started by the supervisor), with the index
    settings the workers use. Ctrl-C reaches the whole process group; the committer leaves
    it to the supervisor, which stops the workers first and the committer last."""
    from holdfast.index.sqlite import SqliteIndex

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_process_name(COMMITTER_PROCESS_NAME)
    index = SqliteIndex(index_path, gc_grace_seconds=gc_grace_seconds)
    count("INDEX_WRITES", 0, "committer")  # its metrics file names it among the node's processes
    CommitterServer(index, socket_name(index_path)).serve_forever()


# -- the worker's side -----------------------------------------------------------------------


def _answer_timeout_from_env() -> float:
    raw = os.environ.get(ANSWER_TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_ANSWER_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        log.error(
            "%s=%r is not a number of seconds; using %s",
            ANSWER_TIMEOUT_ENV,
            raw,
            DEFAULT_ANSWER_TIMEOUT,
        )
        return DEFAULT_ANSWER_TIMEOUT
    return value


class _Protocol(asyncio.Protocol):
    def __init__(self, client: CommitterClient) -> None:
        self.client = client
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            for answer in read_frames(self.buf):
                self.client.settle(answer)
        except CorruptMessage as e:
            _rejected("worker", e)
            self.client.drop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.drop()


class CommitterClient:
    """A worker's connection to the committer, made on first use and remade at most once
    per RECONNECT_SECONDS after it breaks, or after a doubling backoff while the committer
    stays silent (meanwhile :meth:`call` says unavailable and the worker commits locally)."""

    def __init__(self, name: bytes, answer_timeout: float | None = None) -> None:
        self.name = name
        self._transport: asyncio.Transport | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._next_id = 0
        self._retry_at = 0.0
        self._connecting: asyncio.Future | None = None
        self._answer_timeout = answer_timeout or _answer_timeout_from_env()
        self._waiting_since = 0.0  # the last answer, or the first call since one, if later
        self._backoff = RECONNECT_SECONDS
        self._watchdog: asyncio.TimerHandle | None = None

    async def call(self, method: str, *args: Any) -> Any:
        transport = self._transport
        if transport is None or transport.is_closing():
            transport = await self._connect()
        self._next_id += 1
        req_id = self._next_id
        future = asyncio.get_running_loop().create_future()
        if not self._pending:
            self._waiting_since = time.monotonic()
        self._pending[req_id] = future
        try:
            # Written at once rather than gathered for one write per loop turn: the committer
            # groups writes itself, and holding them back until the turn ends only delayed the
            # commit (probe: 3,640 -> 3,750 PUT 4 KiB/s, same CPU per request).
            transport.write(encode_frame((req_id, method, args)))
            return await future
        finally:
            self._pending.pop(req_id, None)

    async def _connect(self) -> asyncio.Transport:
        """One attempt at a time: calls that arrive meanwhile wait for it."""
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    def _connected(self, attempt: asyncio.Future) -> None:
        self._connecting = None
        if not attempt.cancelled():
            attempt.exception()  # retrieved: each waiting call raises it itself

    async def _open(self) -> asyncio.Transport:
        now = time.monotonic()
        if now < self._retry_at:
            raise CommitterUnavailable("not connected")
        self._retry_at = now + RECONNECT_SECONDS
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.name)  # local and instant: connected or refused
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_unix_connection(lambda: _Protocol(self), sock=sock)
        except OSError as e:
            sock.close()
            raise CommitterUnavailable(str(e)) from None
        self._transport = transport  # type: ignore[assignment]
        self._watchdog = loop.call_later(WATCH_EVERY, self._watch)
        log.info("connected to the index committer")
        return transport  # type: ignore[return-value]

    def _watch(self) -> None:
        """Every WATCH_EVERY seconds while connected: one timer for all calls, rather than a
        timeout on each (the PUT path pays for every one)."""
        self._watchdog = None
        if self._transport is None:
            return
        silent = time.monotonic() - self._waiting_since
        if self._pending and silent > self._answer_timeout:
            log.error(
                "the index committer has not answered for %.1f s; committing locally, "
                "trying it again in %.0f s",
                silent,
                self._backoff,
            )
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, MAX_RETRY_SECONDS)
            self.drop()
            return
        self._watchdog = asyncio.get_running_loop().call_later(WATCH_EVERY, self._watch)

    def settle(self, answer: Any) -> None:
        try:
            req_id, ok, value = answer
        except (TypeError, ValueError):
            _rejected("worker", CorruptMessage("malformed answer"))
            self.drop()
            return
        self._waiting_since = time.monotonic()
        self._backoff = RECONNECT_SECONDS
        future = self._pending.get(req_id)
        if future is None or future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def drop(self) -> None:
        """Forget the connection; every write still waiting has an unknown outcome."""
        transport, self._transport = self._transport, None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if transport is not None:
            transport.abort()
            log.warning("lost the index committer; committing locally until it is back")
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():  # handed to the socket: the committer may have applied it
                future.set_exception(
                    OutcomeUnknown("the index committer went away before answering")
                )

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._transport is not None:
            self._transport.abort()
            self._transport = None
