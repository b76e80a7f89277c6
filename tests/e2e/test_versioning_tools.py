"""Versioning and tagging with real tools, as a new user would use them: the AWS CLI's
s3api, and rclone with --s3-versions (over HTTP: tests/e2e/test_versioning.py covers HTTPS)."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.test_clients import AwsCli
from tests.e2e.test_ecosystem import Rclone, new_bucket


def test_aws_cli_s3api_versions_and_tags(http_server, tmp_path):
    server = http_server
    aws = AwsCli(server, tmp_path / "home")
    bucket = new_bucket("cli-versions")
    aws("s3api", "create-bucket", "--bucket", bucket)
    aws(
        "s3api", "put-bucket-versioning", "--bucket", bucket,
        "--versioning-configuration", "Status=Enabled",
    )  # fmt: skip
    got = json.loads(aws("s3api", "get-bucket-versioning", "--bucket", bucket))
    assert got["Status"] == "Enabled"
    body = tmp_path / "body"
    ids = []
    for text in (b"one", b"two"):
        body.write_bytes(text)
        out = json.loads(
            aws(
                "s3api",
                "put-object",
                "--bucket",
                bucket,
                "--key",
                "k",
                "--body",
                body,
                "--tagging",
                "who=cli",
            )  # fmt: skip
        )
        ids.append(out["VersionId"])
    listed = json.loads(aws("s3api", "list-object-versions", "--bucket", bucket))
    assert [v["VersionId"] for v in listed["Versions"]] == ids[::-1]
    marker = json.loads(aws("s3api", "delete-object", "--bucket", bucket, "--key", "k"))
    assert marker["DeleteMarker"] is True
    listed = json.loads(aws("s3api", "list-object-versions", "--bucket", bucket))
    assert listed["DeleteMarkers"][0]["VersionId"] == marker["VersionId"]
    out = tmp_path / "out"
    aws("s3api", "get-object", "--bucket", bucket, "--key", "k", "--version-id", ids[0], out)
    assert out.read_bytes() == b"one"
    aws(
        "s3api", "delete-object", "--bucket", bucket, "--key", "k",
        "--version-id", marker["VersionId"],
    )  # fmt: skip
    tags = json.loads(aws("s3api", "get-object-tagging", "--bucket", bucket, "--key", "k"))
    assert tags["TagSet"] == [{"Key": "who", "Value": "cli"}]
    aws(
        "s3api", "put-bucket-tagging", "--bucket", bucket,
        "--tagging", "TagSet=[{Key=team,Value=ops}]",
    )  # fmt: skip
    tags = json.loads(aws("s3api", "get-bucket-tagging", "--bucket", bucket))
    assert tags["TagSet"] == [{"Key": "team", "Value": "ops"}]


def test_rclone_s3_versions(http_server, tmp_path):
    server = http_server
    rclone = Rclone(server, tmp_path)
    bucket = new_bucket("rclone-versions")
    rclone("mkdir", f"hf:{bucket}")
    server.client().put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    src = tmp_path / "file.txt"
    for text in (b"first version\n", b"second, longer version\n"):
        src.write_bytes(text)
        rclone("copyto", str(src), f"hf:{bucket}/file.txt")
    plain = rclone("ls", f"hf:{bucket}").stdout.decode().split("\n")
    assert [line.split()[-1] for line in plain if line.strip()] == ["file.txt"]
    listed = rclone("ls", "--s3-versions", f"hf:{bucket}").stdout.decode()
    names = sorted(line.split()[-1] for line in listed.splitlines() if line.strip())
    assert len(names) == 2 and "file.txt" in names, listed
    old = next(n for n in names if n != "file.txt")
    assert re.fullmatch(r"file-v\d{4}-\d\d-\d\d-\d{6}-\d{3}\.txt", old), old
    assert rclone("cat", "--s3-versions", f"hf:{bucket}/{old}").stdout == b"first version\n"
    assert rclone("cat", f"hf:{bucket}/file.txt").stdout == b"second, longer version\n"


def test_aws_cli_s3api_object_lock_and_lifecycle(http_server, tmp_path):
    """Object lock and lifecycle as a new user sets them up with the AWS CLI (issue 12)."""
    aws = AwsCli(http_server, tmp_path / "home")
    bucket = new_bucket("cli-lock")
    aws("s3api", "create-bucket", "--bucket", bucket, "--object-lock-enabled-for-bucket")
    aws(
        "s3api", "put-object-lock-configuration", "--bucket", bucket,
        "--object-lock-configuration",
        '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":1}}}',
    )  # fmt: skip
    got = json.loads(aws("s3api", "get-object-lock-configuration", "--bucket", bucket))
    rule = got["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert rule == {"Mode": "GOVERNANCE", "Days": 1}
    body = tmp_path / "body"
    body.write_bytes(b"backup")
    put = json.loads(
        aws("s3api", "put-object", "--bucket", bucket, "--key", "snap", "--body", body)
    )
    retention = json.loads(
        aws("s3api", "get-object-retention", "--bucket", bucket, "--key", "snap")
    )
    assert retention["Retention"]["Mode"] == "GOVERNANCE"  # the bucket's default
    aws(
        "s3api", "put-object-legal-hold", "--bucket", bucket, "--key", "snap",
        "--legal-hold", "Status=ON",
    )  # fmt: skip
    hold = json.loads(aws("s3api", "get-object-legal-hold", "--bucket", bucket, "--key", "snap"))
    assert hold["LegalHold"]["Status"] == "ON"
    # The locked version cannot be deleted, not even by its owner.
    with pytest.raises(AssertionError, match="AccessDenied"):
        aws(
            "s3api", "delete-object", "--bucket", bucket, "--key", "snap",
            "--version-id", put["VersionId"],
        )  # fmt: skip
    aws(
        "s3api", "put-bucket-lifecycle-configuration", "--bucket", bucket,
        "--lifecycle-configuration",
        '{"Rules":[{"ID":"old","Status":"Enabled","Filter":{"Prefix":"tmp/"},'
        '"Expiration":{"Days":7},"NoncurrentVersionExpiration":{"NoncurrentDays":30}}]}',
    )  # fmt: skip
    rules = json.loads(aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket))
    assert rules["Rules"][0]["ID"] == "old" and rules["Rules"][0]["Expiration"]["Days"] == 7
    aws("s3api", "delete-bucket-lifecycle", "--bucket", bucket)
    with pytest.raises(AssertionError, match="NoSuchLifecycleConfiguration"):
        aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket)
