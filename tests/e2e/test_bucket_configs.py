"""Bucket configurations Holdfast does not store yet answer as S3 does for a bucket without
one: each Get its own "not configured" 404 (or S3's default), each Delete 204, each Put 501;
and GetObjectAttributes. boto3 with default settings, over HTTP and HTTPS."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

from tests.conftest import unique
from tests.e2e.test_auth_modes import assert_s3_error, signed_request
from tests.e2e.test_buckets import add_user, bucket_name

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
MiB = 1024 * 1024


@pytest.fixture
def other(server):
    ak, sk = add_user(server, f"other-{server.port}")
    return server.client(ak, sk)


# (boto3 method, sub-resource, error code, message): the Get operations of configurations
# that a bucket has none of until one is put.
NOT_CONFIGURED = [
    ("get_bucket_policy", "policy", "NoSuchBucketPolicy", "The bucket policy does not exist"),
    (
        "get_bucket_policy_status",
        "policyStatus",
        "NoSuchBucketPolicy",
        "The bucket policy does not exist",
    ),
    (
        "get_bucket_cors",
        "cors",
        "NoSuchCORSConfiguration",
        "The CORS configuration does not exist",
    ),
    (
        "get_bucket_lifecycle_configuration",
        "lifecycle",
        "NoSuchLifecycleConfiguration",
        "The lifecycle configuration does not exist",
    ),
    (
        "get_bucket_lifecycle",
        "lifecycle",
        "NoSuchLifecycleConfiguration",
        "The lifecycle configuration does not exist",
    ),
    ("get_bucket_tagging", "tagging", "NoSuchTagSet", "The TagSet does not exist"),
    (
        "get_bucket_encryption",
        "encryption",
        "ServerSideEncryptionConfigurationNotFoundError",
        "The server side encryption configuration was not found",
    ),
    (
        "get_bucket_website",
        "website",
        "NoSuchWebsiteConfiguration",
        "The specified bucket does not have a website configuration",
    ),
    (
        "get_object_lock_configuration",
        "object-lock",
        "ObjectLockConfigurationNotFoundError",
        "Object Lock configuration does not exist for this bucket",
    ),
    (
        "get_public_access_block",
        "publicAccessBlock",
        "NoSuchPublicAccessBlockConfiguration",
        "The public access block configuration was not found",
    ),
    (
        "get_bucket_ownership_controls",
        "ownershipControls",
        "OwnershipControlsNotFoundError",
        "The bucket ownership controls were not found",
    ),
    (
        "get_bucket_replication",
        "replication",
        "ReplicationConfigurationNotFoundError",
        "The replication configuration was not found",
    ),
]

DELETES = [
    "delete_bucket_policy",
    "delete_bucket_cors",
    "delete_bucket_lifecycle",
    "delete_bucket_tagging",
    "delete_bucket_website",
    "delete_public_access_block",
    "delete_bucket_ownership_controls",
    "delete_bucket_replication",
]

# boto3 method -> its arguments besides Bucket: each writes a configuration. (Policy, ACL,
# ownership controls and the public access block are stored: tests/e2e/test_access.py; the
# website configuration: tests/e2e/test_website.py; notifications: tests/e2e/test_notify.py;
# the lifecycle configuration: tests/e2e/test_lifecycle.py.)
PUTS = {
    "put_bucket_logging": {"BucketLoggingStatus": {}},
    "put_bucket_accelerate_configuration": {"AccelerateConfiguration": {"Status": "Enabled"}},
    "put_bucket_request_payment": {"RequestPaymentConfiguration": {"Payer": "Requester"}},
}


def client_error(call) -> ClientError:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value


def code_status(err: ClientError) -> tuple[str, int]:
    return err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]


# -- "not configured" ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "sub", "code", "message"), NOT_CONFIGURED, ids=[c[0] for c in NOT_CONFIGURED]
)
def test_get_answers_not_configured(s3, bucket, method, sub, code, message):
    err = client_error(lambda: getattr(s3, method)(Bucket=bucket))
    assert code_status(err) == (code, 404)
    assert err.response["Error"]["Message"] == message
    assert err.response["Error"]["BucketName"] == bucket


def test_not_configured_error_xml(server, s3, bucket):
    """The raw answer: S3 error XML with the code, message, bucket name and request id."""
    for _, sub, code, message in NOT_CONFIGURED:
        reply = signed_request(server, "GET", f"/{bucket}?{sub}")
        err = assert_s3_error(reply, 404, code)
        assert err["Message"] == message
        assert err["BucketName"] == bucket
        assert err["Resource"] == f"/{bucket}"
        assert reply.headers["content-type"] == "application/xml"


@pytest.mark.parametrize("method", [c[0] for c in NOT_CONFIGURED])
def test_get_config_of_missing_or_foreign_bucket(s3, other, bucket, method):
    missing = bucket_name()
    err = client_error(lambda: getattr(s3, method)(Bucket=missing))
    assert code_status(err) == ("NoSuchBucket", 404)
    err = client_error(lambda: getattr(other, method)(Bucket=bucket))
    assert code_status(err) == ("AccessDenied", 403)


# -- Delete: nothing to delete is 204 ---------------------------------------------------------


def test_delete_config_that_is_not_set_is_204(s3, other, bucket):
    for method in DELETES:
        resp = getattr(s3, method)(Bucket=bucket)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204, method
        err = client_error(lambda m=method: getattr(s3, m)(Bucket=bucket_name()))
        assert err.response["Error"]["Code"] == "NoSuchBucket", method
        err = client_error(lambda m=method: getattr(other, m)(Bucket=bucket))
        assert err.response["Error"]["Code"] == "AccessDenied", method
    # Still nothing configured, and the bucket is whole.
    for method, _, code, _ in NOT_CONFIGURED:
        err = client_error(lambda m=method: getattr(s3, m)(Bucket=bucket))
        assert err.response["Error"]["Code"] == code
    assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


# -- Put: not built yet -----------------------------------------------------------------------


def test_put_config_is_not_implemented_and_changes_nothing(s3, other, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"keep")
    for method, kwargs in PUTS.items():
        err = client_error(lambda m=method, kw=kwargs: getattr(s3, m)(Bucket=bucket, **kw))
        assert code_status(err) == ("NotImplemented", 501), method
        # The bucket is checked first: a missing bucket or another user's bucket says so.
        err = client_error(lambda m=method, kw=kwargs: getattr(s3, m)(Bucket=bucket_name(), **kw))
        assert err.response["Error"]["Code"] == "NoSuchBucket", method
        err = client_error(lambda m=method, kw=kwargs: getattr(other, m)(Bucket=bucket, **kw))
        assert err.response["Error"]["Code"] == "AccessDenied", method
    for method, _, code, _ in NOT_CONFIGURED:
        err = client_error(lambda m=method: getattr(s3, m)(Bucket=bucket))
        assert err.response["Error"]["Code"] == code
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner"
    assert len(s3.get_bucket_acl(Bucket=bucket)["Grants"]) == 1
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"keep"


# -- what S3 answers for a plain bucket ----------------------------------------------------------


def test_plain_bucket_defaults(s3, other, bucket):
    logging = s3.get_bucket_logging(Bucket=bucket)
    assert "LoggingEnabled" not in logging
    notification = s3.get_bucket_notification_configuration(Bucket=bucket)
    for kind in ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations"):
        assert kind not in notification
    assert "Status" not in s3.get_bucket_accelerate_configuration(Bucket=bucket)
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner"
    versioning = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in versioning and "MFADelete" not in versioning
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] is None
    calls = [
        s3.get_bucket_logging,
        s3.get_bucket_notification_configuration,
        s3.get_bucket_accelerate_configuration,
        s3.get_bucket_request_payment,
        s3.get_bucket_versioning,
        s3.get_bucket_acl,
    ]
    for call in calls:
        err = client_error(lambda c=call: c(Bucket=bucket_name()))
        assert err.response["Error"]["Code"] == "NoSuchBucket"
    for name in [c.__name__ for c in calls]:
        err = client_error(lambda n=name: getattr(other, n)(Bucket=bucket))
        assert err.response["Error"]["Code"] == "AccessDenied"


@pytest.mark.parametrize(
    ("sub", "root", "namespace", "children"),
    [
        ("logging", "BucketLoggingStatus", "{http://doc.s3.amazonaws.com/2006-03-01}", {}),
        ("notification", "NotificationConfiguration", S3_NS, {}),
        ("accelerate", "AccelerateConfiguration", S3_NS, {}),
        ("requestPayment", "RequestPaymentConfiguration", S3_NS, {"Payer": "BucketOwner"}),
        ("versioning", "VersioningConfiguration", S3_NS, {}),
    ],
)
def test_plain_bucket_default_xml(server, bucket, sub, root, namespace, children):
    reply = signed_request(server, "GET", f"/{bucket}?{sub}")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/xml"
    doc = ET.fromstring(reply.body)
    assert doc.tag == namespace + root
    assert {el.tag.split("}")[1]: el.text for el in doc} == children


def test_acl_is_owner_full_control(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    owner = s3.list_buckets()["Owner"]
    for acl in (s3.get_bucket_acl(Bucket=bucket), s3.get_object_acl(Bucket=bucket, Key="k")):
        assert acl["Owner"] == owner
        assert acl["Grants"] == [
            {
                "Grantee": {**owner, "Type": "CanonicalUser"},
                "Permission": "FULL_CONTROL",
            }
        ]
    reply = signed_request(server, "GET", f"/{bucket}?acl")
    grantee = ET.fromstring(reply.body).find(
        f"{S3_NS}AccessControlList/{S3_NS}Grant/{S3_NS}Grantee"
    )
    assert grantee is not None
    assert grantee.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "CanonicalUser"


def test_null_version_id_names_the_only_version(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert len(s3.get_object_acl(Bucket=bucket, Key="k", VersionId="null")["Grants"]) == 1
    got = s3.get_object_attributes(
        Bucket=bucket, Key="k", VersionId="null", ObjectAttributes=["ObjectSize"]
    )
    assert got["ObjectSize"] == 1


# -- CreateBucket refuses what it cannot keep ---------------------------------------------------


def test_create_bucket_with_object_lock_disabled_is_a_plain_bucket(s3):
    name = bucket_name()
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=False, ACL="private")
    err = client_error(lambda: s3.get_object_lock_configuration(Bucket=name))
    assert err.response["Error"]["Code"] == "ObjectLockConfigurationNotFoundError"


# -- GetObjectAttributes ----------------------------------------------------------------------

ALL_ATTRIBUTES = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]


def test_object_attributes_of_a_single_put(s3, bucket):
    key = unique()
    body = b"attributes" * 1000
    s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    got = s3.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=ALL_ATTRIBUTES)
    assert got["ETag"] == head["ETag"].strip('"')  # unquoted, as S3 answers it here
    assert got["Checksum"] == {
        "ChecksumSHA256": head["ChecksumSHA256"],
        "ChecksumType": "FULL_OBJECT",
    }
    assert got["StorageClass"] == "STANDARD"
    assert got["ObjectSize"] == len(body)
    assert "ObjectParts" not in got  # a single PUT has no parts
    assert got["LastModified"] == head["LastModified"]


def test_object_attributes_checksum_is_the_stored_one(s3, bucket):
    """boto3 sends its default checksum (CRC32 today); the attribute is what HEAD reports."""
    key = unique()
    s3.put_object(Bucket=bucket, Key=key, Body=b"data")
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    stored = {k: v for k, v in head.items() if k.startswith("Checksum") and k != "ChecksumType"}
    assert len(stored) == 1
    got = s3.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=["Checksum"])
    assert got["Checksum"] == {**stored, "ChecksumType": "FULL_OBJECT"}


def test_object_attributes_only_those_asked_for(s3, bucket):
    key = unique()
    s3.put_object(Bucket=bucket, Key=key, Body=b"12345")
    got = s3.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=["ObjectSize"])
    assert got["ObjectSize"] == 5
    assert not {"ETag", "Checksum", "StorageClass", "ObjectParts"} & set(got)
    got = s3.get_object_attributes(
        Bucket=bucket, Key=key, ObjectAttributes=["ETag", "StorageClass"]
    )
    assert got["StorageClass"] == "STANDARD" and "ObjectSize" not in got


def test_object_attributes_parts_paginate(s3, bucket):
    key = unique("mp-")
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32")
    sizes = [5 * MiB, 5 * MiB, 7]
    parts = []
    for number, size in enumerate(sizes, 1):
        resp = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=bytes([number]) * size,
            ChecksumAlgorithm="CRC32",
        )
        parts.append(
            {"PartNumber": number, "ETag": resp["ETag"], "ChecksumCRC32": resp["ChecksumCRC32"]}
        )
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    got = s3.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=ALL_ATTRIBUTES)
    assert got["ETag"] == done["ETag"].strip('"')
    assert got["ObjectSize"] == sum(sizes)
    # The composite checksum without its "-3" (HEAD and CompleteMultipartUpload carry it).
    assert done["ChecksumCRC32"].endswith("-3")
    assert got["Checksum"]["ChecksumCRC32"] == done["ChecksumCRC32"][: -len("-3")]
    assert got["Checksum"]["ChecksumType"] == "COMPOSITE"
    listed = got["ObjectParts"]
    assert listed["TotalPartsCount"] == 3
    assert listed["IsTruncated"] is False
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [
        (1, 5 * MiB),
        (2, 5 * MiB),
        (3, 7),
    ]

    first = s3.get_object_attributes(
        Bucket=bucket, Key=key, ObjectAttributes=["ObjectParts"], MaxParts=2
    )["ObjectParts"]
    assert [p["PartNumber"] for p in first["Parts"]] == [1, 2]
    assert first["IsTruncated"] is True
    assert first["MaxParts"] == 2
    assert first["NextPartNumberMarker"] == 2
    rest = s3.get_object_attributes(
        Bucket=bucket,
        Key=key,
        ObjectAttributes=["ObjectParts"],
        MaxParts=2,
        PartNumberMarker=first["NextPartNumberMarker"],
    )["ObjectParts"]
    assert [(p["PartNumber"], p["Size"]) for p in rest["Parts"]] == [(3, 7)]
    assert rest["IsTruncated"] is False
    assert rest["PartNumberMarker"] == 2
    assert rest["TotalPartsCount"] == 3


def test_object_attributes_errors(server, s3, other, bucket):
    key = unique()
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    err = client_error(
        lambda: s3.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=["Colour"])
    )
    assert err.response["Error"]["Code"] == "InvalidArgument"
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    err = client_error(
        lambda: s3.get_object_attributes(Bucket=bucket, Key="absent", ObjectAttributes=["ETag"])
    )
    assert code_status(err) == ("NoSuchKey", 404)
    err = client_error(
        lambda: s3.get_object_attributes(Bucket=bucket_name(), Key=key, ObjectAttributes=["ETag"])
    )
    assert err.response["Error"]["Code"] == "NoSuchBucket"
    err = client_error(
        lambda: other.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=["ETag"])
    )
    assert err.response["Error"]["Code"] == "AccessDenied"
    # No attribute named at all, and a part marker that is not a number.
    reply = signed_request(server, "GET", f"/{bucket}/{key}?attributes")
    assert_s3_error(reply, 400, "InvalidArgument")
    reply = signed_request(
        server,
        "GET",
        f"/{bucket}/{key}?attributes",
        headers={"x-amz-object-attributes": "ETag", "x-amz-part-number-marker": "abc"},
    )
    assert_s3_error(reply, 400, "InvalidArgument")


def test_object_attributes_xml(server, s3, bucket):
    key = unique()
    s3.put_object(Bucket=bucket, Key=key, Body=b"xml")
    reply = signed_request(
        server,
        "GET",
        f"/{bucket}/{key}?attributes",
        headers={"x-amz-object-attributes": "ETag,ObjectSize"},
    )
    assert reply.status == 200
    doc = ET.fromstring(reply.body)
    assert doc.tag == f"{S3_NS}GetObjectAttributesResponse"
    assert [el.tag for el in doc] == [f"{S3_NS}ETag", f"{S3_NS}ObjectSize"]
    assert not doc.findtext(f"{S3_NS}ETag").startswith('"')
    assert reply.headers.get("last-modified")


# -- objects: retention and legal hold (tags: tests/e2e/test_tagging.py) ----------------------------------------------------


def test_retention_and_legal_hold_need_object_lock(s3, other, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"keep")
    until = "2099-01-01T00:00:00Z"
    calls = {
        "get_object_retention": {},
        "put_object_retention": {"Retention": {"Mode": "GOVERNANCE", "RetainUntilDate": until}},
        "get_object_legal_hold": {},
        "put_object_legal_hold": {"LegalHold": {"Status": "ON"}},
    }
    for method, kwargs in calls.items():
        err = client_error(lambda m=method, kw=kwargs: getattr(s3, m)(Bucket=bucket, Key="k", **kw))
        assert code_status(err) == ("InvalidRequest", 400), method
        assert err.response["Error"]["Message"] == "Bucket is missing Object Lock Configuration"
        err = client_error(
            lambda m=method, kw=kwargs: getattr(s3, m)(Bucket=bucket_name(), Key="k", **kw)
        )
        assert code_status(err) == ("NoSuchBucket", 404), method
        err = client_error(
            lambda m=method, kw=kwargs: getattr(other, m)(Bucket=bucket, Key="k", **kw)
        )
        assert code_status(err) == ("AccessDenied", 403), method
    # The object can still be deleted: nothing locked it.
    s3.delete_object(Bucket=bucket, Key="k")
