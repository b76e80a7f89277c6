"""Streaming ``aws-chunked`` body decoder (sans-IO push parser).

Wire format::

    <hex-size>[;chunk-signature=<64 hex>]\\r\\n<data>\\r\\n      (repeated)
    0[;chunk-signature=<64 hex>]\\r\\n                           (final chunk)
    <name>:<value>\\r\\n                                        (trailers, if any)
    x-amz-trailer-signature:<64 hex>\\r\\n                      (signed trailers only)
    \\r\\n

The decoder hands payload bytes back as they arrive, before the chunk they belong to has been
verified; a chunk's signature is checked when its last byte is in. The caller therefore
streams into a temporary location and commits only after :meth:`AwsChunkedDecoder.finish`
returns. Once the decoder has raised, it raises the same error again on every later call.

Error codes (S3 documents none for framing, so these follow its nearest equivalents):

* ``SignatureDoesNotMatch`` (403): a chunk or trailer signature is wrong or missing.
* ``IncompleteBody`` (400): the body ended before the final chunk or trailer section.
* ``InvalidArgument`` (400): anything else malformed: bad hex size, a size line or trailer
  that is too long, a chunk larger than ``max_chunk_size``, data not followed by CRLF, bytes
  after the end, trailers that were not announced.

Tolerated, because real clients send them:

* the body ending right after the final chunk's line, or after the last trailer line, without
  the closing CRLF (the AWS SDK for JavaScript ends with ``0\\r\\n``);
* a trailer line ending ``\\n\\r\\n`` instead of ``\\r\\n`` (some SDKs write the checksum line
  with LF and then the CRLF);
* chunk extensions other than ``chunk-signature``, and chunk signatures in unsigned modes; both
  are ignored.
"""

from __future__ import annotations

import enum
import hashlib
import re

from holdfast.consttime import same
from holdfast.s3.auth import (
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    AuthResult,
    canonical_trailer,
    chunk_signature,
    trailer_signature,
)
from holdfast.s3.errors import S3Error

_CRLF = b"\r\n"
_MAX_SIZE_LINE = 256  # "<16 hex>;chunk-signature=<64 hex>" is 97; room for small extensions
_MAX_TRAILER_LINE = 1024
_MAX_TRAILERS = 16
_HEX_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_SIGNATURE_HEX = re.compile(r"[0-9a-f]{64}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field name
_TRAILER_SIGNATURE = "x-amz-trailer-signature"

# x-amz-content-sha256 value -> (signed_chunks, trailer_expected, signed_trailer)
_MODES: dict[str, tuple[bool, bool, bool]] = {
    STREAMING_PAYLOAD: (True, False, False),
    STREAMING_PAYLOAD_TRAILER: (True, True, True),
    STREAMING_UNSIGNED_PAYLOAD_TRAILER: (False, True, False),
}


class _State(enum.Enum):
    SIZE_LINE = enum.auto()
    DATA = enum.auto()
    DATA_CRLF = enum.auto()
    TRAILERS = enum.auto()
    DONE = enum.auto()


def decoder_for(
    auth: AuthResult, *, max_chunk_size: int = 16 * 1024 * 1024
) -> AwsChunkedDecoder | None:
    """A decoder configured from ``auth.content_sha256``, or None if the body is not framed."""
    mode = _MODES.get(auth.content_sha256)
    if mode is None:
        return None
    signed_chunks, trailer_expected, signed_trailer = mode
    return AwsChunkedDecoder(
        auth=auth,
        signed_chunks=signed_chunks,
        trailer_expected=trailer_expected,
        signed_trailer=signed_trailer,
        max_chunk_size=max_chunk_size,
    )


class AwsChunkedDecoder:
    """Push parser: feed raw body bytes in any split, get payload bytes back."""

    def __init__(
        self,
        *,
        auth: AuthResult | None,
        signed_chunks: bool,
        trailer_expected: bool,
        signed_trailer: bool,
        max_chunk_size: int = 16 * 1024 * 1024,
    ) -> None:
        if (signed_chunks or signed_trailer) and auth is None:
            raise ValueError("signed chunks or trailers need the request's AuthResult")
        self._auth = auth
        self._signed_chunks = signed_chunks
        self._trailer_expected = trailer_expected
        self._signed_trailer = signed_trailer
        self._max_chunk_size = max_chunk_size

        self._state = _State.SIZE_LINE
        self._line = bytearray()  # a size or trailer line split across feeds
        self._remaining = 0  # data bytes still due in the current chunk
        self._crlf_seen = 0  # bytes of the CRLF after chunk data matched so far
        self._chunk_hash = hashlib.sha256()
        self._chunk_signature: str | None = None
        self._previous_signature = auth.seed_signature if auth else ""
        self._trailers: dict[str, str] = {}
        self._trailer_verified = False
        self._decoded_length = 0
        self._failure: S3Error | None = None

    @property
    def decoded_length(self) -> int:
        """Payload bytes returned so far (compare with x-amz-decoded-content-length)."""
        return self._decoded_length

    def feed(self, data: bytes) -> list[bytes]:
        """Consume raw body bytes (any split, even 1 byte at a time); return decoded payload pieces
        available so far (may be empty). Raise S3Error on malformed framing or bad chunk signature.
        """
        self._raise_if_failed()
        if not isinstance(data, bytes):
            data = bytes(data)  # pieces we return may alias it, so it must be immutable
        pieces: list[bytes] = []
        pos = 0
        try:
            while pos < len(data):
                pos = self._step(data, pos, pieces)
        except S3Error as error:
            self._failure = error
            raise
        return pieces

    def finish(self) -> dict[str, str]:
        """Call at end of body. Raise S3Error("IncompleteBody") if the final 0-size chunk (and trailer
        section, if expected) was not seen. Returns the trailer headers, lower-cased names (e.g.
        {"x-amz-checksum-crc32": "..."}), with x-amz-trailer-signature verified and removed.
        """
        self._raise_if_failed()
        try:
            if self._state is _State.TRAILERS and self._line in (b"", b"\r"):
                self._end_trailers()  # the closing CRLF never came; everything else did
            if self._state is not _State.DONE:
                raise S3Error("IncompleteBody", "The aws-chunked body ended before its last chunk")
        except S3Error as error:
            self._failure = error
            raise
        return dict(self._trailers)

    # --- state machine -------------------------------------------------------------------------

    def _step(self, data: bytes, pos: int, pieces: list[bytes]) -> int:
        """Advance through one state; return the new position in ``data``."""
        state = self._state
        if state is _State.DATA:
            return self._take_data(data, pos, pieces)
        if state is _State.DATA_CRLF:
            return self._take_data_crlf(data, pos)
        if state is _State.DONE:
            raise S3Error(
                "InvalidArgument", "Unexpected data after the end of the aws-chunked body"
            )
        limit = _MAX_SIZE_LINE if state is _State.SIZE_LINE else _MAX_TRAILER_LINE
        line, pos = self._take_line(data, pos, limit)
        if line is not None:
            if state is _State.SIZE_LINE:
                self._on_size_line(line)
            else:
                self._on_trailer_line(line)
        return pos

    def _take_line(self, data: bytes, pos: int, limit: int) -> tuple[bytes | None, int]:
        """Collect a CRLF-terminated line; return (line without CRLF, new pos) or (None, end)."""
        if self._line.endswith(b"\r") and data[pos : pos + 1] == b"\n":
            line = bytes(self._line[:-1])
            self._line.clear()
            return line, pos + 1
        # Search no further than the line may reach, so garbage is not scanned to its end.
        window_end = pos + limit + len(_CRLF) - len(self._line)
        end = data.find(_CRLF, pos, window_end)
        if end < 0:
            if len(self._line) + len(data) - pos > limit + 1:  # +1: a CR awaiting its LF
                raise S3Error("InvalidArgument", "aws-chunked line too long")
            self._line += data[pos:]
            return None, len(data)
        self._line += data[pos:end]
        line = bytes(self._line)
        self._line.clear()
        return line, end + len(_CRLF)

    def _take_data(self, data: bytes, pos: int, pieces: list[bytes]) -> int:
        count = min(self._remaining, len(data) - pos)
        piece = data if count == len(data) else data[pos : pos + count]
        if self._signed_chunks:
            self._chunk_hash.update(piece)
        pieces.append(piece)
        self._decoded_length += count
        self._remaining -= count
        if self._remaining == 0:
            self._verify_chunk()
            self._state = _State.DATA_CRLF
        return pos + count

    def _take_data_crlf(self, data: bytes, pos: int) -> int:
        while pos < len(data) and self._crlf_seen < len(_CRLF):
            if data[pos] != _CRLF[self._crlf_seen]:
                raise S3Error("InvalidArgument", "aws-chunked data is not followed by CRLF")
            self._crlf_seen += 1
            pos += 1
        if self._crlf_seen == len(_CRLF):
            self._state = _State.SIZE_LINE
        return pos

    def _on_size_line(self, line: bytes) -> None:
        size_field, *extensions = line.split(b";")
        size_field = size_field.strip(b" \t")
        if not _HEX_SIZE.fullmatch(size_field):
            raise S3Error("InvalidArgument", "aws-chunked chunk size is not hexadecimal")
        size = int(size_field, 16)
        if size > self._max_chunk_size:
            raise S3Error(
                "InvalidArgument", f"aws-chunked chunk exceeds {self._max_chunk_size} bytes"
            )
        if self._signed_chunks:
            self._chunk_signature = _chunk_signature_extension(extensions)
        self._chunk_hash = hashlib.sha256()
        if size == 0:
            self._verify_chunk()
            self._state = _State.TRAILERS
            return
        self._remaining = size
        self._crlf_seen = 0
        self._state = _State.DATA

    def _verify_chunk(self) -> None:
        if not self._signed_chunks:
            return
        provided = self._chunk_signature
        if provided is None:
            raise S3Error("SignatureDoesNotMatch", "An aws-chunked chunk has no chunk-signature")
        assert self._auth is not None  # guaranteed by __init__
        expected = chunk_signature(
            self._auth, self._previous_signature, self._chunk_hash.hexdigest()
        )
        if not same(expected, provided):
            raise S3Error("SignatureDoesNotMatch", "An aws-chunked chunk signature does not match")
        self._previous_signature = provided

    def _on_trailer_line(self, line: bytes) -> None:
        line = line.rstrip(b"\n")  # the "value\n\r\n" variant
        if not line:
            self._end_trailers()
            return
        if not self._trailer_expected:
            raise S3Error(
                "InvalidArgument", "aws-chunked body has trailers that were not announced"
            )
        if self._trailer_verified:
            raise S3Error("InvalidArgument", "A trailer follows x-amz-trailer-signature")
        name, value = _parse_trailer(line)
        if name == _TRAILER_SIGNATURE:
            self._on_trailer_signature(value)
            return
        if name in self._trailers or len(self._trailers) >= _MAX_TRAILERS:
            raise S3Error("InvalidArgument", "Repeated or too many aws-chunked trailers")
        self._trailers[name] = value

    def _on_trailer_signature(self, provided: str) -> None:
        if not self._signed_trailer:
            return  # nothing to check it against in unsigned modes; drop it
        assert self._auth is not None  # guaranteed by __init__
        expected = trailer_signature(
            self._auth, self._previous_signature, canonical_trailer(self._trailers)
        )
        if not same(expected, provided.lower()):
            raise S3Error(
                "SignatureDoesNotMatch", "The aws-chunked trailer signature does not match"
            )
        self._trailer_verified = True

    def _end_trailers(self) -> None:
        # A signed trailer section must be there and signed, or trailers could be cut off.
        if self._signed_trailer and not self._trailer_verified:
            raise S3Error("SignatureDoesNotMatch", "The aws-chunked trailers are not signed")
        self._line.clear()
        self._state = _State.DONE

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure


def _chunk_signature_extension(extensions: list[bytes]) -> str | None:
    for extension in extensions:
        name, _, value = extension.partition(b"=")
        if name.strip() == b"chunk-signature":
            signature = value.strip().decode("ascii", "replace")
            if not _SIGNATURE_HEX.fullmatch(signature):
                raise S3Error(
                    "SignatureDoesNotMatch", "An aws-chunked chunk-signature is malformed"
                )
            return signature
    return None


def _parse_trailer(line: bytes) -> tuple[str, str]:
    raw_name, sep, raw_value = line.partition(b":")
    try:
        name = raw_name.decode("ascii").strip().lower()
        value = raw_value.decode("ascii").strip(" \t")
    except UnicodeDecodeError:
        raise S3Error("InvalidArgument", "aws-chunked trailer is not ASCII") from None
    if not sep or not _TOKEN.fullmatch(name):
        raise S3Error("InvalidArgument", "Malformed aws-chunked trailer line")
    return name, value
