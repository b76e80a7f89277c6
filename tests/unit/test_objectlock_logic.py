"""Object lock: configuration, retention and legal hold XML and headers, and who may remove
a version or change its retention."""

from __future__ import annotations

import pytest

from holdfast.errors import S3Error
from holdfast.s3 import objectlock as xmlock
from holdfast.service import objectlock as lock
from holdfast.service.objectlock import COMPLIANCE, GOVERNANCE, Retention

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def code(fn, *args, **kw) -> str:
    with pytest.raises(S3Error) as e:
        fn(*args, **kw)
    return e.value.code


def config(rule: str) -> bytes:
    return (
        "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>"
        f"{rule}</ObjectLockConfiguration>"
    ).encode()


def test_configuration():
    c = xmlock.parse_configuration(
        config(
            "<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>3</Days></DefaultRetention></Rule>"
        )
    )
    assert c.default == lock.DefaultRetention(GOVERNANCE, days=3)
    assert xmlock.parse_configuration(xmlock.render_configuration(c)) == c
    c = xmlock.parse_configuration(
        config(
            "<Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Years>1</Years></DefaultRetention></Rule>"
        )
    )
    assert c.default.until(NOW) == NOW + 365 * 86400  # 2026 is not a leap year
    assert xmlock.parse_configuration(config("")).default is None


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("<Rule><DefaultRetention><Mode>GOVERNANCE</Mode></DefaultRetention></Rule>", "MalformedXML"),
        ("<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days><Years>1</Years>"
         "</DefaultRetention></Rule>", "MalformedXML"),
        ("<Rule><DefaultRetention><Mode>WEAK</Mode><Days>1</Days></DefaultRetention></Rule>",
         "MalformedXML"),
        ("<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>0</Days></DefaultRetention></Rule>",
         "InvalidArgument"),
        ("<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Years>101</Years></DefaultRetention>"
         "</Rule>", "InvalidArgument"),
        ("<Rule/>", "MalformedXML"),
    ],
)  # fmt: skip
def test_bad_configuration(rule, expected):
    assert code(xmlock.parse_configuration, config(rule)) == expected


def test_configuration_must_say_enabled():
    assert code(xmlock.parse_configuration, b"<ObjectLockConfiguration/>") == "MalformedXML"


def test_retention_and_legal_hold_xml():
    r = xmlock.parse_retention(
        b"<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>2030-01-02T03:04:05.678Z"
        b"</RetainUntilDate></Retention>"
    )
    assert r.mode == COMPLIANCE and xmlock.parse_retention(xmlock.render_retention(r)) == r
    assert xmlock.parse_retention(b"<Retention/>") is None
    assert (
        code(
            xmlock.parse_retention,
            b"<Retention><Mode>X</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>",
        )
        == "MalformedXML"
    )
    assert (
        code(xmlock.parse_retention, b"<Retention><Mode>GOVERNANCE</Mode></Retention>")
        == "MalformedXML"
    )
    assert xmlock.parse_legal_hold(b"<LegalHold><Status>ON</Status></LegalHold>") is True
    assert xmlock.parse_legal_hold(xmlock.render_legal_hold(False)) is False
    assert (
        code(xmlock.parse_legal_hold, b"<LegalHold><Status>on</Status></LegalHold>")
        == "MalformedXML"
    )


def test_headers():
    assert xmlock.headers({}) == (None, None)
    r, hold = xmlock.headers(
        {
            "x-amz-object-lock-mode": "GOVERNANCE",
            "x-amz-object-lock-retain-until-date": "2030-01-01T00:00:00Z",
            "x-amz-object-lock-legal-hold": "ON",
        }
    )
    assert r == Retention(GOVERNANCE, 1_893_456_000.0) and hold is True
    assert code(xmlock.headers, {"x-amz-object-lock-mode": "GOVERNANCE"}) == "InvalidArgument"
    assert (
        code(xmlock.headers, {"x-amz-object-lock-retain-until-date": "2030-01-01T00:00:00Z"})
        == "InvalidArgument"
    )
    assert (
        code(
            xmlock.headers,
            {
                "x-amz-object-lock-mode": "X",
                "x-amz-object-lock-retain-until-date": "2030-01-01T00:00:00Z",
            },
        )
        == "InvalidArgument"
    )
    assert code(xmlock.headers, {"x-amz-object-lock-legal-hold": "YES"}) == "InvalidArgument"
    assert (
        code(
            xmlock.headers,
            {"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": "soon"},
        )
        == "InvalidArgument"
    )


def test_removal():
    gov, comp = Retention(GOVERNANCE, NOW + 10), Retention(COMPLIANCE, NOW + 10)
    lock.check_removal(None, False, NOW)
    lock.check_removal(Retention(COMPLIANCE, NOW - 1), False, NOW)  # expired
    assert code(lock.check_removal, gov, False, NOW) == "AccessDenied"
    lock.check_removal(gov, False, NOW, bypass_governance=True)
    assert code(lock.check_removal, comp, False, NOW, bypass_governance=True) == "AccessDenied"
    assert code(lock.check_removal, None, True, NOW, bypass_governance=True) == "AccessDenied"
    assert lock.is_protected(None, True, NOW) and lock.is_protected(gov, False, NOW)
    assert not lock.is_protected(Retention(GOVERNANCE, NOW), False, NOW)


def test_retention_changes():
    gov, comp = Retention(GOVERNANCE, NOW + 10), Retention(COMPLIANCE, NOW + 10)
    later_gov, later_comp = Retention(GOVERNANCE, NOW + 20), Retention(COMPLIANCE, NOW + 20)
    lock.check_retention_change(None, gov, NOW)
    lock.check_retention_change(gov, later_gov, NOW)
    lock.check_retention_change(gov, later_comp, NOW)  # stricter
    lock.check_retention_change(comp, later_comp, NOW)
    assert (
        code(lock.check_retention_change, comp, gov, NOW, bypass_governance=True) == "AccessDenied"
    )
    assert (
        code(lock.check_retention_change, later_comp, comp, NOW, bypass_governance=True)
        == "AccessDenied"
    )
    assert (
        code(lock.check_retention_change, comp, None, NOW, bypass_governance=True) == "AccessDenied"
    )
    assert code(lock.check_retention_change, later_gov, gov, NOW) == "AccessDenied"
    lock.check_retention_change(later_gov, gov, NOW, bypass_governance=True)
    lock.check_retention_change(gov, None, NOW, bypass_governance=True)
    assert code(lock.check_retention_change, gov, None, NOW) == "AccessDenied"
    assert (
        code(lock.check_retention_change, None, Retention(GOVERNANCE, NOW - 1), NOW)
        == "InvalidArgument"
    )


def test_new_version_retention():
    cfg = lock.LockConfiguration(lock.DefaultRetention(COMPLIANCE, days=2))
    assert lock.retention_for_new_version(cfg, None, NOW) == Retention(COMPLIANCE, NOW + 2 * 86400)
    explicit = Retention(GOVERNANCE, NOW + 5)
    assert lock.retention_for_new_version(cfg, explicit, NOW) == explicit
    assert lock.retention_for_new_version(lock.LockConfiguration(), None, NOW) is None
    assert lock.retention_for_new_version(None, None, NOW) is None
