"""Object lock end to end with boto3 over HTTP and HTTPS (the core also on PostgreSQL:
tests/e2e/test_postgres_core.py imports them): CreateBucket with the lock enables versioning
and the lock, Put/GetObjectLockConfiguration, versioning cannot be suspended, retention and
legal hold on PUT, copy and per version, deletes refused (COMPLIANCE for everyone, GOVERNANCE
unless the owner bypasses), the bucket's default retention, and the lock headers on multipart
create."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.test_bucket_configs import client_error, code_status, other  # noqa: F401
from tests.e2e.test_buckets import bucket_name

ENABLED_ONLY = {"ObjectLockEnabled": "Enabled"}


@pytest.fixture
def locked(s3) -> str:
    name = bucket_name()
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def test_create_bucket_with_lock_enables_versioning_and_lock(s3, locked):
    assert s3.get_bucket_versioning(Bucket=locked)["Status"] == "Enabled"
    got = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
    assert got == ENABLED_ONLY
    v1 = s3.put_object(Bucket=locked, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=locked, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2
    assert s3.get_object(Bucket=locked, Key="k", VersionId=v1)["Body"].read() == b"one"
    # S3 keeps versioning on in a lock-enabled bucket.
    err = client_error(
        lambda: s3.put_bucket_versioning(
            Bucket=locked, VersioningConfiguration={"Status": "Suspended"}
        )
    )
    assert code_status(err) == ("InvalidBucketState", 409)
    assert s3.get_bucket_versioning(Bucket=locked)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=locked, VersioningConfiguration={"Status": "Enabled"})


def test_put_object_lock_configuration(s3, other, locked, bucket):  # noqa: F811
    s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration=ENABLED_ONLY)
    got = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
    assert got == ENABLED_ONLY
    # A bucket created without the lock cannot get one.
    err = client_error(
        lambda: s3.put_object_lock_configuration(
            Bucket=bucket, ObjectLockConfiguration=ENABLED_ONLY
        )
    )
    assert code_status(err) == ("InvalidBucketState", 409)
    err = client_error(lambda: s3.get_object_lock_configuration(Bucket=bucket))
    assert code_status(err) == ("ObjectLockConfigurationNotFoundError", 404)
    # Missing and foreign buckets.
    err = client_error(
        lambda: s3.put_object_lock_configuration(
            Bucket=bucket_name(), ObjectLockConfiguration=ENABLED_ONLY
        )
    )
    assert code_status(err) == ("NoSuchBucket", 404)
    err = client_error(lambda: other.get_object_lock_configuration(Bucket=locked))
    assert code_status(err) == ("AccessDenied", 403)
    err = client_error(
        lambda: other.put_object_lock_configuration(
            Bucket=locked, ObjectLockConfiguration=ENABLED_ONLY
        )
    )
    assert code_status(err) == ("AccessDenied", 403)


@pytest.mark.parametrize(
    "config,code",
    [
        (
            {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE"}}},
            "MalformedXML",
        ),
        (
            {
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}},
            },
            "MalformedXML",
        ),
        (
            {
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 0}},
            },
            "InvalidArgument",
        ),
    ],
    ids=["no-period", "both-periods", "zero-days"],
)
def test_bad_lock_configuration_changes_nothing(s3, locked, config, code):
    err = client_error(
        lambda: s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration=config)
    )
    assert code_status(err)[0] == code
    got = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
    assert got == ENABLED_ONLY


def test_default_retention_applies_to_new_versions(s3, locked):
    rule = {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
    }
    before = s3.put_object(Bucket=locked, Key="k", Body=b"before")["VersionId"]
    s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration=rule)
    assert s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"] == rule
    start = datetime.now(UTC)
    plain = s3.put_object(Bucket=locked, Key="k", Body=b"x")["VersionId"]
    head = s3.head_object(Bucket=locked, Key="k", VersionId=plain)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert start + timedelta(days=1) - timedelta(minutes=1) < until
    assert until < datetime.now(UTC) + timedelta(days=1, minutes=1)
    err = client_error(lambda: s3.delete_object(Bucket=locked, Key="k", VersionId=plain))
    assert code_status(err) == ("AccessDenied", 403)
    # A version written before the rule keeps no retention.
    assert "ObjectLockMode" not in s3.head_object(Bucket=locked, Key="k", VersionId=before)
    # A legal hold alone still gets the default retention; an explicit retention wins.
    held = s3.put_object(Bucket=locked, Key="h", Body=b"x", ObjectLockLegalHoldStatus="ON")
    head = s3.head_object(Bucket=locked, Key="h", VersionId=held["VersionId"])
    assert (head["ObjectLockMode"], head["ObjectLockLegalHoldStatus"]) == ("GOVERNANCE", "ON")
    mine = future(3).replace(microsecond=0)
    explicit = s3.put_object(
        Bucket=locked,
        Key="e",
        Body=b"x",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=mine,
    )
    head = s3.head_object(Bucket=locked, Key="e", VersionId=explicit["VersionId"])
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("COMPLIANCE", mine)
    # A copy is a new version: it gets the default too.
    copy = s3.copy_object(Bucket=locked, Key="c", CopySource={"Bucket": locked, "Key": "k"})
    head = s3.head_object(Bucket=locked, Key="c", VersionId=copy["VersionId"])
    assert head["ObjectLockMode"] == "GOVERNANCE"
    # The owner may bypass GOVERNANCE; without the rule new versions have no retention.
    s3.delete_object(Bucket=locked, Key="k", VersionId=plain, BypassGovernanceRetention=True)
    s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration=ENABLED_ONLY)
    later = s3.put_object(Bucket=locked, Key="k", Body=b"y")["VersionId"]
    assert "ObjectLockMode" not in s3.head_object(Bucket=locked, Key="k", VersionId=later)


def _multipart(s3, bucket: str, key: str, **lock) -> str:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **lock)["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"part")
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    return done["VersionId"]


def test_lock_headers_on_multipart_upload(s3, locked, bucket):
    until = future(2).replace(microsecond=0)
    vid = _multipart(
        s3,
        locked,
        "m",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
        ObjectLockLegalHoldStatus="ON",
    )
    head = s3.head_object(Bucket=locked, Key="m", VersionId=vid)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] == until
    assert head["ObjectLockLegalHoldStatus"] == "ON"
    assert not any(h.startswith("x-holdfast") for h in head["ResponseMetadata"]["HTTPHeaders"])
    for bypass in (False, True):
        err = client_error(
            lambda b=bypass: s3.delete_object(
                Bucket=locked, Key="m", VersionId=vid, BypassGovernanceRetention=b
            )
        )
        assert code_status(err) == ("AccessDenied", 403)
    # Without headers the bucket's default retention applies at completion.
    rule = {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Years": 1}},
    }
    s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration=rule)
    plain = _multipart(s3, locked, "p")
    head = s3.head_object(Bucket=locked, Key="p", VersionId=plain)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=364)
    # Refused as on PutObject, and nothing is created: no lock on the bucket, a past date.
    err = client_error(
        lambda: s3.create_multipart_upload(Bucket=bucket, Key="m", ObjectLockLegalHoldStatus="ON")
    )
    assert code_status(err) == ("InvalidRequest", 400)
    err = client_error(
        lambda: s3.create_multipart_upload(
            Bucket=locked,
            Key="old",
            ObjectLockMode="GOVERNANCE",
            ObjectLockRetainUntilDate=datetime.now(UTC) - timedelta(days=1),
        )
    )
    assert code_status(err) == ("InvalidArgument", 400)
    for name in (bucket, locked):
        assert "Uploads" not in s3.list_multipart_uploads(Bucket=name)


def future(days: float = 1) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def test_retention_on_put_protects_the_version(s3, locked):
    until = future().replace(microsecond=0)
    put = s3.put_object(
        Bucket=locked,
        Key="k",
        Body=b"locked",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )
    vid = put["VersionId"]
    head = s3.head_object(Bucket=locked, Key="k")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] == until
    got = s3.get_object(Bucket=locked, Key="k", VersionId=vid)
    assert got["ObjectLockMode"] == "COMPLIANCE"
    assert s3.get_object_retention(Bucket=locked, Key="k", VersionId=vid)["Retention"] == {
        "Mode": "COMPLIANCE",
        "RetainUntilDate": until,
    }
    # Nobody may delete it, not even with the bypass (COMPLIANCE has none).
    for bypass in (False, True):
        err = client_error(
            lambda b=bypass: s3.delete_object(
                Bucket=locked, Key="k", VersionId=vid, BypassGovernanceRetention=b
            )
        )
        assert code_status(err) == ("AccessDenied", 403)
        assert err.response["Error"]["Message"] == (
            "Access Denied because object protected by object lock."
        )
    # DeleteObjects refuses it per key.
    out = s3.delete_objects(
        Bucket=locked, Delete={"Objects": [{"Key": "k", "VersionId": vid}], "Quiet": True}
    )
    assert [e["Code"] for e in out["Errors"]] == ["AccessDenied"]
    # A DELETE without a version id writes a delete marker, as S3 allows; the version stays.
    marker = s3.delete_object(Bucket=locked, Key="k")
    assert marker["DeleteMarker"]
    assert s3.get_object(Bucket=locked, Key="k", VersionId=vid)["Body"].read() == b"locked"
    # COMPLIANCE: only extended, never shortened or weakened.
    for retention in (
        {"Mode": "COMPLIANCE", "RetainUntilDate": until - timedelta(hours=1)},
        {"Mode": "GOVERNANCE", "RetainUntilDate": until + timedelta(days=1)},
    ):
        err = client_error(
            lambda r=retention: s3.put_object_retention(
                Bucket=locked, Key="k", VersionId=vid, Retention=r, BypassGovernanceRetention=True
            )
        )
        assert code_status(err) == ("AccessDenied", 403)
    later = until + timedelta(days=2)
    s3.put_object_retention(
        Bucket=locked,
        Key="k",
        VersionId=vid,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later},
    )
    got = s3.get_object_retention(Bucket=locked, Key="k", VersionId=vid)["Retention"]
    assert got["RetainUntilDate"] == later
    # The bucket cannot be deleted while it holds the version.
    err = client_error(lambda: s3.delete_bucket(Bucket=locked))
    assert code_status(err)[0] == "BucketNotEmpty"


def test_governance_bypass_by_the_owner_only(s3, other, locked):  # noqa: F811
    until = future()
    vid = s3.put_object(
        Bucket=locked,
        Key="g",
        Body=b"g",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=until,
    )["VersionId"]
    err = client_error(lambda: s3.delete_object(Bucket=locked, Key="g", VersionId=vid))
    assert code_status(err) == ("AccessDenied", 403)
    # Shortening GOVERNANCE needs the bypass too.
    shorter = {"Mode": "GOVERNANCE", "RetainUntilDate": until - timedelta(hours=1)}
    err = client_error(
        lambda: s3.put_object_retention(Bucket=locked, Key="g", VersionId=vid, Retention=shorter)
    )
    assert code_status(err) == ("AccessDenied", 403)
    s3.put_object_retention(
        Bucket=locked, Key="g", VersionId=vid, Retention=shorter, BypassGovernanceRetention=True
    )
    # Another user gets AccessDenied with or without the bypass (not the bucket's owner).
    err = client_error(
        lambda: other.delete_object(
            Bucket=locked, Key="g", VersionId=vid, BypassGovernanceRetention=True
        )
    )
    assert code_status(err) == ("AccessDenied", 403)
    s3.delete_object(Bucket=locked, Key="g", VersionId=vid, BypassGovernanceRetention=True)
    assert s3.list_object_versions(Bucket=locked, Prefix="g").get("Versions") is None


def test_copy_takes_its_own_lock_never_the_sources(s3, locked):
    until = future().replace(microsecond=0)
    s3.put_object(
        Bucket=locked,
        Key="src",
        Body=b"s",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
        ObjectLockLegalHoldStatus="ON",
    )
    plain = s3.copy_object(Bucket=locked, Key="plain", CopySource={"Bucket": locked, "Key": "src"})
    head = s3.head_object(Bucket=locked, Key="plain")
    assert "ObjectLockMode" not in head and "ObjectLockLegalHoldStatus" not in head
    s3.delete_object(Bucket=locked, Key="plain", VersionId=plain["VersionId"])
    held = s3.copy_object(
        Bucket=locked,
        Key="held",
        CopySource={"Bucket": locked, "Key": "src"},
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=until,
    )
    head = s3.head_object(Bucket=locked, Key="held")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("GOVERNANCE", until)
    err = client_error(
        lambda: s3.delete_object(Bucket=locked, Key="held", VersionId=held["VersionId"])
    )
    assert code_status(err) == ("AccessDenied", 403)


def test_legal_hold(s3, locked):
    vid = s3.put_object(Bucket=locked, Key="h", Body=b"h", ObjectLockLegalHoldStatus="ON")[
        "VersionId"
    ]
    assert s3.head_object(Bucket=locked, Key="h")["ObjectLockLegalHoldStatus"] == "ON"
    assert s3.get_object_legal_hold(Bucket=locked, Key="h")["LegalHold"] == {"Status": "ON"}
    err = client_error(
        lambda: s3.delete_object(
            Bucket=locked, Key="h", VersionId=vid, BypassGovernanceRetention=True
        )
    )
    assert code_status(err) == ("AccessDenied", 403)
    err = client_error(lambda: s3.get_object_retention(Bucket=locked, Key="h", VersionId=vid))
    assert code_status(err) == ("NoSuchObjectLockConfiguration", 404)
    s3.put_object_legal_hold(Bucket=locked, Key="h", VersionId=vid, LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=locked, Key="h", VersionId=vid)["LegalHold"] == {
        "Status": "OFF"
    }
    s3.delete_object(Bucket=locked, Key="h", VersionId=vid)
    # Later versions are held on their own: a plain PUT is not held.
    s3.put_object(Bucket=locked, Key="h2", Body=b"x")
    assert s3.get_object_legal_hold(Bucket=locked, Key="h2")["LegalHold"] == {"Status": "OFF"}


def test_bad_lock_requests_change_nothing(s3, bucket, locked):
    # Lock headers on a bucket without the lock.
    err = client_error(
        lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockLegalHoldStatus="ON")
    )
    assert code_status(err) == ("InvalidRequest", 400)
    # A date in the past, a mode without a date.
    err = client_error(
        lambda: s3.put_object(
            Bucket=locked,
            Key="k",
            Body=b"x",
            ObjectLockMode="GOVERNANCE",
            ObjectLockRetainUntilDate=future(-1),
        )
    )
    assert code_status(err) == ("InvalidArgument", 400)
    err = client_error(
        lambda: s3.put_object(Bucket=locked, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE")
    )
    assert code_status(err) == ("InvalidArgument", 400)
    assert "Versions" not in s3.list_object_versions(Bucket=locked)
    # Retention of a missing key or version.
    err = client_error(lambda: s3.get_object_retention(Bucket=locked, Key="nope"))
    assert code_status(err)[1] == 404
