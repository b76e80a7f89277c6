"""Tag sets: the ``Tagging`` XML body, the ``x-amz-tagging`` header, and S3's limits.

Both ways in (the body of PutObjectTagging / PutBucketTagging, and the URL-encoded
``x-amz-tagging`` header of PUT, copy and multipart create) end in the same validation, so
one rule set decides what a tag is. A violation is ``InvalidTag`` with S3's message and
nothing is stored: the caller validates before any write.

The limits are S3's: 10 tags on an object, 50 on a bucket, keys of 1 to 128 characters,
values of up to 256, no key twice, and no key starting with the reserved ``aws:`` prefix.
Characters are those S3 documents for tags: letters, digits and white space in any script,
and ``+ - = . _ : / @``. Tags are kept as an ordered list of pairs because S3 returns them
in the order they were given.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote

from holdfast.errors import S3Error
from holdfast.s3 import xml

OBJECT_TAG_LIMIT = 10
BUCKET_TAG_LIMIT = 50
KEY_MAX = 128
VALUE_MAX = 256
RESERVED_PREFIX = "aws:"
_PUNCTUATION = frozenset("+-=._:/@")

Tags = list[tuple[str, str]]


def _allowed(text: str) -> bool:
    return all(c.isalnum() or c.isspace() or c in _PUNCTUATION for c in text)


def validate(tags: Tags, limit: int = OBJECT_TAG_LIMIT) -> Tags:
    """``tags`` if they keep S3's limits, else InvalidTag (``limit``: 10 for an object, 50
    for a bucket)."""
    if len(tags) > limit:
        if limit == BUCKET_TAG_LIMIT:
            raise S3Error("InvalidTag", f"Bucket tag count cannot be greater than {limit}")
        raise S3Error("InvalidTag", f"Object tags cannot be greater than {limit}")
    seen: set[str] = set()
    for key, value in tags:
        if not key or not _allowed(key):
            raise S3Error("InvalidTag", "The TagKey you have provided is invalid")
        if len(key) > KEY_MAX:
            raise S3Error("InvalidTag", f"The TagKey you have provided is too long, max {KEY_MAX}")
        if key.lower().startswith(RESERVED_PREFIX):
            raise S3Error("InvalidTag", "Your TagKey cannot be prefixed with aws:")
        if len(value) > VALUE_MAX:
            raise S3Error(
                "InvalidTag", f"The TagValue you have provided is too long, max {VALUE_MAX}"
            )
        if not _allowed(value):
            raise S3Error("InvalidTag", "The TagValue you have provided is invalid")
        if key in seen:
            raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key")
        seen.add(key)
    return tags


def parse_xml(body: bytes, limit: int = OBJECT_TAG_LIMIT) -> Tags:
    """A ``<Tagging><TagSet><Tag><Key/><Value/></Tag>...`` body. A missing TagSet, or a Tag
    without Key or Value, is MalformedXML (as S3 answers); the limits are InvalidTag."""
    root = xml.parse(body)
    if root.tag != "Tagging":
        raise S3Error("MalformedXML")
    tag_set = root.find("TagSet")
    if tag_set is None:
        raise S3Error("MalformedXML")
    tags: Tags = []
    for tag in tag_set:
        if tag.tag != "Tag":
            raise S3Error("MalformedXML")
        key, value = tag.find("Key"), tag.find("Value")
        if key is None or value is None:
            raise S3Error("MalformedXML")
        tags.append((key.text or "", value.text or ""))
    return validate(tags, limit)


def parse_header(value: str) -> Tags:
    """``x-amz-tagging``: URL query encoding (``k1=v1&k2=v2``); a key without ``=`` has an
    empty value, as in S3."""
    try:
        pairs = parse_qsl(value, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError) as e:
        raise S3Error(
            "InvalidArgument",
            "The header 'x-amz-tagging' shall be encoded as UTF-8 "
            "then URLEncoded URL query parameters without tag name duplicates.",
        ) from e
    return validate(pairs, OBJECT_TAG_LIMIT)


def render_xml(tags: Tags) -> bytes:
    return xml.render(
        "Tagging", [("TagSet", [("Tag", [("Key", k), ("Value", v)]) for k, v in tags])]
    )


def to_header(tags: Tags) -> str:
    """The header form of a tag set (for copying tags in tests and tools)."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in tags)
