"""Errors every index engine raises, whatever its storage: the layers above catch these and
nothing engine-specific (no ``sqlite3`` or ``psycopg`` exception ever leaves holdfast/index/).

Each maps to one answer: NotFound and Forbidden to the S3 "no such ..." and "access denied"
errors, Conflict and NotEmpty to 409s, ConditionFailed to 412, IndexFull to 507
(InsufficientStorage), IndexUnavailable to a quick 503, OutcomeUnknown to a 500 (the write
may have committed: SDKs retry, and the caller must not free anything the write referred to).
"""

from __future__ import annotations


class IndexError_(Exception):  # noqa: N801 - "IndexError" is a builtin
    """Base of every index error."""


class NotFound(IndexError_):
    """The bucket, user or upload named does not exist."""


class Conflict(IndexError_):
    """A uniqueness rule was broken (bucket exists, user exists)."""


class NotEmpty(IndexError_):
    """The bucket still holds objects, or the user still owns buckets."""


class Forbidden(IndexError_):
    """The bucket belongs to another user."""


class ConditionFailed(IndexError_):
    """A conditional write found a different current version than the client expected."""

    def __init__(self, missing: bool) -> None:
        super().__init__("object missing" if missing else "etag differs")
        self.missing = missing

    def __reduce__(self) -> tuple:
        return (ConditionFailed, (self.missing,))  # rebuilt whole across process boundaries


class IndexFull(IndexError_):
    """The index's storage is full: nothing was written (S3: 507 InsufficientStorage)."""


class IndexUnavailable(IndexError_):
    """The engine cannot be reached, is locked or timed out before doing anything: the
    operation did not happen and may be retried (S3: 503 ServiceUnavailable)."""


class OutcomeUnknown(IndexError_):
    """A write was sent but its answer never came (connection dropped, committer gone): it
    may or may not have committed. Never retried blindly; answered with a 500."""


class SchemaTooNew(IndexError_):
    """The index was migrated by a newer Holdfast than this one: refuse to touch it."""
