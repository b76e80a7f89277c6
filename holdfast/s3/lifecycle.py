"""Lifecycle configuration XML: PutBucketLifecycleConfiguration's body parsed and validated
into holdfast/service/lifecycle.py's types, and rendered back for the Get.

What S3 refuses, this refuses with the same code, and nothing is stored: a body that does
not fit the schema (an unknown Status, an Expiration with both Days and Date, a Filter naming
two conditions outside ``And``) is MalformedXML; a body that fits but asks something S3 does
not allow (a Date not at midnight UTC, non-positive Days, repeated rule ids, an
ExpiredObjectDeleteMarker with Days, a tag filter with AbortIncompleteMultipartUpload) is
InvalidArgument. Transitions move objects between storage classes, of which Holdfast has one:
they answer NotImplemented rather than be accepted and never happen.
"""

from __future__ import annotations

import calendar
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime

from holdfast.errors import S3Error
from holdfast.s3 import xml
from holdfast.s3.tagging import OBJECT_TAG_LIMIT, validate
from holdfast.service.lifecycle import Configuration, Filter, Rule

MAX_RULES = 1000
MAX_ID = 255
MAX_NEWER_NONCURRENT = 100

_RULE_CHILDREN = {
    "ID", "Status", "Filter", "Prefix", "Expiration", "NoncurrentVersionExpiration",
    "AbortIncompleteMultipartUpload", "Transition", "NoncurrentVersionTransition",
}  # fmt: skip


def _invalid(message: str) -> S3Error:
    return S3Error("InvalidArgument", message)


def _int(el: ET.Element | None, what: str) -> int | None:
    if el is None:
        return None
    try:
        value = int((el.text or "").strip())
    except ValueError as e:
        raise S3Error("MalformedXML") from e
    return value


def _date(text: str) -> float:
    """An ISO 8601 date that must be midnight UTC (S3 refuses any other time)."""
    raw = text.strip()
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as e:
        raise _invalid("Date must be in ISO 8601 format") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    if (when.hour, when.minute, when.second, when.microsecond) != (0, 0, 0, 0):
        raise _invalid("'Date' must be at midnight GMT")
    return float(calendar.timegm(when.timetuple()))


def _tag(el: ET.Element) -> tuple[str, str]:
    key, value = el.find("Key"), el.find("Value")
    if key is None or value is None:
        raise S3Error("MalformedXML")
    return key.text or "", value.text or ""


def _filter(el: ET.Element) -> Filter:
    conditions = list(el)
    if len(conditions) > 1:
        raise S3Error("MalformedXML")
    if not conditions:
        return Filter()
    (cond,) = conditions
    if cond.tag == "Prefix":
        return Filter(prefix=cond.text or "")
    if cond.tag == "Tag":
        return Filter(tags=tuple(validate([_tag(cond)], OBJECT_TAG_LIMIT)))
    if cond.tag == "ObjectSizeGreaterThan":
        return Filter(size_greater_than=_nonnegative(cond))
    if cond.tag == "ObjectSizeLessThan":
        return Filter(size_less_than=_positive_size(cond))
    if cond.tag != "And":
        raise S3Error("MalformedXML")
    prefix, tags, gt, lt = "", [], None, None
    for part in cond:
        if part.tag == "Prefix":
            prefix = part.text or ""
        elif part.tag == "Tag":
            tags.append(_tag(part))
        elif part.tag == "ObjectSizeGreaterThan":
            gt = _nonnegative(part)
        elif part.tag == "ObjectSizeLessThan":
            lt = _positive_size(part)
        else:
            raise S3Error("MalformedXML")
    validate(tags, OBJECT_TAG_LIMIT)
    if gt is not None and lt is not None and gt >= lt:
        raise _invalid("ObjectSizeGreaterThan must be less than ObjectSizeLessThan")
    return Filter(prefix=prefix, tags=tuple(tags), size_greater_than=gt, size_less_than=lt)


def _nonnegative(el: ET.Element) -> int:
    value = _int(el, el.tag)
    assert value is not None
    if value < 0:
        raise _invalid(f"{el.tag} must be a non-negative integer")
    return value


def _positive_size(el: ET.Element) -> int:
    value = _int(el, el.tag)
    assert value is not None
    if value <= 0:
        raise _invalid(f"{el.tag} must be a positive integer")
    return value


def _rule(el: ET.Element) -> Rule:
    for child in el:
        if child.tag not in _RULE_CHILDREN:
            raise S3Error("MalformedXML")
    if el.find("Transition") is not None or el.find("NoncurrentVersionTransition") is not None:
        raise S3Error(
            "NotImplemented",
            "Lifecycle transitions are not implemented by Holdfast (it has one storage class).",
        )
    rule_id = (el.findtext("ID") or "").strip()
    if len(rule_id) > MAX_ID:
        raise _invalid("ID length should not exceed allowed limit of 255")
    status = el.findtext("Status")
    if status not in ("Enabled", "Disabled"):
        raise S3Error("MalformedXML")
    filter_el, prefix_el = el.find("Filter"), el.find("Prefix")
    if (filter_el is None) == (prefix_el is None):
        raise S3Error("MalformedXML")
    rule_filter = (
        _filter(filter_el) if filter_el is not None else Filter(prefix=prefix_el.text or "")
    )  # type: ignore[union-attr]

    days = date = None
    marker = False
    exp = el.find("Expiration")
    if exp is not None:
        days_el, date_el, marker_el = (
            exp.find("Days"),
            exp.find("Date"),
            exp.find("ExpiredObjectDeleteMarker"),
        )
        given = [x for x in (days_el, date_el, marker_el) if x is not None]
        if len(given) != 1:
            if marker_el is not None and len(given) > 1:
                raise _invalid(
                    "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a "
                    "Lifecycle Expiration Policy."
                )
            raise S3Error("MalformedXML")
        if days_el is not None:
            days = _int(days_el, "Days")
            if days is None or days <= 0:
                raise _invalid("'Days' for Expiration action must be a positive integer")
        if date_el is not None:
            date = _date(date_el.text or "")
        if marker_el is not None:
            text = (marker_el.text or "").strip().lower()
            if text not in ("true", "false"):
                raise S3Error("MalformedXML")
            marker = text == "true"
            if marker and rule_filter.tags:
                raise _invalid(
                    "ExpiredObjectDeleteMarker cannot be specified with a tag-based filter."
                )

    noncurrent_days = newer = None
    nve = el.find("NoncurrentVersionExpiration")
    if nve is not None:
        nd = nve.find("NoncurrentDays")
        noncurrent_days = _int(nd, "NoncurrentDays")
        if noncurrent_days is None:
            raise S3Error("MalformedXML")
        if noncurrent_days <= 0:
            raise _invalid(
                "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer"
            )
        newer = _int(nve.find("NewerNoncurrentVersions"), "NewerNoncurrentVersions")
        if newer is not None and not 1 <= newer <= MAX_NEWER_NONCURRENT:
            raise _invalid(f"NewerNoncurrentVersions must be between 1 and {MAX_NEWER_NONCURRENT}")

    abort_days = None
    abort = el.find("AbortIncompleteMultipartUpload")
    if abort is not None:
        abort_days = _int(abort.find("DaysAfterInitiation"), "DaysAfterInitiation")
        if abort_days is None:
            raise S3Error("MalformedXML")
        if abort_days <= 0:
            raise _invalid(
                "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a "
                "positive integer"
            )
        if rule_filter.tags:
            raise _invalid("AbortIncompleteMultipartUpload cannot be specified with Tags.")

    if exp is None and nve is None and abort is None:
        raise _invalid("At least one action needs to be specified in a rule")
    return Rule(
        id=rule_id,
        enabled=status == "Enabled",
        filter=rule_filter,
        uses_filter_element=filter_el is not None,
        expiration_days=days,
        expiration_date=date,
        expired_object_delete_marker=marker,
        noncurrent_days=noncurrent_days,
        newer_noncurrent_versions=newer,
        abort_upload_days=abort_days,
    )


def parse(body: bytes, new_id) -> Configuration:
    """The body of PutBucketLifecycleConfiguration; ``new_id()`` names a rule without ID
    (S3 generates one)."""
    root = xml.parse(body)
    if root.tag != "LifecycleConfiguration":
        raise S3Error("MalformedXML")
    rules_el = list(root)
    if not rules_el or any(r.tag != "Rule" for r in rules_el):
        raise S3Error("MalformedXML")
    if len(rules_el) > MAX_RULES:
        raise _invalid(
            f"The number of lifecycle rules must not exceed the allowed limit of {MAX_RULES} rules"
        )
    rules = [_rule(r) for r in rules_el]
    ids = [r.id for r in rules if r.id]
    if len(ids) != len(set(ids)):
        raise _invalid("Rule ID must be unique. Found same ID for more than one rule")
    rules = [r if r.id else replace(r, id=new_id()) for r in rules]
    return Configuration(tuple(rules))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _render_filter(f: Filter) -> list:
    conditions: list = []
    if f.prefix:
        conditions.append(("Prefix", f.prefix))
    conditions += [("Tag", [("Key", k), ("Value", v)]) for k, v in f.tags]
    if f.size_greater_than is not None:
        conditions.append(("ObjectSizeGreaterThan", f.size_greater_than))
    if f.size_less_than is not None:
        conditions.append(("ObjectSizeLessThan", f.size_less_than))
    if len(conditions) > 1:
        return [("And", conditions)]
    if not conditions:
        return [("Prefix", "")]
    return conditions


def render(config: Configuration) -> bytes:
    rules = []
    for r in config.rules:
        body: list = [("ID", r.id)]
        if r.uses_filter_element:
            body.append(("Filter", _render_filter(r.filter)))
        else:
            body.append(("Prefix", r.filter.prefix))
        body.append(("Status", "Enabled" if r.enabled else "Disabled"))
        if r.expiration_days is not None:
            body.append(("Expiration", [("Days", r.expiration_days)]))
        elif r.expiration_date is not None:
            body.append(("Expiration", [("Date", _iso(r.expiration_date))]))
        elif r.expired_object_delete_marker:
            body.append(("Expiration", [("ExpiredObjectDeleteMarker", True)]))
        if r.noncurrent_days is not None:
            nve: list = [("NoncurrentDays", r.noncurrent_days)]
            if r.newer_noncurrent_versions is not None:
                nve.append(("NewerNoncurrentVersions", r.newer_noncurrent_versions))
            body.append(("NoncurrentVersionExpiration", nve))
        if r.abort_upload_days is not None:
            body.append(
                ("AbortIncompleteMultipartUpload", [("DaysAfterInitiation", r.abort_upload_days)])
            )
        rules.append(("Rule", body))
    return xml.render("LifecycleConfiguration", rules)


def expiration_header(when: float, rule_id: str) -> str:
    """``x-amz-expiration: expiry-date="Fri, 23 Dec 2012 00:00:00 GMT", rule-id="..."``."""
    stamp = datetime.fromtimestamp(when, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    return f'expiry-date="{stamp}", rule-id="{rule_id}"'
