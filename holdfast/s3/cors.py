"""CORS: a bucket's CORSConfiguration, parsed and validated whole, and the headers its rules
give a preflight (OPTIONS) or an actual request. Pure logic, no I/O.

A rule matches a request when the Origin matches one of its AllowedOrigin patterns (each may
hold one ``*``), the method (the actual one, or a preflight's Access-Control-Request-Method)
is one of its AllowedMethod, and, for a preflight, every header named in
Access-Control-Request-Headers matches one of its AllowedHeader patterns (case-insensitive,
``*`` wildcard). The first matching rule answers, as on S3.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from holdfast.errors import S3Error
from holdfast.s3 import xml
from holdfast.s3.policy import wildcard_match

METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
MAX_RULES = 100


@dataclass(frozen=True)
class Rule:
    id: str | None
    methods: tuple[str, ...]
    origins: tuple[str, ...]
    headers: tuple[str, ...]
    expose: tuple[str, ...]
    max_age: int | None

    def matches(self, origin: str, method: str, headers: tuple[str, ...] = ()) -> bool:
        if method not in self.methods:
            return False
        if not any(wildcard_match(o, origin) for o in self.origins):
            return False
        return all(
            any(wildcard_match(p, h, ignore_case=True) for p in self.headers) for h in headers
        )


def parse_xml(body: bytes) -> list[Rule]:
    root = xml.parse(body)
    if root.tag != "CORSConfiguration":
        raise S3Error("MalformedXML")
    rule_els = root.findall("CORSRule")
    if not rule_els or len(rule_els) > MAX_RULES or len(rule_els) != len(root):
        raise S3Error("MalformedXML")
    rules = []
    for el in rule_els:
        known = {"ID", "AllowedMethod", "AllowedOrigin", "AllowedHeader", "ExposeHeader",
                 "MaxAgeSeconds"}  # fmt: skip
        if any(child.tag not in known for child in el):
            raise S3Error("MalformedXML")

        def values(tag: str, el=el) -> tuple[str, ...]:
            return tuple((c.text or "").strip() for c in el.findall(tag))

        methods, origins = values("AllowedMethod"), values("AllowedOrigin")
        if not methods or not origins:
            raise S3Error("MalformedXML")
        for m in methods:
            if m not in METHODS:
                raise S3Error(
                    "InvalidRequest",
                    f"Found unsupported HTTP method in CORS config. Unsupported method is {m}",
                )
        for o in origins:
            if o.count("*") > 1:
                raise S3Error(
                    "InvalidRequest",
                    f'AllowedOrigin "{o}" can not have more than one wildcard.',
                )
        for h in values("AllowedHeader"):
            if h.count("*") > 1:
                raise S3Error(
                    "InvalidRequest",
                    f'AllowedHeader "{h}" can not have more than one wildcard.',
                )
        max_age = xml.text(el, "MaxAgeSeconds")
        if max_age is not None and not (max_age.strip().isascii() and max_age.strip().isdigit()):
            raise S3Error("MalformedXML")
        ids = values("ID")
        rules.append(
            Rule(
                ids[0] if ids else None,
                methods,
                origins,
                values("AllowedHeader"),
                values("ExposeHeader"),
                int(max_age) if max_age is not None else None,
            )
        )
    return rules


def to_json(rules: list[Rule]) -> str:
    return json.dumps([[r.id, r.methods, r.origins, r.headers, r.expose, r.max_age] for r in rules])


@functools.lru_cache(maxsize=1024)
def from_json(text: str) -> tuple[Rule, ...]:
    return tuple(
        Rule(i, tuple(m), tuple(o), tuple(h), tuple(e), a) for i, m, o, h, e, a in json.loads(text)
    )


def render(rules: tuple[Rule, ...]) -> bytes:
    out = []
    for r in rules:
        children: list = [("ID", r.id)]
        children += [("AllowedHeader", h) for h in r.headers]
        children += [("AllowedMethod", m) for m in r.methods]
        children += [("AllowedOrigin", o) for o in r.origins]
        children += [("ExposeHeader", e) for e in r.expose]
        children.append(("MaxAgeSeconds", r.max_age))
        out.append(("CORSRule", children))
    return xml.render("CORSConfiguration", out)


def _allow_origin(rule: Rule, origin: str) -> str:
    return "*" if "*" in rule.origins else origin


def preflight(
    text: str | None, origin: str | None, method: str | None, request_headers: str | None
) -> list[tuple[str, str]]:
    """The headers of a 200 answer to a preflight, or the S3 error for it."""
    if not origin:
        raise S3Error("BadRequest", "Insufficient information. Origin request header needed.")
    if not method:
        raise S3Error(
            "BadRequest", "Invalid Access-Control-Request-Method header: " + (method or "")
        )
    if text is None:
        raise S3Error("AccessForbidden", "CORSResponse: CORS is not enabled for this bucket.")
    asked = tuple(h.strip().lower() for h in (request_headers or "").split(",") if h.strip())
    for rule in from_json(text):
        if rule.matches(origin, method, asked):
            headers = [
                ("Access-Control-Allow-Origin", _allow_origin(rule, origin)),
                ("Access-Control-Allow-Methods", ", ".join(rule.methods)),
                ("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"),
            ]
            if asked:
                headers.append(("Access-Control-Allow-Headers", ", ".join(asked)))
            if rule.expose:
                headers.append(("Access-Control-Expose-Headers", ", ".join(rule.expose)))
            if rule.max_age is not None:
                headers.append(("Access-Control-Max-Age", str(rule.max_age)))
            if "*" not in rule.origins:
                headers.append(("Access-Control-Allow-Credentials", "true"))
            return headers
    raise S3Error("AccessForbidden", "CORSResponse: This CORS request is not allowed.")


def actual(text: str, origin: str, method: str) -> list[tuple[str, str]]:
    """The CORS headers of an actual request's answer (none when no rule matches)."""
    for rule in from_json(text):
        if rule.matches(origin, method):
            headers = [
                ("Access-Control-Allow-Origin", _allow_origin(rule, origin)),
                ("Access-Control-Allow-Methods", ", ".join(rule.methods)),
                ("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"),
            ]
            if rule.expose:
                headers.append(("Access-Control-Expose-Headers", ", ".join(rule.expose)))
            if rule.max_age is not None:
                headers.append(("Access-Control-Max-Age", str(rule.max_age)))
            if "*" not in rule.origins:
                headers.append(("Access-Control-Allow-Credentials", "true"))
            return headers
    return []
