"""One worker process of a node: uvicorn with httptools and uvloop, serving the S3 app on the
listening socket the supervisor bound (holdfast/server.py; docs/http-stack.md for why this
stack).

Apart from the supervisor's module so that the supervisor, which never serves HTTP, does not
import the HTTP server at every start (docs/failure-testing.md, "Restart at scale").
"""

from __future__ import annotations

import functools
import os
import secrets
import socket

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from holdfast.config import CONFIG_ENV, Config
from holdfast.s3.http import ABORT_EXTENSION
from holdfast.s3.xml import error_xml
from holdfast.server import GRACEFUL_SHUTDOWN_SECONDS

# Bytes of request line and headers buffered before the app sees them; the app itself
# refuses more than Config.max_header_bytes with RequestHeaderSectionTooLarge.
MAX_REQUEST_HEAD_BYTES = 256 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on the request head, and an answer for
    every request it receives, parseable or not.

    httptools (llhttp) buffers a request line and header section of any length until it
    ends, so a client that never ends its headers could grow a worker's memory without
    limit. Bytes received while a head is incomplete are counted (overcounting by at most
    one read) and the connection is answered and closed once they pass the bound.

    Answers, as nginx and Go's server give them (issue 18; uvicorn closed without a word):

    * Bytes that cannot be parsed after a complete request (a Content-Length shorter than
      the body sent, junk pipelined behind a request): the request in flight is answered
      first, then ``400 Bad Request``, then the connection closes. uvicorn wrote the 400 at
      once and closed, so the valid request's own answer was lost.
    * The client ends its side (``shutdown(SHUT_WR)``, which HTTP/1.1 allows) while a head
      is incomplete: ``400 Bad Request``. While a request is being handled: its answer is
      still sent (a body cut short is seen by the app as ended, so it answers
      IncompleteBody), then the connection closes. uvicorn closed at once on end-of-file,
      dropping the answer.
    """

    _in_head = False
    _head_bytes = 0
    _pending_400: str | None = None  # a parse error, answered after the request in flight

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:
            extensions = self.scope.setdefault("extensions", {})  # type: ignore[typeddict-item]
            extensions[ABORT_EXTENSION] = functools.partial(self._abort, cycle)

    def _abort(self, cycle: RequestResponseCycle) -> None:
        """Cut a response short after its headers went out (a read with no good copy left):
        the connection closes short of Content-Length, the one signal a client cannot take
        for the whole object. Quietly: the app has logged the failure once, structured, and
        uvicorn would otherwise add a traceback or "returned without completing response"."""
        if cycle.response_complete:
            return
        cycle.disconnected = True  # uvicorn sends nothing more and says nothing
        cycle.keep_alive = False
        if not self.transport.is_closing():
            self.transport.close()  # what was written still goes out first

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_REQUEST_HEAD_BYTES:
            request_id = secrets.token_hex(8).upper()
            body = error_xml(
                "RequestHeaderSectionTooLarge",
                "Your request header section exceeds the maximum allowed size.",
                "/",
                request_id,
                {"MaxSizeAllowed": str(MAX_REQUEST_HEAD_BYTES)},
            )
            head = (
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/xml\r\n"
                f"content-length: {len(body)}\r\nx-amz-request-id: {request_id}\r\n"
                "connection: close\r\n\r\n"
            )
            self.transport.write(head.encode() + body)
            self.transport.close()

    def _in_flight(self) -> bool:
        """A request whose whole message was read is still being answered (or queued)."""
        cycle = self.cycle
        return bool(self.pipeline) or (
            cycle is not None and not cycle.response_complete and not cycle.more_body
        )

    def send_400_response(self, msg: str) -> None:
        if self.transport.is_closing():
            return
        if self._in_flight():
            # The parse error is in bytes after a complete request: answer that one first.
            self._pending_400 = msg
            self.flow.pause_reading()
            return
        super().send_400_response(msg)

    def on_response_complete(self) -> None:
        if self._pending_400 is not None and not self.pipeline:
            if not self.transport.is_closing():
                self.server_state.total_requests += 1
                super().send_400_response(self._pending_400)
            return
        super().on_response_complete()

    def eof_received(self) -> bool | None:
        """The client has finished sending. Returning True keeps our side open to answer."""
        if self.transport.is_closing():
            return None
        if self._in_head and self._pending_400 is None:
            # A head cut short: answered now, or after the complete requests before it.
            self.send_400_response("Incomplete HTTP request received.")
            if self.transport.is_closing():
                return None
        if self.scheme == "https":
            return None  # TLS has no half-close: the transport closes whatever we return
        if self._pending_400 is not None:
            return True  # the 400 after the requests in flight closes the connection
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            if self.pipeline:
                self._close_after_pipeline()
                return True
            return None  # idle keep-alive connection: nothing to answer
        cycle.keep_alive = False  # close once this answer is out
        if cycle.more_body:
            # No more body will come: the app sees the end and answers IncompleteBody.
            cycle.more_body = False
            cycle.message_event.set()
        self._close_after_pipeline()
        return True

    def _close_after_pipeline(self) -> None:
        for queued, _ in self.pipeline:
            queued.keep_alive = False


def _uvicorn_config(config: Config) -> uvicorn.Config:
    return uvicorn.Config(
        "holdfast.s3.app:create_app",
        factory=True,
        loop="uvloop",
        http=BoundedHttpToolsProtocol,
        lifespan="on",
        access_log=False,
        # No X-Forwarded-* rewriting: the client address is the peer's (and one ASGI
        # middleware layer fewer on every request).
        proxy_headers=False,
        server_header=False,
        date_header=True,
        log_level="warning",
        ssl_certfile=config.tls_cert,
        ssl_keyfile=config.tls_key,
        timeout_keep_alive=30,
        # Closing an idle TLS keep-alive connection waits for the client's close_notify,
        # which an idle client never sends (uvloop gives up after 30 s), so without a bound
        # one idle HTTPS client stalls every restart. In-flight requests get this long.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def run(config_json: str, sock: socket.socket) -> None:
    """One worker process (``holdfast.server.run_worker``); ``sock`` is the supervisor's
    listening socket (multiprocessing passes the descriptor to the spawned process)."""
    os.environ[CONFIG_ENV] = config_json
    config = Config.from_env()
    server = uvicorn.Server(_uvicorn_config(config))
    server.run(sockets=[sock])
