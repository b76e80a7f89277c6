"""Request bodies: framing removed, length enforced, digests verified at the end.

A body arrives as ASGI messages. For the STREAMING-* payload modes it is aws-chunked: the
decoder strips the framing (which is never stored), checks each chunk signature and collects
the trailer. The payload is digested as it is written (in the store's worker thread) and
``finish`` compares every digest the client sent before anything may be committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from holdfast.checksums import BodyVerifier, ExpectedChecksums, VerifiedBody
from holdfast.errors import S3Error
from holdfast.s3.auth import AuthResult
from holdfast.s3.chunked import decoder_for
from holdfast.s3.http import Request


class IncomingBody:
    """One request's payload; iterate :meth:`chunks` once, then call :meth:`finish`."""

    def __init__(
        self,
        request: Request,
        auth: AuthResult | None,
        expected: ExpectedChecksums,
        max_size: int,
        default_algorithm: str | None = None,
    ) -> None:
        self.request = request
        self.decoder = decoder_for(auth) if auth else None
        self.verifier = BodyVerifier(expected, default_algorithm=default_algorithm)
        self.declared = self._declared_length(request)
        if self.declared is not None and self.declared > max_size:
            raise S3Error(
                "EntityTooLarge", ProposedSize=str(self.declared), MaxSizeAllowed=str(max_size)
            )
        self.max_size = max_size
        self.received = 0
        self.trailers: dict[str, str] = {}
        self._done = False

    def _declared_length(self, request: Request) -> int | None:
        if self.decoder is None:
            length = request.content_length()
            if length is None and "chunked" not in request.headers.get("transfer-encoding", ""):
                return 0  # no body at all
            return length
        raw = request.headers.get("x-amz-decoded-content-length")
        if raw is None:
            return None
        # isascii: "²" is a digit to str.isdigit, and int() refuses it (a 500, once).
        if not (raw.isascii() and raw.isdigit()):
            raise S3Error("InvalidArgument", "x-amz-decoded-content-length is not a number")
        return int(raw)

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._done:
            return
        # Receive at least once, even for an empty body: the first receive is what makes the
        # server answer "Expect: 100-continue" with 100 Continue. A final status in its place
        # is legal, but the AWS CLI v1's bundled botocore then misparses the next response on
        # that connection and stalls until keep-alive times out (30 s per empty file in a sync).
        more = True
        while more:
            message = await self.request.receive()
            if message["type"] == "http.disconnect":
                raise S3Error("IncompleteBody")
            raw = message.get("body", b"")
            more = message.get("more_body", False)
            pieces = self.decoder.feed(raw) if self.decoder is not None else [raw]
            for piece in pieces:
                if piece:
                    self._count(len(piece))
                    yield piece
        if self.decoder is not None:
            self.trailers = self.decoder.finish()
        self._done = True
        if self.declared is not None and self.received != self.declared:
            raise S3Error("IncompleteBody")

    def _count(self, n: int) -> None:
        self.received += n
        limit = self.declared if self.declared is not None else self.max_size
        if self.received > limit:
            if self.declared is None:
                raise S3Error("EntityTooLarge", MaxSizeAllowed=str(self.max_size))
            raise S3Error("IncompleteBody", "The request body is longer than its declared length.")

    def update(self, data: bytes) -> None:
        self.verifier.update(data)

    def finish(self) -> VerifiedBody:
        return self.verifier.finish(self.trailers)

    async def read_all(self) -> bytes:
        """Small bodies only (XML documents): collected, then verified."""
        buf = bytearray()
        async for piece in self.chunks():
            buf += piece
            self.update(piece)
        self.finish()
        return bytes(buf)
