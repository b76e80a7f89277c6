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
from collections.abc import Callable, Sized
from typing import Any, TypeVar

R = TypeVar("R")


def short_lru_cache(maxsize: int, max_len: int) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """``lru_cache(maxsize)`` for calls whose first argument is at most ``max_len`` long."""

    def wrap(fn: Callable[..., R]) -> Callable[..., R]:
        cached = functools.lru_cache(maxsize=maxsize)(fn)

        @functools.wraps(fn)
        def call(first: Sized, *rest: Any) -> R:
            if len(first) > max_len:
                return fn(first, *rest)
            return cached(first, *rest)

        call.cache_info = cached.cache_info  # type: ignore[attr-defined]
        call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return call

    return wrap
