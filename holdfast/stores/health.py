"""Drive health: a circuit breaker per drive, so one bad drive cannot stall the node.

A drive is ``up``, ``read-only`` or ``down``. Errors reported by the read and write paths
count against it; ``threshold`` of them within ``window`` seconds (or one unambiguous sign,
such as its identity marker gone or EROFS) opens the breaker. While a drive is not up it is
probed on an exponential backoff with jitter (never in a tight loop); a probe that finds the
right drive taking durable writes closes the breaker again. Reads go to healthy copies
first, writes only to drives that are up.

Each process keeps its own view (a probe is cheap, and a view that needs no shared state
cannot be wrong because of it). Nothing here touches the index, so the status page can show
drive health while the index is down.
"""

from __future__ import annotations

import errno
import logging
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from holdfast.stores.base import FULL_ERRNOS, Store, StoreMissing
from holdfast.stores.registry import StoreMap

log = logging.getLogger("holdfast.drives")

RECENT_FAILED_COPIES = 4096
READ_COST = {"local": 0, "node": 1, "s3": 2}  # read_order: nearest copies first


class DriveState(StrEnum):
    UP = "up"
    READ_ONLY = "read-only"
    DOWN = "down"


@dataclass
class BreakerSettings:
    threshold: int = 3  # errors within ``window`` that open the breaker
    window: float = 30.0
    probe_base: float = 1.0  # first probe delay after opening; doubles up to probe_cap
    probe_cap: float = 30.0


@dataclass
class DriveHealth:
    store: Store
    uuid: str | None  # what the index says this drive is; None: not registered
    state: DriveState = DriveState.DOWN
    reason: str = "not probed yet"
    since: float = field(default_factory=time.time)
    errors: deque = field(default_factory=deque)  # monotonic times of recent errors
    errors_total: int = 0
    trips: int = 0
    probes: int = 0
    probe_failures: int = 0  # consecutive, drives the probe backoff
    next_probe: float = 0.0  # monotonic

    def as_dict(self) -> dict:
        return {
            "id": self.store.store_id,
            "drive": self.store.name,
            "kind": self.store.kind,
            "path": self.store.location(),
            "uuid": self.uuid,
            "state": self.state.value,
            "reason": self.reason,
            "since": self.since,
            "errors_total": self.errors_total,
            "trips": self.trips,
            "probes": self.probes,
        }


def classify(store: Store, exc: BaseException) -> DriveState | None:
    """What an error from ``store`` says about the drive itself: DOWN, READ_ONLY, or None
    when it is about one blob only (a missing or corrupt copy on a healthy drive)."""
    if isinstance(exc, StoreMissing):
        return DriveState.DOWN
    if not isinstance(exc, OSError):
        return None
    if exc.errno == errno.EROFS:
        return DriveState.READ_ONLY
    if exc.errno in FULL_ERRNOS:
        return None
    if isinstance(exc, FileNotFoundError):
        try:
            present = store.identity() is not None
        except OSError:
            present = False
        return None if present else DriveState.DOWN
    return DriveState.DOWN  # EIO and friends: counted, the breaker decides


class Drives:
    """The drives of one node and what this process believes about each. Every method
    takes store ids as the index records them (a bare ``d0`` of an older data directory
    too: holdfast/stores/registry.py) and answers with cluster-unique ones."""

    def __init__(
        self,
        stores: StoreMap | Iterable[Store],
        known: dict[str, str],
        settings: BreakerSettings | None = None,
        on_up: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings or BreakerSettings()
        self.stores = stores if isinstance(stores, StoreMap) else StoreMap(stores)
        known = {self.stores.resolve(sid): u for sid, u in known.items()}
        self.health: dict[str, DriveHealth] = {
            sid: DriveHealth(s, known.get(sid)) for sid, s in self.stores.items()
        }
        self.on_up = on_up
        self._lock = threading.Lock()
        self._failed_copies: OrderedDict[tuple[str, str], float] = OrderedDict()

    # -- questions the data paths ask ---------------------------------------------------------

    def state(self, store_id: str) -> DriveState:
        h = self.health.get(self.stores.resolve(store_id))
        return h.state if h is not None else DriveState.DOWN

    def writable(self, store_id: str) -> bool:
        return self.state(store_id) is DriveState.UP

    def readable(self, store_id: str) -> bool:
        return self.state(store_id) is not DriveState.DOWN

    def read_order(self, store_ids: Sequence[str], blob_id: str) -> list[str]:
        """Copies to try, best first: readable drives whose copy has not just failed, then
        copies that failed recently, then drives that are down, each group nearest first (a last resort: a pulled
        drive answers ENOENT at once, so trying it costs little)."""
        store_ids = [self.stores.resolve(sid) for sid in store_ids]
        if len(store_ids) < 2:
            return store_ids

        def rank(sid: str) -> tuple[int, int]:
            store = self.stores.get(sid)
            # Among equally healthy copies the nearest first: a local drive, then another
            # node's, then an external service (slower, and maybe paid per request).
            cost = READ_COST.get(store.kind, 3) if store is not None else 3
            if not self.readable(sid):
                return 2, cost
            return (1 if (blob_id, sid) in self._failed_copies else 0), cost

        return sorted(store_ids, key=rank)

    # -- what the data paths report -----------------------------------------------------------

    def copy_failed(
        self, store_id: str, blob_id: str | None, exc: BaseException
    ) -> DriveState | None:
        """A read or write of one copy (of a new blob: ``blob_id`` None) failed. Returns what
        it says about the drive (None if only the copy is bad), after counting it against
        the drive's breaker."""
        store_id = self.stores.resolve(store_id)
        if blob_id is not None:
            with self._lock:
                self._failed_copies[(blob_id, store_id)] = time.monotonic()
                self._failed_copies.move_to_end((blob_id, store_id))
                while len(self._failed_copies) > RECENT_FAILED_COPIES:
                    self._failed_copies.popitem(last=False)
        h = self.health.get(store_id)
        if h is None:
            return DriveState.DOWN
        verdict = classify(h.store, exc)
        if verdict is not None:
            # A missing marker or a read-only filesystem is certain at the first sighting;
            # an I/O error may be a one-off, so those are counted.
            decisive = verdict is DriveState.READ_ONLY or isinstance(exc, FileNotFoundError)
            self.report(store_id, verdict, str(exc), decisive or isinstance(exc, StoreMissing))
        return verdict

    def note_slow(self) -> None:
        """Count each store's slow requests since the last look against its breaker, as
        errors (not decisive: a few slow answers in a burst of load are not an outage)."""
        for sid, h in list(self.health.items()):
            for reason in h.store.take_slow():
                self.report(sid, DriveState.DOWN, reason)

    def copy_repaired(self, store_id: str, blob_id: str) -> None:
        store_id = self.stores.resolve(store_id)
        with self._lock:
            self._failed_copies.pop((blob_id, store_id), None)

    def report(
        self, store_id: str, verdict: DriveState, reason: str, decisive: bool = False
    ) -> None:
        """Count one error; open the breaker at once when ``decisive`` (the drive is gone or
        read-only), after ``threshold`` errors within ``window`` otherwise."""
        h = self.health[self.stores.resolve(store_id)]
        now = time.monotonic()
        with self._lock:
            h.errors_total += 1
            h.errors.append(now)
            while h.errors and h.errors[0] < now - self.settings.window:
                h.errors.popleft()
            if h.state is DriveState.DOWN or h.state is verdict:
                return
            if decisive or len(h.errors) >= self.settings.threshold:
                self._set(h, verdict, reason)
                h.trips += 1
                h.probe_failures = 0
                h.next_probe = now + self._probe_delay(h)

    # -- probing ------------------------------------------------------------------------------

    def _probe_delay(self, h: DriveHealth) -> float:
        ceiling = min(self.settings.probe_cap, self.settings.probe_base * 2**h.probe_failures)
        return random.uniform(ceiling / 2, ceiling)

    def due(self, now: float | None = None) -> list[str]:
        """Drives that are not up and whose next probe is due."""
        now = time.monotonic() if now is None else now
        return [
            sid
            for sid, h in self.health.items()
            if h.state is not DriveState.UP and h.next_probe <= now
        ]

    def probe(self, store_id: str) -> DriveState:
        """Check one drive now (blocking: a marker read and a small fsync'd write)."""
        store_id = self.stores.resolve(store_id)
        h = self.health[store_id]
        h.probes += 1
        before = h.state
        if h.uuid is None:
            state, reason = DriveState.DOWN, "not registered in the index"
        else:
            try:
                h.store.probe(h.uuid)
                state, reason = DriveState.UP, "ok"
            except OSError as e:
                state = DriveState.READ_ONLY if e.errno == errno.EROFS else DriveState.DOWN
                reason = str(e)
        with self._lock:
            if state is DriveState.UP:
                h.probe_failures = 0
                h.errors.clear()
            else:
                h.probe_failures += 1
                h.next_probe = time.monotonic() + self._probe_delay(h)
            if state is not before or reason != h.reason:
                self._set(h, state, reason)
        if state is DriveState.UP and before is not DriveState.UP:
            h.store.forget_cached_state()
            if h.probes > 1:  # not the first look at start-up: it was down, now it is back
                log.warning("drive %s (%s) is up again", store_id, h.store.location())
                if self.on_up is not None:
                    self.on_up(store_id)
        return state

    def probe_all(self) -> None:
        for sid in list(self.health):
            self.probe(sid)

    def change(self, added: dict[str, tuple[Store, str]], removed: Iterable[str]) -> None:
        """Take in stores registered while serving (``added``: id -> (store, uuid)) and let
        go of unregistered ones. Both maps are replaced, not mutated, so the data paths
        iterating them meanwhile see the old set or the new one, never half of each. A new
        store starts down and is probed before anything is placed on it."""
        gone = set(removed)
        with self._lock:
            health = {sid: h for sid, h in self.health.items() if sid not in gone}
            for sid, (store, uuid_) in added.items():
                health[sid] = DriveHealth(store, uuid_)
            self.stores.replace(h.store for h in health.values())
            self.health = health
        for sid in added:
            self.probe(sid)

    def _set(self, h: DriveHealth, state: DriveState, reason: str) -> None:
        if state is not h.state:
            h.since = time.time()
            level = logging.INFO if state is DriveState.UP else logging.ERROR
            log.log(
                level,
                "drive %s (%s) is %s: %s",
                h.store.store_id,
                h.store.location(),
                state.value,
                reason,
            )
        h.state, h.reason = state, reason

    # -- status --------------------------------------------------------------------------------

    def snapshot(self) -> list[dict]:
        """Plain data for the status page and metrics; free space is read here (statvfs
        does not touch the index)."""
        out = []
        for h in self.health.values():
            d = h.as_dict()
            try:
                d["free_bytes"], d["total_bytes"] = h.store.space()
            except OSError:
                d["free_bytes"] = d["total_bytes"] = None
            d["reserve_percent"] = h.store.reserve_percent
            d["repair_reserve_percent"] = h.store.repair_reserve_percent
            out.append(d)
        return out


def adopt(store: Store, new_uuid: str) -> str:
    """Make ``store`` a drive of this node: keep the identity it already has (a drive moved
    in with its data), or give a blank directory ``new_uuid``."""
    existing = store.identity()
    store.initialize(existing or new_uuid)
    return existing or new_uuid


def register_drives(
    stores: Iterable[Store],
    known: dict[str, str],
    register: Callable[[str, str, Callable[[str], str]], str],
) -> dict[str, str]:
    """Register every drive the index does not know yet (``register`` is the index's
    transaction; it calls back to adopt the directory). A drive the index already knows is
    never re-adopted here, so a pulled drive's empty mount point stays ``down`` instead of
    silently becoming a fresh, empty drive."""
    for s in stores:
        if s.store_id in known:
            continue
        try:
            known[s.store_id] = register(s.store_id, s.location(), lambda u, s=s: adopt(s, u))
        except OSError as e:  # it starts (and stays) down; the others carry on
            log.error("could not adopt %s as drive %s: %s", s.location(), s.store_id, e)
    return known
