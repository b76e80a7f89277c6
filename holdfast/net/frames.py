"""Checksummed frames: the only shape a node-to-node message has.

Every message between nodes (an RPC request or answer, a heartbeat, a layout notice, a
chunk of blob data) is one frame::

    offset size
     0     2   magic b"HF"
     2     1   format version (1)
     3     1   kind (Kind)
     4     4   request id (answers and data carry the id of their request)
     8     4   payload length
    12     4   frame CRC32C: over bytes 0-11 and the whole payload
    16     4   header CRC32C: over bytes 0-15
    20     -   payload

Why two checksums: the receiver must use the length to read the payload, so the length has
to be trusted first; the header CRC covers it (and the frame CRC field itself), and the frame
CRC covers the header and every payload byte. Nothing in a frame is used before both have
been checked (S3, 2008: one flipped bit in an unchecked gossip message took the service
down). CRC32C detects every single-bit error, every burst up to 32 bits, and two-bit errors
at any distance within a frame of the sizes used here (tests/unit/test_frames.py flips every
bit of sample frames, and hypothesis any bit of any frame).

A frame that fails a check is rejected, never applied; the caller counts it
(:data:`MESSAGES_REJECTED`, via :func:`reject`), logs it at most once per peer per minute,
and ends the connection, since a stream whose framing cannot be trusted cannot be
resynchronised. The sender retries on a new connection with backoff (holdfast/net/client.py).

Payloads: requests and answers are JSON objects (small: no blob bytes). Blob data travels in
DATA frames whose payload starts with :data:`DATA_PREFIX` (session, byte offset, block count)
and the CRC32C of each block, then the blocks: a receiver checks each block against its own
CRC32C before writing or yielding any of it, so blob data keeps its per-block CRC32C end to
end, on top of the frame's.

Pure: no I/O here, so the codec is unit-tested on its own.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import crc32c
from prometheus_client import Counter

from holdfast.net.tls import OncePerMinute

log = logging.getLogger("holdfast.net")

MAGIC = b"HF"
VERSION = 1
HEADER = struct.Struct(">2sBBIIII")
HEADER_SIZE = HEADER.size  # 20
MAX_PAYLOAD = 64 * 1024 * 1024 + 4096  # a 64 MiB block and its prefix at most
DATA_PREFIX = struct.Struct(">16sQH")  # session id, byte offset of the first block, blocks
NO_SESSION = bytes(16)
MAX_BLOCKS_PER_FRAME = 4096

MESSAGES_REJECTED = Counter(
    "holdfast_internal_messages_rejected",
    "Node-to-node messages that failed their checksum or format check and were rejected "
    "unapplied, by peer node and message kind (unreadable: the header itself was damaged)",
    ["peer", "kind"],
)


class Kind(IntEnum):
    REQUEST = 1  # JSON {"op", "args"}
    ANSWER = 2  # JSON {"ok": true, "result"} or {"ok": false, "error": {...}}
    DATA = 3  # blob blocks (DATA_PREFIX, CRC32C per block, the blocks)
    HEARTBEAT = 4  # JSON, answered like a request
    LAYOUT = 5  # JSON layout notice, answered like a request
    REJECTED = 6  # JSON {"reason"}: "your frame failed its check", then the connection ends


class BadFrame(ValueError):
    """A frame failed a check; ``kind`` is what the (trusted) header said, or None when the
    header itself is not trustworthy."""

    def __init__(self, reason: str, kind: Kind | None = None, request_id: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.request_id = request_id

    @property
    def kind_label(self) -> str:
        return self.kind.name.lower() if self.kind is not None else "unreadable"


@dataclass(frozen=True)
class Header:
    kind: Kind
    request_id: int
    length: int
    frame_crc: int


def _crc(parts: Sequence[bytes | bytearray | memoryview], seed: int) -> int:
    c = seed
    for p in parts:
        c = crc32c.crc32c(p, c)
    return c


def encode_header(
    kind: Kind, request_id: int, parts: Sequence[bytes | bytearray | memoryview]
) -> bytes:
    """The 20-byte header for a payload made of ``parts`` (sent after it, uncopied)."""
    length = sum(len(p) for p in parts)
    if length > MAX_PAYLOAD:
        raise ValueError(f"payload of {length} bytes exceeds {MAX_PAYLOAD}")
    first = struct.pack(">2sBBII", MAGIC, VERSION, int(kind), request_id & 0xFFFFFFFF, length)
    frame_crc = _crc(parts, crc32c.crc32c(first))
    with_crc = first + struct.pack(">I", frame_crc)
    return with_crc + struct.pack(">I", crc32c.crc32c(with_crc))


def encode(kind: Kind, request_id: int, payload: bytes) -> bytes:
    """A whole frame in one buffer (small messages, tests)."""
    return encode_header(kind, request_id, [payload]) + payload


def decode_header(buf: bytes | bytearray | memoryview) -> Header:
    """Check and read a header. BadFrame (kind None) unless its CRC, magic, version, kind
    and length are all right; the CRC is checked before any field is looked at."""
    if len(buf) != HEADER_SIZE:
        raise BadFrame(f"header of {len(buf)} bytes")
    magic, version, kind, request_id, length, frame_crc, header_crc = HEADER.unpack(buf)
    if crc32c.crc32c(bytes(buf[:16])) != header_crc:
        raise BadFrame("header checksum mismatch")
    if magic != MAGIC:
        raise BadFrame("not a Holdfast frame")
    if version != VERSION:
        raise BadFrame(f"frame format version {version}, this node speaks {VERSION}")
    try:
        k = Kind(kind)
    except ValueError:
        raise BadFrame(f"unknown frame kind {kind}") from None
    if length > MAX_PAYLOAD:
        raise BadFrame(f"frame length {length} exceeds {MAX_PAYLOAD}", k, request_id)
    return Header(k, request_id, length, frame_crc)


def check_payload(
    header_bytes: bytes | bytearray | memoryview, header: Header, payload: bytes | memoryview
) -> None:
    """BadFrame unless the frame CRC matches the header's first 12 bytes and the payload."""
    if len(payload) != header.length:
        raise BadFrame("short payload", header.kind, header.request_id)
    got = crc32c.crc32c(payload, crc32c.crc32c(bytes(header_bytes[:12])))
    if got != header.frame_crc:
        raise BadFrame("frame checksum mismatch", header.kind, header.request_id)


def decode(buf: bytes | bytearray | memoryview) -> tuple[Header, memoryview]:
    """Check and split one whole frame held in ``buf`` (exactly one frame)."""
    view = memoryview(buf)
    header = decode_header(view[:HEADER_SIZE])
    payload = view[HEADER_SIZE:]
    check_payload(view[:HEADER_SIZE], header, payload)
    return header, payload


# -- payloads -------------------------------------------------------------------------------------


def json_payload(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def parse_json(payload: bytes | memoryview, header: Header) -> dict:
    """A checked frame's JSON object; BadFrame if it is not one (a sender bug, never a
    flipped bit: the CRC passed)."""
    try:
        obj = json.loads(bytes(payload))
    except ValueError:
        raise BadFrame("payload is not JSON", header.kind, header.request_id) from None
    if not isinstance(obj, dict):
        raise BadFrame("payload is not a JSON object", header.kind, header.request_id)
    return obj


def data_parts(
    session: bytes, offset: int, blocks: Sequence[bytes | memoryview], crcs: Sequence[int]
) -> list[bytes | memoryview]:
    """The payload parts of a DATA frame carrying ``blocks`` (with their CRC32Cs)."""
    head = DATA_PREFIX.pack(session, offset, len(blocks)) + struct.pack(f">{len(crcs)}I", *crcs)
    return [head, *blocks]


@dataclass(frozen=True)
class DataChunk:
    session: bytes
    offset: int
    crcs: tuple[int, ...]
    data: memoryview  # the blocks, back to back


def parse_data(payload: memoryview, header: Header) -> DataChunk:
    """Split a checked DATA payload. Each block's CRC is checked by the consumer, who
    knows the block size (:func:`check_blocks`)."""
    if len(payload) < DATA_PREFIX.size:
        raise BadFrame("short data prefix", header.kind, header.request_id)
    session, offset, count = DATA_PREFIX.unpack_from(payload)
    end = DATA_PREFIX.size + 4 * count
    if count > MAX_BLOCKS_PER_FRAME or len(payload) < end:
        raise BadFrame("bad block count", header.kind, header.request_id)
    crcs = struct.unpack_from(f">{count}I", payload, DATA_PREFIX.size)
    return DataChunk(session, offset, crcs, payload[end:])


def check_blocks(chunk: DataChunk, block_size: int) -> list[memoryview]:
    """The chunk's blocks, each checked against its CRC32C (ValueError naming the first bad
    one). All blocks are full but the last, which may be short."""
    data = chunk.data
    count = len(chunk.crcs)
    if count == 0:
        if len(data):
            raise ValueError("data without a block checksum")
        return []
    if not (count - 1) * block_size < len(data) <= count * block_size:
        raise ValueError(f"{len(data)} bytes do not make {count} blocks of {block_size}")
    out = []
    for i, expected in enumerate(chunk.crcs):
        block = data[i * block_size : (i + 1) * block_size]
        if crc32c.crc32c(block) != expected:
            raise ValueError(f"block at offset {chunk.offset + i * block_size}: CRC32C mismatch")
        out.append(block)
    return out


# -- rejection ------------------------------------------------------------------------------------

_reject_log = OncePerMinute()


def reject(peer: str, err: BadFrame) -> None:
    """Count and (at most once per peer per minute) log a rejected frame."""
    MESSAGES_REJECTED.labels(peer, err.kind_label).inc()
    if _reject_log.allow(peer):
        log.warning(
            "internal message from node %s rejected, not applied: %s (kind %s); "
            "further rejections from it are counted in holdfast_internal_messages_rejected_total "
            "and logged at most once a minute",
            peer,
            err.reason,
            err.kind_label,
        )
