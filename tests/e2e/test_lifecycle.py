"""Lifecycle end to end with boto3: Put/Get/DeleteBucketLifecycleConfiguration over HTTP and
HTTPS (also on PostgreSQL: tests/e2e/test_postgres_core.py imports them), refused
configurations that change nothing, and the lifecycle job on both index engines, on a server
whose lifecycle "day" is one second (``--lifecycle-day-seconds``, test-only): expiration by
prefix, size and tag filters, a delete marker in a versioned bucket, noncurrent versions with
NewerNoncurrentVersions, expired delete markers, abandoned multipart uploads, and a locked
version it must not delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import start_server
from tests.e2e.ops_helpers import metric_value, metrics_text, status, wait_for
from tests.e2e.test_bucket_configs import client_error, code_status, other  # noqa: F401
from tests.e2e.test_buckets import bucket_name

WAIT = 60.0  # generous: eight helpers share two cores

RULES = [
    {
        "ID": "logs",
        "Status": "Enabled",
        "Filter": {"Prefix": "logs/"},
        "Expiration": {"Days": 30},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 7, "NewerNoncurrentVersions": 2},
    },
    {
        "ID": "tmp",
        "Status": "Disabled",
        "Filter": {
            "And": {
                "Prefix": "tmp/",
                "Tags": [{"Key": "k", "Value": "v"}],
                "ObjectSizeGreaterThan": 10,
                "ObjectSizeLessThan": 1000,
            }
        },
        "Expiration": {"Date": datetime(2030, 1, 1, tzinfo=UTC)},
    },
    {
        "ID": "uploads",
        "Status": "Enabled",
        "Filter": {"ObjectSizeGreaterThan": 5},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3},
    },
    {
        "ID": "markers",
        "Status": "Enabled",
        "Filter": {"Tag": {"Key": "a", "Value": "b"}},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
    },
]


def rules_of(s3, bucket: str) -> list[dict]:
    return s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]


def put_rules(s3, bucket: str, rules: list[dict]) -> None:
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})


# -- the configuration ------------------------------------------------------------------------


def test_lifecycle_configuration_put_get_delete(s3, other, bucket):  # noqa: F811
    err = client_error(lambda: rules_of(s3, bucket))
    assert code_status(err) == ("NoSuchLifecycleConfiguration", 404)
    put_rules(s3, bucket, RULES)
    assert rules_of(s3, bucket) == RULES
    # GET and HEAD say when a rule will expire the object (midnight UTC after 30 days).
    s3.put_object(Bucket=bucket, Key="logs/x", Body=b"x")
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    expiration = s3.head_object(Bucket=bucket, Key="logs/x")["Expiration"]
    assert expiration.startswith('expiry-date="') and expiration.endswith('rule-id="logs"')
    assert "00:00:00 GMT" in expiration
    assert s3.get_object(Bucket=bucket, Key="logs/x")["Expiration"] == expiration
    assert "Expiration" not in s3.head_object(Bucket=bucket, Key="other")
    # A rule without an ID gets one; the old Prefix element (no Filter) comes back as written.
    put_rules(
        s3,
        bucket,
        [
            {
                "Status": "Enabled",
                "Prefix": "old/",
                "Expiration": {"ExpiredObjectDeleteMarker": True},
            }
        ],
    )
    (rule,) = rules_of(s3, bucket)
    assert rule["ID"] and rule["Prefix"] == "old/" and "Filter" not in rule
    assert rule["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    # Only the owner reads or writes it; a missing bucket is NoSuchBucket.
    for call in (
        lambda: rules_of(other, bucket),
        lambda: put_rules(other, bucket, RULES),
        lambda: other.delete_bucket_lifecycle(Bucket=bucket),
    ):
        assert code_status(client_error(call)) == ("AccessDenied", 403)
    assert code_status(client_error(lambda: rules_of(s3, bucket_name())))[0] == "NoSuchBucket"
    assert rules_of(s3, bucket)[0]["Prefix"] == "old/"
    assert s3.delete_bucket_lifecycle(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    err = client_error(lambda: rules_of(s3, bucket))
    assert code_status(err) == ("NoSuchLifecycleConfiguration", 404)


def _rule(**parts) -> dict:
    return {"ID": "r", "Status": "Enabled", "Filter": {"Prefix": ""}, **parts}


MIDNIGHT = datetime(2030, 1, 1, tzinfo=UTC)
BAD = [
    # (rules, code): what S3 answers for each.
    ([_rule(Expiration={"Days": 1, "Date": MIDNIGHT})], "MalformedXML"),
    ([_rule(Expiration={"Days": 0})], "InvalidArgument"),
    ([_rule(Expiration={"Date": MIDNIGHT + timedelta(hours=3)})], "InvalidArgument"),
    ([_rule(Expiration={"Days": 1, "ExpiredObjectDeleteMarker": True})], "InvalidArgument"),
    ([_rule(Expiration={"Days": 1}), _rule(Expiration={"Days": 2})], "InvalidArgument"),
    ([_rule(NoncurrentVersionExpiration={"NoncurrentDays": -1})], "InvalidArgument"),
    (
        [_rule(NoncurrentVersionExpiration={"NoncurrentDays": 1, "NewerNoncurrentVersions": 101})],
        "InvalidArgument",
    ),
    ([_rule()], "InvalidArgument"),  # no action
    ([{**_rule(Expiration={"Days": 1}), "Status": "On"}], "MalformedXML"),
    (
        [
            {
                **_rule(AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1}),
                "Filter": {"Tag": {"Key": "a", "Value": "b"}},
            }
        ],
        "InvalidArgument",
    ),
    (
        [
            {
                **_rule(Expiration={"Days": 1}),
                "Filter": {"And": {"ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 5}},
            }
        ],
        "InvalidArgument",
    ),
    ([_rule(Transitions=[{"Days": 1, "StorageClass": "GLACIER"}])], "NotImplemented"),
]


def test_bad_lifecycle_configurations_change_nothing(s3, bucket):
    put_rules(s3, bucket, RULES)
    for rules, code in BAD:
        err = client_error(lambda r=rules: put_rules(s3, bucket, r))
        assert code_status(err)[0] == code, rules
        assert code_status(err)[1] in (400, 501), rules
        assert rules_of(s3, bucket) == RULES, rules


# -- the job, with one-second days, on both engines -----------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fast(request, tmp_path_factory):
    """A server whose lifecycle day lasts one second and whose passes follow each other."""
    if request.param == "postgres":
        request.getfixturevalue("postgres")
    server = start_server(
        tmp_path_factory.mktemp(f"lifecycle-{request.param}"),
        index=request.param,
        extra_args=["--lifecycle-day-seconds", "1", "--lifecycle-interval", "0.2"],
    )
    yield server
    server.stop()


@pytest.fixture
def fs3(fast):
    return fast.client()


def new_bucket(s3, versioned: bool = False, locked: bool = False) -> str:
    name = bucket_name()
    if locked:
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def keys(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def versions(s3, bucket: str) -> list[tuple[str, str, bool]]:
    """(key, version id, is a delete marker), in ListObjectVersions' order."""
    page = s3.list_object_versions(Bucket=bucket)
    entries = [
        (v["Key"], v["VersionId"], False, v["LastModified"]) for v in page.get("Versions", [])
    ]
    entries += [
        (m["Key"], m["VersionId"], True, m["LastModified"]) for m in page.get("DeleteMarkers", [])
    ]
    return [(k, v, m) for k, v, m, _ in sorted(entries, key=lambda e: (e[0], -e[3].timestamp()))]


def test_expiration_by_prefix_and_size(fs3):
    bucket = new_bucket(fs3)
    for key, body in (("logs/a", b"x" * 100), ("logs/small", b"x"), ("keep/b", b"x" * 100)):
        fs3.put_object(Bucket=bucket, Key=key, Body=body)
    put_rules(
        fs3,
        bucket,
        [
            {
                "ID": "logs",
                "Status": "Enabled",
                "Filter": {"And": {"Prefix": "logs/", "ObjectSizeGreaterThan": 10}},
                "Expiration": {"Days": 1},
            }
        ],
    )
    wait_for(lambda: "logs/a" not in keys(fs3, bucket), WAIT, "logs/a to expire")
    assert keys(fs3, bucket) == ["keep/b", "logs/small"]
    # Unversioned: expired means gone, with no delete marker left behind.
    assert [v[0] for v in versions(fs3, bucket)] == ["keep/b", "logs/small"]


def test_expiration_by_tag_writes_a_delete_marker_in_a_versioned_bucket(fs3):
    bucket = new_bucket(fs3, versioned=True)
    old = fs3.put_object(Bucket=bucket, Key="t", Body=b"1", Tagging="env=tmp")["VersionId"]
    fs3.put_object(Bucket=bucket, Key="u", Body=b"2", Tagging="env=prod")
    put_rules(
        fs3,
        bucket,
        [
            {
                "ID": "tmp",
                "Status": "Enabled",
                "Filter": {"Tag": {"Key": "env", "Value": "tmp"}},
                "Expiration": {"Days": 1},
            }
        ],
    )
    wait_for(lambda: "t" not in keys(fs3, bucket), WAIT, "t to expire")
    assert keys(fs3, bucket) == ["u"]
    got = versions(fs3, bucket)
    assert got[0][0] == "t" and got[0][2] is True  # the delete marker, newest
    assert got[1] == ("t", old, False)  # the data is still there, noncurrent
    assert fs3.get_object(Bucket=bucket, Key="t", VersionId=old)["Body"].read() == b"1"


def test_noncurrent_expiration_keeps_the_newer_noncurrent_versions(fs3):
    bucket = new_bucket(fs3, versioned=True)
    ids = [fs3.put_object(Bucket=bucket, Key="k", Body=b"%d" % i)["VersionId"] for i in range(4)]
    other_key = fs3.put_object(Bucket=bucket, Key="other/k", Body=b"o")["VersionId"]
    fs3.put_object(Bucket=bucket, Key="other/k", Body=b"p")
    put_rules(
        fs3,
        bucket,
        [
            {
                "ID": "nc",
                "Status": "Enabled",
                "Filter": {"Prefix": "k"},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1},
            }
        ],
    )
    wait_for(
        lambda: [v[1] for v in versions(fs3, bucket) if v[0] == "k"] == [ids[3], ids[2]],
        WAIT,
        "the two oldest versions of k to go",
    )
    assert fs3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"3"
    assert other_key in [v[1] for v in versions(fs3, bucket)]  # outside the filter


def test_expired_delete_marker_is_removed(fs3):
    bucket = new_bucket(fs3, versioned=True)
    vid = fs3.put_object(Bucket=bucket, Key="m", Body=b"1")["VersionId"]
    fs3.delete_object(Bucket=bucket, Key="m")
    fs3.delete_object(Bucket=bucket, Key="m", VersionId=vid)  # the marker is left alone
    fs3.put_object(Bucket=bucket, Key="n", Body=b"1")
    fs3.delete_object(Bucket=bucket, Key="n")  # a marker with a version behind it: kept
    put_rules(
        fs3,
        bucket,
        [
            {
                "ID": "markers",
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "Expiration": {"ExpiredObjectDeleteMarker": True},
            }
        ],
    )
    wait_for(lambda: "m" not in [v[0] for v in versions(fs3, bucket)], WAIT, "m's marker to go")
    assert [(k, m) for k, _, m in versions(fs3, bucket)] == [("n", True), ("n", False)]


def test_incomplete_uploads_are_aborted(fs3):
    bucket = new_bucket(fs3)
    upload = fs3.create_multipart_upload(Bucket=bucket, Key="big/x")["UploadId"]
    fs3.upload_part(Bucket=bucket, Key="big/x", UploadId=upload, PartNumber=1, Body=b"p")
    kept = fs3.create_multipart_upload(Bucket=bucket, Key="small/x")["UploadId"]
    put_rules(
        fs3,
        bucket,
        [
            {
                "ID": "abort",
                "Status": "Enabled",
                "Filter": {"Prefix": "big/"},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            }
        ],
    )

    def uploads() -> list[str]:
        return [u["UploadId"] for u in fs3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]

    wait_for(lambda: upload not in uploads(), WAIT, "the upload to be aborted")
    assert uploads() == [kept]
    err = client_error(lambda: fs3.list_parts(Bucket=bucket, Key="big/x", UploadId=upload))
    assert code_status(err) == ("NoSuchUpload", 404)


def test_a_locked_version_is_never_deleted(fast, fs3):
    bucket = new_bucket(fs3, locked=True)
    until = datetime.now(UTC) + timedelta(hours=1)
    held = fs3.put_object(
        Bucket=bucket,
        Key="held",
        Body=b"keep me",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )["VersionId"]
    fs3.put_object(Bucket=bucket, Key="held", Body=b"newer")
    free = fs3.put_object(Bucket=bucket, Key="free", Body=b"old")["VersionId"]
    fs3.put_object(Bucket=bucket, Key="free", Body=b"new")
    locked_before = metric_value(
        metrics_text(fast), "holdfast_lifecycle_actions_total", action="locked"
    )
    put_rules(
        fs3,
        bucket,
        [
            {
                "ID": "nc",
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
            }
        ],
    )
    wait_for(lambda: free not in [v[1] for v in versions(fs3, bucket)], WAIT, "free's old version")
    # The job has reached the locked version (keys are walked in order: "free" before "held")
    # and been refused; a few more passes change nothing.
    wait_for(
        lambda: (
            metric_value(metrics_text(fast), "holdfast_lifecycle_actions_total", action="locked")
            >= locked_before + 2
        ),
        WAIT,
        "the lock to refuse the job twice",
    )
    assert held in [v[1] for v in versions(fs3, bucket)]
    assert fs3.get_object(Bucket=bucket, Key="held", VersionId=held)["Body"].read() == b"keep me"
    text = metrics_text(fast)
    assert metric_value(text, "holdfast_lifecycle_actions_total", action="noncurrent_deleted") >= 1
    assert metric_value(text, "holdfast_lifecycle_examined_total") >= 4
    # The status page shows the job's passes and what they did.
    section = wait_for(lambda: status(fast).get("lifecycle", {}).get("last_pass"), WAIT, "status")
    assert section["number"] >= 1 and set(section["actions"]) >= {"locked", "noncurrent_deleted"}
