"""Fuzzing the request parsers with hypothesis: whatever arrives, each answers with a value
that obeys its contract or with an S3 error, never another exception (which the front end
would turn into a 500).

* the aws-chunked decoder, on valid bodies with bytes flipped, cut, inserted and dropped;
* XML bodies (DeleteObjects, CompleteMultipartUpload, CreateBucket) from a grammar and raw;
* Range headers, against a model of S3's rules;
* SigV4 canonicalisation: any key and query botocore signs verifies; any path and query
  canonicalise to strictly encoded, decode-equivalent strings;
* object keys: any UTF-8 key up to 1,024 bytes is accepted, none longer, and addressing
  never fails on one with anything but an S3 error.

A bounded run of random malformed requests against a live server is in
tests/e2e/test_bad_input.py (test_fuzz).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import quote, unquote_to_bytes, urlencode

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from holdfast.s3.app import split_address
from holdfast.s3.auth import canonical_query, canonical_uri, verify_request
from holdfast.s3.errors import S3Error
from holdfast.s3.ops.common import validate_key
from holdfast.s3.ops.conditions import parse_range
from holdfast.s3.ops.multipart import _requested_parts
from holdfast.s3.xml import parse
from tests.unit.test_auth import SECRET, key_path, lookup, presign, sign_header
from tests.unit.test_chunked import (
    crc32_b64,
    decode,
    encode,
    signed_decoder,
    split_at,
    unsigned_trailer_decoder,
)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- aws-chunked ---------------------------------------------------------------------------------

edit = st.tuples(
    st.sampled_from(["flip", "drop", "insert", "cut"]),
    st.integers(min_value=0, max_value=5000),
    st.binary(min_size=1, max_size=8),
)


def mutate(body: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    out = bytearray(body)
    for kind, pos, junk in edits:
        if not out:
            break
        pos %= len(out)
        if kind == "flip":
            out[pos] ^= junk[0] or 1
        elif kind == "drop":
            del out[pos : pos + len(junk)]
        elif kind == "insert":
            out[pos:pos] = junk
        else:
            del out[pos:]
    return bytes(out)


@FUZZ
@given(
    data=st.binary(max_size=2000),
    chunk_size=st.integers(min_value=1, max_value=700),
    edits=st.lists(edit, min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=6),
    signed=st.booleans(),
)
def test_chunked_decoder_on_damaged_bodies(data, chunk_size, edits, cuts, signed) -> None:
    trailers = {"x-amz-checksum-crc32": crc32_b64(data)}
    if signed:
        body = encode(data, chunk_size, trailers=trailers, signed_trailer=True)
        decoder = signed_decoder(trailer_expected=True, signed_trailer=True)
    else:
        body = encode(data, chunk_size, auth=None, trailers=trailers)
        decoder = unsigned_trailer_decoder()
    damaged = mutate(body, edits)
    try:
        decoded, received = decode(decoder, split_at(damaged, cuts))
    except S3Error:
        return
    if signed:  # every chunk is signed: what passes is exactly what was sent
        assert decoded == data
    else:  # unsigned framing can be bent, but never into a body longer than what arrived
        assert len(decoded) <= len(damaged)


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(min_value=0, max_value=700), max_size=5))
def test_chunked_decoder_on_garbage(raw: bytes, cuts: list[int]) -> None:
    try:
        decode(unsigned_trailer_decoder(), split_at(raw, cuts))
    except S3Error:
        pass


# -- XML bodies -------------------------------------------------------------------------------

TAGS = [
    "Delete", "Object", "Key", "Quiet", "VersionId", "CompleteMultipartUpload", "Part",
    "PartNumber", "ETag", "ChecksumCRC32", "ChecksumSHA256", "CreateBucketConfiguration",
    "LocationConstraint", "Junk",
]  # fmt: skip
xml_text = st.one_of(
    st.text(max_size=30),
    st.integers(-5, 20_000).map(str),
    st.sampled_from(['"etag"', "true", "false", "  7 ", "us-east-1", "\u2603"]),
)


@st.composite
def xml_trees(draw, depth: int = 0) -> ET.Element:
    el = ET.Element(draw(st.sampled_from(TAGS)))
    if depth < 3 and draw(st.booleans()):
        for _ in range(draw(st.integers(0, 4))):
            el.append(draw(xml_trees(depth + 1)))
    else:
        text = draw(xml_text)
        el.text = "".join(c for c in text if c.isprintable() or c in "\t\n")
    return el


@st.composite
def xml_bodies(draw) -> bytes:
    root = draw(xml_trees())
    if draw(st.booleans()):
        root.set("xmlns", "http://s3.amazonaws.com/doc/2006-03-01/")
    body = ET.tostring(root, encoding="utf-8", xml_declaration=draw(st.booleans()))
    if draw(st.integers(0, 3)) == 0:
        body = mutate(body, draw(st.lists(edit, min_size=1, max_size=3)))
    return body


@FUZZ
@given(st.one_of(xml_bodies(), st.binary(max_size=400)))
def test_xml_bodies_parse_or_malformed(body: bytes) -> None:
    try:
        doc = parse(body)
    except S3Error as e:
        assert e.code == "MalformedXML"
        return
    try:  # CompleteMultipartUpload's reading of whatever parsed
        parts = _requested_parts(doc)
    except S3Error as e:
        assert e.code == "MalformedXML"
        return
    assert doc.tag == "CompleteMultipartUpload"
    assert all(p.number >= 0 and isinstance(p.etag, str) for p in parts)


@FUZZ
@given(st.sampled_from(["lol", "xxe"]), st.integers(1, 6))
def test_xml_entities_are_refused(kind: str, depth: int) -> None:
    if kind == "lol":
        entities = '<!ENTITY a0 "lol">' + "".join(
            f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, depth + 1)
        )
        body = f'<?xml version="1.0"?><!DOCTYPE d [{entities}]><Delete>&a{depth};</Delete>'
    else:
        body = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Delete>&x;</Delete>'
    try:
        parse(body.encode())
    except S3Error as e:
        assert e.code == "MalformedXML"
    else:
        raise AssertionError("an XML body with entities was accepted")


# -- Range ------------------------------------------------------------------------------------

numbers = st.one_of(st.just(""), st.integers(0, 10**20).map(str))


def expected_range(first: str, last: str, size: int):
    """S3's rules for one 'bytes=first-last' range: (start, end), None (ignored) or 416."""
    if first == "" and last == "":
        return None
    if first == "":
        if int(last) == 0:
            return "416"
        return max(size - int(last), 0), size
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        return "416"
    return start, size if last == "" else min(int(last) + 1, size)


@FUZZ
@given(first=numbers, last=numbers, size=st.integers(0, 10**13))
def test_range_follows_the_model(first: str, last: str, size: int) -> None:
    want = expected_range(first, last, size)
    try:
        got = parse_range(f"bytes={first}-{last}", size)
    except S3Error as e:
        assert e.code == "InvalidRange" and want == "416", (first, last, size, want)
        return
    assert got == want
    if got is not None:  # empty only for a suffix range of an empty object (bytes */0)
        assert 0 <= got[0] <= got[1] <= size and (got[0] < got[1] or size == 0)


@FUZZ
@given(
    header=st.one_of(st.text(max_size=40), st.from_regex(r"bytes=[0-9, -]{0,30}")),
    size=st.integers(0, 10**9),
)
def test_any_range_header(header: str, size: int) -> None:
    try:
        got = parse_range(header, size)
    except S3Error as e:
        assert e.code == "InvalidRange"
        return
    if got is not None:
        assert 0 <= got[0] <= got[1] <= size and (got[0] < got[1] or size == 0)


# -- SigV4 canonicalisation and object keys -----------------------------------------------------

keys = st.text(min_size=1, max_size=200).filter(lambda k: len(k.encode()) <= 1024)


def _plain_param(name: str) -> bool:
    """Not one of the authentication parameters (a request naming those is another case)."""
    lowered = name.lower()
    return not lowered.startswith("x-amz-") and lowered not in ("awsaccesskeyid", "signature")


params = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(_plain_param), st.text(max_size=20), max_size=4
).map(lambda d: urlencode(d, quote_via=quote))


@FUZZ
@given(
    key=keys,
    query=params,
    meta=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
)
def test_any_key_botocore_signs_verifies(key: str, query: str, meta: str) -> None:
    meta = meta.strip()
    headers = {"x-amz-meta-fuzz": meta} if meta else {}
    signed = sign_header("PUT", key_path(key), query=query, headers=headers, body=b"x")
    result = signed.verify(now=datetime.now(UTC))
    assert result.access_key
    wrong = key_path(key + "x")
    try:
        verify_request(
            "PUT", wrong, signed.query, signed.headers, lookup(SECRET), now=datetime.now(UTC)
        )
    except S3Error as e:
        assert e.code == "SignatureDoesNotMatch"
    else:
        raise AssertionError("a signature verified for another key")


@FUZZ
@given(key=keys, query=params)
def test_any_key_presigned_verifies(key: str, query: str) -> None:
    signed = presign("GET", key_path(key), query=query)
    assert signed.verify(now=datetime.now(UTC)).presigned


UNRESERVED = re.compile(r"^(?:[A-Za-z0-9\-._~/]|%[0-9A-F]{2})*$")


@FUZZ
@given(st.text(max_size=60))
def test_canonical_uri_is_strict_and_decode_equivalent(raw: str) -> None:
    uri = canonical_uri(raw)
    assert UNRESERVED.match(uri), uri
    assert unquote_to_bytes(uri) == (unquote_to_bytes(raw) if raw else b"/")


@FUZZ
@given(st.lists(st.tuples(st.binary(max_size=10), st.binary(max_size=10)), max_size=6))
def test_canonical_query_is_sorted_and_strict(pairs: list[tuple[bytes, bytes]]) -> None:
    query = canonical_query(pairs)
    items = [p.split("=", 1) for p in query.split("&")] if query else []
    assert items == sorted(items)
    for name, value in items:
        assert UNRESERVED.match(name.replace("/", "%2F")) and "/" not in name + value


@FUZZ
@given(st.text(max_size=40), st.text(max_size=300))
def test_garbage_authorization_is_an_s3_error(authorization: str, raw_path: str) -> None:
    headers = {
        "authorization": authorization,
        "host": "127.0.0.1",
        "x-amz-date": "20261122T000000Z",
    }
    try:
        verify_request("GET", raw_path, "", headers, lookup(SECRET))
    except S3Error:
        pass
    else:
        raise AssertionError("garbage authorized a request")


@FUZZ
@given(st.text(max_size=1200))
def test_object_keys(key: str) -> None:
    size = len(key.encode("utf-8"))
    try:
        validate_key(key)
    except S3Error as e:
        if e.code == "InvalidArgument":
            assert "\0" in key  # a NUL is refused on both engines (issue #17)
        else:
            assert e.code == "KeyTooLongError" and size > 1024
    else:
        assert size <= 1024 and "\0" not in key


@FUZZ
@given(
    raw_path=st.text(max_size=80),
    host=st.sampled_from(["127.0.0.1:9000", "b.localhost", "x.s3.localhost:1"]),
)
def test_addressing_never_crashes(raw_path: str, host: str) -> None:
    assume("?" not in raw_path)
    try:
        bucket, key = split_address(host, quote(raw_path, safe="/%"), ["localhost", "s3.localhost"])
    except S3Error:
        return
    assert bucket is None or "/" not in bucket
