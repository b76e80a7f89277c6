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
    root: str, children: Iterable[tuple[str, Any]], namespace: bool = True, text: str = ""
) -> bytes:
    """Render ``(tag, value)`` pairs; a value may be text, None (skipped), a bool, a number
    or a nested list of pairs."""
    element = ET.Element(root, {"xmlns": NS} if namespace else {})
    element.text = text or None
    _fill(element, children)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, encoding="utf-8")


def _fill(parent: ET.Element, children: Iterable[tuple[str, Any]]) -> None:
    for tag, value in children:
        if value is None:
            continue
        child = ET.SubElement(parent, tag)
        if isinstance(value, list):
            _fill(child, value)
        elif isinstance(value, bool):
            child.text = "true" if value else "false"
        else:
            child.text = str(value)


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
    except (ET.ParseError, DefusedXmlException, ValueError) as e:
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
