"""The frame codec (holdfast/net/frames.py): whatever single bit of a frame is flipped, the
frame is refused before any field of it is used."""

from __future__ import annotations

import struct

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holdfast.net import frames
from holdfast.net.frames import HEADER_SIZE, BadFrame, Kind


def flip(buf: bytes, bit: int) -> bytes:
    b = bytearray(buf)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def test_round_trip():
    payload = frames.json_payload({"op": "stat", "args": {"drive": "d0", "blob_id": "x"}})
    frame = frames.encode(Kind.REQUEST, 7, payload)
    header, body = frames.decode(frame)
    assert (header.kind, header.request_id, header.length) == (Kind.REQUEST, 7, len(payload))
    assert frames.parse_json(body, header) == {
        "op": "stat",
        "args": {"drive": "d0", "blob_id": "x"},
    }


def test_header_layout():
    frame = frames.encode(Kind.HEARTBEAT, 1, b"{}")
    magic, version, kind, rid, length, frame_crc, header_crc = frames.HEADER.unpack(frame[:20])
    assert (magic, version, kind, rid, length) == (b"HF", 1, 4, 1, 2)
    assert frame_crc == crc32c.crc32c(frame[:12] + b"{}")
    assert header_crc == crc32c.crc32c(frame[:16])


@pytest.mark.parametrize("kind", list(Kind))
def test_every_single_bit_flip_of_a_frame_is_refused(kind):
    """Exhaustive over a small frame of each kind: header, both checksums and payload."""
    frame = frames.encode(kind, 12345, b'{"op":"delete","args":{"blob_id":"0001"}}')
    for bit in range(len(frame) * 8):
        with pytest.raises(BadFrame):
            frames.decode(flip(frame, bit))


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(list(Kind)),
    rid=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=4096),
    where=st.floats(0, 1, exclude_max=True),
)
def test_any_single_bit_flip_is_detected(kind, rid, payload, where):
    frame = frames.encode(kind, rid, payload)
    header, body = frames.decode(frame)
    assert bytes(body) == payload and header.request_id == rid
    with pytest.raises(BadFrame):
        frames.decode(flip(frame, int(where * len(frame) * 8)))


def test_a_damaged_header_is_refused_before_its_length_is_used():
    frame = frames.encode(Kind.ANSWER, 1, b"x" * 100)
    bad = flip(frame, 8 * 8 + 3)  # a bit of the length field
    with pytest.raises(BadFrame) as err:
        frames.decode_header(bad[:HEADER_SIZE])
    assert err.value.kind is None and err.value.kind_label == "unreadable"


def test_a_damaged_payload_names_the_kind():
    frame = frames.encode(Kind.LAYOUT, 3, b'{"version": 7}')
    with pytest.raises(BadFrame) as err:
        frames.decode(flip(frame, (HEADER_SIZE + 2) * 8))
    assert err.value.kind_label == "layout" and err.value.request_id == 3


def test_wrong_version_and_oversize_are_refused():
    first = struct.pack(">2sBBII", b"HF", 2, 1, 1, 0)
    with_crc = first + struct.pack(">I", crc32c.crc32c(first))
    header = with_crc + struct.pack(">I", crc32c.crc32c(with_crc))
    with pytest.raises(BadFrame, match="version 2"):
        frames.decode_header(header)
    first = struct.pack(">2sBBII", b"HF", 1, 1, 1, frames.MAX_PAYLOAD + 1)
    with_crc = first + struct.pack(">I", 0)
    header = with_crc + struct.pack(">I", crc32c.crc32c(with_crc))
    with pytest.raises(BadFrame, match="exceeds"):
        frames.decode_header(header)


def test_data_frames_carry_a_crc_per_block():
    blocks = [b"a" * 16, b"b" * 16, b"c" * 5]
    parts = frames.data_parts(b"s" * 16, 32, blocks, [crc32c.crc32c(b) for b in blocks])
    frame = frames.encode_header(Kind.DATA, 9, parts) + b"".join(parts)
    header, payload = frames.decode(frame)
    chunk = frames.parse_data(payload, header)
    assert (chunk.session, chunk.offset) == (b"s" * 16, 32)
    assert [bytes(b) for b in frames.check_blocks(chunk, 16)] == blocks
    # A block whose bytes went wrong before framing (the frame CRC passes) fails its own.
    parts = frames.data_parts(b"s" * 16, 0, [b"a" * 15 + b"X"], [crc32c.crc32c(b"a" * 16)])
    frame = frames.encode_header(Kind.DATA, 9, parts) + b"".join(parts)
    header, payload = frames.decode(frame)
    with pytest.raises(ValueError, match="CRC32C mismatch"):
        frames.check_blocks(frames.parse_data(payload, header), 16)
