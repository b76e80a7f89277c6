"""Delivers event notifications from the index's outbox to the operator's webhooks.

The object writes put each event into the outbox in their own transaction
(holdfast/index/notify.py); this job, run by the process holding the background lease (one
per node, one per cluster on PostgreSQL), sends them. Guarantees and limits:

* **At least once, in order per stream.** A stream is one (bucket, target). Only its oldest
  pending event is ever tried; the events behind it wait, so a target sees a bucket's events
  in outbox order. A row is deleted only after its target answered 2xx, so a crash (or a
  ``kill -9``) between the commit and the delivery re-sends, never loses. Receivers drop
  repeats by the ``sequencer``.
* **No retry storm** (DESIGN.md invariant 5): a failed event waits ``jittered_delay`` (equal
  jitter, doubling to a cap) before its next try, durably (attempts and next time are in the
  row, so a restart does not reset them), and a failing stream costs one attempt per backoff
  interval however many events queue behind it. Deliveries overall are paced by a token
  bucket, at most ``notify_concurrency`` at once on their own threads, each with a deadline:
  a dead target never takes a request thread and never slows the S3 path.
* **Dead letters.** After ``notify_max_attempts`` attempts an event is set aside ("dead") so
  its stream moves on; ``holdfast notify retry`` puts dead events back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from holdfast.index.errors import IndexError_
from holdfast.index.records import NotifyEvent
from holdfast.masterkey import MasterKeyError
from holdfast.service import notify
from holdfast.workers.counters import count, set_gauge
from holdfast.workers.limits import Backoff, TokenBucket, jittered_delay

log = logging.getLogger("holdfast.notify")

IDLE_SECONDS = 0.5  # how often an idle worker looks at the outbox again
PER_STREAM = 50  # events of one stream read per step
SUMMARY_SECONDS = 2.0
TARGETS_SECONDS = 2.0


class DeliveryFailed(Exception):
    pass


@dataclass
class NotifyStats:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    last_delivery: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """One delivery (blocking, on the worker's own threads). Raises DeliveryFailed with a
    message that names no credential."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(64 * 1024)
            return response.status
    except urllib.error.HTTPError as e:
        raise DeliveryFailed(f"HTTP {e.code} from {notify.redact(url)}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise DeliveryFailed(f"{notify.redact(url)}: {reason}") from None


class NotifyWorker:
    def __init__(self, service: Any) -> None:
        self.service = service
        self.index = service.node.index
        cfg = service.config
        self.region = cfg.region
        self.timeout = cfg.notify_timeout_seconds
        self.base = cfg.notify_retry_base_seconds
        self.cap = cfg.notify_retry_cap_seconds
        self.max_attempts = cfg.notify_max_attempts
        self.concurrency = cfg.notify_concurrency
        self.bucket = TokenBucket(cfg.notify_rate, burst=max(cfg.notify_rate, 1.0))
        self.pool = ThreadPoolExecutor(cfg.notify_concurrency, thread_name_prefix="hf-notify")
        self.backoff = Backoff(base=1.0, cap=60.0)  # the loop's own, when the index fails
        self.stats = NotifyStats()
        self.summary: dict = {}
        self._summary_at = 0.0
        self._targets: dict[str, notify.Target] = {}
        self._targets_at = float("-inf")
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- one step ---------------------------------------------------------------------------

    async def _targets_now(self) -> dict[str, notify.Target]:
        if time.monotonic() - self._targets_at >= TARGETS_SECONDS:
            self._targets = await notify.load_targets(self.index)
            self._targets_at = time.monotonic()
        return self._targets

    async def step(self) -> int:
        """Deliver what is due now; how many events were delivered."""
        streams = await self.index.due_notifications(self.concurrency, PER_STREAM)
        if not streams:
            return 0
        targets = await self._targets_now()
        done = await asyncio.gather(*(self._stream(events, targets) for events in streams))
        return sum(done)

    async def _stream(self, events: list[NotifyEvent], targets: dict) -> int:
        """Send a stream's events in order, stopping at the first failure."""
        delivered: list[int] = []
        try:
            for event in events:
                await self.bucket.take()
                try:
                    await self._deliver(event, targets.get(event.target))
                except DeliveryFailed as e:
                    await self._failed(event, str(e))
                    break
                delivered.append(event.id)
                self.stats.delivered += 1
                self.stats.last_delivery = time.time()
                count("NOTIFY_DELIVERIES", 1, "delivered")
        finally:
            if delivered:
                await self.index.finish_notifications(delivered)
        return len(delivered)

    async def _deliver(self, event: NotifyEvent, target: notify.Target | None) -> None:
        if target is None:
            raise DeliveryFailed(f"no notification target {event.target!r} (it was removed)")
        keyring = self.service.users.keyring
        body = json.dumps(notify.event_message(event, self.region)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "holdfast-notify"}
        try:
            token = notify.open_token(keyring, target)
            secret = notify.open_secret(keyring, target)
        except MasterKeyError as e:
            raise DeliveryFailed(f"target {target.name}: {e}") from None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if secret:
            headers[notify.SIGNATURE_HEADER] = notify.signature(secret, body)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.pool, post, target.url, body, headers, self.timeout)

    async def _failed(self, event: NotifyEvent, error: str) -> None:
        attempts = event.attempts + 1
        dead = attempts >= self.max_attempts
        not_before = time.time() + jittered_delay(self.base, self.cap, event.attempts)
        await self.index.defer_notification(event.id, not_before, error, dead)
        self.stats.failed += 1
        self.stats.last_error = error
        self.stats.last_error_at = time.time()
        count("NOTIFY_DELIVERIES", 1, "failed")
        if dead:
            self.stats.dead += 1
            count("NOTIFY_DELIVERIES", 1, "dead")
            log.warning(
                "event %d (%s %s/%s) for target %s dead-lettered after %d attempts: %s",
                event.id,
                event.event,
                event.bucket,
                event.key,
                event.target,
                attempts,
                error,
            )
        else:
            log.info(
                "event %d for target %s failed (attempt %d): %s",
                event.id,
                event.target,
                attempts,
                error,
            )

    async def refresh_summary(self) -> None:
        raw = await self.index.notification_summary()
        now = time.time()
        queued = sum(s.get("pending", {}).get("rows", 0) for s in raw.values())
        dead = sum(s.get("dead", {}).get("rows", 0) for s in raw.values())
        oldest = [s["pending"]["oldest"] for s in raw.values() if s.get("pending")]
        age = round(now - min(oldest), 1) if oldest else 0.0
        self.summary = {
            "queued": queued,
            "dead": dead,
            "oldest_queued_age_seconds": age,
            "by_target": raw,
        }
        set_gauge("holdfast_notify_queued", "Events waiting for delivery", queued)
        set_gauge("holdfast_notify_dead", "Events dead-lettered (holdfast notify retry)", dead)
        set_gauge(
            "holdfast_notify_oldest_queued_age_seconds", "Age of the oldest undelivered event", age
        )

    def snapshot(self) -> dict:
        return {
            **self.summary,
            **asdict(self.stats),
            "limits": {
                "deliveries_per_second": self.bucket.rate,
                "concurrency": self.concurrency,
                "retry_base_seconds": self.base,
                "retry_cap_seconds": self.cap,
                "max_attempts": self.max_attempts,
                "timeout_seconds": self.timeout,
            },
        }

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                if time.monotonic() - self._summary_at >= SUMMARY_SECONDS:
                    await self.refresh_summary()
                    self._summary_at = time.monotonic()
                n = await self.step()
                self.backoff.reset()
            except asyncio.CancelledError:
                raise
            except (IndexError_, Exception) as e:  # the index down, or a bug: never spin
                delay = self.backoff.next_delay()
                log.warning("notification delivery paused %.1fs: %s", delay, e)
                await asyncio.sleep(delay)
                continue
            if n == 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)
                except TimeoutError:
                    pass


class NotifyProvider:
    """Shows the outbox and the delivery state in status (holdfast/ops/providers.py)."""

    name = "notifications"

    def __init__(self, app: Any) -> None:
        self.app = app

    def background(self, workers: Any) -> dict:
        worker = getattr(workers, "notify", None)
        return worker.snapshot() if worker is not None else {}


def ops_provider(app: Any) -> NotifyProvider:
    return NotifyProvider(app)
