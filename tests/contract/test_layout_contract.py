"""The layout part of the index contract (holdfast/index/base.py, "the cluster layout"), on
every engine: versions, the staged layout, apply as a compare-and-set (two operators cannot
apply over each other), and the audit history."""

from __future__ import annotations

import asyncio

import pytest

from holdfast.index.errors import Conflict
from holdfast.index.records import LayoutRecord, NodeRecord, StagedLayout

pytestmark = pytest.mark.anyio


def nodes(*names: str, state: str = "active") -> tuple[NodeRecord, ...]:
    return tuple(
        NodeRecord(n, f"http://127.0.0.1:90{i}", f"127.0.0.1:74{i:02d}", "z1", 10, state)
        for i, n in enumerate(names)
    )


async def test_empty_layout(index) -> None:
    assert await index.layout_version() == 0
    assert await index.get_layout() is None
    assert await index.get_staged_layout() is None
    assert await index.layout_history() == []


async def test_stage_apply_history(index) -> None:
    staged = StagedLayout(0, nodes("a", "b"), 1.0, "alice@h")
    await index.stage_layout(staged)
    assert await index.get_staged_layout() == staged
    rec = LayoutRecord(1, staged.nodes, 2.0, "alice@h", '[{"node": "a"}]', '{"x": 1}')
    assert await index.apply_layout(0, rec) == 1
    assert await index.layout_version() == 1
    assert await index.get_layout() == rec
    assert await index.get_staged_layout() is None  # applying consumes the staged layout
    rec2 = LayoutRecord(2, nodes("a"), 3.0, "bob@h", "[]", "{}")
    assert await index.apply_layout(1, rec2) == 2
    history = await index.layout_history()
    assert [h.version for h in history] == [2, 1]
    assert history[1].applied_by == "alice@h" and history[1].blast == '{"x": 1}'
    await index.stage_layout(StagedLayout(2, nodes("a", "c"), 4.0, "c@h"))
    await index.stage_layout(None)
    assert await index.get_staged_layout() is None


async def test_apply_is_a_compare_and_set(index) -> None:
    await index.apply_layout(0, LayoutRecord(1, nodes("a"), 1.0, "x", "[]", "{}"))
    with pytest.raises(Conflict):
        await index.apply_layout(0, LayoutRecord(1, nodes("b"), 1.0, "y", "[]", "{}"))
    assert (await index.get_layout()).nodes == nodes("a")
    # Two operators racing from the same version: exactly one wins.
    results = await asyncio.gather(
        index.apply_layout(1, LayoutRecord(2, nodes("a", "b"), 2.0, "x", "[]", "{}")),
        index.apply_layout(1, LayoutRecord(2, nodes("a", "c"), 2.0, "y", "[]", "{}")),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "int"]
    assert await index.layout_version() == 2
    assert len(await index.layout_history()) == 2
