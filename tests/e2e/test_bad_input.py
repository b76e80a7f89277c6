"""Bad input gets an S3 error, never a 500 or a traceback, and never changes stored data.

Malformed and hostile XML, oversized headers, bad names, bad ranges, truncated and mis-sized
bodies, sub-resources Holdfast does not implement, unknown methods, garbage on the socket,
path traversal. The mutation fuzz over raw sockets is tests/e2e/test_fuzz.py.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import os
import socket
import ssl
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT_AK, Server, unique
from tests.e2e.test_auth_modes import (
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED,
    Reply,
    assert_absent,
    assert_s3_error,
    send,
    sign,
    signed_request,
)

# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_tracebacks(request):
    """Whatever a test sends, the server it talked to must not log an unhandled exception."""
    servers: list[Server] = []
    for name in ("http_server", "https_server"):
        if name in request.fixturenames:
            servers.append(request.getfixturevalue(name))
    if "server" in request.fixturenames:
        servers.append(request.getfixturevalue("server"))
    before = {id(s): len(s.log()) for s in servers}
    yield
    for s in servers:
        new = s.log()[before[id(s)] :]
        assert "Traceback" not in new, new[-5000:]


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def raw_exchange(
    server: Server,
    data: bytes,
    *,
    timeout: float = 5.0,
    half_close: bool = False,
    until_close: bool = False,
) -> bytes:
    """Send bytes on a fresh (TLS, if the server has it) socket; read until the server closes
    the connection or goes quiet. ``half_close`` ends the sending side after the data (plain
    HTTP only), so a server waiting for more body sees the end at once. ``until_close``
    reads every response, not just the first."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    if server.tls:
        ctx = ssl.create_default_context(cafile=server.ca_path)
        sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    out = bytearray()
    try:
        sock.sendall(data)
        if half_close and not server.tls:
            sock.shutdown(socket.SHUT_WR)
        while True:
            try:
                piece = sock.recv(65536)
            except (TimeoutError, ConnectionResetError, ssl.SSLError):
                break
            if not piece:
                break
            out += piece
            if not until_close and _complete(bytes(out)):
                break
    finally:
        sock.close()
    return bytes(out)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip() or 0)
    return False


def status_of(raw: bytes) -> int | None:
    """Status code of the first response in ``raw``; None if the server sent nothing."""
    if not raw:
        return None
    parts = raw.split(b" ", 2)
    assert parts[0].startswith(b"HTTP/1."), raw[:200]
    return int(parts[1])


def healthy(server: Server) -> bool:
    r = requests.get(
        f"{server.endpoint}/_holdfast/health", timeout=5, verify=server.ca_path or False
    )
    return r.status_code == 200


def keys_in(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


# --- malformed XML ---------------------------------------------------------------------------

MALFORMED = [
    b"<Delete><Object><Key>a</Key></Object>",  # unclosed
    b"not xml at all",
    b"<Delete><Object><Key>a</Key></Obj></Delete>",  # mismatched tag
    b"<?xml version='1.0'?><Delete><Object><Key>a</Key></Object></Delete><extra/>",
    b"\x00\x01\x02\xff\xfe",
    b"<Delete>" + b"<Object>" * 50 + b"</Delete>",
]

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"""


def xxe(path: str = "/etc/passwd") -> bytes:
    return f'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM "file://{path}">]>\n'.encode()


INTERNAL_ENTITY = b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY k "victim">]>\n'


def post_delete(server: Server, bucket: str, body: bytes) -> Reply:
    return signed_request(server, "POST", f"/{bucket}?delete", body, {"Content-MD5": md5_b64(body)})


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_delete_objects_malformed_xml(server, s3, bucket, body):
    s3.put_object(Bucket=bucket, Key="a", Body=b"keep")
    reply = post_delete(server, bucket, body)
    assert_s3_error(reply, 400, "MalformedXML")
    assert keys_in(s3, bucket) == ["a"]


def test_delete_objects_empty_and_wrong_root(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"keep")
    for body in (b"", b"<Delete></Delete>", b"<Other><Object><Key>a</Key></Object></Other>"):
        reply = post_delete(server, bucket, body)
        assert_s3_error(reply, 400, "MalformedXML")
    assert keys_in(s3, bucket) == ["a"]


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS + b"<Delete><Object><Key>&lol9;</Key></Object></Delete>",
        xxe() + b"<Delete><Object><Key>&xxe;</Key></Object></Delete>",
        INTERNAL_ENTITY + b"<Delete><Object><Key>&k;</Key></Object></Delete>",
        b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "file:///etc/passwd">'
        b"<Delete><Object><Key>victim</Key></Object></Delete>",
    ],
    ids=["billion-laughs", "xxe", "internal-entity", "external-dtd"],
)
def test_delete_objects_entities_rejected(server, s3, bucket, body):
    s3.put_object(Bucket=bucket, Key="victim", Body=b"keep")
    started = time.monotonic()
    reply = post_delete(server, bucket, body)
    assert time.monotonic() - started < 5
    assert reply.status == 400, reply.body[:500]
    assert reply.error()["Code"] in ("MalformedXML", "InvalidRequest", "InvalidArgument")
    assert b"root:" not in reply.body
    assert keys_in(s3, bucket) == ["victim"]


@pytest.mark.parametrize(
    "body",
    [
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>",
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></Oops>",
        b"\xff\xfe<x/>",
        b"",
        BILLION_LAUGHS + b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        b"<ETag>&lol9;</ETag></Part></CompleteMultipartUpload>",
        xxe() + b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        b"<ETag>&xxe;</ETag></Part></CompleteMultipartUpload>",
    ],
    ids=["unclosed", "mismatched", "binary", "empty", "billion-laughs", "xxe"],
)
def test_complete_multipart_bad_xml(server, s3, bucket, body):
    key = unique()
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"p" * 100)
    reply = signed_request(server, "POST", f"/{bucket}/{key}?uploadId={upload}", body)
    assert reply.status == 400, reply.body[:500]
    assert reply.error()["Code"] in ("MalformedXML", "InvalidRequest")
    assert b"root:" not in reply.body
    assert_absent(s3, bucket, key)
    # The upload is untouched: it can still be completed.
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"p" * 100


@pytest.mark.parametrize(
    "body",
    [
        b"<CreateBucketConfiguration><LocationConstraint>us-east-1",
        b"<<<>>>",
        BILLION_LAUGHS + b"<CreateBucketConfiguration><LocationConstraint>&lol9;"
        b"</LocationConstraint></CreateBucketConfiguration>",
        xxe() + b"<CreateBucketConfiguration><LocationConstraint>&xxe;"
        b"</LocationConstraint></CreateBucketConfiguration>",
    ],
    ids=["unclosed", "garbage", "billion-laughs", "xxe"],
)
def test_create_bucket_bad_config(server, s3, body):
    name = unique("cb")
    reply = signed_request(server, "PUT", f"/{name}", body)
    assert reply.status == 400, reply.body[:500]
    assert reply.error()["Code"] in ("MalformedXML", "InvalidRequest")
    assert b"root:" not in reply.body
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_create_bucket_wrong_location(server, s3):
    name = unique("cb")
    body = (
        b"<CreateBucketConfiguration><LocationConstraint>mars-north-1"
        b"</LocationConstraint></CreateBucketConfiguration>"
    )
    reply = signed_request(server, "PUT", f"/{name}", body)
    assert reply.status == 400, reply.body
    assert reply.error()["Code"] in (
        "InvalidLocationConstraint",
        "IllegalLocationConstraintException",
    )
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


# --- headers ---------------------------------------------------------------------------------


def test_oversized_header(server, s3, bucket):
    key = unique()
    reply = signed_request(server, "PUT", f"/{bucket}/{key}", b"x", {"x-amz-meta-big": "a" * 65536})
    assert reply.status == 400, reply.body[:300]
    if reply.body:
        assert reply.error()["Code"] in ("RequestHeaderSectionTooLarge", "MetadataTooLarge")
    assert_absent(s3, bucket, key)


def test_oversized_unsigned_header(server, bucket):
    reply = send(server, "GET", f"/{bucket}", {"X-Junk": "j" * 65536})
    assert reply.status == 400, reply.body[:300]


def test_endless_header_is_cut_off(server):
    """A head that never ends must not be buffered without bound: the server answers (or
    resets) long before 16 MiB of header have gone in."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    if server.tls:
        ctx = ssl.create_default_context(cafile=server.ca_path)
        sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    sent, refused = 0, False
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        piece = b"e" * 65536
        while sent < 16 * 1024 * 1024:
            try:
                sock.sendall(piece)
            except (ConnectionError, ssl.SSLError):
                refused = True
                break
            sent += len(piece)
        reply = b""
        try:
            reply = sock.recv(65536)
        except (ConnectionError, ssl.SSLError):
            refused = True
    finally:
        sock.close()
    assert refused or reply, "the server kept buffering a 16 MiB header"
    if reply:
        assert status_of(reply) == 400, reply[:300]
    assert healthy(server)


def test_many_headers(server, s3, bucket):
    key = unique()
    headers = {f"x-amz-meta-h{i}": "v" * 100 for i in range(300)}
    reply = signed_request(server, "PUT", f"/{bucket}/{key}", b"x", headers)
    assert reply.status == 400, reply.body[:300]
    assert_absent(s3, bucket, key)


def test_metadata_too_large(server, s3, bucket):
    key = unique()
    reply = signed_request(server, "PUT", f"/{bucket}/{key}", b"x", {"x-amz-meta-m": "m" * 3000})
    assert_s3_error(reply, 400, "MetadataTooLarge")
    assert_absent(s3, bucket, key)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "AWS4-HMAC-SHA256 garbage"},
        {"Authorization": "AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host, Signature=zz"},
        {"Authorization": "Bearer abc"},
        {"Authorization": "AWS AKID:c2lnbmF0dXJl"},
        {"Authorization": ""},
        {"Authorization": "AWS4-HMAC-SHA256"},
        {"x-amz-content-sha256": "nonsense", "Authorization": "AWS4-HMAC-SHA256 a=b"},
    ],
)
def test_malformed_authorization(server, bucket, headers):
    reply = send(server, "GET", f"/{bucket}", headers)
    assert reply.status in (400, 403), reply.body[:300]
    assert reply.error()["Code"]


def test_malformed_presigned_query(server, bucket):
    for query in (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Algorithm=x&X-Amz-Credential=a&X-Amz-Signature=b&X-Amz-Date=c"
        "&X-Amz-SignedHeaders=host&X-Amz-Expires=abc",
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2F20200101%2Fus-east-1%2Fs3"
        "%2Faws4_request&X-Amz-Signature=" + "0" * 64 + "&X-Amz-Date=20200101T000000Z"
        "&X-Amz-SignedHeaders=host&X-Amz-Expires=999999999",
        "AWSAccessKeyId=a&Signature=b&Expires=1",
    ):
        reply = send(server, "GET", f"/{bucket}?{query}")
        assert reply.status in (400, 403), (query, reply.body[:300])
        assert reply.error()["Code"]


def _sigv4_header(access_key: str, signature: str) -> dict[str, str]:
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return {
        "x-amz-date": now,
        "x-amz-content-sha256": UNSIGNED,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{now[:8]}/us-east-1/s3/"
        f"aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}",
    }


NON_ASCII = "\u00e9\u00ff"  # sent as latin-1 bytes on the wire, as http.client encodes str


@pytest.mark.parametrize("path", ["/BUCKET", "/BUCKET/k", "/_holdfast/api/buckets"])
def test_non_ascii_credentials_and_signatures(server, bucket, path):
    """Access keys and signatures outside ASCII are wrong credentials, not a 500: the
    constant-time comparison raised TypeError on non-ASCII str (issue 18)."""
    path = path.replace("BUCKET", bucket)
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    cases = [
        _sigv4_header(f"AK{NON_ASCII}", "0" * 64),
        _sigv4_header(f"{ROOT_AK}{NON_ASCII}", "0" * 64),
        _sigv4_header(ROOT_AK, "0" * 63 + NON_ASCII[0]),
        {"Authorization": f"AWS AK{NON_ASCII}:c2ln{NON_ASCII}", "Date": http_date_now()},
        {"Authorization": f"AWS {ROOT_AK}:c2ln{NON_ASCII}", "Date": http_date_now()},
    ]
    for headers in cases:
        reply = send(server, "GET", path, headers)
        assert 400 <= reply.status < 500, (headers, reply.status, reply.body[:300])
    presigned = [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%C3%A9%2F"
        f"{now[:8]}%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date={now}&X-Amz-Expires=60"
        f"&X-Amz-SignedHeaders=host&X-Amz-Signature={'0' * 64}",
        "AWSAccessKeyId=AK%C3%A9&Signature=c2ln%C3%A9&Expires=9999999999",
    ]
    for query in presigned:
        reply = send(server, "GET", f"{path}?{query}")
        assert 400 <= reply.status < 500, (query, reply.status, reply.body[:300])
    assert healthy(server)


def test_ui_sign_in_with_odd_text_is_refused(server):
    """Lone surrogates (valid JSON), non-ASCII keys and JSON nested past the parser's
    recursion limit are a refused sign-in or malformed JSON, not a 500."""
    cases = [
        (b'{"access_key": "' + ROOT_AK.encode() + b'", "secret_key": "\\ud800x"}', 401),
        (b'{"access_key": "AK\\u00e9", "secret_key": "x"}', 401),
        (b'{"access_key": "\\ud800", "secret_key": "\\udfff"}', 401),
        (b"[" * 3000, 400),
    ]
    for body, expected in cases:
        reply = send(
            server, "POST", "/_holdfast/ui/api/session", {"Content-Type": "application/json"}, body
        )
        assert reply.status == expected, (body[:60], reply.status, reply.body[:300])


def test_ops_api_deeply_nested_json(server):
    body = b"[" * 3000
    reply = signed_request(
        server, "POST", "/_holdfast/api/users", body, {"Content-Type": "application/json"}
    )
    assert reply.status == 400, (reply.status, reply.body[:300])


def http_date_now() -> str:
    return email.utils.formatdate(usegmt=True)


def test_unicode_digits_are_not_numbers(server, s3, bucket):
    """ "\u00b2" is a digit to str.isdigit() but not to int(): each of these was a 500."""
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": "\u00b2",
        "Content-Length": "5",
    }
    signed = sign(server, "PUT", f"/{bucket}/k", headers, content_sha256=STREAMING_UNSIGNED_TRAILER)
    reply = send(server, "PUT", f"/{bucket}/k", signed.headers, b"0\r\n\r\n")
    assert_s3_error(reply, 400, "InvalidArgument")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    body = (
        "<CompleteMultipartUpload><Part><PartNumber>\u00b2</PartNumber><ETag>x</ETag></Part>"
        "</CompleteMultipartUpload>"
    ).encode()
    reply = signed_request(server, "POST", f"/{bucket}/m?uploadId={upload}", body)
    assert_s3_error(reply, 400, "MalformedXML")
    reply = send(server, "GET", f"/{bucket}/k?AWSAccessKeyId={ROOT_AK}&Signature=a&Expires=%C2%B2")
    assert_s3_error(reply, 403, "AccessDenied")
    assert_absent(s3, bucket, "k")


def test_response_overrides_with_odd_text(server, s3, bucket):
    """response-* values outside latin-1 go out as UTF-8 bytes; control characters are
    InvalidArgument (no header injection). Both were 500s, the second with no answer."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    reply = signed_request(server, "GET", f"/{bucket}/k?response-content-disposition=%E4%B8%AD")
    assert reply.status == 200 and reply.body == b"x"
    assert reply.headers["content-disposition"].encode("latin-1") == "\u4e2d".encode()
    for value in ("a%00b", "a%0Ab", "%7F"):
        for method in ("GET", "HEAD"):
            reply = signed_request(server, method, f"/{bucket}/k?response-content-type={value}")
            assert reply.status == 400, (value, reply.status, reply.body[:300])
            if method == "GET":
                assert reply.error()["Code"] == "InvalidArgument"


def test_dates_at_the_end_of_the_calendar(server, bucket):
    """A Date whose time zone carries it past year 9999 is not a valid date (was a 500)."""
    signed = sign(server, "GET", f"/{bucket}", {})
    headers = {k: v for k, v in signed.headers.items() if k.lower() != "x-amz-date"}
    headers["Date"] = "Fri, 31 Dec 9999 23:59:59 -2359"
    reply = send(server, "GET", f"/{bucket}", headers)
    assert reply.status == 403, (reply.status, reply.body[:300])
    headers = {"If-Modified-Since": "Fri, 31 Dec 9999 23:59:59 -2359"}
    reply = signed_request(server, "GET", f"/{bucket}", headers=headers)
    assert reply.status < 500, (reply.status, reply.body[:300])


# --- names, ranges ---------------------------------------------------------------------------

BAD_BUCKET_NAMES = [
    "ab",
    "a" * 64,
    "UpperCase",
    "under_score",
    "-leading",
    "trailing-",
    "double..dot",
    "dot.-dash",
    "192.168.1.1",
    "xn--punycode",
    "sp%20ace",
    "uni%C3%A9",
]


@pytest.mark.parametrize("name", BAD_BUCKET_NAMES)
def test_invalid_bucket_name(server, s3, name):
    reply = signed_request(server, "PUT", f"/{name}")
    assert_s3_error(reply, 400, "InvalidBucketName")
    assert name.lower() not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_key_too_long(server, s3, bucket):
    key = "k" * 1025
    reply = signed_request(server, "PUT", f"/{bucket}/{key}", b"x")
    assert_s3_error(reply, 400, "KeyTooLongError")
    assert keys_in(s3, bucket) == []


@pytest.mark.parametrize("rng", ["bytes=100-", "bytes=100-200", "bytes=1000-1"])
def test_unsatisfiable_range(server, s3, bucket, rng):
    key = unique()
    s3.put_object(Bucket=bucket, Key=key, Body=b"0123456789")
    reply = signed_request(server, "GET", f"/{bucket}/{key}", headers={"Range": rng})
    if rng == "bytes=1000-1":  # first > last: not a valid range, so it is ignored (RFC 9110)
        assert reply.status in (200, 416)
        return
    assert_s3_error(reply, 416, "InvalidRange")
    assert reply.headers.get("content-range") == "bytes */10"


@pytest.mark.parametrize("rng", ["bytes=abc", "bytes=-", "chars=0-1", "bytes=0-1,3-4"])
def test_odd_ranges_are_not_errors(server, s3, bucket, rng):
    key = unique()
    s3.put_object(Bucket=bucket, Key=key, Body=b"0123456789")
    reply = signed_request(server, "GET", f"/{bucket}/{key}", headers={"Range": rng})
    assert reply.status in (200, 206, 416), reply.body[:300]


def test_range_on_empty_object(server, s3, bucket):
    key = unique()
    s3.put_object(Bucket=bucket, Key=key, Body=b"")
    reply = signed_request(server, "GET", f"/{bucket}/{key}", headers={"Range": "bytes=0-"})
    assert reply.status in (200, 416), reply.body[:300]


# --- bodies ----------------------------------------------------------------------------------


def _signed_head(server: Server, method: str, target: str, headers: dict[str, str], sha: str):
    signed = sign(server, method, target, headers, content_sha256=sha)
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in signed.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("sha", [UNSIGNED, "hex"])
def test_truncated_body(server, s3, bucket, sha):
    key = unique()
    body = os.urandom(10)
    content_sha = hashlib.sha256(os.urandom(1000)).hexdigest() if sha == "hex" else UNSIGNED
    head = _signed_head(server, "PUT", f"/{bucket}/{key}", {"Content-Length": "1000"}, content_sha)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    if server.tls:
        ctx = ssl.create_default_context(cafile=server.ca_path)
        sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    sock.sendall(head + body)
    time.sleep(0.2)
    sock.close()
    time.sleep(0.3)
    assert_absent(s3, bucket, key)
    assert healthy(server)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_truncated_aws_chunked_body(server, s3, bucket):
    key = unique()
    payload = os.urandom(5000)
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(payload)),
        "Content-Length": str(len(payload) + 200),
    }
    head = _signed_head(
        server, "PUT", f"/{bucket}/{key}", headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    )
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    if server.tls:
        ctx = ssl.create_default_context(cafile=server.ca_path)
        sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    sock.sendall(head + f"{len(payload):x}\r\n".encode() + payload[:3000])
    time.sleep(0.2)
    sock.close()
    time.sleep(0.3)
    assert_absent(s3, bucket, key)
    assert healthy(server)


def _short_content_length(server: Server, head: bytes, body: bytes, declared: int) -> bytes:
    """Send the head and ``declared`` body bytes, read the response, then send the rest of
    the body, which the server can only see as the start of a (garbage) next request."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    if server.tls:
        ctx = ssl.create_default_context(cafile=server.ca_path)
        sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    try:
        sock.sendall(head + body[:declared])
        first = bytearray()
        while not _complete(bytes(first)):
            piece = sock.recv(65536)
            if not piece:
                break
            first += piece
        sock.sendall(body[declared:] + b"\r\n\r\n")
        rest = bytearray()
        while True:
            try:
                piece = sock.recv(65536)
            except (TimeoutError, ConnectionResetError, ssl.SSLError):
                break
            if not piece:
                break
            rest += piece
        assert not rest or status_of(bytes(rest)) == 400, bytes(rest)[:300]
        return bytes(first)
    finally:
        sock.close()


def test_content_length_shorter_than_body(server, s3, bucket):
    """The server reads Content-Length bytes; the signed hash covers the whole body."""
    key = unique()
    body = os.urandom(100)
    headers = {"Content-Length": "50"}
    head = _signed_head(
        server, "PUT", f"/{bucket}/{key}", headers, hashlib.sha256(body).hexdigest()
    )
    first = _short_content_length(server, head, body, 50)
    assert status_of(first) == 400, first[:500]
    assert b"<Code>XAmzContentSHA256Mismatch</Code>" in first
    assert_absent(s3, bucket, key)
    assert healthy(server)


def test_content_length_shorter_than_body_md5(server, s3, bucket):
    key = unique()
    body = os.urandom(100)
    headers = {"Content-Length": "50", "Content-MD5": md5_b64(body)}
    head = _signed_head(server, "PUT", f"/{bucket}/{key}", headers, UNSIGNED)
    first = _short_content_length(server, head, body, 50)
    assert status_of(first) == 400, first[:500]
    assert b"<Code>BadDigest</Code>" in first
    assert_absent(s3, bucket, key)


@pytest.mark.parametrize("value", ["abc", "-1", "1e3", "99999999999999999999999"])
def test_content_length_invalid(server, s3, bucket, value):
    key = unique()
    head = _signed_head(server, "PUT", f"/{bucket}/{key}", {"Content-Length": value}, UNSIGNED)
    raw = raw_exchange(server, head + b"data")
    status = status_of(raw)
    assert status is None or 400 <= status < 500, raw[:500]
    assert_absent(s3, bucket, key)


def test_aws_chunked_garbage_framing(server, s3, bucket):
    key = unique()
    target = f"/{bucket}/{key}"
    for framing in (b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n", b"5\r\nhel"):
        headers = {
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": "5",
            "Content-Length": str(len(framing)),
        }
        signed = sign(
            server, "PUT", target, headers, content_sha256="STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        )
        reply = send(server, "PUT", target, signed.headers, framing)
        assert reply.status == 400, (framing, reply.body[:300])
        assert reply.error()["Code"]
    assert_absent(s3, bucket, key)


def test_rejected_upload_does_not_poison_the_connection(server, s3, bucket):
    """boto3 sends Expect: 100-continue; a PUT rejected before its body is read gets a final
    status and the client never sends the body. The next request on the same connection
    must not be swallowed as that body."""
    missing = unique("missing")
    for _ in range(3):
        with pytest.raises(s3.exceptions.NoSuchBucket):
            s3.put_object(Bucket=missing, Key="k", Body=b"x" * 1000)
        s3.put_object(Bucket=bucket, Key="k", Body=b"y" * 1000)  # same pooled connection
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"y" * 1000


def test_rejected_expect_continue_on_one_socket(server, bucket):
    body = b"z" * 100
    target = f"/{unique('missing')}/k"
    head = _signed_head(
        server,
        "PUT",
        target,
        {"Content-Length": str(len(body)), "Expect": "100-continue"},
        hashlib.sha256(body).hexdigest(),
    )
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=3)
    if server.tls:
        ctx = ssl.create_default_context(cafile=server.ca_path)
        sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    try:
        sock.sendall(head)  # and, like a real client, hold the body back
        first = bytearray()
        while not _complete(bytes(first)):
            piece = sock.recv(65536)
            assert piece, bytes(first)
            first += piece
        assert status_of(bytes(first)) == 404, bytes(first)
        assert b"<Code>NoSuchBucket</Code>" in first
        # Either the server closed the connection, or it can take the next request.
        try:
            sock.sendall(b"GET /_holdfast/health HTTP/1.1\r\nHost: x\r\n\r\n")
            second = bytearray()
            while not _complete(bytes(second)):
                piece = sock.recv(65536)
                if not piece:
                    break
                second += piece
        except (ConnectionError, ssl.SSLError):
            second = bytearray()
        assert not second or status_of(bytes(second)) == 200, bytes(second)[:300]
    finally:
        sock.close()


# --- sub-resources and methods ---------------------------------------------------------------

# Sub-resources S3 defines on a bucket that Holdfast does not route at all (the bucket
# configurations it answers "not configured" for are in test_bucket_configs.py), and one S3
# does not define.
BUCKET_SUBRESOURCES = ["foo", "analytics", "inventory", "metrics", "intelligent-tiering"]
# On an object, the bucket configurations are unknown sub-resources too (tagging, retention
# and legal hold on an object are in test_bucket_configs.py).
SUBRESOURCES = ["foo", "cors", "lifecycle", "policy", "website", "replication"]


@pytest.mark.parametrize("sub", BUCKET_SUBRESOURCES)
def test_unknown_subresource_on_bucket(server, s3, bucket, sub):
    s3.put_object(Bucket=bucket, Key="k", Body=b"keep")
    for method, body in (("GET", b""), ("PUT", b"<X/>"), ("DELETE", b""), ("POST", b"<X/>")):
        reply = signed_request(server, method, f"/{bucket}?{sub}", body)
        assert_s3_error(reply, 501, "NotImplemented")
    # Nothing happened: the bucket and its object are still there.
    assert keys_in(s3, bucket) == ["k"]


@pytest.mark.parametrize("sub", SUBRESOURCES + ["torrent", "restore", "select"])
def test_unknown_subresource_on_object(server, s3, bucket, sub):
    s3.put_object(Bucket=bucket, Key="k", Body=b"keep")
    for method, body in (("GET", b""), ("PUT", b"<X/>"), ("DELETE", b""), ("POST", b"<X/>")):
        reply = signed_request(server, method, f"/{bucket}/k?{sub}", body)
        assert_s3_error(reply, 501, "NotImplemented")
        reply = signed_request(server, method, f"/{bucket}/new?{sub}=1", body)
        assert_s3_error(reply, 501, "NotImplemented")
    assert keys_in(s3, bucket) == ["k"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"keep"


def test_unknown_subresource_on_service(server):
    reply = signed_request(server, "GET", "/?policy")
    assert_s3_error(reply, 501, "NotImplemented")


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS", "TRACE", "PROPFIND", "MKCOL", "FOO"])
def test_unsupported_methods(server, s3, bucket, method):
    s3.put_object(Bucket=bucket, Key="k", Body=b"keep")
    for target in ("/", f"/{bucket}", f"/{bucket}/k"):
        reply = signed_request(server, method, target, b"data")
        assert reply.status in (400, 403, 405, 501), (method, target, reply.status)
        if reply.headers.get("content-type") == "application/xml":
            assert reply.error()["Code"]
        else:  # methods the HTTP parser itself does not know never reach the app
            assert method == "FOO", reply
        unsigned = send(server, method, target, {}, b"")
        assert unsigned.status in (400, 403, 405, 501), (method, target, unsigned.status)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"keep"


def test_post_object_without_subresource(server, s3, bucket):
    reply = signed_request(server, "POST", f"/{bucket}/k", b"data")
    assert reply.status in (400, 405, 501), reply.body[:300]
    assert_absent(s3, bucket, "k")


# --- raw socket garbage ----------------------------------------------------------------------

GARBAGE = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(64)) + b"\r\n\r\n",
    b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    b"GET /\x00\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 2000 + b"\r\n",
    b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    b"PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
    b"\r\n\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"GET /%zz%%/%c0%ae%c0%ae/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /b?%zz=%%&a=%ff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://evil.example/b HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n",
]


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_on_the_socket(server, data):
    raw = raw_exchange(server, data, timeout=1.5, half_close=True)
    status = status_of(raw)
    assert status is None or 400 <= status < 500 or status == 501, raw[:500]
    assert b"Traceback" not in raw
    assert healthy(server)


UNPARSEABLE = [
    b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n",  # invalid method
    b"GET / HTTX/1.1\r\nHost: x\r\n\r\n",  # invalid version
    b"GET / HTTP/9.1\r\nHost: x\r\n\r\n",
    b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",  # invalid byte in the target
    b"GET / HTTP/1.1\r\nHo\x01st: x\r\n\r\n",  # invalid header name
    b"GET / HTTP/1.1\r\n\xe9: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\x01y\r\n\r\n",  # invalid header value
    b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"\x16\x03\x01\x00\x05hello",  # TLS on the plain port
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Le",  # head cut short by the client's EOF
    b"GET /",
]


def _responses(raw: bytes) -> list[int]:
    """Status codes of the complete responses in ``raw``, in order."""
    statuses = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, raw[:300]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        statuses.append(int(head.split(b" ", 2)[1]))
        assert len(rest) >= length, raw[:300]
        raw = rest[length:]
    return statuses


@pytest.mark.parametrize("data", UNPARSEABLE, ids=range(len(UNPARSEABLE)))
def test_unparseable_http_gets_400(http_server, data):
    """What cannot be parsed as HTTP is answered 400 before the close, as nginx and Go do;
    a head cut short by the client's end of file too (issue 18)."""
    raw = raw_exchange(http_server, data, timeout=3, half_close=True)
    assert _responses(raw) == [400], raw[:500]
    assert b"connection: close" in raw.lower()


def test_junk_after_a_request_is_answered_after_it(http_server):
    """A complete request followed by junk (a Content-Length shorter than the body sent):
    the request gets its own answer, then the junk gets 400. uvicorn answered 400 alone."""
    health = b"GET /_holdfast/health HTTP/1.1\r\nHost: x\r\n\r\n"
    for junk in (b"GARBAGE \x00\r\n\r\n", b"G\x01T / HTTP/1.1\r\n\r\n"):
        for half_close in (True, False):
            raw = raw_exchange(
                http_server, health + junk, timeout=3, half_close=half_close, until_close=True
            )
            assert _responses(raw) == [200, 400], raw[:800]
    raw = raw_exchange(
        http_server, health + health + junk, timeout=3, half_close=True, until_close=True
    )
    assert _responses(raw) == [200, 200, 400], raw[:800]


def test_body_cut_by_the_client_is_answered(http_server):
    """A signed PUT whose client stops sending mid-body (and says so with end of file) gets
    IncompleteBody, not a silent close; nothing is stored."""
    s3 = http_server.client()
    bucket = unique("cut")
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(1000)
    target = f"/{bucket}/k"
    signed = sign(
        http_server,
        "PUT",
        target,
        {"Content-Length": str(len(body))},
        content_sha256=hashlib.sha256(body).hexdigest(),
    )
    head = f"PUT {target} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in signed.headers.items()
    )
    raw = raw_exchange(http_server, head.encode() + b"\r\n" + body[:400], half_close=True)
    assert _responses(raw) == [400], raw[:500]
    assert b"<Code>IncompleteBody</Code>" in raw
    assert_absent(s3, bucket, "k")
    # The same cut on a keep-alive connection that stays open is the read timeout's business:
    # the server waits for the rest; that is not a parse failure.


# --- path traversal --------------------------------------------------------------------------

TRAVERSAL_KEYS = [
    "../../../../etc/passwd",
    "..",
    ".",
    "a/../../b",
    "./x",
    "//double//slash",
    "back\\slash\\..\\..",
    "nul\x01byte",
    "%2e%2e/%2e%2e/etc",
    "trailing/",
    "../" * 40 + "tmp/holdfast-escape",
]


def test_path_traversal_keys_are_data(server, s3, bucket):
    started = time.time() - 1
    for i, key in enumerate(TRAVERSAL_KEYS):
        body = f"payload-{i}".encode()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert sorted(keys_in(s3, bucket)) == sorted(TRAVERSAL_KEYS)
    # Every file written since is inside the data directory (or is the server's log).
    data_dir = server.data_dirs[0].resolve()
    for path in data_dir.parent.rglob("*"):
        if path.is_file() and path.stat().st_mtime >= started and path != server.log_path:
            assert path.resolve().is_relative_to(data_dir), path
    assert not (Path("/tmp") / "holdfast-escape").exists()
    assert Path("/etc/passwd").stat().st_mtime < started
    for key in TRAVERSAL_KEYS:
        s3.delete_object(Bucket=bucket, Key=key)
    assert keys_in(s3, bucket) == []


@pytest.mark.parametrize(
    "target",
    [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "/BUCKET/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/BUCKET/../../../../etc/passwd",
        "/BUCKET/%2e%2e%2f%2e%2e%2f%2e%2e%2fhttps0%2fdrive0",
        "/_holdfast/../../etc/passwd",
        "/_holdfast/%2e%2e/%2e%2e/etc/passwd",
    ],
)
def test_path_traversal_requests(server, bucket, target):
    target = target.replace("BUCKET", bucket)
    for reply in (signed_request(server, "GET", target), send(server, "GET", target)):
        assert reply.status in (400, 403, 404), (target, reply.status, reply.body[:300])
        assert b"root:" not in reply.body
        if reply.headers.get("content-type") == "application/xml":
            assert reply.error()["Code"]


# --- pools for the mutation fuzz (tests/e2e/test_fuzz.py) ---------------------------------

QUERIES = [
    "", "?uploads", "?delete", "?acl", "?location", "?versioning", "?tagging", "?list-type=2",
    "?list-type=3", "?max-keys=-1", "?max-keys=abc", "?max-keys=99999999999999999999",
    "?uploadId=", "?uploadId=x&partNumber=0", "?partNumber=10001&uploadId=y",
    "?continuation-token=%ff%fe", "?marker=%00", "?encoding-type=bogus", "?prefix=%",
    "?delimiter=&prefix=", "?versionId=abc", "?x-id=PutObject", "?uploads&delete",
    "?response-content-type=%0d%0aX-Injected:1", "?=", "?&&&", "?a=b=c",
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256", "?fetch-owner=maybe", "?start-after=" + "z" * 2000,
    "?response-content-disposition=%E4%B8%AD", "?response-content-type=a%00b",
]  # fmt: skip
HEADER_POOL = [
    ("Range", ["bytes=0-0", "bytes=-5", "bytes=5-", "bytes=x-y", "bytes=99999999999999999999-"]),
    ("If-Match", ['"abc"', "*", "", 'W/"x"']),
    ("If-None-Match", ["*", '"abc"', ""]),
    (
        "If-Modified-Since",
        ["yesterday", "Mon, 01 Jan 1990 00:00:00 GMT", "0", "Fri, 31 Dec 9999 23:59:59 -2359"],
    ),
    ("If-Unmodified-Since", ["Tue, 31 Dec 2999 00:00:00 GMT", "garbage"]),
    ("Content-MD5", ["", "AAAA", "!!!", md5_b64(b"")]),
    ("x-amz-checksum-crc32", ["", "AAAAAA==", "zzzz"]),
    ("x-amz-checksum-sha256", ["AAAA"]),
    ("x-amz-checksum-algorithm", ["CRC32", "MD5", "", "crc64nvme"]),
    ("x-amz-checksum-type", ["COMPOSITE", "FULL_OBJECT", "nope"]),
    ("x-amz-sdk-checksum-algorithm", ["CRC32", "NOPE"]),
    ("x-amz-trailer", ["x-amz-checksum-crc32", "x-amz-nope", ""]),
    ("x-amz-decoded-content-length", ["10", "-1", "abc", "\u00b2"]),
    ("Content-Encoding", ["aws-chunked", "gzip", "aws-chunked,aws-chunked"]),
    ("x-amz-copy-source", ["/", "nobucket/key", "%ff", "/b/k?versionId=1", "a" * 2000]),
    ("x-amz-copy-source-range", ["bytes=0-1", "bytes=", "bogus"]),
    ("x-amz-metadata-directive", ["REPLACE", "COPY", "MAYBE"]),
    ("x-amz-meta-fuzz", ["v", "é".encode().decode("latin-1"), "x" * 3000]),
    ("x-amz-acl", ["private", "public-read", ""]),
    ("x-amz-tagging", ["a=b", "a=b&a=c", "%ff=1", "aws:x=1", "k=" + "v" * 300]),
    ("x-amz-storage-class", ["STANDARD", "GLACIER", "BOGUS"]),
    ("x-amz-date", ["20000101T000000Z", "garbage"]),
    ("x-amz-content-sha256", ["UNSIGNED-PAYLOAD", "zzz", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"]),
    ("x-amz-security-token", ["token"]),
    ("Content-Type", ["", "text/plain", "\x7f"]),
    ("Expect", ["100-continue", "200-ok"]),
    ("Host", ["bucket.localhost", "", "evil.example", "a.b.c.localhost:1"]),
    ("Authorization", ["AWS4-HMAC-SHA256 ,,,", "AWS4-ECDSA-P256-SHA256 x", "AWS a:b"]),
    ("Transfer-Encoding", ["chunked", "gzip", "identity"]),
    ("Expires", ["never"]),
]
