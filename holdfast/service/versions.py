"""Object versions: the bucket's versioning state, reading, deleting and listing versions.

The index keeps each key's current version where GET and ListObjects read it and the rest
in its version history (holdfast/index/base.py); this module turns S3's version ids into
the index's version numbers (holdfast/service/versionids.py) and builds ListObjectVersions
pages, with common prefixes, on top of the index's keyset pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from holdfast.errors import S3Error
from holdfast.index.errors import IndexFull, OutcomeUnknown
from holdfast.index.listing import common_prefix, prefix_upper_bound
from holdfast.index.records import ObjectRecord, VersionEntry, VersionRef
from holdfast.service import versionids
from holdfast.service.node import Node

CONFIG = "versioning"
ENABLED = "Enabled"
SUSPENDED = "Suspended"
_AFTER_ALL = 2**63 - 1  # a version number above every real one: "from the start of a key"


def version_id(seq: int, null: bool) -> str:
    return versionids.NULL if null else versionids.encode(seq)


def record_version_id(obj: ObjectRecord) -> str | None:
    """The id to send with a version read or written; None for a version written before the
    bucket was ever versioned (S3 sends no header for those in an unversioned bucket)."""
    if obj.vseq == 0 and obj.vnull:
        return None
    return version_id(obj.vseq, obj.vnull)


def parse_version_id(text: str) -> int | None:
    """The version number named by a ``versionId`` (None: the "null" version);
    InvalidArgument for a string that is no version id of ours."""
    if text == versionids.NULL:
        return None
    seq = versionids.decode(text)
    if seq is None:
        raise S3Error("InvalidArgument", "Invalid version id specified")
    return seq


@dataclass
class VersionsPage:
    entries: list[VersionEntry] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    next_key: str | None = None
    next_version: str | None = None


class Versions:
    def __init__(self, node: Node) -> None:
        self.node = node

    async def state(self, bucket: str) -> str | None:
        return await self.node.index.get_bucket_config(bucket, CONFIG)

    async def set_state(self, bucket: str, status: str) -> None:
        """Enabled or Suspended; a bucket once versioned never goes back to unversioned,
        which S3 has no way to ask for anyway."""
        if not await self.node.index.set_bucket_config(bucket, CONFIG, status):
            raise S3Error("NoSuchBucket", BucketName=bucket)

    async def get(self, bucket: str, key: str, version: str) -> ObjectRecord:
        """One version (of a bucket already checked), delete markers included;
        NoSuchVersion if there is none."""
        obj = await self.node.index.get_version(bucket, key, parse_version_id(version))
        if obj is None:
            raise S3Error("NoSuchVersion", Key=key, VersionId=version)
        return obj

    async def current_marker(self, bucket: str, key: str) -> ObjectRecord | None:
        return await self.node.index.current_marker(bucket, key)

    async def delete(self, bucket: str, key: str, version: str, check=None) -> ObjectRecord | None:
        """Remove one version for good; None if there was no such version (S3 answers 204
        all the same)."""
        seq = parse_version_id(version)
        try:
            return await self.node.index.delete_version(bucket, key, seq, check)
        except IndexFull:
            raise S3Error("InsufficientStorage") from None
        except OutcomeUnknown:
            raise S3Error("InternalError", "The outcome of the delete is unknown.") from None

    async def delete_current(self, bucket: str, key: str) -> VersionRef | None:
        """DELETE without a version id: the delete marker written, if the bucket is versioned."""
        try:
            result = await self.node.index.delete_object(bucket, key)
        except IndexFull:
            raise S3Error("InsufficientStorage") from None
        except OutcomeUnknown:
            raise S3Error("InternalError", "The outcome of the delete is unknown.") from None
        return result if isinstance(result, VersionRef) else None

    async def page(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str | None,
        version_marker: str | None,
        max_keys: int,
    ) -> VersionsPage:
        """One ListObjectVersions page. Pages are keyset pages over (key, version number),
        so a version present for the whole listing comes back exactly once."""
        after: tuple[str, int] | None = None
        if version_marker and key_marker is None:
            raise S3Error(
                "InvalidArgument", "A version-id marker cannot be specified without a key marker."
            )
        if key_marker is not None:
            if version_marker:
                seq = parse_version_id(version_marker)
                if seq is None:  # the null version: where it stands now
                    null = await self.node.index.get_version(bucket, key_marker, None)
                    seq = null.vseq if null is not None else 0
                after = (key_marker, seq)
            elif delimiter and common_prefix(key_marker, prefix, delimiter) == key_marker:
                after = _past(key_marker)  # the marker is a common prefix: skip all of it
            else:
                after = (key_marker, -1)
        page = VersionsPage()
        count = 0
        while after is not None or count == 0:
            batch = await self.node.index.list_versions(
                bucket, prefix, after, min(1000, max_keys - count + 1)
            )
            if not batch:
                return page
            for entry in batch:
                cp = common_prefix(entry.key, prefix, delimiter)
                if count == max_keys:
                    page.truncated = True
                    return page
                count += 1
                if cp is not None:
                    page.prefixes.append(cp)
                    page.next_key, page.next_version = cp, None
                    after = _past(cp)
                    break
                page.entries.append(entry)
                page.next_key = entry.key
                page.next_version = version_id(entry.seq, entry.null)
                after = (entry.key, entry.seq)
            if after is None:
                return page
        return page


def _past(prefix: str) -> tuple[str, int] | None:
    """``after`` for "every key starting with ``prefix`` is behind us"."""
    upper = prefix_upper_bound(prefix)
    return None if upper is None else (upper, _AFTER_ALL)
