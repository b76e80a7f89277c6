"""Tag sets: S3's limits, the XML body and the x-amz-tagging header."""

from __future__ import annotations

import pytest

from holdfast.errors import S3Error
from holdfast.s3 import tagging


def body(*pairs: tuple[str, str]) -> bytes:
    tags = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in pairs)
    return f"<Tagging><TagSet>{tags}</TagSet></Tagging>".encode()


def code(fn, *args) -> str:
    with pytest.raises(S3Error) as e:
        fn(*args)
    return e.value.code


def test_round_trip_keeps_order():
    tags = [("b", "2"), ("a", ""), ("émoji key", "x+y=z/@:._-")]
    assert tagging.parse_xml(tagging.render_xml(tags)) == tags


def test_limits():
    assert len(tagging.parse_xml(body(*[(f"k{i}", "v") for i in range(10)]))) == 10
    assert code(tagging.parse_xml, body(*[(f"k{i}", "v") for i in range(11)])) == "InvalidTag"
    bucket = [(f"k{i}", "v") for i in range(50)]
    assert tagging.validate(bucket, tagging.BUCKET_TAG_LIMIT) == bucket
    assert code(tagging.validate, bucket + [("x", "y")], tagging.BUCKET_TAG_LIMIT) == "InvalidTag"
    assert tagging.validate([("k" * 128, "v" * 256)])
    assert code(tagging.validate, [("k" * 129, "v")]) == "InvalidTag"
    assert code(tagging.validate, [("k", "v" * 257)]) == "InvalidTag"
    assert code(tagging.validate, [("", "v")]) == "InvalidTag"
    assert code(tagging.validate, [("a", "1"), ("a", "2")]) == "InvalidTag"
    assert code(tagging.validate, [("aws:x", "1")]) == "InvalidTag"
    assert code(tagging.validate, [("a#b", "1")]) == "InvalidTag"
    assert code(tagging.validate, [("a", "<")]) == "InvalidTag"


@pytest.mark.parametrize(
    "raw",
    [
        b"<Tagging/>",
        b"<Other><TagSet/></Other>",
        b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Tag><Value>a</Value></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Nope/></TagSet></Tagging>",
        b"not xml",
    ],
)
def test_malformed(raw):
    assert code(tagging.parse_xml, raw) == "MalformedXML"


def test_empty_tag_set_is_allowed():
    assert tagging.parse_xml(b"<Tagging><TagSet/></Tagging>") == []


def test_header():
    assert tagging.parse_header("a=1&b=&c") == [("a", "1"), ("b", ""), ("c", "")]
    assert tagging.parse_header("k%20x=v%2Fy") == [("k x", "v/y")]
    assert tagging.parse_header("") == []
    assert code(tagging.parse_header, "a=1&a=2") == "InvalidTag"
    assert code(tagging.parse_header, "&".join(f"k{i}=v" for i in range(11))) == "InvalidTag"
    tags = [("a b", "c/d"), ("x", "")]
    assert tagging.parse_header(tagging.to_header(tags)) == tags
