"""ListObjects (v1) and ListObjectsV2 against a real server, with boto3's default settings.

Covers prefix, delimiter (one- and multi-character, keys without it), CommonPrefixes, max-keys
(0, 1, 1000, above 1000, invalid), marker / start-after / continuation-token, encoding-type=url,
fetch-owner, KeyCount, binary UTF-8 key order, boto3 paginators over 2,500 keys, and pagination
that neither repeats nor skips a key while other keys come and go between pages.

boto3 adds ``encoding-type=url`` to every list call it is not told otherwise about and decodes
the answer itself; tests that pass ``EncodingType="url"`` explicitly see the raw encoded values.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote_plus

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server, unique

# -- helpers ---------------------------------------------------------------------------------


def put_keys(s3, bucket: str, keys: Iterable[str], body: bytes = b"") -> None:
    keys = list(keys)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=body), keys))


def utf8_sorted(keys: Iterable[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def listing(s3, version: int, bucket: str, **kw) -> tuple[list[str], list[str], dict]:
    """One page: (keys, common prefixes, raw response)."""
    fn = s3.list_objects_v2 if version == 2 else s3.list_objects
    resp = fn(Bucket=bucket, **kw)
    keys = [o["Key"] for o in resp.get("Contents", [])]
    prefixes = [p["Prefix"] for p in resp.get("CommonPrefixes", [])]
    return keys, prefixes, resp


def error_of(excinfo) -> tuple[str, int]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def rewrite_query(s3, operation: str, old: str, new: str) -> None:
    """Edit the query string of ``operation``'s requests just before they are signed, to send
    values boto3 itself would refuse or never produce."""

    def hook(request, **_):
        assert old in request.url, request.url
        request.url = request.url.replace(old, new)

    s3.meta.events.register(f"before-sign.s3.{operation}", hook)


VERSIONS = pytest.mark.parametrize("version", [1, 2], ids=["v1", "v2"])


# -- order -----------------------------------------------------------------------------------

ORDER_KEYS = [
    "a",
    "B",
    "é",
    "😀",
    "z",
    "Z",
    "0",
    "9",
    "~",
    "ab",
    "a/b",
    "aB",
    "\u00ff",
    "\u4e2d",
    "\uff21",  # FULLWIDTH A: after U+4E2D, before 😀 in UTF-8, but after 😀 in UTF-16
    "\U00010000",
    "\U0010fffd",
]


@VERSIONS
def test_keys_come_back_in_binary_utf8_order(s3, bucket, version):
    put_keys(s3, bucket, ORDER_KEYS)
    expected = utf8_sorted(ORDER_KEYS)
    # Binary UTF-8 order is code point order: digits < upper case < lower case < non-ASCII,
    # and a character beyond the BMP comes after every BMP character (unlike UTF-16).
    assert expected[:4] == ["0", "9", "B", "Z"]
    assert expected.index("\uff21") < expected.index("😀")
    keys, prefixes, resp = listing(s3, version, bucket)
    assert keys == expected
    assert prefixes == []
    assert resp["IsTruncated"] is False
    # Paged one key at a time, the order and the set are the same.
    paged: list[str] = []
    paginator = s3.get_paginator("list_objects_v2" if version == 2 else "list_objects")
    for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 1}):
        paged += [o["Key"] for o in page.get("Contents", [])]
    assert paged == expected


@VERSIONS
def test_unicode_prefix_and_delimiter(s3, bucket, version):
    keys = ["é/😀/1", "é/😀/2", "é/a", "é/Ａ/x", "éé", "e/1"]
    put_keys(s3, bucket, keys)
    got, prefixes, _ = listing(s3, version, bucket, Prefix="é/", Delimiter="/")
    assert got == ["é/a"]
    assert prefixes == ["é/Ａ/", "é/😀/"]
    got, prefixes, _ = listing(s3, version, bucket, Delimiter="😀")
    assert got == ["e/1", "é/a", "é/Ａ/x", "éé"]
    assert prefixes == ["é/😀"]


# -- prefix and delimiter --------------------------------------------------------------------

TREE = ["a", "a/b/c", "a/b/d", "a/c", "a/d/", "a//e", "ab", "b/x", "b/y/z", "c"]


TREE_CASES = [
    # prefix, delimiter, keys, common prefixes
    ("", "/", ["a", "ab", "c"], ["a/", "b/"]),
    ("a/", "/", ["a/c"], ["a//", "a/b/", "a/d/"]),
    ("a/b/", "/", ["a/b/c", "a/b/d"], []),
    ("a", "", ["a", "a//e", "a/b/c", "a/b/d", "a/c", "a/d/", "ab"], []),
    ("a", "/", ["a", "ab"], ["a/"]),
    ("b", "/", [], ["b/"]),
    ("b/", "/", ["b/x"], ["b/y/"]),
    ("zzz", "/", [], []),
    ("", "#", sorted(TREE), []),  # a delimiter no key contains: every key listed
    ("a/d/", "/", ["a/d/"], []),  # the delimiter search starts after the prefix
    ("", "", sorted(TREE), []),
]


@VERSIONS
def test_prefix_and_delimiter(s3, bucket, version):
    put_keys(s3, bucket, TREE)
    for prefix, delimiter, keys, prefixes in TREE_CASES:
        kw = {"Prefix": prefix} if prefix else {}
        if delimiter:
            kw["Delimiter"] = delimiter
        got, got_prefixes, resp = listing(s3, version, bucket, **kw)
        case = (prefix, delimiter)
        assert got == keys, case
        assert got_prefixes == prefixes, case
        assert resp["IsTruncated"] is False
        assert resp.get("Prefix", "") == prefix
        assert resp.get("Delimiter", "") == delimiter
        if version == 2:
            assert resp["KeyCount"] == len(keys) + len(prefixes)


@VERSIONS
def test_multi_character_delimiter(s3, bucket, version):
    keys = ["1ab2", "1a", "1aab3", "2ba", "ab", "xab/yab", "x-a-b"]
    put_keys(s3, bucket, keys)
    got, prefixes, resp = listing(s3, version, bucket, Delimiter="ab")
    assert got == ["1a", "2ba", "x-a-b"]
    assert prefixes == ["1aab", "1ab", "ab", "xab"]
    if version == 2:
        assert resp["KeyCount"] == 7
    # The delimiter is searched for only after the prefix, so an occurrence that overlaps the
    # prefix does not count.
    got, prefixes, _ = listing(s3, version, bucket, Prefix="1a", Delimiter="ab")
    assert got == ["1a", "1ab2"]
    assert prefixes == ["1aab"]
    # A delimiter longer than some keys.
    got, prefixes, _ = listing(s3, version, bucket, Delimiter="/yab")
    assert got == utf8_sorted(set(keys) - {"xab/yab"})
    assert prefixes == ["xab/yab"]


# -- max-keys --------------------------------------------------------------------------------


@VERSIONS
def test_max_keys_zero_one_and_1000(s3, bucket, version):
    keys = [f"k{i}" for i in range(5)]
    put_keys(s3, bucket, keys)

    got, prefixes, resp = listing(s3, version, bucket, MaxKeys=0)
    assert (got, prefixes) == ([], [])
    assert resp["MaxKeys"] == 0
    assert resp["IsTruncated"] is False
    if version == 2:
        assert resp["KeyCount"] == 0
        assert "NextContinuationToken" not in resp

    got, _, resp = listing(s3, version, bucket, MaxKeys=1)
    assert got == ["k0"]
    assert resp["MaxKeys"] == 1
    assert resp["IsTruncated"] is True
    if version == 2:
        assert resp["KeyCount"] == 1
        assert resp["NextContinuationToken"]

    got, _, resp = listing(s3, version, bucket, MaxKeys=1000)
    assert got == keys
    assert resp["MaxKeys"] == 1000
    assert resp["IsTruncated"] is False

    got, _, resp = listing(s3, version, bucket)  # the default is 1000
    assert got == keys
    assert resp["MaxKeys"] == 1000


@VERSIONS
def test_max_keys_counts_common_prefixes(s3, bucket, version):
    put_keys(s3, bucket, ["p1/a", "p1/b", "p2/a", "q", "r/s"])
    got, prefixes, resp = listing(s3, version, bucket, Delimiter="/", MaxKeys=2)
    assert (got, prefixes) == ([], ["p1/", "p2/"])
    assert resp["IsTruncated"] is True
    nxt = (
        {"ContinuationToken": resp["NextContinuationToken"]}
        if version == 2
        else {"Marker": resp["NextMarker"]}
    )
    if version == 1:
        assert resp["NextMarker"] == "p2/"
    got, prefixes, resp = listing(s3, version, bucket, Delimiter="/", MaxKeys=2, **nxt)
    assert (got, prefixes) == (["q"], ["r/"])
    assert resp["IsTruncated"] is False
    if version == 2:
        assert resp["KeyCount"] == 2


@VERSIONS
@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "0x10"])
def test_invalid_max_keys_is_invalid_argument(server: Server, bucket, version, bad):
    s3 = server.client()
    op = "ListObjectsV2" if version == 2 else "ListObjects"
    rewrite_query(s3, op, "max-keys=7", f"max-keys={bad}")
    with pytest.raises(ClientError) as e:
        listing(s3, version, bucket, MaxKeys=7)
    assert error_of(e) == ("InvalidArgument", 400)


@VERSIONS
def test_invalid_encoding_type_is_invalid_argument(s3, bucket, version):
    with pytest.raises(ClientError) as e:
        listing(s3, version, bucket, EncodingType="base64")
    assert error_of(e) == ("InvalidArgument", 400)


def test_list_missing_bucket_is_no_such_bucket(s3):
    for fn in (s3.list_objects, s3.list_objects_v2):
        with pytest.raises(ClientError) as e:
            fn(Bucket=unique("nobucket").lower())
        assert error_of(e) == ("NoSuchBucket", 404)


# -- markers ---------------------------------------------------------------------------------


def test_marker_v1(s3, bucket):
    put_keys(s3, bucket, list("abcdef"))
    got, _, resp = listing(s3, 1, bucket, Marker="c")
    assert got == ["d", "e", "f"]
    assert resp["Marker"] == "c"
    got, _, _ = listing(s3, 1, bucket, Marker="cc")  # a marker that is no key
    assert got == ["d", "e", "f"]
    got, _, _ = listing(s3, 1, bucket, Marker="")
    assert got == list("abcdef")
    got, _, resp = listing(s3, 1, bucket, Marker="f")
    assert got == []
    assert resp["IsTruncated"] is False
    got, _, resp = listing(s3, 1, bucket, Marker="b", MaxKeys=2)
    assert got == ["c", "d"]
    assert resp["IsTruncated"] is True
    # Without a delimiter S3 may omit NextMarker; the client then resumes from the last key.
    assert resp.get("NextMarker", "d") == "d"


def test_start_after_and_continuation_token_v2(s3, bucket):
    put_keys(s3, bucket, list("abcdef"))
    got, _, resp = listing(s3, 2, bucket, StartAfter="c")
    assert got == ["d", "e", "f"]
    assert resp["StartAfter"] == "c"
    got, _, _ = listing(s3, 2, bucket, StartAfter="cc")
    assert got == ["d", "e", "f"]
    got, _, resp = listing(s3, 2, bucket, StartAfter="zzz")
    assert got == []
    assert resp["KeyCount"] == 0
    assert resp["IsTruncated"] is False

    got, _, first = listing(s3, 2, bucket, StartAfter="a", MaxKeys=2)
    assert got == ["b", "c"]
    token = first["NextContinuationToken"]
    got, _, resp = listing(s3, 2, bucket, StartAfter="a", MaxKeys=2, ContinuationToken=token)
    assert got == ["d", "e"]
    assert resp["ContinuationToken"] == token
    assert resp["StartAfter"] == "a"
    # The token wins over start-after.
    got, _, _ = listing(s3, 2, bucket, StartAfter="e", MaxKeys=2, ContinuationToken=token)
    assert got == ["d", "e"]


def test_invalid_continuation_token(s3, bucket):
    put_keys(s3, bucket, ["a"])
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="!!!not-a-token")
    assert error_of(e) == ("InvalidArgument", 400)


@VERSIONS
def test_marker_that_is_a_common_prefix_does_not_repeat_it(s3, bucket, version):
    put_keys(s3, bucket, ["a/1", "a/2", "a/b/3", "b/1", "c", "d/1"])
    start = {"StartAfter": "a/"} if version == 2 else {"Marker": "a/"}
    got, prefixes, _ = listing(s3, version, bucket, Delimiter="/", **start)
    assert got == ["c"]
    assert prefixes == ["b/", "d/"]
    # Paging one entry at a time through the markers the server hands out.
    seen: list[str] = []
    kw: dict = {}
    for _ in range(10):
        got, prefixes, resp = listing(s3, version, bucket, Delimiter="/", MaxKeys=1, **kw)
        assert len(got) + len(prefixes) == 1
        seen += got + prefixes
        if not resp["IsTruncated"]:
            break
        if version == 2:
            kw = {"ContinuationToken": resp["NextContinuationToken"]}
        else:
            assert resp["NextMarker"] == seen[-1]
            kw = {"Marker": resp["NextMarker"]}
    assert seen == ["a/", "b/", "c", "d/"]


# -- encoding-type=url -----------------------------------------------------------------------

ODD_KEYS = [
    "sp ace",
    "two  spaces ",
    "plus+sign",
    "per%cent",
    "per%2Fcent",
    "uni-é-😀-\u4e2d",
    "tab\there",
    "ctl\x01\x02\x1f\x7f",
    "new\nline",
    "amp&lt<gt>\"quote'",
    "q?h#s=e;c,o:l@",
    "dir one/file two",
    "star*tilde~",
]

_URL_SAFE = re.compile(r"^[A-Za-z0-9%+._~/*-]*$")


def _assert_encoded(raw: str, plain: str) -> None:
    assert _URL_SAFE.match(raw), f"{raw!r} is not URL-encoded"
    assert unquote_plus(raw) == plain


@VERSIONS
def test_keys_round_trip_with_boto3_default_encoding(s3, bucket, version):
    put_keys(s3, bucket, ODD_KEYS)
    got, _, _ = listing(s3, version, bucket)
    assert got == utf8_sorted(ODD_KEYS)
    for key in ODD_KEYS:
        got, _, _ = listing(s3, version, bucket, Prefix=key)
        assert got == [key]


@VERSIONS
def test_encoding_type_url_encodes_keys(s3, bucket, version):
    put_keys(s3, bucket, ODD_KEYS)
    _, _, resp = listing(s3, version, bucket, EncodingType="url")
    assert resp["EncodingType"] == "url"
    raw = [o["Key"] for o in resp["Contents"]]
    assert len(raw) == len(ODD_KEYS)
    for r, plain in zip(raw, utf8_sorted(ODD_KEYS), strict=True):
        _assert_encoded(r, plain)
    assert any(r != p for r, p in zip(raw, utf8_sorted(ODD_KEYS), strict=True))


def test_encoding_type_url_v2_prefix_delimiter_start_after(s3, bucket):
    keys = ["dir one/a b", "dir one/c+d", "dir one/sub dir/x", "dir two"]
    put_keys(s3, bucket, keys)
    resp = s3.list_objects_v2(
        Bucket=bucket,
        Prefix="dir one/",
        Delimiter=" ",
        StartAfter="dir one/a b",
        EncodingType="url",
    )
    _assert_encoded(resp["Prefix"], "dir one/")
    _assert_encoded(resp["Delimiter"], " ")
    _assert_encoded(resp["StartAfter"], "dir one/a b")
    assert [unquote_plus(o["Key"]) for o in resp["Contents"]] == ["dir one/c+d"]
    _assert_encoded(resp["Contents"][0]["Key"], "dir one/c+d")
    prefixes = [p["Prefix"] for p in resp["CommonPrefixes"]]
    assert [unquote_plus(p) for p in prefixes] == ["dir one/sub "]
    _assert_encoded(prefixes[0], "dir one/sub ")


def test_encoding_type_url_v1_marker_and_next_marker(s3, bucket):
    keys = ["m 1", "m 2", "m+3", "m%4"]
    put_keys(s3, bucket, keys)
    resp = s3.list_objects(
        Bucket=bucket, Marker="m 1", Delimiter="+", MaxKeys=1, EncodingType="url"
    )
    _assert_encoded(resp["Marker"], "m 1")
    _assert_encoded(resp["Delimiter"], "+")
    assert resp["IsTruncated"] is True
    assert [unquote_plus(o["Key"]) for o in resp["Contents"]] == ["m 2"]
    _assert_encoded(resp["NextMarker"], "m 2")
    resp = s3.list_objects(Bucket=bucket, Marker="m 2", Delimiter="+", EncodingType="url")
    assert [unquote_plus(o["Key"]) for o in resp["Contents"]] == ["m%4"]
    assert [unquote_plus(p["Prefix"]) for p in resp["CommonPrefixes"]] == ["m+"]
    # And with boto3's own encoding and decoding, everything comes back plain.
    got, prefixes, resp = listing(s3, 1, bucket, Marker="m 1", Delimiter="+", MaxKeys=1)
    assert got == ["m 2"]
    assert resp["NextMarker"] == "m 2"
    assert resp["Marker"] == "m 1"


# -- fetch-owner, fields, KeyCount ------------------------------------------------------------


def test_fetch_owner_and_object_fields(s3, bucket):
    body = b"hello listing"
    etag = s3.put_object(Bucket=bucket, Key="obj", Body=body)["ETag"]
    put_keys(s3, bucket, ["d/x"])
    owner = s3.list_buckets()["Owner"]

    resp = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert resp["Name"] == bucket
    assert resp["KeyCount"] == 2
    assert resp["MaxKeys"] == 1000
    [obj] = resp["Contents"]
    assert obj["Key"] == "obj"
    assert obj["Size"] == len(body)
    assert obj["ETag"] == etag
    assert obj["StorageClass"] == "STANDARD"
    assert obj["LastModified"].year >= 2024
    assert "Owner" not in obj

    resp = s3.list_objects_v2(Bucket=bucket, Delimiter="/", FetchOwner=True)
    [obj] = resp["Contents"]
    assert obj["Owner"]["ID"] == owner["ID"]
    assert obj["Owner"].get("DisplayName") == owner.get("DisplayName")

    resp = s3.list_objects_v2(Bucket=bucket, Delimiter="/", FetchOwner=False)
    assert "Owner" not in resp["Contents"][0]

    resp = s3.list_objects(Bucket=bucket, Delimiter="/")  # v1 always names the owner
    assert resp["Name"] == bucket
    [obj] = resp["Contents"]
    assert obj["Owner"]["ID"] == owner["ID"]
    assert obj["ETag"] == etag
    assert obj["Size"] == len(body)
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["d/"]


def test_listing_sees_writes_and_deletes_at_once(s3, bucket):
    for i in range(20):
        key = f"rw/{i:02d}"
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]] == [
            key
        ]
        s3.delete_object(Bucket=bucket, Key=key)
        assert s3.list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"] == 0


# -- 2,500 keys and the paginators ------------------------------------------------------------
#
# Flat keys "0000".."1249" and 250 groups "0000-d/".."1245-d/" of five keys each, so that with
# delimiter "/" common prefixes fall between plain keys all through the listing. Listing logic
# does not depend on the transport, so this bucket lives on the HTTP server only.

FLAT = [f"{i:04d}" for i in range(1250)]
GROUPS = [f"{j * 5:04d}-d/" for j in range(250)]
GROUPED = [f"{g}{m}" for g in GROUPS for m in range(5)]
ALL_KEYS = utf8_sorted(FLAT + GROUPED)


@pytest.fixture(scope="module")
def big_bucket(http_server) -> tuple:
    s3 = http_server.client(max_pool_connections=16)
    name = f"big-{unique('b').lower()}"
    s3.create_bucket(Bucket=name)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=name, Key=k, Body=b""), ALL_KEYS))
    return http_server.client(), name


def test_big_bucket_has_2500_keys():
    assert len(ALL_KEYS) == 2500 == len(set(ALL_KEYS))


@pytest.mark.parametrize("page_size", [None, 333, 1000])
@pytest.mark.parametrize("op", ["list_objects", "list_objects_v2"])
def test_paginator_without_delimiter_returns_every_key_once(big_bucket, op, page_size):
    s3, name = big_bucket
    config = {"PageSize": page_size} if page_size else {}
    keys: list[str] = []
    pages = 0
    for page in s3.get_paginator(op).paginate(Bucket=name, PaginationConfig=config):
        pages += 1
        keys += [o["Key"] for o in page.get("Contents", [])]
        assert "CommonPrefixes" not in page
    assert keys == ALL_KEYS
    assert pages == -(-2500 // (page_size or 1000))


@pytest.mark.parametrize("page_size", [None, 100, 7])
@pytest.mark.parametrize("op", ["list_objects", "list_objects_v2"])
def test_paginator_with_delimiter_returns_every_entry_once(big_bucket, op, page_size):
    s3, name = big_bucket
    config = {"PageSize": page_size} if page_size else {}
    keys: list[str] = []
    prefixes: list[str] = []
    entries: list[str] = []
    for page in s3.get_paginator(op).paginate(Bucket=name, Delimiter="/", PaginationConfig=config):
        page_keys = [o["Key"] for o in page.get("Contents", [])]
        page_prefixes = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if page_size:
            assert len(page_keys) + len(page_prefixes) <= page_size
        keys += page_keys
        prefixes += page_prefixes
        entries += utf8_sorted(page_keys + page_prefixes)
    assert keys == FLAT
    assert prefixes == GROUPS
    assert entries == utf8_sorted(FLAT + GROUPS)  # in order across pages, none twice


def test_paginator_within_groups(big_bucket):
    s3, name = big_bucket
    keys: list[str] = []
    for group in GROUPS[::25]:
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=name, Prefix=group, Delimiter="/", PaginationConfig={"PageSize": 2}
        ):
            keys += [o["Key"] for o in page.get("Contents", [])]
    assert keys == [f"{g}{m}" for g in GROUPS[::25] for m in range(5)]


@pytest.mark.parametrize("version", [1, 2], ids=["v1", "v2"])
def test_max_keys_above_1000_is_capped(big_bucket, version):
    s3, name = big_bucket
    got, _, resp = listing(s3, version, name, MaxKeys=5000)
    assert got == ALL_KEYS[:1000]
    assert resp["IsTruncated"] is True
    if version == 2:
        assert resp["KeyCount"] == 1000


# -- pagination while keys come and go -------------------------------------------------------


def _stable_keys() -> list[str]:
    """Keys that exist throughout: plain ones with gaps between them, and groups."""
    keys = [f"k{i:02d}5" for i in range(40)]
    keys += [f"g{i:02d}5/x" for i in range(0, 40, 3)]
    keys += [f"g{i:02d}5/y" for i in range(0, 40, 6)]
    return keys


def _paginate_with_churn(
    s3, bucket: str, version: int, delimiter: str, between: Callable[[str | None], None]
) -> tuple[list[str], list[str]]:
    """List with MaxKeys=7, calling ``between(last_entry)`` after each page."""
    keys: list[str] = []
    prefixes: list[str] = []
    kw: dict = {"MaxKeys": 7}
    if delimiter:
        kw["Delimiter"] = delimiter
    for _ in range(500):
        got, got_prefixes, resp = listing(s3, version, bucket, **kw)
        assert len(got) + len(got_prefixes) <= 7
        keys += got
        prefixes += got_prefixes
        page_last = max(got + got_prefixes, key=lambda s: s.encode(), default=None)
        if not resp["IsTruncated"]:
            break
        between(page_last)
        if version == 2:
            kw["ContinuationToken"] = resp["NextContinuationToken"]
        else:
            kw["Marker"] = resp.get("NextMarker") or got[-1]
    else:
        pytest.fail("pagination did not end")
    return keys, prefixes


def _check_churned_listing(
    keys: list[str], prefixes: list[str], stable: list[str], delimiter: str
) -> None:
    entries = keys + prefixes
    assert len(entries) == len(set(entries)), "an entry was listed twice"
    assert keys == utf8_sorted(keys)
    assert prefixes == utf8_sorted(prefixes)
    if delimiter:
        stable_keys = [k for k in stable if delimiter not in k]
        stable_prefixes = sorted({k[: k.index(delimiter) + 1] for k in stable if delimiter in k})
        for k in stable_keys:
            assert keys.count(k) == 1, k
        for p in stable_prefixes:
            assert prefixes.count(p) == 1, p
    else:
        for k in stable:
            assert keys.count(k) == 1, k


@pytest.mark.parametrize("delimiter", ["", "/"], ids=["flat", "delimited"])
@VERSIONS
def test_pagination_while_keys_are_added_and_removed(s3, bucket, version, delimiter):
    stable = _stable_keys()
    put_keys(s3, bucket, stable)
    rng = random.Random(1234 + version)
    volatile: list[str] = []
    counter = iter(range(10**6))

    def churn(last: str | None) -> None:
        assert last is not None
        n = next(counter)
        base = last.rstrip("/")
        new = [
            f"{base}0-new{n}",  # right after the cursor: may or may not be listed, once
            f"{base}-new{n}",  # also after it
            f"{last}z{n}" if last.endswith("/") else f"{last}/in{n}",  # inside the last entry
            f"a-before-{n}",  # before everything already listed
            f"k{rng.randrange(40):02d}{rng.choice('0123456789')}-v{n}",  # anywhere
            f"g{rng.randrange(40):02d}5/v{n}",  # inside a stable group
            f"h{n:03d}/v",  # a new group
        ]
        for key in new:
            s3.put_object(Bucket=bucket, Key=key, Body=b"v")
        volatile.extend(new)
        for key in rng.sample(volatile, k=min(len(volatile), 5)):
            s3.delete_object(Bucket=bucket, Key=key)
            volatile.remove(key)

    keys, prefixes = _paginate_with_churn(s3, bucket, version, delimiter, churn)
    _check_churned_listing(keys, prefixes, stable, delimiter)
    assert not any(k.startswith("a-before-") for k in keys + prefixes)


@pytest.mark.parametrize(
    ("version", "delimiter"), [(1, "/"), (2, ""), (2, "/")], ids=["v1-delim", "v2-flat", "v2-delim"]
)
def test_pagination_while_another_client_writes(server: Server, bucket, version, delimiter):
    s3 = server.client()
    stable = _stable_keys()
    put_keys(s3, bucket, stable)
    stop = threading.Event()
    errors: list[BaseException] = []
    writes = [0]

    def writer() -> None:
        w = server.client()
        rng = random.Random(99)
        live: list[str] = []
        try:
            while not stop.is_set():
                i = rng.randrange(40)
                key = rng.choice([f"k{i:02d}{rng.randrange(10)}", f"g{i:02d}5/w", f"h{i:02d}/w"])
                if key in stable:
                    continue
                if key in live:
                    w.delete_object(Bucket=bucket, Key=key)
                    live.remove(key)
                else:
                    w.put_object(Bucket=bucket, Key=key, Body=b"w")
                    live.append(key)
                writes[0] += 1
        except BaseException as e:  # surfaced in the main thread
            errors.append(e)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        keys, prefixes = _paginate_with_churn(
            s3, bucket, version, delimiter, lambda _last: stop.wait(0.02)
        )
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    assert writes[0] > 0
    _check_churned_listing(keys, prefixes, stable, delimiter)


XML_KEYS = ["amp&lt<gt>\"quote'", "cr\rlf", "x]]>y", "new\nline", "dir/a&b", "dir/c<d"]


@pytest.mark.parametrize("delimiter", ["", "/"], ids=["flat", "delimited"])
def test_raw_keys_round_trip_as_xml_text(s3, bucket, delimiter):
    """Without encoding-type the keys are XML text: &, <, > escaped and a carriage return as
    a character reference (a parser would turn a literal one into a newline). Flat pages are
    read on the event loop and delimited ones in the pool: both render the same way."""
    put_keys(s3, bucket, XML_KEYS)
    rewrite_query(s3, "ListObjectsV2", "&encoding-type=url", "")
    keys, prefixes, resp = listing(s3, 2, bucket, Delimiter=delimiter)
    assert "EncodingType" not in resp
    if delimiter:
        assert prefixes == ["dir/"]
        assert keys == utf8_sorted(k for k in XML_KEYS if not k.startswith("dir/"))
    else:
        assert keys == utf8_sorted(XML_KEYS)
