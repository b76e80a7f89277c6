"""The node-to-node client: :class:`NodeClient`.

Usage::

    client = NodeClient(identity, peers)           # NodeIdentity (tls.py), Peers (layout)
    client.call("n2", "space", {"drive": "d0"})    # one RPC, retried with backoff
    for chunk in client.stream("n2", "read", args):  # an RPC answered by DATA frames
        ...
    await client.acall("n2", "ping")               # from the event loop (a pool thread)

**Blocking, on purpose.** Its main caller is :class:`holdfast.stores.node.NodeStore`, whose
methods (the Store interface, holdfast/stores/base.py) run in the node's thread pools. A
blocking ``ssl`` socket releases the GIL while it encrypts, decrypts and waits, and reads a
1 MiB frame straight into one buffer (``recv_into``), so a transfer costs one copy out of
the kernel and none in Python. Async callers (heartbeats, layout notices) use
:meth:`NodeClient.acall`, which runs the call in a thread.

**Connections** are kept per peer (up to ``pool_size`` idle ones) and reused; a connection
is used by one call at a time. The pool is as large as the concurrency a node sees (every
PUT in flight holds one connection per remote copy): with 4, 16 concurrent 4 KiB PUTs
closed most connections on check-in and opened new ones, and TLS handshakes took 11 % of
the node's samples (py-spy; bench/run.py --cluster, docs/performance.md). It is dropped, never reused, after any failure: a timeout, a
frame that failed its checksum (ours or the peer's REJECTED), or an unexpected answer,
since the framing of that stream can no longer be trusted.

**Retries**: a call that fails for the connection's sake (reset, timeout, a rejected frame
either way) is sent again on a new connection after an exponential backoff with full
jitter, up to ``attempts`` times, then :class:`NodeUnreachable`. Every operation a store
sends is idempotent (DATA frames carry their offset; a write session's finish is
remembered), so sending again is safe. A TLS refusal is not retried: it will not heal by
itself, and its reason is the news.

**A peer that is not there** (no TCP connection at all: refused, or no answer within
``connect_timeout``) is not retried either: :class:`PeerNotListening` at once. Its process
is dead or restarting, and every caller has something better to do than back off for a
second: a read tries the next copy, a write leaves the copy to the handoff log, a heartbeat
waits for its next turn. Measured (bench/cluster_faults.py, a node SIGKILLed during a GET
load): with 5 attempts, until heartbeats judged the node down (3 s and more), each GET
whose first copy was on the dead node waited for the retries and their backoff (up to
0.75 s) before trying the other copy: 470 ms at the median against 6 ms for a GET whose
first copy was on a live node (now 35 against 14 ms). The idle connections to a peer
that failed that way, or closed one on us, are dropped together (they were made to the
same process; each would otherwise cost one attempt and one backoff), and
:meth:`NodeClient.unreachable` tells the read path to try that peer's copies last until
a connection to it succeeds, before the heartbeats say so (holdfast/cluster/remote.py).
Placement still follows the heartbeats alone: a write to such a peer fails at once and its
copy is owed, and a refusal seen while a peer was starting must not keep copies off it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import Counter, Histogram

from holdfast.net import frames
from holdfast.net.errors import NodeUnreachable, PeerNotListening, decode_error
from holdfast.net.frames import HEADER_SIZE, BadFrame, DataChunk, Header, Kind
from holdfast.net.tls import (
    NodeIdentity,
    OncePerMinute,
    Peers,
    Refused,
    check_server,
    classify_handshake_error,
    client_context,
    refuse,
)

log = logging.getLogger("holdfast.net")

GONE_SECONDS = 10.0  # how long a failed connect ranks a peer's copies last (unreachable())

RPC_SECONDS = Histogram(
    "holdfast_internal_rpc_seconds",
    "Node-to-node calls, by peer and operation (retries included)",
    ["peer", "op"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RPC_ERRORS = Counter(
    "holdfast_internal_rpc_errors",
    "Node-to-node call attempts that failed, by peer and what failed (connect, refused, "
    "rejected, timeout, closed)",
    ["peer", "error"],
)


def observe_rpc(node: str, op: str, seconds: float) -> None:
    """One node-to-node exchange's latency, for exchanges that do not go through
    :meth:`NodeClient.call` (a writer's pipelined data frames)."""
    RPC_SECONDS.labels(node, op).observe(seconds)


class Connection:
    """One mutual-TLS connection to a peer, speaking frames (holdfast/net/frames.py)."""

    def __init__(self, sock: ssl.SSLSocket, peer: str, address: str) -> None:
        self.sock = sock
        self.peer = peer
        self.address = address
        self._next_id = 0
        self._header = bytearray(HEADER_SIZE)
        self.last_used = time.monotonic()

    def next_id(self) -> int:
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
        return self._next_id

    def send(self, kind: Kind, request_id: int, parts: Sequence[bytes | memoryview]) -> None:
        self.sock.sendall(frames.encode_header(kind, request_id, parts))
        for p in parts:
            if len(p):
                self.sock.sendall(p)

    def _recv_exactly(self, view: memoryview) -> None:
        while view:
            n = self.sock.recv_into(view)
            if n == 0:
                raise ConnectionResetError(f"node {self.peer} closed the connection")
            view = view[n:]

    def recv(self) -> tuple[Header, memoryview]:
        """The next frame, checked. A frame that fails its check is counted and logged
        (:func:`frames.reject`) and raises BadFrame: drop the connection."""
        head = memoryview(self._header)
        self._recv_exactly(head)
        try:
            header = frames.decode_header(head)
            payload = memoryview(bytearray(header.length))
            self._recv_exactly(payload)
            frames.check_payload(head, header, payload)
        except BadFrame as e:
            frames.reject(self.peer, e)
            raise
        return header, payload

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class StreamBroken(ConnectionError):
    """A streamed answer broke off (a frame failed its check, the connection dropped): the
    caller asks again from where it got to."""


class PeerRejected(ConnectionError):
    """The peer said our frame failed its check (it was not applied): send it again."""


_conn_log = OncePerMinute()


class NodeClient:
    """Calls to other nodes over mutual TLS; see the module docstring."""

    def __init__(
        self,
        identity: NodeIdentity,
        peers: Peers,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 3.0,
        pool_size: int = 32,
        idle_seconds: float = 240.0,
        attempts: int = 5,
        backoff_base: float = 0.05,
        backoff_cap: float = 2.0,
        context: ssl.SSLContext | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.identity = identity
        self.peers = peers
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.pool_size = pool_size
        self.idle_seconds = idle_seconds  # below the server's idle_timeout (600 s)
        self.attempts = attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.context = context or client_context(identity)
        self._sleep = sleep
        self._idle: dict[str, list[Connection]] = {}
        self._gone: dict[str, float] = {}  # peer: when a connection to it last failed
        self._lock = threading.Lock()
        self._closed = False

    def unreachable(self, node: str) -> bool:
        """Whether the last attempt to connect to ``node`` failed (within GONE_SECONDS):
        a hint for choosing which copy to read first, like liveness but sooner."""
        failed = self._gone.get(node)
        return failed is not None and time.monotonic() - failed < GONE_SECONDS

    # -- connections ------------------------------------------------------------------------

    def connect(self, node: str) -> Connection:
        """A new connection to ``node``, its certificate and name checked (tls.py)."""
        addr = self.peers.address(node)
        if addr is None:
            raise refuse("not-in-layout", node, f"node {node!r} is not in the layout")
        host, port = addr
        where = f"{host}:{port}"
        try:
            raw = socket.create_connection((host, port), timeout=self.connect_timeout)
        except OSError as e:
            self._gone[node] = time.monotonic()
            raise PeerNotListening(f"node {node} at {where}: {e}") from e
        self._gone.pop(node, None)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock = self.context.wrap_socket(raw, server_side=False)
        except ssl.SSLCertVerificationError as e:
            raw.close()
            reason = classify_handshake_error(e)
            raise refuse(reason, f"{node}@{where}", f"node {node} at {where}: {e}") from e
        except (ssl.SSLError, OSError) as e:
            raw.close()
            raise NodeUnreachable(f"node {node} at {where}: TLS handshake failed: {e}") from e
        try:
            check_server(sock, self.peers, node, where)
        except Refused:
            sock.close()
            raise
        sock.settimeout(self.timeout)
        conn = Connection(sock, node, where)
        try:
            self._greeting(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _greeting(self, conn: Connection) -> None:
        """The server's first frame (request id 0): its name, or why it refuses us (our
        name not in its layout). Nothing is sent before it (server.py says why)."""
        try:
            header, payload = conn.recv()
        except ssl.SSLError as e:  # the server refused our certificate (its alert)
            raise NodeUnreachable(
                f"node {conn.peer} at {conn.address} refused our certificate: {e}"
            ) from e
        if header.kind != Kind.ANSWER or header.request_id != 0:
            raise BadFrame(f"greeting was a {header.kind.name} {header.request_id}", header.kind)
        answer = frames.parse_json(payload, header)
        if not answer.get("ok"):
            raise decode_error(answer.get("error", {}), conn.peer)

    def checkout(self, node: str) -> Connection:
        """A connection of its own for a caller that streams (a blob writer): give it back
        with :meth:`checkin` when every answer has been read, or close it."""
        return self._checkout(node)

    def checkin(self, conn: Connection) -> None:
        self._checkin(conn)

    def failed(self, node: str, conn: Connection | None, err: BaseException) -> None:
        """Count, log (rate-limited) and close after a failure on a checked-out connection."""
        self._failed(node, conn, err)

    def _checkout(self, node: str) -> Connection:
        stale: list[Connection] = []
        found = None
        cutoff = time.monotonic() - self.idle_seconds
        with self._lock:
            idle = self._idle.get(node)
            while idle:
                conn = idle.pop()
                if conn.last_used >= cutoff:
                    found = conn
                    break
                stale.append(conn)  # the server hangs up idle connections first
        for conn in stale:
            conn.close()
        return found or self.connect(node)

    def _checkin(self, conn: Connection) -> None:
        conn.last_used = time.monotonic()
        with self._lock:
            idle = self._idle.setdefault(conn.peer, [])
            if not self._closed and len(idle) < self.pool_size:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for c in conns:
            c.close()

    # -- retries ----------------------------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    def _drop_idle(self, node: str) -> None:
        with self._lock:
            conns = self._idle.pop(node, [])
        for conn in conns:
            conn.close()

    def _failed(self, node: str, conn: Connection | None, err: BaseException) -> str:
        if conn is not None:
            conn.close()
        if isinstance(err, BadFrame | PeerRejected):
            what = "rejected"
        elif isinstance(err, TimeoutError | socket.timeout):
            what = "timeout"
        elif isinstance(err, NodeUnreachable):
            what = "connect"
        else:
            what = "closed"
        if what in ("connect", "closed"):
            self._drop_idle(node)  # made to the same (dead) process: see the docstring
        RPC_ERRORS.labels(node, what).inc()
        if _conn_log.allow((node, what)):
            then = "not retried" if isinstance(err, PeerNotListening) else "retrying with backoff"
            log.warning("call to node %s failed (%s), %s: %s", node, what, then, err)
        return what

    def _exchange(
        self, node: str, op: str, build: Callable[[Connection], int]
    ) -> tuple[Connection, Header, memoryview]:
        """Send one request (``build`` sends it and returns its id) and read the first
        frame of the answer, with retries. Returns the connection (still checked out)."""
        last: BaseException | None = None
        for attempt in range(self.attempts):
            if attempt:
                self._sleep(self.backoff(attempt - 1))
            conn: Connection | None = None
            try:
                conn = self._checkout(node)
                rid = build(conn)
                header, payload = conn.recv()
                if header.kind == Kind.REJECTED:
                    raise PeerRejected(f"node {node} rejected our message (not applied)")
                if header.request_id != rid:
                    raise BadFrame(f"answer to request {header.request_id}, expected {rid}")
                return conn, header, payload
            except Refused:
                if conn is not None:
                    conn.close()
                RPC_ERRORS.labels(node, "refused").inc()
                raise
            except PeerNotListening as e:  # not retried: see the module docstring
                self._failed(node, conn, e)
                raise
            except (OSError, BadFrame) as e:  # ConnectionError, ssl.SSLError, timeouts
                self._failed(node, conn, e)
                last = e
        raise NodeUnreachable(
            f"node {node}: {op} failed {self.attempts} times, last: {last}"
        ) from last

    # -- calls ------------------------------------------------------------------------------

    def call(
        self, node: str, op: str, args: dict[str, Any] | None = None, kind: Kind = Kind.REQUEST
    ) -> Any:
        """One request, one JSON answer; the peer's error is raised as the same type."""
        body = frames.json_payload({"op": op, "args": args or {}})

        def build(conn: Connection) -> int:
            rid = conn.next_id()
            conn.send(kind, rid, [body])
            return rid

        return self._finish(node, op, build)

    def send_data(self, node: str, op: str, chunk_parts: list[bytes | memoryview]) -> Any:
        """One DATA frame (see frames.data_parts), answered by one JSON answer."""

        def build(conn: Connection) -> int:
            rid = conn.next_id()
            conn.send(Kind.DATA, rid, chunk_parts)
            return rid

        return self._finish(node, op, build)

    def _finish(self, node: str, op: str, build: Callable[[Connection], int]) -> Any:
        start = time.monotonic()
        try:
            conn, header, payload = self._exchange(node, op, build)
            if header.kind != Kind.ANSWER:
                conn.close()
                raise NodeUnreachable(f"node {node}: {op} answered with a {header.kind.name}")
            answer = frames.parse_json(payload, header)
            self._checkin(conn)
        finally:
            RPC_SECONDS.labels(node, op).observe(time.monotonic() - start)
        if not answer.get("ok"):
            raise decode_error(answer.get("error", {}), node)
        return answer.get("result")

    def stream(self, node: str, op: str, args: dict[str, Any]) -> Iterator[DataChunk]:
        """A request answered by DATA frames and then one JSON answer. Chunks are yielded as
        they arrive; the peer's error (after the chunks it could send) is raised. Only the
        request is retried: a failure mid-stream raises (BadFrame, OSError) and the caller
        asks again from where it got to, knowing what it already has."""
        body = frames.json_payload({"op": op, "args": args})

        def build(conn: Connection) -> int:
            rid = conn.next_id()
            conn.send(Kind.REQUEST, rid, [body])
            return rid

        start = time.monotonic()
        conn, header, payload = self._exchange(node, op, build)
        done = False
        try:
            while header.kind == Kind.DATA:
                yield frames.parse_data(payload, header)
                header, payload = conn.recv()
                if header.kind not in (Kind.DATA, Kind.ANSWER):
                    raise BadFrame(f"unexpected {header.kind.name} in a stream", header.kind)
            answer = frames.parse_json(payload, header)
            done = True
        except (OSError, BadFrame) as e:
            self._failed(node, None, e)
            raise StreamBroken(f"node {node}: {op} broke off: {e}") from e
        finally:
            if done:
                self._checkin(conn)
                RPC_SECONDS.labels(node, op).observe(time.monotonic() - start)
            else:
                conn.close()  # abandoned or failed mid-stream: unread frames may follow
        if not answer.get("ok"):
            raise decode_error(answer.get("error", {}), node)

    async def acall(
        self, node: str, op: str, args: dict[str, Any] | None = None, kind: Kind = Kind.REQUEST
    ) -> Any:
        """:meth:`call` from a coroutine (in a thread: the client blocks)."""
        return await asyncio.to_thread(self.call, node, op, args, kind)
