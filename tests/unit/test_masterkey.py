"""The master key's seal/open (holdfast/masterkey.py): round trip, a fresh nonce each time,
the associated data binds a value to its row, a value names the key that sealed it, and
every failure is a MasterKeyError with a message, never a silent wrong answer."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from holdfast.masterkey import (
    Keyring,
    MasterKeyError,
    is_sealed_text,
    key_id,
    load_keyring,
    new_key,
    sealed_key_id,
)


def test_seal_and_open_round_trip_with_a_fresh_nonce_each_time() -> None:
    ring = Keyring.of([new_key()], "test")
    a, b = ring.seal(b"secret", b"user|AK1"), ring.seal(b"secret", b"user|AK1")
    assert a != b and b"secret" not in a
    assert ring.open(a, b"user|AK1") == ring.open(b, b"user|AK1") == b"secret"
    text = ring.seal_text("sëcret", b"aad")
    assert is_sealed_text(text) and ring.open_text(text, b"aad") == "sëcret"


def test_a_value_opens_only_with_its_own_aad_and_untouched() -> None:
    ring = Keyring.of([new_key()], "test")
    sealed = ring.seal(b"secret", b"user|AK1")
    with pytest.raises(MasterKeyError, match="altered or copied"):
        ring.open(sealed, b"user|AK2")
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(MasterKeyError):
        ring.open(flipped, b"user|AK1")
    with pytest.raises(MasterKeyError, match="damaged"):
        ring.open(sealed[:10], b"user|AK1")


def test_older_keys_open_and_the_current_one_seals() -> None:
    old, new = new_key(), new_key()
    sealed_old = Keyring.of([old], "test").seal(b"x", b"")
    both = Keyring.of([new, old], "test")
    assert both.open(sealed_old, b"") == b"x"
    assert sealed_key_id(both.seal(b"x", b"")) == key_id(new)
    with pytest.raises(MasterKeyError, match="does not hold"):
        Keyring.of([new], "HOLDFAST_MASTER_KEY").open(sealed_old, b"")


def test_key_file_is_created_once_owner_only_and_env_wins(tmp_path) -> None:
    old_umask = os.umask(0)
    try:
        ring = load_keyring(tmp_path, create=True, env={})
    finally:
        os.umask(old_umask)
    path = tmp_path / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keyring(tmp_path, env={}).current_id == ring.current_id
    key = new_key()
    from_env = load_keyring(tmp_path, env={"HOLDFAST_MASTER_KEY": base64.b64encode(key).decode()})
    assert from_env.current_id == key_id(key)
    path.unlink()
    with pytest.raises(MasterKeyError, match="no master key"):
        load_keyring(tmp_path, env={})
    with pytest.raises(MasterKeyError, match="32 bytes"):
        load_keyring(tmp_path, env={"HOLDFAST_MASTER_KEY": base64.b64encode(b"short").decode()})
