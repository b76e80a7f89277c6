"""The listing logic (prefix, delimiter, marker, max-keys) against a brute-force model of S3's
rules, on a real SQLite index in a temporary directory. No server, no HTTP."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import holdfast.index.listing as listing_mod
from holdfast.errors import S3Error
from holdfast.index.listing import build_page
from holdfast.index.records import ObjectRecord
from holdfast.index.sqlite import SqliteIndex, prefix_upper_bound
from holdfast.s3.ops.listing import decode_token, encode_token

_buckets = itertools.count()


class Fixture:
    def __init__(self, tmp: Path) -> None:
        self.index = SqliteIndex(tmp / "index.db")

    def bucket_with(self, keys: set[str]) -> str:
        bucket = f"b{next(_buckets)}"
        with self.index._write() as db:  # one transaction: one fsync for the whole set
            for key in keys:
                self.index._insert_object(
                    db,
                    ObjectRecord(
                        bucket=bucket, key=key, size=0, etag='"e"', last_modified=0, segments=[]
                    ),
                )
        return bucket

    def page(self, bucket, prefix="", delimiter="", after=None, max_keys=1000):
        return build_page(self.index.list_keys, bucket, prefix, delimiter, after, max_keys)


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> Fixture:
    return Fixture(tmp_path_factory.mktemp("listing"))


def model(
    keys: set[str], prefix: str, delimiter: str, after: str | None, max_keys: int
) -> tuple[list[tuple[str, bool]], bool]:
    """S3's listing, by brute force: (entries as (name, is_common_prefix), truncated).

    Keys within the prefix and after the marker, in binary UTF-8 order; a key with the
    delimiter after the prefix rolls up into its common prefix, which is listed once and never
    again once the marker has reached it."""
    entries: list[tuple[str, bool]] = []
    for key in sorted(keys, key=lambda k: k.encode("utf-8")):
        if not key.startswith(prefix) or (after is not None and key <= after):
            continue
        i = key.find(delimiter, len(prefix)) if delimiter else -1
        if i < 0:
            entries.append((key, False))
            continue
        group = key[: i + len(delimiter)]
        if (after is not None and group <= after) or (group, True) in entries:
            continue
        entries.append((group, True))
    return entries[:max_keys], max_keys > 0 and len(entries) > max_keys


def as_entries(page) -> list[tuple[str, bool]]:
    out = [(e.key, False) for e in page.entries] + [(p, True) for p in page.prefixes]
    return sorted(out, key=lambda e: e[0].encode("utf-8"))


# -- examples --------------------------------------------------------------------------------

TREE = {"a", "a/b/c", "a/b/d", "a/c", "a/d/", "a//e", "ab", "b/x", "b/y/z", "c"}


@pytest.mark.parametrize(
    ("prefix", "delimiter", "after", "max_keys", "expected", "truncated"),
    [
        ("", "/", None, 1000, [("a", 0), ("a/", 1), ("ab", 0), ("b/", 1), ("c", 0)], False),
        ("", "/", "a/", 1000, [("ab", 0), ("b/", 1), ("c", 0)], False),
        ("", "/", "a", 2, [("a/", 1), ("ab", 0)], True),
        ("a/", "/", None, 1000, [("a//", 1), ("a/b/", 1), ("a/c", 0), ("a/d/", 1)], False),
        ("a/", "/", "a/b/", 1, [("a/c", 0)], True),
        ("", "", "a/d/", 3, [("ab", 0), ("b/x", 0), ("b/y/z", 0)], True),
        ("", "", "c", 5, [], False),
        ("", "/", None, 0, [], False),
        ("", "b/", None, 1000, [("a", 0), ("a//e", 0), ("a/b/", 1), ("a/c", 0), ("a/d/", 0),
                                ("ab", 0), ("b/", 1), ("c", 0)], False),
    ],
)  # fmt: skip
def test_examples(fx, prefix, delimiter, after, max_keys, expected, truncated):
    bucket = fx.bucket_with(TREE)
    page = fx.page(bucket, prefix, delimiter, after, max_keys)
    assert as_entries(page) == [(n, bool(p)) for n, p in expected]
    assert page.truncated is truncated
    assert page.last == (expected[-1][0] if expected else None)
    assert model(TREE, prefix, delimiter, after, max_keys) == (
        [(n, bool(p)) for n, p in expected],
        truncated,
    )


def test_batch_boundaries(fx, monkeypatch):
    """Pages longer than one index batch, and groups that straddle batches."""
    monkeypatch.setattr(listing_mod, "BATCH", 3)
    keys = {f"{i:03d}" for i in range(40)} | {
        f"{i:03d}/{j}" for i in range(0, 40, 4) for j in range(7)
    }
    bucket = fx.bucket_with(keys)
    for delimiter in ("", "/"):
        for max_keys in (1, 2, 3, 4, 7, 1000):
            after = None
            seen: list[tuple[str, bool]] = []
            for _ in range(1000):
                page = fx.page(bucket, "", delimiter, after, max_keys)
                entries = as_entries(page)
                assert (entries, page.truncated) == model(keys, "", delimiter, after, max_keys)
                seen += entries
                if not page.truncated:
                    break
                after = page.last
            assert seen == model(keys, "", delimiter, None, 10**6)[0]


# -- properties ------------------------------------------------------------------------------

ALPHABET = ["a", "b", "/", "-", "é", "😀", "\U0010ffff", "\ud7ff", "\ue000"]
key_st = st.text(alphabet=ALPHABET, min_size=1, max_size=5)
small_st = st.text(alphabet=ALPHABET, max_size=3)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=st.sets(key_st, max_size=25),
    prefix=small_st,
    delimiter=st.sampled_from(["", "/", "-", "a/", "😀", "\U0010ffff", "//"]),
    after=st.one_of(st.none(), small_st, key_st),
    max_keys=st.integers(0, 8),
    batch=st.sampled_from([1, 2, 1000]),
)
def test_page_matches_model(fx, keys, prefix, delimiter, after, max_keys, batch):
    listing_mod.BATCH, saved = batch, listing_mod.BATCH
    try:
        bucket = fx.bucket_with(keys)
        page = fx.page(bucket, prefix, delimiter, after or None, max_keys)
    finally:
        listing_mod.BATCH = saved
    expected, truncated = model(keys, prefix, delimiter, after or None, max_keys)
    assert as_entries(page) == expected
    assert page.truncated is truncated
    assert page.last == (expected[-1][0] if expected else None)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=st.sets(key_st, max_size=25),
    prefix=small_st,
    delimiter=st.sampled_from(["", "/", "a/", "😀"]),
    max_keys=st.integers(1, 5),
)
def test_pagination_lists_each_entry_once(fx, keys, prefix, delimiter, max_keys):
    bucket = fx.bucket_with(keys)
    seen: list[tuple[str, bool]] = []
    after = None
    for _ in range(100):
        page = fx.page(bucket, prefix, delimiter, after, max_keys)
        seen += as_entries(page)
        if not page.truncated:
            break
        after = page.last
    assert seen == model(keys, prefix, delimiter, None, 10**6)[0]


# -- helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "upper"),
    [
        ("a", "b"),
        ("ab", "ac"),
        ("a/", "a0"),
        ("\ud7ff", "\ue000"),  # skips the surrogates, which UTF-8 keys cannot hold
        ("a\U0010ffff", "b"),
        ("\U0010ffff\U0010ffff", None),
        ("é", "ê"),
    ],
)
def test_prefix_upper_bound(prefix, upper):
    assert prefix_upper_bound(prefix) == upper


@given(st.text(alphabet=ALPHABET, min_size=1, max_size=4), st.text(alphabet=ALPHABET, max_size=4))
def test_prefix_upper_bound_is_above_every_extension(prefix, tail):
    upper = prefix_upper_bound(prefix)
    if upper is None:
        return
    assert (prefix + tail).encode() < upper.encode()
    assert prefix.encode() < upper.encode()


@given(st.text(min_size=1).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)))
def test_continuation_token_round_trips(key):
    token = encode_token(key)
    assert decode_token(token) == key
    assert token.isascii()


@pytest.mark.parametrize("token", ["!!!", "abc", "////", "gA=="])
def test_bad_continuation_token(token):
    with pytest.raises(S3Error) as e:
        decode_token(token)
    assert e.value.code == "InvalidArgument"


def test_listing_timestamps_match_iso8601_and_the_http_second() -> None:
    """The listing inlines iso8601 with a per-second cache; it must give exactly what
    iso8601 gives, and iso8601 must show the second the Last-Modified header shows, with the
    milliseconds truncated (fractions just below a whole second stay in that second)."""
    import random
    import re
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    from holdfast.index.records import ListedEntry
    from holdfast.s3.http import http_date, iso8601
    from holdfast.s3.ops.listing import _contents
    from holdfast.s3.xml import escape

    rng = random.Random(7)
    samples = [rng.uniform(1e9, 2e9) for _ in range(20_000)]
    samples += [int(t) + 0.9999996 for t in samples[:1000]] + [round(t, 3) for t in samples[:1000]]
    samples += [1_700_000_000.0, 1_700_000_000.0005, 1_700_000_000.9995, 1_700_000_000.9999998]
    entries = [ListedEntry(f"k{i}", 1, '"e"', t) for i, t in enumerate(samples)]
    listed = re.findall(r"<LastModified>(.*?)</LastModified>", _contents(entries, escape, None))
    assert listed == [iso8601(t) for t in samples]
    for t in samples:
        text = iso8601(t)
        whole = datetime.fromtimestamp(int(t), UTC)
        assert text[:19] == whole.strftime("%Y-%m-%dT%H:%M:%S"), t
        assert text[23] == "Z" and parsedate_to_datetime(http_date(t)) == whole, t
    # Milliseconds as written, despite binary floats, and never rounded into the next second.
    assert iso8601(1_700_000_000.123) == "2023-11-14T22:13:20.123Z"
    assert iso8601(1_700_000_000.001) == "2023-11-14T22:13:20.001Z"
    assert iso8601(1_700_000_000.0005) == "2023-11-14T22:13:20.000Z"
    assert iso8601(1_700_000_000.9995) == "2023-11-14T22:13:20.999Z"
    assert iso8601(1_700_000_000.9999998) == "2023-11-14T22:13:20.999Z"


def test_flat_pages_read_on_the_loop_fall_back_to_the_pool_when_the_index_is_busy(
    tmp_path,
) -> None:
    """The SQLite engine reads a page without a delimiter on the event loop; a busy or
    locked index (OperationalError) sends it to the engine's pool instead of failing. A
    delimited page, which may take a query per common prefix, never runs on the loop."""
    import asyncio
    import sqlite3
    import threading

    from holdfast.index.records import ListedEntry
    from holdfast.index.sqlite_engine import SqliteEngine

    on_loop: list[bool] = []

    def list_keys(bucket, prefix, start, inclusive, limit):
        on_loop.append(threading.current_thread() is threading.main_thread())
        if on_loop[-1] and len(on_loop) == 1:
            raise sqlite3.OperationalError("database is locked")
        keys = [k for k in ("a", "b/c") if start is None or k > start or (inclusive and k == start)]
        return [ListedEntry(k, 1, '"e"', 1.0) for k in keys][:limit]

    async def main() -> None:
        engine = SqliteEngine(tmp_path / "index.db", checkpointer=False)
        await engine.start()
        engine.core.list_keys = list_keys  # type: ignore[method-assign]
        try:
            page = await engine.list_page("b", "", "", None, 1000)
            assert [e.key for e in page.entries] == ["a", "b/c"]
            assert on_loop[0] and on_loop[1:] and not any(on_loop[1:])  # tried, then the pool

            on_loop.clear()
            on_loop.append(False)  # the busy answer is spent
            page = await engine.list_page("b", "", "", None, 1000)
            assert [e.key for e in page.entries] == ["a", "b/c"]
            assert on_loop[1:] and all(on_loop[1:])  # the index answered: all on the loop

            on_loop.clear()
            page = await engine.list_page("b", "", "/", None, 1000)
            assert page.prefixes == ["b/"] and on_loop and not any(on_loop)
        finally:
            await engine.close()

    asyncio.run(main())
