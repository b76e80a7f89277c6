"""Caches keyed by request input keep short keys only: a client sending long, ever-different
query strings must not fill a worker's memory through them (invariant 8)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable

import pytest

from holdfast.caching import short_lru_cache
from holdfast.index import records
from holdfast.index.records import Segment, segments_from_text, segments_to_text
from holdfast.s3 import auth, http, website
from holdfast.s3.auth import AuthResult
from holdfast.s3.http import Request
from holdfast.s3.presign_cache import PresignedCache
from holdfast.service.users import RootCredentials, Users


def test_short_arguments_are_cached_and_long_ones_never_kept() -> None:
    calls: list[str] = []

    @short_lru_cache(maxsize=8, max_len=4)
    def upper(text: str) -> str:
        calls.append(text)
        return text.upper()

    assert upper("ab") == upper("ab") == "AB"
    assert calls == ["ab"]
    assert upper("abcdefgh") == upper("abcdefgh") == "ABCDEFGH"
    assert calls == ["ab", "abcdefgh", "abcdefgh"]
    assert upper.cache_info().currsize == 1


def test_a_long_query_is_parsed_but_not_kept() -> None:
    http._parsed_query.cache_clear()
    auth._split_query.cache_clear()
    auth._query_pair.cache_clear()
    long_query = "&".join(f"p{i}={'v' * 600}{i}" for i in range(20))  # 12 KB, long segments
    assert http.parse_query(long_query)["p19"] == "v" * 600 + "19"
    assert http._parsed_query.cache_info().currsize == 0
    assert auth._split_query.cache_info().currsize == 0
    assert auth._query_pair.cache_info().currsize == 0
    assert http.parse_query("uploads&prefix=a%2Fb") == {"uploads": "", "prefix": "a/b"}
    assert http._parsed_query.cache_info().currsize == 1


def test_a_long_segment_list_is_parsed_but_not_kept() -> None:
    parts = [
        Segment(f"blob{i:04d}", 5 << 20, 1 << 20, b"\0" * 20, ("d0", "d1")) for i in range(100)
    ]
    text = segments_to_text(parts)  # a multipart object's row: ~10 KB
    records._parse_segments.cache_clear()
    assert segments_from_text(text) == parts
    assert records._parse_segments.cache_info().currsize == 0
    assert segments_from_text(segments_to_text(parts[:1])) == parts[:1]
    assert records._parse_segments.cache_info().currsize == 1


# -- every cache's bound in bytes (docs/performance.md, "Caches and their bounds") ----------


def _bytes_held(clear: Callable[[], None], fill: Callable[[], None]) -> int:
    """Bytes still allocated after ``fill`` (which keeps nothing itself): what the cache holds."""
    clear()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        fill()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(s.size_diff for s in after.compare_to(before, "filename"))


def _query(i: int, params: int, length: int) -> str:
    width = length // params - 6
    return "&".join(f"p{j:02d}={i:06d}{'v' * (width - 6)}" for j in range(params))[:length]


def _longest_segment_text() -> str:
    """The longest segment list the cache keeps (segments of a multipart object)."""
    seg = [Segment(f"{j:032x}", 5 << 20, 1 << 20, b"\1" * 20, ("d0", "d1")) for j in range(9)]
    for n in range(len(seg), 0, -1):
        text = segments_to_text(seg[:n])
        if len(text) <= 1024:
            return text
    raise AssertionError("a single segment is over the cache's length bound")


SEGMENT_TEXT = _longest_segment_text()


def _segments(i: int) -> str:
    return SEGMENT_TEXT.replace('"id":"0000', f'"id":"{i:04x}')


def _website(i: int) -> str:
    """The longest website configuration the cache keeps: as many long rules as fit."""
    rule = website.Rule("p" * 40, 404, website.Redirect("h" * 40, "https", 302, None, "r" * 40))
    rules: tuple = ()
    while True:
        site = website.Website(f"{i:06d}.html", "e" * 40, None, (*rules, rule))
        if len(website.to_json(site)) > website.MAX_CACHED_TEXT:
            return website.to_json(website.Website(f"{i:06d}.html", "e" * 40, None, rules))
        rules = site.rules


def _clear_query_caches() -> None:
    http._parsed_query.cache_clear()
    auth._split_query.cache_clear()
    auth._query_pair.cache_clear()


MIB = 1 << 20
# name -> (clear, fill with distinct worst-case arguments up to the cache's limits, bound)
CACHES = {
    "query parsing (the three caches below it too)": (
        _clear_query_caches,
        lambda: [http.parse_query(_query(i, 16, 2048)) for i in range(4096)] and None,
        36 * MIB,
    ),
    "split query (auth)": (
        auth._split_query.cache_clear,
        lambda: [auth._split_query(_query(i, 16, 2048)) for i in range(1024)] and None,
        8 * MIB,
    ),
    "query segment": (
        auth._query_pair.cache_clear,
        lambda: [auth._query_pair(f"{i:06d}=" + "v" * 505) for i in range(4096)] and None,
        6 * MIB,
    ),
    "strict encoding": (
        auth._strict_quote.cache_clear,
        lambda: [auth._strict_quote(b"%06d" % i + b"\xff" * 506) for i in range(4096)] and None,
        10 * MIB,
    ),
    "credential": (
        auth._parse_credential.cache_clear,
        lambda: (
            [
                auth._parse_credential(f"{i:0150d}/20261202/{'r' * 40}/s3/aws4_request", "Err")
                for i in range(1024)
            ]
            and None
        ),
        1 * MIB,
    ),
    "signed headers": (
        auth._parse_signed_headers.cache_clear,
        lambda: (
            [
                auth._parse_signed_headers(
                    ";".join(["host", *(f"h{j}-{i}" for j in range(60))]), "E"
                )
                for i in range(1024)
            ]
            and None
        ),
        6 * MIB,
    ),
    "signing key": (
        auth.derive_signing_key.cache_clear,
        lambda: (
            [auth.derive_signing_key("s" * 40, "20261202", f"{i:0200d}") for i in range(1024)]
            and None
        ),
        1 * MIB,
    ),
    "segment lists": (
        records._parse_segments.cache_clear,
        lambda: [records._parse_segments(_segments(i)) for i in range(8192)] and None,
        44 * MIB,
    ),
    "website configurations": (
        website.from_json.cache_clear,
        lambda: [website.from_json(_website(i)) for i in range(128)] and None,
        6 * MIB,
    ),
    "HTTP dates": (
        http._http_date.cache_clear,
        lambda: [http._http_date(1_800_000_000 + i) for i in range(4096)] and None,
        1 * MIB,
    ),
    "ISO seconds": (
        http.iso_second.cache_clear,
        lambda: [http.iso_second(1_800_000_000 + i) for i in range(4096)] and None,
        1 * MIB,
    ),
}


@pytest.mark.parametrize("name", list(CACHES))
def test_every_cache_stays_within_its_bound_in_bytes(name: str) -> None:
    """Filled to its entry limit with the largest arguments it keeps, each cache holds no
    more than the bound docs/performance.md gives it."""
    clear, fill, bound = CACHES[name]
    held = _bytes_held(clear, fill)
    clear()
    assert held <= bound, f"{name}: {held / MIB:.1f} MiB held, bound {bound / MIB:.0f} MiB"


def test_many_parameters_are_parsed_but_not_kept() -> None:
    """A 2 KiB query of 300 parameters parses into 300 tuples (~45 KB): 4,096 of them were
    185 MiB in the parsed-query cache alone."""
    held = _bytes_held(
        _clear_query_caches,
        lambda: [http.parse_query(_query(i, 300, 2048)) for i in range(256)] and None,
    )
    assert http._parsed_query.cache_info().currsize == 0
    assert auth._split_query.cache_info().currsize == 0
    assert held < 2 * MIB, held  # the short segments, in their own cache of 4,096


def test_presigned_cache_is_bounded_in_bytes() -> None:
    cache = PresignedCache(size=4096, max_bytes=1 * MIB)
    auth_result = AuthResult("AK", b"k", "s" * 64, "20261202T000000Z", "scope", "UNSIGNED", True)
    for i in range(2000):
        request = Request(
            method="GET",
            raw_path=f"/b/{i:06d}" + "k" * 4000,
            raw_query="X-Amz-Signature=" + "0" * 64 + "&X-Amz-Expires=60&" + "q" * 1900,
            query={
                "X-Amz-Signature": "0" * 64,
                "X-Amz-Expires": "60",
                "X-Amz-SignedHeaders": "host",
            },
            headers={"host": "h" * 1000},
            receive=None,  # type: ignore[arg-type]
            request_id="R",
        )
        key = cache.key(request)
        assert key is not None
        cache.put(key, request, auth_result, "secret")
    assert cache.bytes <= 1 * MIB
    assert len(cache._entries) < 200  # ~7 KB each: the byte bound, not the 4,096 entries
    # Signed header values beyond 1 KiB are not part of any key: verified each time.
    request.headers["host"] = "h" * 2000
    assert cache.key(request) is None


def test_long_access_keys_are_looked_up_but_not_kept() -> None:
    import asyncio

    class Index:
        async def get_user_by_key(self, access_key: str):
            return None

    users = Users(Index(), RootCredentials("ROOTKEY", "secret", "test"))  # type: ignore[arg-type]
    for i in range(100):
        assert asyncio.run(users.lookup(f"{i:06d}" + "A" * 16_000)) is None
    assert asyncio.run(users.lookup("SHORT")) is None
    assert list(users._cache) == ["SHORT"]
