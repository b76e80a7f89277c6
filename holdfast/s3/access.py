"""The one place that decides whether a request may proceed.

Every S3 request that names a bucket is decided here, once, before its handler runs, from:
the bucket's owner, its policy (holdfast/s3/policy.py), its ACL (holdfast/s3/acl.py), its
object-ownership setting and its public access block. The order (docs/access.md; table tests
in tests/unit/test_access.py):

1. An explicit ``Deny`` in the bucket policy that applies wins over everything, the owner's
   rights included, except that the owner may always read, replace or delete the policy.
2. The bucket owner is allowed.
3. An ``Allow`` in the policy that applies allows, unless the policy is public and the
   public access block has RestrictPublicBuckets (then only the owner gets through).
4. An ACL grant for the permission the action needs allows, unless ACLs are disabled
   (ownership BucketOwnerEnforced) or the grant is to a public group and the block has
   IgnorePublicAcls.
5. Otherwise: denied.

Requests without a bucket (ListBuckets, CreateBucket) need a signed user; anonymous ones are
denied. The decision's reason goes into the request log record ("allowed by ...",
"denied by ...").

What is read and when: each request reads its bucket's row and its access documents in one
index read (``Index.get_bucket_access``; for GET and HEAD of a current version, the object in
the same statement: ``Index.get_object_access``), so a PutBucketPolicy on any node is honoured
by the next request on every node (no cache to go stale). Parsing a document is what would cost:
parsed documents are cached in memory by their text (a bounded LRU), so the hot path parses
nothing and needs no invalidation: a changed document is a different key.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from holdfast.errors import S3Error
from holdfast.index.records import BucketRecord, ObjectRecord
from holdfast.s3 import acl as acls
from holdfast.s3 import xml
from holdfast.s3.http import Request
from holdfast.s3.policy import (
    ACTION_OF,
    TAG_KEY_PREFIX,
    Decision,
    Effect,
    Policy,
    Principal,
    RequestContext,
    parse_policy,
    request_context,
)
from holdfast.s3.policy import authorize as policy_authorize
from holdfast.s3.router import Operation
from holdfast.service.lifecycle import CONFIG as LIFECYCLE
from holdfast.service.locks import CONFIG as OBJECT_LOCK
from holdfast.service.versions import CONFIG as VERSIONING
from holdfast.service.versions import parse_version_id

POLICY = "policy"
ACL = "acl"
PUBLIC_ACCESS_BLOCK = "public-access-block"
OWNERSHIP = "ownership"
CORS = "cors"
WEBSITE = "website"
DOCUMENTS = (POLICY, ACL, PUBLIC_ACCESS_BLOCK, OWNERSHIP, CORS, WEBSITE)
# Read in the same round trip for the operation itself (Request.bucket_configs): whether the
# bucket is versioned (``x-amz-version-id: null``), its default retention, its lifecycle
# rules (``x-amz-expiration``). Only rows that exist come back, so this costs nothing extra
# for a bucket without them.
ENCRYPTION = "encryption"  # the bucket's default encryption (holdfast/s3/ops/sse.py)
OPERATION_CONFIGS = (VERSIONING, OBJECT_LOCK, LIFECYCLE, ENCRYPTION)
# Operations whose object is read with the access decision's statement (no versionId).
OBJECT_READS = frozenset({Operation.GET_OBJECT, Operation.HEAD_OBJECT})

# Operations that name no existing bucket to decide by (CreateBucket names one to be).
NO_BUCKET_OPERATIONS = frozenset({Operation.LIST_BUCKETS, Operation.CREATE_BUCKET})
LISTING_ACTIONS = frozenset({"s3:ListBucket", "s3:ListBucketVersions"})

OWNERSHIP_VALUES = ("BucketOwnerEnforced", "BucketOwnerPreferred", "ObjectWriter")
PAB_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")

# The ACL permission each action needs, on the bucket's ACL or the object's.
BUCKET_PERMISSION = {
    "s3:ListBucket": "READ",
    "s3:ListBucketMultipartUploads": "READ",
    "s3:ListBucketVersions": "READ",
    "s3:PutObject": "WRITE",
    "s3:DeleteObject": "WRITE",
    "s3:DeleteObjectVersion": "WRITE",
    "s3:AbortMultipartUpload": "WRITE",
    "s3:ListMultipartUploadParts": "WRITE",
    "s3:GetBucketAcl": "READ_ACP",
    "s3:PutBucketAcl": "WRITE_ACP",
}
OBJECT_PERMISSION = {
    "s3:GetObject": "READ",
    "s3:GetObjectVersion": "READ",
    "s3:GetObjectAttributes": "READ",
    "s3:GetObjectAcl": "READ_ACP",
    "s3:PutObjectAcl": "WRITE_ACP",
}
# The object actions S3 gives the s3:ExistingObjectTag/<key> condition keys for: the tags of
# the object (version) the request names go into the evaluator's context.
TAG_CONDITION_ACTIONS = frozenset(
    {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:GetObjectAcl",
        "s3:GetObjectAttributes",
        "s3:GetObjectTagging",
        "s3:PutObjectTagging",
        "s3:DeleteObjectTagging",
        "s3:PutObjectAcl",
    }
)
# A request naming a version id asks for the version action (as on S3).
VERSION_ACTIONS = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
}


def action_of(op: Operation, query: dict[str, str]) -> str:
    action = ACTION_OF[op]
    if query.get("versionId", "null") not in ("", "null"):
        return VERSION_ACTIONS.get(action, action)
    return action


# Keys naming values a statement cannot be matched by everyone with: a statement limited by
# one of them is not public (S3's rule, narrowed to the keys Holdfast knows).
FIXING_KEYS = frozenset({"aws:sourceip", "aws:username"})


@dataclass(frozen=True)
class PublicAccessBlock:
    block_public_acls: bool = False
    ignore_public_acls: bool = False
    block_public_policy: bool = False
    restrict_public_buckets: bool = False

    def to_json(self) -> str:
        return json.dumps(
            [
                self.block_public_acls,
                self.ignore_public_acls,
                self.block_public_policy,
                self.restrict_public_buckets,
            ]
        )

    def render(self) -> bytes:
        values = (
            self.block_public_acls,
            self.ignore_public_acls,
            self.block_public_policy,
            self.restrict_public_buckets,
        )
        return xml.render(
            "PublicAccessBlockConfiguration", list(zip(PAB_FLAGS, values, strict=True))
        )


NO_BLOCK = PublicAccessBlock()


def parse_public_access_block(body: bytes) -> PublicAccessBlock:
    root = xml.parse(body)
    if root.tag != "PublicAccessBlockConfiguration":
        raise S3Error("MalformedXML")
    values = []
    for flag in PAB_FLAGS:
        text = xml.text(root, flag, "false")
        if text is None or text.strip().lower() not in ("true", "false"):
            raise S3Error("MalformedXML")
        values.append(text.strip().lower() == "true")
    if any(child.tag not in PAB_FLAGS for child in root):
        raise S3Error("MalformedXML")
    return PublicAccessBlock(*values)


def parse_ownership(body: bytes) -> str:
    root = xml.parse(body)
    rules = root.findall("Rule") if root.tag == "OwnershipControls" else []
    if len(rules) != 1:
        raise S3Error("MalformedXML")
    value = xml.text(rules[0], "ObjectOwnership")
    if value not in OWNERSHIP_VALUES:
        raise S3Error("MalformedXML")
    return value


def is_public_policy(policy: Policy) -> bool:
    """S3's test: an Allow open to everyone, not limited by a condition that fixes who can
    match it (a source address, a user name)."""
    for s in policy.statements:
        if s.effect is not Effect.ALLOW:
            continue
        if not (s.principals.everyone or s.not_principal):
            continue
        if any(c.key in FIXING_KEYS and not c.operator.startswith("Not") for c in s.conditions):
            continue
        return True
    return False


# -- the bucket's access documents, parsed once per distinct text ------------------------------


@functools.lru_cache(maxsize=1024)
def _policy(text: str, bucket: str) -> tuple[Policy, bool, bool]:
    """The parsed policy, whether it is public, and whether it tests object tags."""
    policy = parse_policy(text, bucket)
    tags = any(c.key.startswith(TAG_KEY_PREFIX) for s in policy.statements for c in s.conditions)
    return policy, is_public_policy(policy), tags


@functools.lru_cache(maxsize=1024)
def _acl(text: str) -> acls.Acl:
    return acls.Acl.from_json(text)


@functools.lru_cache(maxsize=256)
def _pab(text: str) -> PublicAccessBlock:
    return PublicAccessBlock(*json.loads(text))


@dataclass(frozen=True)
class BucketAccess:
    """What the decision needs to know about one bucket, as of this request's read."""

    bucket: BucketRecord
    docs: dict[str, str]

    @property
    def owner(self) -> str:
        return self.bucket.owner

    @property
    def policy(self) -> tuple[Policy | None, bool]:
        text = self.docs.get(POLICY)
        return (None, False) if text is None else _policy(text, self.bucket.name)[:2]

    @property
    def acl(self) -> acls.Acl:
        text = self.docs.get(ACL)
        return acls.private(self.owner) if text is None else _acl(text)

    @property
    def block(self) -> PublicAccessBlock:
        text = self.docs.get(PUBLIC_ACCESS_BLOCK)
        return NO_BLOCK if text is None else _pab(text)

    @property
    def ownership(self) -> str | None:
        return self.docs.get(OWNERSHIP)

    @property
    def acls_enabled(self) -> bool:
        return self.ownership != "BucketOwnerEnforced"

    @property
    def tag_conditions(self) -> bool:
        """Does the policy test s3:ExistingObjectTag/<key> anywhere (then object actions need
        the object's tags; otherwise nobody reads them for the decision)?"""
        text = self.docs.get(POLICY)
        return text is not None and _policy(text, self.bucket.name)[2]


# -- the decision --------------------------------------------------------------------------------


def decide(
    request: RequestContext, access: BucketAccess | None, object_acl: acls.Acl | None = None
) -> Decision:
    """The decision for ``request`` (see the module docstring). ``access`` is None for
    requests that name no bucket; ``object_acl`` is the ACL of the object an object action
    reads, when it has one."""
    user = request.principal.user if request.principal is not None else None
    if access is None:
        if user is None:
            return Decision(False, "denied: anonymous request without a bucket")
        return Decision(True, "allowed as signed user")
    owner = user is not None and user == access.owner
    policy, public = access.policy
    decision = policy_authorize(request, policy, owner)
    explicit_deny = not decision.allowed and decision.reason.startswith("denied by")
    if owner or explicit_deny:
        return decision
    block = access.block
    if decision.allowed:
        if public and block.restrict_public_buckets:
            return Decision(False, "denied by public access block (RestrictPublicBuckets)")
        return decision
    if access.acls_enabled:
        ignore = block.ignore_public_acls
        permission = OBJECT_PERMISSION.get(request.action)
        if permission is not None and object_acl is not None:
            grant = object_acl.allows(user, permission, ignore)
            if grant is not None:
                return Decision(True, f"allowed by object {grant}")
        permission = BUCKET_PERMISSION.get(request.action)
        if permission is not None:
            grant = access.acl.allows(user, permission, ignore)
            if grant is not None:
                return Decision(True, f"allowed by bucket {grant}")
    who = "anonymous request" if user is None else f"user {user}"
    return Decision(False, f"denied: nothing allows {request.action} to {who}")


def check_policy_put(policy: Policy, access: BucketAccess) -> None:
    """BlockPublicPolicy refuses a public policy (AccessDenied, as S3 answers)."""
    if access.block.block_public_policy and is_public_policy(policy):
        raise S3Error("AccessDenied", "The bucket's public access block forbids public policies")


def check_acl_put(acl: acls.Acl | None, access: BucketAccess, canned: str | None) -> None:
    """An ACL a request would set: refused when ACLs are disabled (BucketOwnerEnforced:
    AccessControlListNotSupported, but bucket-owner-full-control and private are accepted as
    S3 does) or when public and BlockPublicAcls is on (AccessDenied)."""
    if acl is None:
        return
    if not access.acls_enabled and canned not in ("bucket-owner-full-control", "private"):
        raise S3Error("AccessControlListNotSupported", "The bucket does not allow ACLs")
    if acl.public and access.block.block_public_acls:
        raise S3Error("AccessDenied", "The bucket's public access block forbids public ACLs")


def principal_of(user: str | None, access_key: str | None) -> Principal | None:
    return None if user is None else Principal(user, access_key or "")


async def load(index, bucket: str) -> BucketAccess:
    """The bucket and its access documents, read now (one index read); NoSuchBucket when
    there is no such bucket, whoever asks (as S3 answers)."""
    record, docs = await index.get_bucket_access(bucket, DOCUMENTS + OPERATION_CONFIGS)
    if record is None:
        raise S3Error("NoSuchBucket", BucketName=bucket)
    return BucketAccess(record, docs)


async def load_with_object(
    index, bucket: str, key: str
) -> tuple[BucketAccess, ObjectRecord | None]:
    """:func:`load` and the current version of ``key``, in one index read (one round trip
    on PostgreSQL): what every GET and HEAD needs first."""
    record, docs, obj = await index.get_object_access(bucket, DOCUMENTS + OPERATION_CONFIGS, key)
    if record is None:
        raise S3Error("NoSuchBucket", BucketName=bucket)
    return BucketAccess(record, docs), obj


def request_of(
    request: Request,
    action: str,
    bucket: str | None,
    key: str | None,
    access: BucketAccess | None = None,
    object_tags: list[tuple[str, str]] | None = None,
) -> RequestContext:
    """What the decision sees of one S3 request. The condition keys are only gathered when
    the bucket has a policy to test them against (the hot path without one skips it).
    ``object_tags``: the tags of the object an object action names (see
    :func:`needs_object`)."""
    principal = principal_of(request.user, request.access_key)
    if access is None or POLICY not in access.docs:
        return RequestContext(action, bucket or "", key, principal, {})
    host = request.client.rsplit(":", 1)[0] if request.client else ""
    context = request_context(
        secure=request.scheme == "https",
        source_ip=host.strip("[]"),
        user=request.user,
        headers=request.headers,
        query=request.query,
        listing=action in LISTING_ACTIONS,
        object_tags=dict(object_tags) if object_tags else None,
    )
    return RequestContext(action, bucket or "", key, principal, context)


def needs_tags(action: str, key: str | None, access: BucketAccess | None) -> bool:
    """Must the decision see the object's tags first (a policy testing
    s3:ExistingObjectTag, an action S3 gives those keys for)?"""
    return (
        key is not None
        and access is not None
        and action in TAG_CONDITION_ACTIONS
        and access.tag_conditions
    )


def may_need_object_acl(decision: Decision, action: str, access: BucketAccess | None) -> bool:
    """Could the object's own ACL turn this refusal into an allow? Only for a refusal that
    no explicit Deny made, of an action an object ACL grants, while ACLs are enabled: the
    hot path (the owner, or an allow) never reads the object for it."""
    return (
        not decision.allowed
        and not decision.reason.startswith("denied by")
        and action in OBJECT_PERMISSION
        and access is not None
        and access.acls_enabled
    )


async def _object(
    index, request: Request, bucket: str, key: str, version: str | None
) -> ObjectRecord | None:
    """The object (version) a request names, None when there is none (its handler answers
    for that); the one read with the access documents when it was (GET, HEAD)."""
    if not version and request.object_read and (bucket, key) == (request.bucket, request.key):
        return request.object
    if not version:
        return await index.get_object(bucket, key)
    try:
        seq = parse_version_id(version)
    except S3Error:
        return None
    obj = await index.get_version(bucket, key, seq)
    return None if obj is None or obj.delete_marker else obj


async def decide_object(
    index,
    request: Request,
    action: str,
    bucket: str | None,
    key: str | None,
    access: BucketAccess | None,
    version: str | None = None,
) -> Decision:
    """:func:`decide` for one request (``version``: the version id it names), reading the object it names when (and only when) the
    decision depends on it: its tags for a policy testing s3:ExistingObjectTag, its ACL for
    a caller no policy or bucket ACL lets through."""
    obj: ObjectRecord | None = None
    read = False
    tags = None
    if needs_tags(action, key, access):
        assert key is not None and bucket is not None
        obj, read = await _object(index, request, bucket, key, version), True
        tags = obj.tags if obj is not None else None
    context = request_of(request, action, bucket, key, access, tags)
    decision = decide(context, access)
    if may_need_object_acl(decision, action, access):
        assert key is not None and bucket is not None
        if not read:
            obj = await _object(index, request, bucket, key, version)
        object_acl = acls.of_object(obj.headers) if obj is not None else None
        if object_acl is not None:
            decision = decide(context, access, object_acl)
    return decision
