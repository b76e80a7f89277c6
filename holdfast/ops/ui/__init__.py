"""The admin web UI at ``/_holdfast/ui/``: static pages plus the JSON calls they make.

Paths:

* ``/_holdfast/ui/`` and ``/_holdfast/ui/static/<file>``: the page and its assets, read
  from ``holdfast/ops/ui_static`` (nothing is loaded from the internet).
* ``/_holdfast/ui/api/session``: sign in (POST), who am I (GET), sign out (DELETE).
* ``/_holdfast/ui/api/buckets[/<name>[/objects|/object|/info|/preview|/share|/delete]]``:
  buckets and objects, as the signed-in user (objects.py).

Users, charts, request-log search and alerts come from the admin API (``/_holdfast/api/``),
which accepts a root UI session (session.api_identity); drives and health come from
``/_holdfast/status``. Every state-changing call needs the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from holdfast.consttime import same
from holdfast.errors import S3Error
from holdfast.ops.ui import objects, session
from holdfast.s3.http import Request, Response, json_response

if TYPE_CHECKING:
    from holdfast.ops.runtime import OpsRuntime
    from holdfast.s3.app import S3App
    from holdfast.service import Service

log = logging.getLogger("holdfast.ops.ui")

STATIC_DIR = Path(__file__).resolve().parent.parent / "ui_static"
PREFIX = "/_holdfast/ui"
MAX_SIGNIN_BODY = 4096
INDEX_TIMEOUT = 10.0
# Sign-in failures per client address, to slow down guessing: (window start, count).
FAILURE_WINDOW = 300.0
MAX_FAILURES = 20
_failures: dict[str, tuple[float, int]] = {}

PAGE_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
]


class UiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def handle(request: Request, app: S3App, runtime: OpsRuntime | None = None) -> Response:
    """Entry point from endpoints.py for every path under /_holdfast/ui."""
    path = request.raw_path
    if path == PREFIX:  # relative asset URLs need the trailing slash
        return Response(301, [("Location", PREFIX + "/"), ("Content-Length", "0")])
    try:
        if path.startswith(PREFIX + "/api/"):
            return await api(request, app, path[len(PREFIX + "/api/") :])
        if request.method not in ("GET", "HEAD"):
            raise UiError(405, "MethodNotAllowed", "use GET")
        return static(path[len(PREFIX) :])
    except UiError as e:
        return json_response(e.status, {"error": e.code, "message": e.message})
    except S3Error as e:
        return json_response(e.status, {"error": e.code, "message": e.message})
    except TimeoutError:
        return json_response(503, {"error": "Timeout", "message": "the index did not answer"})
    except Exception:
        log.exception("admin UI error in %s %s", request.method, path)
        return json_response(500, {"error": "InternalError", "message": "see the server log"})


# -- static files ----------------------------------------------------------------------------


def static(rest: str) -> Response:
    if rest in ("", "/", "/index.html"):
        name = "index.html"
    elif rest.startswith("/static/"):
        name = unquote(rest[len("/static/") :])
    else:
        raise UiError(404, "NoSuchPath", "no such page")
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise UiError(404, "NoSuchPath", "no such file")
    path = STATIC_DIR / name
    if not path.is_file():
        raise UiError(404, "NoSuchPath", "no such file")
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype.endswith("javascript"):
        ctype += "; charset=utf-8"
    return Response(200, [("Content-Type", ctype), *PAGE_HEADERS], path.read_bytes())


def favicon(request: Request) -> Response:
    """The node's icon, also at ``/favicon.ico`` (see endpoints.browser_shortcut)."""
    body = (STATIC_DIR / "favicon.ico").read_bytes()
    headers = [
        ("Content-Type", "image/x-icon"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "public, max-age=86400"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return Response(200, headers, b"" if request.method == "HEAD" else body)


# -- JSON calls ------------------------------------------------------------------------------


async def api(request: Request, app: S3App, rest: str) -> Response:
    parts = [unquote(p) for p in rest.strip("/").split("/")]
    service = app.service
    if parts == ["session"]:
        return await session_call(request, service)
    current = await _signed_in(request, service)
    if parts[0] != "buckets":
        raise UiError(404, "NoSuchEndpoint", f"no {request.method} {request.raw_path}")
    return await bucket_call(request, service, current, parts[1:])


async def _signed_in(request: Request, service: Service) -> session.Session:
    try:
        current = await session.current(request, service.config.primary_dir, service.users)
    except session.CsrfError as e:
        raise UiError(403, "InvalidCSRFToken", str(e)) from None
    if current is None:
        raise UiError(401, "NotSignedIn", "sign in first")
    return current


async def bucket_call(
    request: Request, service: Service, current: session.Session, rest: list[str]
) -> Response:
    method = request.method
    if not rest:
        if method == "GET":
            return json_response(200, await objects.list_buckets(service, current))
        if method == "POST":
            name = str((await read_json(request, 4096)).get("name", ""))
            return json_response(201, await objects.create_bucket(service, current, name))
        raise UiError(405, "MethodNotAllowed", f"{method} not allowed here")
    bucket = rest[0]
    if len(rest) == 1 and method == "DELETE":
        return json_response(200, await objects.delete_bucket(service, current, bucket))
    what = rest[1] if len(rest) == 2 else None
    if what == "objects" and method == "GET":
        return json_response(200, await objects.list_objects(service, current, bucket, request))
    if what == "object" and method in ("GET", "HEAD"):
        return await objects.download(service, current, bucket, request)
    if what == "object" and method == "PUT":
        return json_response(200, await objects.upload(service, current, bucket, request))
    if what == "object" and method == "DELETE":
        return json_response(200, await objects.delete(service, current, bucket, request))
    if what == "info" and method == "GET":
        return json_response(200, await objects.info(service, current, bucket, request))
    if what == "preview" and method == "GET":
        return await objects.preview(service, current, bucket, request)
    if what == "share" and method == "POST":
        data = await read_json(request, 8192)
        return json_response(200, await objects.share(service, current, bucket, request, data))
    if what == "delete" and method == "POST":
        request.bucket = bucket  # for the request log
        data = await read_json(request, 2 * 1024 * 1024)
        return json_response(200, await objects.delete_many(service, current, bucket, data))
    raise UiError(404, "NoSuchEndpoint", f"no {method} {request.raw_path}")


async def read_json(request: Request, limit: int) -> dict:
    """A small JSON object body. Demanding application/json also stops a plain HTML form on
    another site from posting here (that would need a CORS preflight, which never passes)."""
    if "application/json" not in request.headers.get("content-type", ""):
        raise UiError(415, "UnsupportedMediaType", "send application/json")
    body = bytearray()
    while True:
        message = await request.receive()
        body += message.get("body", b"")
        if len(body) > limit:
            raise UiError(413, "EntityTooLarge", f"request body over {limit} bytes")
        if not message.get("more_body"):
            break
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):  # "[[[[...": deeper than json's recursion limit
        raise UiError(400, "MalformedJSON", "request body is not JSON") from None
    if not isinstance(data, dict):
        raise UiError(400, "MalformedJSON", "request body must be a JSON object")
    return data


# -- sign in, who am I, sign out ---------------------------------------------------------------


async def session_call(request: Request, service: Service) -> Response:
    if request.method == "POST":
        return await sign_in(request, service)
    current = await _signed_in(request, service)
    if request.method == "GET":
        return json_response(200, whoami(service, current))
    if request.method == "DELETE":
        return json_response(
            200, {"signed_out": True}, [("Set-Cookie", session.clear_cookie(request))]
        )
    raise UiError(405, "MethodNotAllowed", f"{request.method} not allowed here")


def whoami(service: Service, current: session.Session) -> dict:
    key = session.node_key(service.config.primary_dir)
    return {
        "user": current.user,
        "access_key": current.access_key,
        "root": current.is_root,
        "expires": current.expires,
        "csrf": session.csrf_token(key, current.token),
    }


def _same_origin(request: Request) -> bool:
    """Browsers send Origin on every POST; one naming another host is a cross-site post."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return origin.split("://", 1)[-1] == request.host


async def sign_in(request: Request, service: Service) -> Response:
    if not _same_origin(request):
        raise UiError(403, "CrossOrigin", "sign-in must come from this node's own page")
    client = request.client.rsplit(":", 1)[0]
    _check_failures(client)
    data = await read_json(request, MAX_SIGNIN_BODY)
    access_key = str(data.get("access_key", "")).strip()
    secret_key = str(data.get("secret_key", ""))
    request.access_key = access_key or None  # the claimed key, for the request log
    user = None
    if access_key:
        user = await asyncio.wait_for(service.users.lookup(access_key), INDEX_TIMEOUT)
    if user is None or not same(user.secret_key, secret_key):
        _note_failure(client)
        raise UiError(401, "InvalidCredentials", "wrong access key or secret key")
    _failures.pop(client, None)
    request.user = user.name
    key = session.node_key(service.config.primary_dir)
    token = session.issue(key, access_key, user.secret_key)
    current = session.Session(
        access_key, user.name, int(time.time()) + session.SESSION_SECONDS, token
    )
    return json_response(
        200, whoami(service, current), [("Set-Cookie", session.set_cookie(request, token))]
    )


def _check_failures(client: str) -> None:
    start, count = _failures.get(client, (0.0, 0))
    if count >= MAX_FAILURES and time.monotonic() - start < FAILURE_WINDOW:
        raise UiError(429, "TooManyAttempts", "too many failed sign-ins; wait a few minutes")


def _note_failure(client: str) -> None:
    now = time.monotonic()
    start, count = _failures.get(client, (now, 0))
    if now - start >= FAILURE_WINDOW:
        start, count = now, 0
    if len(_failures) > 10_000:
        _failures.clear()
    _failures[client] = (start, count + 1)
