"""The transfer-slot part of the index contract (holdfast/index/base.py, "transfer slots"),
on every engine: at most ``cap`` live slots however many ask at once, renew and release only
by the token that took the slot, and an expired slot (a crashed holder's) free again."""

from __future__ import annotations

import asyncio
import uuid

import pytest

pytestmark = pytest.mark.anyio


def token() -> str:
    return uuid.uuid4().hex


async def test_the_cap_holds_and_release_frees_a_slot(index) -> None:
    a, b, c = token(), token(), token()
    sa = await index.acquire_transfer_slot(2, "n1/1", "repair", "n2", a, 30)
    sb = await index.acquire_transfer_slot(2, "n1/1", "drain", "n3", b, 30)
    assert {sa, sb} == {0, 1}
    assert await index.acquire_transfer_slot(2, "n2/7", "rebalance", "n1", c, 30) is None
    live = await index.transfer_slots()
    assert [(s.slot, s.holder, s.kind, s.target) for s in live] == sorted(
        [(sa, "n1/1", "repair", "n2"), (sb, "n1/1", "drain", "n3")]
    )
    assert all(0 < s.expires_in <= 30 for s in live)
    # Only the token that took a slot releases it.
    await index.release_transfer_slot(sa, c)
    assert len(await index.transfer_slots()) == 2
    await index.release_transfer_slot(sa, a)
    assert await index.acquire_transfer_slot(2, "n2/7", "rebalance", "n1", c, 30) == sa
    assert await index.acquire_transfer_slot(0, "n2/7", "repair", "n1", token(), 30) is None


async def test_a_lowered_cap_counts_the_slots_held_above_it(index) -> None:
    held = [await index.acquire_transfer_slot(4, "h", "repair", "t", token(), 30) for _ in range(3)]
    assert None not in held and len(set(held)) == 3 and max(held) < 4
    # Three live, the cap now 2: nothing more until two of them are gone.
    assert await index.acquire_transfer_slot(2, "h", "repair", "t", token(), 30) is None


async def test_an_expired_slot_is_free_again_and_its_holder_cannot_renew(index) -> None:
    crashed = token()
    slot = await index.acquire_transfer_slot(1, "crashed/1", "drain", "n2", crashed, 0.3)
    assert slot == 0
    assert await index.acquire_transfer_slot(1, "n1/2", "repair", "n3", token(), 30) is None
    await asyncio.sleep(0.5)
    assert await index.transfer_slots() == []  # expired: not live
    mine = token()
    assert await index.acquire_transfer_slot(1, "n1/2", "repair", "n3", mine, 30) == 0
    assert not await index.renew_transfer_slot(0, crashed, 30)  # no longer the holder's
    assert await index.renew_transfer_slot(0, mine, 60)
    (live,) = await index.transfer_slots()
    assert live.holder == "n1/2" and live.token == mine and 30 < live.expires_in <= 60


async def test_many_asking_at_once_get_at_most_the_cap(make_index) -> None:
    """Two handles (two nodes) racing: never more than ``cap`` live slots."""
    first, second = await make_index(), await make_index()
    await first.start()
    await second.start()
    try:
        got = await asyncio.gather(
            *(
                ix.acquire_transfer_slot(3, f"n{i}", "repair", "t", token(), 30)
                for i in range(12)
                for ix in (first, second)
            )
        )
        taken = [s for s in got if s is not None]
        assert len(taken) == len(set(taken)) <= 3
        assert len(await first.transfer_slots()) == len(taken)
    finally:
        await first.close()
        await second.close()
