"""Bucket policy, ACLs, object ownership and the public access block, as stored per-bucket
configuration documents (the same mechanism as bucket tagging: ``Index.set_bucket_config``).

Each document is validated whole before anything is written, so a rejected one leaves the
old one in place. The documents are read with the bucket row on every request and decided
by holdfast/s3/access.py; these handlers only write and report them.
"""

from __future__ import annotations

from holdfast.errors import S3Error
from holdfast.s3 import access, cors, xml
from holdfast.s3 import acl as acls
from holdfast.s3.http import Response
from holdfast.s3.ops.buckets import XML_TYPE, read_small_body
from holdfast.s3.ops.common import Context
from holdfast.s3.policy import parse_policy
from holdfast.s3.router import Operation

Op = Operation


async def _access(ctx: Context) -> access.BucketAccess:
    return await access.load(ctx.service.node.index, ctx.bucket)


async def _set(ctx: Context, name: str, value: str | None) -> None:
    await ctx.service.buckets.set_config(ctx.user, ctx.bucket, name, value)


# -- policy ------------------------------------------------------------------------------------


async def put_bucket_policy(ctx: Context) -> Response:
    state = await _access(ctx)
    policy = parse_policy(await read_small_body(ctx), ctx.bucket)
    access.check_policy_put(policy, state)
    await _set(ctx, access.POLICY, policy.text)
    return Response(204)


async def get_bucket_policy(ctx: Context) -> Response:
    state = await _access(ctx)
    text = state.docs.get(access.POLICY)
    if text is None:
        raise S3Error("NoSuchBucketPolicy", BucketName=ctx.bucket)
    return Response(200, [("Content-Type", "application/json")], text.encode())


async def delete_bucket_policy(ctx: Context) -> Response:
    await _set(ctx, access.POLICY, None)
    return Response(204)


async def get_bucket_policy_status(ctx: Context) -> Response:
    state = await _access(ctx)
    policy, public = state.policy
    if policy is None:
        raise S3Error("NoSuchBucketPolicy", BucketName=ctx.bucket)
    return Response(200, [XML_TYPE], xml.render("PolicyStatus", [("IsPublic", public)]))


# -- ACLs --------------------------------------------------------------------------------------


def _names(state: access.BucketAccess) -> dict[str, str]:
    return {acls.canonical_id(state.owner): state.owner}


async def get_bucket_acl(ctx: Context) -> Response:
    state = await _access(ctx)
    return Response(200, [XML_TYPE], acls.render(state.acl, state.owner, _names(state)))


async def _acl_of_request(ctx: Context, state):  # type: ignore[no-untyped-def]
    """The ACL a Put*Acl request gives: canned or grant headers, or the XML body (not both),
    checked against ownership and the public access block. Bucket and object alike."""
    acl = acls.from_headers(ctx.request.headers, state.owner)
    body = await read_small_body(ctx)
    if body.strip():
        if acl is not None:
            raise S3Error("UnexpectedContent", "This request does not support content")
        acl = acls.from_xml(body, state.owner)
    if acl is None:
        raise S3Error("MissingSecurityHeader", MissingHeaderName="x-amz-acl")
    access.check_acl_put(acl, state, ctx.request.headers.get("x-amz-acl"))
    return acl


async def put_bucket_acl(ctx: Context) -> Response:
    state = await _access(ctx)
    acl = await _acl_of_request(ctx, state)
    await _set(ctx, access.ACL, acl.to_json())
    return Response(200)


async def apply_create_bucket_acl(ctx: Context) -> None:
    """CreateBucket's ``x-amz-acl``/``x-amz-grant-*`` and ``x-amz-object-ownership``,
    validated by :func:`create_bucket_settings` first and written once the bucket exists."""
    acl, ownership = create_bucket_settings(ctx)
    if ownership is not None:
        await _set(ctx, access.OWNERSHIP, ownership)
    if acl is not None and acl != acls.private(ctx.user):
        await _set(ctx, access.ACL, acl.to_json())


def create_bucket_settings(ctx: Context) -> tuple[acls.Acl | None, str | None]:
    headers = ctx.request.headers
    ownership = headers.get("x-amz-object-ownership")
    if ownership is not None and ownership not in access.OWNERSHIP_VALUES:
        raise S3Error("InvalidArgument", "Invalid x-amz-object-ownership header")
    acl = acls.from_headers(headers, ctx.user)
    canned = headers.get("x-amz-acl")
    if (
        acl is not None
        and ownership == "BucketOwnerEnforced"
        and canned not in ("private", "bucket-owner-full-control")
    ):
        raise S3Error(
            "InvalidBucketAclWithObjectOwnership",
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        )
    return acl, ownership


# -- ownership controls ------------------------------------------------------------------------


async def put_bucket_ownership_controls(ctx: Context) -> Response:
    await _access(ctx)
    value = access.parse_ownership(await read_small_body(ctx))
    await _set(ctx, access.OWNERSHIP, value)
    return Response(200)


async def get_bucket_ownership_controls(ctx: Context) -> Response:
    state = await _access(ctx)
    if state.ownership is None:
        raise S3Error("OwnershipControlsNotFoundError", BucketName=ctx.bucket)
    rule = [("Rule", [("ObjectOwnership", state.ownership)])]
    return Response(200, [XML_TYPE], xml.render("OwnershipControls", rule))


async def delete_bucket_ownership_controls(ctx: Context) -> Response:
    await _set(ctx, access.OWNERSHIP, None)
    return Response(204)


# -- public access block -----------------------------------------------------------------------


async def put_public_access_block(ctx: Context) -> Response:
    await _access(ctx)
    block = access.parse_public_access_block(await read_small_body(ctx))
    await _set(ctx, access.PUBLIC_ACCESS_BLOCK, block.to_json())
    return Response(200)


async def get_public_access_block(ctx: Context) -> Response:
    state = await _access(ctx)
    if access.PUBLIC_ACCESS_BLOCK not in state.docs:
        raise S3Error("NoSuchPublicAccessBlockConfiguration", BucketName=ctx.bucket)
    return Response(200, [XML_TYPE], state.block.render())


async def delete_public_access_block(ctx: Context) -> Response:
    await _set(ctx, access.PUBLIC_ACCESS_BLOCK, None)
    return Response(204)


# -- CORS ----------------------------------------------------------------------------------------


async def put_bucket_cors(ctx: Context) -> Response:
    await _access(ctx)
    rules = cors.parse_xml(await read_small_body(ctx))
    await _set(ctx, access.CORS, cors.to_json(rules))
    return Response(200)


async def get_bucket_cors(ctx: Context) -> Response:
    state = await _access(ctx)
    text = state.docs.get(access.CORS)
    if text is None:
        raise S3Error("NoSuchCORSConfiguration", BucketName=ctx.bucket)
    return Response(200, [XML_TYPE], cors.render(cors.from_json(text)))


async def delete_bucket_cors(ctx: Context) -> Response:
    await _set(ctx, access.CORS, None)
    return Response(204)


# -- object ACLs -------------------------------------------------------------------------------
#
# An object's ACL is kept with its version, in its stored-header map (acls.STORED_HEADER): a
# new version starts private unless its own request names an ACL, as on S3.

ACL_HEADERS = ("x-amz-acl", *acls.GRANT_HEADERS)


async def apply_request_acl(ctx: Context, headers: dict[str, str]) -> None:
    """The ACL a PUT, copy or CreateMultipartUpload asks for (``x-amz-acl`` or
    ``x-amz-grant-*``), checked against the bucket (ownership controls, public access block)
    and put into the new version's ``headers``; nothing for a request that names none."""
    headers.pop(acls.STORED_HEADER, None)  # a copy's source ACL is never copied
    if not any(name in ctx.request.headers for name in ACL_HEADERS):
        return
    state = await _access(ctx)
    acl = acls.from_headers(ctx.request.headers, state.owner)
    access.check_acl_put(acl, state, ctx.request.headers.get("x-amz-acl"))
    if acl is not None and state.acls_enabled and acl != acls.private(state.owner):
        headers[acls.STORED_HEADER] = acl.to_json()


async def _object_version(ctx: Context):
    version = ctx.request.query.get("versionId")
    if version:
        obj = await ctx.service.versions.get(ctx.bucket, ctx.key, version)
        if obj.delete_marker:
            raise S3Error(
                "MethodNotAllowed", Method=ctx.request.method, ResourceType="DeleteMarker"
            )
        return obj
    return await ctx.service.objects.get_owned(ctx.user, ctx.bucket, ctx.key)


async def get_object_acl(ctx: Context) -> Response:
    state = await _access(ctx)
    obj = await _object_version(ctx)
    stored = acls.of_object(obj.headers) if state.acls_enabled else None
    acl = stored or acls.private(state.owner)
    response = Response(200, [XML_TYPE], acls.render(acl, state.owner, _names(state)))
    return response


async def put_object_acl(ctx: Context) -> Response:
    state = await _access(ctx)
    acl = await _acl_of_request(ctx, state)
    await _object_version(ctx)  # NoSuchKey / NoSuchVersion before anything is written
    value = None if acl == acls.private(state.owner) else acl.to_json()
    version = ctx.request.query.get("versionId")
    await ctx.service.objects.set_header(ctx.bucket, ctx.key, version, acls.STORED_HEADER, value)
    return Response(200, [("x-amz-version-id", version)] if version else [])


HANDLERS = {
    Op.GET_OBJECT_ACL: get_object_acl,
    Op.PUT_OBJECT_ACL: put_object_acl,
    Op.PUT_BUCKET_CORS: put_bucket_cors,
    Op.GET_BUCKET_CORS: get_bucket_cors,
    Op.DELETE_BUCKET_CORS: delete_bucket_cors,
    Op.PUT_BUCKET_POLICY: put_bucket_policy,
    Op.GET_BUCKET_POLICY: get_bucket_policy,
    Op.DELETE_BUCKET_POLICY: delete_bucket_policy,
    Op.GET_BUCKET_POLICY_STATUS: get_bucket_policy_status,
    Op.GET_BUCKET_ACL: get_bucket_acl,
    Op.PUT_BUCKET_ACL: put_bucket_acl,
    Op.PUT_BUCKET_OWNERSHIP_CONTROLS: put_bucket_ownership_controls,
    Op.GET_BUCKET_OWNERSHIP_CONTROLS: get_bucket_ownership_controls,
    Op.DELETE_BUCKET_OWNERSHIP_CONTROLS: delete_bucket_ownership_controls,
    Op.PUT_PUBLIC_ACCESS_BLOCK: put_public_access_block,
    Op.GET_PUBLIC_ACCESS_BLOCK: get_public_access_block,
    Op.DELETE_PUBLIC_ACCESS_BLOCK: delete_public_access_block,
}
