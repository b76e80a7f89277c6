"""Event notifications as the index sees them: which rules of a bucket's notification
configuration an object change matches, and the outbox rows to write for it.

Why in the index: an event must be recorded in the same transaction as the change it
reports, so that no acknowledged write loses its event and no rolled-back write sends one.
Both engines read the bucket's configuration document ("notification", stored by the S3
front as JSON) inside the write's transaction, exactly as they read "versioning", and call
:func:`matching_rules`; buckets without the document cost one indexed read per write.

The stored document (written by holdfast/service/notify.py)::

    {"rules": [{"id": str, "kind": "Queue" | "Topic" | "CloudFunction", "arn": str,
                "target": str, "events": ["s3:ObjectCreated:*", ...],
                "prefix": str, "suffix": str}]}

Event names are kept without their "s3:" prefix in the outbox ("ObjectCreated:Put").
"""

from __future__ import annotations

import json
import time

from holdfast.index.records import NotifyEvent, ObjectRecord, VersionRef

CONFIG_NAME = "notification"

CREATED = ("Put", "Post", "Copy", "CompleteMultipartUpload")
REMOVED = ("Delete", "DeleteMarkerCreated")
EVENTS = frozenset(
    ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    + [f"s3:ObjectCreated:{e}" for e in CREATED]
    + [f"s3:ObjectRemoved:{e}" for e in REMOVED]
)

# The outbox row, in column order, as both engines insert it.
OUTBOX_COLUMNS = (
    "bucket, target, config_id, event, key, size, etag, vseq, vnull, created, attempts, "
    "next_attempt, last_error, state"
)


def event_matches(pattern: str, event: str) -> bool:
    """``pattern`` is a configured name ("s3:ObjectCreated:*" or a specific one), ``event``
    an outbox name ("ObjectCreated:Put")."""
    name = pattern.removeprefix("s3:")
    if name.endswith(":*"):
        return event.startswith(name[:-1])
    return name == event


def matching_rules(config_text: str | None, event: str, key: str) -> list[tuple[str, str]]:
    """(rule id, target) of every rule that wants ``event`` on ``key``, one per target (a
    target gets an event once however many of its rules match, as S3 refuses overlapping
    rules anyway)."""
    if not config_text:
        return []
    out: dict[str, str] = {}
    for rule in json.loads(config_text).get("rules", []):
        if not any(event_matches(p, event) for p in rule.get("events", [])):
            continue
        if not key.startswith(rule.get("prefix", "")) or not key.endswith(rule.get("suffix", "")):
            continue
        out.setdefault(rule["target"], rule.get("id", ""))
    return [(rule_id, target) for target, rule_id in out.items()]


def created_rows(config_text: str | None, obj: ObjectRecord, event: str | None = None) -> list:
    """Outbox rows for a new version (``obj`` after the index set its vseq/vnull)."""
    name = f"ObjectCreated:{event or obj.origin}"
    return _rows(config_text, obj.bucket, obj.key, name, obj.size, obj.etag, obj.vseq, obj.vnull)


def removed_rows(
    config_text: str | None,
    bucket: str,
    key: str,
    result: bool | VersionRef | ObjectRecord | None,
) -> list:
    """Outbox rows for a delete: ``result`` is what the index's delete returned (False or
    None: nothing was removed, no event; a VersionRef: a delete marker was written; an
    ObjectRecord: that version was removed for good)."""
    if not result:
        return []
    if isinstance(result, VersionRef):
        return _rows(
            config_text,
            bucket,
            key,
            "ObjectRemoved:DeleteMarkerCreated",
            0,
            "",
            result.seq,
            result.null,
        )
    if isinstance(result, ObjectRecord):
        return _rows(
            config_text,
            bucket,
            key,
            "ObjectRemoved:Delete",
            0,
            "",
            result.vseq,
            result.vnull,
        )
    return _rows(config_text, bucket, key, "ObjectRemoved:Delete", 0, "", 0, True)


def _rows(
    config_text: str | None,
    bucket: str,
    key: str,
    event: str,
    size: int,
    etag: str,
    vseq: int,
    vnull: bool,
) -> list[tuple]:
    now = time.time()
    return [
        (bucket, target, rule_id, event, key, size, etag.strip('"'), vseq, int(vnull), now, 0, 0.0)
        + (None, "pending")
        for rule_id, target in matching_rules(config_text, event, key)
    ]


def event_from_row(r: tuple) -> NotifyEvent:
    """An outbox row selected as ``id, OUTBOX_COLUMNS`` (both engines)."""
    return NotifyEvent(
        id=r[0],
        bucket=r[1],
        target=r[2],
        config_id=r[3],
        event=r[4],
        key=r[5],
        size=r[6],
        etag=r[7],
        vseq=r[8],
        vnull=bool(r[9]),
        created=r[10],
        attempts=r[11],
        next_attempt=r[12],
        last_error=r[13],
        state=r[14],
    )
