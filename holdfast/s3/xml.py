"""S3 XML: rendering responses and parsing request bodies safely.

Parsing goes through defusedxml, which refuses DTDs, entity declarations and external
references outright, so entity-expansion bombs and XXE never reach the parser proper. Any
failure to parse is MalformedXML and the request changes nothing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from holdfast.errors import S3Error

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BODY = 4 * 1024 * 1024

Tree = dict[str, Any] | list[tuple[str, Any]]


def render(
    root: str, children: Iterable[tuple[str, Any]], namespace: bool | str = True, text: str = ""
) -> bytes:
    """Render ``(tag, value)`` pairs; a value may be text, None (skipped), a bool, a number
    or a nested list of pairs. Built as a string directly: ElementTree's serializer was most
    of the cost of a 1,000-key listing. Tags are our own constants; only text is escaped
    (a carriage return as a character reference, so keys containing one survive parsing).
    ``namespace`` is True for S3's, False for none, or another namespace URI."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<', root]
    if namespace:
        out.append(f' xmlns="{NS if namespace is True else namespace}"')
    out.append(">")
    out.append(escape(text))
    _fill(out, children)
    out.append(f"</{root}>")
    return "".join(out).encode("utf-8")


class Fragment(str):
    """Already-rendered XML, appended as it is (hot paths such as listing entries)."""


def escape(text: str) -> str:
    """Chained replaces, not ``str.translate``: each is one C scan that returns the string
    itself when there is nothing to replace, five times faster on typical keys (measured)."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def element(tag: str, text: str) -> str:
    return f"<{tag}>{escape(text)}</{tag}>"


def _fill(out: list[str], children: Iterable[tuple[str, Any]]) -> None:
    for tag, value in children:
        if value is None:
            continue
        if isinstance(value, Fragment):
            out.append(value)
            continue
        if isinstance(value, list):
            out.append(f"<{tag}>")
            _fill(out, value)
            out.append(f"</{tag}>")
            continue
        body = ("true" if value else "false") if isinstance(value, bool) else escape(str(value))
        out.append(f"<{tag}>{body}</{tag}>")


def error_xml(code: str, message: str, resource: str, request_id: str, extra: dict) -> bytes:
    pairs: list[tuple[str, Any]] = [("Code", code), ("Message", message)]
    pairs += list(extra.items())
    pairs += [("Resource", resource), ("RequestId", request_id), ("HostId", request_id)]
    return render("Error", pairs, namespace=False)


def parse(body: bytes) -> ET.Element:
    """Parse a request body; namespaces are stripped so ``find('Part')`` works either way."""
    if not body.strip():
        raise S3Error("MalformedXML")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError, LookupError) as e:
        # LookupError: an XML declaration naming an unknown encoding (found by fuzzing).
        raise S3Error("MalformedXML") from e
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def text(el: ET.Element, tag: str, default: str | None = None) -> str | None:
    child = el.find(tag)
    if child is None:
        return default
    return child.text or ""
