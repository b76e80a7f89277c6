"""Conditional requests and byte ranges (RFC 9110 as S3 applies them)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord
from holdfast.s3.http import parse_http_date

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _etag_matches(header: str, etag: str) -> bool:
    wanted = etag.strip('"')
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/").strip('"') == wanted:
            return True
    return False


def _modified_since(header: str | None, obj: ObjectRecord) -> bool | None:
    """None when the header is absent or unparseable (RFC: then it is ignored)."""
    if header is None:
        return None
    since = parse_http_date(header)
    if since is None:
        return None
    return int(obj.last_modified) > int(since)


def check_read_conditions(
    headers: Mapping[str, str], obj: ObjectRecord, prefix: str = "if-"
) -> str | None:
    """Evaluate If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since in S3's
    order. Returns "412", "304" or None (proceed). ``prefix`` selects the
    x-amz-copy-source-if-* family for copies."""
    if_match = headers.get(prefix + "match")
    if if_match is not None:
        if not _etag_matches(if_match, obj.etag):
            return "412"
    elif _modified_since(headers.get(prefix + "unmodified-since"), obj) is True:
        return "412"
    if_none_match = headers.get(prefix + "none-match")
    if if_none_match is not None:
        if _etag_matches(if_none_match, obj.etag):
            return "304"
    elif _modified_since(headers.get(prefix + "modified-since"), obj) is False:
        return "304"
    return None


def raise_for_read_conditions(headers: Mapping[str, str], obj: ObjectRecord) -> None:
    outcome = check_read_conditions(headers, obj)
    if outcome == "412":
        raise S3Error("PreconditionFailed", Condition="If-Match")
    if outcome == "304":
        raise S3Error(
            "NotModified",
            headers={"ETag": obj.etag},
        )


def raise_for_copy_conditions(headers: Mapping[str, str], obj: ObjectRecord) -> None:
    """Copies answer 412 for every failed x-amz-copy-source-if-* condition."""
    if check_read_conditions(headers, obj, prefix="x-amz-copy-source-if-") is not None:
        raise S3Error("PreconditionFailed", Condition="x-amz-copy-source-If")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) for a single satisfiable range; None for no range or one S3 ignores
    (syntax it does not understand, several ranges); InvalidRange when unsatisfiable."""
    if header is None:
        return None
    m = _RANGE.match(header.strip())
    if m is None:
        return None
    first, last = m.groups()
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0:
            raise _unsatisfiable(size)
        return max(size - suffix, 0), size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> S3Error:
    return S3Error(
        "InvalidRange",
        headers={"Content-Range": f"bytes */{size}"},
        ActualObjectSize=str(size),
    )
