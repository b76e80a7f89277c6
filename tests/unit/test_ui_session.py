"""Admin UI session tokens: pure logic, no server (the browser tests cover the rest)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from holdfast.ops.ui import session

KEY = b"k" * 32


@dataclass
class FakeUser:
    name: str
    secret_key: str


class FakeUsers:
    """Stands in for service.users.lookup: access key -> enabled user or None."""

    def __init__(self, **users: FakeUser) -> None:
        self.users = users

    async def lookup(self, access_key: str) -> FakeUser | None:
        return self.users.get(access_key)


USERS = FakeUsers(AK1=FakeUser("alice", "secret-1"))


def verify(*args, **kwargs):
    return asyncio.run(session.verify(*args, **kwargs))


def test_a_fresh_token_verifies_and_names_its_user() -> None:
    token = session.issue(KEY, "AK1", "secret-1", now=1000)
    got = verify(KEY, token, USERS, now=1001)
    assert got is not None and got.user == "alice" and got.access_key == "AK1"


def test_forged_expired_or_stale_tokens_are_refused() -> None:
    token = session.issue(KEY, "AK1", "secret-1", now=1000)
    body, _, sig = token.partition(".")
    assert verify(b"x" * 32, token, USERS, now=1001) is None  # another node's key
    assert verify(KEY, body + "." + sig[:-2] + "AA", USERS, now=1001) is None
    assert verify(KEY, "garbage", USERS, now=1001) is None
    assert verify(KEY, token, USERS, now=1000 + session.SESSION_SECONDS + 1) is None
    assert verify(KEY, token, FakeUsers(), now=1001) is None  # user gone or disabled
    rotated = FakeUsers(AK1=FakeUser("alice", "secret-2"))
    assert verify(KEY, token, rotated, now=1001) is None  # secret changed


def test_csrf_token_is_bound_to_the_session() -> None:
    a = session.issue(KEY, "AK1", "secret-1", now=1000)
    b = session.issue(KEY, "AK1", "secret-1", now=2000)
    assert session.csrf_token(KEY, a) != session.csrf_token(KEY, b)
    assert session.csrf_token(KEY, a) == session.csrf_token(KEY, a)


def test_the_node_key_is_made_once_and_kept(tmp_path) -> None:
    first = session.node_key(tmp_path)
    session._keys.clear()
    assert session.node_key(tmp_path) == first and len(first) == 32
    assert (tmp_path / session.KEY_FILE).stat().st_mode & 0o777 == 0o600
