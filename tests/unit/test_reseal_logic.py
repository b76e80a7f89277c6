"""Re-sealing one SSE-S3 data key under the current master key (holdfast/workers/reseal.py)."""

from __future__ import annotations

import pytest

from holdfast.masterkey import Keyring, MasterKeyError, new_key, sealed_key_id
from holdfast.service.encryption import META_HEADER, Encryption, new_encryption, open_data_key
from holdfast.workers.reseal import reseal_header, sealed_under_old


def test_a_data_key_under_an_old_key_is_resealed_under_the_current_one() -> None:
    old_key, fresh_key = new_key(), new_key()
    old = Keyring.of([old_key], "old")
    enc, data_key = new_encryption(old, 1024)
    rotated = Keyring.of([fresh_key, old_key], "rotated")
    assert sealed_under_old(rotated, enc.to_header())
    text = reseal_header(rotated, enc.to_header())
    again = Encryption.from_headers({META_HEADER: text})
    assert sealed_key_id(again.wrapped) == rotated.current_id
    assert again.plain_block == 1024 and again.kind == "S3"
    assert not sealed_under_old(rotated, text)
    assert reseal_header(rotated, text) is None  # already current: nothing to do
    retired = Keyring.of([fresh_key], "retired")  # the old key gone: it still opens
    assert open_data_key(again, retired, None) == data_key
    with pytest.raises(MasterKeyError):
        open_data_key(enc, retired, None)


def test_sse_c_keys_are_left_alone() -> None:
    keyring = Keyring.of([new_key(), new_key()], "k")
    enc, _ = new_encryption(keyring, 1024, customer_key=b"c" * 32)
    assert reseal_header(keyring, enc.to_header()) is None
    assert not sealed_under_old(keyring, enc.to_header())
