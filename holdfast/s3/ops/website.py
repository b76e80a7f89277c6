"""Static websites: PutBucketWebsite/GetBucketWebsite/DeleteBucketWebsite, and the website
endpoint that serves a bucket as a site (docs/websites.md).

The endpoint is ``<bucket>.<website domain>`` (``--website-domain``, default
``s3-website.localhost``) on the S3 port. Its requests are anonymous whatever they carry:
each object is read only where the bucket's policy or an ACL lets everyone read it
(holdfast/s3/access.py decides, as for every request), so a site is public by policy, and the
public access block applies. Only GET and HEAD; errors are HTML pages (S3's layout), or the
bucket's error document with the error's status.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import unquote_to_bytes

from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord
from holdfast.s3 import access, website
from holdfast.s3.http import Request, Response
from holdfast.s3.ops.buckets import XML_TYPE, read_small_body
from holdfast.s3.ops.common import Context
from holdfast.s3.ops.conditions import raise_for_read_conditions
from holdfast.s3.ops.objects import object_response
from holdfast.s3.router import Operation
from holdfast.service import Service

HTML_TYPE = ("Content-Type", "text/html; charset=utf-8")
REDIRECT_HEADER = "x-amz-website-redirect-location"
# Request headers a website GET honours; anything else (a signature, SSE-C keys, checksum
# mode) is not the website's business.
KEPT_HEADERS = (
    "host",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "user-agent",
    "referer",
)


# -- the configuration ---------------------------------------------------------------------------


async def put_bucket_website(ctx: Context) -> Response:
    await access.load(ctx.service.node.index, ctx.bucket)
    site = website.parse_xml(await read_small_body(ctx))
    await ctx.service.buckets.set_config(
        ctx.user, ctx.bucket, access.WEBSITE, website.to_json(site)
    )
    return Response(200)


async def get_bucket_website(ctx: Context) -> Response:
    state = await access.load(ctx.service.node.index, ctx.bucket)
    text = state.docs.get(access.WEBSITE)
    if text is None:
        raise S3Error("NoSuchWebsiteConfiguration", BucketName=ctx.bucket)
    return Response(200, [XML_TYPE], website.render(website.from_json(text)))


async def delete_bucket_website(ctx: Context) -> Response:
    await ctx.service.buckets.set_config(ctx.user, ctx.bucket, access.WEBSITE, None)
    return Response(204)


HANDLERS = {
    Operation.PUT_BUCKET_WEBSITE: put_bucket_website,
    Operation.GET_BUCKET_WEBSITE: get_bucket_website,
    Operation.DELETE_BUCKET_WEBSITE: delete_bucket_website,
}


# -- the endpoint --------------------------------------------------------------------------------


def website_bucket(host: str, domains: list[str]) -> str | None:
    """The bucket a website request names (``<bucket>.<website domain>``), else None."""
    hostname = (host.rsplit(":", 1)[0] if not host.endswith("]") else host).lower()
    for domain in domains:
        suffix = "." + domain.lower()
        if hostname.endswith(suffix) and len(hostname) > len(suffix):
            return hostname[: -len(suffix)]
    return None


class WebError(Exception):
    """An error the website answers: status, S3 code, message, and extra lines."""

    def __init__(self, status: int, code: str, message: str, **details: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message
        self.details = list(details.items())
        self.missing = False  # the key does not exist (whatever the status says)

    @classmethod
    def of(cls, e: S3Error) -> WebError:
        return cls(e.status, e.code, e.message, **{k: str(v) for k, v in e.extra.items()})


def _redirect(status: int, where: str) -> Response:
    return Response(status, [("Location", where), ("Content-Length", "0")])


class Site:
    """One website request against one bucket."""

    def __init__(self, service: Service, request: Request, bucket: str) -> None:
        self.service = service
        self.bucket = bucket
        # Anonymous, with no query: the website reads objects, nothing else.
        headers = {k: v for k, v in request.headers.items() if k in KEPT_HEADERS}
        self.request = dataclasses.replace(
            request, query={}, raw_query="", headers=headers, bucket=bucket, key=None
        )
        self.original = request
        request.bucket = bucket  # for the request log
        self.state: access.BucketAccess | None = None

    async def serve(self) -> Response:
        request = self.original
        if request.method not in ("GET", "HEAD"):
            raise WebError(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
                Method=request.method,
                ResourceType="OBJECT",
            )
        try:
            self.state = await access.load(self.service.node.index, self.bucket)
        except S3Error as e:
            raise WebError.of(e) from None
        request.owner = self.state.owner
        text = self.state.docs.get(access.WEBSITE)
        if text is None:
            raise WebError(
                404,
                "NoSuchWebsiteConfiguration",
                "The specified bucket does not have a website configuration",
                BucketName=self.bucket,
            )
        site = website.from_json(text)
        try:
            path = unquote_to_bytes(request.raw_path).decode("utf-8")
        except UnicodeDecodeError:
            raise WebError(400, "InvalidURI", "Couldn't parse the specified URI.") from None
        key = path[1:] if path.startswith("/") else path
        scheme, host = request.scheme, request.host
        if site.redirect_all is not None:
            where = website.location(site.redirect_all, key, None, host, scheme)
            request.decision = "website: RedirectAllRequestsTo"
            return _redirect(301, where)
        rule = site.rule_for(key, None)
        if rule is not None:
            request.decision = "website: routing rule"
            where = website.location(rule.redirect, key, rule.prefix, host, scheme)
            return _redirect(rule.redirect.code or 301, where)
        try:
            return await self._page(site, key)
        except WebError as e:
            rule = site.rule_for(key, e.status)
            if rule is not None:
                request.decision = f"website: routing rule on {e.status}"
                where = website.location(rule.redirect, key, rule.prefix, host, scheme)
                return _redirect(rule.redirect.code or 301, where)
            if site.error_key is None or not 400 <= e.status < 500:
                raise
            return await self._error_document(site.error_key, e)

    async def _page(self, site: website.Website, key: str) -> Response:
        assert site.index_suffix is not None
        wanted = key + site.index_suffix if key == "" or key.endswith("/") else key
        try:
            return await self._object(wanted)
        except WebError as e:
            if not e.missing or wanted != key:
                raise
            # "/docs" with no object "docs" but a "docs/index.html": the folder, with its slash.
            try:
                await self._readable(key + "/" + site.index_suffix)
            except WebError:
                raise e from None
            return _redirect(302, "/" + key + "/")

    async def _readable(self, key: str) -> ObjectRecord:
        """The object at ``key`` if everyone may read it; else the WebError S3 answers: 403
        where reading is not allowed (and also for a missing key that everyone may not list,
        so a site does not tell which keys exist), 404 for a missing key otherwise."""
        assert self.state is not None
        self.request.key = self.original.key = key
        if len(key.encode()) > 1024:
            raise WebError(400, "KeyTooLongError", "Your key is too long.")
        decision = await access.decide_object(
            self.service.node.index, self.request, "s3:GetObject", self.bucket, key, self.state
        )
        self.original.decision = f"website: {decision.reason}"
        obj = await self.service.objects.find(self.bucket, key)
        if not decision.allowed:
            raise WebError(403, "AccessDenied", "Access Denied")
        if obj is None:
            listing = access.decide(
                access.request_of(self.request, "s3:ListBucket", self.bucket, None, self.state),
                self.state,
            )
            if listing.allowed:
                error = WebError(404, "NoSuchKey", "The specified key does not exist.", Key=key)
            else:
                error = WebError(403, "AccessDenied", "Access Denied")
            error.missing = True
            raise error
        return obj

    async def _object(self, key: str, conditions: bool = True) -> Response:
        obj = await self._readable(key)
        where = obj.headers.get(REDIRECT_HEADER)
        if where:
            return _redirect(301, where)
        ctx = Context(self.service, self.request, None)
        try:
            if conditions:
                raise_for_read_conditions(self.request.headers, obj)
            return await object_response(ctx, obj, head=self.original.method == "HEAD")
        except S3Error as e:
            if e.status == 304:
                raise
            raise WebError.of(e) from None

    async def _error_document(self, key: str, error: WebError) -> Response:
        """The bucket's error document, with the error's status; S3's page naming both
        errors when the document cannot be read either."""
        self.request.headers.pop("range", None)
        try:
            response = await self._object(key, conditions=False)
        except (WebError, S3Error) as e:
            failed = (e.status, e.code, e.message)
            raise WebError(
                error.status, error.code, error.message, **dict(error.details)
            ) from ErrorDocumentFailed(*failed)
        if response.status in (301, 302):
            return response
        response.status = error.status
        return response


class ErrorDocumentFailed(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


async def serve(service: Service, request: Request, bucket: str) -> Response:
    """A website request's answer, errors included (HTML, never XML)."""
    try:
        return await Site(service, request, bucket).serve()
    except S3Error as e:
        if e.status == 304:
            return Response(304, list(e.headers.items()))
        error = WebError.of(e)
    except WebError as e:
        error = e
    failed = error.__cause__ if isinstance(error.__cause__, ErrorDocumentFailed) else None
    body = website.error_page(
        error.status,
        error.code,
        error.message,
        request.request_id,
        error.details,
        (failed.status, failed.code, failed.message) if failed is not None else None,
    )
    if request.decision is None:
        request.decision = f"website: {error.code}"
    return Response(error.status, [HTML_TYPE], body)
