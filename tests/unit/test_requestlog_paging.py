"""Paging through request-log search results with the ``before`` cursor (the admin UI's
"Older" button): every match exactly once, in order, even when many records share one
timestamp, and records written between pages do not shift them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from holdfast.ops.requestlog import (
    LogQuery,
    RequestLogWriter,
    page_cursor,
    parse_cursor,
    search,
)


def _write(directory: Path, records: list[dict]) -> None:
    writer = RequestLogWriter(directory, max_bytes=1024 * 1024)
    writer.write(("\n".join(json.dumps(r) for r in records) + "\n").encode())
    writer.close()


def _pages(directory: Path, limit: int) -> list[list[str]]:
    pages, before = [], None
    while True:
        query = LogQuery(limit=limit, before=parse_cursor(before) if before else None)
        records = search(directory, query)
        pages.append([r["request_id"] for r in records])
        before = page_cursor(records, query)
        if before is None:
            return pages


def test_pages_cover_every_record_once_in_order(tmp_path: Path):
    # 25 records over 5 timestamps: ties broken by request id, as the cursor expects.
    records = [{"ts": 1000.0 + i // 5, "request_id": f"R{i:03d}", "status": 200} for i in range(25)]
    _write(tmp_path, records)
    pages = _pages(tmp_path, limit=7)
    assert [len(p) for p in pages] == [7, 7, 7, 4]
    flat = [rid for page in pages for rid in page]
    assert flat == [f"R{i:03d}" for i in reversed(range(25))]


def test_newer_records_do_not_shift_the_next_page(tmp_path: Path):
    _write(tmp_path, [{"ts": 1000.0 + i, "request_id": f"A{i:02d}"} for i in range(10)])
    query = LogQuery(limit=4)
    first = search(tmp_path, query)
    cursor = page_cursor(first, query)
    _write(tmp_path, [{"ts": 2000.0 + i, "request_id": f"B{i:02d}"} for i in range(3)])
    second = search(tmp_path, LogQuery(limit=4, before=parse_cursor(cursor)))
    assert [r["request_id"] for r in second] == ["A05", "A04", "A03", "A02"]


@pytest.mark.parametrize("bad", ["", "abc", "1000", "nan,R1", "x,R1"])
def test_a_bad_cursor_is_refused(bad):
    with pytest.raises(ValueError):
        parse_cursor(bad)
