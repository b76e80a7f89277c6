"""Every x-amz-content-sha256 mode, presigned URLs, clock skew, credentials and edge checksums,
sent as raw HTTP requests against a live server (over HTTP and HTTPS).

Requests are signed with botocore's own S3SigV4Auth (with the payload hash and clock under
the test's control); aws-chunked bodies, chunk signatures and trailer signatures are built
here independently of Holdfast's code, following the AWS documentation.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import ssl
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from unittest import mock

import botocore.auth
import botocore.crt.auth
import pytest
import requests
from awscrt import checksums as crt
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import ROOT_AK, ROOT_SK, Server, unique

REGION = "us-east-1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


# --- raw HTTP ------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, str]:
        root = ET.fromstring(self.body)
        assert root.tag == "Error", self.body
        return {child.tag: child.text or "" for child in root}


def connection(server: Server, timeout: float = 10.0) -> http.client.HTTPConnection:
    if server.tls:
        ctx = ssl.create_default_context(cafile=server.ca_path)
        return http.client.HTTPSConnection("127.0.0.1", server.port, timeout=timeout, context=ctx)
    return http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)


def send(
    server: Server,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes | Iterable[bytes] = b"",
    *,
    http_chunked: bool = False,
    timeout: float = 10.0,
) -> Reply:
    """One request on a fresh connection; ``http_chunked`` sends the body with
    Transfer-Encoding: chunked (``body`` is then an iterable of pieces)."""
    conn = connection(server, timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {}, encode_chunked=http_chunked)
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def assert_s3_error(reply: Reply, status: int, code: str) -> dict[str, str]:
    """The reply is S3 error XML with this status and code, and the usual fields."""
    assert reply.status == status, (reply.status, reply.body[:500])
    err = reply.error()
    assert err["Code"] == code, err
    assert err.get("Message"), err
    assert "Resource" in err, err
    assert err.get("RequestId"), err
    assert reply.headers.get("x-amz-request-id") == err["RequestId"]
    return err


# --- SigV4 signing ---------------------------------------------------------------------------


class _Auth(S3SigV4Auth):
    """botocore's S3 signer, with x-amz-content-sha256 set by the caller."""

    def __init__(self, credentials: Credentials, content_sha256: str) -> None:
        super().__init__(credentials, "s3", REGION)
        self._content_sha256 = content_sha256

    def payload(self, request):  # noqa: ARG002 - signature of the base class
        return self._content_sha256


@dataclass
class Signed:
    headers: dict[str, str]
    signature: str  # seed signature for chunk 1
    amz_date: str
    scope: str
    signing_key: bytes = field(repr=False)


@contextlib.contextmanager
def frozen_clock(when: datetime) -> Iterator[None]:
    """botocore's signers (its own, and the CRT ones it prefers when awscrt is installed) see
    ``when`` as the current time."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)

    def now(remove_tzinfo: bool = True) -> datetime:
        return aware.replace(tzinfo=None) if remove_tzinfo else aware

    with (
        mock.patch.object(botocore.auth, "get_current_datetime", now),
        mock.patch.object(botocore.crt.auth, "get_current_datetime", now),
    ):
        yield


def signing_key(secret: str, date: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    server: Server,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    *,
    content_sha256: str = EMPTY_SHA256,
    access_key: str = ROOT_AK,
    secret_key: str = ROOT_SK,
    when: datetime | None = None,
) -> Signed:
    """Sign ``method target`` (path plus raw query) with every given header signed."""
    hdrs = {"Host": f"127.0.0.1:{server.port}", **(headers or {})}
    request = AWSRequest(method=method, url=server.endpoint + target, headers=hdrs)
    auth = _Auth(Credentials(access_key, secret_key), content_sha256)
    with frozen_clock(when or datetime.now(UTC)):
        auth.add_auth(request)
    out = {k: v for k, v in request.headers.items()}
    signature = out["Authorization"].rsplit("Signature=", 1)[1]
    amz_date = out["X-Amz-Date"]
    return Signed(
        headers=out,
        signature=signature,
        amz_date=amz_date,
        scope=f"{amz_date[:8]}/{REGION}/s3/aws4_request",
        signing_key=signing_key(secret_key, amz_date[:8]),
    )


def signed_request(
    server: Server,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    **kw,
) -> Reply:
    """A request whose x-amz-content-sha256 is the hex SHA-256 of ``body`` (unless given)."""
    kw.setdefault("content_sha256", hashlib.sha256(body).hexdigest())
    hdrs = dict(headers or {})
    hdrs.setdefault("Content-Length", str(len(body)))
    signed = sign(server, method, target, hdrs, **kw)
    return send(server, method, target, signed.headers, body)


# --- aws-chunked bodies, built from the AWS documentation ----------------------------------


def _hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def chunk_sig(signed: Signed, previous: str, data: bytes) -> str:
    string_to_sign = "\n".join(
        (
            "AWS4-HMAC-SHA256-PAYLOAD",
            signed.amz_date,
            signed.scope,
            previous,
            EMPTY_SHA256,
            hashlib.sha256(data).hexdigest(),
        )
    )
    return _hmac_hex(signed.signing_key, string_to_sign)


def trailer_sig(signed: Signed, previous: str, trailers: dict[str, str]) -> str:
    canonical = "".join(f"{k}:{v}\n" for k, v in sorted(trailers.items())).encode()
    string_to_sign = "\n".join(
        (
            "AWS4-HMAC-SHA256-TRAILER",
            signed.amz_date,
            signed.scope,
            previous,
            hashlib.sha256(canonical).hexdigest(),
        )
    )
    return _hmac_hex(signed.signing_key, string_to_sign)


def split(payload: bytes, size: int) -> list[bytes]:
    return [payload[i : i + size] for i in range(0, len(payload), size)]


def aws_chunked(
    chunks: list[bytes],
    signed: Signed | None = None,
    *,
    trailers: dict[str, str] | None = None,
    sign_trailers: bool = False,
    corrupt_chunk: int | None = None,
    corrupt_trailer_signature: bool = False,
) -> list[bytes]:
    """Frame ``chunks`` (plus the final empty chunk and trailers) as aws-chunked pieces.

    With ``signed`` each chunk carries its chunk-signature, chained from the seed signature.
    ``corrupt_chunk`` flips a bit of that chunk's signature.
    """
    pieces: list[bytes] = []
    previous = signed.signature if signed else ""
    for i, data in enumerate([*chunks, b""]):
        line = f"{len(data):x}"
        if signed is not None:
            sig = chunk_sig(signed, previous, data)
            previous = sig
            if i == corrupt_chunk:
                sig = ("0" if sig[0] != "0" else "1") + sig[1:]
            line += f";chunk-signature={sig}"
        piece = line.encode() + b"\r\n" + data
        if data:
            piece += b"\r\n"
        pieces.append(piece)
    tail = b""
    for name, value in (trailers or {}).items():
        tail += f"{name}:{value}\r\n".encode()
    if sign_trailers:
        assert signed is not None
        sig = trailer_sig(signed, previous, trailers or {})
        if corrupt_trailer_signature:
            sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        tail += f"x-amz-trailer-signature:{sig}\r\n".encode()
    pieces.append(tail + b"\r\n")
    return pieces


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def checksum(algorithm: str, data: bytes) -> str:
    """Base64 x-amz-checksum-* value, computed without Holdfast's code."""
    if algorithm == "crc32":
        return b64(zlib.crc32(data).to_bytes(4, "big"))
    if algorithm == "crc32c":
        return b64(crt.crc32c(data).to_bytes(4, "big"))
    if algorithm == "crc64nvme":
        return b64(crt.crc64nvme(data).to_bytes(8, "big"))
    return b64(hashlib.new(algorithm, data).digest())


ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


def put_chunked(
    server: Server,
    bucket: str,
    key: str,
    payload: bytes,
    mode: str,
    *,
    chunk_size: int = 64 * 1024,
    http_chunked: bool = False,
    trailer: str | None = None,
    trailer_value: str | None = None,
    corrupt_chunk: int | None = None,
    corrupt_trailer_signature: bool = False,
    extra_headers: dict[str, str] | None = None,
    decoded_length: int | None = None,
) -> Reply:
    """PUT ``payload`` as an aws-chunked body in one of the STREAMING-* modes."""
    target = f"/{bucket}/{key}"
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(
            len(payload) if decoded_length is None else decoded_length
        ),
        **(extra_headers or {}),
    }
    trailers = None
    if trailer is not None:
        headers["x-amz-trailer"] = f"x-amz-checksum-{trailer}"
        value = trailer_value if trailer_value is not None else checksum(trailer, payload)
        trailers = {f"x-amz-checksum-{trailer}": value}
    signed_chunks = mode in (STREAMING, STREAMING_TRAILER)

    # The framed length depends only on sizes (signatures have a fixed width), so frame once
    # with a placeholder to learn Content-Length, which is itself signed.
    def frame(s: Signed | None) -> list[bytes]:
        return aws_chunked(
            split(payload, chunk_size),
            s if signed_chunks else None,
            trailers=trailers,
            sign_trailers=mode == STREAMING_TRAILER,
            corrupt_chunk=corrupt_chunk,
            corrupt_trailer_signature=corrupt_trailer_signature,
        )

    if http_chunked:
        headers["Transfer-Encoding"] = "chunked"
    else:
        placeholder = Signed({}, "0" * 64, "20260101T000000Z", "x", b"k")
        headers["Content-Length"] = str(sum(len(p) for p in frame(placeholder)))
    signed = sign(server, "PUT", target, headers, content_sha256=mode)
    pieces = frame(signed)
    if http_chunked:
        return send(server, "PUT", target, signed.headers, pieces, http_chunked=True)
    return send(server, "PUT", target, signed.headers, b"".join(pieces))


# --- helpers on the store's state ------------------------------------------------------------


def assert_absent(s3, bucket: str, key: str) -> None:
    with pytest.raises(s3.exceptions.ClientError) as info:
        s3.head_object(Bucket=bucket, Key=key)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def assert_stored(s3, bucket: str, key: str, payload: bytes) -> dict:
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == payload
    assert got["ContentLength"] == len(payload)
    assert got["ETag"] == f'"{hashlib.md5(payload).hexdigest()}"'
    assert "aws-chunked" not in (got.get("ContentEncoding") or "")
    return got


def payload_of(size: int) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


# =============================================================================================
# hex payload hash, UNSIGNED-PAYLOAD
# =============================================================================================


def test_hex_payload_hash_correct_is_stored(server, s3, bucket):
    key, payload = unique(), payload_of(5000)
    reply = signed_request(server, "PUT", f"/{bucket}/{key}", payload)
    assert reply.status == 200, reply.body
    assert reply.headers["etag"] == f'"{hashlib.md5(payload).hexdigest()}"'
    assert_stored(s3, bucket, key, payload)


def test_hex_payload_hash_wrong_is_rejected_and_nothing_stored(server, s3, bucket):
    key, payload = unique(), payload_of(5000)
    wrong = hashlib.sha256(payload + b"x").hexdigest()
    reply = signed_request(server, "PUT", f"/{bucket}/{key}", payload, content_sha256=wrong)
    assert_s3_error(reply, 400, "XAmzContentSHA256Mismatch")
    assert_absent(s3, bucket, key)


def test_hex_payload_hash_wrong_does_not_overwrite(server, s3, bucket):
    key = unique()
    s3.put_object(Bucket=bucket, Key=key, Body=b"original")
    wrong = hashlib.sha256(b"other").hexdigest()
    reply = signed_request(server, "PUT", f"/{bucket}/{key}", b"replacement", content_sha256=wrong)
    assert_s3_error(reply, 400, "XAmzContentSHA256Mismatch")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"original"


def test_unsigned_payload(server, s3, bucket):
    key, payload = unique(), payload_of(3000)
    reply = signed_request(server, "PUT", f"/{bucket}/{key}", payload, content_sha256=UNSIGNED)
    assert reply.status == 200, reply.body
    assert_stored(s3, bucket, key, payload)


def test_unsigned_payload_still_checks_content_md5(server, s3, bucket):
    key, payload = unique(), payload_of(3000)
    md5 = b64(hashlib.md5(b"something else").digest())
    reply = signed_request(
        server,
        "PUT",
        f"/{bucket}/{key}",
        payload,
        {"Content-MD5": md5},
        content_sha256=UNSIGNED,
    )
    assert_s3_error(reply, 400, "BadDigest")
    assert_absent(s3, bucket, key)


# =============================================================================================
# STREAMING-AWS4-HMAC-SHA256-PAYLOAD
# =============================================================================================


@pytest.mark.parametrize("http_chunked", [False, True], ids=["content-length", "te-chunked"])
def test_streaming_signed_payload(server, s3, bucket, http_chunked):
    key, payload = unique(), payload_of(200 * 1024 + 17)
    reply = put_chunked(server, bucket, key, payload, STREAMING, http_chunked=http_chunked)
    assert reply.status == 200, reply.body
    assert reply.headers["etag"] == f'"{hashlib.md5(payload).hexdigest()}"'
    got = assert_stored(s3, bucket, key, payload)
    assert got.get("ContentEncoding") is None


@pytest.mark.parametrize("bad_chunk", [0, 2, 4], ids=["first", "middle", "final-empty"])
def test_streaming_bad_chunk_signature(server, s3, bucket, bad_chunk):
    key, payload = unique(), payload_of(200 * 1024)  # 4 data chunks + the final one
    reply = put_chunked(server, bucket, key, payload, STREAMING, corrupt_chunk=bad_chunk)
    assert_s3_error(reply, 403, "SignatureDoesNotMatch")
    assert_absent(s3, bucket, key)


def test_streaming_bad_chunk_signature_does_not_overwrite(server, s3, bucket):
    key = unique()
    s3.put_object(Bucket=bucket, Key=key, Body=b"original")
    reply = put_chunked(
        server, bucket, key, payload_of(100_000), STREAMING, corrupt_chunk=1, http_chunked=True
    )
    assert_s3_error(reply, 403, "SignatureDoesNotMatch")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"original"


def test_streaming_chunks_swapped_are_rejected(server, s3, bucket):
    """Each chunk signs the previous one: valid chunks in the wrong order must fail."""
    key = unique()
    target = f"/{bucket}/{key}"
    a, b = b"A" * 1000, b"B" * 1000
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": "2000",
        "Transfer-Encoding": "chunked",
    }
    signed = sign(server, "PUT", target, headers, content_sha256=STREAMING)
    pieces = aws_chunked([a, b], signed)
    pieces[0], pieces[1] = pieces[1], pieces[0]
    reply = send(server, "PUT", target, signed.headers, pieces, http_chunked=True)
    assert_s3_error(reply, 403, "SignatureDoesNotMatch")
    assert_absent(s3, bucket, key)


def test_streaming_decoded_length_mismatch(server, s3, bucket):
    key, payload = unique(), payload_of(10_000)
    reply = put_chunked(server, bucket, key, payload, STREAMING, decoded_length=9_999)
    assert reply.status == 400, reply.body
    assert reply.error()["Code"] in ("IncompleteBody", "InvalidArgument")
    assert_absent(s3, bucket, key)


def test_streaming_keeps_other_content_encodings(server, s3, bucket):
    key, payload = unique(), payload_of(1000)
    reply = put_chunked(
        server,
        bucket,
        key,
        payload,
        STREAMING,
        extra_headers={"Content-Encoding": "aws-chunked,gzip"},
    )
    assert reply.status == 200, reply.body
    got = assert_stored(s3, bucket, key, payload)
    assert got["ContentEncoding"] == "gzip"


# =============================================================================================
# STREAMING-UNSIGNED-PAYLOAD-TRAILER
# =============================================================================================


def test_boto3_default_upload_uses_the_trailer_over_https(server, s3, bucket):
    """boto3's own PutObject: aws-chunked + trailer over HTTPS, a header checksum over HTTP."""
    seen: dict[str, str] = {}

    def capture(request, **_):
        seen.update({k.lower(): v for k, v in request.headers.items()})

    s3.meta.events.register("before-send.s3.PutObject", capture)
    key, payload = unique(), payload_of(70_000)
    s3.put_object(Bucket=bucket, Key=key, Body=payload)
    sha = seen["x-amz-content-sha256"]
    sha = sha.decode() if isinstance(sha, bytes) else sha
    if server.tls:
        assert sha == STREAMING_UNSIGNED_TRAILER
        assert "x-amz-trailer" in seen
    else:
        assert sha == hashlib.sha256(payload).hexdigest()
    got = assert_stored(s3, bucket, key, payload)
    assert got.get("ContentEncoding") is None
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == checksum("crc32", payload)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("http_chunked", [False, True], ids=["content-length", "te-chunked"])
def test_unsigned_trailer(server, s3, bucket, algorithm, http_chunked):
    key, payload = unique(), payload_of(150_000)
    reply = put_chunked(
        server,
        bucket,
        key,
        payload,
        STREAMING_UNSIGNED_TRAILER,
        trailer=algorithm,
        http_chunked=http_chunked,
    )
    assert reply.status == 200, reply.body
    assert reply.headers[f"x-amz-checksum-{algorithm}"] == checksum(algorithm, payload)
    assert_stored(s3, bucket, key, payload)


@pytest.mark.parametrize("algorithm", ["crc32", "crc64nvme", "sha256"])
def test_unsigned_trailer_wrong_checksum(server, s3, bucket, algorithm):
    key, payload = unique(), payload_of(150_000)
    wrong = checksum(algorithm, payload + b"!")
    reply = put_chunked(
        server, bucket, key, payload, STREAMING_UNSIGNED_TRAILER, trailer=algorithm,
        trailer_value=wrong,
    )  # fmt: skip
    assert_s3_error(reply, 400, "BadDigest")
    assert_absent(s3, bucket, key)


def test_unsigned_trailer_missing_trailer(server, s3, bucket):
    """x-amz-trailer announces a checksum that never comes."""
    key, payload = unique(), payload_of(1000)
    target = f"/{bucket}/{key}"
    pieces = aws_chunked([payload])
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(payload)),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "Content-Length": str(sum(map(len, pieces))),
    }
    signed = sign(server, "PUT", target, headers, content_sha256=STREAMING_UNSIGNED_TRAILER)
    reply = send(server, "PUT", target, signed.headers, b"".join(pieces))
    assert reply.status == 400, reply.body
    assert_absent(s3, bucket, key)


# =============================================================================================
# STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER
# =============================================================================================


@pytest.mark.parametrize("http_chunked", [False, True], ids=["content-length", "te-chunked"])
def test_signed_trailer(server, s3, bucket, http_chunked):
    key, payload = unique(), payload_of(130_000)
    reply = put_chunked(
        server, bucket, key, payload, STREAMING_TRAILER, trailer="crc32c", http_chunked=http_chunked
    )
    assert reply.status == 200, reply.body
    assert reply.headers["x-amz-checksum-crc32c"] == checksum("crc32c", payload)
    assert_stored(s3, bucket, key, payload)


def test_signed_trailer_bad_trailer_signature(server, s3, bucket):
    key, payload = unique(), payload_of(130_000)
    reply = put_chunked(
        server, bucket, key, payload, STREAMING_TRAILER, trailer="crc32c",
        corrupt_trailer_signature=True,
    )  # fmt: skip
    assert_s3_error(reply, 403, "SignatureDoesNotMatch")
    assert_absent(s3, bucket, key)


def test_signed_trailer_bad_chunk_signature(server, s3, bucket):
    key, payload = unique(), payload_of(130_000)
    reply = put_chunked(
        server, bucket, key, payload, STREAMING_TRAILER, trailer="sha1", corrupt_chunk=1
    )
    assert_s3_error(reply, 403, "SignatureDoesNotMatch")
    assert_absent(s3, bucket, key)


def test_signed_trailer_tampered_trailer_value(server, s3, bucket):
    """A trailer value changed after signing: the trailer signature no longer covers it."""
    key, payload = unique(), payload_of(5000)
    target = f"/{bucket}/{key}"
    good = checksum("crc32", payload)
    bad = checksum("crc32", payload + b"?")
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(payload)),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "Transfer-Encoding": "chunked",
    }
    signed = sign(server, "PUT", target, headers, content_sha256=STREAMING_TRAILER)
    pieces = aws_chunked(
        [payload], signed, trailers={"x-amz-checksum-crc32": good}, sign_trailers=True
    )
    pieces[-1] = pieces[-1].replace(good.encode(), bad.encode())
    reply = send(server, "PUT", target, signed.headers, pieces, http_chunked=True)
    assert_s3_error(reply, 403, "SignatureDoesNotMatch")
    assert_absent(s3, bucket, key)


def test_signed_trailer_missing_trailer_signature(server, s3, bucket):
    key, payload = unique(), payload_of(5000)
    target = f"/{bucket}/{key}"
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(payload)),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "Transfer-Encoding": "chunked",
    }
    signed = sign(server, "PUT", target, headers, content_sha256=STREAMING_TRAILER)
    trailers = {"x-amz-checksum-crc32": checksum("crc32", payload)}
    pieces = aws_chunked([payload], signed, trailers=trailers, sign_trailers=False)
    reply = send(server, "PUT", target, signed.headers, pieces, http_chunked=True)
    assert_s3_error(reply, 403, "SignatureDoesNotMatch")
    assert_absent(s3, bucket, key)


def test_signed_trailer_wrong_checksum_with_valid_signature(server, s3, bucket):
    key, payload = unique(), payload_of(5000)
    reply = put_chunked(
        server, bucket, key, payload, STREAMING_TRAILER, trailer="crc32",
        trailer_value=checksum("crc32", b"not the payload"),
    )  # fmt: skip
    assert_s3_error(reply, 400, "BadDigest")
    assert_absent(s3, bucket, key)


# =============================================================================================
# presigned URLs
# =============================================================================================


def _verify(server: Server):
    return server.ca_path if server.tls else True


@pytest.fixture
def presigner(server):
    """boto3 presigns with SigV2 unless told otherwise; Holdfast speaks SigV4 only."""
    return server.client(signature_version="s3v4")


def test_presigned_get_and_put(server, s3, presigner, bucket):
    key, payload = unique("pre/"), payload_of(4096)
    put_url = presigner.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
    )
    assert "X-Amz-Signature=" in put_url
    r = requests.put(put_url, data=payload, verify=_verify(server), timeout=10)
    assert r.status_code == 200, r.text
    assert_stored(s3, bucket, key, payload)

    get_url = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
    )
    r = requests.get(get_url, verify=_verify(server), timeout=10)
    assert r.status_code == 200
    assert r.content == payload

    # The signature covers the key: the same query on another key is refused.
    other = get_url.replace(key, key + "x", 1)
    r = requests.get(other, verify=_verify(server), timeout=10)
    assert r.status_code == 403
    assert ET.fromstring(r.content).findtext("Code") == "SignatureDoesNotMatch"


def test_presigned_expired(server, s3, presigner, bucket):
    key = unique("pre/")
    s3.put_object(Bucket=bucket, Key=key, Body=b"secret")
    with frozen_clock(datetime.now(UTC) - timedelta(hours=1)):
        get_url = presigner.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60
        )
        put_url = presigner.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60
        )
    r = requests.get(get_url, verify=_verify(server), timeout=10)
    assert r.status_code == 403
    assert ET.fromstring(r.content).findtext("Code") == "AccessDenied"
    assert b"secret" not in r.content
    r = requests.put(put_url, data=b"overwrite", verify=_verify(server), timeout=10)
    assert r.status_code == 403
    assert ET.fromstring(r.content).findtext("Code") == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"secret"


def test_presigned_expires_after_its_window(server, s3, presigner, bucket):
    key = unique("pre/")
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    url = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=1
    )
    assert requests.get(url, verify=_verify(server), timeout=10).status_code == 200
    time.sleep(2.1)
    r = requests.get(url, verify=_verify(server), timeout=10)
    assert r.status_code == 403
    assert ET.fromstring(r.content).findtext("Code") == "AccessDenied"


def test_presigned_tampered_signature(server, s3, presigner, bucket):
    key = unique("pre/")
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    head, sig = url.rsplit("X-Amz-Signature=", 1)
    bad = head + "X-Amz-Signature=" + ("0" if sig[0] != "0" else "1") + sig[1:]
    r = requests.get(bad, verify=_verify(server), timeout=10)
    assert r.status_code == 403
    assert ET.fromstring(r.content).findtext("Code") == "SignatureDoesNotMatch"


# =============================================================================================
# clock skew, credentials, anonymous
# =============================================================================================


@pytest.mark.parametrize("minutes", [-16, 16, -60 * 24])
def test_request_time_too_skewed(server, bucket, minutes):
    when = datetime.now(UTC) + timedelta(minutes=minutes)
    reply = signed_request(server, "GET", f"/{bucket}?list-type=2", when=when)
    err = assert_s3_error(reply, 403, "RequestTimeTooSkewed")
    assert err.get("RequestTime") == when.strftime("%Y%m%dT%H%M%SZ")


@pytest.mark.parametrize("minutes", [-14, 14])
def test_request_time_within_window(server, bucket, minutes):
    when = datetime.now(UTC) + timedelta(minutes=minutes)
    reply = signed_request(server, "GET", f"/{bucket}?list-type=2", when=when)
    assert reply.status == 200, reply.body


def test_wrong_secret(server, s3, bucket):
    key = unique()
    reply = signed_request(server, "PUT", f"/{bucket}/{key}", b"data", secret_key="wrong" * 8)
    assert_s3_error(reply, 403, "SignatureDoesNotMatch")
    assert ROOT_SK not in reply.body.decode()
    assert_absent(s3, bucket, key)


def test_wrong_secret_via_boto3(server, bucket):
    bad = server.client(secret_key="not-the-secret", retries={"max_attempts": 1})
    with pytest.raises(bad.exceptions.ClientError) as info:
        bad.list_objects_v2(Bucket=bucket)
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_unknown_access_key(server, s3, bucket):
    key = unique()
    reply = signed_request(
        server, "PUT", f"/{bucket}/{key}", b"data", access_key="NOSUCHKEY1234567"
    )
    assert_s3_error(reply, 403, "InvalidAccessKeyId")
    assert_absent(s3, bucket, key)


def test_anonymous_is_denied(server, s3, bucket):
    key = unique()
    s3.put_object(Bucket=bucket, Key=key, Body=b"private")
    for method, target, body in [
        ("GET", "/", b""),
        ("GET", f"/{bucket}", b""),
        ("GET", f"/{bucket}/{key}", b""),
        ("PUT", f"/{bucket}/{key}", b"overwrite"),
        ("DELETE", f"/{bucket}/{key}", b""),
        ("PUT", f"/{unique('anon')}", b""),
    ]:
        reply = send(server, method, target, {}, body)
        assert_s3_error(reply, 403, "AccessDenied")
        assert b"private" not in reply.body
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"private"


def test_unsigned_amz_header_is_refused(server, s3, bucket):
    """An x-amz-* header added after signing could change the request's meaning."""
    key = unique()
    signed = sign(
        server, "PUT", f"/{bucket}/{key}", {"Content-Length": "4"},
        content_sha256=hashlib.sha256(b"data").hexdigest(),
    )  # fmt: skip
    headers = {**signed.headers, "x-amz-meta-injected": "yes"}
    reply = send(server, "PUT", f"/{bucket}/{key}", headers, b"data")
    assert reply.status == 403, reply.body
    assert_absent(s3, bucket, key)


def test_tampered_signed_header(server, s3, bucket):
    key = unique()
    signed = sign(
        server, "PUT", f"/{bucket}/{key}", {"Content-Length": "4", "x-amz-meta-a": "1"},
        content_sha256=hashlib.sha256(b"data").hexdigest(),
    )  # fmt: skip
    headers = {**signed.headers, "x-amz-meta-a": "2"}
    reply = send(server, "PUT", f"/{bucket}/{key}", headers, b"data")
    assert_s3_error(reply, 403, "SignatureDoesNotMatch")
    assert_absent(s3, bucket, key)


# =============================================================================================
# Content-MD5 and x-amz-checksum-* in headers
# =============================================================================================


def test_content_md5_correct(server, s3, bucket):
    key, payload = unique(), payload_of(2000)
    md5 = b64(hashlib.md5(payload).digest())
    reply = signed_request(server, "PUT", f"/{bucket}/{key}", payload, {"Content-MD5": md5})
    assert reply.status == 200, reply.body
    assert_stored(s3, bucket, key, payload)


def test_content_md5_wrong(server, s3, bucket):
    key, payload = unique(), payload_of(2000)
    md5 = b64(hashlib.md5(payload + b"1").digest())
    reply = signed_request(server, "PUT", f"/{bucket}/{key}", payload, {"Content-MD5": md5})
    assert_s3_error(reply, 400, "BadDigest")
    assert_absent(s3, bucket, key)


@pytest.mark.parametrize("value", ["not-base64!!", b64(b"short"), ""])
def test_content_md5_malformed(server, s3, bucket, value):
    key = unique()
    reply = signed_request(server, "PUT", f"/{bucket}/{key}", b"data", {"Content-MD5": value})
    assert_s3_error(reply, 400, "InvalidDigest")
    assert_absent(s3, bucket, key)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_header_checksum_correct(server, s3, bucket, algorithm):
    key, payload = unique(), payload_of(9000)
    value = checksum(algorithm, payload)
    reply = signed_request(
        server, "PUT", f"/{bucket}/{key}", payload, {f"x-amz-checksum-{algorithm}": value}
    )
    assert reply.status == 200, reply.body
    assert reply.headers[f"x-amz-checksum-{algorithm}"] == value
    assert_stored(s3, bucket, key, payload)
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm.upper()}"] == value


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_header_checksum_wrong(server, s3, bucket, algorithm):
    key, payload = unique(), payload_of(9000)
    value = checksum(algorithm, payload[:-1])  # well-formed, wrong
    reply = signed_request(
        server, "PUT", f"/{bucket}/{key}", payload, {f"x-amz-checksum-{algorithm}": value}
    )
    assert_s3_error(reply, 400, "BadDigest")
    assert_absent(s3, bucket, key)


@pytest.mark.parametrize("algorithm", ["crc32", "sha256"])
def test_header_checksum_wrong_with_unsigned_payload(server, s3, bucket, algorithm):
    key, payload = unique(), payload_of(9000)
    value = checksum(algorithm, payload[1:])
    reply = signed_request(
        server,
        "PUT",
        f"/{bucket}/{key}",
        payload,
        {f"x-amz-checksum-{algorithm}": value},
        content_sha256=UNSIGNED,
    )
    assert_s3_error(reply, 400, "BadDigest")
    assert_absent(s3, bucket, key)


def test_header_checksum_malformed(server, s3, bucket):
    key = unique()
    reply = signed_request(
        server, "PUT", f"/{bucket}/{key}", b"data", {"x-amz-checksum-crc32": "@@@"}
    )
    assert reply.status == 400, reply.body
    assert reply.error()["Code"] in ("InvalidRequest", "InvalidDigest")
    assert_absent(s3, bucket, key)


def test_upload_part_wrong_checksum(server, s3, bucket):
    key = unique()
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    try:
        payload = payload_of(1000)
        target = f"/{bucket}/{key}?partNumber=1&uploadId={upload}"
        bad = {"x-amz-checksum-crc32": checksum("crc32", b"no")}
        reply = signed_request(server, "PUT", target, payload, bad)
        assert_s3_error(reply, 400, "BadDigest")
        parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload)
        assert parts.get("Parts", []) == []
        reply = signed_request(
            server, "PUT", target, payload, {"Content-MD5": b64(hashlib.md5(b"no").digest())}
        )
        assert_s3_error(reply, 400, "BadDigest")
        assert s3.list_parts(Bucket=bucket, Key=key, UploadId=upload).get("Parts", []) == []
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)


# =============================================================================================
# the error envelope itself
# =============================================================================================


def test_every_error_is_s3_xml_with_request_id(server, s3, bucket):
    cases = [
        (signed_request(server, "GET", f"/{bucket}/{unique()}"), 404, "NoSuchKey"),
        (signed_request(server, "GET", f"/{unique('nob')}?list-type=2"), 404, "NoSuchBucket"),
        (signed_request(server, "GET", f"/{bucket}?cors"), 404, "NoSuchCORSConfiguration"),
        (signed_request(server, "GET", f"/{bucket}?inventory"), 501, "NotImplemented"),
        (send(server, "GET", f"/{bucket}", {}), 403, "AccessDenied"),
    ]
    for reply, status, code in cases:
        err = assert_s3_error(reply, status, code)
        assert err["Resource"].startswith("/")
    # Successful responses carry a request id too.
    ok = signed_request(server, "GET", f"/{bucket}?list-type=2")
    assert ok.status == 200 and ok.headers.get("x-amz-request-id")
