"""Rows in the index's common column order, decoded into records.

Both engines select objects, uploads and parts in the same column order (the order of their
schemas), so one decoder per record serves SQLite and PostgreSQL alike; an engine that
changes a column list changes it here, once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from holdfast.index.records import (
    ObjectRecord,
    PartRecord,
    RepairTask,
    Segment,
    UploadRecord,
    lock_from_text,
    object_lock_text,
    segments_from_text,
    segments_to_text,
    tags_from_text,
    tags_to_text,
)


def json_dict(text: str) -> dict:
    """A stored JSON object; "{}", the common case, without the parser."""
    return {} if text == "{}" else json.loads(text)


def lock_fields(text: str | None) -> dict:
    mode, until, hold = lock_from_text(text)
    return {"retention_mode": mode, "retain_until": until, "legal_hold": hold}


def object_from_row(row: Sequence[Any]) -> ObjectRecord:
    """An ``objects`` (or ``versions``) row; a 20th column, when selected, is the
    delete-marker flag."""
    return ObjectRecord(
        bucket=row[0],
        key=row[1],
        size=row[2],
        etag=row[3],
        last_modified=row[4],
        content_type=row[5],
        headers=json_dict(row[6]),
        meta=json_dict(row[7]),
        checksum_algorithm=row[8],
        checksum_type=row[9],
        checksum_value=row[10],
        parts_count=row[11],
        state=row[12],
        segments=segments_from_text(row[13]),
        inline=row[14],
        tags=tags_from_text(row[15]),
        vseq=row[16],
        vnull=bool(row[17]),
        delete_marker=bool(row[19]) if len(row) > 19 else False,
        **lock_fields(row[18]),
    )


def upload_from_row(r: Sequence[Any]) -> UploadRecord:
    return UploadRecord(
        upload_id=r[0],
        bucket=r[1],
        key=r[2],
        owner=r[3],
        initiated=r[4],
        content_type=r[5],
        headers=json.loads(r[6]),
        meta=json.loads(r[7]),
        checksum_algorithm=r[8],
        checksum_type=r[9],
        tags=tags_from_text(r[10]),
    )


def part_from_row(r: Sequence[Any]) -> PartRecord:
    """A ``parts`` row selected as ``PART_COLUMNS`` (holdfast/index/queries.py)."""
    return PartRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], Segment.from_json(json.loads(r[7])))


def json_text(d: dict) -> str:
    """A dict as stored: compact and sorted; "{}" without the encoder (most objects have no
    stored headers or metadata)."""
    if not d:
        return "{}"
    return json.dumps(d, separators=(",", ":"), sort_keys=True)


def object_values(obj: ObjectRecord) -> tuple:
    """An object's values in the objects table's column order (both engines' INSERT)."""
    return (
        obj.bucket,
        obj.key,
        obj.size,
        obj.etag,
        obj.last_modified,
        obj.content_type,
        json_text(obj.headers),
        json_text(obj.meta),
        obj.checksum_algorithm,
        obj.checksum_type,
        obj.checksum_value,
        obj.parts_count,
        obj.state,
        segments_to_text(obj.segments),
        obj.inline,
        tags_to_text(obj.tags),
        obj.vseq,
        int(obj.vnull),
        object_lock_text(obj),
    )


REPAIR_COLUMNS = (
    "blob_id, store_id, op, reason, segment, ref, attempts, not_before, created, last_error"
)


def task_from_row(r: Sequence[Any]) -> RepairTask:
    """A repair_queue row, selected as REPAIR_COLUMNS."""
    return RepairTask(
        blob_id=r[0],
        store_id=r[1],
        op=r[2],
        reason=r[3],
        segment=Segment.from_json(json.loads(r[4])) if r[4] else None,
        ref=r[5],
        attempts=r[6],
        not_before=r[7],
        created=r[8],
        last_error=r[9],
    )


def scan_record(r: Sequence[Any]) -> ObjectRecord:
    """A row of the integrity walk (scan_objects / scan_versions, both engines), selected as
    ``bucket, key, etag, state, segments, inline, size[, vseq]``: just what the walkers
    need, so no last-modified."""
    return ObjectRecord(
        bucket=r[0],
        key=r[1],
        size=r[6],
        etag=r[2],
        last_modified=0.0,
        segments=segments_from_text(r[4]),
        state=r[3],
        inline=r[5],
        vseq=r[7] if len(r) > 7 else 0,
    )
