"""The index interface: every operation the service, the workers, ops and the CLI ask of the
index, as one asynchronous abstract class. Two engines implement it: SQLite (embedded, the
single node's default, holdfast/index/sqlite_engine.py) and PostgreSQL (shared by a cluster).

Why asynchronous: with PostgreSQL each call is a network round trip, so a synchronous call
would block the event loop for a whole round trip; with SQLite the engine decides itself what
is cheap enough to run right on the loop (a point read of cached pages) and what goes to its
thread pool or its group commit. Nothing above this file knows which engine it talks to: the
records are in holdfast/index/records.py, the errors in holdfast/index/errors.py.

Rules every engine keeps (the contract suite, tests/contract/, checks them):

* Keys compare bytewise (UTF-8 binary order), as S3 listing requires.
* A write method is one transaction: it happens whole or not at all. A replaced or deleted
  version's blobs go to the GC queue in the same transaction; blobs a committed row refers to
  are in the live set (:meth:`Index.is_live`) from that same transaction on.
* Conditions (``if_absent``, ``if_etag``) and bucket ownership are checked inside the write's
  transaction, never before it.
* Listing pages are stable under concurrent writes: a key present for the whole listing is
  returned exactly once, in order, whatever is written meanwhile.
* Errors are those of holdfast/index/errors.py only. A call that could not reach the engine
  raises IndexUnavailable (it did nothing); a write whose answer was lost raises
  OutcomeUnknown.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence

from holdfast.index.listing import ListPage, PageBuilder
from holdfast.index.records import (
    BackendRecord,
    BucketRecord,
    BucketUsage,
    LayoutRecord,
    ListedEntry,
    NotifyEvent,
    ObjectRecord,
    PartRecord,
    RepairTask,
    StagedLayout,
    TransferSlot,
    UploadRecord,
    UserRecord,
    VersionEntry,
    VersionRef,
)


class Lease(ABC):
    """Leadership of one background job (see :meth:`Index.try_lead`). While it is held, no
    other process of the cluster (of the node, for SQLite) holds the same job's lease."""

    job: str

    @property
    @abstractmethod
    def held(self) -> bool:
        """False once the lease was lost (e.g. the engine connection that held it dropped):
        the holder must stop the job's work and try to lead again."""

    @abstractmethod
    async def release(self) -> None:
        """Give the lease up (idempotent)."""


class Index(ABC):
    """One index engine. Create it with :func:`holdfast.index.open_index`, then ``await
    start()`` before anything else (it migrates the schema), ``await close()`` at the end."""

    #: "sqlite" or "postgres": for status pages and logs only, never for branching above.
    engine: str = ""

    # -- lifecycle ---------------------------------------------------------------------------

    @abstractmethod
    async def start(self) -> None:
        """Connect, and bring the schema up to date (the versioned migrations): two processes
        starting at once must not both migrate. Idempotent."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections, pools, leases; idempotent."""

    @abstractmethod
    async def schema_version(self) -> int:
        """The migration version the index records."""

    async def purge_history(self) -> None:
        """Drop old versions of rewritten rows that the engine still keeps in its logs (after
        secrets were re-sealed, no old text may linger). Engines without such a log need do
        nothing."""
        return None

    def absent(self) -> str | None:
        """Why a tool should not open this index (it would create an empty one where the
        real one is missing), in one line, or None. Checked before :meth:`start`."""
        return None

    def describe(self) -> dict:
        """Engine name and a location safe to show (no password), for status and logs."""
        return {"engine": self.engine}

    # -- users -------------------------------------------------------------------------------

    @abstractmethod
    async def add_user(self, user: UserRecord) -> None:
        """Conflict if the name or the access key exists."""

    @abstractmethod
    async def get_user_by_key(self, access_key: str) -> UserRecord | None: ...

    @abstractmethod
    async def list_users(self) -> list[UserRecord]:
        """All users, by name."""

    @abstractmethod
    async def replace_user_secret(self, access_key: str, old: str, new: str) -> bool:
        """Store ``new`` as the user's secret text if it still is ``old`` (compare and set of
        opaque text: the service seals secrets). False if the row changed or is gone. The
        old text must not survive in the engine's free pages (see :meth:`purge_history`)."""

    @abstractmethod
    async def set_user_disabled(self, name: str, disabled: bool) -> bool:
        """False if there is no such user."""

    @abstractmethod
    async def delete_user(self, name: str) -> bool:
        """NotEmpty (message: the bucket names) while the user owns buckets; False if there
        is no such user."""

    # -- buckets -----------------------------------------------------------------------------

    @abstractmethod
    async def create_bucket(self, bucket: BucketRecord) -> None:
        """Conflict if a bucket of that name exists (whoever owns it)."""

    @abstractmethod
    async def get_bucket(self, name: str) -> BucketRecord | None: ...

    @abstractmethod
    async def list_buckets(self, owner: str) -> list[BucketRecord]:
        """The owner's buckets, by name."""

    @abstractmethod
    async def bucket_usage(self, owner: str | None = None) -> list[BucketUsage]:
        """Buckets (``owner``'s, or every one), by name, with the object count and sizes the
        engine keeps per bucket: no count over the objects."""

    @abstractmethod
    async def damaged_keys(self, bucket: str, first: str, last: str) -> set[str]:
        """The keys from ``first`` to ``last`` (one listing page) of objects not in state
        "ok", so a browser can mark them."""

    @abstractmethod
    async def delete_bucket(self, name: str) -> None:
        """NotEmpty while objects remain, NotFound if absent; unfinished uploads are aborted
        with the bucket (their parts' blobs go to the GC queue)."""

    # -- objects -----------------------------------------------------------------------------

    @abstractmethod
    async def get_object(self, bucket: str, key: str) -> ObjectRecord | None: ...

    @abstractmethod
    async def get_object_in(self, bucket: str, key: str) -> tuple[str | None, ObjectRecord | None]:
        """(bucket owner, object) in one read: the owner None when the bucket does not exist,
        the object None when the key does not. Every GET and HEAD: keep it one round trip."""

    @abstractmethod
    async def put_object(
        self,
        obj: ObjectRecord,
        if_absent: bool = False,
        if_etag: str | None = None,
        owner: str | None = None,
    ) -> None:
        """Make ``obj`` the visible version in one transaction. ``if_absent``: ConditionFailed
        (missing=False) if the key exists. ``if_etag``: ConditionFailed unless the current
        version's etag (unquoted) is this one (missing=True when there is none). With
        ``owner``: NotFound if the bucket does not exist, Forbidden if another user owns it.
        Segments' ``deferred`` copies are queued for repair in the same transaction.

        In a versioned bucket (bucket configuration "versioning": "Enabled" or
        "Suspended") the replaced version is kept as a noncurrent version (a suspended
        bucket's "null" version is replaced instead) and the new version's VersionRef is
        returned; the version number comes from one sequence, taken under the key's lock,
        so a key's versions are ordered by commit. None in a bucket never versioned."""

    @abstractmethod
    async def delete_object(self, bucket: str, key: str) -> bool | VersionRef:
        """False if there was no such key. In a versioned bucket, a delete marker becomes
        the newest version (whether or not the key existed): its VersionRef."""

    @abstractmethod
    async def delete_objects(self, bucket: str, keys: list[str]) -> list[bool | VersionRef]:
        """One transaction for a whole DeleteObjects batch; absent keys are no error. One
        answer per key, as :meth:`delete_object`'s."""

    # -- versions ----------------------------------------------------------------------------

    @abstractmethod
    async def get_version(self, bucket: str, key: str, seq: int | None) -> ObjectRecord | None:
        """One version (``seq`` None: the "null" version), current or not; a delete marker
        comes back with ``delete_marker`` set. None if there is no such version."""

    @abstractmethod
    async def current_marker(self, bucket: str, key: str) -> ObjectRecord | None:
        """The delete marker that is ``key``'s newest version, if it is one (GET and HEAD
        answer 404 with its id)."""

    @abstractmethod
    async def delete_version(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        check: Callable[[ObjectRecord], None] | None = None,
    ) -> ObjectRecord | None:
        """Remove one version for good, its blobs to the GC queue, in one transaction in
        which ``check(version)`` may refuse by raising (object lock). Removing the current
        version makes the newest remaining version current, unless that is a delete marker.
        The version removed, or None if there was none."""

    @abstractmethod
    async def list_versions(
        self, bucket: str, prefix: str, after: tuple[str, int] | None, limit: int
    ) -> list[VersionEntry]:
        """Versions and delete markers of keys starting with ``prefix``, key ascending and
        newest first within a key, strictly after ``after`` = (key, vseq) in that order.
        Stable under concurrent writes: a version present for the whole listing is returned
        exactly once."""

    @abstractmethod
    async def set_version_lock(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        change: Callable[[ObjectRecord], tuple[str | None, float | None, bool]],
    ) -> ObjectRecord | None:
        """Set one version's (retention mode, retain-until, legal hold) to ``change(version)``,
        computed and checked inside the write's transaction (object lock: a retention may
        only be changed as holdfast/service/objectlock.py allows, and two changes must not
        both pass the check against the same old value). Returns the version as it was;
        None if there is no such version."""

    @abstractmethod
    async def add_copies(
        self, bucket: str, key: str, etag: str, extra: dict[str, list[str]]
    ) -> int:
        """Add stores (blob id -> store ids) to the current version's segments and queue
        the copies they are owed, in one transaction, if the object still has ``etag``
        (``holdfast object push`` under a policy set after the write). How many queued."""

    @abstractmethod
    async def set_object_headers(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        change: Callable[[dict[str, str]], dict[str, str]],
        current: bool = False,
    ) -> ObjectRecord | None:
        """Replace one version's stored-header map by ``change(old map)``, in one
        transaction (PutObjectAcl keeps an object's ACL there). ``current``: the key's
        current version (``seq`` ignored); else the version numbered ``seq`` (None: "null").
        Returns the version as it was; None if there is no such version (a delete marker
        is never changed)."""

    @abstractmethod
    async def set_version_tags(
        self,
        bucket: str,
        key: str,
        seq: int | None,
        tags: list[tuple[str, str]],
        check: Callable[[ObjectRecord], None],
    ) -> ObjectRecord | None:
        """Replace one version's tags (``seq`` None: the "null" version), current or not, in
        one transaction in which ``check(version)`` may refuse by raising (a delete marker has
        no tags). The version as it was; None if there is no such version."""

    @abstractmethod
    async def set_object_tags(self, bucket: str, key: str, tags: list[tuple[str, str]]) -> bool:
        """Replace the current version's tags (empty: none); False if there is no such key."""

    @abstractmethod
    async def mark_object_state(self, bucket: str, key: str, etag: str, state: str) -> None:
        """Set the state of the version with this etag only (never a newer one)."""

    @abstractmethod
    async def move_copy(
        self, bucket: str, key: str, vseq: int | None, blob_id: str, old: str, new: str
    ) -> bool:
        """Record that the copy of ``blob_id`` on store ``old`` is now on ``new``, in the
        current object (``vseq`` None) or noncurrent version ``vseq``, as a compare-and-set
        on the row's segments: False (nothing changed) if the row no longer has that copy."""

    @abstractmethod
    async def set_state_if(self, bucket: str, key: str, etag: str, old: str, new: str) -> bool:
        """Change one version's state only if it still is ``old``; whether it changed."""

    @abstractmethod
    async def list_keys(
        self, bucket: str, prefix: str, start: str | None, inclusive: bool, limit: int
    ) -> list[ListedEntry]:
        """Up to ``limit`` keys starting with ``prefix``, in binary order, from ``start``
        (strictly after it unless ``inclusive``)."""

    async def list_page(
        self, bucket: str, prefix: str, delimiter: str, after: str | None, max_keys: int
    ) -> ListPage:
        """One ListObjects page: keys and common prefixes after the marker ``after``
        (holdfast/index/listing.py). Engines may override it to run the page's queries
        together (SQLite: in one thread, or on the event loop when there is no delimiter)."""
        builder = PageBuilder(prefix, delimiter, after, max_keys)
        while (q := builder.query()) is not None:
            builder.take(await self.list_keys(bucket, prefix, *q))
        return builder.page

    @abstractmethod
    async def import_objects(self, objects: Iterable[ObjectRecord], batch: int = 10_000) -> int:
        """Bulk-load objects whose keys are not present yet (migrations, benchmarks); how
        many were loaded."""

    # -- multipart uploads -------------------------------------------------------------------

    @abstractmethod
    async def create_upload(self, up: UploadRecord) -> None: ...

    @abstractmethod
    async def get_upload(self, upload_id: str) -> UploadRecord | None: ...

    @abstractmethod
    async def list_uploads(
        self,
        bucket: str,
        prefix: str,
        key_marker: str | None,
        upload_id_marker: str | None,
        limit: int,
    ) -> list[UploadRecord]:
        """In (key, initiated, upload id) order, after the markers."""

    @abstractmethod
    async def put_part(self, part: PartRecord) -> bool:
        """Record a part (replacing an earlier one of the same number, whose blob goes to the
        GC queue). False if the upload is gone: the caller frees the blob."""

    @abstractmethod
    async def list_parts(
        self, upload_id: str, after: int = 0, limit: int = 10_000
    ) -> list[PartRecord]: ...

    @abstractmethod
    async def complete_upload(self, upload_id: str, obj: ObjectRecord) -> bool | VersionRef:
        """Atomically: the object appears (as :meth:`put_object` makes it, so a VersionRef
        in a versioned bucket), the upload disappears, parts not in ``obj`` go to the GC
        queue. False if the upload vanished meanwhile."""

    @abstractmethod
    async def abort_upload(self, upload_id: str) -> bool:
        """False if there was no such upload."""

    @abstractmethod
    async def scan_parts(self, after: tuple[str, int] | None, limit: int) -> list[PartRecord]:
        """Parts of unfinished uploads in (upload id, part number) order after ``after``."""

    # -- garbage -----------------------------------------------------------------------------

    @abstractmethod
    async def due_garbage(
        self, limit: int, now: float | None = None
    ) -> list[tuple[str, list[str]]]:
        """(blob id, store ids) of queued garbage whose grace has passed, oldest first."""

    @abstractmethod
    async def forget_garbage(self, blob_ids: list[str], missed: Sequence[RepairTask] = ()) -> None:
        """Drop collected garbage; ``missed`` (deletes a down drive could not do) go to the
        repair queue in the same transaction."""

    @abstractmethod
    async def is_live(self, blob_id: str) -> bool: ...

    @abstractmethod
    async def known_blobs(self, blob_ids: list[str]) -> set[str]:
        """Which of these ids the index knows at all: live, or queued for deletion."""

    @abstractmethod
    async def reference_problems(self) -> dict[str, list[str]]:
        """{"unmarked": referenced blobs missing from the live set, "unreferenced": live
        blobs nothing refers to} (fsck)."""

    @abstractmethod
    async def fix_references(self, unmarked: list[str], unreferenced: list[str]) -> None:
        """Mark ``unmarked`` live; hand ``unreferenced`` to the GC on every known drive."""

    # -- repair queue (also each drive's hinted-handoff log) ---------------------------------

    @abstractmethod
    async def queue_repairs(self, tasks: Sequence[RepairTask]) -> int:
        """Insert rows; how many are new. A "copy" never overrides an existing row; a
        "delete" overrides a pending "copy"."""

    @abstractmethod
    async def due_repairs(
        self, stores: Iterable[str], limit: int, now: float | None = None
    ) -> list[RepairTask]:
        """Rows for these drives that may run now, oldest first."""

    @abstractmethod
    async def repairs(self, limit: int = 1000) -> list[RepairTask]: ...

    @abstractmethod
    async def finish_repair(self, task: RepairTask) -> bool:
        """Drop a done row (unless it changed meanwhile); whether the blob is still live,
        from the same transaction."""

    @abstractmethod
    async def defer_repair(self, task: RepairTask, not_before: float, error: str) -> None: ...

    @abstractmethod
    async def repair_summary(self) -> dict:
        """{store_id: {op: {"rows", "bytes", "oldest"}}}."""

    # -- integrity, totals --------------------------------------------------------------------

    @abstractmethod
    async def scan_objects(self, after: tuple[str, str] | None, limit: int) -> list[ObjectRecord]:
        """Objects in (bucket, key) order after ``after``, with the fields verification
        needs (bucket, key, size, etag, state, segments, inline)."""

    @abstractmethod
    async def scan_versions(
        self, after: tuple[str, str, int] | None, limit: int
    ) -> list[ObjectRecord]:
        """Noncurrent versions holding data (delete markers have none), in (bucket, key,
        vseq) order after ``after``, with the fields of :meth:`scan_objects` and ``vseq``:
        the scrubber and fsck verify their copies too."""

    @abstractmethod
    async def totals(self) -> tuple[int, int]:
        """(objects and parts, bytes of all their copies): a scrub pass's or fsck's work."""

    @abstractmethod
    async def damaged_objects(self, limit: int = 100) -> tuple[int, list[tuple[str, str]]]:
        """(how many objects are marked damaged, the first ``limit`` (bucket, key))."""

    @abstractmethod
    async def integrity_check(self, quick: bool = False) -> list[str]:
        """The engine's own consistency check of its storage; ["ok"] when sound."""

    @abstractmethod
    async def status_counts(self, timeout: float, examples: int = 5) -> dict:
        """For the status page, within ``timeout`` seconds (IndexUnavailable past it), from
        kept totals, never a scan: {"buckets", "objects", "stored_bytes" (the objects' sizes,
        one copy each), "gc_queue", "corrupt_objects", "corrupt_examples": [{"bucket", "key",
        "state"}], "damaged": {"count", "examples": ["bucket/key"]}, "repair_queue": as
        :meth:`repair_summary`}."""

    @abstractmethod
    async def probe(self, timeout: float) -> dict:
        """Can the index be read, and could it take a write, within ``timeout``:
        {"readable": bool, "writable": bool, "error": str | None, "read_ms": float}. Never
        raises; never waits past the timeout."""

    # -- drives and placement ----------------------------------------------------------------

    @abstractmethod
    async def drives(self) -> dict[str, str]:
        """store id -> uuid of every drive adopted."""

    @abstractmethod
    async def register_drive(self, store_id: str, path: str, adopt: Callable[[str], str]) -> str:
        """The drive's uuid; for a drive the index does not know, ``adopt(new uuid)`` (which
        writes the drive's marker and returns the uuid to record) runs inside the same
        transaction, so processes starting together agree on one identity."""

    @abstractmethod
    async def bucket_policies(self) -> dict[str, tuple[int, int, str]]:
        """bucket -> (copies, min_copies, spread): ``spread`` is the policy's spread by kind
        of store in the policy language (holdfast/placement/policy.py), "" for none."""

    @abstractmethod
    async def set_bucket_policy(
        self, bucket: str, copies: int | None, min_copies: int | None, spread: str = ""
    ) -> None:
        """Set, or with ``copies`` None clear, a bucket's placement policy."""

    # -- back-end stores (``holdfast store add``: holdfast/stores/backends.py) -----------------

    @abstractmethod
    async def backend_stores(self) -> list[BackendRecord]:
        """Every back-end store registered, by name."""

    @abstractmethod
    async def add_backend_store(self, rec: BackendRecord, uuid_: str, location: str) -> None:
        """Record a back-end store and its identity in one transaction: its row, and its
        ``drives`` row (store id -> the uuid its marker holds, ``location`` as its path).
        Conflict when the name is taken (nothing written)."""

    @abstractmethod
    async def set_backend_secret(self, name: str, secret: bytes) -> None:
        """Replace a store's sealed credentials (master key rotation)."""

    @abstractmethod
    async def remove_backend_store(self, name: str) -> bool:
        """Forget a back-end store: its row, its ``drives`` row and the repairs owed to it,
        in one transaction. False when no store has that name."""

    # -- bucket configurations ---------------------------------------------------------------

    @abstractmethod
    async def get_bucket_config(self, bucket: str, name: str) -> str | None:
        """One configuration document of a bucket (``name``: "tagging", ...; the text is the
        service's), or None when it has none."""

    @abstractmethod
    async def set_bucket_config(self, bucket: str, name: str, value: str | None) -> bool:
        """Set, or with None remove, one configuration document; False if the bucket does
        not exist (checked in the same transaction). DeleteBucket removes them all."""

    @abstractmethod
    async def get_bucket_access(
        self, bucket: str, names: tuple[str, ...]
    ) -> tuple[BucketRecord | None, dict[str, str]]:
        """The bucket and those of its configuration documents named in ``names``, in one
        read: what the access check needs on every request, current as of this read (so a
        configuration put on any node is honoured by the next request)."""

    async def get_object_access(
        self, bucket: str, names: tuple[str, ...], key: str
    ) -> tuple[BucketRecord | None, dict[str, str], ObjectRecord | None]:
        """:meth:`get_bucket_access` and the current version of ``key`` (None when there is
        none), read together: every GET and HEAD needs both, before anything else, so an
        engine across a network answers them in one round trip (PostgreSQL: one statement).
        Both are current as of this read: nothing here is cached."""
        record, docs = await self.get_bucket_access(bucket, names)
        if record is None:
            return None, {}, None
        return record, docs, await self.get_object(bucket, key)

    # -- event notifications (holdfast/index/notify.py, holdfast/workers/notify.py) -----------
    # The object writes (put_object, complete_upload, delete_object, delete_objects,
    # delete_version) write the outbox rows themselves, in their own transaction, for the
    # rules of the bucket's "notification" configuration the change matches.

    @abstractmethod
    async def due_notifications(
        self, streams: int, per_stream: int, now: float | None = None
    ) -> list[list[NotifyEvent]]:
        """Up to ``streams`` (bucket, target) streams whose oldest pending event may be tried
        now; of each, its first ``per_stream`` pending events in outbox order."""

    @abstractmethod
    async def finish_notifications(self, ids: list[int]) -> None:
        """Drop delivered events."""

    @abstractmethod
    async def defer_notification(
        self, event_id: int, not_before: float, error: str, dead: bool
    ) -> None:
        """One more failed attempt; ``dead``: give up (the dead-letter state)."""

    @abstractmethod
    async def retry_dead_notifications(self, target: str | None = None) -> int:
        """Dead events (of one target, or all) become pending again; how many."""

    @abstractmethod
    async def notification_summary(self) -> dict:
        """{target: {state: {"rows", "oldest"}}} of the outbox."""

    @abstractmethod
    async def dead_notifications(self, limit: int = 100) -> list[NotifyEvent]:
        """The newest dead events."""

    # -- SSE-S3 data keys (holdfast/workers/reseal.py) ----------------------------------------

    @abstractmethod
    async def scan_sealed(
        self, table: str, after: tuple[str, str, int] | None, limit: int, marker: str
    ) -> list[tuple[str, str, int, str]]:
        """(bucket, key, vseq, header value) of the versions in ``table`` ("objects":
        current, "versions": noncurrent) whose stored headers hold header ``marker``, in
        (bucket, key, vseq) order after ``after``."""

    @abstractmethod
    async def replace_header(
        self, bucket: str, key: str, vseq: int, name: str, old: str, new: str
    ) -> bool:
        """Compare and set of one stored header of a version, current or not; False when
        the version is gone or the header is no longer ``old``."""

    @abstractmethod
    async def replace_upload_header(self, upload_id: str, name: str, old: str, new: str) -> bool:
        """The same for an unfinished multipart upload."""

    # -- meta ---------------------------------------------------------------------------------

    @abstractmethod
    async def get_meta(self, name: str) -> str | None: ...

    @abstractmethod
    async def set_meta(self, name: str, value: str) -> None: ...

    # -- the cluster layout (authoritative; holdfast/cluster/layout.py) ------------------------

    @abstractmethod
    async def layout_version(self) -> int:
        """The current layout version (0: none applied yet): one cheap read, which nodes
        poll (at most once a second) to follow layout changes."""

    @abstractmethod
    async def get_layout(self) -> LayoutRecord | None:
        """The current (last applied) layout, None before the first apply."""

    @abstractmethod
    async def get_staged_layout(self) -> StagedLayout | None: ...

    @abstractmethod
    async def stage_layout(self, staged: StagedLayout | None) -> None:
        """Replace the staged layout (None: drop it)."""

    @abstractmethod
    async def apply_layout(
        self, expect_version: int, layout: LayoutRecord, drop_staged: bool = True
    ) -> int:
        """Compare-and-set, one transaction: if the current version is still
        ``expect_version``, record ``layout`` (its nodes, audit fields) as version
        ``expect_version + 1`` and drop the staged layout (unless ``drop_staged`` is False: a
        tool applying a layout of its own leaves an operator's staged change, now stale,
        alone); the new version. Conflict
        otherwise (another operator applied meanwhile), and nothing changes."""

    @abstractmethod
    async def layout_history(self, limit: int = 50) -> list[LayoutRecord]:
        """Applied versions with their audit records, newest first."""

    # -- transfer slots: the cluster's cap on concurrent background transfers ------------------
    # (holdfast/workers/transfers.py). A slot is a lease: taken by one statement, renewed
    # while a long copy goes on, released after it; one that is not renewed expires, so a
    # crashed holder's slots come back by themselves. Expiry is judged on the engine's clock.

    @abstractmethod
    async def acquire_transfer_slot(
        self, cap: int, holder: str, kind: str, target: str, token: str, ttl: float
    ) -> int | None:
        """Take a slot numbered below ``cap`` that is free or expired, for ``ttl`` seconds,
        in one atomic statement: its number, or None when ``cap`` slots are live (the
        caller waits and asks again). ``token`` (unique per acquisition) is what renew and
        release must name."""

    @abstractmethod
    async def renew_transfer_slot(self, slot: int, token: str, ttl: float) -> bool:
        """Extend our lease to ``ttl`` seconds from now; False if the slot is no longer
        ours (it expired and was taken)."""

    @abstractmethod
    async def release_transfer_slot(self, slot: int, token: str) -> None:
        """Free our slot (nothing if it is no longer ours)."""

    @abstractmethod
    async def transfer_slots(self) -> list[TransferSlot]:
        """The live (unexpired) slots, by number."""

    # -- once per cluster ---------------------------------------------------------------------

    @abstractmethod
    async def try_lead(self, job: str) -> Lease | None:
        """The lease of background job ``job`` if nobody else holds it, else None at once.
        SQLite: an flock next to the index (one process per node, which is the cluster);
        PostgreSQL: an advisory lock or a lease row (one process per cluster)."""

    async def lead(self, job: str, retry_seconds: float) -> Lease:
        """Wait until this process leads ``job``."""
        import asyncio

        while (lease := await self.try_lead(job)) is None:
            await asyncio.sleep(retry_seconds)
        return lease
