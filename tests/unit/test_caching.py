"""Caches keyed by request input keep short keys only: a client sending long, ever-different
query strings must not fill a worker's memory through them (invariant 8)."""

from __future__ import annotations

from holdfast.caching import short_lru_cache
from holdfast.index import records
from holdfast.index.records import Segment, segments_from_text, segments_to_text
from holdfast.s3 import auth, http


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
