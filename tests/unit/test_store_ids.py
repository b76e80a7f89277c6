"""Cluster-unique store ids and the node name they carry (holdfast/stores/registry.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from holdfast.stores.local import LocalStore
from holdfast.stores.registry import StoreMap, WrongNode, check_node_name, resolve_node_name


def test_node_name_comes_from_the_flag_then_the_index_then_local():
    fresh: dict[str, str] = {}
    assert resolve_node_name(None, [None, None], fresh) == "local"
    assert resolve_node_name("n1", [None], fresh) == "n1"
    registered = {"n1/d0": "u0", "n1/d1": "u1", "other/d0": "u9"}
    assert resolve_node_name(None, ["u0", None], registered) == "n1"
    assert resolve_node_name("n1", ["u1"], registered) == "n1"
    with pytest.raises(WrongNode, match="--node-name n1"):
        resolve_node_name("n2", ["u0", "u1"], registered)
    # Drives registered before ids were qualified carry no node name: any name fits.
    legacy = {"d0": "u0", "d1": "u1"}
    assert resolve_node_name(None, ["u0", "u1"], legacy) == "local"
    assert resolve_node_name("n7", ["u0", "u1"], legacy) == "n7"
    with pytest.raises(WrongNode, match="several"):
        resolve_node_name(None, ["u0", "u9"], registered)


def test_node_names_are_checked():
    for good in ("local", "node-1", "a.b_c", "N" * 63):
        assert check_node_name(good) == good
    for bad in ("", "a/b", "-x", "N" * 64, "sp ace", "é"):
        with pytest.raises(ValueError):
            check_node_name(bad)


def test_bare_ids_are_read_as_this_nodes_drives(tmp_path: Path):
    stores = StoreMap([LocalStore(f"n1/d{i}", tmp_path / str(i)) for i in range(2)], "n1")
    assert list(stores) == ["n1/d0", "n1/d1"] and len(stores) == 2
    assert stores["d1"] is stores["n1/d1"] and "d0" in stores and "n1/d0" in stores
    assert stores.get("n2/d0") is None and "n2/d0" not in stores and stores.get("d5") is None
    assert stores.resolve("d1") == "n1/d1" and stores.resolve("n2/d1") == "n2/d1"
    assert stores.aliases(["n1/d0", "n2/d0"]) == ["n1/d0", "d0", "n2/d0"]
    assert stores.first is stores["d0"] and stores["d0"].name == "d0"
