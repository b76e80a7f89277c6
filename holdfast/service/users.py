"""Users and their keys.

The root credentials come from HOLDFAST_ACCESS_KEY / HOLDFAST_SECRET_KEY, or are generated once
and kept in the first data directory (mode 0600), so a fresh node works without set-up. Other
users live in the index. Secrets are looked up on every request, so they are cached briefly.

A user's secret key is sealed with the node's master key (holdfast/masterkey.py) before it
goes to the index and opened when it is read back: the index stores opaque text, and a copy
of it leaks no usable credential. The sealed value is bound to the user's access key.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from holdfast.consttime import same
from holdfast.index.base import Index
from holdfast.index.records import UserRecord
from holdfast.masterkey import Keyring, MasterKeyError, is_sealed_text, sealed_key_id, text_bytes

ROOT_USER = "root"
CREDENTIALS_FILE = "root-credentials.json"
_KEY_ALPHABET = string.ascii_uppercase + string.digits
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


def validate_user_name(name: str) -> None:
    """One rule for the CLI, the admin API and the UI: names appear in logs, tables and
    URLs, so they are short and free of spaces, slashes and control characters."""
    if name == ROOT_USER:
        raise ValueError("'root' is reserved")
    if not USER_NAME.fullmatch(name):
        raise ValueError(
            f"invalid user name {name!r}: 1-64 letters, digits and . _ @ + -, "
            "starting with a letter or digit"
        )


@dataclass(frozen=True)
class RootCredentials:
    access_key: str
    secret_key: str
    source: str  # "environment", "generated" or the file path


def new_key_pair() -> tuple[str, str]:
    access = "HF" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))
    return access, secrets.token_urlsafe(30)[:40]


def load_root_credentials(primary_dir: Path) -> RootCredentials:
    env_ak = os.environ.get("HOLDFAST_ACCESS_KEY")
    env_sk = os.environ.get("HOLDFAST_SECRET_KEY")
    if env_ak and env_sk:
        return RootCredentials(env_ak, env_sk, "environment")
    path = primary_dir / CREDENTIALS_FILE
    if path.exists():
        data = json.loads(path.read_text())
        return RootCredentials(data["access_key"], data["secret_key"], str(path))
    access, secret = new_key_pair()
    primary_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"access_key": access, "secret_key": secret}, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    return RootCredentials(access, secret, "generated")


def secret_aad(access_key: str) -> bytes:
    """Associated data of a user's sealed secret: it opens only in that user's row."""
    return b"holdfast user secret|" + access_key.encode()


def sealed_key_ids(records: list[UserRecord]) -> set[str]:
    """The master keys the index's sealed secrets need (empty for a new or old index)."""
    return {
        sealed_key_id(text_bytes(u.secret_key)) for u in records if is_sealed_text(u.secret_key)
    }


def seal_secrets(index: Any, keyring: Keyring) -> tuple[int, int]:
    """At start: seal the secrets an older Holdfast stored in plain text, and re-seal those
    sealed under an older key of ``keyring`` (a rotation); check every other one opens, so
    a wrong or missing master key stops the start with MasterKeyError instead of refusing
    every user's requests later. Returns (sealed now, re-sealed). ``index`` is a
    BlockingIndex (holdfast/index/blocking.py): this runs in commands, before any loop."""
    sealed = resealed = 0
    for user in index.list_users():
        aad = secret_aad(user.access_key)
        if not is_sealed_text(user.secret_key):
            plain = user.secret_key
            sealed += 1
        else:
            plain = keyring.open_text(user.secret_key, aad)  # MasterKeyError: wrong key
            if sealed_key_id(text_bytes(user.secret_key)) == keyring.current_id:
                continue
            resealed += 1
        index.replace_user_secret(user.access_key, user.secret_key, keyring.seal_text(plain, aad))
    return sealed, resealed


# The lookup cache: keys are claimed access keys (generated ones have 20 characters), kept
# for ``ttl``; at most MAX_CACHED_KEYS of at most MAX_CACHED_KEY_LEN characters: ~4 MiB.
MAX_CACHED_KEYS = 10_000
MAX_CACHED_KEY_LEN = 128


def _storable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class UserNotCached(Exception):
    """The signature check needs a user the lookup cache does not hold (fresh)."""

    def __init__(self, access_key: str) -> None:
        super().__init__(access_key)
        self.access_key = access_key


class Users:
    def __init__(
        self,
        index: Index,
        root: RootCredentials,
        keyring: Keyring | None = None,
        ttl: float = 2.0,
    ) -> None:
        self.index = index
        self.root = root
        self.keyring = keyring
        self.ttl = ttl
        self._cache: dict[str, tuple[float, UserRecord | None]] = {}

    def _opened(self, user: UserRecord) -> UserRecord:
        """The record with its secret in plain text. A secret stored by an older Holdfast is
        plain text already (the next start seals it)."""
        if not is_sealed_text(user.secret_key):
            return user
        if self.keyring is None:
            raise MasterKeyError("this process was started without the master key")
        return replace(
            user, secret_key=self.keyring.open_text(user.secret_key, secret_aad(user.access_key))
        )

    async def lookup(self, access_key: str) -> UserRecord | None:
        """The enabled user holding ``access_key``; a short cache keeps auth off the index."""
        if same(access_key, self.root.access_key):
            return UserRecord(ROOT_USER, self.root.access_key, self.root.secret_key)
        if not _storable(access_key):
            return None  # a lone surrogate (from JSON) cannot even be looked up in SQLite
        now = time.monotonic()
        hit = self._cache.get(access_key)
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        user = await self.index.get_user_by_key(access_key)
        if user is not None and user.disabled:
            user = None
        if user is not None:
            user = self._opened(user)
        if len(access_key) > MAX_CACHED_KEY_LEN:
            return user  # a claimed key of any length (up to a 16 KiB header) is not kept
        if len(self._cache) >= MAX_CACHED_KEYS:
            self._cache.clear()
        self._cache[access_key] = (now, user)
        return user

    def secret_for(self, access_key: str) -> str | None:
        """The secret key for a signature check, which is synchronous: from the lookup
        cache, or UserNotCached when the index must be asked first (``await lookup``)."""
        if same(access_key, self.root.access_key):
            return self.root.secret_key
        hit = self._cache.get(access_key)
        if hit is None or time.monotonic() - hit[0] >= self.ttl:
            raise UserNotCached(access_key)
        return hit[1].secret_key if hit[1] is not None else None

    def cached_secret(self, access_key: str) -> str | None:
        """As :meth:`secret_for`, right after a lookup: whatever it found, however old (None
        for a key the lookup does not keep, which is no user's)."""
        if same(access_key, self.root.access_key):
            return self.root.secret_key
        hit = self._cache.get(access_key)
        return hit[1].secret_key if hit is not None and hit[1] is not None else None

    async def add(self, name: str) -> UserRecord:
        """Raises ValueError for a name :func:`validate_user_name` refuses."""
        validate_user_name(name)
        access, secret = new_key_pair()
        user = UserRecord(name, access, secret, created=time.time())
        if self.keyring is None:
            raise MasterKeyError("cannot store a new user's secret without the master key")
        await self.index.add_user(
            replace(user, secret_key=self.keyring.seal_text(secret, secret_aad(access)))
        )
        return user

    async def set_disabled(self, name: str, disabled: bool) -> bool:
        """Takes effect on every worker within the lookup cache's ``ttl``."""
        if name == ROOT_USER:
            raise ValueError("the root user is configured outside the index")
        return await self.index.set_user_disabled(name, disabled)

    async def remove(self, name: str) -> bool:
        """Raises NotEmpty (naming the buckets) while the user still owns buckets."""
        if name == ROOT_USER:
            raise ValueError("the root user is configured outside the index")
        return await self.index.delete_user(name)
