"""What every S3 operation handler shares: its context and the object-header vocabulary."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from holdfast.errors import S3Error
from holdfast.index.records import BucketRecord, ObjectRecord
from holdfast.s3 import acl as acls
from holdfast.s3 import tagging
from holdfast.s3.auth import AuthResult
from holdfast.s3.http import Request, Response, http_date
from holdfast.service import Service
from holdfast.service.encryption import META_HEADER, Encryption

MAX_METADATA_BYTES = 2048
# Kept in an object's stored-header map, never sent: its encryption and its ACL.
INTERNAL_HEADERS = frozenset({META_HEADER, acls.STORED_HEADER})
MAX_KEY_BYTES = 1024
MAX_PUT_SIZE = 5 * 1024**3

# Standard headers stored with an object and returned verbatim on GET and HEAD.
STORED_HEADERS = (
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
    "x-amz-website-redirect-location",  # where the website endpoint sends a request for it
)

# Request headers that ask for features Holdfast does not have; silently ignoring them would
# be a wrong success, so they answer NotImplemented.
UNSUPPORTED_HEADERS = (
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
)
GRANT_HEADERS = (
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-full-control",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
)


@dataclass
class Context:
    service: Service
    request: Request
    auth: AuthResult | None

    @property
    def user(self) -> str:
        """The account the operation runs in: the bucket's owner once the access decision
        let the request through (whoever sent it), else the signed caller."""
        user = self.request.owner or self.request.user
        assert user is not None
        return user

    @property
    def caller(self) -> str | None:
        """Who sent the request (None: anonymous)."""
        return self.request.user

    @property
    def bucket(self) -> str:
        assert self.request.bucket is not None
        return self.request.bucket

    @property
    def key(self) -> str:
        assert self.request.key is not None
        return self.request.key

    async def owned_bucket(self) -> BucketRecord:
        """The request's bucket as the access decision read it moments ago (the row that
        decided the request: no second read); read now, and its owner checked, when the
        decision did not read it."""
        record = self.request.bucket_record
        if record is not None and record.name == self.request.bucket:
            return record
        return await self.service.buckets.get_owned(self.user, self.bucket)

    def query_int(self, name: str, default: int, low: int = 0, high: int = 2**31) -> int:
        raw = self.request.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise S3Error(
                "InvalidArgument",
                f"Provided {name} not an integer or within integer range",
                ArgumentName=name,
                ArgumentValue=raw,
            ) from None
        if value < low:
            raise S3Error(
                "InvalidArgument",
                f"Argument {name} must be >= {low}",
                ArgumentName=name,
                ArgumentValue=raw,
            )
        return min(value, high)


def owner_id(user: str) -> str:
    """A stable canonical-user-id-like string for XML Owner elements."""
    return hashlib.sha256(user.encode()).hexdigest()


async def bucket_config(ctx: Context, name: str) -> str | None:
    """One configuration of the request's bucket: from the access decision's read when it
    fetched it (holdfast/s3/access.py OPERATION_CONFIGS), else read now."""
    docs = ctx.request.bucket_configs
    if docs is not None:
        return docs.get(name)
    return await ctx.service.node.index.get_bucket_config(ctx.bucket, name)


def owner_xml(user: str) -> list[tuple[str, str]]:
    return [("ID", owner_id(user)), ("DisplayName", user)]


LOCK_HEADERS = (
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
)


def reject_unsupported_headers(request: Request, acls: bool = False, lock_ok: bool = False) -> None:
    """``acls``: the operation stores ACLs (x-amz-acl and x-amz-grant-* are its own).
    ``lock_ok``: the operation (PutObject, CopyObject) applies the object lock headers."""
    for name in UNSUPPORTED_HEADERS:
        if name in request.headers and not (lock_ok and name in LOCK_HEADERS):
            raise S3Error("NotImplemented", f"The {name} header is not implemented by Holdfast.")
    if acls:
        return
    for name in GRANT_HEADERS:
        if name in request.headers:
            raise S3Error("NotImplemented", f"The {name} header is not implemented by Holdfast.")
    acl = request.headers.get("x-amz-acl")
    if acl is not None and acl not in ("private", "bucket-owner-full-control"):
        raise S3Error("NotImplemented", "Only the private canned ACL is implemented.")


def request_tags(request: Request) -> list[tuple[str, str]]:
    """The tags ``x-amz-tagging`` gives a new object (none without the header)."""
    value = request.headers.get("x-amz-tagging")
    return [] if value is None else tagging.parse_header(value)


def user_metadata(request: Request) -> dict[str, str]:
    meta = {
        name[len("x-amz-meta-") :]: value
        for name, value in request.headers.items()
        if name.startswith("x-amz-meta-")
    }
    size = sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())
    if size > MAX_METADATA_BYTES:
        raise S3Error("MetadataTooLarge", Size=str(size), MaxSizeAllowed=str(MAX_METADATA_BYTES))
    return meta


def stored_headers(request: Request) -> dict[str, str]:
    """The standard headers to keep. aws-chunked is transfer framing, never content
    encoding, so it is stripped from Content-Encoding."""
    headers = {}
    for name in STORED_HEADERS:
        value = request.headers.get(name)
        if value is None:
            continue
        if name == "content-encoding":
            codings = [c.strip() for c in value.split(",") if c.strip().lower() != "aws-chunked"]
            if not codings:
                continue
            value = ",".join(codings)
        if name == "x-amz-website-redirect-location" and (
            not value.startswith(("/", "http://", "https://")) or len(value) > 2048
        ):
            raise S3Error(
                "InvalidRedirectLocation",
                "The website redirect location must have a prefix of 'http://' or 'https://' "
                "or '/'.",
            )
        headers[name] = value
    return headers


def content_type(request: Request) -> str:
    return request.headers.get("content-type") or "binary/octet-stream"


def reject_nul(value: str, what: str) -> None:
    """S3 text (keys, prefixes, markers, tags) never holds NUL: PostgreSQL's ``text`` cannot
    store it, and no client means it. Refused as the client's mistake on both engines, before
    anything is looked up or changed, so an engine never sees it."""
    if "\x00" in value:
        raise S3Error("InvalidArgument", f"{what} must not contain the NUL character.")


def validate_key(key: str) -> None:
    reject_nul(key, "An object key")
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", MaxSizeAllowed=str(MAX_KEY_BYTES), Size=str(size))


def object_headers(obj: ObjectRecord, response: Response, with_checksum: bool) -> None:
    """The headers GET and HEAD share."""
    response.add("ETag", obj.etag)
    response.add("Last-Modified", http_date(obj.last_modified))
    response.add("Content-Type", obj.content_type)
    response.add("Accept-Ranges", "bytes")
    for name, value in obj.headers.items():
        if name not in INTERNAL_HEADERS:  # how it is encrypted, its ACL: never sent
            response.add(name, value)
    for name, value in obj.meta.items():
        response.add(f"x-amz-meta-{name}", value)
    enc = Encryption.from_headers(obj.headers)
    if enc is not None:
        response.headers += enc.response_headers()
    if obj.tags:
        response.add("x-amz-tagging-count", str(len(obj.tags)))
    if with_checksum and obj.checksum_algorithm and obj.checksum_value:
        response.add(f"x-amz-checksum-{obj.checksum_algorithm.lower()}", obj.checksum_value)
        response.add("x-amz-checksum-type", obj.checksum_type or "FULL_OBJECT")
