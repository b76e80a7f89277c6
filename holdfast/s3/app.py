"""The S3 front: ASGI entry point, addressing, authentication, dispatch, error rendering.

Paths under ``/_holdfast/`` are the node's own (health, status, metrics) and are answered
before anything touches the index or the stores; every other request is S3.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from urllib.parse import unquote_to_bytes

from holdfast.config import Config
from holdfast.errors import S3Error
from holdfast.index.errors import IndexFull, IndexUnavailable
from holdfast.ops import endpoints as ops_endpoints
from holdfast.ops.metrics import PRESIGNED_CACHE
from holdfast.ops.requestlog import iso_utc
from holdfast.s3 import access, cors, xml
from holdfast.s3 import website as website_pages
from holdfast.s3.auth import AuthResult, is_anonymous, verify_request
from holdfast.s3.auth_v2 import is_v2, verify_v2
from holdfast.s3.http import (
    ABORT_EXTENSION,
    Receive,
    Request,
    Response,
    Send,
    parse_headers,
    parse_query,
)
from holdfast.s3.ops import access as access_ops
from holdfast.s3.ops import (
    attributes,
    buckets,
    configs,
    listing,
    multipart,
    objectlock,
    objects,
    post,
    sse,
    tagging,
    versions,
    website,
)
from holdfast.s3.ops import lifecycle as lifecycle_ops
from holdfast.s3.ops import notify as notify_ops
from holdfast.s3.ops.common import Context, reject_nul
from holdfast.s3.ops.objects import parse_copy_source
from holdfast.s3.presign_cache import PresignedCache
from holdfast.s3.router import Operation, resolve
from holdfast.service import Service
from holdfast.service.objects import DataLost
from holdfast.service.users import UserNotCached
from holdfast.workers.runner import BackgroundWorkers

log = logging.getLogger("holdfast.s3")

Handler = Callable[[Context], Awaitable[Response]]

HANDLERS: dict[Operation, Handler] = {
    Operation.LIST_BUCKETS: buckets.list_buckets,
    Operation.CREATE_BUCKET: buckets.create_bucket,
    Operation.HEAD_BUCKET: buckets.head_bucket,
    Operation.DELETE_BUCKET: buckets.delete_bucket,
    Operation.GET_BUCKET_LOCATION: buckets.get_bucket_location,
    Operation.LIST_OBJECTS: listing.list_objects,
    Operation.LIST_OBJECTS_V2: listing.list_objects_v2,
    Operation.LIST_MULTIPART_UPLOADS: multipart.list_multipart_uploads,
    Operation.DELETE_OBJECTS: objects.delete_objects,
    Operation.PUT_OBJECT: objects.put_object,
    Operation.COPY_OBJECT: objects.copy_object,
    Operation.GET_OBJECT: objects.get_object,
    Operation.HEAD_OBJECT: objects.head_object,
    Operation.DELETE_OBJECT: objects.delete_object,
    Operation.CREATE_MULTIPART_UPLOAD: multipart.create_multipart_upload,
    Operation.UPLOAD_PART: multipart.upload_part,
    Operation.UPLOAD_PART_COPY: multipart.upload_part_copy,
    Operation.COMPLETE_MULTIPART_UPLOAD: multipart.complete_multipart_upload,
    Operation.ABORT_MULTIPART_UPLOAD: multipart.abort_multipart_upload,
    Operation.LIST_PARTS: multipart.list_parts,
    Operation.GET_OBJECT_ATTRIBUTES: attributes.get_object_attributes,
    **configs.HANDLERS,
    Operation.PUT_BUCKET_ENCRYPTION: sse.put_bucket_encryption,
    Operation.GET_BUCKET_ENCRYPTION: sse.get_bucket_encryption,
    Operation.DELETE_BUCKET_ENCRYPTION: sse.delete_bucket_encryption,
    **tagging.HANDLERS,
    **versions.HANDLERS,
    **access_ops.HANDLERS,
    **website.HANDLERS,
    **objectlock.HANDLERS,
    **notify_ops.HANDLERS,
    **lifecycle_ops.HANDLERS,
}


def host_bucket(host: str, domains: list[str]) -> str | None:
    """The bucket named by a virtual-host-style Host header (``<bucket>.<domain>``)."""
    hostname = (host.rsplit(":", 1)[0] if not host.endswith("]") else host).lower()
    for domain in domains:
        suffix = "." + domain
        if hostname.endswith(suffix) and len(hostname) > len(suffix):
            return hostname[: -len(suffix)]
    return None


def split_address(host: str, raw_path: str, domains: list[str]) -> tuple[str | None, str | None]:
    """(bucket, key) from virtual-host-style ``<bucket>.<domain>`` or from the path."""
    try:
        path = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.", status=400) from None
    bucket = host_bucket(host, domains)
    if bucket is not None:
        key = path[1:] if path.startswith("/") else path
        return bucket, key or None
    trimmed = path[1:] if path.startswith("/") else path
    if not trimmed:
        return None, None
    bucket, _, key = trimmed.partition("/")
    return bucket, key or None


def reject_nul_text(request: Request) -> None:
    """A NUL in the bucket, the key or any query parameter (prefix, marker, upload id, ...)
    is an InvalidArgument for every operation, whatever the engine (see ops.common.reject_nul)."""
    reject_nul(request.bucket or "", "A bucket name")
    reject_nul(request.key or "", "An object key")
    for name, value in request.query.items():
        reject_nul(name, "A query parameter")
        reject_nul(value, f"The query parameter {name!r}")


def _id_prefix() -> str:
    return f"{os.getpid() & 0xFFFF:04X}{secrets.randbits(24):06X}"


_ids = itertools.count(1)
_ID_PREFIX = _id_prefix()


def _new_process() -> None:
    """Workers are forked from one process that imported this module (the node's forkserver,
    holdfast/server.py): each takes a prefix of its own, or two would give the same ids."""
    global _ids, _ID_PREFIX
    _ids, _ID_PREFIX = itertools.count(1), _id_prefix()


os.register_at_fork(after_in_child=_new_process)


def next_request_id() -> str:
    """Unique per node: a per-process random prefix and a counter (cheaper than a fresh
    random token on every request)."""
    return f"{_ID_PREFIX}{next(_ids):08X}"


class S3App:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._service: Service | None = None
        self.presigned = PresignedCache(config.presign_cache_size)
        self.workers: BackgroundWorkers | None = None

    @property
    def service(self) -> Service:
        if self._service is None:
            self._service = Service(self.config)
        return self._service

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = next_request_id()
        try:
            request = self._request(scope, receive, request_id)
        except S3Error as e:
            # The request could not even be read; its body (if any) is unread: close.
            response = self._error(e, scope.get("path", "/"), request_id)
            response.headers.append(("Connection", "close"))
            await self._send(send, response, "GET", request_id)
            return
        site = website.website_bucket(request.host, self.config.website_domains)
        if site is not None:  # a static website: every path is the site's
            response = await self._website(request, site)
        elif request.raw_path.startswith("/_holdfast/") or request.raw_path == "/_holdfast":
            response = await ops_endpoints.handle(request, self)
        elif (shortcut := self._browser_shortcut(request)) is not None:
            response = shortcut
        else:
            response = await self._s3(request)
        if request.body_held_back():
            response.headers.append(("Connection", "close"))
        abort = scope.get("extensions", {}).get(ABORT_EXTENSION)
        with ops_endpoints.observe(request, response):  # request log + metrics, deferred
            await self._send(send, response, request.method, request_id, request, abort)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.service.start()
                    self.workers = BackgroundWorkers(self.service)
                    self.workers.start()
                except Exception as e:  # a broken data dir must stop the worker loudly
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await ops_endpoints.start(self)  # never raises: ops must not stop S3
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await ops_endpoints.stop()
                if self.workers is not None:
                    await self.workers.stop()
                if self._service is not None:
                    await self._service.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _browser_shortcut(self, request: Request) -> Response | None:
        """A person's browser, not an S3 client: the favicon and the UI for ``/``. Only for
        path-style requests, so ``<bucket>.<domain>/favicon.ico`` stays an object."""
        if request.raw_path not in ("/", "/favicon.ico"):
            return None
        if host_bucket(request.host, self.config.domains) is not None:
            return None
        return ops_endpoints.browser_shortcut(request)

    def _request(self, scope: dict, receive: Receive, request_id: str) -> Request:
        raw_path = scope.get("raw_path")
        raw_path = raw_path.decode("latin-1") if raw_path else scope["path"]
        raw_path = raw_path.split("?", 1)[0]
        raw_query = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client")
        request = Request(
            method=scope["method"],
            raw_path=raw_path,
            raw_query=raw_query,
            query=parse_query(raw_query),
            headers=parse_headers(scope["headers"], self.config.max_header_bytes),
            receive=receive,
            request_id=request_id,
            client=f"{client[0]}:{client[1]}" if client else "",
            scheme=scope.get("scheme", "http"),
        )

        async def receive_body() -> dict:
            request.body_requested = True
            return await receive()

        request.receive = receive_body
        return request

    async def _s3(self, request: Request) -> Response:
        resource = request.raw_path
        # Background scrub and repair yield to every client request, including the ones
        # that never touch a blob file (inline objects, listings).
        self.service.node.foreground.touch()
        try:
            response = await self._dispatch(request)
        except S3Error as e:
            response = self._error(e, resource, request.request_id)
        except DataLost as e:  # before any byte went out (an inline object, a copy's source)
            log_data_lost(e, request, status_sent=500, bytes_sent=0)
            error = S3Error("InternalError", f"The object's stored bytes are damaged: {e}")
            return self._error(error, resource, request.request_id)
        except IndexUnavailable as e:  # did nothing; SDKs retry a 503
            log.warning("index unavailable in %s %s: %s", request.method, resource, e)
            error = S3Error("ServiceUnavailable", "The index is unavailable; retry.", status=503)
            return self._error(error, resource, request.request_id)
        except IndexFull as e:
            error = S3Error("InsufficientStorage", str(e), status=507)
            return self._error(error, resource, request.request_id)
        except Exception:
            log.exception("internal error in %s %s", request.method, resource)
            return self._error(S3Error("InternalError"), resource, request.request_id)
        return self._with_cors(request, response)

    async def _website(self, request: Request, bucket: str) -> Response:
        """A website endpoint request (holdfast/s3/ops/website.py): HTML errors, even for
        the failures of the index that S3 requests answer in XML."""
        self.service.node.foreground.touch()
        try:
            return await website.serve(self.service, request, bucket)
        except IndexUnavailable as e:
            log.warning("index unavailable in website %s %s: %s", request.method, bucket, e)
            status, code, message = 503, "ServiceUnavailable", "The index is unavailable; retry."
        except Exception:
            log.exception("internal error in website %s %s", request.method, bucket)
            status, code, message = 500, "InternalError", "We encountered an internal error."
        body = website_pages.error_page(status, code, message, request.request_id)
        return Response(status, [website.HTML_TYPE], body)

    @staticmethod
    def _with_cors(request: Request, response: Response) -> Response:
        """CORS headers on an actual request from an origin that one of the bucket's rules
        allows (holdfast/s3/cors.py); none otherwise."""
        origin = request.headers.get("origin")
        if request.cors is not None and origin:
            response.headers.extend(cors.actual(request.cors, origin, request.method))
        return response

    async def _preflight(self, request: Request) -> Response:
        """An OPTIONS preflight, answered from the bucket's CORS rules (no signature: browsers
        never sign one). 403 when no rule allows it."""
        state = await access.load(self.service.node.index, request.bucket or "")
        headers = cors.preflight(
            state.docs.get(access.CORS),
            request.headers.get("origin"),
            request.headers.get("access-control-request-method"),
            request.headers.get("access-control-request-headers"),
        )
        request.decision = "CORS preflight allowed by the bucket's CORS rules"
        return Response(200, headers)

    async def _dispatch(self, request: Request) -> Response:
        request.bucket, request.key = split_address(
            request.host, request.raw_path, self.config.domains
        )
        reject_nul_text(request)
        if request.method == "OPTIONS" and request.bucket is not None:
            return await self._preflight(request)
        copy = "x-amz-copy-source" in request.headers
        op = resolve(request.method, request.bucket, request.key, request.query, copy)
        service = self.service
        if post.is_post_object(request):  # signed by its form's policy, not by headers
            return await post.post_object(Context(service, request, None))
        auth: AuthResult | None = None
        if not is_anonymous(request.headers, request.query):
            try:
                auth = self._authenticate(request, service, service.users.secret_for)
            except UserNotCached as e:  # the index is read off the signature check's path
                await service.users.lookup(e.access_key)
                auth = self._authenticate(request, service, service.users.cached_secret)
            user = await service.users.lookup(auth.access_key)
            if user is None:
                raise S3Error("InvalidAccessKeyId")
            request.access_key, request.user = auth.access_key, user.name
        if op is Operation.NOT_IMPLEMENTED:
            raise S3Error("NotImplemented", "This operation or sub-resource is not implemented.")
        if op is Operation.METHOD_NOT_ALLOWED:
            raise S3Error("MethodNotAllowed", Method=request.method, ResourceType="OBJECT")
        await self._authorize(request, op, service)
        return await HANDLERS[op](Context(service, request, auth))

    async def _authorize(self, request: Request, op: Operation, service: Service) -> None:
        """Ask the one access decision (holdfast/s3/access.py) about this request, and about
        a copy's source; AccessDenied unless it allows. Records the reason for the log."""
        bucket_access = None
        if request.bucket is not None and op not in access.NO_BUCKET_OPERATIONS:
            if op in access.OBJECT_READS and request.key and "versionId" not in request.query:
                bucket_access, request.object = await access.load_with_object(
                    service.node.index, request.bucket, request.key
                )
                request.object_read = True
            else:
                bucket_access = await access.load(service.node.index, request.bucket)
            request.bucket_record = bucket_access.bucket
            request.owner = bucket_access.owner
            request.cors = bucket_access.docs.get(access.CORS)
            request.bucket_configs = bucket_access.docs
        decision = await access.decide_object(
            service.node.index,
            request,
            access.action_of(op, request.query),
            request.bucket,
            request.key,
            bucket_access,
            request.query.get("versionId"),
        )
        request.decision = decision.reason
        if not decision.allowed:
            raise S3Error("AccessDenied")
        if op in (Operation.COPY_OBJECT, Operation.UPLOAD_PART_COPY):
            src_bucket, src_key, src_version = parse_copy_source(
                request.headers["x-amz-copy-source"]
            )
            src_action = "s3:GetObjectVersion" if src_version else "s3:GetObject"
            source_access = await access.load(service.node.index, src_bucket)
            request.source_owner = source_access.owner
            decision = await access.decide_object(
                service.node.index,
                request,
                src_action,
                src_bucket,
                src_key,
                source_access,
                src_version,
            )
            if not decision.allowed:
                request.decision = f"{decision.reason} (copy source)"
                raise S3Error("AccessDenied")

    def _authenticate(
        self, request: Request, service: Service, secret_for: Callable[[str], str | None]
    ) -> AuthResult:
        if is_v2(request.headers, request.query):
            return verify_v2(
                request.method,
                request.raw_path,
                request.raw_query,
                request.headers,
                request.query,
                secret_for,
                bucket_in_host=host_bucket(request.host, self.config.domains),
            )
        key = self.presigned.key(request)
        if key is not None:
            cached = self.presigned.get(key, time.time(), secret_for)
            PRESIGNED_CACHE.labels("miss" if cached is None else "hit").inc()
            if cached is not None:
                return cached
        auth = verify_request(
            request.method,
            request.raw_path,
            request.raw_query,
            request.headers,
            secret_for,
        )
        if key is not None:
            secret = secret_for(auth.access_key)
            if secret is not None:
                self.presigned.put(key, request, auth, secret)
        return auth

    def _error(self, error: S3Error, resource: str, request_id: str) -> Response:
        headers = [(k, v) for k, v in error.headers.items()]
        if error.status == 304:
            return Response(304, headers)
        body = xml.error_xml(error.code, error.message, resource, request_id, error.extra)
        headers.append(("Content-Type", "application/xml"))
        return Response(error.status, headers, body)

    async def _send(
        self,
        send: Send,
        response: Response,
        method: str,
        request_id: str,
        request: Request | None = None,
        abort: Callable[[], None] | None = None,
    ) -> None:
        headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in response.headers]
        headers.append((b"x-amz-request-id", request_id.encode()))
        headers.append((b"x-amz-id-2", request_id.encode()))
        headers.append((b"server", b"Holdfast"))
        body = response.body
        if isinstance(body, bytes):
            if not any(n.lower() == b"content-length" for n, _ in headers):
                headers.append((b"content-length", str(len(body)).encode()))
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
            return
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        sent = 0
        try:
            async for chunk in body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += len(chunk)
        except DataLost as e:
            # Headers are gone already: the only honest signal left is to cut the connection
            # short of Content-Length, so the client cannot mistake this for the object. The
            # request log and the metrics record a 500 (DataLost, outcome "aborted").
            response.failure = "DataLost"
            if request is not None:
                log_data_lost(e, request, status_sent=response.status, bytes_sent=sent)
            if abort is None:
                raise  # no quiet way to cut the connection: uvicorn closes it
            abort()
            return
        await send({"type": "http.response.body", "body": b""})


def log_data_lost(e: DataLost, request: Request, **extra: object) -> None:
    """One JSON line per read that met a block with no good copy: when, which request and
    object, where, why, and what the client got; never a traceback."""
    log.error(
        "%s",
        json.dumps(
            {
                "time": iso_utc(time.time()),
                "level": "error",
                "event": "read_aborted",
                "reason": "no good copy",
                "request_id": request.request_id,
                "method": request.method,
                "bucket": e.bucket,
                "key": e.key,
                "offset": e.offset,
                **extra,
                "failures": e.failures[:4],
                "next_step": "restore the object from a backup, or delete it",
            }
        ),
    )


def create_app() -> S3App:
    """uvicorn factory: each worker process builds its app from the shared configuration."""
    return S3App(Config.from_env())
