"""Lifecycle rules as data, and the decisions made from them: does a rule apply to an
object, when does an object expire, which noncurrent versions are due, when is an unfinished
upload abandoned.

Pure logic: the S3 front parses and validates the XML into these types
(holdfast/s3/lifecycle.py), the index stores them as JSON (:func:`to_json` / :func:`from_json`),
and the lifecycle worker and GET/HEAD (``x-amz-expiration``) ask the same functions here, so
the header a client sees and what the job does can never disagree.

Days are counted as S3 counts them: an object's expiry is its creation time plus the days,
rounded up to the next midnight UTC. ``day_seconds`` is 86,400 except when the test-only
setting shortens a "day" (then there is no rounding, so a test waits seconds, not a day).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

DAY = 86_400.0

# The bucket configuration document holding the rules (:func:`to_json`), written by
# holdfast/s3/ops/lifecycle.py and read by the lifecycle worker and GET/HEAD.
CONFIG = "lifecycle"


@dataclass(frozen=True)
class Filter:
    prefix: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    size_greater_than: int | None = None
    size_less_than: int | None = None

    def matches(self, key: str, size: int | None, tags: list[tuple[str, str]] | None) -> bool:
        if not key.startswith(self.prefix):
            return False
        if self.tags:
            have = dict(tags or ())
            if any(have.get(k) != v for k, v in self.tags):
                return False
        if self.size_greater_than is not None and (size is None or size <= self.size_greater_than):
            return False
        return self.size_less_than is None or (size is not None and size < self.size_less_than)


@dataclass(frozen=True)
class Rule:
    id: str
    enabled: bool
    filter: Filter = field(default_factory=Filter)
    #: True when the rule was written with a <Filter> (kept so Get renders what was Put).
    uses_filter_element: bool = True
    expiration_days: int | None = None
    expiration_date: float | None = None  # seconds since the epoch, at midnight UTC
    expired_object_delete_marker: bool = False
    noncurrent_days: int | None = None
    newer_noncurrent_versions: int | None = None
    abort_upload_days: int | None = None


@dataclass(frozen=True)
class Configuration:
    rules: tuple[Rule, ...]


def to_json(config: Configuration) -> str:
    return json.dumps([asdict(r) for r in config.rules], separators=(",", ":"))


def from_json(text: str) -> Configuration:
    rules = []
    for raw in json.loads(text):
        f = raw.pop("filter")
        f["tags"] = tuple(tuple(t) for t in f["tags"])
        rules.append(Rule(filter=Filter(**f), **raw))
    return Configuration(tuple(rules))


def due_after(created: float, days: int, day_seconds: float = DAY) -> float:
    """When ``days`` days after ``created`` have passed: S3 rounds up to midnight UTC; a
    shortened test day is not rounded."""
    if day_seconds != DAY:
        return created + days * day_seconds
    return math.ceil((created + days * DAY) / DAY) * DAY


def expiration(
    config: Configuration,
    key: str,
    size: int | None,
    tags: list[tuple[str, str]] | None,
    created: float,
    day_seconds: float = DAY,
) -> tuple[float, str] | None:
    """(when, rule id) of the earliest expiry of a current version by an enabled rule, or
    None: the value of ``x-amz-expiration`` and the job's decision for current versions."""
    best: tuple[float, str] | None = None
    for rule in config.rules:
        if not rule.enabled or not rule.filter.matches(key, size, tags):
            continue
        if rule.expiration_days is not None:
            when = due_after(created, rule.expiration_days, day_seconds)
        elif rule.expiration_date is not None:
            when = rule.expiration_date
        else:
            continue
        if best is None or when < best[0]:
            best = (when, rule.id)
    return best


def noncurrent_expires(
    config: Configuration,
    key: str,
    newer: int,
    since: float,
    size: int | None,
    tags: list[tuple[str, str]] | None,
    now: float,
    day_seconds: float = DAY,
) -> bool:
    """Whether one noncurrent version is to be deleted now: ``newer`` noncurrent versions of
    the key are newer than it, and it became noncurrent at ``since`` (when the next newer
    version was written). With NewerNoncurrentVersions N, the N newest noncurrent versions
    are kept whatever their age."""
    for rule in config.rules:
        if not rule.enabled or rule.noncurrent_days is None:
            continue
        if newer < (rule.newer_noncurrent_versions or 0):
            continue
        if not rule.filter.matches(key, size, tags):
            continue
        if due_after(since, rule.noncurrent_days, day_seconds) <= now:
            return True
    return False


def noncurrent_due(
    config: Configuration,
    key: str,
    versions: list[tuple[float, int | None, list[tuple[str, str]] | None]],
    now: float,
    day_seconds: float = DAY,
) -> list[int]:
    """Indexes into ``versions`` of noncurrent versions to delete now. ``versions`` are one
    key's noncurrent versions, newest first, each (became noncurrent at, size, tags)."""
    return [
        i
        for i, (since, size, tags) in enumerate(versions)
        if noncurrent_expires(config, key, i, since, size, tags, now, day_seconds)
    ]


def uses_tags(config: Configuration) -> bool:
    """Whether any enabled rule filters on tags (then the job reads each version's tags)."""
    return any(r.enabled and r.filter.tags for r in config.rules)


def removes_expired_delete_markers(config: Configuration, key: str) -> bool:
    """Whether a delete marker that is the only version left of ``key`` is to be removed.
    (S3 also removes them under an Expiration Days rule, the marker then having no object.)"""
    return any(
        r.enabled
        and (r.expired_object_delete_marker or r.expiration_days is not None)
        and r.filter.matches(key, None, None)
        for r in config.rules
    )


def upload_abandoned(
    config: Configuration, key: str, initiated: float, now: float, day_seconds: float = DAY
) -> bool:
    """Whether an unfinished multipart upload of ``key`` is to be aborted now."""
    return any(
        r.enabled
        and r.abort_upload_days is not None
        and r.filter.matches(key, None, None)
        and due_after(initiated, r.abort_upload_days, day_seconds) <= now
        for r in config.rules
    )
