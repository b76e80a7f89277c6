"""Object ACLs, end to end with boto3 over HTTP and HTTPS (and on PostgreSQL through
tests/e2e/test_postgres_core.py): canned ACLs and grants (x-amz-grant-* headers and the XML
body) on PutObject, CopyObject, CreateMultipartUpload and PutObjectAcl; GetObjectAcl; the
access decision honours them (anonymous read of a public-read object, a grant to another
user); a new version starts private; versionId; BucketOwnerEnforced and BlockPublicAcls
refuse them as S3 does; bad input changes nothing."""

from __future__ import annotations

import hashlib

import pytest
import requests
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from tests.e2e.test_auth_modes import assert_s3_error, signed_request
from tests.e2e.test_buckets import add_user

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


@pytest.fixture
def reader(server):
    name = f"reader-{server.port}"
    ak, sk = add_user(server, name)
    return name, server.client(ak, sk)


def error(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as exc:
        call()
    e = exc.value.response
    return e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"]


def anon_get(server, bucket: str, key: str, **params) -> requests.Response:
    return requests.get(
        f"{server.endpoint}/{bucket}/{key}",
        params=params,
        verify=server.ca_path if server.tls else None,
        timeout=10,
    )


def grantees(acl: dict) -> set[tuple[str, str]]:
    out = set()
    for g in acl["Grants"]:
        who = g["Grantee"].get("URI") or g["Grantee"].get("ID")
        out.add((who, g["Permission"]))
    return out


def canonical(user: str) -> str:
    return hashlib.sha256(user.encode()).hexdigest()


def test_canned_acl_on_put_and_anonymous_read(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="pub", Body=b"public", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="priv", Body=b"secret")
    reply = anon_get(server, bucket, "pub")
    assert reply.status_code == 200 and reply.content == b"public"
    assert anon_get(server, bucket, "priv").status_code == 403
    anon = server.client(signature_version=UNSIGNED)
    assert anon.get_object(Bucket=bucket, Key="pub")["Body"].read() == b"public"
    assert error(lambda: anon.get_object(Bucket=bucket, Key="priv"))[0] == "AccessDenied"
    # Reading the object is not reading its ACL.
    assert error(lambda: anon.get_object_acl(Bucket=bucket, Key="pub"))[0] == "AccessDenied"
    assert (ALL_USERS, "READ") in grantees(s3.get_object_acl(Bucket=bucket, Key="pub"))
    assert len(s3.get_object_acl(Bucket=bucket, Key="priv")["Grants"]) == 1
    # A new version starts private, as on S3.
    s3.put_object(Bucket=bucket, Key="pub", Body=b"new")
    assert anon_get(server, bucket, "pub").status_code == 403
    assert len(s3.get_object_acl(Bucket=bucket, Key="pub")["Grants"]) == 1


def test_put_object_acl_canned_grants_and_xml(server, s3, bucket, reader):
    name, other = reader
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    assert error(lambda: other.get_object(Bucket=bucket, Key="k"))[0] == "AccessDenied"
    s3.put_object_acl(Bucket=bucket, Key="k", GrantRead=f"id={canonical(name)}")
    assert other.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"
    assert anon_get(server, bucket, "k").status_code == 403
    assert error(lambda: other.get_object_acl(Bucket=bucket, Key="k"))[0] == "AccessDenied"
    # The XML body: READ_ACP to the other user, READ to everyone.
    owner = s3.get_object_acl(Bucket=bucket, Key="k")["Owner"]
    policy = {
        "Owner": owner,
        "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": canonical(name)}, "Permission": "READ_ACP"},
            {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"},
        ],
    }
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy=policy)
    got = grantees(other.get_object_acl(Bucket=bucket, Key="k"))
    assert got == {(canonical(name), "READ_ACP"), (ALL_USERS, "READ")}
    assert anon_get(server, bucket, "k").content == b"data"
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    assert anon_get(server, bucket, "k").status_code == 403
    assert len(s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]) == 1
    # Nobody else may change it; a missing key is NoSuchKey.
    code = error(lambda: other.put_object_acl(Bucket=bucket, Key="k", ACL="public-read"))[0]
    assert code == "AccessDenied"
    code = error(lambda: s3.put_object_acl(Bucket=bucket, Key="nope", ACL="public-read"))[0]
    assert code == "NoSuchKey"


def test_acl_on_copy_and_multipart(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"src", ACL="public-read")
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "src"})
    assert anon_get(server, bucket, "copy").status_code == 403  # a copy's ACL is its own
    s3.copy_object(
        Bucket=bucket, Key="copy2", CopySource={"Bucket": bucket, "Key": "src"}, ACL="public-read"
    )
    assert anon_get(server, bucket, "copy2").content == b"src"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ACL="public-read")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"mp")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert anon_get(server, bucket, "mp").content == b"mp"


def test_object_acl_of_a_version(server, s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"two")
    s3.put_object_acl(Bucket=bucket, Key="k", VersionId=v1, ACL="public-read")
    assert anon_get(server, bucket, "k").status_code == 403
    assert anon_get(server, bucket, "k", versionId=v1).content == b"one"
    acl = s3.get_object_acl(Bucket=bucket, Key="k", VersionId=v1)
    assert (ALL_USERS, "READ") in grantees(acl)
    assert len(s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]) == 1


def test_ownership_and_public_access_block_refuse_object_acls(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    rule = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=rule)
    code = error(lambda: s3.put_object(Bucket=bucket, Key="k2", Body=b"x", ACL="public-read"))
    assert code == ("AccessControlListNotSupported", 400)
    code = error(lambda: s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read"))[0]
    assert code == "AccessControlListNotSupported"
    s3.put_object(Bucket=bucket, Key="k3", Body=b"x", ACL="bucket-owner-full-control")
    assert error(lambda: s3.head_object(Bucket=bucket, Key="k2"))[1] == 404
    s3.delete_bucket_ownership_controls(Bucket=bucket)
    block = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False,
    }
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
    code = error(lambda: s3.put_object(Bucket=bucket, Key="k4", Body=b"x", ACL="public-read"))
    assert code[0] == "AccessDenied"
    code = error(lambda: s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read"))[0]
    assert code == "AccessDenied"
    # IgnorePublicAcls: a public object ACL set before counts for nothing.
    s3.delete_public_access_block(Bucket=bucket)
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
    assert anon_get(server, bucket, "k").status_code == 200
    block["BlockPublicAcls"], block["IgnorePublicAcls"] = False, True
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
    assert anon_get(server, bucket, "k").status_code == 403


def test_bad_object_acls_change_nothing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")
    bad = [
        ({"x-amz-acl": "public-read", "x-amz-grant-read": "id=abc"}, b"", "InvalidRequest"),
        ({"x-amz-acl": "no-such-acl"}, b"", "InvalidArgument"),
        ({}, b"<AccessControlPolicy><Nope/></AccessControlPolicy>", "MalformedACLError"),
        ({}, b"<AccessControlPolicy", "MalformedXML"),
        ({}, b"", "MissingSecurityHeader"),
    ]
    for headers, body, code in bad:
        reply = signed_request(server, "PUT", f"/{bucket}/k?acl", body, headers)
        assert_s3_error(reply, 400, code)
        if headers:  # the same headers on a PUT: refused, nothing stored
            reply = signed_request(server, "PUT", f"/{bucket}/new-{code}", b"data", headers)
            assert_s3_error(reply, 400, code)
    assert anon_get(server, bucket, "k").status_code == 200
    assert (ALL_USERS, "READ") in grantees(s3.get_object_acl(Bucket=bucket, Key="k"))
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == ["k"]
