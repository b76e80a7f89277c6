"""Bucket operations and the ownership rule: a user reaches only the buckets it owns."""

from __future__ import annotations

import ipaddress
import re
import time

from holdfast.errors import S3Error
from holdfast.index.errors import Conflict, NotEmpty, NotFound
from holdfast.index.records import BucketRecord, BucketUsage
from holdfast.service.node import Node

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def validate_bucket_name(name: str) -> None:
    """S3's general-purpose bucket naming rules; breaking any of them is InvalidBucketName."""
    bad = (
        not _BUCKET_RE.match(name)
        or ".." in name
        or ".-" in name
        or "-." in name
        or name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
        or name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"))
        or _is_ip(name)
    )
    if bad:
        raise S3Error("InvalidBucketName", BucketName=name)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


class Buckets:
    def __init__(self, node: Node) -> None:
        self.node = node

    async def get_owned(self, owner: str, name: str) -> BucketRecord:
        bucket = await self.node.index.get_bucket(name)
        if bucket is None:
            raise S3Error("NoSuchBucket", BucketName=name)
        if bucket.owner != owner:
            raise S3Error("AccessDenied")
        return bucket

    async def list(self, owner: str) -> list[BucketRecord]:
        return await self.node.index.list_buckets(owner)

    async def usage(self, owner: str) -> list[BucketUsage]:
        """``owner``'s buckets with their object counts and sizes (only theirs: one user
        never learns the size of another's buckets)."""
        return await self.node.index.bucket_usage(owner)

    async def damaged_keys(self, bucket: str, first: str, last: str) -> set[str]:
        """Which keys of one listing page (``first`` to ``last``) have no good copy, so a
        browser can mark them."""
        return await self.node.index.damaged_keys(bucket, first, last)

    async def create(self, owner: str, name: str, region: str) -> BucketRecord:
        validate_bucket_name(name)
        record = BucketRecord(name, owner, time.time(), region)
        try:
            await self.node.index.create_bucket(record)
        except Conflict:
            existing = await self.node.index.get_bucket(name)
            if existing is not None and existing.owner == owner:
                raise S3Error("BucketAlreadyOwnedByYou", BucketName=name) from None
            raise S3Error("BucketAlreadyExists", BucketName=name) from None
        return record

    async def get_config(self, owner: str, name: str, config: str) -> str | None:
        """One configuration document of the caller's bucket (None when it has none)."""
        await self.get_owned(owner, name)
        return await self.node.index.get_bucket_config(name, config)

    async def set_config(self, owner: str, name: str, config: str, value: str | None) -> None:
        """Set, or with None remove, one configuration document of the caller's bucket."""
        await self.get_owned(owner, name)
        if not await self.node.index.set_bucket_config(name, config, value):
            raise S3Error("NoSuchBucket", BucketName=name)

    async def delete(self, owner: str, name: str) -> None:
        await self.get_owned(owner, name)
        try:
            await self.node.index.delete_bucket(name)
        except NotEmpty:
            raise S3Error("BucketNotEmpty", BucketName=name) from None
        except NotFound:
            raise S3Error("NoSuchBucket", BucketName=name) from None
