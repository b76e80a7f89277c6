"""Request -> S3 operation.

S3 distinguishes operations by method, by whether a bucket and key are named, by sub-resource
query parameters and by a few headers. Every request maps to exactly one Operation; anything
S3 defines that Holdfast does not implement maps to NOT_IMPLEMENTED, never to a neighbour that
would answer with a wrong success.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Operation(enum.Enum):
    LIST_BUCKETS = "ListBuckets"
    CREATE_BUCKET = "CreateBucket"
    HEAD_BUCKET = "HeadBucket"
    DELETE_BUCKET = "DeleteBucket"
    GET_BUCKET_LOCATION = "GetBucketLocation"
    GET_BUCKET_VERSIONING = "GetBucketVersioning"
    GET_BUCKET_ACL = "GetBucketAcl"
    LIST_OBJECTS = "ListObjects"
    LIST_OBJECTS_V2 = "ListObjectsV2"
    LIST_MULTIPART_UPLOADS = "ListMultipartUploads"
    DELETE_OBJECTS = "DeleteObjects"
    PUT_OBJECT = "PutObject"
    COPY_OBJECT = "CopyObject"
    GET_OBJECT = "GetObject"
    HEAD_OBJECT = "HeadObject"
    DELETE_OBJECT = "DeleteObject"
    GET_OBJECT_ACL = "GetObjectAcl"
    CREATE_MULTIPART_UPLOAD = "CreateMultipartUpload"
    UPLOAD_PART = "UploadPart"
    UPLOAD_PART_COPY = "UploadPartCopy"
    COMPLETE_MULTIPART_UPLOAD = "CompleteMultipartUpload"
    ABORT_MULTIPART_UPLOAD = "AbortMultipartUpload"
    LIST_PARTS = "ListParts"
    NOT_IMPLEMENTED = "NotImplemented"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"


# Query parameters that are plain arguments of an operation, never a sub-resource.
ARGUMENTS = frozenset(
    {
        "prefix", "delimiter", "marker", "max-keys", "encoding-type", "continuation-token",
        "start-after", "fetch-owner", "list-type", "partNumber", "uploadId", "max-parts",
        "part-number-marker", "key-marker", "upload-id-marker", "max-uploads", "x-id",
        "response-content-type", "response-content-language", "response-expires",
        "response-cache-control", "response-content-disposition", "response-content-encoding",
        "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token",
        "X-Amz-Content-Sha256", "x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm",
        "max-buckets", "bucket-region", "AWSAccessKeyId", "Signature", "Expires",
    }
)  # fmt: skip

# Sub-resources Holdfast answers; every other name in the query is treated as a sub-resource
# it does not implement.
HANDLED = frozenset({"location", "versioning", "acl", "uploads", "delete"})


def _subresource(query: Mapping[str, str]) -> str | None:
    """The one sub-resource named, '' for none, None when it is one we do not implement."""
    names = [name for name in query if name not in ARGUMENTS]
    if not names:
        return ""
    if len(names) == 1 and names[0] in HANDLED:
        return names[0]
    if names == ["versionId"] and query["versionId"] in ("", "null"):
        return ""
    return None


def resolve(
    method: str, bucket: str | None, key: str | None, query: Mapping[str, str], copy: bool
) -> Operation:
    sub = _subresource(query)
    if sub is None:
        return Operation.NOT_IMPLEMENTED
    if bucket is None:
        return Operation.LIST_BUCKETS if method == "GET" and not sub else _not_allowed(method)
    if key is None:
        return _bucket_operation(method, sub, query)
    return _object_operation(method, sub, query, copy)


def _not_allowed(method: str) -> Operation:
    known = {"GET", "PUT", "POST", "DELETE", "HEAD"}
    return Operation.METHOD_NOT_ALLOWED if method in known else Operation.NOT_IMPLEMENTED


def _bucket_operation(method: str, sub: str, query: Mapping[str, str]) -> Operation:
    table = {
        ("GET", "location"): Operation.GET_BUCKET_LOCATION,
        ("GET", "versioning"): Operation.GET_BUCKET_VERSIONING,
        ("GET", "acl"): Operation.GET_BUCKET_ACL,
        ("GET", "uploads"): Operation.LIST_MULTIPART_UPLOADS,
        ("PUT", ""): Operation.CREATE_BUCKET,
        ("HEAD", ""): Operation.HEAD_BUCKET,
        ("DELETE", ""): Operation.DELETE_BUCKET,
        ("POST", "delete"): Operation.DELETE_OBJECTS,
    }
    if method == "GET" and sub == "":
        if query.get("list-type") == "2":
            return Operation.LIST_OBJECTS_V2
        return Operation.LIST_OBJECTS
    op = table.get((method, sub))
    if op is not None:
        return op
    return Operation.NOT_IMPLEMENTED if sub else _not_allowed(method)


def _object_operation(method: str, sub: str, query: Mapping[str, str], copy: bool) -> Operation:
    upload = "uploadId" in query
    if method == "PUT" and sub == "":
        if upload and "partNumber" in query:
            return Operation.UPLOAD_PART_COPY if copy else Operation.UPLOAD_PART
        return Operation.COPY_OBJECT if copy else Operation.PUT_OBJECT
    if method == "GET" and sub == "":
        return Operation.LIST_PARTS if upload else Operation.GET_OBJECT
    if method == "GET" and sub == "acl":
        return Operation.GET_OBJECT_ACL
    if method == "HEAD" and sub == "":
        return Operation.HEAD_OBJECT
    if method == "DELETE" and sub == "":
        return Operation.ABORT_MULTIPART_UPLOAD if upload else Operation.DELETE_OBJECT
    if method == "POST" and sub == "uploads":
        return Operation.CREATE_MULTIPART_UPLOAD
    if method == "POST" and sub == "" and upload:
        return Operation.COMPLETE_MULTIPART_UPLOAD
    return Operation.NOT_IMPLEMENTED if sub or method == "POST" else _not_allowed(method)
