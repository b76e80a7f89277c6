"""Object lock (WORM) decisions: a version's retention and legal hold, the bucket's default
retention, and who may delete a version or change its retention.

Pure logic, one place for every path that removes or overwrites a version (S3 DELETE with a
version id, DeleteObjects, the lifecycle job, the admin UI and CLI), so none of them can be
more lenient than another. The one escape S3 defines is GOVERNANCE mode with
``x-amz-bypass-governance-retention: true`` from a caller allowed to bypass (the bucket's
owner); COMPLIANCE and a legal hold have none, for root as for anyone.

Times are seconds since the epoch (the index's clock-free version order is not involved: a
retention date is a wall-clock promise by definition).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime

from holdfast.errors import S3Error

GOVERNANCE = "GOVERNANCE"
COMPLIANCE = "COMPLIANCE"
MODES = (GOVERNANCE, COMPLIANCE)
DAY = 86_400
MAX_DAYS = 36_500
MAX_YEARS = 100

LOCKED_MESSAGE = "Access Denied because object protected by object lock."


@dataclass(frozen=True)
class DefaultRetention:
    mode: str
    days: int | None = None
    years: int | None = None

    def until(self, now: float) -> float:
        """The retain-until date a new version gets when it names none. Years are calendar
        years (as S3 counts them), days are 24-hour days."""
        if self.days is not None:
            return now + self.days * DAY
        moment = datetime.fromtimestamp(now, UTC)
        years = self.years or 0
        try:
            later = moment.replace(year=moment.year + years)
        except ValueError:  # 29 February into a year without it
            later = moment.replace(year=moment.year + years, day=28)
        return calendar.timegm(later.timetuple()) + moment.microsecond / 1e6


@dataclass(frozen=True)
class LockConfiguration:
    """A bucket's lock: enabled for good once set (S3 has no way to turn it off)."""

    default: DefaultRetention | None = None


@dataclass(frozen=True)
class Retention:
    mode: str
    until: float


def retention_for_new_version(
    config: LockConfiguration | None, explicit: Retention | None, now: float
) -> Retention | None:
    """The retention a new version is written with: the one the request names, else the
    bucket's default, else none."""
    if explicit is not None:
        return explicit
    if config is not None and config.default is not None:
        return Retention(config.default.mode, config.default.until(now))
    return None


def check_removal(
    retention: Retention | None,
    legal_hold: bool,
    now: float,
    bypass_governance: bool = False,
) -> None:
    """AccessDenied unless the version may be removed (deleted for good, or overwritten in
    place) now. ``bypass_governance`` is true only when the request asked for the bypass
    *and* the caller may bypass."""
    if legal_hold:
        raise S3Error("AccessDenied", LOCKED_MESSAGE)
    if retention is None or retention.until <= now:
        return
    if retention.mode == GOVERNANCE and bypass_governance:
        return
    raise S3Error("AccessDenied", LOCKED_MESSAGE)


def is_protected(retention: Retention | None, legal_hold: bool, now: float) -> bool:
    """Whether anything at all protects the version now (a bucket holding such a version
    cannot be deleted; the garbage collector and repair must keep its blobs)."""
    return legal_hold or (retention is not None and retention.until > now)


def check_retention_change(
    old: Retention | None, new: Retention | None, now: float, bypass_governance: bool = False
) -> None:
    """AccessDenied unless the version's retention may go from ``old`` to ``new``.

    Allowed without bypass: setting one where none is in force, extending the date in the
    same mode, and GOVERNANCE -> COMPLIANCE (stricter). GOVERNANCE shortened, removed or
    turned into anything weaker needs the bypass. COMPLIANCE can only be extended, never shortened, removed or turned
    into GOVERNANCE, by anyone."""
    if new is not None and new.until <= now:
        raise S3Error("InvalidArgument", "The retain until date must be in the future!")
    if old is None or old.until <= now:
        return
    if new is not None and new.until >= old.until and new.mode in (old.mode, COMPLIANCE):
        return
    if old.mode == GOVERNANCE and bypass_governance:
        return
    raise S3Error("AccessDenied", LOCKED_MESSAGE)


def parse_until(text: str) -> float:
    """An ISO 8601 retain-until date (header or XML); InvalidArgument otherwise."""
    raw = text.strip()
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as e:
        raise S3Error("InvalidArgument", "The retain until date must be in ISO 8601 format") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def format_until(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
