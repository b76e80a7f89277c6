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
    LIST_OBJECT_VERSIONS = "ListObjectVersions"
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
    GET_OBJECT_ATTRIBUTES = "GetObjectAttributes"
    PUT_OBJECT_ACL = "PutObjectAcl"
    GET_OBJECT_TAGGING = "GetObjectTagging"
    PUT_OBJECT_TAGGING = "PutObjectTagging"
    DELETE_OBJECT_TAGGING = "DeleteObjectTagging"
    GET_OBJECT_RETENTION = "GetObjectRetention"
    PUT_OBJECT_RETENTION = "PutObjectRetention"
    GET_OBJECT_LEGAL_HOLD = "GetObjectLegalHold"
    PUT_OBJECT_LEGAL_HOLD = "PutObjectLegalHold"
    PUT_BUCKET_ACL = "PutBucketAcl"
    PUT_BUCKET_VERSIONING = "PutBucketVersioning"
    # Bucket configurations. Each Get answers S3's own "not configured" error (or, where S3
    # has a default, that default); see holdfast/s3/ops/configs.py.
    GET_BUCKET_POLICY = "GetBucketPolicy"
    PUT_BUCKET_POLICY = "PutBucketPolicy"
    DELETE_BUCKET_POLICY = "DeleteBucketPolicy"
    GET_BUCKET_POLICY_STATUS = "GetBucketPolicyStatus"
    GET_BUCKET_CORS = "GetBucketCors"
    PUT_BUCKET_CORS = "PutBucketCors"
    DELETE_BUCKET_CORS = "DeleteBucketCors"
    GET_BUCKET_LIFECYCLE_CONFIGURATION = "GetBucketLifecycleConfiguration"
    PUT_BUCKET_LIFECYCLE_CONFIGURATION = "PutBucketLifecycleConfiguration"
    DELETE_BUCKET_LIFECYCLE = "DeleteBucketLifecycle"
    GET_BUCKET_TAGGING = "GetBucketTagging"
    PUT_BUCKET_TAGGING = "PutBucketTagging"
    DELETE_BUCKET_TAGGING = "DeleteBucketTagging"
    GET_BUCKET_ENCRYPTION = "GetBucketEncryption"
    PUT_BUCKET_ENCRYPTION = "PutBucketEncryption"
    DELETE_BUCKET_ENCRYPTION = "DeleteBucketEncryption"
    GET_BUCKET_WEBSITE = "GetBucketWebsite"
    PUT_BUCKET_WEBSITE = "PutBucketWebsite"
    DELETE_BUCKET_WEBSITE = "DeleteBucketWebsite"
    GET_OBJECT_LOCK_CONFIGURATION = "GetObjectLockConfiguration"
    PUT_OBJECT_LOCK_CONFIGURATION = "PutObjectLockConfiguration"
    GET_PUBLIC_ACCESS_BLOCK = "GetPublicAccessBlock"
    PUT_PUBLIC_ACCESS_BLOCK = "PutPublicAccessBlock"
    DELETE_PUBLIC_ACCESS_BLOCK = "DeletePublicAccessBlock"
    GET_BUCKET_OWNERSHIP_CONTROLS = "GetBucketOwnershipControls"
    PUT_BUCKET_OWNERSHIP_CONTROLS = "PutBucketOwnershipControls"
    DELETE_BUCKET_OWNERSHIP_CONTROLS = "DeleteBucketOwnershipControls"
    GET_BUCKET_REPLICATION = "GetBucketReplication"
    PUT_BUCKET_REPLICATION = "PutBucketReplication"
    DELETE_BUCKET_REPLICATION = "DeleteBucketReplication"
    GET_BUCKET_LOGGING = "GetBucketLogging"
    PUT_BUCKET_LOGGING = "PutBucketLogging"
    GET_BUCKET_NOTIFICATION_CONFIGURATION = "GetBucketNotificationConfiguration"
    PUT_BUCKET_NOTIFICATION_CONFIGURATION = "PutBucketNotificationConfiguration"
    GET_BUCKET_ACCELERATE_CONFIGURATION = "GetBucketAccelerateConfiguration"
    PUT_BUCKET_ACCELERATE_CONFIGURATION = "PutBucketAccelerateConfiguration"
    GET_BUCKET_REQUEST_PAYMENT = "GetBucketRequestPayment"
    PUT_BUCKET_REQUEST_PAYMENT = "PutBucketRequestPayment"
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
        "version-id-marker",
    }
)  # fmt: skip

Op = Operation

# (method, sub-resource) on a bucket -> operation.
BUCKET_OPERATIONS: dict[tuple[str, str], Operation] = {
    ("PUT", ""): Op.CREATE_BUCKET,
    ("HEAD", ""): Op.HEAD_BUCKET,
    ("DELETE", ""): Op.DELETE_BUCKET,
    ("POST", "delete"): Op.DELETE_OBJECTS,
    ("GET", "uploads"): Op.LIST_MULTIPART_UPLOADS,
    ("GET", "versions"): Op.LIST_OBJECT_VERSIONS,
    ("GET", "location"): Op.GET_BUCKET_LOCATION,
    ("GET", "versioning"): Op.GET_BUCKET_VERSIONING,
    ("PUT", "versioning"): Op.PUT_BUCKET_VERSIONING,
    ("GET", "acl"): Op.GET_BUCKET_ACL,
    ("PUT", "acl"): Op.PUT_BUCKET_ACL,
    ("GET", "policy"): Op.GET_BUCKET_POLICY,
    ("PUT", "policy"): Op.PUT_BUCKET_POLICY,
    ("DELETE", "policy"): Op.DELETE_BUCKET_POLICY,
    ("GET", "policyStatus"): Op.GET_BUCKET_POLICY_STATUS,
    ("GET", "cors"): Op.GET_BUCKET_CORS,
    ("PUT", "cors"): Op.PUT_BUCKET_CORS,
    ("DELETE", "cors"): Op.DELETE_BUCKET_CORS,
    ("GET", "lifecycle"): Op.GET_BUCKET_LIFECYCLE_CONFIGURATION,
    ("PUT", "lifecycle"): Op.PUT_BUCKET_LIFECYCLE_CONFIGURATION,
    ("DELETE", "lifecycle"): Op.DELETE_BUCKET_LIFECYCLE,
    ("GET", "tagging"): Op.GET_BUCKET_TAGGING,
    ("PUT", "tagging"): Op.PUT_BUCKET_TAGGING,
    ("DELETE", "tagging"): Op.DELETE_BUCKET_TAGGING,
    ("GET", "encryption"): Op.GET_BUCKET_ENCRYPTION,
    ("PUT", "encryption"): Op.PUT_BUCKET_ENCRYPTION,
    ("DELETE", "encryption"): Op.DELETE_BUCKET_ENCRYPTION,
    ("GET", "website"): Op.GET_BUCKET_WEBSITE,
    ("PUT", "website"): Op.PUT_BUCKET_WEBSITE,
    ("DELETE", "website"): Op.DELETE_BUCKET_WEBSITE,
    ("GET", "object-lock"): Op.GET_OBJECT_LOCK_CONFIGURATION,
    ("PUT", "object-lock"): Op.PUT_OBJECT_LOCK_CONFIGURATION,
    ("GET", "publicAccessBlock"): Op.GET_PUBLIC_ACCESS_BLOCK,
    ("PUT", "publicAccessBlock"): Op.PUT_PUBLIC_ACCESS_BLOCK,
    ("DELETE", "publicAccessBlock"): Op.DELETE_PUBLIC_ACCESS_BLOCK,
    ("GET", "ownershipControls"): Op.GET_BUCKET_OWNERSHIP_CONTROLS,
    ("PUT", "ownershipControls"): Op.PUT_BUCKET_OWNERSHIP_CONTROLS,
    ("DELETE", "ownershipControls"): Op.DELETE_BUCKET_OWNERSHIP_CONTROLS,
    ("GET", "replication"): Op.GET_BUCKET_REPLICATION,
    ("PUT", "replication"): Op.PUT_BUCKET_REPLICATION,
    ("DELETE", "replication"): Op.DELETE_BUCKET_REPLICATION,
    ("GET", "logging"): Op.GET_BUCKET_LOGGING,
    ("PUT", "logging"): Op.PUT_BUCKET_LOGGING,
    ("GET", "notification"): Op.GET_BUCKET_NOTIFICATION_CONFIGURATION,
    ("PUT", "notification"): Op.PUT_BUCKET_NOTIFICATION_CONFIGURATION,
    ("GET", "accelerate"): Op.GET_BUCKET_ACCELERATE_CONFIGURATION,
    ("PUT", "accelerate"): Op.PUT_BUCKET_ACCELERATE_CONFIGURATION,
    ("GET", "requestPayment"): Op.GET_BUCKET_REQUEST_PAYMENT,
    ("PUT", "requestPayment"): Op.PUT_BUCKET_REQUEST_PAYMENT,
}

# (method, sub-resource) on an object -> operation, for the sub-resources (the plain object
# operations depend on more than these two; see _object_operation).
OBJECT_SUBRESOURCES: dict[tuple[str, str], Operation] = {
    ("GET", "acl"): Op.GET_OBJECT_ACL,
    ("PUT", "acl"): Op.PUT_OBJECT_ACL,
    ("GET", "attributes"): Op.GET_OBJECT_ATTRIBUTES,
    ("GET", "tagging"): Op.GET_OBJECT_TAGGING,
    ("PUT", "tagging"): Op.PUT_OBJECT_TAGGING,
    ("DELETE", "tagging"): Op.DELETE_OBJECT_TAGGING,
    ("GET", "retention"): Op.GET_OBJECT_RETENTION,
    ("PUT", "retention"): Op.PUT_OBJECT_RETENTION,
    ("GET", "legal-hold"): Op.GET_OBJECT_LEGAL_HOLD,
    ("PUT", "legal-hold"): Op.PUT_OBJECT_LEGAL_HOLD,
    ("POST", "uploads"): Op.CREATE_MULTIPART_UPLOAD,
}

# Sub-resources Holdfast routes; every other name in the query is treated as a sub-resource
# it does not implement.
HANDLED = frozenset(sub for _, sub in (*BUCKET_OPERATIONS, *OBJECT_SUBRESOURCES) if sub)


# Operations that read, change or remove one version named by ``versionId``; elsewhere a
# version id other than ``null`` answers 501.
VERSIONED = frozenset(
    {
        Operation.GET_OBJECT,
        Operation.HEAD_OBJECT,
        Operation.DELETE_OBJECT,
        Operation.GET_OBJECT_ACL,
        Operation.PUT_OBJECT_ACL,
        Operation.GET_OBJECT_RETENTION,
        Operation.PUT_OBJECT_RETENTION,
        Operation.GET_OBJECT_LEGAL_HOLD,
        Operation.PUT_OBJECT_LEGAL_HOLD,
        Operation.GET_OBJECT_TAGGING,
        Operation.PUT_OBJECT_TAGGING,
        Operation.DELETE_OBJECT_TAGGING,
        Operation.GET_OBJECT_ATTRIBUTES,
    }
)


def _subresource(query: Mapping[str, str]) -> str | None:
    """The one sub-resource named, '' for none, None when it is one we do not implement.
    ``versionId`` is an argument (see VERSIONED)."""
    names = [name for name in query if name not in ARGUMENTS and name != "versionId"]
    if not names:
        return ""
    if len(names) == 1 and names[0] in HANDLED:
        return names[0]
    return None


def resolve(
    method: str, bucket: str | None, key: str | None, query: Mapping[str, str], copy: bool
) -> Operation:
    op = _resolve(method, bucket, key, query, copy)
    if query.get("versionId", "null") not in ("", "null") and op not in VERSIONED:
        return Operation.NOT_IMPLEMENTED
    return op


def _resolve(
    method: str, bucket: str | None, key: str | None, query: Mapping[str, str], copy: bool
) -> Operation:
    sub = _subresource(query)
    if sub is None:
        return Operation.NOT_IMPLEMENTED
    if bucket is None:
        if sub:
            return Operation.NOT_IMPLEMENTED
        return Operation.LIST_BUCKETS if method == "GET" else _not_allowed(method)
    if key is None:
        return _bucket_operation(method, sub, query)
    return _object_operation(method, sub, query, copy)


def _not_allowed(method: str) -> Operation:
    known = {"GET", "PUT", "POST", "DELETE", "HEAD"}
    return Operation.METHOD_NOT_ALLOWED if method in known else Operation.NOT_IMPLEMENTED


def _bucket_operation(method: str, sub: str, query: Mapping[str, str]) -> Operation:
    if method == "GET" and sub == "":
        if query.get("list-type") == "2":
            return Operation.LIST_OBJECTS_V2
        return Operation.LIST_OBJECTS
    op = BUCKET_OPERATIONS.get((method, sub))
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
    if method == "HEAD" and sub == "":
        return Operation.HEAD_OBJECT
    if method == "DELETE" and sub == "":
        return Operation.ABORT_MULTIPART_UPLOAD if upload else Operation.DELETE_OBJECT
    op = OBJECT_SUBRESOURCES.get((method, sub))
    if op is not None:
        return op
    if method == "POST" and sub == "" and upload:
        return Operation.COMPLETE_MULTIPART_UPLOAD
    return Operation.NOT_IMPLEMENTED if sub or method == "POST" else _not_allowed(method)
