"""Server-side encryption of object bytes (SSE-S3 and SSE-C), block by block.

Why per block: every stored blob is checked block by block (a CRC32C per block, recorded when
it is received), a ranged GET reads only the blocks it needs, and a read fails over to another
copy in the middle of a stream. Encrypting each plaintext block on its own keeps all of that
working unchanged on the ciphertext: a stored block is

    nonce (12 bytes, random) || AES-256-GCM(plaintext block, aad = block index) incl. tag (16)

so a ciphertext block is ``PLAIN + OVERHEAD`` bytes and the blob's blocks are aligned with the
CRC32C blocks (the blob is written with a block size of ``plain_block + OVERHEAD``). Repair
and the scrubber copy and check ciphertext and never need a key.

Every object (every multipart upload) gets its own random 256-bit data key; a random 96-bit
nonce per block under a key used for one object only is far inside GCM's limits. The data key
is stored wrapped:

* SSE-S3: sealed by the node's master key (holdfast/masterkey.py, with its key id, so the
  master key can be rotated);
* SSE-C: sealed by the customer's key (AES-GCM, random nonce). The customer key itself is
  never stored or logged; its MD5 is (S3 stores and returns it too), and it is checked before
  the wrapped key is opened.

The description rides in the object's stored-headers document under one reserved name
(``META_HEADER``) that is never sent to clients, so both index engines hold it with no schema
change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from holdfast.masterkey import Keyring, MasterKeyError

NONCE = 12
TAG = 16
OVERHEAD = NONCE + TAG
META_HEADER = "x-holdfast-sse"
SSE_S3 = "AES256"
WRAP_AAD = b"holdfast sse data key"


class WrongKey(Exception):
    """The key given does not open this object's data key (SSE-C), or a block fails to
    authenticate."""


def cipher_block(plain_block: int) -> int:
    return plain_block + OVERHEAD


def cipher_size(plain: int, plain_block: int) -> int:
    return plain + OVERHEAD * -(-plain // plain_block)


def plain_size(cipher: int, plain_block: int) -> int:
    blocks = -(-cipher // cipher_block(plain_block))
    return cipher - OVERHEAD * blocks


def key_md5(key: bytes) -> str:
    return base64.b64encode(hashlib.md5(key).digest()).decode()


@dataclass(frozen=True)
class Encryption:
    """How one object (or upload) is encrypted: what is stored, never the plain data key."""

    kind: str  # "S3" or "C"
    wrapped: bytes
    plain_block: int
    customer_md5: str | None = None  # SSE-C only

    def to_header(self) -> str:
        doc = {"t": self.kind, "k": base64.b64encode(self.wrapped).decode(), "b": self.plain_block}
        if self.customer_md5:
            doc["m"] = self.customer_md5
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> Encryption | None:
        text = headers.get(META_HEADER)
        if text is None:
            return None
        doc = json.loads(text)
        return cls(doc["t"], base64.b64decode(doc["k"]), int(doc["b"]), doc.get("m"))

    def response_headers(self) -> list[tuple[str, str]]:
        """What S3 answers about the object's encryption on PUT, GET, HEAD."""
        if self.kind == "S3":
            return [("x-amz-server-side-encryption", SSE_S3)]
        return [
            ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            ("x-amz-server-side-encryption-customer-key-MD5", self.customer_md5 or ""),
        ]


def new_encryption(
    keyring: Keyring | None, plain_block: int, customer_key: bytes | None = None
) -> tuple[Encryption, bytes]:
    """A fresh data key and its stored form: (description, plain data key)."""
    data_key = AESGCM.generate_key(bit_length=256)
    if customer_key is not None:
        nonce = os.urandom(NONCE)
        wrapped = nonce + AESGCM(customer_key).encrypt(nonce, data_key, WRAP_AAD)
        return Encryption("C", wrapped, plain_block, key_md5(customer_key)), data_key
    if keyring is None:
        raise MasterKeyError("no master key to wrap SSE-S3 keys with")
    return Encryption("S3", keyring.seal(data_key, WRAP_AAD), plain_block), data_key


def open_data_key(enc: Encryption, keyring: Keyring | None, customer_key: bytes | None) -> bytes:
    if enc.kind == "S3":
        if keyring is None:
            raise MasterKeyError("no master key to open SSE-S3 keys with")
        return keyring.open(enc.wrapped, WRAP_AAD)
    if customer_key is None or key_md5(customer_key) != enc.customer_md5:
        raise WrongKey("the customer key does not match the object's")
    try:
        return AESGCM(customer_key).decrypt(enc.wrapped[:NONCE], enc.wrapped[NONCE:], WRAP_AAD)
    except InvalidTag:
        raise WrongKey("the customer key does not open the object's data key") from None


class BlockCipher:
    """Encrypts and decrypts single blocks of one object under its data key."""

    def __init__(self, data_key: bytes, plain_block: int) -> None:
        self.aead = AESGCM(data_key)
        self.plain_block = plain_block
        self.cipher_block = cipher_block(plain_block)

    def encrypt(self, index: int, plain: bytes | memoryview) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self.aead.encrypt(nonce, bytes(plain), struct.pack(">Q", index))

    def decrypt(self, index: int, block: bytes | memoryview) -> bytes:
        block = bytes(block)
        try:
            return self.aead.decrypt(block[:NONCE], block[NONCE:], struct.pack(">Q", index))
        except InvalidTag:
            raise WrongKey(f"block {index} does not authenticate") from None


class Encryptor:
    """Cuts a plaintext stream into blocks and yields their ciphertexts, however it arrives."""

    def __init__(self, cipher: BlockCipher) -> None:
        self.cipher = cipher
        self.buf = bytearray()
        self.index = 0

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        self.buf += data
        size = self.cipher.plain_block
        if len(self.buf) < size:
            return b""
        out = bytearray()
        view = memoryview(self.buf)
        pos = 0
        while len(self.buf) - pos >= size:
            out += self.cipher.encrypt(self.index, view[pos : pos + size])
            self.index += 1
            pos += size
        view.release()
        del self.buf[:pos]
        return bytes(out)

    def close(self) -> bytes:
        if not self.buf:
            return b""
        out = self.cipher.encrypt(self.index, self.buf)
        self.index += 1
        self.buf = bytearray()
        return out
