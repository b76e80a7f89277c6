"""Re-seals SSE-S3 data keys under the current master key, so an old key can be retired.

``holdfast key rotate`` puts a new master key first and keeps the old ones open-only: an
SSE-S3 object's data key stays sealed under the key that was current when the object was
written (holdfast/service/encryption.py). This job, run by the process holding the
background lease, walks every version (current, noncurrent) and every unfinished multipart
upload, and re-seals each data key found under another key: it opens it with the old key
and seals it with the current one, then writes the new sealed form with a compare and set
on the row (a version rewritten or deleted meanwhile is simply skipped). The object's bytes
are never touched (only the small wrapped key changes), so objects stay readable throughout,
and a reader that fetched the row before the change still opens it (the old key is still in
the keyring until ``holdfast key retire``).

Bounded: a token bucket of ``sse_reseal_per_second`` re-seals; pages of ``PAGE`` rows; a
failing step backs off with jitter. Progress (rows seen, re-sealed, what remains) is in
status, and a durable cursor in the index's meta lets a restart resume the pass. Once a
whole pass finds nothing under an old key, the result is recorded in meta
(``sse_reseal``: which keys were still open and that none seals a data key any more) and the
job idles until the keyring changes; ``holdfast key retire`` still checks for itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from holdfast.masterkey import Keyring, MasterKeyError, sealed_key_id
from holdfast.service.encryption import META_HEADER, WRAP_AAD, Encryption
from holdfast.workers.counters import count
from holdfast.workers.limits import Backoff, TokenBucket

log = logging.getLogger("holdfast.reseal")

PAGE = 200
CURSOR_META = "sse_reseal_cursor"
DONE_META = "sse_reseal"
TABLES = ("objects", "versions")


def reseal_header(keyring: Keyring, value: str) -> str | None:
    """The header value with its data key sealed under the current key, or None when it
    needs nothing (SSE-C, or already current)."""
    enc = Encryption.from_headers({META_HEADER: value})
    if enc is None or enc.kind != "S3" or sealed_key_id(enc.wrapped) == keyring.current_id:
        return None
    data_key = keyring.open(enc.wrapped, WRAP_AAD)
    fresh = Encryption(enc.kind, keyring.seal(data_key, WRAP_AAD), enc.plain_block)
    return fresh.to_header()


def sealed_under_old(keyring: Keyring, value: str) -> bool:
    enc = Encryption.from_headers({META_HEADER: value})
    return enc is not None and enc.kind == "S3" and sealed_key_id(enc.wrapped) != keyring.current_id


@dataclass
class ResealStats:
    state: str = "idle"  # idle | running | done | failing
    pass_started: float | None = None
    table: str = ""
    seen: int = 0  # encrypted versions and uploads looked at in this pass
    resealed: int = 0
    skipped: int = 0  # changed or gone meanwhile
    errors: int = 0
    last_error: str | None = None
    finished_at: float | None = None


class ResealWorker:
    def __init__(self, service: Any) -> None:
        self.service = service
        self.index = service.node.index
        self.bucket = TokenBucket(
            service.config.sse_reseal_per_second,
            burst=max(service.config.sse_reseal_per_second, 1.0),
        )
        self.backoff = Backoff(base=1.0, cap=300.0)
        self.stats = ResealStats()

    @property
    def keyring(self) -> Keyring | None:
        return self.service.users.keyring

    def _key_set(self) -> list[str]:
        keyring = self.keyring
        return sorted(keyring.keys) if keyring is not None else []

    async def needed(self) -> bool:
        """Only a keyring with older keys can have data keys to re-seal, and only until a
        whole pass under this keyring found none."""
        keyring = self.keyring
        if keyring is None or len(keyring.keys) < 2:
            return False
        done = await self.index.get_meta(DONE_META)
        if done:
            record = json.loads(done)
            if record.get("keys") == self._key_set() and record.get("remaining") == 0:
                return False
        return True

    async def run_pass(self) -> int:
        """One whole walk, resuming at the durable cursor; how many were re-sealed."""
        keyring = self.keyring
        assert keyring is not None
        cursor_text = await self.index.get_meta(CURSOR_META)
        cursor = json.loads(cursor_text) if cursor_text else {}
        if cursor.get("keys") != self._key_set():
            cursor = {"keys": self._key_set(), "table": TABLES[0], "after": None}
        self.stats = ResealStats(state="running", pass_started=time.time())
        remaining = 0
        start = TABLES.index(cursor["table"])
        fresh_start = start == 0 and not cursor.get("after")
        for table in TABLES[start:]:
            self.stats.table = table
            after = (
                tuple(cursor["after"]) if cursor.get("table") == table and cursor["after"] else None
            )
            while True:
                rows = await self.index.scan_sealed(table, after, PAGE, META_HEADER)
                if not rows:
                    break
                for bucket, key, vseq, value in rows:
                    self.stats.seen += 1
                    remaining += await self._one_version(keyring, bucket, key, vseq, value)
                after = rows[-1][:3]
                await self.index.set_meta(
                    CURSOR_META,
                    json.dumps({"keys": self._key_set(), "table": table, "after": list(after)}),
                )
            cursor = {"keys": self._key_set(), "table": table, "after": None}
        self.stats.table = "uploads"
        remaining += await self._uploads(keyring)
        await self.index.set_meta(CURSOR_META, "")
        # A pass that resumed mid-way did not see what lay before its cursor: only a pass
        # from the start may declare the work done (the next one will).
        if remaining == 0 and fresh_start:
            done = {
                "keys": self._key_set(),
                "current": keyring.current_id,
                "remaining": 0,
                "at": time.time(),
                "resealed": self.stats.resealed,
            }
            await self.index.set_meta(DONE_META, json.dumps(done))
        self.stats.finished_at = time.time()
        self.stats.state = "done" if remaining == 0 and fresh_start else "running"
        return self.stats.resealed

    async def _one_version(
        self, keyring: Keyring, bucket: str, key: str, vseq: int, value: str
    ) -> int:
        """Re-seal one version's data key; 1 if it still is under an old key after."""
        try:
            fresh = reseal_header(keyring, value)
        except MasterKeyError as e:
            self.stats.errors += 1
            self.stats.last_error = f"{bucket}/{key}: {e}"
            return 1
        if fresh is None:
            return 0
        await self.bucket.take()
        if await self.index.replace_header(bucket, key, vseq, META_HEADER, value, fresh):
            self.stats.resealed += 1
            count("SSE_RESEALED", 1)
        else:
            self.stats.skipped += 1
        return 0

    async def _uploads(self, keyring: Keyring) -> int:
        remaining = 0
        for usage in await self.index.bucket_usage():
            key_marker = upload_marker = None
            while True:
                uploads = await self.index.list_uploads(
                    usage.bucket.name, "", key_marker, upload_marker, PAGE
                )
                if not uploads:
                    break
                for up in uploads:
                    value = up.headers.get(META_HEADER)
                    if value is None:
                        continue
                    self.stats.seen += 1
                    try:
                        fresh = reseal_header(keyring, value)
                    except MasterKeyError as e:
                        self.stats.errors += 1
                        self.stats.last_error = f"upload {up.upload_id}: {e}"
                        remaining += 1
                        continue
                    if fresh is None:
                        continue
                    await self.bucket.take()
                    if await self.index.replace_upload_header(
                        up.upload_id, META_HEADER, value, fresh
                    ):
                        self.stats.resealed += 1
                        count("SSE_RESEALED", 1)
                if len(uploads) < PAGE:
                    break
                key_marker, upload_marker = uploads[-1].key, uploads[-1].upload_id
        return remaining

    def snapshot(self) -> dict:
        keyring = self.keyring
        return {
            **asdict(self.stats),
            "current_key": keyring.current_id if keyring else None,
            "keys": self._key_set(),
            "rate_per_second": self.bucket.rate,
        }

    async def run(self, idle: float = 30.0) -> None:
        while True:
            try:
                if await self.needed():
                    await self.run_pass()
                    self.backoff.reset()
                    if self.stats.state != "done" and self.stats.errors:
                        await asyncio.sleep(idle)  # something could not be opened: retry later
                    continue
                elif self.stats.state in ("idle", "running"):
                    self.stats.state = (
                        "done" if self.keyring and len(self.keyring.keys) > 1 else "idle"
                    )
                await asyncio.sleep(idle)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.stats.state = "failing"
                self.stats.errors += 1
                self.stats.last_error = str(e)
                delay = self.backoff.next_delay()
                log.warning("SSE key re-sealing paused %.1fs: %s", delay, e)
                await asyncio.sleep(delay)


class ResealProvider:
    name = "sse_reseal"

    def __init__(self, app: Any) -> None:
        self.app = app

    def background(self, workers: Any) -> dict:
        worker = getattr(workers, "reseal", None)
        return worker.snapshot() if worker is not None else {}


def ops_provider(app: Any) -> ResealProvider:
    return ResealProvider(app)


def count_old_data_keys(index: Any, keyring: Keyring) -> int:
    """SSE-S3 data keys sealed under a key other than the current one, over every version
    and unfinished upload (``index`` is a BlockingIndex; ``holdfast key retire``)."""
    old = 0
    for table in TABLES:
        after = None
        while rows := index.scan_sealed(table, after, 1000, META_HEADER):
            old += sum(1 for r in rows if sealed_under_old(keyring, r[3]))
            after = rows[-1][:3]
    for usage in index.bucket_usage():
        key_marker = upload_marker = None
        while uploads := index.list_uploads(usage.bucket.name, "", key_marker, upload_marker, 1000):
            old += sum(
                1
                for up in uploads
                if META_HEADER in up.headers and sealed_under_old(keyring, up.headers[META_HEADER])
            )
            if len(uploads) < 1000:
                break
            key_marker, upload_marker = uploads[-1].key, uploads[-1].upload_id
    return old
