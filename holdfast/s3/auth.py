"""AWS Signature Version 4 verification for the S3 front end (sans-IO).

The front end hands over a request exactly as it arrived (method, raw path, raw query, headers)
and gets back either an :class:`AuthResult` or an :class:`~holdfast.s3.errors.S3Error`. Nothing
here reads a body: for a signed payload the caller compares the body's SHA-256 with
``AuthResult.content_sha256``, and for ``aws-chunked`` bodies it feeds
:class:`holdfast.s3.chunked.AwsChunkedDecoder`, which uses the chunk helpers at the end of this
module.

Canonicalisation choices, and why:

* Path: decoded once and re-encoded with the S3 rule (every byte except ``A-Z a-z 0-9 - . _ ~ /``
  becomes ``%XX``), never double-encoded and never dot-normalised. S3 is the one AWS service
  that signs the path single-encoded, and clients differ in which characters they leave raw
  on the wire (``!``, ``(``, ``%7E``...), so the wire form itself cannot be used.
* Query: ``+`` is a space, as in HTML form encoding. minio-go (and everything built on it) sends
  a space as ``+`` and signs it as ``%20``; botocore, the AWS SDKs and s3cmd always send a
  literal plus as ``%2B``, so they are unaffected. AWS S3, MinIO and Garage all read ``+`` as a
  space. The router must decode the query the same way, so :func:`parse_query` is exported
  for it.
* Header values are trimmed and runs of spaces and tabs collapsed, as botocore does. The
  canonical request is hashed as UTF-8 of the header values as given, so the caller should
  decode header bytes as latin-1 (what HTTP clients encode ``str`` headers with).

Failures never carry the secret key or the derived signing key; ``AuthResult`` hides its
signing key from ``repr`` so it cannot leak through a log line either.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

from holdfast.caching import few_params, short_lru_cache
from holdfast.consttime import same
from holdfast.s3.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_PAYLOAD_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600  # one week, the S3 limit

_CHUNK_ALGORITHM = "AWS4-HMAC-SHA256-PAYLOAD"
_TRAILER_ALGORITHM = "AWS4-HMAC-SHA256-TRAILER"
_ECDSA_ALGORITHM = "AWS4-ECDSA-P256-SHA256"
_ECDSA_STREAMING_PREFIX = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"
_PAYLOAD_KEYWORDS = frozenset(
    {
        UNSIGNED_PAYLOAD,
        STREAMING_PAYLOAD,
        STREAMING_PAYLOAD_TRAILER,
        STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    }
)

_HEADER_ERROR = "AuthorizationHeaderMalformed"
_QUERY_ERROR = "AuthorizationQueryParametersError"

_SIGNATURE_HEX = re.compile(r"[0-9a-f]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_SCOPE_DATE = re.compile(r"\d{8}")
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_BLANKS = re.compile(r"[ \t]+")

_PRESIGNED_REQUIRED = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
# Any one of these in the query means the client meant query-string (presigned) auth.
_PRESIGNED_MARKERS = frozenset(name.encode() for name in _PRESIGNED_REQUIRED)
_SIGNATURE_PARAM = b"X-Amz-Signature"
# Any of these in a query makes a request a signed one (SigV4 or SigV2), valid or not.
_SIGNED_QUERY_NAMES = ("X-Amz-", "AWSAccessKeyId", "Signature")
_TOKEN_PARAM = b"X-Amz-Security-Token"

# x-amz-* headers that are bound by the string to sign even when a client leaves them out of
# SignedHeaders: the payload hash line is x-amz-content-sha256, and the timestamp line is
# x-amz-date. Every other x-amz-* header must be signed, or it could be injected (into a
# presigned URL, say) without the key holder's consent; S3 rejects those requests too.
_BOUND_WITHOUT_SIGNING = frozenset({"x-amz-content-sha256", "x-amz-date"})


@dataclass(frozen=True)
class AuthResult:
    """A request whose signature checked out, plus what streaming-body checks need."""

    access_key: str
    signing_key: bytes = field(repr=False)  # derived kSigning; needed for chunk signatures
    seed_signature: str  # the request's own signature: "previous signature" of chunk 1
    amz_date: str  # e.g. "20261122T001700Z"
    scope: str  # e.g. "20261122/us-east-1/s3/aws4_request"
    content_sha256: str  # x-amz-content-sha256, or UNSIGNED-PAYLOAD for presigned URLs
    presigned: bool


# Whole queries up to this long are cached (a presigned URL's is ~450 characters; a listing's
# with a long prefix a few thousand): holdfast/caching.py.
QUERY_CACHE_MAX_LEN = 2048


@dataclass(frozen=True)
class _Credential:
    access_key: str
    date: str
    region: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{SERVICE}/{TERMINATOR}"


@dataclass(frozen=True)
class _Claim:
    """What a request says about its own signature. Nothing in here is trusted yet."""

    credential: _Credential
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    payload_hash: str  # last line of the canonical request
    content_sha256: str  # what the body must be checked against, later
    presigned: bool


# --- public entry point ------------------------------------------------------------------------


# How far a request's signing time may be from the server's clock (S3: 15 minutes).
MAX_SKEW_SECONDS = 900


def verify_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    *,
    now: datetime | None = None,
    max_skew_seconds: int = MAX_SKEW_SECONDS,
) -> AuthResult:
    """Authenticate one request signed with SigV4, by header or by presigned URL.

    ``raw_path`` and ``raw_query`` must be exactly what was on the request line: the signature
    covers the client's encoding, so anything decoded by a framework first may not verify.
    ``headers`` has lower-cased names. ``lookup_secret`` is called at most once, only after the
    request is well formed, so junk requests never reach the user store.
    """
    now = now or datetime.now(UTC)
    query = _split_query(raw_query)
    names = {name for name, _ in query}
    authorization = headers.get("authorization")
    presigned = bool(names & _PRESIGNED_MARKERS)

    if authorization is not None and presigned:
        raise S3Error(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
            ArgumentName="Authorization",
        )
    if authorization is not None:
        claim = _claim_from_header(authorization, headers, now, max_skew_seconds)
    elif presigned:
        claim = _claim_from_query(query, headers, now, max_skew_seconds)
    elif b"AWSAccessKeyId" in names and b"Signature" in names:
        raise _sigv2_refused()
    else:
        raise S3Error("AccessDenied", "Anonymous access is denied")

    if "x-amz-security-token" in headers or _TOKEN_PARAM in names:
        raise S3Error("AccessDenied", "Temporary credentials (session tokens) are not supported")
    _require_signed_amz_headers(headers, claim.signed_headers)

    access_key = claim.credential.access_key
    secret = lookup_secret(access_key)
    if secret is None:
        raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=access_key)

    canonical = canonical_request(
        method,
        canonical_uri(raw_path),
        canonical_query(query, exclude=_SIGNATURE_PARAM if claim.presigned else None),
        _canonical_headers(headers, claim.signed_headers),
        ";".join(claim.signed_headers),
        claim.payload_hash,
    )
    string_to_sign = _request_string_to_sign(claim.amz_date, claim.credential.scope, canonical)
    signing_key = derive_signing_key(secret, claim.credential.date, claim.credential.region)
    expected = _hmac_hex(signing_key, string_to_sign)
    if not same(expected, claim.signature):
        raise S3Error(
            "SignatureDoesNotMatch",
            AWSAccessKeyId=access_key,
            StringToSign=string_to_sign,
            SignatureProvided=claim.signature,
        )
    return AuthResult(
        access_key=access_key,
        signing_key=signing_key,
        seed_signature=claim.signature,
        amz_date=claim.amz_date,
        scope=claim.credential.scope,
        content_sha256=claim.content_sha256,
        presigned=claim.presigned,
    )


# --- streaming (aws-chunked) signatures --------------------------------------------------------


def chunk_string_to_sign(auth: AuthResult, previous_signature: str, chunk_sha256_hex: str) -> str:
    """String to sign for one STREAMING-AWS4-HMAC-SHA256-PAYLOAD chunk.

    Each chunk signs the previous chunk's signature, so chunks cannot be dropped, reordered or
    spliced in from another upload. The empty-string hash stands where a header hash would go;
    S3 defines it so.
    """
    return "\n".join(
        (
            _CHUNK_ALGORITHM,
            auth.amz_date,
            auth.scope,
            previous_signature,
            EMPTY_SHA256,
            chunk_sha256_hex,
        )
    )


def chunk_signature(auth: AuthResult, previous_signature: str, chunk_sha256_hex: str) -> str:
    """Signature of one payload chunk (lower-case hex)."""
    return _hmac_hex(
        auth.signing_key, chunk_string_to_sign(auth, previous_signature, chunk_sha256_hex)
    )


def canonical_trailer(trailers: Mapping[str, str]) -> bytes:
    """The bytes a trailer signature covers: ``name:value\\n`` per trailer, sorted by name.

    This is the wire text with LF instead of CRLF and without x-amz-trailer-signature, as the
    AWS SDKs (CRT, .NET) and the AWS documentation's example sign it.
    """
    return "".join(f"{name}:{value}\n" for name, value in sorted(trailers.items())).encode()


def trailer_signature(auth: AuthResult, previous_signature: str, trailer_bytes: bytes) -> str:
    """Signature of the trailer section; ``previous_signature`` is the final 0-size chunk's.

    ``trailer_bytes`` is :func:`canonical_trailer` of the received trailers.
    """
    string_to_sign = "\n".join(
        (
            _TRAILER_ALGORITHM,
            auth.amz_date,
            auth.scope,
            previous_signature,
            hashlib.sha256(trailer_bytes).hexdigest(),
        )
    )
    return _hmac_hex(auth.signing_key, string_to_sign)


# --- canonical request pieces (public so tests and tools can show them) ------------------------


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """Decode a raw query the way the signature check does (``+`` is a space).

    Parameters without ``=`` get an empty value; empty segments are skipped. Invalid UTF-8 is
    an InvalidArgument, since S3 keys and parameters are UTF-8.
    """
    try:
        return [(name.decode(), value.decode()) for name, value in _split_query(raw_query)]
    except UnicodeDecodeError:
        raise S3Error("InvalidArgument", "The query string is not valid UTF-8") from None


def canonical_uri(raw_path: str) -> str:
    """The path as S3 signs it: decoded once, re-encoded once, ``/`` kept."""
    if not raw_path:
        return "/"
    return quote(unquote_to_bytes(raw_path), safe="/")


def canonical_query(pairs: Iterable[tuple[bytes, bytes]], *, exclude: bytes | None = None) -> str:
    """Strictly re-encoded ``name=value`` pairs, sorted by encoded name, then encoded value."""
    encoded = sorted(
        (_strict_quote(name), _strict_quote(value)) for name, value in pairs if name != exclude
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers_block: str,
    signed_headers: str,
    payload_hash: str,
) -> str:
    """Join the canonical request; ``headers_block`` ends with a newline, as SigV4 requires."""
    return "\n".join((method, uri, query, headers_block, signed_headers, payload_hash))


# The region is the client's text (only the access key must be known to get here): a long
# one is derived each time rather than kept.
@short_lru_cache(maxsize=1024, max_len=256)
def derive_signing_key(secret: str, date: str, region: str) -> bytes:
    """kSigning = HMAC chain over date, region, service and terminator.

    The chain scopes a key to one day, region and service, so a leaked signing key is worth
    much less than the secret it came from. Cached: the key changes once a day per user,
    and four HMACs per request are a measurable share of a small GET.
    """
    key = f"AWS4{secret}".encode()
    for part in (date, region, SERVICE, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


# --- header auth -------------------------------------------------------------------------------


def _claim_from_header(
    authorization: str, headers: Mapping[str, str], now: datetime, max_skew_seconds: int
) -> _Claim:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm == "AWS":
        raise _sigv2_refused()
    if algorithm == _ECDSA_ALGORITHM:
        raise S3Error("NotImplemented", "Signature Version 4A is not supported")
    if algorithm != ALGORITHM:
        raise S3Error(_HEADER_ERROR, f"Unsupported authorization type {algorithm!r}")

    fields = _authorization_fields(rest)
    credential = _parse_credential(fields["Credential"], _HEADER_ERROR)
    signed_headers = _parse_signed_headers(fields["SignedHeaders"], _HEADER_ERROR)
    signature = _parse_signature(fields["Signature"], _HEADER_ERROR)
    amz_date, when = _header_date(headers)
    _check_scope_date(credential, amz_date, _HEADER_ERROR)
    _check_skew(when, now, max_skew_seconds, amz_date)

    content_sha256 = headers.get("x-amz-content-sha256")
    if content_sha256 is None:
        raise S3Error(
            "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
        )
    _check_content_sha256(content_sha256)
    return _Claim(
        credential=credential,
        signed_headers=signed_headers,
        signature=signature,
        amz_date=amz_date,
        payload_hash=content_sha256,
        content_sha256=content_sha256,
        presigned=False,
    )


def _authorization_fields(rest: str) -> dict[str, str]:
    """Split ``Credential=..., SignedHeaders=..., Signature=...`` (spaces after commas optional)."""
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name in fields:
            raise S3Error(_HEADER_ERROR, "The authorization header is malformed")
        fields[name] = value.strip()
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise S3Error(
            _HEADER_ERROR,
            "The authorization header must have exactly Credential, SignedHeaders and Signature",
        )
    return fields


def _header_date(headers: Mapping[str, str]) -> tuple[str, datetime]:
    """Request time from x-amz-date, else from Date (ISO 8601 basic or RFC 1123)."""
    amz_date = headers.get("x-amz-date")
    if amz_date is not None:
        when = parse_amz_date(amz_date)
    else:
        when = _parse_http_date(headers.get("date", ""))
    if when is None:
        raise S3Error(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        )
    return when.strftime(_AMZ_DATE_FORMAT), when


def _parse_http_date(value: str) -> datetime | None:
    when = parse_amz_date(value)
    if when is not None:
        return when
    try:
        when = parsedate_to_datetime(value)
        # astimezone overflows past year 9999 ("Fri, 31 Dec 9999 23:59:59 -2359": once a 500)
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _check_skew(when: datetime, now: datetime, max_skew_seconds: int, amz_date: str) -> None:
    # A bounded window limits how long a captured request can be replayed.
    if abs((when - now).total_seconds()) > max_skew_seconds:
        raise S3Error(
            "RequestTimeTooSkewed",
            RequestTime=amz_date,
            ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            MaxAllowedSkewMilliseconds=str(max_skew_seconds * 1000),
        )


def _check_content_sha256(value: str) -> None:
    if value in _PAYLOAD_KEYWORDS or _SIGNATURE_HEX.fullmatch(value):
        return
    if value.startswith(_ECDSA_STREAMING_PREFIX):
        raise S3Error("NotImplemented", "Signature Version 4A streaming uploads are not supported")
    raise S3Error(
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-UNSIGNED-PAYLOAD-TRAILER "
        "or a valid sha256 value.",
        ArgumentName="x-amz-content-sha256",
        ArgumentValue=value[:100],
    )


# --- presigned (query-string) auth -------------------------------------------------------------


def _claim_from_query(
    query: list[tuple[bytes, bytes]],
    headers: Mapping[str, str],
    now: datetime,
    max_skew_seconds: int,
) -> _Claim:
    params = _presigned_params(query)
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise S3Error(_QUERY_ERROR, 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    credential = _parse_credential(params["X-Amz-Credential"], _QUERY_ERROR)
    signed_headers = _parse_signed_headers(params["X-Amz-SignedHeaders"], _QUERY_ERROR)
    signature = _parse_signature(params["X-Amz-Signature"], _QUERY_ERROR)
    amz_date = params["X-Amz-Date"]
    when = parse_amz_date(amz_date)
    if when is None:
        raise S3Error(
            _QUERY_ERROR, "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
        )
    expires = _parse_expires(params["X-Amz-Expires"])
    _check_scope_date(credential, amz_date, _QUERY_ERROR)
    _check_validity_window(when, expires, now, max_skew_seconds)

    # The URL cannot commit to a body it has not seen, so the canonical request says
    # UNSIGNED-PAYLOAD unless the client also signed an x-amz-content-sha256 header. An unsigned
    # one is still passed on: checking the body against it can only reject more.
    content_sha256 = headers.get("x-amz-content-sha256")
    payload_hash = UNSIGNED_PAYLOAD
    if content_sha256 is not None:
        _check_content_sha256(content_sha256)
        if "x-amz-content-sha256" in signed_headers:
            payload_hash = content_sha256
    return _Claim(
        credential=credential,
        signed_headers=signed_headers,
        signature=signature,
        amz_date=amz_date,
        payload_hash=payload_hash,
        content_sha256=content_sha256 or UNSIGNED_PAYLOAD,
        presigned=True,
    )


def _presigned_params(query: list[tuple[bytes, bytes]]) -> dict[str, str]:
    wanted = {name.encode(): name for name in _PRESIGNED_REQUIRED}
    params: dict[str, str] = {}
    for raw_name, raw_value in query:
        name = wanted.get(raw_name)
        if name is None:
            continue
        if name in params:
            raise S3Error(_QUERY_ERROR, f"{name} must appear only once")
        try:
            params[name] = raw_value.decode()
        except UnicodeDecodeError:
            raise S3Error(_QUERY_ERROR, f"{name} is not valid UTF-8") from None
    if len(params) != len(_PRESIGNED_REQUIRED):
        raise S3Error(
            _QUERY_ERROR,
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
            "and X-Amz-Expires parameters.",
        )
    return params


def _parse_expires(value: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise S3Error(_QUERY_ERROR, "X-Amz-Expires should be a number")
    expires = int(value)
    if expires < 1:
        raise S3Error(_QUERY_ERROR, "X-Amz-Expires must be at least 1 second")
    if expires > MAX_PRESIGNED_EXPIRES:
        raise S3Error(
            _QUERY_ERROR, "X-Amz-Expires must be less than a week (in seconds) that is 604800"
        )
    return expires


def _check_validity_window(
    when: datetime, expires: int, now: datetime, max_skew_seconds: int
) -> None:
    if (when - now).total_seconds() > max_skew_seconds:
        raise S3Error("AccessDenied", "Request is not valid yet")
    expiry = when + timedelta(seconds=expires)
    if now > expiry:
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            **{
                "X-Amz-Expires": str(expires),
                "Expires": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "ServerTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )


# --- shared parsing ----------------------------------------------------------------------------


@short_lru_cache(maxsize=1024, max_len=256)  # the same few credentials, request after request
def _parse_credential(value: str, error_code: str) -> _Credential:
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or not parts[0]:
        raise S3Error(
            error_code, "Credential must have the form <key>/<YYYYMMDD>/<region>/s3/aws4_request"
        )
    access_key, date, region, service, terminator = parts
    if not _SCOPE_DATE.fullmatch(date):
        raise S3Error(error_code, f"Invalid credential date {date!r}")
    if not region:
        raise S3Error(error_code, "The credential scope has no region")
    if service != SERVICE:
        raise S3Error(
            error_code, f'incorrect service "{service}". This endpoint belongs to "{SERVICE}".'
        )
    if terminator != TERMINATOR:
        raise S3Error(
            error_code,
            f'incorrect terminal "{terminator}". This endpoint uses "{TERMINATOR}".',
        )
    return _Credential(access_key=access_key, date=date, region=region)


@short_lru_cache(maxsize=1024, max_len=512)
def _parse_signed_headers(value: str, error_code: str) -> tuple[str, ...]:
    names = tuple(value.split(";"))
    if not all(names) or any(name != name.strip().lower() for name in names):
        raise S3Error(error_code, "SignedHeaders must be lower-case names separated by ';'")
    if "host" not in names:
        raise S3Error(error_code, "The host header must be signed")
    return names


def _parse_signature(value: str, error_code: str) -> str:
    if not _SIGNATURE_HEX.fullmatch(value):
        raise S3Error(error_code, "The signature must be 64 lower-case hexadecimal characters")
    return value


def parse_amz_date(value: str) -> datetime | None:
    if not _AMZ_DATE.fullmatch(value):
        return None
    try:  # by hand: strptime is a measurable share of a small request
        return datetime(
            int(value[0:4]), int(value[4:6]), int(value[6:8]),
            int(value[9:11]), int(value[11:13]), int(value[13:15]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return None


def _check_scope_date(credential: _Credential, amz_date: str, error_code: str) -> None:
    if credential.date != amz_date[:8]:
        raise S3Error(error_code, "Invalid credential date. Date is not the same as X-Amz-Date.")


def _require_signed_amz_headers(headers: Mapping[str, str], signed: tuple[str, ...]) -> None:
    unsigned = sorted(
        name
        for name in headers
        if name.startswith("x-amz-") and name not in signed and name not in _BOUND_WITHOUT_SIGNING
    )
    if unsigned:
        raise S3Error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            HeadersNotSigned=", ".join(unsigned),
        )


def _sigv2_refused() -> S3Error:
    return S3Error("AccessDenied", "Signature Version 2 is not supported; use Signature Version 4")


# --- canonicalisation helpers ------------------------------------------------------------------


@short_lru_cache(maxsize=1024, max_len=QUERY_CACHE_MAX_LEN, worth=few_params)
def _split_query(raw_query: str) -> tuple[tuple[bytes, bytes], ...]:
    """Cached: the front end decodes the query for routing and the signature check then
    splits the very same string again; a presigned PUT's query is unique, but not twice."""
    return tuple(_query_pair(segment) for segment in raw_query.split("&") if segment)


# Cached: a presigned URL's parameters other than its signature (algorithm, credential,
# expiry, signed headers, and within a second the date) repeat from one URL to the next, so
# most segments of a query seen for the first time have been decoded and encoded before.
@short_lru_cache(maxsize=4096, max_len=512)
def _query_pair(segment: str) -> tuple[bytes, bytes]:
    name, _, value = segment.partition("=")
    return _form_unquote(name), _form_unquote(value)


def _form_unquote(text: str) -> bytes:
    if "%" not in text and "+" not in text:
        return text.encode()
    return unquote_to_bytes(text.replace("+", " "))


_UNRESERVED = re.compile(rb"[A-Za-z0-9._~-]*")


@short_lru_cache(maxsize=4096, max_len=512)
def _strict_quote(value: bytes) -> str:
    """RFC 3986 encoding of everything but unreserved characters; most names and values
    need none, and skipping ``quote`` for them matters on small requests."""
    if _UNRESERVED.fullmatch(value):
        return value.decode("ascii")
    return quote(value, safe="")


def _canonical_headers(headers: Mapping[str, str], signed_headers: tuple[str, ...]) -> str:
    # A signed header that is absent canonicalises as empty; the signature then fails unless
    # the client really signed an empty value, which is the same thing.
    return "".join(f"{name}:{_trim(headers.get(name, ''))}\n" for name in signed_headers)


def _trim(value: str) -> str:
    return _BLANKS.sub(" ", value.strip(" \t"))


def _request_string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def _hmac_hex(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def is_anonymous(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    """True for a request with no signature at all: no Authorization header and no signing
    parameter in the query. Such a request is decided by the bucket's policy and ACLs; a
    request that tries to sign and fails is never treated as anonymous."""
    if "authorization" in headers:
        return False
    return not any(name.startswith(_SIGNED_QUERY_NAMES) for name in query)
