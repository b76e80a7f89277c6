"""Unit tests for holdfast.s3.auth: SigV4 verification against botocore and AWS's own examples."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from holdfast.s3.auth import (
    UNSIGNED_PAYLOAD,
    AuthResult,
    canonical_query,
    canonical_uri,
    parse_query,
    verify_request,
)
from holdfast.s3.errors import S3Error

ACCESS_KEY = "HFTESTACCESSKEY00001"
SECRET = "s3cr3t/With+Odd=Chars~"
HOST = "127.0.0.1:9000"
SIGNED_AT = datetime(2026, 11, 22, 0, 17, 0, tzinfo=UTC)
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# The AWS documentation's examples (sig-v4-header-based-auth, sigv4-query-string-auth,
# sigv4-streaming), all at 20130524T000000Z with its example key.
DOC_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_NOW = datetime(2013, 5, 24, 0, 0, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_botocore_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """botocore stamps requests with the wall clock; pin it so skew and expiry are testable."""
    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda: SIGNED_AT.replace(tzinfo=None)
    )
    yield


def lookup(secret: str = SECRET):
    return lambda key: secret if key == ACCESS_KEY else None


class Signed:
    """A request signed by botocore, split the way the front end sees it."""

    def __init__(self, request: AWSRequest) -> None:
        parts = urlsplit(request.url)
        self.method = request.method
        self.path = parts.path
        self.query = parts.query
        self.headers = {name.lower(): value for name, value in request.headers.items()}

    def verify(self, *, secret: str = SECRET, now: datetime = SIGNED_AT, **changes: str):
        headers = {**self.headers, **{k.replace("_", "-"): v for k, v in changes.items()}}
        return verify_request(self.method, self.path, self.query, headers, lookup(secret), now=now)


def make_request(
    method: str, path: str, query: str = "", headers: dict[str, str] | None = None, body=b""
) -> AWSRequest:
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    return AWSRequest(method=method, url=url, headers={"Host": HOST, **(headers or {})}, data=body)


def sign_header(
    method: str = "GET",
    path: str = "/bucket/key",
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    region: str = "us-east-1",
) -> Signed:
    request = make_request(method, path, query, headers, body)
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET), "s3", region).add_auth(request)
    return Signed(request)


def presign(
    method: str = "GET",
    path: str = "/bucket/key",
    query: str = "",
    headers: dict[str, str] | None = None,
    expires: int = 3600,
) -> Signed:
    request = make_request(method, path, query, headers)
    S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET), "s3", "us-east-1", expires).add_auth(request)
    return Signed(request)


def key_path(key: str) -> str:
    """The path botocore's serializer would put on the wire for ``key``."""
    return "/bucket/" + quote(key, safe="/~")


def expect_error(code: str, call, message: str | None = None) -> S3Error:
    with pytest.raises(S3Error) as caught:
        call()
    assert caught.value.code == code, caught.value
    if message is not None:
        assert caught.value.message == message
    return caught.value


# --- header auth accepted ----------------------------------------------------------------------


KEYS = [
    "plain.txt",
    "with space/and  double  spaces",
    "ünïcödé/ключ/日本語.bin",
    "a+b",
    "a=b&c=d",
    "tilde~x",
    "question?mark",
    "hash#tag",
    "percent%41literal",
    "semi;colon,comma:colon@at!bang'quote(paren)*star$dollar",
    "dir//double/slash/",
    " leading and trailing ",
]


@pytest.mark.parametrize("key", KEYS)
def test_botocore_header_signed_keys_verify(key: str) -> None:
    signed = sign_header("PUT", key_path(key), body=b"hello")
    result = signed.verify()
    assert result.access_key == ACCESS_KEY
    assert not result.presigned
    assert result.content_sha256 == signed.headers["x-amz-content-sha256"]
    assert result.seed_signature in signed.headers["authorization"]
    assert result.amz_date == "20261122T001700Z"
    assert result.scope == "20261122/us-east-1/s3/aws4_request"


@pytest.mark.parametrize(
    "query",
    [
        "uploads",
        "list-type=2&prefix=a%20b",
        "list-type=2&prefix=a%2Bb&delimiter=%2F",
        "prefix=%E6%97%A5%E6%9C%AC&max-keys=10",
        "uploadId=abc~def&partNumber=3",
        "versioning",
        "tagging=",
        "b=2&a=1&a=0",
        "key=a%3Db%26c",
    ],
)
def test_botocore_header_signed_queries_verify(query: str) -> None:
    sign_header("GET", "/bucket", query).verify()


def test_plus_in_raw_query_is_a_space() -> None:
    # minio-go sends a space as '+' and signs it as %20.
    signed = sign_header("GET", "/bucket", "list-type=2&prefix=a%20b")
    signed.query = "list-type=2&prefix=a+b"
    signed.verify()
    assert parse_query("prefix=a+b&x=a%2Bb&uploads") == [
        ("prefix", "a b"),
        ("x", "a+b"),
        ("uploads", ""),
    ]


def test_other_region_is_accepted_and_used_for_the_scope() -> None:
    result = sign_header(region="eu-west-3").verify()
    assert result.scope == "20261122/eu-west-3/s3/aws4_request"


def test_signed_metadata_and_extra_headers_verify() -> None:
    signed = sign_header(
        "PUT",
        key_path("k"),
        headers={
            "x-amz-meta-Note": "  spaced   out\tvalue  ",
            "Content-Type": "text/plain",
            "x-amz-storage-class": "STANDARD",
        },
        body=b"data",
    )
    signed.verify()


def test_date_header_fallback() -> None:
    # botocore signs with Date instead of X-Amz-Date when the request already has a Date.
    signed = sign_header(headers={"Date": "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert "x-amz-date" not in signed.headers
    assert signed.verify().amz_date == "20261122T001700Z"


@pytest.mark.parametrize(
    "value",
    [
        UNSIGNED_PAYLOAD,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    ],
)
def test_unsigned_payload_and_streaming_values_accepted(value: str) -> None:
    request = make_request("PUT", key_path("k"))
    auth = S3SigV4Auth(Credentials(ACCESS_KEY, SECRET), "s3", "us-east-1")
    auth.payload = lambda _request: value  # type: ignore[method-assign]  # what SDKs put there
    auth.add_auth(request)
    assert Signed(request).verify().content_sha256 == value


def test_authorization_without_spaces_after_commas() -> None:
    signed = sign_header()
    signed.headers["authorization"] = signed.headers["authorization"].replace(", ", ",")
    signed.verify()


def test_aws_documentation_get_object_example() -> None:
    headers = {
        "host": "examplebucket.s3.amazonaws.com",
        "range": "bytes=0-9",
        "x-amz-content-sha256": EMPTY_SHA256,
        "x-amz-date": "20130524T000000Z",
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
        "s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    }
    result = verify_request("GET", "/test.txt", "", headers, lambda key: DOC_SECRET, now=DOC_NOW)
    assert result.access_key == DOC_ACCESS_KEY


def test_aws_documentation_streaming_seed_signature() -> None:
    headers = {
        "host": "s3.amazonaws.com",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
        "s3/aws4_request,SignedHeaders=content-encoding;content-length;host;"
        "x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"
        "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "content-length": "66824",
    }
    result = verify_request(
        "PUT", "/examplebucket/chunkObject.txt", "", headers, lambda key: DOC_SECRET, now=DOC_NOW
    )
    assert result.seed_signature == (
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    )
    assert result.content_sha256 == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


def test_auth_result_repr_hides_the_signing_key() -> None:
    result = sign_header().verify()
    assert isinstance(result, AuthResult)
    assert "signing_key" not in repr(result)
    assert len(result.signing_key) == 32


# --- presigned accepted ------------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS)
def test_botocore_presigned_keys_verify(key: str) -> None:
    result = presign("GET", key_path(key)).verify(now=SIGNED_AT + timedelta(minutes=59))
    assert result.presigned
    assert result.content_sha256 == UNSIGNED_PAYLOAD


def test_presigned_with_operation_params_and_signed_headers() -> None:
    signed = presign(
        "PUT",
        key_path("upload part"),
        "partNumber=2&uploadId=a%2Bb%20c",
        headers={"x-amz-meta-color": "blue", "Content-Type": "image/png"},
    )
    assert "x-amz-meta-color" in signed.query.lower()  # in X-Amz-SignedHeaders
    signed.verify()


def test_aws_documentation_presigned_example() -> None:
    query = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
        "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"
        "X-Amz-SignedHeaders=host&X-Amz-Signature="
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    headers = {"host": "examplebucket.s3.amazonaws.com"}
    result = verify_request("GET", "/test.txt", query, headers, lambda k: DOC_SECRET, now=DOC_NOW)
    assert result.presigned


def test_presigned_unsigned_content_sha256_is_reported_but_not_signed() -> None:
    signed = presign("PUT", key_path("k"))
    result = signed.verify(x_amz_content_sha256=EMPTY_SHA256)
    assert result.content_sha256 == EMPTY_SHA256


# --- rejections --------------------------------------------------------------------------------


def test_wrong_secret() -> None:
    error = expect_error("SignatureDoesNotMatch", lambda: sign_header().verify(secret="nope"))
    assert "StringToSign" in error.extra
    assert SECRET not in str(error.extra) and SECRET not in error.message


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("x_amz_meta_color", "red"),
        ("host", "evil.example:9000"),
        ("range", "bytes=0-1"),
        ("x_amz_content_sha256", "a" * 64),
    ],
)
def test_tampered_header(change: str, value: str) -> None:
    signed = sign_header(headers={"x-amz-meta-color": "blue", "Range": "bytes=0-9"})
    expect_error("SignatureDoesNotMatch", lambda: signed.verify(**{change: value}))


def test_tampered_query_path_and_method() -> None:
    signed = sign_header("GET", "/bucket", "list-type=2&prefix=a")
    signed.query = "list-type=2&prefix=b"
    expect_error("SignatureDoesNotMatch", signed.verify)

    signed = sign_header("GET", "/bucket", "uploads")
    signed.query = "uploads&delete"
    expect_error("SignatureDoesNotMatch", signed.verify)

    signed = sign_header("GET", key_path("a+b"))
    signed.path = "/bucket/a%20b"
    expect_error("SignatureDoesNotMatch", signed.verify)

    signed = sign_header("GET", key_path("k"))
    signed.method = "DELETE"
    expect_error("SignatureDoesNotMatch", signed.verify)


def test_tampered_presigned_query() -> None:
    signed = presign("GET", "/bucket", "prefix=a")
    signed.query = signed.query.replace("prefix=a", "prefix=b")
    expect_error("SignatureDoesNotMatch", signed.verify)
    signed = presign("GET", key_path("k"), expires=60)
    signed.query = signed.query.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
    expect_error("SignatureDoesNotMatch", signed.verify)


def test_unknown_access_key() -> None:
    signed = sign_header()
    error = expect_error(
        "InvalidAccessKeyId",
        lambda: verify_request(
            signed.method,
            signed.path,
            signed.query,
            signed.headers,
            lambda k: None,
            now=SIGNED_AT,
        ),
    )
    assert error.extra["AWSAccessKeyId"] == ACCESS_KEY


def test_anonymous() -> None:
    expect_error(
        "AccessDenied",
        lambda: verify_request("GET", "/bucket/key", "", {"host": HOST}, lookup()),
        "Anonymous access is denied",
    )


def test_signature_version_2_is_refused() -> None:
    message = "Signature Version 2 is not supported; use Signature Version 4"
    headers = {"host": HOST, "authorization": "AWS AKID:c2lnbmF0dXJl"}
    expect_error("AccessDenied", lambda: verify_request("GET", "/", "", headers, lookup()), message)
    query = "AWSAccessKeyId=AKID&Expires=1700000000&Signature=abc%3D"
    expect_error(
        "AccessDenied",
        lambda: verify_request("GET", "/b/k", query, {"host": HOST}, lookup()),
        message,
    )


@pytest.mark.parametrize("seconds", [-901, 901, 3600])
def test_clock_skew(seconds: int) -> None:
    signed = sign_header()
    error = expect_error(
        "RequestTimeTooSkewed", lambda: signed.verify(now=SIGNED_AT + timedelta(seconds=seconds))
    )
    assert error.extra["MaxAllowedSkewMilliseconds"] == "900000"


def test_skew_within_limit_is_fine() -> None:
    sign_header().verify(now=SIGNED_AT + timedelta(seconds=899))
    sign_header().verify(now=SIGNED_AT - timedelta(seconds=899))


def test_expired_presigned_url() -> None:
    signed = presign(expires=60)
    signed.verify(now=SIGNED_AT + timedelta(seconds=60))
    expect_error(
        "AccessDenied",
        lambda: signed.verify(now=SIGNED_AT + timedelta(seconds=61)),
        "Request has expired",
    )


def test_presigned_url_from_the_future() -> None:
    signed = presign()
    expect_error(
        "AccessDenied",
        lambda: signed.verify(now=SIGNED_AT - timedelta(hours=1)),
        "Request is not valid yet",
    )


@pytest.mark.parametrize("expires", ["0", "604801", "-5", "1e3", ""])
def test_presigned_expires_out_of_range(expires: str) -> None:
    signed = presign(expires=60)
    signed.query = signed.query.replace("X-Amz-Expires=60", f"X-Amz-Expires={expires}")
    expect_error("AuthorizationQueryParametersError", signed.verify)


@pytest.mark.parametrize(
    "param", ["X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Expires"]
)
def test_presigned_missing_parameter(param: str) -> None:
    signed = presign()
    signed.query = "&".join(p for p in signed.query.split("&") if not p.startswith(param + "="))
    expect_error("AuthorizationQueryParametersError", signed.verify)


def test_presigned_malformed_parameters() -> None:
    cases = {
        "X-Amz-Algorithm=AWS4-HMAC-SHA256": "X-Amz-Algorithm=AWS4-HMAC-SHA1",
        "X-Amz-Date=20261122T001700Z": "X-Amz-Date=2026-11-22",
        "%2Fs3%2F": "%2Fiam%2F",
        "aws4_request": "aws5_request",
    }
    for old, new in cases.items():
        signed = presign()
        assert old in signed.query
        signed.query = signed.query.replace(old, new)
        expect_error("AuthorizationQueryParametersError", signed.verify)


def test_presigned_session_token_refused() -> None:
    signed = presign()
    signed.query += "&X-Amz-Security-Token=tok"
    expect_error("AccessDenied", signed.verify)


def test_header_session_token_refused() -> None:
    request = make_request("GET", "/bucket/key")
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET, "tok"), "s3", "us-east-1").add_auth(request)
    expect_error("AccessDenied", Signed(request).verify)


def test_both_header_and_query_auth() -> None:
    signed = presign()
    signed.headers["authorization"] = sign_header().headers["authorization"]
    expect_error("InvalidArgument", signed.verify)


def test_unsigned_amz_header_refused() -> None:
    error = expect_error("AccessDenied", lambda: sign_header().verify(x_amz_acl="public-read"))
    assert error.extra["HeadersNotSigned"] == "x-amz-acl"
    expect_error("AccessDenied", lambda: presign().verify(x_amz_meta_evil="1"))


def test_missing_content_sha256() -> None:
    signed = sign_header()
    del signed.headers["x-amz-content-sha256"]
    expect_error(
        "InvalidRequest",
        signed.verify,
        "Missing required header for this request: x-amz-content-sha256",
    )


@pytest.mark.parametrize("value", ["A" * 64, "abc", "STREAMING-PAYLOAD", "unsigned-payload"])
def test_invalid_content_sha256(value: str) -> None:
    expect_error("InvalidArgument", lambda: sign_header().verify(x_amz_content_sha256=value))


def test_ecdsa_streaming_not_implemented() -> None:
    value = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER"
    expect_error("NotImplemented", lambda: sign_header().verify(x_amz_content_sha256=value))


def test_missing_date() -> None:
    signed = sign_header()
    del signed.headers["x-amz-date"]
    expect_error("AccessDenied", signed.verify)
    expect_error("AccessDenied", lambda: sign_header().verify(x_amz_date="yesterday"))


def test_scope_date_must_match_request_date() -> None:
    signed = sign_header()
    signed.headers["authorization"] = signed.headers["authorization"].replace(
        "/20261122/", "/20261121/"
    )
    expect_error("AuthorizationHeaderMalformed", signed.verify)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/s3/", "/iam/"),
        ("aws4_request", "aws4_reqest"),
        ("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA512 "),
        ("SignedHeaders=", "Headers="),
        ("Signature=", "Signature=zz"),
        (", Signature=", ", Signature=00, Signature="),
        ("SignedHeaders=host;", "SignedHeaders="),
        ("Credential=" + ACCESS_KEY + "/", "Credential="),
    ],
)
def test_malformed_authorization_header(old: str, new: str) -> None:
    signed = sign_header()
    assert old in signed.headers["authorization"]
    signed.headers["authorization"] = signed.headers["authorization"].replace(old, new, 1)
    expect_error("AuthorizationHeaderMalformed", signed.verify)


def test_sigv4a_not_implemented() -> None:
    headers = {"host": HOST, "authorization": "AWS4-ECDSA-P256-SHA256 Credential=x"}
    expect_error("NotImplemented", lambda: verify_request("GET", "/", "", headers, lookup()))


def test_secret_lookup_not_called_for_malformed_requests() -> None:
    calls: list[str] = []
    signed = sign_header()
    del signed.headers["x-amz-content-sha256"]
    with pytest.raises(S3Error):
        verify_request(
            signed.method, signed.path, "", signed.headers, lambda k: calls.append(k) or SECRET
        )
    assert calls == []


# --- canonical forms ---------------------------------------------------------------------------


def test_canonical_uri_decodes_once_and_reencodes() -> None:
    assert canonical_uri("") == "/"
    assert canonical_uri("/b/%7e%e2%82%ac!(x)") == "/b/~%E2%82%AC%21%28x%29"
    assert canonical_uri("/b/a%2Bb+c") == "/b/a%2Bb%2Bc"  # '+' in a path is a plus
    assert canonical_uri("/b/%2541") == "/b/%2541"  # not decoded twice


def test_canonical_query_sorting_and_exclusion() -> None:
    pairs = [(b"b", b"2"), (b"a", b"z"), (b"a", b"1"), (b"X-Amz-Signature", b"s"), (b"c d", b"")]
    assert canonical_query(pairs, exclude=b"X-Amz-Signature") == "a=1&a=z&b=2&c%20d="


def test_constant_time_comparison_is_total():
    """Any received text compares (non-ASCII, lone surrogates, bytes against str)."""
    from holdfast.consttime import same

    assert same("abc", "abc") and same(b"abc", "abc")
    assert not same("abc", "ab\u00e9")
    assert not same("\ud800", "x") and same("\ud800", "\ud800")
    assert not same("\u00e9", b"\xe9")  # compared as UTF-8
