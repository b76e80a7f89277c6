"""Object lock, the bucket part, end to end with boto3 over HTTP and HTTPS (also on
PostgreSQL: tests/e2e/test_postgres_core.py imports these): CreateBucket with the lock
enables versioning and the lock, Put/GetObjectLockConfiguration, versioning cannot be
suspended, and what is not built yet (default retention, retention and legal hold of a
version, the lock headers on writes) answers 501 and changes nothing."""

from __future__ import annotations

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


def test_what_is_not_built_answers_501(s3, locked):
    """A default retention or a version's retention that Holdfast accepted but did not
    enforce would be a WORM promise broken silently: these answer 501 until they are built."""
    rule = {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
    }
    err = client_error(
        lambda: s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration=rule)
    )
    assert code_status(err) == ("NotImplemented", 501)
    got = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
    assert got == ENABLED_ONLY
    s3.put_object(Bucket=locked, Key="k", Body=b"x")
    calls = {
        "get_object_retention": {},
        "put_object_retention": {
            "Retention": {"Mode": "GOVERNANCE", "RetainUntilDate": "2099-01-01T00:00:00Z"}
        },
        "get_object_legal_hold": {},
        "put_object_legal_hold": {"LegalHold": {"Status": "ON"}},
    }
    for method, kwargs in calls.items():
        err = client_error(lambda m=method, kw=kwargs: getattr(s3, m)(Bucket=locked, Key="k", **kw))
        assert code_status(err) == ("NotImplemented", 501), method
    err = client_error(
        lambda: s3.put_object(Bucket=locked, Key="j", Body=b"x", ObjectLockLegalHoldStatus="ON")
    )
    assert code_status(err) == ("NotImplemented", 501)
    err = client_error(lambda: s3.head_object(Bucket=locked, Key="j"))
    assert code_status(err)[1] == 404
