"""Running the HTTP server: uvicorn with httptools and uvloop, one process per core.

docs/http-stack.md records why this stack was chosen and what it measured. Worker processes
share the listening socket; each builds its own app (and index connections) from the
configuration passed through the environment.
"""

from __future__ import annotations

import os
import secrets

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from holdfast.config import CONFIG_ENV, Config
from holdfast.s3.xml import error_xml

GRACEFUL_SHUTDOWN_SECONDS = 5
# Bytes of request line and headers buffered before the app sees them; the app itself
# refuses more than Config.max_header_bytes with RequestHeaderSectionTooLarge.
MAX_REQUEST_HEAD_BYTES = 256 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on the request head.

    httptools (llhttp) buffers a request line and header section of any length until it
    ends, so a client that never ends its headers could grow a worker's memory without
    limit. Bytes received while a head is incomplete are counted (overcounting by at most
    one read) and the connection is answered and closed once they pass the bound.
    """

    _in_head = False
    _head_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

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


def serve(config: Config) -> None:
    os.environ[CONFIG_ENV] = config.to_env()
    uvicorn.run(
        "holdfast.s3.app:create_app",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.worker_count(),
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
        backlog=2048,
    )
