"""Caches for functions of request input, bounded in bytes as well as in entries.

``functools.lru_cache`` bounds the number of entries, not their size. Keyed by what a client
sends (query strings, query segments, credentials) or by index text (an object's segment
list), an entry can be as large as a request head (256 KiB) or a 10,000-part object's row,
and 4,096 of those would hold a gigabyte: invariant 8 (nothing large is held in memory)
broken through a cache. Long arguments are therefore computed every time and never kept;
the repeated short ones, which are what the caches are for, still hit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")


def short_lru_cache(
    maxsize: int, max_len: int, worth: Callable[..., bool] | None = None
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """``lru_cache(maxsize)`` for calls whose text arguments (str and bytes) are at most
    ``max_len`` long together, and for which ``worth(*args)`` (if given) is true: a value
    can be much larger than its key (a 2 KiB query of 400 parameters parses into 400 tuples,
    ~45 KB), and ``worth`` keeps those out. docs/performance.md gives each cache's bound in
    bytes, values included; tests/unit/test_caching.py measures them."""

    def wrap(fn: Callable[..., R]) -> Callable[..., R]:
        cached = functools.lru_cache(maxsize=maxsize)(fn)

        @functools.wraps(fn)
        def call(*args: Any) -> R:
            if _text_len(args) > max_len or (worth is not None and not worth(*args)):
                return fn(*args)
            return cached(*args)

        call.cache_info = cached.cache_info  # type: ignore[attr-defined]
        call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return call

    return wrap


def _text_len(args: tuple) -> int:
    return sum(len(a) for a in args if isinstance(a, str | bytes))


def few_params(raw_query: str) -> bool:
    """A query worth caching parsed: presigned URLs and listings have about ten parameters."""
    return raw_query.count("&") < MAX_CACHED_PARAMS


MAX_CACHED_PARAMS = 16
