"""Pure pieces of draining: the segments rewrite a moved copy makes, staging a drain, and
the progress line 'layout show' prints."""

from __future__ import annotations

import json

import pytest

from holdfast.cluster.commands import describe_drain
from holdfast.cluster.layout import Layout, LayoutError, drain_node
from holdfast.index.records import NodeRecord, Segment, move_copy_text, segments_to_text


def text(*stores: str, blob: str = "b1") -> str:
    return segments_to_text([Segment(blob, 10, 1024, b"\0\0\0\1", stores)])


def test_move_copy_text_replaces_only_that_copy():
    out = move_copy_text(text("n1/d0", "n3/d0"), "b1", "n3/d0", "n2/d0")
    assert json.loads(out)[0]["st"] == ["n1/d0", "n2/d0"]
    assert move_copy_text(text("n1/d0", "n3/d0"), "b2", "n3/d0", "n2/d0") is None
    assert move_copy_text(text("n1/d0", "n2/d0"), "b1", "n3/d0", "n2/d0") is None
    assert move_copy_text(text("n1/d0", "n3/d0"), "b1", "n3/d0", "n1/d0") is None


def test_drain_node_stages_draining_and_refuses_unknown_nodes():
    nodes = (NodeRecord("n1", "", "a:1"), NodeRecord("n2", "", "a:2"))
    drained = drain_node(nodes, "n2")
    assert [n.state for n in drained] == ["active", "draining"]
    layout = Layout(2, drained)
    assert [n.name for n in layout.members] == ["n1", "n2"]  # still read from
    assert [n.name for n in layout.active] == ["n1"]  # no new copies
    with pytest.raises(LayoutError, match="no active node 'n2' to drain"):
        drain_node(drained, "n2")
    with pytest.raises(LayoutError, match="no active node 'n9'"):
        drain_node(nodes, "n9")


def test_describe_drain():
    assert describe_drain({"phase": "idle"}) == "drain: nothing draining"
    line = describe_drain(
        {"nodes": ["n3"], "phase": "objects", "copies_moved": 2, "copies_to_move": 8,
         "bytes_moved": 250, "bytes_to_move": 1000, "rate": 1024.0}
    )  # fmt: skip
    assert line == (
        "drain of n3: objects, 2 of 8 copies, 250 of 1000 bytes moved (25%) at 1024 bytes/s"
    )
    done = describe_drain(
        {"nodes": ["n3"], "phase": "done", "copies_moved": 8, "copies_to_move": 8,
         "bytes_moved": 1000, "bytes_to_move": 1000, "rate": 1024.0}
    )  # fmt: skip
    assert done.endswith("'holdfast cluster node remove n3' may follow")
