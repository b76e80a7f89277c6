"""Unit tests for holdfast.s3.chunked: the aws-chunked decoder, against AWS's published examples
and botocore's own encoder, fed in every split we can think of."""

from __future__ import annotations

import base64
import hashlib
import io
import zlib

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum
from hypothesis import given, settings
from hypothesis import strategies as st

from holdfast.s3.auth import (
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    UNSIGNED_PAYLOAD,
    AuthResult,
    canonical_trailer,
    chunk_signature,
    derive_signing_key,
    trailer_signature,
)
from holdfast.s3.chunked import AwsChunkedDecoder, decoder_for
from holdfast.s3.errors import S3Error

DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_KEY = derive_signing_key(DOC_SECRET, "20130524", "us-east-1")
DOC_DATA = b"a" * 66_560


def doc_auth(seed: str, content_sha256: str) -> AuthResult:
    return AuthResult(
        access_key="AKIAIOSFODNN7EXAMPLE",
        signing_key=DOC_KEY,
        seed_signature=seed,
        amz_date="20130524T000000Z",
        scope="20130524/us-east-1/s3/aws4_request",
        content_sha256=content_sha256,
        presigned=False,
    )


# From the AWS documentation, "Transferring Payload in Multiple Chunks" (sigv4-streaming) and
# "Signature calculations for trailing headers" (sigv4-streaming-trailers): 65536 + 1024 bytes
# of 'a', the seed signature of the request, then each chunk's published signature.
DOC_SIGNED = doc_auth(
    "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9", STREAMING_PAYLOAD
)
DOC_SIGNED_BODY = (
    b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    + DOC_DATA[:65536]
    + b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
    + DOC_DATA[65536:]
    + b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n"
    + b"\r\n"
)
DOC_TRAILER = doc_auth(
    "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e", STREAMING_PAYLOAD_TRAILER
)
DOC_TRAILER_BODY = (
    b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n"
    + DOC_DATA[:65536]
    + b"\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n"
    + DOC_DATA[65536:]
    + b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n"
    + b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
    + b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n"
    + b"\r\n"
)

AUTH = AuthResult(
    access_key="HFTESTACCESSKEY00001",
    signing_key=derive_signing_key("secret", "20261122", "us-east-1"),
    seed_signature="0" * 63 + "1",
    amz_date="20261122T001700Z",
    scope="20261122/us-east-1/s3/aws4_request",
    content_sha256=STREAMING_PAYLOAD_TRAILER,
    presigned=False,
)
PAYLOAD = bytes(range(256)) * 40 + b"tail"  # 10244 bytes


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def encode(
    data: bytes,
    chunk_size: int,
    *,
    auth: AuthResult | None = AUTH,
    trailers: dict[str, str] | None = None,
    signed_trailer: bool = False,
) -> bytes:
    """aws-chunked framing built with the same helpers a client-side signer would use."""
    out = bytearray()
    previous = auth.seed_signature if auth else ""
    pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    for piece in pieces:
        out += f"{len(piece):x}".encode()
        if auth is not None:
            previous = chunk_signature(auth, previous, hashlib.sha256(piece).hexdigest())
            out += f";chunk-signature={previous}".encode()
        out += b"\r\n" + piece + (b"\r\n" if piece else b"")
    for name, value in (trailers or {}).items():
        out += f"{name}:{value}\r\n".encode()
    if signed_trailer:
        assert auth is not None
        signature = trailer_signature(auth, previous, canonical_trailer(trailers or {}))
        out += f"x-amz-trailer-signature:{signature}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def signed_decoder(auth: AuthResult = AUTH, **overrides) -> AwsChunkedDecoder:
    options = {
        "auth": auth,
        "signed_chunks": True,
        "trailer_expected": False,
        "signed_trailer": False,
        **overrides,
    }
    return AwsChunkedDecoder(**options)


def unsigned_trailer_decoder(**overrides) -> AwsChunkedDecoder:
    options = {
        "auth": None,
        "signed_chunks": False,
        "trailer_expected": True,
        "signed_trailer": False,
        **overrides,
    }
    return AwsChunkedDecoder(**options)


def decode(decoder: AwsChunkedDecoder, pieces: list[bytes]) -> tuple[bytes, dict[str, str]]:
    out = bytearray()
    for piece in pieces:
        for decoded in decoder.feed(piece):
            assert isinstance(decoded, bytes)
            out += decoded
    trailers = decoder.finish()
    assert decoder.decoded_length == len(out)
    return bytes(out), trailers


def split_at(body: bytes, cuts: list[int]) -> list[bytes]:
    cuts = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    return [body[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def expect_error(code: str, decoder: AwsChunkedDecoder, pieces: list[bytes]) -> S3Error:
    with pytest.raises(S3Error) as caught:
        decode(decoder, pieces)
    assert caught.value.code == code, caught.value
    return caught.value


# --- the AWS documentation's examples ----------------------------------------------------------


def test_aws_documentation_signed_example() -> None:
    assert len(DOC_SIGNED_BODY) == 66_824  # the documented Content-Length
    data, trailers = decode(signed_decoder(DOC_SIGNED), [DOC_SIGNED_BODY])
    assert data == DOC_DATA
    assert trailers == {}


def test_aws_documentation_signed_trailer_example() -> None:
    decoder = signed_decoder(DOC_TRAILER, trailer_expected=True, signed_trailer=True)
    data, trailers = decode(decoder, split_at(DOC_TRAILER_BODY, list(range(0, 70000, 777))))
    assert data == DOC_DATA
    assert trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}


@pytest.mark.parametrize("index", [0, 1, 2])
def test_aws_documentation_any_changed_chunk_signature_is_refused(index: int) -> None:
    signatures = [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ]
    original = signatures[index]
    changed = original[:-1] + ("0" if original[-1] != "0" else "1")
    body = DOC_SIGNED_BODY.replace(original.encode(), changed.encode())
    expect_error("SignatureDoesNotMatch", signed_decoder(DOC_SIGNED), [body])


def test_aws_documentation_changed_data_byte_is_refused() -> None:
    body = bytearray(DOC_SIGNED_BODY)
    body[1000] = ord("b")
    expect_error("SignatureDoesNotMatch", signed_decoder(DOC_SIGNED), [bytes(body)])


def test_aws_documentation_changed_trailer_is_refused() -> None:
    body = DOC_TRAILER_BODY.replace(b"sOO8/Q==", b"sOO8/A==")
    decoder = signed_decoder(DOC_TRAILER, trailer_expected=True, signed_trailer=True)
    expect_error("SignatureDoesNotMatch", decoder, [body])


def test_trailer_line_with_extra_lf_is_tolerated() -> None:
    body = DOC_TRAILER_BODY.replace(b"sOO8/Q==\r\n", b"sOO8/Q==\n\r\n")
    decoder = signed_decoder(DOC_TRAILER, trailer_expected=True, signed_trailer=True)
    assert decode(decoder, [body])[1] == {"x-amz-checksum-crc32c": "sOO8/Q=="}


# --- botocore's real encoder -------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 5, 1024 * 1024, 1024 * 1024 + 7])
def test_botocore_unsigned_trailer_body(size: int) -> None:
    data = (PAYLOAD * (size // len(PAYLOAD) + 1))[:size]
    wrapper = AwsChunkedWrapper(
        io.BytesIO(data), checksum_cls=Crc32Checksum, checksum_name="x-amz-checksum-crc32"
    )
    body = wrapper.read()
    decoded, trailers = decode(unsigned_trailer_decoder(), split_at(body, [3, 1000, 65537]))
    assert decoded == data
    assert trailers == {"x-amz-checksum-crc32": crc32_b64(data)}


def test_botocore_body_without_checksum() -> None:
    body = AwsChunkedWrapper(io.BytesIO(PAYLOAD), chunk_size=1000).read()
    assert body.endswith(b"0\r\n\r\n")
    assert decode(unsigned_trailer_decoder(), [body]) == (PAYLOAD, {})


# --- splits ------------------------------------------------------------------------------------


SMALL = b"hello, aws-chunked world"


def small_bodies() -> list[tuple[str, bytes, dict]]:
    trailers = {"x-amz-checksum-crc32": crc32_b64(SMALL)}
    return [
        ("signed", encode(SMALL, 7), {}),
        (
            "signed-trailer",
            encode(SMALL, 7, trailers=trailers, signed_trailer=True),
            {"trailer_expected": True, "signed_trailer": True},
        ),
        (
            "unsigned-trailer",
            encode(SMALL, 5, auth=None, trailers=trailers),
            {"signed_chunks": False, "trailer_expected": True, "auth": None},
        ),
    ]


@pytest.mark.parametrize(("name", "body", "options"), small_bodies())
def test_every_two_way_split_and_byte_at_a_time(name: str, body: bytes, options: dict) -> None:
    for cut in range(len(body) + 1):
        assert decode(signed_decoder(**options), [body[:cut], body[cut:]])[0] == SMALL, cut
    one_byte = [body[i : i + 1] for i in range(len(body))]
    assert decode(signed_decoder(**options), one_byte)[0] == SMALL


@pytest.mark.parametrize(("name", "body", "options"), small_bodies())
def test_every_truncation_is_incomplete(name: str, body: bytes, options: dict) -> None:
    # Complete: the body, the body without its closing CRLF and, for unsigned trailers only,
    # the body cut right after the final chunk (no trailers at all; the caller then finds the
    # checksum it was promised in x-amz-trailer missing).
    final_chunk_end = body.index(b"\r\n", body.rindex(b"\r\n0") + 3) + 2
    no_trailers = {final_chunk_end} if name == "unsigned-trailer" else set()
    for cut in range(len(body) - 2):
        if cut in no_trailers:
            assert decode(signed_decoder(**options), [body[:cut]]) == (SMALL, {})
            continue
        with pytest.raises(S3Error) as caught:
            decode(signed_decoder(**options), [body[:cut]])
        assert caught.value.code in ("IncompleteBody", "SignatureDoesNotMatch"), (name, cut)
    decode(signed_decoder(**options), [body[:-2]])
    decode(signed_decoder(**options), [body[:-1]])


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=3000),
    chunk_size=st.integers(min_value=1, max_value=1100),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
    mode=st.sampled_from(["signed", "signed-trailer", "unsigned-trailer"]),
)
def test_random_bodies_and_splits(data: bytes, chunk_size: int, cuts: list[int], mode: str) -> None:
    trailers = {"x-amz-checksum-crc32": crc32_b64(data), "x-amz-meta-extra": "v"}
    if mode == "signed":
        body, decoder = encode(data, chunk_size), signed_decoder()
    elif mode == "signed-trailer":
        body = encode(data, chunk_size, trailers=trailers, signed_trailer=True)
        decoder = signed_decoder(trailer_expected=True, signed_trailer=True)
    else:
        body = encode(data, chunk_size, auth=None, trailers=trailers)
        decoder = unsigned_trailer_decoder()
    decoded, received = decode(decoder, split_at(body, cuts))
    assert decoded == data
    assert received == ({} if mode == "signed" else trailers)


def test_large_chunk_is_passed_through_before_it_ends() -> None:
    data = PAYLOAD * 100
    body = encode(data, len(data))
    decoder = signed_decoder()
    header_end = body.index(b"\r\n") + 2
    first = decoder.feed(body[: header_end + 1000])
    assert b"".join(first) == data[:1000]
    rest = decoder.feed(body[header_end + 1000 :])
    assert b"".join(first + rest) == data
    decoder.finish()


def test_whole_feed_of_chunk_data_is_returned_without_copying() -> None:
    decoder = unsigned_trailer_decoder()
    decoder.feed(b"10\r\n")
    data = b"0123456789abcdef"
    assert decoder.feed(data)[0] is data


def test_body_ending_right_after_final_chunk_line() -> None:
    # The AWS SDK for JavaScript ends an unsigned trailer body with no trailers at "0\r\n".
    assert decode(unsigned_trailer_decoder(), [b"5\r\nhello\r\n0\r\n"]) == (b"hello", {})
    trailer = b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n"
    assert decode(unsigned_trailer_decoder(), [trailer])[1] == {"x-amz-checksum-crc32": "AAAAAA=="}


def test_chunk_extensions_and_unsigned_signatures_are_ignored() -> None:
    body = b"5;chunk-signature=" + b"f" * 64 + b";foo=bar\r\nhello\r\n0\r\n\r\n"
    assert decode(unsigned_trailer_decoder(), [body])[0] == b"hello"


def test_decoder_for_maps_content_sha256() -> None:
    decoder = decoder_for(AUTH)
    assert decoder is not None
    body = encode(SMALL, 4, trailers={"x-amz-checksum-crc32": "x"}, signed_trailer=True)
    assert decode(decoder, [body]) == (SMALL, {"x-amz-checksum-crc32": "x"})
    for value, expected in [
        (STREAMING_PAYLOAD, True),
        (STREAMING_UNSIGNED_PAYLOAD_TRAILER, True),
        (UNSIGNED_PAYLOAD, False),
        ("a" * 64, False),
    ]:
        auth = AuthResult(**{**AUTH.__dict__, "content_sha256": value})
        assert (decoder_for(auth) is not None) is expected


# --- rejections --------------------------------------------------------------------------------


def test_bad_chunk_signature() -> None:
    body = encode(SMALL, 7)
    first = body.index(b"chunk-signature=") + len(b"chunk-signature=")
    tampered = body[:first] + b"0" * 64 + body[first + 64 :]
    expect_error("SignatureDoesNotMatch", signed_decoder(), [tampered])


def test_signature_from_another_upload_is_refused() -> None:
    other = AuthResult(**{**AUTH.__dict__, "seed_signature": "f" * 64})
    expect_error("SignatureDoesNotMatch", signed_decoder(other), [encode(SMALL, 7)])


def test_swapped_chunks_are_refused() -> None:
    body = encode(b"A" * 10 + b"B" * 10, 10)
    chunks = body.split(b"\r\n")
    # header1, data1, header2, data2, ...: trade the two data chunks with their headers.
    swapped = b"\r\n".join([chunks[2], chunks[3], chunks[0], chunks[1], *chunks[4:]])
    expect_error("SignatureDoesNotMatch", signed_decoder(), [swapped])


def test_chunk_without_signature_in_signed_mode() -> None:
    expect_error("SignatureDoesNotMatch", signed_decoder(), [encode(SMALL, 7, auth=None)])


def test_malformed_chunk_signature() -> None:
    body = b"5;chunk-signature=xyz\r\nhello\r\n"
    expect_error("SignatureDoesNotMatch", signed_decoder(), [body])


def test_truncated_body() -> None:
    body = encode(PAYLOAD, 1000)
    expect_error("IncompleteBody", signed_decoder(), [body[: len(body) // 2]])
    expect_error("IncompleteBody", signed_decoder(), [b""])


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"\r\nhello\r\n0\r\n\r\n",
        b"12345678901234567\r\n",
    ],
)
def test_bad_hex_size(body: bytes) -> None:
    expect_error("InvalidArgument", unsigned_trailer_decoder(), [body])


def test_oversize_chunk() -> None:
    decoder = unsigned_trailer_decoder(max_chunk_size=1024)
    expect_error("InvalidArgument", decoder, [b"401\r\n"])
    assert decode(unsigned_trailer_decoder(max_chunk_size=4), [b"4\r\nabcd\r\n0\r\n\r\n"])


def test_size_line_too_long_is_refused_early() -> None:
    decoder = unsigned_trailer_decoder()
    with pytest.raises(S3Error) as caught:
        for _ in range(100):
            decoder.feed(b"1" * 10)
    assert caught.value.code == "InvalidArgument"


def test_data_not_followed_by_crlf() -> None:
    expect_error("InvalidArgument", unsigned_trailer_decoder(), [b"5\r\nhelloX\r\n0\r\n\r\n"])
    expect_error("InvalidArgument", unsigned_trailer_decoder(), [b"5\r\nhello\n0\r\n\r\n"])


def test_garbage_after_the_end() -> None:
    body = encode(SMALL, 7)
    expect_error("InvalidArgument", signed_decoder(), [body + b"x"])
    expect_error("InvalidArgument", signed_decoder(), [body, b"\r\n"])


def test_unannounced_trailer_is_refused() -> None:
    body = encode(SMALL, 7, trailers={"x-amz-checksum-crc32": "AAAAAA=="})
    expect_error("InvalidArgument", signed_decoder(), [body])


def test_bad_trailer_signature() -> None:
    trailers = {"x-amz-checksum-crc32": crc32_b64(SMALL)}
    body = encode(SMALL, 7, trailers=trailers, signed_trailer=True)
    options = {"trailer_expected": True, "signed_trailer": True}
    tampered = body.replace(crc32_b64(SMALL).encode(), b"AAAAAA==")
    expect_error("SignatureDoesNotMatch", signed_decoder(**options), [tampered])
    at = body.index(b"x-amz-trailer-signature:") + len(b"x-amz-trailer-signature:")
    wrong_sig = body[:at] + b"0" * 64 + body[at + 64 :]
    expect_error("SignatureDoesNotMatch", signed_decoder(**options), [wrong_sig])


def test_missing_trailer_signature() -> None:
    trailers = {"x-amz-checksum-crc32": crc32_b64(SMALL)}
    body = encode(SMALL, 7, trailers=trailers)  # signed chunks, trailer not signed
    options = {"trailer_expected": True, "signed_trailer": True}
    expect_error("SignatureDoesNotMatch", signed_decoder(**options), [body])
    expect_error("SignatureDoesNotMatch", signed_decoder(**options), [body[:-2]])


def test_trailer_after_signature_is_refused() -> None:
    trailers = {"x-amz-checksum-crc32": crc32_b64(SMALL)}
    body = encode(SMALL, 7, trailers=trailers, signed_trailer=True)
    body = body[:-2] + b"x-amz-meta-late:1\r\n\r\n"
    expect_error(
        "InvalidArgument", signed_decoder(trailer_expected=True, signed_trailer=True), [body]
    )


@pytest.mark.parametrize(
    "trailer",
    [b"no-colon-here", b":empty-name", b"bad name:v", b"x-amz-checksum-crc32:\xff"],
)
def test_malformed_trailer_line(trailer: bytes) -> None:
    body = b"0\r\n" + trailer + b"\r\n\r\n"
    expect_error("InvalidArgument", unsigned_trailer_decoder(), [body])


def test_repeated_trailer_is_refused() -> None:
    body = b"0\r\nx-amz-checksum-crc32:A\r\nx-amz-checksum-crc32:B\r\n\r\n"
    expect_error("InvalidArgument", unsigned_trailer_decoder(), [body])


def test_failure_is_sticky() -> None:
    decoder = unsigned_trailer_decoder()
    with pytest.raises(S3Error):
        decoder.feed(b"zz\r\n")
    with pytest.raises(S3Error) as caught:
        decoder.feed(b"5\r\nhello\r\n0\r\n\r\n")
    assert caught.value.code == "InvalidArgument"
    with pytest.raises(S3Error):
        decoder.finish()


def test_signed_modes_need_auth() -> None:
    with pytest.raises(ValueError):
        AwsChunkedDecoder(
            auth=None, signed_chunks=True, trailer_expected=False, signed_trailer=False
        )
