"""One listing page (prefix, delimiter, marker, max-keys) built from key-range queries: the
pure part of listing, shared by every engine.

Pagination resumes strictly after the last key or common prefix returned, in binary key order,
so no key that exists throughout a listing is repeated or skipped however keys are added and
removed between pages. A common prefix is skipped over with one index seek, not by walking
every key below it.

:class:`PageBuilder` only decides which query comes next and consumes its rows; an engine
drives it synchronously (SQLite, in one thread) or asynchronously (a network engine, one
round trip per query), see :func:`build_page` and :meth:`holdfast.index.base.Index.list_page`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from holdfast.index.records import ListedEntry

# Rows per key-range query: a whole page of S3's largest size (1,000) and the one more row
# that answers "truncated?", so a page without a delimiter is one query (one round trip on
# a network engine), not 1,000 rows and then a second query for one row.
BATCH = 1001


@dataclass
class ListPage:
    entries: list[ListedEntry] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    last: str | None = None  # the last key or common prefix returned: the next marker


def common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    """The common prefix ``key`` is rolled up into (through the first ``delimiter`` after
    ``prefix``), or None when it is listed on its own."""
    if not delimiter:
        return None
    i = key.find(delimiter, len(prefix))
    return key[: i + len(delimiter)] if i >= 0 else None


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``, or None when
    no such string exists (prefix made only of the maximal code point)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot appear in UTF-8 keys
                nxt = 0xE000
            return "".join(chars) + chr(nxt)
    return None


class PageBuilder:
    """The state of one page being built: ``query()`` gives the next key-range query as
    (start, inclusive, limit), or None when the page is done; ``take(rows)`` consumes its
    answer."""

    def __init__(self, prefix: str, delimiter: str, after: str | None, max_keys: int) -> None:
        self.prefix, self.delimiter, self.after, self.max_keys = prefix, delimiter, after, max_keys
        self.page = ListPage()
        self._cursor: tuple[str | None, bool] | None = (after, False)
        self._limit = 0

    def query(self) -> tuple[str | None, bool, int] | None:
        if self._cursor is None or self.max_keys <= 0:
            return None
        start, inclusive = self._cursor
        # One row more than the page still needs answers "truncated?" in the same query.
        taken = len(self.page.entries) + len(self.page.prefixes)
        self._limit = min(BATCH, self.max_keys - taken + 1)
        return start, inclusive, self._limit

    def take(self, rows: list[ListedEntry]) -> None:
        self._cursor = self._consume(rows) if rows else None

    def _consume(self, rows: list[ListedEntry]) -> tuple[str | None, bool] | None:
        """Take rows into the page; return where the next query starts (None: done). A
        common prefix ends the batch, because the next query seeks past its whole group."""
        page, after, max_keys = self.page, self.after, self.max_keys
        for row in rows:
            group = common_prefix(row.key, self.prefix, self.delimiter)
            if group is not None and after is not None and group <= after:
                # The marker lies inside this group: it was returned on an earlier page.
                return _past(group)
            if len(page.entries) + len(page.prefixes) == max_keys:
                page.truncated = True
                return None
            if group is None:
                page.entries.append(row)
                page.last = row.key
                continue
            page.prefixes.append(group)
            page.last = group
            return _past(group)
        # Fewer rows than asked for: the range holds no more (no query for an empty answer).
        return (rows[-1].key, False) if len(rows) >= self._limit else None


def build_page(
    list_keys: Callable[[str, str, str | None, bool, int], list[ListedEntry]],
    bucket: str,
    prefix: str,
    delimiter: str,
    after: str | None,
    max_keys: int,
) -> ListPage:
    """A whole page from a blocking ``list_keys(bucket, prefix, start, inclusive, limit)``."""
    builder = PageBuilder(prefix, delimiter, after, max_keys)
    while (q := builder.query()) is not None:
        builder.take(list_keys(bucket, prefix, *q))
    return builder.page


def walk_limit(max_keys: int) -> int:
    """How many rows a skip-scan walk (one row per key or common prefix, in order, from the
    marker) needs for one page: the page, one more to answer "truncated?", and one for a
    group that holds the marker (returned on an earlier page, skipped here)."""
    return max_keys + 2


def page_from_walk(
    rows: list[ListedEntry], prefix: str, delimiter: str, after: str | None, max_keys: int
) -> ListPage:
    """A page from a skip-scan walk that an engine ran in one query: the first key after the
    marker, then each next key strictly past the previous row's common prefix (or key), at
    most :func:`walk_limit` rows. Only the first row's group can hold the marker."""
    page = ListPage()
    for row in rows:
        group = common_prefix(row.key, prefix, delimiter)
        if group is not None and after is not None and group <= after:
            continue
        if len(page.entries) + len(page.prefixes) >= max_keys:
            page.truncated = True
            break
        if group is None:
            page.entries.append(row)
            page.last = row.key
        else:
            page.prefixes.append(group)
            page.last = group
    return page


def _past(group: str) -> tuple[str | None, bool] | None:
    """The cursor just past every key that starts with ``group``."""
    upper = prefix_upper_bound(group)
    return (upper, True) if upper is not None else None
