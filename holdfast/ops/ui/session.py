"""Admin UI sessions: signed, expiring cookies that every worker process accepts.

A node runs several worker processes and a browser's requests land on any of them, so a
session table in one worker's memory would sign users out at random. Instead the cookie is
the session: ``<payload>.<HMAC-SHA256>``, where the payload names the access key, the
expiry, and a fingerprint of the user's secret key (changing or removing the key ends
every session made with it). The HMAC key is a per-node secret kept in the first data
directory (``ui-session.key``, mode 0600), created once by whichever worker needs it first.

CSRF protection is a token derived from the session (HMAC of the cookie under the same
key). The page gets it from ``GET /_holdfast/ui/api/session`` and sends it in the
``X-Holdfast-CSRF`` header with every state-changing request. The cookie is HttpOnly and
SameSite=Strict, so another site can neither read the token nor make the browser send the
cookie; the header check is the second, independent wall.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from holdfast.consttime import same
from holdfast.service.users import ROOT_USER

if TYPE_CHECKING:
    from holdfast.ops.api import Identity
    from holdfast.ops.runtime import OpsRuntime
    from holdfast.s3.http import Request
    from holdfast.service.users import Users

KEY_FILE = "ui-session.key"
COOKIE = "holdfast_ui"
CSRF_HEADER = "x-holdfast-csrf"
SESSION_SECONDS = 8 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD"})

_keys: dict[Path, bytes] = {}


@dataclass(frozen=True)
class Session:
    """A verified session: who, until when, and the token it was read from."""

    access_key: str
    user: str
    expires: int
    token: str

    @property
    def is_root(self) -> bool:
        return self.user == ROOT_USER


class CsrfError(Exception):
    """A state-changing request carried a valid session but no matching CSRF token."""


# -- the per-node secret ---------------------------------------------------------------------


def node_key(data_dir: Path) -> bytes:
    """The HMAC key, created on first use. Creating it with ``link`` from a complete temporary
    file means two workers racing both end up reading the same, whole key."""
    cached = _keys.get(data_dir)
    if cached is not None:
        return cached
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    key = path.read_bytes()
    if len(key) < 32:
        raise RuntimeError(f"{path} is damaged: delete it to sign everyone out and start over")
    _keys[data_dir] = key
    return key


# -- tokens ----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _fingerprint(key: bytes, secret_key: str) -> str:
    return _b64(hmac.new(key, b"secret|" + secret_key.encode(), hashlib.sha256).digest()[:12])


def issue(key: bytes, access_key: str, secret_key: str, now: float | None = None) -> str:
    """A new session token for a user who has just proved they hold ``secret_key``."""
    now = time.time() if now is None else now
    payload = {
        "ak": access_key,
        "exp": int(now) + SESSION_SECONDS,
        "fp": _fingerprint(key, secret_key),
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return body + "." + _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


@dataclass(frozen=True)
class Claims:
    """What a well-signed, unexpired token says, before its user has been looked up."""

    access_key: str
    expires: int
    fingerprint: str


def claims(key: bytes, token: str, now: float | None = None) -> Claims | None:
    """The token's claims if it was signed with ``key`` and has not expired; no user lookup,
    so no index (status checks a root session with this while the index is down)."""
    body, _, sig = token.partition(".")
    if not body or not sig:
        return None
    good = hmac.new(key, body.encode(), hashlib.sha256).digest()
    try:
        if not same(good, _unb64(sig)):
            return None
        payload = json.loads(_unb64(body))
        found = Claims(str(payload["ak"]), int(payload["exp"]), str(payload["fp"]))
    except (ValueError, KeyError, TypeError):
        return None
    if found.expires < (time.time() if now is None else now):
        return None
    return found


def matches(key: bytes, found: Claims, secret_key: str) -> bool:
    """Whether the session was made with ``secret_key`` (a new secret ends old sessions)."""
    return same(found.fingerprint, _fingerprint(key, secret_key))


async def verify(key: bytes, token: str, users: Users, now: float | None = None) -> Session | None:
    """The session a token stands for, or None if it is forged, expired, or its user is gone,
    disabled or has a new secret. Looking the user up costs an index read for users other
    than root (cached for a couple of seconds by ``Users``)."""
    found = claims(key, token, now)
    if found is None:
        return None
    user = await users.lookup(found.access_key)
    if user is None or not matches(key, found, user.secret_key):
        return None
    return Session(found.access_key, user.name, found.expires, token)


def csrf_token(key: bytes, token: str) -> str:
    """The CSRF token that goes with a session token; it cannot be made without the key."""
    return _b64(hmac.new(key, b"csrf|" + token.encode(), hashlib.sha256).digest())


def csrf_ok(key: bytes, session: Session, request: Request) -> bool:
    sent = request.headers.get(CSRF_HEADER, "")
    return bool(sent) and same(sent, csrf_token(key, session.token))


# -- cookies ---------------------------------------------------------------------------------


def cookie_value(request: Request) -> str | None:
    for part in request.headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None


def set_cookie(request: Request, token: str, max_age: int = SESSION_SECONDS) -> str:
    """The Set-Cookie value: HttpOnly and SameSite=Strict always, Secure over HTTPS. The
    path covers the UI and the admin API, which the UI calls with the same session."""
    secure = "; Secure" if request.scheme == "https" else ""
    return (
        f"{COOKIE}={token}; Path=/_holdfast/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    )


def clear_cookie(request: Request) -> str:
    return set_cookie(request, "", max_age=0)


async def current(request: Request, data_dir: Path, users: Users) -> Session | None:
    """The request's session, checked; raises CsrfError for an unsafe method without a
    matching CSRF token (so the caller can answer 403 rather than 'not signed in')."""
    token = cookie_value(request)
    if token is None:
        return None
    key = node_key(data_dir)
    session = await verify(key, token, users)
    if session is None:
        return None
    if request.method not in SAFE_METHODS and not csrf_ok(key, session, request):
        raise CsrfError("missing or wrong X-Holdfast-CSRF header")
    request.access_key, request.user = session.access_key, session.user  # for the request log
    return session


async def api_identity(request: Request, rt: OpsRuntime) -> Identity | None:
    """Authenticator for the admin API (api.AUTHENTICATORS): a root UI session, with a CSRF
    token on anything but GET. Other users' sessions are not administrators."""
    from holdfast.ops.api import ApiError, Identity

    if cookie_value(request) is None:
        return None
    try:
        session = await current(request, rt.config.primary_dir, rt.app.service.users)
    except CsrfError as e:
        raise ApiError(403, "InvalidCSRFToken", str(e)) from None
    if session is None:
        return None
    if not session.is_root:
        raise ApiError(403, "AccessDenied", "only the root user may use the admin API")
    return Identity(session.user)
