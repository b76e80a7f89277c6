"""Object lock, stored: a version's retention and legal hold read and changed, and the check
every removal of a version goes through (holdfast/service/versions.py passes it to the
index, which runs it inside the delete's transaction, so no path can be more lenient).

The rules themselves are holdfast/service/objectlock.py's; this module applies them to the
index's records and bucket configuration.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord
from holdfast.service import objectlock
from holdfast.service.node import Node
from holdfast.service.objectlock import Retention, retention_of
from holdfast.service.versions import parse_version_id

# The bucket configuration document that enables the lock (its presence; S3 never lets a
# bucket turn the lock off). Written by holdfast/s3/ops/objectlock.py.
CONFIG = "objectlock"

# The lock CreateMultipartUpload's headers asked for, kept with the upload (as JSON
# {"mode", "until", "hold"}) among its stored headers until CompleteMultipartUpload gives it
# to the object; never sent to clients, never kept on the object.
UPLOAD_LOCK_HEADER = "x-holdfast-lock"


class Locks:
    def __init__(self, node: Node) -> None:
        self.node = node

    async def enabled(self, bucket: str) -> bool:
        return await self.node.index.get_bucket_config(bucket, CONFIG) is not None

    async def require(self, bucket: str) -> None:
        """InvalidRequest unless the bucket has object lock, as S3 answers."""
        if not await self.enabled(bucket):
            raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")

    async def get(self, bucket: str, key: str, version: str | None) -> ObjectRecord:
        """The version whose lock is read (the current one without a version id)."""
        seq = parse_version_id(version) if version else None
        if version:
            obj = await self.node.index.get_version(bucket, key, seq)
        else:
            obj = await self.node.index.get_object(bucket, key)
        if obj is None:
            if version:
                raise S3Error("NoSuchVersion", Key=key, VersionId=version)
            raise S3Error("NoSuchKey", Key=key)
        if obj.delete_marker:
            raise S3Error("MethodNotAllowed", status=405)
        return obj

    async def _change(
        self,
        bucket: str,
        key: str,
        version: str | None,
        change: Callable[[ObjectRecord], tuple[str | None, float | None, bool]],
    ) -> None:
        target = await self.get(bucket, key, version)

        def guarded(current: ObjectRecord) -> tuple[str | None, float | None, bool]:
            if current.delete_marker:
                raise S3Error("MethodNotAllowed", status=405)
            return change(current)

        seq = None if target.vnull else target.vseq
        if await self.node.index.set_version_lock(bucket, key, seq, guarded) is None:
            raise S3Error("NoSuchVersion", Key=key, VersionId=version or "null")

    async def set_retention(
        self,
        bucket: str,
        key: str,
        version: str | None,
        new: Retention | None,
        bypass_governance: bool,
    ) -> None:
        """Checked against the version's retention as it is in the same transaction."""

        def change(current: ObjectRecord) -> tuple[str | None, float | None, bool]:
            objectlock.check_retention_change(
                retention_of(current), new, time.time(), bypass_governance
            )
            if new is None:
                return None, None, current.legal_hold
            return new.mode, new.until, current.legal_hold

        await self._change(bucket, key, version, change)

    async def set_legal_hold(self, bucket: str, key: str, version: str | None, on: bool) -> None:
        def change(current: ObjectRecord) -> tuple[str | None, float | None, bool]:
            return current.retention_mode, current.retain_until, on

        await self._change(bucket, key, version, change)
