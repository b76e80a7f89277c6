"""POST object: browser form uploads (multipart/form-data) with a signed policy document, as
boto3's ``generate_presigned_post`` and S3's HTML forms make them.

The form is parsed incrementally (python-multipart's push parser): the fields before the
``file`` part are collected (bounded: ``MAX_FIELDS_BYTES``), the policy's signature and every
condition are checked, and only then does the file part stream into the store like any PUT
body, digested and written block by block, never held whole. ``content-length-range`` is
enforced while it streams; anything refused raises before the commit, so nothing is stored.
Fields after the file part are ignored, as on S3.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from python_multipart.multipart import MultipartParser, parse_options_header

from holdfast.checksums import BodyVerifier, ExpectedChecksums, VerifiedBody
from holdfast.consttime import same
from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord
from holdfast.s3 import access
from holdfast.s3.auth import derive_signing_key, parse_amz_date
from holdfast.s3.body import IncomingBody
from holdfast.s3.http import Request, Response
from holdfast.s3.ops import objectlock
from holdfast.s3.ops.access import apply_request_acl
from holdfast.s3.ops.buckets import xml_response
from holdfast.s3.ops.common import MAX_METADATA_BYTES, MAX_PUT_SIZE, Context, validate_key
from holdfast.s3.ops.objects import DEFAULT_ALGORITHM, new_record, receive, sealing_for

MAX_FIELDS_BYTES = 64 * 1024  # every field before the file, the policy (S3: 20 KiB) included
# Fields that need no condition in the policy (S3's list).
EXEMPT = {
    "policy",
    "x-amz-signature",
    "signature",
    "awsaccesskeyid",
    "file",
    "x-amz-credential",
    "x-amz-algorithm",
    "x-amz-date",
    "x-amz-security-token",
}
STORED_FIELDS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "expires",
)


def is_post_object(request: Request) -> bool:
    return (
        request.method == "POST"
        and request.key is None
        and request.bucket is not None
        and not request.raw_query
        and request.headers.get("content-type", "").lower().startswith("multipart/form-data")
    )


def _denied(reason: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {reason}")


class Form:
    """The form's fields, then its file part as a stream of bytes."""

    def __init__(self, request: Request) -> None:
        ctype, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if not boundary:
            raise S3Error(
                "MalformedPOSTRequest",
                "The body of your POST request is not well-formed multipart/form-data.",
            )
        self.raw = IncomingBody(
            request,
            None,
            ExpectedChecksums(None, None, None, None),
            MAX_PUT_SIZE + MAX_FIELDS_BYTES,
        )
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_type: str | None = None
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._value = bytearray()
        self._field_bytes = 0
        self._in_file = False
        self._file_started = False
        self._file_done = False
        self._pending: list[bytes] = []
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": lambda d, s, e: self._header_name.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )
        self._chunks = self.raw.chunks()

    # -- parser callbacks --------------------------------------------------------------------

    def _part_begin(self) -> None:
        self._headers = {}
        self._value = bytearray()

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).decode("latin-1").lower()] = bytes(
            self._header_value
        )
        self._header_name, self._header_value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        if self._file_done or self._file_started:
            return
        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self._name = name
        if name.lower() == "file":
            self._in_file = self._file_started = True
            self.filename = params.get(b"filename", b"").decode("utf-8", "replace")
            self.file_type = self._headers.get("content-type", b"").decode("latin-1") or None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file_done:
            return
        if self._in_file:
            self._pending.append(bytes(data[start:end]))
            return
        self._field_bytes += end - start
        if self._field_bytes > MAX_FIELDS_BYTES:
            raise S3Error(
                "MaxPostPreDataLengthExceeded",
                "Your POST request fields preceding the upload file were too large.",
            )
        self._value += data[start:end]

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file, self._file_done = False, True
        elif not self._file_started:
            name = self._name.lower()
            if name in self.fields:
                raise S3Error("InvalidArgument", f"The field {self._name} appears more than once.")
            self.fields[name] = self._value.decode("utf-8", "replace")

    # -- reading -----------------------------------------------------------------------------

    async def _feed_next(self) -> bool:
        try:
            raw = await self._chunks.__anext__()
        except StopAsyncIteration:
            return False
        try:
            self.parser.write(raw)
        except S3Error:
            raise
        except Exception:
            raise S3Error(
                "MalformedPOSTRequest",
                "The body of your POST request is not well-formed multipart/form-data.",
            ) from None
        return True

    async def read_fields(self) -> None:
        """Up to the start of the file part."""
        while not self._file_started:
            if not await self._feed_next():
                raise S3Error(
                    "InvalidArgument",
                    "POST requires exactly one file upload per request.",
                    ArgumentName="file",
                )

    async def file(self) -> AsyncIterator[bytes]:
        while True:
            while self._pending:
                yield self._pending.pop(0)
            if self._file_done:
                break
            if not await self._feed_next():
                raise S3Error("IncompleteBody")
        async for _ in self._chunks:  # the rest of the form is read and ignored
            pass


class FormBody:
    """The file part as a body source: digested, with content-length-range enforced."""

    def __init__(self, form: Form, low: int, high: int) -> None:
        self.form = form
        self.low, self.high = low, high
        self.size = 0
        self.verifier = BodyVerifier(
            ExpectedChecksums(None, None, None, None), default_algorithm=DEFAULT_ALGORITHM
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        async for piece in self.form.file():
            self.size += len(piece)
            if self.size > self.high:
                raise S3Error(
                    "EntityTooLarge",
                    "Your proposed upload exceeds the maximum allowed size",
                    MaxSizeAllowed=str(self.high),
                )
            yield piece
        if self.size < self.low:
            raise S3Error(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                MinSizeAllowed=str(self.low),
            )

    def update(self, data: bytes) -> None:
        self.verifier.update(data)

    def finish(self) -> VerifiedBody:
        return self.verifier.finish({})


def _decode_policy(text: str) -> dict:
    try:
        doc = json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("conditions"), list):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid 'conditions' value.")
    if not isinstance(doc.get("expiration"), str):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Policy missing expiration.")
    return doc


def _expired(expiration: str) -> bool:
    try:
        when = datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    except ValueError:
        raise S3Error(
            "InvalidPolicyDocument", "Invalid Policy: Invalid 'expiration' value."
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp() < time.time()


async def _authenticate(ctx: Context, fields: dict[str, str]) -> tuple[str, str, dict]:
    """The user whose secret signed the policy, the access key it signed with, and the
    policy."""
    policy_b64 = fields.get("policy")
    assert policy_b64 is not None
    users = ctx.service.users
    if "x-amz-signature" in fields:
        if fields.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
            raise S3Error(
                "InvalidArgument", "Unsupported x-amz-algorithm.", ArgumentName="x-amz-algorithm"
            )
        parts = fields.get("x-amz-credential", "").split("/")
        if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
            raise S3Error(
                "InvalidArgument", "Malformed x-amz-credential.", ArgumentName="x-amz-credential"
            )
        when = parse_amz_date(fields.get("x-amz-date", ""))
        if when is None or when.strftime("%Y%m%d") != parts[1]:
            raise S3Error("InvalidArgument", "Malformed x-amz-date.", ArgumentName="x-amz-date")
        access_key = parts[0]
        user = await users.lookup(access_key)
        if user is None:
            raise S3Error("InvalidAccessKeyId")
        key = derive_signing_key(user.secret_key, parts[1], parts[2])
        expected = hmac.new(key, policy_b64.encode(), hashlib.sha256).hexdigest()
        given = fields["x-amz-signature"]
    elif "signature" in fields:
        access_key = fields.get("awsaccesskeyid", "")
        user = await users.lookup(access_key)
        if user is None:
            raise S3Error("InvalidAccessKeyId")
        digest = hmac.new(user.secret_key.encode(), policy_b64.encode(), hashlib.sha1).digest()
        expected, given = base64.b64encode(digest).decode(), fields["signature"]
    else:
        raise S3Error("AccessDenied", "The POST form carries no signature.")
    if not same(expected, given):
        raise S3Error("SignatureDoesNotMatch")
    return user.name, access_key, _decode_policy(policy_b64)


def _check_conditions(ctx: Context, policy: dict, fields: dict[str, str]) -> tuple[int, int]:
    """Every condition holds and every field is covered by one; (min, max) length."""
    if _expired(policy["expiration"]):
        raise _denied("Policy expired.")
    values = {**fields, "bucket": ctx.bucket}
    covered = set()
    low, high = 0, MAX_PUT_SIZE
    for cond in policy["conditions"]:
        if isinstance(cond, dict) and len(cond) == 1:
            (name, want), op = next(iter(cond.items())), "eq"
        elif isinstance(cond, list) and len(cond) == 3 and isinstance(cond[0], str):
            op = cond[0].lower()
            if op == "content-length-range":
                try:
                    low, high = int(cond[1]), int(cond[2])
                except (TypeError, ValueError):
                    raise S3Error(
                        "InvalidPolicyDocument", "Invalid Policy: Invalid content-length-range."
                    ) from None
                continue
            if not isinstance(cond[1], str) or not cond[1].startswith("$"):
                raise S3Error(
                    "InvalidPolicyDocument", f"Invalid Policy: Invalid condition {cond!r}."
                )
            name, want = cond[1][1:], cond[2]
        else:
            raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid Condition.")
        if op not in ("eq", "starts-with") or not isinstance(want, str):
            raise S3Error(
                "InvalidPolicyDocument", f"Invalid Policy: Invalid condition operator {op!r}."
            )
        name = name.lower()
        covered.add(name)
        have = values.get(name, "")
        ok = have == want if op == "eq" else have.startswith(want)
        if not ok:
            raise _denied(f'Policy Condition failed: ["{op}", "${name}", "{want}"]')
    extra = [
        n for n in fields if n not in EXEMPT and n not in covered and not n.startswith("x-ignore-")
    ]
    if extra:
        raise _denied(f"Extra input fields: {extra[0]}")
    return low, high


async def post_object(ctx: Context) -> Response:
    """A form upload. Signed (a policy document and its signature) or, where the bucket's
    policy or ACL lets everyone write, unsigned; either way the one access decision
    (holdfast/s3/access.py) decides s3:PutObject on the key, as for a PUT, with the signer
    as the caller. The bucket's CORS rules answer the browser, errors included."""
    request = ctx.request
    index = ctx.service.node.index
    state = await access.load(index, ctx.bucket)  # NoSuchBucket before the body is read
    request.cors = state.docs.get(access.CORS)
    form = Form(request)
    await form.read_fields()
    fields = form.fields
    low, high = 0, MAX_PUT_SIZE
    if "policy" in fields:
        request.user, request.access_key, policy = await _authenticate(ctx, fields)
        low, high = _check_conditions(ctx, policy, fields)
    elif "signature" in fields or "x-amz-signature" in fields:
        raise S3Error("InvalidArgument", "Bucket POST must contain a field named 'policy'.")
    if "key" not in fields:
        raise S3Error(
            "InvalidArgument", "Bucket POST must contain a field named 'key'.", ArgumentName="key"
        )
    key = fields["key"].replace("${filename}", form.filename or "")
    if not key:
        raise S3Error(
            "InvalidArgument", "User key must have a length greater than 0.", ArgumentName="key"
        )
    validate_key(key)
    request.key = key
    if "acl" in fields:  # a canned ACL, read (and tested by s3:x-amz-acl) as the PUT header
        request.headers["x-amz-acl"] = fields["acl"]
    decision = await access.decide_object(index, request, "s3:PutObject", ctx.bucket, key, state)
    request.decision = decision.reason
    if not decision.allowed:
        raise S3Error("AccessDenied")
    request.owner = state.owner  # the object is the bucket owner's, whoever wrote it
    meta = {n[len("x-amz-meta-") :]: v for n, v in fields.items() if n.startswith("x-amz-meta-")}
    if sum(len(k.encode()) + len(v.encode()) for k, v in meta.items()) > MAX_METADATA_BYTES:
        raise S3Error("MetadataTooLarge")
    attrs = ObjectRecord(
        bucket=ctx.bucket,
        key=key,
        size=0,
        etag="",
        last_modified=0,
        segments=[],
        content_type=fields.get("content-type") or form.file_type or "binary/octet-stream",
        headers={n: fields[n] for n in STORED_FIELDS if n in fields},
        meta=meta,
    )
    await apply_request_acl(ctx, attrs.headers)
    await objectlock.apply_default_retention(ctx, attrs)
    if any(n.startswith("x-amz-server-side-encryption-") for n in fields):
        raise S3Error(
            "NotImplemented", "SSE-C and SSE-KMS fields in POST forms are not implemented."
        )
    if "x-amz-server-side-encryption" in fields:  # read as the PUT header is
        ctx.request.headers["x-amz-server-side-encryption"] = fields["x-amz-server-side-encryption"]
    body = FormBody(form, low, high)
    sealing = await sealing_for(ctx, body, bucket_checked=True)  # the field, else the default
    received = await receive(ctx, body, None, sealing)
    record = new_record(ctx, received, attrs, sealing)
    record.origin = "Post"  # event notifications: s3:ObjectCreated:Post
    await ctx.service.objects.commit(record, owner=state.owner)
    return _answer(ctx, fields, record)


def _answer(ctx: Context, fields: dict[str, str], record: ObjectRecord) -> Response:
    location = f"/{ctx.bucket}/{quote(record.key)}"
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect:
        parts = urlsplit(redirect)
        if parts.scheme in ("http", "https"):
            extra = urlencode({"bucket": ctx.bucket, "key": record.key, "etag": record.etag})
            query = f"{parts.query}&{extra}" if parts.query else extra
            target = urlunsplit(parts._replace(query=query))
            return Response(303, [("Location", target), ("ETag", record.etag)])
    status = fields.get("success_action_status", "204")
    if status == "201":
        response = xml_response(
            "PostResponse",
            [
                ("Location", location),
                ("Bucket", ctx.bucket),
                ("Key", record.key),
                ("ETag", record.etag),
            ],
        )
        response.status = 201
    else:
        response = Response(200 if status == "200" else 204)
    response.headers += [("ETag", record.etag), ("Location", location)]
    return response
