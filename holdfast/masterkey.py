"""The node's master key: seals secrets before they are stored, so a copy of the index (a
backup, a PostgreSQL dump, a stray file) leaks no usable credential.

Anything that stores a secret seals it here: users' secret keys today (service/users.py),
external S3 stores' credentials and SSE-S3 data keys later. The API is two calls and a key
id::

    keyring = load_keyring(primary_dir)
    sealed = keyring.seal(secret, aad)        # bytes -> bytes
    secret = keyring.open(sealed, aad)        # MasterKeyError if wrong key, tampered, moved

``aad`` (associated data) binds a sealed value to where it belongs, e.g. the access key of
the user it is the secret of: the same bytes copied into another row do not open. The
cipher is AES-256-GCM (``cryptography``) with a random 96-bit nonce per value. A sealed
value names the key that sealed it (``key_id``), so a keyring may hold older keys during a
rotation (``holdfast key rotate``; docs/security.md) and :meth:`Keyring.open` picks the
right one.

Where the key lives, first match wins:

* ``HOLDFAST_MASTER_KEY``: one or more keys, base64 (32 bytes each), comma-separated; the
  first seals, all open. Nothing is written to disk.
* ``<first data dir>/master.key`` (mode 0600): JSON ``{"current": id, "keys": {id: b64}}``,
  created on the first start with a fresh key.

Sealed text (for text columns) is ``hfsealed1:<base64url of the sealed bytes>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE = "master.key"
ENV = "HOLDFAST_MASTER_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
ID_BYTES = 8
FORMAT = 1  # first byte of every sealed value
TEXT_PREFIX = "hfsealed1:"


class MasterKeyError(Exception):
    """The master key is missing, malformed, or does not open a sealed value. The message
    says what to do; callers print it and stop rather than lock everyone out silently."""


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def key_id(key: bytes) -> str:
    """A short public name for a key (hex); it reveals nothing usable about the key."""
    return hashlib.sha256(b"holdfast master key id|" + key).digest()[:ID_BYTES].hex()


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode()


def decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{where}: a master key is 32 bytes in base64") from None
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"{where}: a master key is 32 bytes in base64, got {len(key)}")
    return key


@dataclass(frozen=True)
class Keyring:
    """The current key (seals) and any older ones (open only), by key id."""

    keys: Mapping[str, bytes]
    current_id: str
    source: str  # the file path or "HOLDFAST_MASTER_KEY", for messages

    @classmethod
    def of(cls, keys: list[bytes], source: str) -> Keyring:
        """The first key seals; all of them open."""
        return cls({key_id(k): k for k in keys}, key_id(keys[0]), source)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        head = bytes([FORMAT]) + bytes.fromhex(self.current_id)
        sealed = AESGCM(self.keys[self.current_id]).encrypt(nonce, plaintext, head + aad)
        return head + nonce + sealed

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        wanted = sealed_key_id(sealed)
        key = self.keys.get(wanted)
        if key is None:
            raise MasterKeyError(
                f"a secret was sealed with master key {wanted}, which {self.source} does not "
                f"hold (it has {', '.join(sorted(self.keys))}): restore the master key from "
                f"your backup, or set {ENV} to it"
            )
        head = sealed[: 1 + ID_BYTES]
        nonce = sealed[1 + ID_BYTES : 1 + ID_BYTES + NONCE_BYTES]
        try:
            return AESGCM(key).decrypt(nonce, sealed[len(head) + NONCE_BYTES :], head + aad)
        except InvalidTag:
            raise MasterKeyError(
                f"a secret sealed with master key {wanted} does not open: it was altered or "
                "copied from another row"
            ) from None

    # -- text columns ------------------------------------------------------------------------

    def seal_text(self, plaintext: str, aad: bytes) -> str:
        sealed = self.seal(plaintext.encode(), aad)
        return TEXT_PREFIX + base64.urlsafe_b64encode(sealed).decode()

    def open_text(self, sealed: str, aad: bytes) -> str:
        return self.open(text_bytes(sealed), aad).decode()


def is_sealed_text(value: str) -> bool:
    return value.startswith(TEXT_PREFIX)


def text_bytes(sealed: str) -> bytes:
    if not is_sealed_text(sealed):
        raise MasterKeyError("not a sealed value")
    try:
        return base64.urlsafe_b64decode(sealed[len(TEXT_PREFIX) :])
    except (binascii.Error, ValueError):
        raise MasterKeyError("a sealed value is damaged (bad base64)") from None


def sealed_key_id(sealed: bytes) -> str:
    if len(sealed) < 1 + ID_BYTES + NONCE_BYTES + 16 or sealed[0] != FORMAT:
        raise MasterKeyError("a sealed value is damaged (too short or unknown format)")
    return sealed[1 : 1 + ID_BYTES].hex()


# -- where the key lives ----------------------------------------------------------------------


def key_file(primary_dir: Path) -> Path:
    return primary_dir / KEY_FILE


def read_key_file(path: Path) -> Keyring:
    try:
        data = json.loads(path.read_text())
        keys = {kid: decode_key(text, str(path)) for kid, text in data["keys"].items()}
        current = data["current"]
    except MasterKeyError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise MasterKeyError(f"cannot read the master key {path}: {e}") from None
    for kid, key in keys.items():
        if key_id(key) != kid:
            raise MasterKeyError(f"{path}: key {kid} does not match its id; the file is damaged")
    if current not in keys:
        raise MasterKeyError(f"{path}: the current key {current} is not in the file")
    return Keyring(keys, current, str(path))


def write_key_file(path: Path, keyring: Keyring, exclusive: bool = False) -> None:
    """Atomically (temporary file, fsync, rename, directory fsync), mode 0600 from the start.
    ``exclusive``: only if there is no key file yet (FileExistsError otherwise), so two
    processes creating the first key both end up with the same one."""
    body = {
        "current": keyring.current_id,
        "keys": {kid: encode_key(key) for kid, key in keyring.keys.items()},
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, json.dumps(body, indent=1).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        if exclusive or tmp.exists():
            tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def from_env(env: Mapping[str, str]) -> Keyring | None:
    raw = env.get(ENV, "").strip()
    if not raw:
        return None
    keys = [decode_key(part, ENV) for part in raw.split(",") if part.strip()]
    return Keyring.of(keys, ENV)


def load_keyring(
    primary_dir: Path, create: bool = False, env: Mapping[str, str] | None = None
) -> Keyring:
    """The node's keyring: from ``HOLDFAST_MASTER_KEY``, else the key file; with ``create``
    a missing key file is made with a fresh key (only where nothing is sealed yet: the
    caller decides, so a lost key is reported, never silently replaced)."""
    found = from_env(os.environ if env is None else env)
    if found is not None:
        return found
    path = key_file(primary_dir)
    if path.exists():
        return read_key_file(path)
    if not create:
        raise MasterKeyError(
            f"no master key: {path} is missing and {ENV} is not set; restore the file from "
            "your backup (docs/security.md)"
        )
    keyring = Keyring.of([new_key()], str(path))
    primary_dir.mkdir(parents=True, exist_ok=True)
    try:
        write_key_file(path, keyring, exclusive=True)
    except FileExistsError:
        return read_key_file(path)  # another process made it first: use theirs
    return keyring
