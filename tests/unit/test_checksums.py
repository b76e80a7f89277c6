"""Unit tests for holdfast.checksums."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib

import crc32c as crc32c_pkg
import pytest
from awscrt import checksums as crt
from botocore.httpchecksum import (
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc32Checksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from holdfast import checksums as ck
from holdfast.checksums import (
    ALGORITHMS,
    CRC_ALGORITHMS,
    BodyVerifier,
    ExpectedChecksums,
    block_crc32c,
    composite_checksum,
    default_checksum_type,
    expected_from_headers,
    full_object_crc,
    header_name,
    multipart_etag,
    new_hasher,
    parse_checksum_value,
    parse_content_md5,
    to_b64,
    validate_checksum_type,
)
from holdfast.s3.errors import S3Error

CHECK = b"123456789"
CHECK_VALUES = {
    "CRC32": "cbf43926",
    "CRC32C": "e3069283",
    "CRC64NVME": "ae8b14860a799888",
    "SHA1": "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
    "SHA256": "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
    "MD5": "25f9e794323b453885f5181f1b624d0b",
}
BOTOCORE = {
    "CRC32": [Crc32Checksum, CrtCrc32Checksum],
    "CRC32C": [CrtCrc32cChecksum],
    "CRC64NVME": [CrtCrc64NvmeChecksum],
    "SHA1": [Sha1Checksum],
    "SHA256": [Sha256Checksum],
}


def b64(alg: str, data: bytes) -> str:
    h = new_hasher(alg)
    h.update(data)
    return to_b64(h.digest())


def raises(code: str, fn, *args, match: str | None = None) -> S3Error:
    with pytest.raises(S3Error) as info:
        fn(*args)
    assert info.value.code == code, info.value
    if match is not None:
        assert match in info.value.message, info.value.message
    return info.value


# --------------------------------------------------------------------------- algorithms


def test_constants():
    assert ALGORITHMS == ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
    assert CRC_ALGORITHMS == ("CRC32", "CRC32C", "CRC64NVME")


@pytest.mark.parametrize("alg", [*ALGORITHMS, "MD5"])
def test_known_vectors(alg):
    h = new_hasher(alg)
    h.update(CHECK[:4])
    h.update(memoryview(CHECK)[4:])
    assert h.digest().hex() == CHECK_VALUES[alg]
    assert len(h.digest()) == ck.DIGEST_SIZES[alg]


@pytest.mark.parametrize("alg", [*ALGORITHMS, "MD5"])
def test_empty_input(alg):
    h = new_hasher(alg)
    ref = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "MD5": hashlib.md5}
    expected = ref[alg]().digest() if alg in ref else bytes(ck.DIGEST_SIZES[alg])
    assert h.digest() == expected


@pytest.mark.parametrize("alg", ALGORITHMS)
@settings(max_examples=30, deadline=None)
@given(chunks=st.lists(st.binary(max_size=3000), max_size=6))
def test_matches_botocore(alg, chunks):
    ours = new_hasher(alg)
    for c in chunks:
        ours.update(c)
    for cls in BOTOCORE[alg]:
        theirs = cls()
        for c in chunks:
            theirs.update(c)
        assert ours.digest() == theirs.digest(), cls
        assert to_b64(ours.digest()) == theirs.b64digest()


def test_large_buffers_match_other_implementations():
    data = os.urandom((1 << 20) + 13)
    assert b64("CRC32", data) == to_b64(crt.crc32(data).to_bytes(4, "big"))
    assert b64("CRC32C", data) == to_b64(crc32c_pkg.crc32c(data).to_bytes(4, "big"))
    assert block_crc32c(data) == crc32c_pkg.crc32c(data)
    assert block_crc32c(memoryview(data)[100:]) == crc32c_pkg.crc32c(data[100:])
    assert block_crc32c(data[7:], block_crc32c(data[:7])) == block_crc32c(data)


def test_header_name_and_xml_tag():
    assert header_name("CRC32") == "x-amz-checksum-crc32"
    assert header_name("CRC64NVME") == "x-amz-checksum-crc64nvme"
    assert header_name("sha256") == "x-amz-checksum-sha256"
    assert ck.xml_tag("CRC32C") == "ChecksumCRC32C"
    with pytest.raises(ValueError):
        header_name("MD5")
    with pytest.raises(ValueError):
        new_hasher("XXHASH64")


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_parse_checksum_value_roundtrip(alg):
    raw = os.urandom(ck.DIGEST_SIZES[alg])
    assert parse_checksum_value(alg, to_b64(raw)) == raw


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "AAAA",  # 3 bytes
        "AAAAAAA=",  # 5 bytes
        "AAAAAA",  # missing padding
        "AAAA AA==",
        "!!!!!!==",
        "é" * 8,
        to_b64(bytes(8)),  # a CRC64 value for a CRC32 header
    ],
)
def test_parse_checksum_value_invalid(value):
    err = raises("InvalidRequest", parse_checksum_value, "CRC32", value)
    assert err.message == "Value for x-amz-checksum-crc32 header is invalid."
    assert err.status == 400


def test_parse_checksum_value_invalid_trailing():
    with pytest.raises(S3Error) as info:
        parse_checksum_value("SHA1", "nope", trailing=True)
    assert info.value.message == "Value for x-amz-checksum-sha1 trailing header is invalid."


def test_parse_content_md5():
    md5 = hashlib.md5(b"x").digest()
    assert parse_content_md5(to_b64(md5)) == md5
    for bad in ["", "xyz", to_b64(md5[:15]), to_b64(md5 + b"\0"), md5.hex()]:
        err = raises("InvalidDigest", parse_content_md5, bad)
        assert err.status == 400


# --------------------------------------------------------------------------- headers


def test_expected_from_headers_nothing():
    e = expected_from_headers({})
    assert e == ExpectedChecksums(None, None, None, None)


def test_expected_value_in_header():
    body = b"hello"
    e = expected_from_headers(
        {
            "x-amz-sdk-checksum-algorithm": "CRC32",
            "x-amz-checksum-crc32": b64("CRC32", body),
            "content-md5": to_b64(hashlib.md5(body).digest()),
            "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
        }
    )
    assert e.algorithm == "CRC32"
    assert e.value == new_hasher_digest("CRC32", body)
    assert e.content_md5 == hashlib.md5(body).digest()
    assert e.content_sha256 == hashlib.sha256(body).digest()
    assert e.trailer is None


def new_hasher_digest(alg: str, data: bytes) -> bytes:
    h = new_hasher(alg)
    h.update(data)
    return h.digest()


def test_expected_trailer():
    e = expected_from_headers(
        {
            "x-amz-sdk-checksum-algorithm": "crc64nvme",
            "x-amz-trailer": "x-amz-checksum-crc64nvme",
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "content-encoding": "aws-chunked",
        }
    )
    assert (e.algorithm, e.value, e.trailer, e.content_sha256) == (
        "CRC64NVME",
        None,
        "x-amz-checksum-crc64nvme",
        None,
    )


@pytest.mark.parametrize(
    "value",
    [
        "UNSIGNED-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
    ],
)
def test_content_sha256_not_a_hash(value):
    assert expected_from_headers({"x-amz-content-sha256": value}).content_sha256 is None


def test_content_sha256_hex_any_case_and_invalid():
    digest = hashlib.sha256(b"").digest()
    e = expected_from_headers({"x-amz-content-sha256": digest.hex().upper()})
    assert e.content_sha256 == digest
    for bad in ["abc", digest.hex()[:-1] + "g", "unsigned-payload"]:
        raises("InvalidArgument", expected_from_headers, {"x-amz-content-sha256": bad})


def test_checksum_algorithm_header_means_compute():
    e = expected_from_headers(
        {"x-amz-checksum-algorithm": "sha1", "x-amz-checksum-type": "composite"}
    )
    assert (e.algorithm, e.value, e.trailer, e.checksum_type) == ("SHA1", None, None, "COMPOSITE")
    raises(
        "InvalidRequest",
        expected_from_headers,
        {"x-amz-checksum-algorithm": "MD5"},
        match="Checksum algorithm provided is unsupported",
    )
    raises(
        "InvalidRequest",
        expected_from_headers,
        {"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "PARTIAL"},
        match="Value for x-amz-checksum-type header is invalid.",
    )


def test_non_value_checksum_headers_are_not_counted():
    e = expected_from_headers(
        {
            "x-amz-checksum-mode": "ENABLED",
            "x-amz-checksum-type": "FULL_OBJECT",
            "x-amz-checksum-algorithm": "CRC32",
            "x-amz-checksum-crc32": b64("CRC32", b""),
        }
    )
    assert e.algorithm == "CRC32" and e.value == bytes(4)


def test_multiple_value_headers():
    err = raises(
        "InvalidRequest",
        expected_from_headers,
        {"x-amz-checksum-crc32": b64("CRC32", b""), "x-amz-checksum-sha1": b64("SHA1", b"")},
    )
    assert err.message.startswith("Expecting a single x-amz-checksum- header")
    # Even when both are empty, S3 reports the count first.
    raises(
        "InvalidRequest",
        expected_from_headers,
        {"x-amz-checksum-crc32": "", "x-amz-checksum-sha1": ""},
        match="Multiple checksum Types are not allowed",
    )


def test_unknown_value_header():
    raises(
        "InvalidRequest",
        expected_from_headers,
        {"x-amz-checksum-md5": to_b64(bytes(16))},
        match="The algorithm type you specified in x-amz-checksum- header is invalid.",
    )


def test_malformed_value_header():
    raises(
        "InvalidRequest",
        expected_from_headers,
        {"x-amz-checksum-crc32c": "zzz"},
        match="Value for x-amz-checksum-crc32c header is invalid.",
    )


def test_malformed_content_md5_header():
    raises("InvalidDigest", expected_from_headers, {"content-md5": "abc"})


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-sdk-checksum-algorithm": "CRC32", "x-amz-checksum-crc32c": to_b64(bytes(4))},
        {"x-amz-sdk-checksum-algorithm": "CRC99", "x-amz-checksum-crc32": to_b64(bytes(4))},
        {"x-amz-sdk-checksum-algorithm": "SHA1", "x-amz-trailer": "x-amz-checksum-sha256"},
    ],
)
def test_sdk_algorithm_disagrees_or_unknown(headers):
    raises(
        "InvalidRequest",
        expected_from_headers,
        headers,
        match="Value for x-amz-sdk-checksum-algorithm header is invalid.",
    )


def test_sdk_algorithm_without_value():
    raises(
        "InvalidRequest",
        expected_from_headers,
        {"x-amz-sdk-checksum-algorithm": "CRC32"},
        match="no corresponding x-amz-checksum-* or x-amz-trailer headers were found",
    )


def test_trailer_and_value_header():
    err = raises(
        "InvalidRequest",
        expected_from_headers,
        {"x-amz-trailer": "x-amz-checksum-crc32", "x-amz-checksum-crc32": to_b64(bytes(4))},
    )
    assert err.message == "Expecting a single x-amz-checksum- header"


@pytest.mark.parametrize(
    "trailer", ["x-amz-checksum-md5", "x-amz-meta-foo", "", "x-amz-checksum-crc32,x-amz-foo"]
)
def test_unsupported_trailer(trailer):
    raises(
        "InvalidRequest",
        expected_from_headers,
        {"x-amz-trailer": trailer},
        match="The value specified in the x-amz-trailer header is not supported",
    )


def test_two_checksum_trailers():
    raises(
        "InvalidRequest",
        expected_from_headers,
        {"x-amz-trailer": "x-amz-checksum-crc32, x-amz-checksum-sha1"},
        match="Expecting a single x-amz-checksum- header",
    )


def test_trailer_name_case_is_normalised():
    e = expected_from_headers({"x-amz-trailer": " X-Amz-Checksum-CRC32C "})
    assert (e.algorithm, e.trailer) == ("CRC32C", "x-amz-checksum-crc32c")


# --------------------------------------------------------------------------- BodyVerifier


def run(expected: ExpectedChecksums, body: bytes, trailers=None, chunk: int = 7, **kw):
    v = BodyVerifier(expected, **kw)
    for i in range(0, len(body), chunk):
        v.update(memoryview(body)[i : i + chunk] if i % 2 else body[i : i + chunk])
    return v.finish(trailers)


BODY = os.urandom(1000)


def test_verifier_no_expectations():
    r = run(ExpectedChecksums(None, None, None, None), BODY)
    assert r.md5 == hashlib.md5(BODY).digest()
    assert r.size == len(BODY)
    assert (r.algorithm, r.checksum, r.checksum_b64) == (None, None, None)
    assert r.etag == f'"{hashlib.md5(BODY).hexdigest()}"'


def test_verifier_default_algorithm_is_computed_not_checked():
    r = run(ExpectedChecksums(None, None, None, None), BODY, default_algorithm="CRC64NVME")
    assert r.algorithm == "CRC64NVME"
    assert r.checksum == crt.crc64nvme(BODY).to_bytes(8, "big")


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_verifier_all_good_header(alg):
    headers = {
        "content-md5": to_b64(hashlib.md5(BODY).digest()),
        "x-amz-content-sha256": hashlib.sha256(BODY).hexdigest(),
        "x-amz-sdk-checksum-algorithm": alg,
        header_name(alg): b64(alg, BODY),
    }
    r = run(expected_from_headers(headers), BODY)
    assert r.algorithm == alg
    assert r.checksum_b64 == headers[header_name(alg)]
    assert r.size == len(BODY)


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_verifier_checksum_mismatch(alg):
    headers = {header_name(alg): b64(alg, BODY + b"!")}
    with pytest.raises(S3Error) as info:
        run(expected_from_headers(headers), BODY)
    assert info.value.code == "BadDigest"
    assert info.value.message == f"The {alg} you specified did not match the calculated checksum."


def test_verifier_md5_mismatch():
    e = expected_from_headers({"content-md5": to_b64(hashlib.md5(b"other").digest())})
    with pytest.raises(S3Error) as info:
        run(e, BODY)
    assert info.value.code == "BadDigest"
    assert "Content-MD5" in info.value.message


def test_verifier_sha256_mismatch():
    wrong = hashlib.sha256(b"other").hexdigest()
    e = expected_from_headers({"x-amz-content-sha256": wrong})
    with pytest.raises(S3Error) as info:
        run(e, BODY)
    assert info.value.code == "XAmzContentSHA256Mismatch"
    assert info.value.status == 400
    assert info.value.extra == {
        "ClientComputedContentSHA256": wrong,
        "S3ComputedContentSHA256": hashlib.sha256(BODY).hexdigest(),
    }


def test_verifier_sha256_shared_with_checksum():
    e = expected_from_headers(
        {
            "x-amz-content-sha256": hashlib.sha256(BODY).hexdigest(),
            "x-amz-checksum-sha256": b64("SHA256", BODY),
        }
    )
    v = BodyVerifier(e)
    assert len(v._hashers) == 2  # md5 + one sha256
    v.update(BODY)
    assert v.finish().checksum == hashlib.sha256(BODY).digest()


TRAILER_HEADERS = {
    "x-amz-sdk-checksum-algorithm": "CRC32",
    "x-amz-trailer": "x-amz-checksum-crc32",
    "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
}


def test_verifier_trailer_ok():
    e = expected_from_headers(TRAILER_HEADERS)
    r = run(e, BODY, {"x-amz-checksum-crc32": b64("CRC32", BODY)})
    assert r.checksum == zlib.crc32(BODY).to_bytes(4, "big")
    # names are case-insensitive and a leftover trailer signature is ignored
    r = run(
        e,
        BODY,
        {"X-Amz-Checksum-Crc32": b64("CRC32", BODY), "x-amz-trailer-signature": "ab" * 32},
    )
    assert r.algorithm == "CRC32"


def test_verifier_trailer_mismatch():
    e = expected_from_headers(TRAILER_HEADERS)
    with pytest.raises(S3Error) as info:
        run(e, BODY, {"x-amz-checksum-crc32": b64("CRC32", b"")})
    assert info.value.code == "BadDigest"
    assert info.value.message == "The CRC32 you specified did not match the calculated checksum."


@pytest.mark.parametrize(
    "trailers",
    [None, {}, {"x-amz-checksum-crc32c": to_b64(bytes(4))}],
)
def test_verifier_trailer_missing(trailers):
    e = expected_from_headers(TRAILER_HEADERS)
    with pytest.raises(S3Error) as info:
        run(e, BODY, trailers)
    assert info.value.code == "MalformedTrailerError"
    assert info.value.status == 400
    assert "trailing data" in info.value.message


def test_verifier_trailer_malformed_value():
    e = expected_from_headers(TRAILER_HEADERS)
    with pytest.raises(S3Error) as info:
        run(e, BODY, {"x-amz-checksum-crc32": "###"})
    assert info.value.code == "InvalidRequest"
    assert info.value.message == "Value for x-amz-checksum-crc32 trailing header is invalid."


def test_verifier_unannounced_trailer():
    e = expected_from_headers({"x-amz-checksum-crc32": b64("CRC32", BODY)})
    with pytest.raises(S3Error) as info:
        run(e, BODY, {"x-amz-checksum-crc32": b64("CRC32", BODY)})
    assert info.value.code == "MalformedTrailerError"


def test_verifier_empty_body():
    e = expected_from_headers(
        {
            "x-amz-checksum-crc64nvme": to_b64(bytes(8)),
            "content-md5": to_b64(hashlib.md5(b"").digest()),
        }
    )
    r = BodyVerifier(e).finish()
    assert r.size == 0 and r.checksum == bytes(8)


def test_verifier_use_after_finish():
    v = BodyVerifier(ExpectedChecksums(None, None, None, None))
    v.finish()
    with pytest.raises(RuntimeError):
        v.update(b"x")
    with pytest.raises(RuntimeError):
        v.finish()


def test_verifier_rejects_inconsistent_expectations():
    with pytest.raises(ValueError):
        BodyVerifier(ExpectedChecksums(None, None, bytes(4), None))


# --------------------------------------------------------------------------- multipart


def test_multipart_etag():
    parts = [b"a" * 10, b"b" * 20, b"c"]
    md5s = [hashlib.md5(p).digest() for p in parts]
    expected = hashlib.md5(b"".join(md5s)).hexdigest()
    assert multipart_etag(md5s) == f'"{expected}-3"'
    assert multipart_etag(md5s[:1]).endswith('-1"')


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_composite_checksum(alg):
    parts = [os.urandom(100), os.urandom(5), b""]
    raws = [new_hasher_digest(alg, p) for p in parts]
    expected = to_b64(new_hasher_digest(alg, b"".join(raws))) + "-3"
    assert composite_checksum(alg, raws) == expected


def test_composite_checksum_known_value():
    # S3 documentation style: CRC32 of the concatenated part CRC32s, then "-N".
    raws = [zlib.crc32(b"part1").to_bytes(4, "big"), zlib.crc32(b"part2").to_bytes(4, "big")]
    crc = zlib.crc32(raws[0] + raws[1]).to_bytes(4, "big")
    assert composite_checksum("CRC32", raws) == base64.b64encode(crc).decode() + "-2"


def test_composite_checksum_rejects_crc64nvme_and_bad_lengths():
    raises(
        "InvalidRequest",
        composite_checksum,
        "CRC64NVME",
        [bytes(8)],
        match="The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.",
    )
    with pytest.raises(ValueError):
        composite_checksum("CRC32", [bytes(8)])


@pytest.mark.parametrize("alg", CRC_ALGORITHMS)
@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=4000), cuts=st.lists(st.integers(0, 4000), max_size=8))
def test_full_object_crc_equals_whole_crc(alg, data, cuts):
    bounds = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    pieces = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    if cuts and cuts[0] % 3 == 0:
        pieces.insert(len(pieces) // 2, b"")  # an empty part in the middle
    parts = [(new_hasher_digest(alg, p), len(p)) for p in pieces]
    assert full_object_crc(alg, parts) == new_hasher_digest(alg, data)


def test_full_object_crc_large_parts():
    a, b = os.urandom(3 << 20), os.urandom((1 << 20) + 1)
    for alg in CRC_ALGORITHMS:
        parts = [(new_hasher_digest(alg, a), len(a)), (new_hasher_digest(alg, b), len(b))]
        assert full_object_crc(alg, parts) == new_hasher_digest(alg, a + b)


def test_full_object_crc_edge_cases():
    assert full_object_crc("CRC32", []) == bytes(4)
    raises(
        "InvalidRequest",
        full_object_crc,
        "SHA256",
        [(bytes(32), 1)],
        match="The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm.",
    )
    with pytest.raises(ValueError):
        full_object_crc("CRC64NVME", [(bytes(4), 1)])
    with pytest.raises(ValueError):
        full_object_crc("CRC32", [(bytes(4), -1)])


def test_default_checksum_type():
    assert default_checksum_type("CRC64NVME") == "FULL_OBJECT"
    for alg in ["CRC32", "CRC32C", "SHA1", "SHA256"]:
        assert default_checksum_type(alg) == "COMPOSITE"
    raises("InvalidRequest", default_checksum_type, "MD5")


@pytest.mark.parametrize(
    ("alg", "ctype", "ok"),
    [
        ("CRC32", "COMPOSITE", True),
        ("CRC32", "FULL_OBJECT", True),
        ("CRC32C", "COMPOSITE", True),
        ("CRC32C", "FULL_OBJECT", True),
        ("CRC64NVME", "FULL_OBJECT", True),
        ("CRC64NVME", "COMPOSITE", False),
        ("SHA1", "COMPOSITE", True),
        ("SHA1", "FULL_OBJECT", False),
        ("SHA256", "COMPOSITE", True),
        ("SHA256", "FULL_OBJECT", False),
    ],
)
def test_validate_checksum_type(alg, ctype, ok):
    if ok:
        validate_checksum_type(alg, ctype)
    else:
        err = raises("InvalidRequest", validate_checksum_type, alg, ctype)
        assert err.message == (
            f"The {ctype} checksum type cannot be used with the {alg.lower()} checksum algorithm."
        )


def test_validate_checksum_type_bad_values():
    raises(
        "InvalidRequest", validate_checksum_type, "CRC32", "PARTIAL", match="x-amz-checksum-type"
    )
    raises("InvalidRequest", validate_checksum_type, "MD5", "COMPOSITE", match="unsupported")
