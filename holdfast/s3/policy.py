"""Bucket policies: parse and validate a policy document, and decide a request against it.

Pure logic, no I/O: the front end (later) loads a bucket's parsed policy and asks
:func:`authorize` about each request. One place decides, so the evaluation order is written
once and tested once (tests/unit/test_policy.py):

1. An explicit ``Deny`` in a statement that applies wins over everything, the bucket owner's
   own rights included, except that the owner can always read, replace or delete the policy
   itself (S3 keeps the account that owns the bucket from locking itself out that way).
2. Otherwise the bucket owner is allowed.
3. Otherwise an ``Allow`` in a statement that applies allows.
4. Otherwise the request is denied (no statement allowed it).

A statement applies when its principal, action, resource and every condition match. What the
language supports is listed in docs/s3-compatibility.md; anything else in a document (an
unknown field, condition operator or key, a policy variable, a malformed value) is
``MalformedPolicy`` when the policy is put, so no policy is ever half-applied.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from holdfast.errors import S3Error
from holdfast.s3.router import Operation

# S3 limits a bucket policy to 20 KB, measured (like S3) without the JSON's whitespace.
MAX_POLICY_BYTES = 20 * 1024
# Bytes read before giving up on a document at all: whitespace can pad a policy, not this much.
MAX_DOCUMENT_BYTES = 1024 * 1024

VERSIONS = ("2012-10-17", "2008-10-17")
TOP_FIELDS = {"Version", "Id", "Statement"}
STATEMENT_FIELDS = {
    "Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
    "NotResource", "Condition",
}  # fmt: skip
ARN_PREFIX = "arn:aws:s3:::"
USER_ARN = re.compile(r"arn:aws:iam::[0-9]*:user/(?:[^*?]*/)?([^/*?]+)")
ACCESS_KEY = re.compile(r"[A-Z0-9]{16,128}")

# Every S3 action a bucket policy may name (case-insensitive, as IAM compares them).
ACTIONS = frozenset(
    a.lower()
    for a in (
        "AbortMultipartUpload", "BypassGovernanceRetention", "CreateBucket", "DeleteBucket",
        "DeleteBucketPolicy", "DeleteBucketWebsite", "DeleteBucketOwnershipControls", "DeleteObject",
        "DeleteObjectTagging", "DeleteObjectVersion", "DeleteObjectVersionTagging",
        "GetAccelerateConfiguration", "GetBucketAcl", "GetBucketCORS", "GetBucketLocation",
        "GetBucketLogging", "GetBucketNotification", "GetBucketObjectLockConfiguration",
        "GetBucketOwnershipControls", "GetBucketPolicy", "GetBucketPolicyStatus",
        "GetBucketPublicAccessBlock", "GetBucketRequestPayment", "GetBucketTagging",
        "GetBucketVersioning", "GetBucketWebsite", "GetEncryptionConfiguration",
        "GetLifecycleConfiguration", "GetObject", "GetObjectAcl", "GetObjectAttributes",
        "GetObjectLegalHold", "GetObjectRetention", "GetObjectTagging", "GetObjectTorrent",
        "GetObjectVersion", "GetObjectVersionAcl", "GetObjectVersionAttributes",
        "GetObjectVersionTagging", "GetObjectVersionTorrent", "GetReplicationConfiguration",
        "ListAllMyBuckets", "ListBucket", "ListBucketMultipartUploads", "ListBucketVersions",
        "ListMultipartUploadParts", "PutAccelerateConfiguration", "PutBucketAcl", "PutBucketCORS",
        "PutBucketLogging", "PutBucketNotification", "PutBucketObjectLockConfiguration",
        "PutBucketOwnershipControls", "PutBucketPolicy", "PutBucketPublicAccessBlock",
        "PutBucketRequestPayment", "PutBucketTagging", "PutBucketVersioning", "PutBucketWebsite",
        "PutEncryptionConfiguration", "PutLifecycleConfiguration", "PutObject", "PutObjectAcl",
        "PutObjectLegalHold", "PutObjectRetention", "PutObjectTagging", "PutObjectVersionAcl",
        "PutObjectVersionTagging", "PutReplicationConfiguration", "ReplicateDelete",
        "ReplicateObject", "ReplicateTags", "RestoreObject",
    )
)  # fmt: skip

# Condition keys Holdfast fills in for a request (lower case: IAM compares keys so). A key a
# request does not carry (s3:prefix outside a listing, say) is absent from its context.
KEYS = frozenset(
    {
        "aws:securetransport", "aws:sourceip", "aws:referer", "aws:useragent", "aws:username",
        "s3:max-keys", "s3:prefix", "s3:delimiter", "s3:x-amz-acl",
    }
)  # fmt: skip
TAG_KEY_PREFIX = "s3:existingobjecttag/"

# What the bucket owner may always do, whatever the policy denies: fix the policy.
POLICY_ACTIONS = frozenset({"s3:getbucketpolicy", "s3:putbucketpolicy", "s3:deletebucketpolicy"})


def malformed(message: str) -> S3Error:
    return S3Error("MalformedPolicy", message)


# -- wildcards ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run of characters (``/`` included), ``?`` any one."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


# -- the parsed policy -------------------------------------------------------------------------


class Effect(enum.Enum):
    ALLOW = "Allow"
    DENY = "Deny"


@dataclass(frozen=True)
class Principals:
    """Who a statement names: everyone, or users by name or access key."""

    everyone: bool = False
    users: frozenset[str] = frozenset()
    access_keys: frozenset[str] = frozenset()

    def match(self, principal: Principal | None) -> bool:
        if self.everyone:
            return True
        if principal is None:
            return False
        return principal.user in self.users or principal.access_key in self.access_keys


@dataclass(frozen=True)
class Condition:
    operator: str  # the base operator, e.g. "StringLike"
    if_exists: bool
    key: str  # lower case
    values: tuple[str, ...]

    def holds(self, context: Mapping[str, str]) -> bool:
        value = context.get(self.key)
        if self.operator == "Null":  # "true": the key is absent; "false": it is present
            return any((value is None) == (v == "true") for v in self.values)
        if value is None:
            # An absent key matches no value: true for a negated operator (it is "not equal"
            # to all of them), false otherwise, and true whenever the operator ends in IfExists.
            return self.if_exists or self.operator in NEGATED
        test = OPERATORS[self.operator]
        if self.operator in NEGATED:  # NOR over the values
            return not any(test(value, v) for v in self.values)
        return any(test(value, v) for v in self.values)


@dataclass(frozen=True)
class Statement:
    sid: str
    effect: Effect
    principals: Principals
    not_principal: bool
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...]
    not_resource: bool
    conditions: tuple[Condition, ...]

    def applies(self, request: RequestContext) -> bool:
        if self.principals.match(request.principal) == self.not_principal:
            return False
        action = any(wildcard_match(a, request.action, ignore_case=True) for a in self.actions)
        if action == self.not_action:
            return False
        resource = request.resource
        if any(wildcard_match(r, resource) for r in self.resources) == self.not_resource:
            return False
        return all(c.holds(request.context) for c in self.conditions)


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]
    text: str  # the document as put, returned by GetBucketPolicy


# -- parsing and validation --------------------------------------------------------------------


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise malformed("Policy has duplicate fields")
    return dict(pairs)


def parse_policy(document: bytes | str, bucket: str) -> Policy:
    """The policy ``document`` for ``bucket``, validated whole, or the S3 error for it."""
    raw = document.encode() if isinstance(document, str) else document
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise S3Error("PolicyTooLarge", "Policy exceeds the maximum allowed document size.")
    try:
        text = raw.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise malformed("Policies must be valid JSON and the first byte must be '{'") from None
    if not isinstance(doc, dict):
        raise malformed("Policies must be valid JSON and the first byte must be '{'")
    compact = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    if len(compact) > MAX_POLICY_BYTES:
        raise S3Error("PolicyTooLarge", "Policy exceeds the maximum allowed document size.")
    unknown = set(doc) - TOP_FIELDS
    if unknown:
        raise malformed(f"Unknown field {sorted(unknown)[0]}")
    version = doc.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise malformed("The policy must contain a valid version string")
    raw_statements = doc.get("Statement")
    if isinstance(raw_statements, dict):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list) or not raw_statements:
        raise malformed("Missing required field Statement")
    statements = tuple(
        _statement(s, i, bucket, version) for i, s in enumerate(raw_statements, start=1)
    )
    sids = [s.sid for s in statements if not s.sid.startswith("#")]
    if len(sids) != len(set(sids)):
        raise malformed("Statement IDs (SID) must be unique")
    return Policy(statements, text)


def _one_of(s: dict, name: str, required: bool = True) -> tuple[Any, bool]:
    """The value of ``name`` or ``Not<name>`` (exactly one may be present) and which it was."""
    plain, negated = s.get(name), s.get("Not" + name)
    if plain is not None and negated is not None:
        raise malformed(f"A statement cannot have both {name} and Not{name}")
    if plain is None and negated is None:
        if required:
            raise malformed(f"Missing required field {name}")
        return None, False
    return (negated, True) if plain is None else (plain, False)


def _strings(value: Any, what: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise malformed(f"Policy has an invalid {what}")
    return tuple(items)


def _statement(s: Any, index: int, bucket: str, version: str) -> Statement:
    if not isinstance(s, dict):
        raise malformed("Each statement must be a JSON object")
    unknown = set(s) - STATEMENT_FIELDS
    if unknown:
        raise malformed(f"Unknown field {sorted(unknown)[0]}")
    sid = s.get("Sid", "")
    if not isinstance(sid, str) or not re.fullmatch(r"[A-Za-z0-9 _.-]*", sid):
        raise malformed("Statement IDs (SID) must be alpha-numeric")
    if s.get("Effect") not in ("Allow", "Deny"):
        raise malformed("Invalid effect: must be Allow or Deny")
    principal, not_principal = _one_of(s, "Principal")
    action, not_action = _one_of(s, "Action")
    resource, not_resource = _one_of(s, "Resource")
    return Statement(
        sid=sid or f"#{index}",
        effect=Effect(s["Effect"]),
        principals=_principals(principal),
        not_principal=not_principal,
        actions=_actions(action),
        not_action=not_action,
        resources=_resources(resource, bucket, version),
        not_resource=not_resource,
        conditions=_conditions(s.get("Condition"), version),
    )


def _principals(value: Any) -> Principals:
    if value == "*":
        return Principals(everyone=True)
    if not isinstance(value, dict) or set(value) != {"AWS"}:
        raise malformed("Invalid principal in policy")
    names = _strings(value["AWS"], "principal")
    if "*" in names:
        return Principals(everyone=True)
    users, keys = set(), set()
    for name in names:
        m = USER_ARN.fullmatch(name)
        if m:
            users.add(m.group(1))
        elif ACCESS_KEY.fullmatch(name):
            keys.add(name)
        else:
            raise malformed("Invalid principal in policy")
    return Principals(users=frozenset(users), access_keys=frozenset(keys))


def _actions(value: Any) -> tuple[str, ...]:
    actions = _strings(value, "action")
    for action in actions:
        if action == "*":
            continue
        service, sep, name = action.partition(":")
        if not sep or service.lower() != "s3" or not name:
            raise malformed("Policy has invalid action")
        if not any(wildcard_match(action, "s3:" + a, ignore_case=True) for a in ACTIONS):
            raise malformed("Policy has invalid action")
    return actions


def _resources(value: Any, bucket: str, version: str) -> tuple[str, ...]:
    resources = _strings(value, "resource")
    for resource in resources:
        if "${" in resource and version == "2012-10-17":
            raise malformed("Policy variables are not supported by Holdfast")
        if resource == "*":
            continue
        if not resource.startswith(ARN_PREFIX):
            raise malformed("Policy has invalid resource")
        if not _in_bucket(resource[len(ARN_PREFIX) :], bucket):
            raise malformed("Policy has invalid resource")
    return resources


def _in_bucket(path: str, bucket: str) -> bool:
    """Whether ``bucket/...`` pattern ``path`` can name the bucket or an object in it: S3
    refuses a policy naming another bucket. A wildcard in the bucket part may run on into the
    key, so only the literal text before it is checked."""
    name = path.split("/", 1)[0]
    cut = min((i for i, c in enumerate(name) if c in "*?"), default=None)
    if cut is None:
        return name == bucket
    return bucket.startswith(name[:cut])


def _conditions(value: Any, version: str) -> tuple[Condition, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not value:
        raise malformed("Invalid Condition block")
    conditions = []
    for name, block in value.items():
        operator, if_exists = name, False
        if name.endswith("IfExists") and name != "Null":
            operator, if_exists = name[: -len("IfExists")], True
        if operator not in OPERATORS and operator != "Null":
            raise malformed(f"Invalid Condition type : {name}")
        if operator == "Null" and if_exists:
            raise malformed(f"Invalid Condition type : {name}")
        if not isinstance(block, dict) or not block:
            raise malformed(f"Invalid Condition block for {name}")
        for key, raw in block.items():
            lowered = key.lower()
            known = lowered in KEYS or (
                lowered.startswith(TAG_KEY_PREFIX) and len(lowered) > len(TAG_KEY_PREFIX)
            )
            if not known:
                raise malformed(f"Policy has an invalid condition key: {key}")
            values = tuple(_condition_value(v) for v in (raw if isinstance(raw, list) else [raw]))
            if not values:
                raise malformed(f"Invalid Condition value for {key}")
            _check_values(operator, key, values, version)
            if operator in ("Bool", "Null"):
                values = tuple(v.lower() for v in values)
            conditions.append(Condition(operator, if_exists, lowered, values))
    return tuple(conditions)


def _condition_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and math.isfinite(value):
        return json.dumps(value)
    if isinstance(value, str):
        return value
    raise malformed("Invalid Condition value")


def _check_values(operator: str, key: str, values: tuple[str, ...], version: str) -> None:
    """Values an operator could never compare are refused now, not silently false later."""
    if version == "2012-10-17" and any("${" in v for v in values):
        raise malformed("Policy variables are not supported by Holdfast")
    if operator in ("Bool", "Null") and not all(v.lower() in ("true", "false") for v in values):
        raise malformed(f"Invalid Condition value for {operator} on {key}")
    if operator.startswith("Numeric") and not all(_number(v) is not None for v in values):
        raise malformed(f"Invalid Condition value for {operator} on {key}")
    if operator in ("IpAddress", "NotIpAddress"):
        for v in values:
            try:
                ipaddress.ip_network(v, strict=False)
            except ValueError:
                raise malformed(f"Invalid IP address or range: {v}") from None


# -- condition operators -----------------------------------------------------------------------


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _numeric(compare):
    def test(value: str, expected: str) -> bool:
        a, b = _number(value), _number(expected)
        return a is not None and b is not None and compare(a, b)

    return test


def _in_network(value: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


# operator -> test(request value, policy value). A negated operator's test is its positive
# form: Condition.holds applies the NOR.
OPERATORS = {
    "StringEquals": lambda v, p: v == p,
    "StringNotEquals": lambda v, p: v == p,
    "StringEqualsIgnoreCase": lambda v, p: v.casefold() == p.casefold(),
    "StringNotEqualsIgnoreCase": lambda v, p: v.casefold() == p.casefold(),
    "StringLike": lambda v, p: wildcard_match(p, v),
    "StringNotLike": lambda v, p: wildcard_match(p, v),
    "NumericEquals": _numeric(lambda a, b: a == b),
    "NumericNotEquals": _numeric(lambda a, b: a == b),
    "NumericLessThan": _numeric(lambda a, b: a < b),
    "NumericLessThanEquals": _numeric(lambda a, b: a <= b),
    "NumericGreaterThan": _numeric(lambda a, b: a > b),
    "NumericGreaterThanEquals": _numeric(lambda a, b: a >= b),
    "Bool": lambda v, p: v.lower() == p.lower(),
    "IpAddress": _in_network,
    "NotIpAddress": _in_network,
}
NEGATED = frozenset(
    {
        "StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "NumericNotEquals",
        "NotIpAddress",
    }
)  # fmt: skip


# -- the request and the decision --------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """An authenticated caller; anonymous requests have none."""

    user: str
    access_key: str


@dataclass(frozen=True)
class RequestContext:
    action: str  # "s3:GetObject"
    bucket: str
    key: str | None
    principal: Principal | None
    # Condition keys in lower case -> their value in this request (see request_context).
    context: Mapping[str, str] = field(default_factory=dict)

    @property
    def resource(self) -> str:
        return resource_arn(self.bucket, self.key)


def resource_arn(bucket: str, key: str | None) -> str:
    return f"{ARN_PREFIX}{bucket}" if key is None else f"{ARN_PREFIX}{bucket}/{key}"


def request_context(
    *,
    secure: bool,
    source_ip: str,
    user: str | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    listing: bool = False,
    object_tags: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The condition keys of one request. ``source_ip`` is the client's address without its
    port; ``headers`` are lower-case names; ``listing`` says
    the request lists a bucket (s3:prefix, s3:delimiter and s3:max-keys exist only then);
    ``object_tags`` are the tags of the object the request reads, when it reads one."""
    headers = headers or {}
    query = query or {}
    context = {"aws:securetransport": "true" if secure else "false", "aws:sourceip": source_ip}
    if user is not None:
        context["aws:username"] = user
    for header, key in (("referer", "aws:referer"), ("user-agent", "aws:useragent")):
        if header in headers:
            context[key] = headers[header]
    if "x-amz-acl" in headers:
        context["s3:x-amz-acl"] = headers["x-amz-acl"]
    if listing:
        for name in ("prefix", "delimiter", "max-keys"):
            if name in query:
                context[f"s3:{name}"] = query[name]
    for tag, value in (object_tags or {}).items():
        context[TAG_KEY_PREFIX + tag.lower()] = value
    return context


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # for the request log: "allowed by ...", "denied by ..."


def authorize(request: RequestContext, policy: Policy | None, owner: bool) -> Decision:
    """The decision for ``request``: see the module docstring for the order."""
    statements = policy.statements if policy is not None else ()
    applying = [s for s in statements if s.applies(request)]
    deny = next((s for s in applying if s.effect is Effect.DENY), None)
    if deny is not None and not (owner and request.action.lower() in POLICY_ACTIONS):
        return Decision(False, f"denied by bucket policy statement {deny.sid}")
    if owner:
        return Decision(True, "allowed as bucket owner")
    allow = next((s for s in applying if s.effect is Effect.ALLOW), None)
    if allow is not None:
        return Decision(True, f"allowed by bucket policy statement {allow.sid}")
    return Decision(False, "denied: no statement allows it")


# -- operations -> the actions a policy names ----------------------------------------------------

Op = Operation
ACTION_OF: dict[Operation, str] = {
    Op.LIST_BUCKETS: "s3:ListAllMyBuckets",
    Op.CREATE_BUCKET: "s3:CreateBucket",
    Op.HEAD_BUCKET: "s3:ListBucket",
    Op.DELETE_BUCKET: "s3:DeleteBucket",
    Op.GET_BUCKET_LOCATION: "s3:GetBucketLocation",
    Op.GET_BUCKET_VERSIONING: "s3:GetBucketVersioning",
    Op.PUT_BUCKET_VERSIONING: "s3:PutBucketVersioning",
    Op.GET_BUCKET_ACL: "s3:GetBucketAcl",
    Op.PUT_BUCKET_ACL: "s3:PutBucketAcl",
    Op.LIST_OBJECTS: "s3:ListBucket",
    Op.LIST_OBJECTS_V2: "s3:ListBucket",
    Op.LIST_OBJECT_VERSIONS: "s3:ListBucketVersions",
    Op.LIST_MULTIPART_UPLOADS: "s3:ListBucketMultipartUploads",
    Op.DELETE_OBJECTS: "s3:DeleteObject",
    Op.PUT_OBJECT: "s3:PutObject",
    Op.COPY_OBJECT: "s3:PutObject",  # and s3:GetObject on the source
    Op.GET_OBJECT: "s3:GetObject",
    Op.HEAD_OBJECT: "s3:GetObject",
    Op.DELETE_OBJECT: "s3:DeleteObject",
    Op.GET_OBJECT_ACL: "s3:GetObjectAcl",
    Op.PUT_OBJECT_ACL: "s3:PutObjectAcl",
    Op.GET_OBJECT_ATTRIBUTES: "s3:GetObjectAttributes",
    Op.GET_OBJECT_TAGGING: "s3:GetObjectTagging",
    Op.PUT_OBJECT_TAGGING: "s3:PutObjectTagging",
    Op.DELETE_OBJECT_TAGGING: "s3:DeleteObjectTagging",
    Op.GET_OBJECT_RETENTION: "s3:GetObjectRetention",
    Op.PUT_OBJECT_RETENTION: "s3:PutObjectRetention",
    Op.GET_OBJECT_LEGAL_HOLD: "s3:GetObjectLegalHold",
    Op.PUT_OBJECT_LEGAL_HOLD: "s3:PutObjectLegalHold",
    Op.CREATE_MULTIPART_UPLOAD: "s3:PutObject",
    Op.UPLOAD_PART: "s3:PutObject",
    Op.UPLOAD_PART_COPY: "s3:PutObject",  # and s3:GetObject on the source
    Op.COMPLETE_MULTIPART_UPLOAD: "s3:PutObject",
    Op.ABORT_MULTIPART_UPLOAD: "s3:AbortMultipartUpload",
    Op.LIST_PARTS: "s3:ListMultipartUploadParts",
    Op.GET_BUCKET_POLICY: "s3:GetBucketPolicy",
    Op.PUT_BUCKET_POLICY: "s3:PutBucketPolicy",
    Op.DELETE_BUCKET_POLICY: "s3:DeleteBucketPolicy",
    Op.GET_BUCKET_POLICY_STATUS: "s3:GetBucketPolicyStatus",
    Op.GET_BUCKET_CORS: "s3:GetBucketCORS",
    Op.PUT_BUCKET_CORS: "s3:PutBucketCORS",
    Op.DELETE_BUCKET_CORS: "s3:PutBucketCORS",
    Op.GET_BUCKET_LIFECYCLE_CONFIGURATION: "s3:GetLifecycleConfiguration",
    Op.PUT_BUCKET_LIFECYCLE_CONFIGURATION: "s3:PutLifecycleConfiguration",
    Op.DELETE_BUCKET_LIFECYCLE: "s3:PutLifecycleConfiguration",
    Op.GET_BUCKET_TAGGING: "s3:GetBucketTagging",
    Op.PUT_BUCKET_TAGGING: "s3:PutBucketTagging",
    Op.DELETE_BUCKET_TAGGING: "s3:PutBucketTagging",
    Op.GET_BUCKET_ENCRYPTION: "s3:GetEncryptionConfiguration",
    Op.PUT_BUCKET_ENCRYPTION: "s3:PutEncryptionConfiguration",
    Op.DELETE_BUCKET_ENCRYPTION: "s3:PutEncryptionConfiguration",
    Op.GET_BUCKET_WEBSITE: "s3:GetBucketWebsite",
    Op.PUT_BUCKET_WEBSITE: "s3:PutBucketWebsite",
    Op.DELETE_BUCKET_WEBSITE: "s3:DeleteBucketWebsite",
    Op.GET_OBJECT_LOCK_CONFIGURATION: "s3:GetBucketObjectLockConfiguration",
    Op.PUT_OBJECT_LOCK_CONFIGURATION: "s3:PutBucketObjectLockConfiguration",
    Op.GET_PUBLIC_ACCESS_BLOCK: "s3:GetBucketPublicAccessBlock",
    Op.PUT_PUBLIC_ACCESS_BLOCK: "s3:PutBucketPublicAccessBlock",
    Op.DELETE_PUBLIC_ACCESS_BLOCK: "s3:PutBucketPublicAccessBlock",
    Op.GET_BUCKET_OWNERSHIP_CONTROLS: "s3:GetBucketOwnershipControls",
    Op.PUT_BUCKET_OWNERSHIP_CONTROLS: "s3:PutBucketOwnershipControls",
    Op.DELETE_BUCKET_OWNERSHIP_CONTROLS: "s3:PutBucketOwnershipControls",
    Op.GET_BUCKET_REPLICATION: "s3:GetReplicationConfiguration",
    Op.PUT_BUCKET_REPLICATION: "s3:PutReplicationConfiguration",
    Op.DELETE_BUCKET_REPLICATION: "s3:PutReplicationConfiguration",
    Op.GET_BUCKET_LOGGING: "s3:GetBucketLogging",
    Op.PUT_BUCKET_LOGGING: "s3:PutBucketLogging",
    Op.GET_BUCKET_NOTIFICATION_CONFIGURATION: "s3:GetBucketNotification",
    Op.PUT_BUCKET_NOTIFICATION_CONFIGURATION: "s3:PutBucketNotification",
    Op.GET_BUCKET_ACCELERATE_CONFIGURATION: "s3:GetAccelerateConfiguration",
    Op.PUT_BUCKET_ACCELERATE_CONFIGURATION: "s3:PutAccelerateConfiguration",
    Op.GET_BUCKET_REQUEST_PAYMENT: "s3:GetBucketRequestPayment",
    Op.PUT_BUCKET_REQUEST_PAYMENT: "s3:PutBucketRequestPayment",
}
