"""Lifecycle: configuration XML (what S3 accepts and refuses), filters, and the decisions of
the job and of x-amz-expiration."""

from __future__ import annotations

import itertools

import pytest

from holdfast.errors import S3Error
from holdfast.s3 import lifecycle as xmllc
from holdfast.service import lifecycle as lc

DAY = 86_400.0
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def ids():
    counter = itertools.count(1)
    return lambda: f"generated-{next(counter)}"


def conf(*rules: str) -> bytes:
    return ("<LifecycleConfiguration>" + "".join(rules) + "</LifecycleConfiguration>").encode()


def rule(body: str, status="Enabled", rid="r", flt="<Filter><Prefix></Prefix></Filter>") -> str:
    rid_el = f"<ID>{rid}</ID>" if rid is not None else ""
    return f"<Rule>{rid_el}{flt}<Status>{status}</Status>{body}</Rule>"


def parse(*rules: str) -> lc.Configuration:
    return xmllc.parse(conf(*rules), ids())


def code(*rules: str) -> str:
    with pytest.raises(S3Error) as e:
        parse(*rules)
    return e.value.code


def test_round_trip():
    c = parse(
        rule("<Expiration><Days>3</Days></Expiration>", rid="a",
             flt="<Filter><And><Prefix>logs/</Prefix><Tag><Key>t</Key><Value>1</Value></Tag>"
                 "<ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></And></Filter>"),
        rule("<Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration>", rid="b",
             flt="<Prefix>old/</Prefix>", status="Disabled"),
        rule("<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>"
             "<NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays>"
             "<NewerNoncurrentVersions>3</NewerNoncurrentVersions></NoncurrentVersionExpiration>"
             "<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>"
             "</AbortIncompleteMultipartUpload>", rid=None,
             flt="<Filter><ObjectSizeLessThan>100</ObjectSizeLessThan></Filter>"),
    )  # fmt: skip
    a, b, c3 = c.rules
    assert a.filter == lc.Filter("logs/", (("t", "1"),), 10, None) and a.expiration_days == 3
    assert b.expiration_date == 1_893_456_000.0 and not b.enabled and not b.uses_filter_element
    assert c3.id == "generated-1" and c3.newer_noncurrent_versions == 3
    again = xmllc.parse(xmllc.render(c), ids())
    assert again == c
    assert lc.from_json(lc.to_json(c)) == c


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ((rule("<Expiration><Days>1</Days></Expiration>", status="On"),), "MalformedXML"),
        ((rule("<Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z</Date></Expiration>"),), "MalformedXML"),
        ((rule("<Expiration><Days>1</Days></Expiration>", flt=""),), "MalformedXML"),
        ((rule("<Expiration><Days>1</Days></Expiration>",
               flt="<Prefix>a</Prefix><Filter><Prefix>a</Prefix></Filter>"),), "MalformedXML"),
        ((rule("<Expiration><Days>1</Days></Expiration>",
               flt="<Filter><Prefix>a</Prefix><ObjectSizeLessThan>5</ObjectSizeLessThan></Filter>"),),
         "MalformedXML"),
        ((rule("<Expiration><Days>x</Days></Expiration>"),), "MalformedXML"),
        ((rule("<Expiration><Days>0</Days></Expiration>"),), "InvalidArgument"),
        ((rule("<Expiration><Date>2030-01-01T12:00:00Z</Date></Expiration>"),), "InvalidArgument"),
        ((rule("<Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"
               "</Expiration>"),), "InvalidArgument"),
        ((rule("<Expiration><Days>1</Days></Expiration>"), rule("<Expiration><Days>2</Days></Expiration>")),
         "InvalidArgument"),
        ((rule("<Expiration><Days>1</Days></Expiration>", rid="x" * 256),), "InvalidArgument"),
        ((rule(""),), "InvalidArgument"),
        ((rule("<NoncurrentVersionExpiration><NoncurrentDays>0</NoncurrentDays></NoncurrentVersionExpiration>"),),
         "InvalidArgument"),
        ((rule("<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
               "<NewerNoncurrentVersions>101</NewerNoncurrentVersions></NoncurrentVersionExpiration>"),),
         "InvalidArgument"),
        ((rule("<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>"
               "</AbortIncompleteMultipartUpload>",
               flt="<Filter><Tag><Key>a</Key><Value>b</Value></Tag></Filter>"),), "InvalidArgument"),
        ((rule("<Expiration><Days>1</Days></Expiration>",
               flt="<Filter><And><ObjectSizeGreaterThan>9</ObjectSizeGreaterThan>"
                   "<ObjectSizeLessThan>5</ObjectSizeLessThan></And></Filter>"),), "InvalidArgument"),
        ((rule("<Expiration><Days>1</Days></Expiration>",
               flt="<Filter><Tag><Key>aws:x</Key><Value>b</Value></Tag></Filter>"),), "InvalidTag"),
        ((rule("<Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>"),),
         "NotImplemented"),
        ((rule("<Expiration><Days>1</Days></Expiration><Bogus/>"),), "MalformedXML"),
        ((), "MalformedXML"),
    ],
)  # fmt: skip
def test_refused(rules, expected):
    assert code(*rules) == expected


def test_filters():
    f = lc.Filter("p/", (("a", "1"),), 10, 100)
    assert f.matches("p/x", 50, [("a", "1"), ("b", "2")])
    assert not f.matches("q/x", 50, [("a", "1")])
    assert not f.matches("p/x", 50, [("a", "2")])
    assert not f.matches("p/x", 10, [("a", "1")])
    assert not f.matches("p/x", 100, [("a", "1")])
    assert lc.Filter().matches("anything", None, None)


def test_expiration_rounds_to_midnight_and_picks_earliest():
    c = parse(
        rule("<Expiration><Days>2</Days></Expiration>", rid="late"),
        rule("<Expiration><Days>1</Days></Expiration>", rid="early",
             flt="<Filter><Prefix>a/</Prefix></Filter>"),
        rule("<Expiration><Days>1</Days></Expiration>", rid="off", status="Disabled"),
    )  # fmt: skip
    created = NOW + 3600  # 01:00 on a day: expiry at the midnight after one full day
    assert lc.expiration(c, "b/k", 1, None, created) == (NOW + 2 * DAY + DAY, "late")
    assert lc.expiration(c, "a/k", 1, None, created) == (NOW + 2 * DAY, "early")
    # A shortened test day is not rounded.
    assert lc.expiration(c, "a/k", 1, None, created, day_seconds=2.0) == (created + 2.0, "early")
    assert (
        xmllc.expiration_header(NOW, "r")
        == 'expiry-date="Thu, 01 Jan 2026 00:00:00 GMT", rule-id="r"'
    )


def test_noncurrent_keeps_the_newest():
    c = parse(
        rule("<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
             "<NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration>")
    )  # fmt: skip
    old = [(NOW - 10, 1, None)] * 5
    assert lc.noncurrent_due(c, "k", old, NOW, day_seconds=1.0) == [2, 3, 4]
    assert lc.noncurrent_due(c, "k", old, NOW - 9.5, day_seconds=1.0) == []


def test_markers_and_uploads():
    c = parse(
        rule("<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>"
             "<AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation>"
             "</AbortIncompleteMultipartUpload>", flt="<Filter><Prefix>x/</Prefix></Filter>")
    )  # fmt: skip
    assert lc.removes_expired_delete_markers(c, "x/k")
    assert not lc.removes_expired_delete_markers(c, "y/k")
    assert lc.upload_abandoned(c, "x/k", NOW, NOW + 2.0, day_seconds=1.0)
    assert not lc.upload_abandoned(c, "x/k", NOW, NOW + 1.5, day_seconds=1.0)
