"""Tagging, end to end with boto3 over HTTP and HTTPS (and on PostgreSQL: the tests are
imported by tests/e2e/test_postgres_core.py): object tags (PutObjectTagging and friends,
``x-amz-tagging`` on PUT, copy with ``x-amz-tagging-directive`` and multipart create,
``x-amz-tagging-count``), bucket tags, and S3's limits (InvalidTag, nothing changed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

from tests.e2e.test_auth_modes import signed_request
from tests.e2e.test_buckets import add_user, bucket_name

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
MiB = 1024 * 1024


def tagset(*pairs: tuple[str, str]) -> dict:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in pairs]}


def tags_of(s3, bucket: str, key: str, **kw) -> list[tuple[str, str]]:
    got = s3.get_object_tagging(Bucket=bucket, Key=key, **kw)["TagSet"]
    return [(t["Key"], t["Value"]) for t in got]


def error(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as exc:
        call()
    e = exc.value.response
    return e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"]


def test_object_tags_put_get_delete(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    assert tags_of(s3, bucket, "k") == []
    assert "TagCount" not in s3.head_object(Bucket=bucket, Key="k")
    resp = s3.put_object_tagging(
        Bucket=bucket, Key="k", Tagging=tagset(("b", "2"), ("a", ""), ("é t", "x+y=z/@:._-"))
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert tags_of(s3, bucket, "k") == [("b", "2"), ("a", ""), ("é t", "x+y=z/@:._-")]
    assert tags_of(s3, bucket, "k", VersionId="null") == tags_of(s3, bucket, "k")
    assert s3.head_object(Bucket=bucket, Key="k")["TagCount"] == 3
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["TagCount"] == 3 and got["Body"].read() == b"data"
    resp = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert tags_of(s3, bucket, "k") == []
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"


def test_put_with_tagging_header_and_overwrite(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"1", Tagging="project=blue&empty=&sp%20ace=a%2Fb")
    assert tags_of(s3, bucket, "k") == [("project", "blue"), ("empty", ""), ("sp ace", "a/b")]
    assert s3.head_object(Bucket=bucket, Key="k")["TagCount"] == 3
    # Tags belong to the version: a new PUT without the header has none.
    s3.put_object(Bucket=bucket, Key="k", Body=b"2")
    assert tags_of(s3, bucket, "k") == []


def test_limits_are_invalid_tag_and_change_nothing(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="keep=1")
    bad = [
        tagset(*[(f"k{i}", "v") for i in range(11)]),
        tagset(("k" * 129, "v")),
        tagset(("k", "v" * 257)),
        tagset(("a", "1"), ("a", "2")),
        tagset(("aws:reserved", "1")),
        tagset(("a#b", "1")),
    ]
    for tagging in bad:
        assert error(
            lambda t=tagging: s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=t)
        ) == ("InvalidTag", 400)
    assert tags_of(s3, bucket, "k") == [("keep", "1")]
    ok = tagset(*[(f"k{i}" + "x" * 100, "v" * 256) for i in range(10)])
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=ok)
    assert len(tags_of(s3, bucket, "k")) == 10
    # The header: refused before anything is stored.
    for header in ("a=1&a=2", "&".join(f"k{i}=v" for i in range(11)), "aws:x=1"):
        assert error(
            lambda h=header: s3.put_object(Bucket=bucket, Key="new", Body=b"x", Tagging=h)
        ) == ("InvalidTag", 400)
    assert error(lambda: s3.head_object(Bucket=bucket, Key="new"))[1] == 404


def test_malformed_tagging_body(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="keep=1")
    for body in (
        b"<Tagging/>",
        b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",
        b"x",
    ):
        reply = signed_request(server, "PUT", f"/{bucket}/k?tagging", body=body)
        assert reply.status == 400, reply.body
        assert ET.fromstring(reply.body).findtext("Code") == "MalformedXML"
    assert tags_of(s3, bucket, "k") == [("keep", "1")]


def test_tagging_xml_shape(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=1")
    reply = signed_request(server, "GET", f"/{bucket}/k?tagging")
    assert reply.status == 200
    doc = ET.fromstring(reply.body)
    assert doc.tag == f"{S3_NS}Tagging"
    [tag_set] = doc
    assert tag_set.tag == f"{S3_NS}TagSet"
    assert [(t.findtext(f"{S3_NS}Key"), t.findtext(f"{S3_NS}Value")) for t in tag_set] == [
        ("a", "1")
    ]


def test_copy_tagging_directive(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", Tagging="a=1&b=2")
    source = {"Bucket": bucket, "Key": "src"}
    s3.copy_object(Bucket=bucket, Key="copied", CopySource=source)
    assert tags_of(s3, bucket, "copied") == [("a", "1"), ("b", "2")]
    s3.copy_object(
        Bucket=bucket, Key="replaced", CopySource=source, TaggingDirective="REPLACE", Tagging="c=3"
    )
    assert tags_of(s3, bucket, "replaced") == [("c", "3")]
    s3.copy_object(Bucket=bucket, Key="none", CopySource=source, TaggingDirective="REPLACE")
    assert tags_of(s3, bucket, "none") == []
    # Tags follow their own directive, whatever the metadata directive says.
    s3.copy_object(
        Bucket=bucket,
        Key="meta",
        CopySource=source,
        MetadataDirective="REPLACE",
        Metadata={"m": "1"},
    )
    assert tags_of(s3, bucket, "meta") == [("a", "1"), ("b", "2")]
    assert error(
        lambda: s3.copy_object(
            Bucket=bucket, Key="bad", CopySource=source, TaggingDirective="MAYBE"
        )
    ) == ("InvalidArgument", 400)


def test_multipart_create_with_tags(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="x=1&y=2")
    part = s3.upload_part(
        Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"a" * MiB
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert tags_of(s3, bucket, "mp") == [("x", "1"), ("y", "2")]
    assert s3.head_object(Bucket=bucket, Key="mp")["TagCount"] == 2


def test_object_tagging_errors(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    ak, sk = add_user(server, f"tagger-{server.port}")
    other = server.client(ak, sk)
    tagging = tagset(("a", "b"))
    calls = {
        "get_object_tagging": {},
        "delete_object_tagging": {},
        "put_object_tagging": {"Tagging": tagging},
    }
    for method, kw in calls.items():
        assert error(lambda m=method, k=kw: getattr(s3, m)(Bucket=bucket, Key="nope", **k)) == (
            "NoSuchKey",
            404,
        )
        assert error(lambda m=method, k=kw: getattr(s3, m)(Bucket=bucket_name(), Key="k", **k)) == (
            "NoSuchBucket",
            404,
        )
        assert error(lambda m=method, k=kw: getattr(other, m)(Bucket=bucket, Key="k", **k)) == (
            "AccessDenied",
            403,
        )
    assert tags_of(s3, bucket, "k") == []


def test_bucket_tags(server, s3, bucket):
    assert error(lambda: s3.get_bucket_tagging(Bucket=bucket)) == ("NoSuchTagSet", 404)
    resp = s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset(("team", "ops"), ("cost", "7")))
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    got = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert [(t["Key"], t["Value"]) for t in got] == [("team", "ops"), ("cost", "7")]
    fifty = tagset(*[(f"k{i}", "v") for i in range(50)])
    s3.put_bucket_tagging(Bucket=bucket, Tagging=fifty)
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 50
    too_many = tagset(*[(f"k{i}", "v") for i in range(51)])
    assert error(lambda: s3.put_bucket_tagging(Bucket=bucket, Tagging=too_many)) == (
        "InvalidTag",
        400,
    )
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 50
    ak, sk = add_user(server, f"btagger-{server.port}")
    other = server.client(ak, sk)
    for call in (
        lambda: other.get_bucket_tagging(Bucket=bucket),
        lambda: other.put_bucket_tagging(Bucket=bucket, Tagging=tagset(("a", "b"))),
        lambda: other.delete_bucket_tagging(Bucket=bucket),
    ):
        assert error(call) == ("AccessDenied", 403)
    assert error(
        lambda: s3.put_bucket_tagging(Bucket=bucket_name(), Tagging=tagset(("a", "b")))
    ) == ("NoSuchBucket", 404)
    resp = s3.delete_bucket_tagging(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert error(lambda: s3.get_bucket_tagging(Bucket=bucket)) == ("NoSuchTagSet", 404)


def test_bucket_tags_go_with_the_bucket(s3):
    name = bucket_name()
    s3.create_bucket(Bucket=name)
    s3.put_bucket_tagging(Bucket=name, Tagging=tagset(("a", "b")))
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    assert error(lambda: s3.get_bucket_tagging(Bucket=name)) == ("NoSuchTagSet", 404)
    s3.delete_bucket(Bucket=name)


def test_tags_acl_and_attributes_by_version(s3, bucket):
    """Tags, the ACL and the attributes of any version, current or not, by ``versionId``."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"before", Tagging="v=null")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=bucket, Key="k", Body=b"one", Tagging="v=1")["VersionId"]
    new = s3.put_object(Bucket=bucket, Key="k", Body=b"three", Tagging="v=2")["VersionId"]
    assert tags_of(s3, bucket, "k", VersionId=old) == [("v", "1")]
    assert tags_of(s3, bucket, "k", VersionId="null") == [("v", "null")]
    got = s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=old)
    assert got["VersionId"] == old
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["VersionId"] == new
    # Changing an old version's tags leaves the current version's alone, and the other way.
    put = s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=old, Tagging=tagset(("x", "y")))
    assert put["VersionId"] == old
    assert tags_of(s3, bucket, "k", VersionId=old) == [("x", "y")]
    assert tags_of(s3, bucket, "k") == [("v", "2")]
    s3.delete_object_tagging(Bucket=bucket, Key="k", VersionId="null")
    assert tags_of(s3, bucket, "k", VersionId="null") == []
    assert tags_of(s3, bucket, "k", VersionId=old) == [("x", "y")]
    # A bad tag set changes nothing; a missing version is NoSuchVersion; a marker is 405.
    too_many = tagset(*[(f"k{i}", "v") for i in range(11)])
    assert error(
        lambda: s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=old, Tagging=too_many)
    ) == ("InvalidTag", 400)
    assert tags_of(s3, bucket, "k", VersionId=old) == [("x", "y")]
    gone = s3.put_object(Bucket=bucket, Key="k", Body=b"gone")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="k", VersionId=gone)
    for call in (
        lambda: s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=gone),
        lambda: s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=gone, Tagging=tagset()),
    ):
        assert error(call) == ("NoSuchVersion", 404)
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    for call in (
        lambda: s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=marker),
        lambda: s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=marker, Tagging=tagset()),
        lambda: s3.get_object_acl(Bucket=bucket, Key="k", VersionId=marker),
    ):
        assert error(call) == ("MethodNotAllowed", 405)
    # GetObjectAcl and GetObjectAttributes of an old version.
    acl = s3.get_object_acl(Bucket=bucket, Key="k", VersionId=old)
    assert acl["Grants"][0]["Permission"] == "FULL_CONTROL"
    attrs = s3.get_object_attributes(
        Bucket=bucket, Key="k", VersionId=old, ObjectAttributes=["ObjectSize", "ETag"]
    )
    assert attrs["ObjectSize"] == 3 and attrs["VersionId"] == old
    null = s3.get_object_attributes(
        Bucket=bucket, Key="k", VersionId="null", ObjectAttributes=["ObjectSize"]
    )
    assert null["ObjectSize"] == 6 and null["VersionId"] == "null"
