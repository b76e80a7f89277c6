"""Static websites: a bucket's WebsiteConfiguration, parsed and validated whole, and what the
website endpoint does with a request path. Pure logic, no I/O (the serving is in
holdfast/s3/ops/website.py).

The configuration follows the S3 API reference: either ``RedirectAllRequestsTo`` alone, or an
``IndexDocument`` (a suffix without ``/``) with an optional ``ErrorDocument`` and up to 50
``RoutingRules``. A rule's ``Condition`` tests the key's prefix and/or the HTTP error code the
request would otherwise get; its ``Redirect`` replaces the host, protocol, key or key prefix
and the status (a 3XX other than 300; 301 by default). The first rule that matches wins, as
on S3.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape as html_escape
from urllib.parse import quote

from holdfast.caching import short_lru_cache
from holdfast.errors import S3Error
from holdfast.s3 import xml

MAX_RULES = 50
# Parsed configurations are kept per stored text up to this length (a site's few rules);
# a longer one (50 long rules) is parsed on each request to it instead.
MAX_CACHED_TEXT = 8 * 1024
PROTOCOLS = ("http", "https")


@dataclass(frozen=True)
class Redirect:
    host: str | None = None
    protocol: str | None = None
    code: int | None = None  # a rule's HttpRedirectCode (None: 301)
    replace_key: str | None = None
    replace_prefix: str | None = None


@dataclass(frozen=True)
class Rule:
    prefix: str | None  # KeyPrefixEquals
    error_code: int | None  # HttpErrorCodeReturnedEquals
    redirect: Redirect

    def matches(self, key: str, status: int | None) -> bool:
        """Does the rule apply to ``key``, before the object is looked up (``status`` None)
        or after the request failed with ``status``?"""
        if self.prefix is not None and not key.startswith(self.prefix):
            return False
        if self.error_code is None:
            return status is None
        return status == self.error_code


@dataclass(frozen=True)
class Website:
    index_suffix: str | None = None
    error_key: str | None = None
    redirect_all: Redirect | None = None  # host and protocol only
    rules: tuple[Rule, ...] = ()

    def rule_for(self, key: str, status: int | None) -> Rule | None:
        return next((r for r in self.rules if r.matches(key, status)), None)


def _invalid(message: str, code: str = "InvalidArgument") -> S3Error:
    return S3Error(code, message)


def _only(el: xml.ET.Element, allowed: set[str]) -> None:
    if any(child.tag not in allowed for child in el):
        raise S3Error("MalformedXML")


def _one(el: xml.ET.Element, tag: str) -> xml.ET.Element | None:
    found = el.findall(tag)
    if len(found) > 1:
        raise S3Error("MalformedXML")
    return found[0] if found else None


def _text(el: xml.ET.Element, tag: str) -> str | None:
    child = _one(el, tag)
    return None if child is None else (child.text or "").strip()


def _protocol(value: str | None) -> str | None:
    if value is not None and value not in PROTOCOLS:
        raise _invalid(
            "Invalid protocol, protocol can be http or https. If not defined the protocol will "
            "be selected automatically.",
            "InvalidRequest",
        )
    return value


def parse_xml(body: bytes) -> Website:
    """A PutBucketWebsite body, validated whole, or the S3 error for it."""
    root = xml.parse(body)
    if root.tag != "WebsiteConfiguration":
        raise S3Error("MalformedXML")
    _only(root, {"IndexDocument", "ErrorDocument", "RedirectAllRequestsTo", "RoutingRules"})
    redirect_el = _one(root, "RedirectAllRequestsTo")
    if redirect_el is not None:
        if len(root) != 1:
            raise _invalid(
                "RedirectAllRequestsTo cannot be provided in conjunction with other Routing Rules.",
                "InvalidRequest",
            )
        _only(redirect_el, {"HostName", "Protocol"})
        host = _text(redirect_el, "HostName")
        if not host:
            raise S3Error("MalformedXML")
        return Website(redirect_all=Redirect(host, _protocol(_text(redirect_el, "Protocol"))))
    index_el = _one(root, "IndexDocument")
    if index_el is None:
        raise _invalid(
            "A value for IndexDocument Suffix must be provided if RedirectAllRequestsTo is empty"
        )
    _only(index_el, {"Suffix"})
    suffix = _text(index_el, "Suffix")
    if not suffix or "/" in suffix:
        raise _invalid("The IndexDocument Suffix is not well formed")
    error_key = None
    error_el = _one(root, "ErrorDocument")
    if error_el is not None:
        _only(error_el, {"Key"})
        error_key = _text(error_el, "Key")
        if not error_key:
            raise _invalid("The ErrorDocument Key is not well formed")
    rules: list[Rule] = []
    rules_el = _one(root, "RoutingRules")
    if rules_el is not None:
        _only(rules_el, {"RoutingRule"})
        if not len(rules_el) or len(rules_el) > MAX_RULES:
            raise S3Error("MalformedXML")
        rules = [_rule(el) for el in rules_el]
    return Website(suffix, error_key, None, tuple(rules))


def _rule(el: xml.ET.Element) -> Rule:
    _only(el, {"Condition", "Redirect"})
    prefix = error_code = None
    condition = _one(el, "Condition")
    if condition is not None:
        _only(condition, {"KeyPrefixEquals", "HttpErrorCodeReturnedEquals"})
        prefix = _text(condition, "KeyPrefixEquals")
        code_text = _text(condition, "HttpErrorCodeReturnedEquals")
        if prefix is None and code_text is None:
            raise _invalid(
                "Condition cannot be empty. To redirect all requests without a condition, the "
                "condition element shouldn't be present.",
                "InvalidRequest",
            )
        if code_text is not None:
            error_code = _int(code_text)
            if error_code is None or not 400 <= error_code <= 599:
                raise _invalid(
                    f"The provided HTTP error code ({code_text}) is not valid. Valid codes are "
                    "4XX or 5XX.",
                    "InvalidRequest",
                )
    redirect_el = _one(el, "Redirect")
    if redirect_el is None:
        raise S3Error("MalformedXML")
    _only(
        redirect_el,
        {"HostName", "Protocol", "HttpRedirectCode", "ReplaceKeyWith", "ReplaceKeyPrefixWith"},
    )
    replace_key = _text(redirect_el, "ReplaceKeyWith")
    replace_prefix = _text(redirect_el, "ReplaceKeyPrefixWith")
    if replace_key is not None and replace_prefix is not None:
        raise _invalid(
            "You can only define ReplaceKeyPrefix or ReplaceKey but not both.", "InvalidRequest"
        )
    code = None
    code_text = _text(redirect_el, "HttpRedirectCode")
    if code_text is not None:
        code = _int(code_text)
        if code is None or not 301 <= code <= 399:
            raise _invalid(
                f"The provided HTTP redirect code ({code_text}) is not valid. Valid codes are "
                "3XX except 300.",
                "InvalidRequest",
            )
    redirect = Redirect(
        _text(redirect_el, "HostName") or None,
        _protocol(_text(redirect_el, "Protocol")),
        code,
        replace_key,
        replace_prefix,
    )
    if redirect == Redirect():
        raise _invalid("The Redirect element must name something to redirect to.", "InvalidRequest")
    return Rule(prefix, error_code, redirect)


def _int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 6 else None


def to_json(site: Website) -> str:
    def redirect(r: Redirect | None) -> list | None:
        if r is None:
            return None
        return [r.host, r.protocol, r.code, r.replace_key, r.replace_prefix]

    return json.dumps(
        {
            "index": site.index_suffix,
            "error": site.error_key,
            "all": redirect(site.redirect_all),
            "rules": [[r.prefix, r.error_code, redirect(r.redirect)] for r in site.rules],
        }
    )


@short_lru_cache(maxsize=128, max_len=MAX_CACHED_TEXT)
def from_json(text: str) -> Website:
    doc = json.loads(text)
    every = Redirect(*doc["all"]) if doc["all"] is not None else None
    rules = tuple(Rule(p, c, Redirect(*r)) for p, c, r in doc["rules"])
    return Website(doc["index"], doc["error"], every, rules)


def render(site: Website) -> bytes:
    """GetBucketWebsite's body."""
    if site.redirect_all is not None:
        r = site.redirect_all
        every = [("HostName", r.host), ("Protocol", r.protocol)]
        return xml.render("WebsiteConfiguration", [("RedirectAllRequestsTo", every)])
    children: list = [("IndexDocument", [("Suffix", site.index_suffix)])]
    if site.error_key is not None:
        children.append(("ErrorDocument", [("Key", site.error_key)]))
    if site.rules:
        rules = []
        for rule in site.rules:
            condition = None
            if rule.prefix is not None or rule.error_code is not None:
                condition = [
                    ("HttpErrorCodeReturnedEquals", rule.error_code),
                    ("KeyPrefixEquals", rule.prefix),
                ]
            r = rule.redirect
            redirect = [
                ("HostName", r.host),
                ("HttpRedirectCode", r.code),
                ("Protocol", r.protocol),
                ("ReplaceKeyPrefixWith", r.replace_prefix),
                ("ReplaceKeyWith", r.replace_key),
            ]
            rules.append(("RoutingRule", [("Condition", condition), ("Redirect", redirect)]))
        children.append(("RoutingRules", rules))
    return xml.render("WebsiteConfiguration", children)


# -- serving -------------------------------------------------------------------------------------


def location(
    redirect: Redirect, key: str, matched_prefix: str | None, host: str, scheme: str
) -> str:
    """Where a routing rule (or RedirectAllRequestsTo, with ``key`` the whole path) sends
    ``key``: the rule's host and protocol, else the request's; its key, its prefix replacing
    the matched one, or the key as asked."""
    if redirect.replace_key is not None:
        new_key = redirect.replace_key
    elif redirect.replace_prefix is not None:
        new_key = redirect.replace_prefix + key[len(matched_prefix or "") :]
    else:
        new_key = key
    return f"{redirect.protocol or scheme}://{redirect.host or host}/{quote(new_key, safe='/~')}"


REASONS = {
    301: "Moved Permanently",
    302: "Found",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    412: "Precondition Failed",
    416: "Requested Range Not Satisfiable",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def error_page(
    status: int,
    code: str,
    message: str,
    request_id: str,
    details: list[tuple[str, str]] = (),  # type: ignore[assignment]
    error_document_failed: tuple[int, str, str] | None = None,
) -> bytes:
    """The HTML page the website endpoint answers an error with (S3's layout), never XML.
    ``error_document_failed`` is the (status, code, message) met fetching the bucket's own
    error document, which S3 reports under the first error."""
    title = f"{status} {REASONS.get(status, 'Error')}"
    items = [("Code", code), ("Message", message), *details]
    items += [("RequestId", request_id), ("HostId", request_id)]
    lines = ["<html>", f"<head><title>{title}</title></head>", "<body>", f"<h1>{title}</h1>"]
    lines.append("<ul>")
    lines += [f"<li>{name}: {html_escape(value)}</li>" for name, value in items]
    lines.append("</ul>")
    if error_document_failed is not None:
        doc_status, doc_code, doc_message = error_document_failed
        lines.append(
            "<h3>An Error Occurred While Attempting to Retrieve a Custom Error Document</h3>"
        )
        lines.append("<ul>")
        lines.append(f"<li>Code: {html_escape(doc_code)}</li>")
        lines.append(f"<li>Message: {html_escape(doc_message)}</li>")
        lines.append("</ul>")
        del doc_status
    lines += ["<hr/>", "</body>", "</html>", ""]
    return "\n".join(lines).encode("utf-8")
