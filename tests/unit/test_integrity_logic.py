"""Pure logic of placement, flow control, drive health and the repair queue's rules.
(The behaviour end to end, with real drives and faults, is in tests/faults/.)"""

from __future__ import annotations

import time

import pytest

from holdfast.index.records import RepairTask, Segment
from holdfast.index.sqlite import SqliteIndex
from holdfast.placement.policy import NoCapacity, Policies, Policy, choose_stores, default_policy
from holdfast.stores.health import BreakerSettings, Drives, DriveState
from holdfast.stores.local import DriveMissing, LocalStore
from holdfast.workers.limits import Backoff, TokenBucket, jittered_delay, max_attempts


class FakeStore:
    def __init__(self, store_id: str, free: int) -> None:
        self.store_id, self.free = store_id, free

    def free_bytes(self) -> int:
        return self.free


# -- placement -----------------------------------------------------------------------------------


def test_default_policy() -> None:
    assert default_policy(1) == Policy(1, 1)
    assert default_policy(2) == Policy(2, 1)
    assert default_policy(5) == Policy(2, 1)
    assert default_policy(3, copies=3, min_copies=2) == Policy(3, 2)
    assert Policy(3, 2).fit(2) == Policy(2, 2)
    with pytest.raises(ValueError):
        Policy(1, 2)


def test_choose_prefers_room_and_defers_what_it_cannot_place() -> None:
    stores = [FakeStore("d0", 100), FakeStore("d1", 500), FakeStore("d2", 300)]
    choice = choose_stores(stores, Policy(2, 1), 50)
    assert [s.store_id for s in choice.targets] == ["d1", "d2"] and choice.deferred == ()
    down = choose_stores(stores, Policy(2, 1), 50, writable=lambda sid: sid != "d1")
    assert [s.store_id for s in down.targets] == ["d2", "d0"] and down.deferred == ()
    full = choose_stores(stores, Policy(3, 1), 200)
    assert [s.store_id for s in full.targets] == ["d1", "d2"] and full.deferred == ("d0",)


def test_choose_fails_fast_with_the_reason() -> None:
    stores = [FakeStore("d0", 10), FakeStore("d1", 10)]
    with pytest.raises(NoCapacity) as full:
        choose_stores(stores, Policy(2, 1), 50)
    assert full.value.full
    with pytest.raises(NoCapacity) as down:
        choose_stores(stores, Policy(2, 1), 5, writable=lambda _sid: False)
    assert not down.value.full


def test_bucket_policies_override_and_fit() -> None:
    policies = Policies(Policy(2, 1), drives=2)
    policies.refresh(lambda: {"one": (1, 1), "many": (4, 3)})
    assert policies.policy_for("one") == Policy(1, 1)
    assert policies.policy_for("many") == Policy(2, 2)
    assert policies.policy_for("other") == policies.policy_for(None) == Policy(2, 1)


# -- flow control --------------------------------------------------------------------------------


def test_backoff_is_jittered_capped_and_never_near_zero() -> None:
    for failures in range(12):
        d = jittered_delay(0.5, 8.0, failures)
        ceiling = min(8.0, 0.5 * 2**failures)
        assert ceiling / 2 <= d <= ceiling
    b = Backoff(1.0, 4.0)
    assert [round(b.next_delay() * 2) >= c for c in (1, 2, 4, 4, 4)] == [True] * 5
    assert jittered_delay(1.0, 60.0, 10_000) <= 60.0  # no overflow after many failures


def test_max_attempts_is_the_bound_of_a_failing_loop() -> None:
    assert max_attempts(1.0, 8.0, 0.4) == 1
    assert max_attempts(1.0, 8.0, 0.5) == 2  # first retry no sooner than base/2
    assert max_attempts(0.2, 1.6, 60.0) <= 5 + 60 / 0.8  # 4 to reach the cap, then cap/2 each
    slowest = [jittered_delay(0.2, 1.6, n) for n in range(200)]  # any real sequence fits
    elapsed, attempts = 0.0, 1
    while elapsed + slowest[attempts - 1] <= 10.0:
        elapsed += slowest[attempts - 1]
        attempts += 1
    assert attempts <= max_attempts(0.2, 1.6, 10.0)


def test_token_bucket_paces_threads() -> None:
    bucket = TokenBucket(1000.0, burst=100.0)
    started = time.monotonic()
    for _ in range(3):
        bucket.take_sync(100.0)
    assert time.monotonic() - started >= 0.19


# -- drive health --------------------------------------------------------------------------------


def test_breaker_counts_io_errors_and_trusts_decisive_ones(tmp_path) -> None:
    stores = [LocalStore(f"d{i}", tmp_path / f"d{i}") for i in range(2)]
    for s in stores:
        s.initialize(f"uuid-{s.store_id}")
    drives = Drives(
        stores, {s.store_id: f"uuid-{s.store_id}" for s in stores}, BreakerSettings(3, 30)
    )
    drives.probe_all()
    assert drives.writable("d0") and drives.writable("d1")
    for _ in range(2):
        drives.copy_failed("d0", "b", OSError(5, "EIO"))
    assert drives.writable("d0"), "two errors are not yet a bad drive"
    drives.copy_failed("d0", "b", OSError(5, "EIO"))
    assert drives.state("d0") is DriveState.DOWN
    drives.copy_failed("d1", "b", OSError(30, "EROFS"))
    assert drives.state("d1") is DriveState.READ_ONLY and drives.readable("d1")
    assert drives.read_order(["d0", "d1"], "b") == ["d1", "d0"]
    drives.health["d0"].next_probe = 0
    drives.probe("d0")
    assert drives.writable("d0"), "a probe that passes closes the breaker"


def test_missing_marker_is_a_pulled_drive_not_a_missing_blob(tmp_path) -> None:
    store = LocalStore("d0", tmp_path / "d0")
    store.initialize("uuid")
    drives = Drives([store], {"d0": "uuid"})
    drives.probe_all()
    assert drives.copy_failed("d0", "b", FileNotFoundError(2, "gone")) is None
    (store.root / ".holdfast-drive").unlink()
    assert drives.copy_failed("d0", "b", FileNotFoundError(2, "gone")) is DriveState.DOWN
    with pytest.raises(DriveMissing):
        store.probe("uuid")
    with pytest.raises(DriveMissing):
        store.ensure_dir(store.root.parent / "elsewhere" / "x")


# -- the repair queue's rules --------------------------------------------------------------------


def _seg(blob: str) -> Segment:
    return Segment(blob, 10, 1024, b"\0\0\0\0", ("d0", "d1"))


def test_a_missed_delete_wins_over_a_pending_copy(tmp_path) -> None:
    index = SqliteIndex(tmp_path / "x.db")
    blob = "a" * 32
    assert index.queue_repairs([RepairTask(blob, "d1", "copy", "deferred", _seg(blob))]) == 1
    assert index.queue_repairs([RepairTask(blob, "d1", "copy", "missing", _seg(blob))]) == 0
    assert index.queue_repairs([RepairTask(blob, "d1", "delete", "missed-delete")]) == 1
    assert [t.op for t in index.repairs()] == ["delete"]
    assert index.queue_repairs([RepairTask(blob, "d1", "copy", "missing", _seg(blob))]) == 0
    assert [t.op for t in index.repairs()] == ["delete"], "a dead blob is never copied back"


def test_due_repairs_skip_drives_that_are_down_or_backing_off(tmp_path) -> None:
    index = SqliteIndex(tmp_path / "x.db")
    index.queue_repairs([RepairTask(c * 32, "d1", "copy", "deferred", _seg(c * 32)) for c in "ab"])
    index.queue_repairs([RepairTask("c" * 32, "d2", "copy", "deferred", _seg("c" * 32))])
    assert {t.blob_id[0] for t in index.due_repairs(["d1"], 10)} == {"a", "b"}
    assert index.due_repairs([], 10) == []
    task = index.due_repairs(["d2"], 10)[0]
    index.defer_repair(task, time.time() + 60, "full")
    assert index.due_repairs(["d2"], 10) == []
    assert index.repairs()[-1].attempts == 1
    assert index.finish_repair(task) is False, "the blob is not live"
    assert all(t.store_id == "d1" for t in index.repairs())
