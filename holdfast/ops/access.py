"""Who may read ``/_holdfast/status`` and ``/_holdfast/metrics``.

Both show what an attacker should not learn from the network: data paths, the hostname,
the configuration, bucket totals and object names. Health and readiness stay open (load
balancers and orchestrators poll them and they tell nothing). The rest is served:

* **status**, in full to root: a request SigV4-signed with the root keys, or a root admin
  UI session cookie. A signed-in UI user other than root gets a reduced document
  (:func:`limited_status`): the state, the kind of each problem and each drive's state and
  free share, nothing else.
* **metrics** to a scraper with the bearer token (``--metrics-token``; Prometheus's
  ``authorization``/``bearer_token``), or to root as above.
* to anyone with ``--public-status`` (the behaviour before issue 18).

Root is checked against the root keys held in memory, never the index, so status and
metrics keep working while the index is down (DESIGN.md, invariant 6). Every secret is
compared in constant time, as bytes (``hmac.compare_digest`` refuses non-ASCII ``str``).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import TYPE_CHECKING

from holdfast.consttime import same
from holdfast.errors import S3Error
from holdfast.ops.ui import session as ui_session
from holdfast.s3.auth import verify_request
from holdfast.service.users import ROOT_USER, RootCredentials, load_root_credentials

if TYPE_CHECKING:
    from holdfast.s3.app import S3App
    from holdfast.s3.http import Request

FULL = "full"
LIMITED = "limited"
_HOW = (
    "sign the request with the root keys (SigV4), sign in to /_holdfast/ui/ as root"
    "{metrics}, or start the node with --public-status"
)

_root: dict[Path, RootCredentials] = {}


class Denied(Exception):
    """The request may not read this path: 401 (no credentials) or 403 (wrong ones)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def root_credentials(primary_dir: Path) -> RootCredentials:
    """The root keys, read once per process (environment or the credentials file)."""
    creds = _root.get(primary_dir)
    if creds is None:
        creds = _root[primary_dir] = load_root_credentials(primary_dir)
    return creds


def _signed_by_root(request: Request, root: RootCredentials) -> bool:
    """True for a valid root SigV4 signature, False when the request carries none; Denied
    for a signature that does not verify or is not root's."""
    auth = request.headers.get("authorization", "")
    if not auth.startswith("AWS4-") and "X-Amz-Signature" not in request.query:
        return False

    def secret(access_key: str) -> str | None:
        return root.secret_key if same(access_key, root.access_key) else None

    try:
        result = verify_request(
            request.method, request.raw_path, request.raw_query, request.headers, secret
        )
    except S3Error as e:
        raise Denied(403, e.code, e.message) from None
    except (TypeError, ValueError, UnicodeError):  # malformed input the parser did not name
        raise Denied(403, "SignatureDoesNotMatch", "the signature does not verify") from None
    request.access_key, request.user = result.access_key, ROOT_USER  # for the request log
    return True


async def _session(request: Request, app: S3App, root: RootCredentials) -> str | None:
    """FULL for a root UI session, LIMITED for another user's, None without a cookie.
    Root's session is checked against the keys in memory; another user's needs their
    secret from the index (cached for a few seconds by Users)."""
    token = ui_session.cookie_value(request)
    if token is None:
        return None
    key = ui_session.node_key(app.config.primary_dir)
    found = ui_session.claims(key, token)
    expired = Denied(401, "NotSignedIn", "the session has expired or was revoked: sign in again")
    if found is None:
        raise expired
    if same(found.access_key, root.access_key):
        if not ui_session.matches(key, found, root.secret_key):
            raise expired
        request.access_key, request.user = found.access_key, ROOT_USER
        return FULL
    try:
        user = app.service.users.lookup(found.access_key)
        if inspect.isawaitable(user):  # an async index interface makes the lookup a coroutine
            user = await user
    except Exception:
        raise Denied(
            503, "IndexUnavailable", "cannot check this session while the index is unavailable"
        ) from None
    if user is None or not ui_session.matches(key, found, user.secret_key):
        raise expired
    request.access_key, request.user = found.access_key, user.name
    return LIMITED


async def status_access(request: Request, app: S3App) -> str:
    """FULL or LIMITED; raises Denied."""
    config = app.config
    if config.public_status:
        return FULL
    root = root_credentials(config.primary_dir)
    if _signed_by_root(request, root):
        return FULL
    level = await _session(request, app, root)
    if level is not None:
        return level
    raise Denied(401, "AccessDenied", "the status page is for root: " + _HOW.format(metrics=""))


async def metrics_access(request: Request, app: S3App) -> None:
    """Returns when the request may read the metrics; raises Denied otherwise."""
    config = app.config
    if config.public_status:
        return
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        if config.metrics_token and same(auth[7:].strip(), config.metrics_token):
            return
        raise Denied(403, "AccessDenied", "wrong bearer token for /_holdfast/metrics")
    root = root_credentials(config.primary_dir)
    if _signed_by_root(request, root):
        return
    level = await _session(request, app, root)
    if level == FULL:
        return
    if level == LIMITED:
        raise Denied(403, "AccessDenied", "only root may read the metrics")
    raise Denied(
        401,
        "AccessDenied",
        "metrics need a bearer token (--metrics-token) or root: "
        + _HOW.format(metrics=", send 'Authorization: Bearer <--metrics-token>'"),
    )


def limited_status(doc: dict) -> dict:
    """What a signed-in user other than root sees: whether the node is well, the kind of
    each problem (the text before its first colon, which names a drive by id, never by
    path) and each drive's state and free share. No paths, hostname, configuration,
    totals, object names or other users' figures."""
    return {
        "state": doc.get("state"),
        "limited": True,
        "problems": [
            {"severity": p["severity"], "what": re.sub(r"^\d+ ", "", p["what"].split(":", 1)[0])}
            for p in doc.get("problems", [])
        ],
        "drives": [
            {"id": d.get("id"), "state": d.get("state"), "free_percent": d.get("free_percent")}
            for d in doc.get("drives", [])
        ],
        "now": doc.get("now"),
        "snapshot_age_seconds": doc.get("snapshot_age_seconds"),
    }
