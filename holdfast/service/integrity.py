"""What the data paths do when a copy fails them: tell the drive's circuit breaker, queue a
repair for the copy, and remember objects found damaged, for status and metrics.

A bad copy is not quarantined here: the repair worker first assembles a verified replacement
(block by block, from every copy that still has good blocks), and only then moves the bad
copy aside. Until then it stays where it is, ranked last for reads, because a copy with one
bad block may hold the only good copy of another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from holdfast.config import Config
from holdfast.index.blocking import BlockingIndex
from holdfast.index.records import ObjectRecord, RepairTask, Segment
from holdfast.masterkey import load_keyring
from holdfast.stores.backends import open_backend
from holdfast.stores.base import Store, StoreMissing
from holdfast.stores.blocks import CorruptBlock
from holdfast.stores.health import BreakerSettings, Drives, DriveState, register_drives
from holdfast.stores.local import drive_identities, local_drives
from holdfast.stores.registry import StoreMap, resolve_node_name
from holdfast.stores.s3_settings import LimitSettings
from holdfast.workers.counters import count

log = logging.getLogger("holdfast.integrity")

REQUEUE_AFTER_SECONDS = 60.0  # one repair row per bad copy, not one per GET that trips on it
REMEMBERED = 1000


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, CorruptBlock):
        return "corrupt"
    if isinstance(exc, FileNotFoundError):
        return "missing"
    return "io-error"


@dataclass
class IntegrityCounters:
    copy_failures: int = 0  # reads or writes of one copy that failed
    failovers: int = 0  # reads that carried on from another copy
    repairs_queued: int = 0
    objects_damaged: int = 0  # reads that found no good copy
    degraded_writes: int = 0  # writes acknowledged with fewer copies than the policy wants
    damaged: OrderedDict = field(default_factory=OrderedDict)  # (bucket, key) -> details


class Integrity:
    """Called from pool threads (reads and writes of blob files), so it reaches the index
    through the node's BlockingIndex."""

    def __init__(self, index: BlockingIndex, drives: Drives) -> None:
        self.index = index
        self.drives = drives
        self.counters = IntegrityCounters()
        self._queued: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def copy_failed(
        self, seg: Segment, store_id: str, exc: BaseException, ref: str | None = None
    ) -> None:
        """One copy of ``seg`` on ``store_id`` failed a read (blocking: may write the
        repair queue). A drive that is simply gone gets no row: its copies come back with
        it, and everything it missed meanwhile is in its handoff log already."""
        store_id = self.drives.stores.resolve(store_id)
        self.counters.copy_failures += 1
        if isinstance(exc, CorruptBlock):
            count("CHECKSUM_FAILURES", 1, "block")
            count("CORRUPTIONS_FOUND", 1, "read")
        verdict = self.drives.copy_failed(store_id, seg.blob_id, exc)
        gone = isinstance(exc, (FileNotFoundError, StoreMissing))
        drive_gone = verdict is DriveState.DOWN and gone
        # A copy on another node's drive is queued only when it is known bad: that node's
        # repair worker remakes it; an unreachable node is not a bad copy.
        remote = store_id not in self.drives.stores
        if drive_gone or (remote and not isinstance(exc, CorruptBlock)):
            return
        self.queue(RepairTask(seg.blob_id, store_id, "copy", failure_reason(exc), seg, ref))

    def queue(self, task: RepairTask) -> bool:
        """Queue a repair unless this process queued the same one a moment ago."""
        key = (task.blob_id, task.store_id)
        now = time.monotonic()
        with self._lock:
            last = self._queued.get(key)
            if last is not None and now - last < REQUEUE_AFTER_SECONDS:
                return False
            self._queued[key] = now
            self._queued.move_to_end(key)
            while len(self._queued) > REMEMBERED:
                self._queued.popitem(last=False)
        added = self.index.queue_repairs([task]) > 0
        if added:
            self.counters.repairs_queued += 1
            log.warning(
                "repair queued: blob %s on %s (%s)%s",
                task.blob_id,
                task.store_id,
                task.reason,
                f" of {task.ref}" if task.ref else "",
            )
        return added

    def object_damaged(
        self, obj: ObjectRecord, pos: int, failures: list[str], announce: bool = True
    ) -> None:
        """No copy could deliver some byte of ``obj``: mark it (that version only), keep it
        in memory for the status page, and say so loudly (unless ``announce`` is False: a
        read that met it logs its own line, with the request's id)."""
        self.index.mark_object_state(obj.bucket, obj.key, obj.etag, "corrupt")
        with self._lock:
            self.counters.objects_damaged += 1
            self.counters.damaged[(obj.bucket, obj.key)] = {
                "bucket": obj.bucket,
                "key": obj.key,
                "etag": obj.etag,
                "offset": pos,
                "failures": failures[:4],
                "at": time.time(),
            }
            while len(self.counters.damaged) > REMEMBERED:
                self.counters.damaged.popitem(last=False)
        if announce:
            log.critical(
                "no good copy of %s/%s at offset %d: %s", obj.bucket, obj.key, pos, failures
            )

    def snapshot(self) -> dict:
        c = self.counters
        with self._lock:
            damaged = list(c.damaged.values())[-20:]
        return {
            "copy_failures": c.copy_failures,
            "failovers": c.failovers,
            "repairs_queued": c.repairs_queued,
            "objects_damaged": c.objects_damaged,
            "degraded_writes": c.degraded_writes,
            "recently_damaged": damaged,
        }


def node_name(config: Config, registered: dict[str, str]) -> str:
    """This node's name: ``--node-name``, else the one its drives are registered under,
    else ``local`` (holdfast/stores/registry.py). WrongNode if they disagree."""
    return resolve_node_name(
        config.node_name or None, drive_identities(config.data_dirs), registered
    )


def backend_stores(config: Config, index: BlockingIndex) -> list[Store]:
    """The back-end stores registered with ``holdfast store add``, their credentials opened
    with the master key (docs/stores.md). Nothing remote is touched here: the probe that
    follows finds out whether each answers."""
    records = index.backend_stores()
    if not records:
        return []
    keyring = load_keyring(config.primary_dir)
    return [open_backend(r, keyring, _backend_limits(config)) for r in records]


def sync_backends(config: Config, index: BlockingIndex, drives: Drives) -> tuple[list, list]:
    """Bring this process's back-end stores in line with the index: a store added with
    ``holdfast store add`` is opened and probed, one removed is let go, without a restart
    (the drive monitor calls this every couple of seconds). Returns (added, removed) ids.
    A store whose credentials cannot be opened (say, the master key was replaced) is
    logged and left out, as at start-up it would stop the server."""
    from holdfast.stores.backends import BACKEND_PREFIX

    records = {r.store_id: r for r in index.backend_stores()}
    have = {sid for sid in drives.health if sid.startswith(BACKEND_PREFIX)}
    new_ids = [sid for sid in records if sid not in have]
    gone = [sid for sid in have if sid not in records]
    if not new_ids and not gone:
        return [], []
    added: dict[str, tuple[Store, str]] = {}
    if new_ids:
        keyring = load_keyring(config.primary_dir)
        registered = index.drives()
        for sid in new_ids:
            try:
                store = open_backend(records[sid], keyring, _backend_limits(config))
            except Exception as e:
                log.error("back-end store %s not taken in: %s", sid, e)
                continue
            known = register_drives([store], dict(registered), index.register_drive)
            if sid in known:
                added[sid] = (store, known[sid])
    drives.change(added, gone)
    for sid in added:
        log.warning("back-end store %s taken in while serving", sid)
    for sid in gone:
        log.warning("back-end store %s let go: it was removed from the index", sid)
    return list(added), gone


def _backend_limits(config: Config) -> LimitSettings:
    return LimitSettings(
        concurrency=config.backend_concurrency,
        ops_per_second=config.backend_ops_per_second,
        bytes_per_second=config.backend_bytes_per_second,
        slow_seconds=config.backend_slow_seconds,
    )


def open_drives(config: Config, index: BlockingIndex) -> Drives:
    """The node's drives, registered in the index (adopting blank ones) and probed once,
    so a node starts with a correct picture: a pulled drive is down from the first request.
    Sets ``config.node_name`` to the name resolved."""
    registered = index.drives()
    config.node_name = name = node_name(config, registered)
    stores = StoreMap(
        local_drives(name, config.data_dirs, config.reserve_percent, config.repair_reserve_percent)
        + backend_stores(config, index),
        name,
    )
    known = {stores.resolve(sid): u for sid, u in registered.items()}
    known = register_drives(stores.values(), known, index.register_drive)
    settings = BreakerSettings(
        threshold=config.drive_error_threshold,
        window=config.drive_error_window_seconds,
        probe_base=config.drive_probe_base_seconds,
        probe_cap=config.drive_probe_cap_seconds,
    )
    drives = Drives(stores, known, settings)
    drives.probe_all()
    return drives
