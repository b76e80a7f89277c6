"""Back-end store registrations (holdfast/stores/backends.py): credentials sealed in the
index and never in a repr, bound to their store's name, re-sealed on master key rotation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from holdfast.index.errors import Conflict
from holdfast.index.sqlite import SqliteIndex
from holdfast.masterkey import Keyring, MasterKeyError, new_key, sealed_key_id
from holdfast.stores.backends import new_record, reseal_backends, settings_of
from holdfast.stores.s3 import S3Settings

SECRET = "very-secret-key-material-0123"


def settings() -> S3Settings:
    return S3Settings("http://127.0.0.1:1", "bkt", "AKEXAMPLE", SECRET, prefix="p/", quota=10)


def test_credentials_are_sealed_bound_and_resealed(tmp_path: Path) -> None:
    old = Keyring.of([new_key()], "test")
    index = SqliteIndex(tmp_path / "index.db")
    rec = new_record("ext", settings(), old)
    assert SECRET not in repr(rec) and SECRET not in repr(settings())
    assert SECRET not in str(rec.settings) and "AKEXAMPLE" not in str(rec.settings)
    index.add_backend_store(rec, "uuid-1", "http://127.0.0.1:1/bkt/p/")
    with pytest.raises(Conflict):
        index.add_backend_store(rec, "uuid-1", "x")
    (stored,) = index.backend_stores()
    assert index.drives()["@s3/ext"] == "uuid-1"
    assert settings_of(stored, old) == settings()
    # Moved under another name, the sealed credentials do not open.
    with pytest.raises(MasterKeyError):
        settings_of(dataclasses.replace(stored, name="other"), old)
    index.close()
    assert SECRET.encode() not in (tmp_path / "index.db").read_bytes()

    index = SqliteIndex(tmp_path / "index.db")
    fresh = Keyring.of([new_key(), *old.keys.values()], "test")
    assert reseal_backends(index, fresh) == 1
    assert reseal_backends(index, fresh) == 0
    (stored,) = index.backend_stores()
    assert sealed_key_id(stored.secret) == fresh.current_id
    only_new = Keyring({fresh.current_id: fresh.keys[fresh.current_id]}, fresh.current_id, "t")
    assert settings_of(stored, only_new).secret_key == SECRET
    assert index.remove_backend_store("ext") and not index.remove_backend_store("ext")
    assert index.backend_stores() == [] and "@s3/ext" not in index.drives()


def test_new_copies_grow_the_store_list_and_come_with_their_repair_rows() -> None:
    from holdfast.index.records import Segment, with_new_copies

    one = Segment("b1", 10, 4, b"\0" * 12, ("n/d0",))
    two = Segment("b2", 5, 4, b"\0" * 8, ("n/d0", "@s3/ext"))
    segs, tasks = with_new_copies([one, two], {"b1": ["@s3/ext"], "b2": ["@s3/ext"]}, "bk/k")
    assert segs[0].stores == ("n/d0", "@s3/ext") and segs[1] is two  # already there
    ((t),) = tasks
    assert (t.blob_id, t.store_id, t.op, t.reason, t.ref) == (
        "b1",
        "@s3/ext",
        "copy",
        "push",
        "bk/k",
    )
    assert t.segment == segs[0]
    assert with_new_copies([one], {}, "bk/k") == ([one], [])
