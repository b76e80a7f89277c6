"""The lifecycle job: applies each bucket's lifecycle rules (holdfast/service/lifecycle.py).

One pass walks the buckets by name; in a bucket with a lifecycle configuration it walks
every version of every key (ListObjectVersions' order: key, then newest first) and then the
unfinished multipart uploads:

* a current version a rule's Expiration (Days or Date) has reached is deleted as a client's
  DELETE without a version id deletes it: a delete marker in a versioned bucket, gone in an
  unversioned one;
* a noncurrent version (one became noncurrent when the next newer version was written) that
  NoncurrentVersionExpiration has reached, past the NewerNoncurrentVersions newest, is
  removed as a DELETE with its version id removes it; object lock is checked inside that
  delete's index transaction (holdfast/service/versions.py), so a locked version is never
  removed: the refusal is counted and the version kept;
* a delete marker left as a key's only version is removed under ExpiredObjectDeleteMarker
  (or an Expiration Days rule, as S3 does);
* an upload AbortIncompleteMultipartUpload has reached is aborted.

Like the scrubber, the walk's position and the pass's counters are saved in the index every
few seconds, so a restart (or another node taking the lease) resumes the pass. Every version
and upload looked at takes a token from ``--lifecycle-ops``; a failing step backs off with
jitter (DESIGN.md invariant 5). The job runs in the process that holds the background lease,
one per cluster on a shared index.

A current version is re-read just before it is expired, so a version written after the walk
saw the key is not expired in its place; a write landing between that read and the delete
is the window left (S3 applies its rules asynchronously too).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import time
from dataclasses import asdict, dataclass, field

from holdfast.errors import S3Error
from holdfast.index.records import UploadRecord, VersionEntry
from holdfast.service import Service
from holdfast.service import lifecycle as lc
from holdfast.service.versions import version_id
from holdfast.workers.counters import count
from holdfast.workers.limits import Backoff, TokenBucket

log = logging.getLogger("holdfast.lifecycle")

STATE_KEY = "lifecycle_state"
BATCH = 100
SAVE_EVERY_SECONDS = 2.0
ACTIONS = ("expired", "noncurrent_deleted", "delete_marker_removed", "upload_aborted", "locked")


@dataclass
class PassState:
    """Where the walk is, and what this pass has done so far (saved in the index)."""

    number: int = 1
    phase: str = "versions"  # versions | uploads (of ``bucket``) | done
    bucket: str | None = None  # the bucket being walked; None: the next one after ``done``
    done: str = ""  # buckets up to this name are finished
    cursor: list | None = None  # versions: [key, vseq]; uploads: [key, upload id]
    # The key being walked: when its next newer version was written, how many noncurrent
    # versions came before, how many of its versions survive, its delete marker if newest.
    key: str | None = None
    newer_written: float | None = None
    noncurrent_seen: int = 0
    survivors: int = 0
    newest_marker: list | None = None  # [vseq, null]
    started: float = field(default_factory=time.time)
    finished: float | None = None
    buckets: int = 0
    examined: int = 0
    actions: dict = field(default_factory=lambda: dict.fromkeys(ACTIONS, 0))
    last_pass: dict | None = None


class LifecycleWorker:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.index = service.node.index
        config = service.config
        self.interval = config.lifecycle_interval_seconds
        self.day_seconds = config.lifecycle_day_seconds
        self.rate = config.lifecycle_ops_per_second
        self.tokens = TokenBucket(self.rate, burst=BATCH)
        self.backoff = Backoff(base=1.0, cap=300.0)
        self.state = PassState()
        self.loaded = False
        self.errors = 0
        self._saved = 0.0
        self._names: list[str] | None = None  # the buckets of this pass, by name

    # -- state ---------------------------------------------------------------------------------

    async def load(self) -> None:
        raw = await self.index.get_meta(STATE_KEY)
        if raw:
            try:
                self.state = PassState(**json.loads(raw))
            except (TypeError, ValueError):
                log.error("ignoring an unreadable lifecycle state: %r", raw[:200])
        self.loaded = True

    async def save(self, force: bool = False) -> None:
        if force or time.monotonic() - self._saved >= SAVE_EVERY_SECONDS:
            await self.index.set_meta(STATE_KEY, json.dumps(asdict(self.state)))
            self._saved = time.monotonic()

    def snapshot(self) -> dict:
        s = self.state
        return {
            "pass": s.number if self.loaded else None,
            "phase": s.phase if self.loaded else "starting",
            "bucket": s.bucket,
            "pass_started": None if s.phase == "done" else s.started,
            "next_pass_at": (s.finished or 0) + self.interval if s.phase == "done" else None,
            "buckets_this_pass": s.buckets,
            "examined_this_pass": s.examined,
            "actions_this_pass": dict(s.actions),
            "last_pass": s.last_pass,
            "ops_per_second": self.rate,
            "day_seconds": self.day_seconds,
            "errors": self.errors,
        }

    # -- one step ------------------------------------------------------------------------------

    async def step(self) -> bool:
        """One batch of one bucket; False once the pass is complete."""
        s = self.state
        if s.phase == "done":
            return False
        if s.bucket is None and not await self._next_bucket():
            await self._finish_pass()
            return False
        assert s.bucket is not None
        stored = await self.index.get_bucket_config(s.bucket, lc.CONFIG)
        config = lc.from_json(stored) if stored is not None else None
        if config is None:
            self._bucket_done()
        elif s.phase == "versions":
            await self._versions(s.bucket, config)
        else:
            await self._uploads(s.bucket, config)
        await self.save()
        return True

    async def _next_bucket(self) -> bool:
        """The first bucket after the ones done. The names are read once a pass (a bucket
        created during the pass waits for the next one)."""
        if self._names is None:
            self._names = sorted(u.bucket.name for u in await self.index.bucket_usage(None))
        at = bisect.bisect_right(self._names, self.state.done)
        if at == len(self._names):
            return False
        s = self.state
        s.bucket, s.phase, s.cursor = self._names[at], "versions", None
        s.buckets += 1
        return True

    def _bucket_done(self) -> None:
        s = self.state
        s.done, s.bucket, s.phase, s.cursor = s.bucket or s.done, None, "versions", None
        self._start_key(None)

    def _start_key(self, key: str | None) -> None:
        s = self.state
        s.key, s.newer_written, s.noncurrent_seen, s.survivors, s.newest_marker = (
            key, None, 0, 0, None
        )  # fmt: skip

    def _act(self, action: str) -> None:
        self.state.actions[action] = self.state.actions.get(action, 0) + 1
        count("LIFECYCLE_ACTIONS", 1, action)

    async def _versions(self, bucket: str, config: lc.Configuration) -> None:
        s = self.state
        rules = [r for r in config.rules if r.enabled]
        if not any(
            r.expiration_days is not None
            or r.expiration_date is not None
            or r.expired_object_delete_marker
            or r.noncurrent_days is not None
            for r in rules
        ):
            s.phase, s.cursor = "uploads", None
            return
        after = (s.cursor[0], s.cursor[1]) if s.cursor else None
        batch = await self.index.list_versions(bucket, "", after, BATCH)
        for entry in batch:
            await self.tokens.take(1)
            if entry.key != s.key:
                await self._end_key(bucket, config)
                self._start_key(entry.key)
            await self._version(bucket, config, entry)
            s.newer_written = entry.last_modified
            s.cursor = [entry.key, entry.seq]
            s.examined += 1
            count("LIFECYCLE_EXAMINED")
            await self.save()
        if len(batch) < BATCH:
            await self._end_key(bucket, config)
            self._start_key(None)
            s.phase, s.cursor = "uploads", None

    async def _tags(self, bucket: str, entry: VersionEntry, config: lc.Configuration):
        if entry.marker or not lc.uses_tags(config):
            return None
        record = await self.index.get_version(bucket, entry.key, None if entry.null else entry.seq)
        return record.tags if record is not None else None

    async def _version(self, bucket: str, config: lc.Configuration, entry: VersionEntry) -> None:
        s = self.state
        now = time.time()
        if s.newer_written is None:  # the key's newest version
            if entry.marker:
                s.newest_marker = [entry.seq, entry.null]
                return
            tags = await self._tags(bucket, entry, config)
            due = lc.expiration(
                config, entry.key, entry.size, tags, entry.last_modified, self.day_seconds
            )
            s.survivors += 1
            if due is not None and due[0] <= now and await self._expire(bucket, entry):
                self._act("expired")
                if await self.service.versions.state(bucket) is None:
                    s.survivors -= 1  # unversioned: the object is gone, not kept
            return
        tags = await self._tags(bucket, entry, config)
        size = None if entry.marker else entry.size
        newer = s.noncurrent_seen
        s.noncurrent_seen += 1
        if not lc.noncurrent_expires(
            config, entry.key, newer, s.newer_written, size, tags, now, self.day_seconds
        ):
            s.survivors += 1
            return
        if await self._remove(bucket, entry.key, entry.seq, entry.null):
            self._act("noncurrent_deleted")
        else:
            s.survivors += 1

    async def _expire(self, bucket: str, entry: VersionEntry) -> bool:
        """Expire the current version as a DELETE without a version id would, if it is still
        the version the walk saw."""
        current = await self.index.get_object(bucket, entry.key)
        if (
            current is None
            or current.vseq != entry.seq
            or current.etag != entry.etag
            or current.last_modified != entry.last_modified
        ):
            return False
        await self.service.versions.delete_current(bucket, entry.key)
        return True

    async def _remove(self, bucket: str, key: str, seq: int, null: bool) -> bool:
        """Remove one version for good, as DELETE ?versionId= does (no governance bypass):
        False if object lock refused it."""
        try:
            await self.service.versions.delete(bucket, key, version_id(seq, null))
        except S3Error as e:
            if e.code != "AccessDenied":
                raise
            self._act("locked")
            log.info("lifecycle: %s/%s version %s is locked; kept", bucket, key, seq)
            return False
        return True

    async def _end_key(self, bucket: str, config: lc.Configuration) -> None:
        """A delete marker that is the last version of its key is removed if a rule says so."""
        s = self.state
        if s.key is None or s.newest_marker is None or s.survivors:
            return
        if not lc.removes_expired_delete_markers(config, s.key):
            return
        seq, null = s.newest_marker
        if await self._remove(bucket, s.key, seq, null):
            self._act("delete_marker_removed")

    async def _uploads(self, bucket: str, config: lc.Configuration) -> None:
        s = self.state
        if not any(r.enabled and r.abort_upload_days is not None for r in config.rules):
            self._bucket_done()
            return
        key_marker, id_marker = (s.cursor[0], s.cursor[1]) if s.cursor else (None, None)
        batch = await self.index.list_uploads(bucket, "", key_marker, id_marker, BATCH)
        for upload in batch:
            await self.tokens.take(1)
            await self._upload(config, upload)
            s.cursor = [upload.key, upload.upload_id]
            s.examined += 1
            count("LIFECYCLE_EXAMINED")
            await self.save()
        if len(batch) < BATCH:
            self._bucket_done()

    async def _upload(self, config: lc.Configuration, upload: UploadRecord) -> None:
        if not lc.upload_abandoned(
            config, upload.key, upload.initiated, time.time(), self.day_seconds
        ):
            return
        try:
            await self.service.multipart.abort(upload)
        except S3Error as e:
            if e.code != "NoSuchUpload":  # completed or aborted meanwhile
                raise
            return
        self._act("upload_aborted")

    async def _finish_pass(self) -> None:
        s = self.state
        s.finished = time.time()
        self._names = None
        summary = {
            "number": s.number,
            "started": s.started,
            "seconds": round(s.finished - s.started, 3),
            "buckets": s.buckets,
            "examined": s.examined,
            "actions": dict(s.actions),
        }
        if any(s.actions.values()):
            log.info("lifecycle pass %d done: %s", s.number, summary)
        self.state = PassState(
            number=s.number + 1, phase="done", finished=s.finished, last_pass=summary
        )
        await self.save(force=True)

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                if not self.loaded:
                    await self.load()
                if self.state.phase == "done":
                    wake = (self.state.finished or 0) + self.interval
                    await asyncio.sleep(max(0.0, wake - time.time()))
                    self.state = PassState(number=self.state.number, last_pass=self.state.last_pass)
                while await self.step():
                    self.backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                count("RETRIES", 1, "lifecycle")
                delay = self.backoff.next_delay()
                log.exception("lifecycle step failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
