"""The admin JSON API under ``/_holdfast/api/``: what the admin UI and scripts build on.

Every call needs an administrator. Today that is the root user, proved with an ordinary
SigV4 signature (any SDK's signer works, service ``s3``); the admin UI adds its own
session check by appending to :data:`AUTHENTICATORS` (a function that returns the user name
for a request carrying a valid session cookie and, for anything but GET, a valid CSRF
token; or None). docs/operations.md describes each call.

Only the users calls touch the index, and they time out (503 ``IndexUnavailable``) rather
than hang when it is locked; the rest read the ops directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from holdfast.consttime import same
from holdfast.errors import S3Error
from holdfast.index.errors import Conflict, IndexUnavailable, NotEmpty
from holdfast.ops.requestlog import LogQuery, page_cursor, parse_cursor, parse_when, search
from holdfast.ops.timeseries import FILE_NAME, chart, load
from holdfast.ops.ui import session as ui_session
from holdfast.s3.auth import verify_request
from holdfast.s3.http import Request, Response, json_response
from holdfast.service.users import ROOT_USER, validate_user_name

if TYPE_CHECKING:
    from holdfast.ops.runtime import OpsRuntime
    from holdfast.s3.app import S3App

MAX_BODY = 64 * 1024
INDEX_TIMEOUT = 10.0
SEARCH_TIMEOUT = 30.0
MAX_RESULTS = 1000


@dataclass(frozen=True)
class Identity:
    """Who made an admin call, and what their signature says the body hashes to."""

    user: str
    payload_sha256: str | None = None


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# -- authentication ----------------------------------------------------------------------


def sigv4_root(request: Request, rt: OpsRuntime) -> Identity | None:
    """The root user, if the request is SigV4-signed with the root keys."""
    if "authorization" not in request.headers and "X-Amz-Signature" not in request.query:
        return None
    root = rt.root

    def secret(access_key: str) -> str | None:
        return root.secret_key if same(access_key, root.access_key) else None

    try:
        result = verify_request(
            request.method, request.raw_path, request.raw_query, request.headers, secret
        )
    except S3Error as e:
        raise ApiError(403, e.code, e.message) from None
    request.access_key, request.user = result.access_key, ROOT_USER  # for the request log
    return Identity(ROOT_USER, result.content_sha256)


# Tried in order; the first to return a user name authenticates the request.
AUTHENTICATORS: list[Callable[[Request, OpsRuntime], Identity | None]] = [
    sigv4_root,
    ui_session.api_identity,  # a root admin UI session (holdfast/ops/ui/session.py)
]


async def authenticate(request: Request, rt: OpsRuntime) -> Identity:
    for authenticator in AUTHENTICATORS:
        identity = authenticator(request, rt)
        if inspect.isawaitable(identity):  # one that reads the index (a UI session's user)
            identity = await identity
        if identity is not None:
            return identity
    raise ApiError(401, "AccessDenied", "sign the request with the root keys (SigV4) or sign in")


async def read_json(request: Request, identity: Identity) -> dict:
    body = bytearray()
    while True:
        message = await request.receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            raise ApiError(413, "EntityTooLarge", f"request body over {MAX_BODY} bytes")
        if not message.get("more_body"):
            break
    claimed = identity.payload_sha256 or ""
    if re.fullmatch(r"[0-9a-f]{64}", claimed) and hashlib.sha256(body).hexdigest() != claimed:
        raise ApiError(400, "XAmzContentSHA256Mismatch", "body does not match x-amz-content-sha256")
    if not body:
        return {}
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # "[[[[...": deeper than json's recursion limit
        raise ApiError(400, "MalformedJSON", "request body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "MalformedJSON", "request body must be a JSON object")
    return data


# -- routes ------------------------------------------------------------------------------


async def handle(request: Request, app: S3App, rt: OpsRuntime) -> Response:
    try:
        identity = await authenticate(request, rt)
        parts = [
            unquote(p) for p in request.raw_path[len("/_holdfast/api/") :].strip("/").split("/")
        ]
        return await route(request, app, rt, identity, parts)
    except ApiError as e:
        return json_response(e.status, {"error": e.code, "message": e.message})


async def route(
    request: Request, app: S3App, rt: OpsRuntime, identity: Identity, parts: list[str]
) -> Response:
    method = request.method
    if parts == ["timeseries"] and method == "GET":
        return await timeseries(request, rt)
    if parts == ["requests"] and method == "GET":
        return await requests(request, rt)
    if parts == ["alerts"] and method == "GET":
        return await alerts(request, rt)
    if parts[0] == "users":
        return await users(request, app, rt, identity, parts[1:])
    if parts[0] == "objects" and len(parts) == 2:
        return await objects(request, app, identity, parts[1])
    if parts == ["stores"] and method == "GET":
        return await stores(app)
    if parts == ["rebalance"] and method == "GET":
        return await rebalance(app)
    raise ApiError(404, "NoSuchEndpoint", f"no {method} {request.raw_path}")


async def _in_thread(timeout: float, fn: Callable, *args: object) -> object:
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout)
    except TimeoutError:
        raise ApiError(503, "Timeout", f"no answer within {timeout:g}s") from None


async def timeseries(request: Request, rt: OpsRuntime) -> Response:
    range_name = request.query.get("range", "1h")
    series, _ = await _in_thread(10.0, load, rt.config.ops_path / FILE_NAME)
    try:
        return json_response(200, chart(series, range_name))
    except ValueError as e:
        raise ApiError(400, "InvalidArgument", str(e)) from None


def log_query(params: dict[str, str]) -> LogQuery:
    """A LogQuery from API or CLI parameters; ApiError on a bad value."""
    try:
        limit = int(params.get("limit") or 100)
        since = parse_when(params["since"]) if params.get("since") else None
        until = parse_when(params["until"]) if params.get("until") else None
        before = parse_cursor(params["before"]) if params.get("before") else None
    except ValueError as e:
        raise ApiError(400, "InvalidArgument", str(e)) from None
    status = params.get("status") or None
    if status and not re.fullmatch(r"[1-5]([0-9]{2}|xx)", status.lower()):
        raise ApiError(
            400, "InvalidArgument", "status is a code such as 404 or a class such as 5xx"
        )
    return LogQuery(
        since=since,
        until=until,
        bucket=params.get("bucket") or None,
        key_prefix=params.get("key") or None,
        access_key=params.get("access_key") or None,
        status=status,
        request_id=params.get("request_id") or None,
        operation=params.get("operation") or None,
        limit=max(1, min(limit, MAX_RESULTS)),
        before=before,
    )


async def requests(request: Request, rt: OpsRuntime) -> Response:
    query = log_query(request.query)
    records = await _in_thread(SEARCH_TIMEOUT, search, rt.log_dir, query)
    return json_response(
        200,
        {
            "records": records,
            "count": len(records),
            "limit": query.limit,
            "next": page_cursor(records, query),  # pass as ``before`` for the next page
        },
    )


async def alerts(request: Request, rt: OpsRuntime) -> Response:
    try:
        limit = max(1, min(int(request.query.get("limit") or 50), 1000))
    except ValueError:
        raise ApiError(400, "InvalidArgument", "limit must be a number") from None
    recent = await _in_thread(10.0, rt.outbox.recent, limit)
    return json_response(200, {"alerts": recent})


def _user_view(u) -> dict:
    return {
        "name": u.name,
        "access_key": u.access_key,
        "disabled": u.disabled,
        "created": u.created,
        "root": False,
    }


async def users(
    request: Request, app: S3App, rt: OpsRuntime, identity: Identity, rest: list[str]
) -> Response:
    service = app.service
    method = request.method

    async def index_call(fn: Callable, *args: object) -> object:
        try:
            return await asyncio.wait_for(fn(*args), INDEX_TIMEOUT)
        except TimeoutError:
            raise ApiError(503, "IndexUnavailable", "the index did not answer in time") from None
        except IndexUnavailable as e:
            raise ApiError(503, "IndexUnavailable", str(e)) from None

    if not rest and method == "GET":
        records = await index_call(service.users.index.list_users)
        root = {
            "name": ROOT_USER,
            "access_key": rt.root.access_key,
            "disabled": False,
            "created": None,
            "root": True,
        }
        return json_response(200, {"users": [root, *(_user_view(u) for u in records)]})
    if not rest and method == "POST":
        name = str((await read_json(request, identity)).get("name", ""))
        _check_name(name)
        try:
            user = await index_call(service.users.add, name)
        except Conflict:
            raise ApiError(409, "UserExists", f"user {name!r} already exists") from None
        return json_response(201, {**_user_view(user), "secret_key": user.secret_key})
    if not rest:
        raise ApiError(405, "MethodNotAllowed", f"{method} not allowed here")
    name = rest[0]
    if name == ROOT_USER:
        raise ApiError(400, "InvalidArgument", "the root user is configured outside the index")
    if len(rest) == 2 and rest[1] in ("disable", "enable") and method == "POST":
        found = await index_call(service.users.set_disabled, name, rest[1] == "disable")
    elif len(rest) == 1 and method == "DELETE":
        try:
            found = await index_call(service.users.remove, name)
        except NotEmpty as e:
            raise ApiError(
                409, "UserOwnsBuckets", f"user {name!r} still owns buckets: {e}"
            ) from None
    else:
        raise ApiError(404, "NoSuchEndpoint", f"no {method} {request.raw_path}")
    if not found:
        raise ApiError(404, "NoSuchUser", f"no user {name!r}")
    return json_response(
        200, {"name": name, "result": rest[1] + "d" if len(rest) == 2 else "removed"}
    )


def _check_name(name: str) -> None:
    try:
        validate_user_name(name)
    except ValueError as e:
        raise ApiError(400, "InvalidArgument", str(e)) from None


# -- copies of objects: where / push (docs/stores.md) --------------------------------------


async def objects(request: Request, app: S3App, identity: Identity, op: str) -> Response:
    """``GET objects/where?bucket=B&key=K[&verify=0]``: every copy of an object and whether
    it meets its policy; ``POST objects/push`` with ``{"bucket", "key"}`` or ``{"bucket",
    "prefix"}``: re-check and re-make every copy at the repair rate."""
    from holdfast.workers.store_commands import push, where

    node = app.service.node
    if op == "where" and request.method == "GET":
        bucket, key = request.query.get("bucket"), request.query.get("key")
        if not bucket or key is None:
            raise ApiError(400, "InvalidArgument", "give bucket and key")
        verify = request.query.get("verify", "1") != "0"
        try:
            found = await asyncio.wait_for(
                node.run(where, node.config, node.blocking, bucket, key, verify, node.stores),
                SEARCH_TIMEOUT,
            )
        except LookupError as e:
            raise ApiError(404, "NoSuchKey", str(e)) from None
        except TimeoutError:
            raise ApiError(503, "Timeout", "the copies did not answer in time") from None
        return json_response(200, found)
    if op == "push" and request.method == "POST":
        body = await read_json(request, identity)
        bucket, key, prefix = body.get("bucket"), body.get("key"), body.get("prefix")
        if not isinstance(bucket, str) or (key is None) == (prefix is None):
            raise ApiError(400, "InvalidArgument", "give bucket and one of key or prefix")
        try:
            result = await asyncio.wait_for(
                node.run(
                    push,
                    node.blocking,
                    bucket,
                    key,
                    prefix,
                    node.stores,
                    node.policies.policy_for,
                ),
                SEARCH_TIMEOUT,
            )
        except LookupError as e:
            raise ApiError(404, "NoSuchKey", str(e)) from None
        except TimeoutError:
            raise ApiError(503, "IndexUnavailable", "the index did not answer in time") from None
        return json_response(202, result)
    raise ApiError(404, "NoSuchEndpoint", f"no {request.method} {request.raw_path}")


async def rebalance(app: S3App) -> Response:
    """The cluster's rebalance: its progress as the index has it (docs/cluster.md,
    *Rebalancing*); phase "idle" when none was ever requested. With it the transfer queue
    every rebalance, drain and repair copy goes through: the cluster's slots in use and its
    cap (from the index), and what this node's leading process admitted per kind (from its
    published status; None when this node does not lead the background work)."""
    from holdfast.cluster import rebalance_state as rbs
    from holdfast.cluster.rails import SETTINGS_META, Settings
    from holdfast.workers.health import read_published, status_path

    index = app.service.node.index

    async def read() -> tuple:
        return (
            await index.get_meta(rbs.STATE_KEY),
            await index.get_meta(SETTINGS_META),
            await index.transfer_slots(),
        )

    try:
        raw, settings, slots = await asyncio.wait_for(read(), INDEX_TIMEOUT)
    except (TimeoutError, IndexUnavailable) as e:
        raise ApiError(503, "IndexUnavailable", f"the index did not answer: {e}") from None
    published = read_published(status_path(app.service.config.state_dir)) or {}
    queue = published.get("transfers") or {}
    transfers = {
        "cap": Settings.from_text(settings).transfer_cap,
        "slots_used": len(slots),
        "slots": [
            {
                "slot": s.slot,
                "holder": s.holder,
                "kind": s.kind,
                "target": s.target,
                "expires_in": s.expires_in,
            }
            for s in slots
        ],
        "admitted": queue.get("admitted"),
        "bytes_per_second": queue.get("bytes_per_second"),
        "busiest_window_bytes": queue.get("busiest_window_bytes"),
        "slot_waits": queue.get("slot_waits"),
    }
    return json_response(
        200,
        {"rebalance": rbs.progress(rbs.RebalanceState.from_text(raw)), "transfers": transfers},
    )


async def stores(app: S3App) -> Response:
    """The node's stores, their kind, where they are and their health (never credentials)."""
    snapshot = app.service.node.drives.snapshot
    return json_response(200, {"stores": await asyncio.to_thread(snapshot)})
