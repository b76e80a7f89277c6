"""Access, end to end with boto3 over HTTP and HTTPS (the core ones also on PostgreSQL, via
tests/e2e/test_postgres_core.py): bucket policies (Put/Get/Delete/Status, 20 KiB limit,
MalformedPolicy with nothing changed), anonymous requests (plain HTTP and boto3 unsigned),
a second user by policy, bucket ACLs (canned and grants), ownership controls and the public
access block; the request log records each decision."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import requests
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from tests.e2e.test_buckets import add_user, bucket_name

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def error(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as exc:
        call()
    e = exc.value.response
    return e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"]


def public_read(bucket: str, prefix: str = "") -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublicRead",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
                }
            ],
        }
    )


def anon(server):
    return server.client(signature_version=UNSIGNED)


def url(server, bucket: str, key: str = "") -> str:
    return f"{server.endpoint}/{bucket}/{key}"


def get(server, path: str, **kw) -> requests.Response:
    return requests.get(path, verify=server.ca_path if server.tls else None, timeout=10, **kw)


@pytest.fixture
def other_user(server):
    name = f"reader-{server.port}"
    ak, sk = add_user(server, name)
    return name, server.client(ak, sk)


def test_policy_put_get_status_delete(s3, bucket):
    assert error(lambda: s3.get_bucket_policy(Bucket=bucket)) == ("NoSuchBucketPolicy", 404)
    assert error(lambda: s3.get_bucket_policy_status(Bucket=bucket))[0] == "NoSuchBucketPolicy"
    doc = public_read(bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=doc)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(doc)
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    s3.delete_bucket_policy(Bucket=bucket)
    assert error(lambda: s3.get_bucket_policy(Bucket=bucket)) == ("NoSuchBucketPolicy", 404)
    s3.delete_bucket_policy(Bucket=bucket)  # nothing to delete: still 204


def test_anonymous_read_exactly_where_the_policy_allows(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="pub/a.txt", Body=b"public")
    s3.put_object(Bucket=bucket, Key="priv/b.txt", Body=b"secret")
    # Before any policy: anonymous is AccessDenied everywhere.
    r = get(server, url(server, bucket, "pub/a.txt"))
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket, "pub/"))
    r = get(server, url(server, bucket, "pub/a.txt"))
    assert r.status_code == 200 and r.content == b"public"
    assert get(server, url(server, bucket, "priv/b.txt")).status_code == 403
    assert get(server, url(server, bucket)).status_code == 403  # listing: not allowed
    unsigned = anon(server)
    assert unsigned.get_object(Bucket=bucket, Key="pub/a.txt")["Body"].read() == b"public"
    assert error(lambda: unsigned.get_object(Bucket=bucket, Key="priv/b.txt")) == (
        "AccessDenied",
        403,
    )
    assert error(lambda: unsigned.put_object(Bucket=bucket, Key="pub/x", Body=b"x"))[0] == (
        "AccessDenied"
    )
    assert error(lambda: unsigned.delete_object(Bucket=bucket, Key="pub/a.txt"))[1] == 403
    assert error(lambda: unsigned.list_buckets())[0] == "AccessDenied"
    assert error(lambda: unsigned.create_bucket(Bucket=bucket_name()))[0] == "AccessDenied"
    # The owner still reads everything; and after DeleteBucketPolicy anonymous is out again.
    assert s3.get_object(Bucket=bucket, Key="priv/b.txt")["Body"].read() == b"secret"
    s3.delete_bucket_policy(Bucket=bucket)
    assert get(server, url(server, bucket, "pub/a.txt")).status_code == 403


def test_curl_anonymous(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="file", Body=b"via curl")
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    cmd = ["curl", "-s", "-w", "\\n%{http_code}", url(server, bucket, "file")]
    if server.tls:
        cmd[1:1] = ["--cacert", server.ca_path]
    out = subprocess.run(cmd, capture_output=True, timeout=20, check=True).stdout
    assert out == b"via curl\n200"
    out = subprocess.run([*cmd[:-1], url(server, bucket, "none")], capture_output=True).stdout
    assert out.endswith(b"404")  # allowed to read, and there is nothing: NoSuchKey
    cmd_put = [*cmd[:-1], "-X", "PUT", "--data-binary", "x", url(server, bucket, "new")]
    out = subprocess.run(cmd_put, capture_output=True, timeout=20).stdout
    assert out.endswith(b"403") and b"AccessDenied" in out


def test_second_user_by_policy_prefix_and_explicit_deny(server, s3, bucket, other_user):
    name, other = other_user
    s3.put_object(Bucket=bucket, Key="shared/x", Body=b"x")
    s3.put_object(Bucket=bucket, Key="shared/deny", Body=b"d")
    s3.put_object(Bucket=bucket, Key="mine/y", Body=b"y")
    assert error(lambda: other.get_object(Bucket=bucket, Key="shared/x")) == ("AccessDenied", 403)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadShared",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::000000000000:user/{name}"},
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": f"arn:aws:s3:::{bucket}/shared/*",
            },
            {
                "Sid": "ListShared",
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:aws:iam::000000000000:user/{name}"]},
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": "shared/*"}},
            },
            {
                "Sid": "NoDeny",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/shared/deny",
            },
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert other.get_object(Bucket=bucket, Key="shared/x")["Body"].read() == b"x"
    other.put_object(Bucket=bucket, Key="shared/new", Body=b"n")
    assert s3.get_object(Bucket=bucket, Key="shared/new")["Body"].read() == b"n"
    assert error(lambda: other.get_object(Bucket=bucket, Key="mine/y"))[0] == "AccessDenied"
    keys = [o["Key"] for o in other.list_objects_v2(Bucket=bucket, Prefix="shared/")["Contents"]]
    assert "shared/x" in keys
    assert error(lambda: other.list_objects_v2(Bucket=bucket, Prefix="mine/"))[0] == (
        "AccessDenied"
    )
    # An explicit Deny beats everyone, the owner included; the owner can still fix the policy.
    assert error(lambda: other.get_object(Bucket=bucket, Key="shared/deny"))[0] == "AccessDenied"
    assert error(lambda: s3.get_object(Bucket=bucket, Key="shared/deny"))[0] == "AccessDenied"
    assert error(lambda: other.delete_bucket_policy(Bucket=bucket))[0] == "AccessDenied"
    s3.delete_bucket_policy(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="shared/deny")["Body"].read() == b"d"
    assert error(lambda: other.get_object(Bucket=bucket, Key="shared/x"))[0] == "AccessDenied"


def test_copy_needs_read_on_the_source(server, s3, bucket, other_user):
    name, other = other_user
    theirs = bucket_name()
    other.create_bucket(Bucket=theirs)
    s3.put_object(Bucket=bucket, Key="src", Body=b"copied")
    assert error(lambda: other.copy_object(Bucket=theirs, Key="c", CopySource=f"{bucket}/src")) == (
        "AccessDenied",
        403,
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    other.copy_object(Bucket=theirs, Key="c", CopySource=f"{bucket}/src")
    assert other.get_object(Bucket=theirs, Key="c")["Body"].read() == b"copied"


def test_bad_policies_change_nothing(s3, bucket):
    good = public_read(bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=good)
    bad = [
        "not json",
        json.dumps({"Statement": []}),
        json.dumps(
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                        "Condition": {"StringEquals": {"s3:unknownkey": "x"}},
                    }
                ]
            }
        ),
        json.dumps(
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": "arn:aws:s3:::another-bucket/*",
                    }
                ]
            }
        ),
    ]
    for doc in bad:
        assert error(lambda d=doc: s3.put_bucket_policy(Bucket=bucket, Policy=d)) == (
            "MalformedPolicy",
            400,
        ), doc
    statement = json.loads(good)["Statement"][0]
    big = {
        "Statement": [
            {**statement, "Sid": f"S{i:05d}", "Resource": f"arn:aws:s3:::{bucket}/{'p' * 40}{i}"}
            for i in range(200)
        ]
    }
    assert len(json.dumps(big, separators=(",", ":"))) > 20 * 1024
    assert error(lambda: s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(big)))[0] == (
        "PolicyTooLarge"
    )
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(good)


def test_other_user_cannot_manage_policy(s3, bucket, other_user):
    _, other = other_user
    assert error(lambda: other.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket)))[0] == (
        "AccessDenied"
    )
    assert error(lambda: other.get_bucket_policy(Bucket=bucket))[0] == "AccessDenied"
    assert error(lambda: s3.get_bucket_policy(Bucket="no-such-bucket-x1"))[0] == "NoSuchBucket"


def test_bucket_acl_canned_and_grants(server, s3, other_user):
    name, other = other_user
    b = bucket_name()
    s3.create_bucket(Bucket=b, ACL="public-read")
    acl = s3.get_bucket_acl(Bucket=b)
    grants = {
        (g["Grantee"].get("URI") or g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]
    }
    assert (ALL_USERS, "READ") in grants
    owner_id = acl["Owner"]["ID"]
    assert (owner_id, "FULL_CONTROL") in grants
    s3.put_object(Bucket=b, Key="k", Body=b"v")
    # Bucket READ lets anyone list, not read objects (as on S3).
    assert get(server, url(server, b)).status_code == 200
    assert [o["Key"] for o in anon(server).list_objects_v2(Bucket=b)["Contents"]] == ["k"]
    assert get(server, url(server, b, "k")).status_code == 403
    s3.put_bucket_acl(Bucket=b, ACL="private")
    assert get(server, url(server, b)).status_code == 403
    # Grants by canonical id: the other user gets WRITE (may put objects) by header.
    other_id = other.list_buckets()["Owner"]["ID"]
    assert error(lambda: other.put_object(Bucket=b, Key="o", Body=b"1"))[0] == "AccessDenied"
    s3.put_bucket_acl(Bucket=b, GrantWrite=f'id="{other_id}"', GrantFullControl=f"id={owner_id}")
    other.put_object(Bucket=b, Key="o", Body=b"1")
    assert s3.get_object(Bucket=b, Key="o")["Body"].read() == b"1"
    # The XML body: AuthenticatedUsers READ.
    s3.put_bucket_acl(
        Bucket=b,
        AccessControlPolicy={
            "Owner": {"ID": owner_id},
            "Grants": [
                {
                    "Grantee": {"Type": "CanonicalUser", "ID": owner_id},
                    "Permission": "FULL_CONTROL",
                },
                {
                    "Grantee": {
                        "Type": "Group",
                        "URI": "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
                    },
                    "Permission": "READ",
                },
            ],
        },
    )
    assert other.list_objects_v2(Bucket=b)["KeyCount"] == 2
    assert get(server, url(server, b)).status_code == 403  # anonymous is not authenticated
    assert error(lambda: other.put_object(Bucket=b, Key="o2", Body=b"1"))[0] == "AccessDenied"
    assert error(lambda: other.put_bucket_acl(Bucket=b, ACL="public-read"))[0] == "AccessDenied"
    assert error(lambda: s3.put_bucket_acl(Bucket=b, ACL="no-such-acl"))[0] == "InvalidArgument"
    assert error(lambda: s3.put_bucket_acl(Bucket=b, GrantRead="uri=http://x/y"))[0] == (
        "InvalidArgument"
    )


def test_ownership_controls(s3):
    b = bucket_name()
    s3.create_bucket(Bucket=b)
    code = error(lambda: s3.get_bucket_ownership_controls(Bucket=b))[0]
    assert code == "OwnershipControlsNotFoundError"
    rules = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    s3.put_bucket_ownership_controls(Bucket=b, OwnershipControls=rules)
    got = s3.get_bucket_ownership_controls(Bucket=b)["OwnershipControls"]
    assert got == rules
    assert error(lambda: s3.put_bucket_acl(Bucket=b, ACL="public-read"))[0] == (
        "AccessControlListNotSupported"
    )
    s3.put_bucket_acl(Bucket=b, ACL="bucket-owner-full-control")
    s3.delete_bucket_ownership_controls(Bucket=b)
    assert error(lambda: s3.get_bucket_ownership_controls(Bucket=b))[0] == (
        "OwnershipControlsNotFoundError"
    )
    b2 = bucket_name()
    assert (
        error(
            lambda: s3.create_bucket(
                Bucket=b2, ACL="public-read", ObjectOwnership="BucketOwnerEnforced"
            )
        )[0]
        == "InvalidBucketAclWithObjectOwnership"
    )
    s3.create_bucket(Bucket=b2, ObjectOwnership="ObjectWriter")
    assert s3.get_bucket_ownership_controls(Bucket=b2)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "ObjectWriter"}
    ]


def test_enforced_ownership_ignores_existing_acls(server, s3):
    b = bucket_name()
    s3.create_bucket(Bucket=b, ACL="public-read")
    assert get(server, url(server, b)).status_code == 200
    rules = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    s3.put_bucket_ownership_controls(Bucket=b, OwnershipControls=rules)
    assert get(server, url(server, b)).status_code == 403


def test_public_access_block(server, s3):
    b = bucket_name()
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="k", Body=b"v")
    assert error(lambda: s3.get_public_access_block(Bucket=b))[0] == (
        "NoSuchPublicAccessBlockConfiguration"
    )
    flags = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": False,
    }
    s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration=flags)
    assert s3.get_public_access_block(Bucket=b)["PublicAccessBlockConfiguration"] == flags
    assert error(lambda: s3.put_bucket_policy(Bucket=b, Policy=public_read(b)))[0] == (
        "AccessDenied"
    )
    assert error(lambda: s3.get_bucket_policy(Bucket=b))[0] == "NoSuchBucketPolicy"
    assert error(lambda: s3.put_bucket_acl(Bucket=b, ACL="public-read"))[0] == "AccessDenied"
    s3.put_bucket_acl(Bucket=b, ACL="private")
    # Set them first, then turn on Ignore/Restrict: both stop taking effect, and come back.
    s3.delete_public_access_block(Bucket=b)
    s3.put_bucket_policy(Bucket=b, Policy=public_read(b))
    s3.put_bucket_acl(Bucket=b, ACL="public-read")
    assert get(server, url(server, b, "k")).status_code == 200
    assert get(server, url(server, b)).status_code == 200
    s3.put_public_access_block(
        Bucket=b,
        PublicAccessBlockConfiguration={"IgnorePublicAcls": True, "RestrictPublicBuckets": True},
    )
    assert get(server, url(server, b, "k")).status_code == 403
    assert get(server, url(server, b)).status_code == 403
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"v"  # owner unaffected
    s3.delete_public_access_block(Bucket=b)
    assert get(server, url(server, b, "k")).status_code == 200
    bad = b"<PublicAccessBlockConfiguration><BlockPublicAcls>maybe</BlockPublicAcls>"
    r = requests.put(
        url(server, b) + "?publicAccessBlock",
        data=bad,
        verify=server.ca_path if server.tls else None,
        timeout=10,
    )
    assert r.status_code == 403  # anonymous: decided before the body is read


def test_request_log_records_the_decision(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="logged", Body=b"x")
    get(server, url(server, bucket, "logged"))  # anonymous: denied
    deadline = time.monotonic() + 10
    lines: list[dict] = []
    while time.monotonic() < deadline:
        lines = [
            json.loads(line)
            for path in server.data_dirs[0].glob("**/requests-*.jsonl")
            for line in path.read_text().splitlines()
            if bucket in line and "logged" in line
        ]
        if len(lines) >= 2:
            break
        time.sleep(0.3)
    by_method = {(r["method"], r["status"]): r for r in lines}
    assert by_method[("PUT", 200)]["access"] == "allowed as bucket owner"
    assert by_method[("GET", 403)]["access"].startswith("denied")


def test_reading_a_version_needs_the_version_action(s3, bucket, other_user):
    name, other = other_user
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    version = s3.put_object(Bucket=bucket, Key="v", Body=b"1")["VersionId"]
    principal = {"AWS": f"arn:aws:iam::000000000000:user/{name}"}
    allow = [stmt_allow(principal, "s3:GetObject", f"{bucket}/*")]
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": allow}))
    assert other.get_object(Bucket=bucket, Key="v")["Body"].read() == b"1"
    assert error(lambda: other.get_object(Bucket=bucket, Key="v", VersionId=version))[0] == (
        "AccessDenied"
    )
    allow.append(stmt_allow(principal, "s3:GetObjectVersion", f"{bucket}/*", "Versions"))
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": allow}))
    got = other.get_object(Bucket=bucket, Key="v", VersionId=version)
    assert got["Body"].read() == b"1"


def stmt_allow(principal, action: str, resource: str, sid: str = "Current") -> dict:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": action,
        "Resource": f"arn:aws:s3:::{resource}",
    }
