"""holdfast/service/encryption.py: block layout, sizes, stream cutting, key wrapping."""

from __future__ import annotations

import os

import pytest

from holdfast.masterkey import Keyring, new_key
from holdfast.service.encryption import (
    OVERHEAD,
    BlockCipher,
    Encryption,
    Encryptor,
    WrongKey,
    cipher_size,
    new_encryption,
    open_data_key,
    plain_size,
)


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 32, 33, 1000])
def test_sizes_round_trip(size):
    assert plain_size(cipher_size(size, 16), 16) == size
    assert cipher_size(size, 16) == size + OVERHEAD * -(-size // 16)


@pytest.mark.parametrize("cuts", [[1], [7], [16], [5, 11, 3], [100]])
def test_stream_cut_anyhow_gives_the_same_blocks(cuts):
    cipher = BlockCipher(os.urandom(32), 16)
    data = os.urandom(100)
    enc = Encryptor(cipher)
    out, pos, i = bytearray(), 0, 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        out += enc.feed(data[pos : pos + step])
        pos, i = pos + step, i + 1
    out += enc.close()
    assert len(out) == cipher_size(len(data), 16)
    blocks = [out[j : j + 16 + OVERHEAD] for j in range(0, len(out), 16 + OVERHEAD)]
    assert b"".join(cipher.decrypt(n, b) for n, b in enumerate(blocks)) == data
    with pytest.raises(WrongKey):  # a block moved to another index does not authenticate
        cipher.decrypt(1, blocks[0])


def test_nonces_differ_for_equal_blocks():
    cipher = BlockCipher(os.urandom(32), 16)
    assert cipher.encrypt(0, b"a" * 16) != cipher.encrypt(0, b"a" * 16)


def test_wrapping_sse_s3_and_sse_c():
    keyring = Keyring.of([new_key()], "test")
    enc, key = new_encryption(keyring, 16)
    again = Encryption.from_headers({"x-holdfast-sse": enc.to_header()})
    assert open_data_key(again, keyring, None) == key
    customer = os.urandom(32)
    enc, key = new_encryption(None, 16, customer)
    assert customer not in enc.to_header().encode() and open_data_key(enc, None, customer) == key
    with pytest.raises(WrongKey):
        open_data_key(enc, None, os.urandom(32))
