"""Object lock XML and headers: ObjectLockConfiguration, Retention and LegalHold bodies, and
the ``x-amz-object-lock-*`` headers of PUT, copy and multipart create, parsed into
holdfast/service/objectlock.py's types.

Codes as S3 answers them: a body that does not fit the schema is MalformedXML; a default
retention with both or neither of Days and Years, or a period out of range, is
MalformedXML / InvalidArgument; lock headers given half (a mode without a date) are
InvalidArgument; a bad mode or legal-hold status is InvalidArgument (headers) or MalformedXML
(bodies).
"""

from __future__ import annotations

from collections.abc import Mapping

from holdfast.errors import S3Error
from holdfast.s3 import xml
from holdfast.service.objectlock import (
    MAX_DAYS,
    MAX_YEARS,
    MODES,
    DefaultRetention,
    LockConfiguration,
    Retention,
    format_until,
    parse_until,
)


def parse_configuration(body: bytes) -> LockConfiguration:
    root = xml.parse(body)
    if root.tag != "ObjectLockConfiguration":
        raise S3Error("MalformedXML")
    if (root.findtext("ObjectLockEnabled") or "").strip() != "Enabled":
        raise S3Error("MalformedXML")
    rule = root.find("Rule")
    if rule is None:
        return LockConfiguration()
    default = rule.find("DefaultRetention")
    if default is None:
        raise S3Error("MalformedXML")
    mode = (default.findtext("Mode") or "").strip()
    if mode not in MODES:
        raise S3Error("MalformedXML")
    days_text, years_text = default.findtext("Days"), default.findtext("Years")
    if (days_text is None) == (years_text is None):
        raise S3Error("MalformedXML")
    try:
        value = int((days_text if days_text is not None else years_text or "").strip())
    except ValueError as e:
        raise S3Error("MalformedXML") from e
    if value <= 0:
        raise S3Error(
            "InvalidArgument", "Default retention period must be a positive integer value"
        )
    if days_text is not None:
        if value > MAX_DAYS:
            raise S3Error(
                "InvalidArgument", f"Default retention period cannot exceed {MAX_DAYS} days"
            )
        return LockConfiguration(DefaultRetention(mode, days=value))
    if value > MAX_YEARS:
        raise S3Error(
            "InvalidArgument", f"Default retention period cannot exceed {MAX_YEARS} years"
        )
    return LockConfiguration(DefaultRetention(mode, years=value))


def render_configuration(config: LockConfiguration) -> bytes:
    children: list = [("ObjectLockEnabled", "Enabled")]
    d = config.default
    if d is not None:
        period = ("Days", d.days) if d.days is not None else ("Years", d.years)
        children.append(("Rule", [("DefaultRetention", [("Mode", d.mode), period])]))
    return xml.render("ObjectLockConfiguration", children)


def parse_retention(body: bytes) -> Retention | None:
    """A Retention body; an empty one (no Mode, no date) removes the retention, which only
    a GOVERNANCE bypass may do."""
    root = xml.parse(body)
    if root.tag != "Retention":
        raise S3Error("MalformedXML")
    mode, until = root.findtext("Mode"), root.findtext("RetainUntilDate")
    if mode is None and until is None:
        return None
    if mode is None or until is None:
        raise S3Error("MalformedXML")
    if mode.strip() not in MODES:
        raise S3Error("MalformedXML")
    return Retention(mode.strip(), parse_until(until))


def render_retention(retention: Retention) -> bytes:
    return xml.render(
        "Retention",
        [("Mode", retention.mode), ("RetainUntilDate", format_until(retention.until))],
    )


def parse_legal_hold(body: bytes) -> bool:
    root = xml.parse(body)
    if root.tag != "LegalHold":
        raise S3Error("MalformedXML")
    status = (root.findtext("Status") or "").strip()
    if status not in ("ON", "OFF"):
        raise S3Error("MalformedXML")
    return status == "ON"


def render_legal_hold(on: bool) -> bytes:
    return xml.render("LegalHold", [("Status", "ON" if on else "OFF")])


def headers(h: Mapping[str, str]) -> tuple[Retention | None, bool | None]:
    """(retention, legal hold) named by a PUT's, copy's or multipart create's headers; None
    for what they do not name."""
    mode = h.get("x-amz-object-lock-mode")
    until = h.get("x-amz-object-lock-retain-until-date")
    hold = h.get("x-amz-object-lock-legal-hold")
    retention = None
    if mode is not None or until is not None:
        if mode is None or until is None:
            raise S3Error(
                "InvalidArgument",
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be "
                "supplied",
            )
        if mode not in MODES:
            raise S3Error("InvalidArgument", "Unknown wormMode directive.")
        retention = Retention(mode, parse_until(until))
    legal: bool | None = None
    if hold is not None:
        if hold not in ("ON", "OFF"):
            raise S3Error("InvalidArgument", "Legal Hold must be either of 'ON' or 'OFF'")
        legal = hold == "ON"
    return retention, legal


def response_headers(retention: Retention | None, legal_hold: bool) -> list[tuple[str, str]]:
    """GET and HEAD of a version with a lock."""
    out = []
    if retention is not None:
        out.append(("x-amz-object-lock-mode", retention.mode))
        out.append(("x-amz-object-lock-retain-until-date", format_until(retention.until)))
    if legal_hold:
        out.append(("x-amz-object-lock-legal-hold", "ON"))
    return out
