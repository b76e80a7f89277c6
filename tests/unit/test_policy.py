"""The bucket-policy evaluator (holdfast/s3/policy.py), table by table: the documented order
(an explicit Deny wins, the owner is allowed, an Allow is needed, otherwise denied), each
element of a statement, each condition operator and key, and every way a document is refused
when it is put."""

from __future__ import annotations

import json

import pytest

from holdfast.errors import S3Error
from holdfast.s3.policy import (
    ACTION_OF,
    ACTIONS,
    MAX_POLICY_BYTES,
    Principal,
    RequestContext,
    authorize,
    parse_policy,
    request_context,
    wildcard_match,
)
from holdfast.s3.router import Operation

BUCKET = "bkt"
ALICE = Principal("alice", "HFALICEACCESSKEY0001")
BOB = Principal("bob", "HFBOBACCESSKEY000001")
ANON = None


def stmt(
    effect: str = "Allow",
    principal=None,
    action="s3:GetObject",
    resource="arn:aws:s3:::bkt/*",
    condition=None,
    **extra,
) -> dict:
    s = {"Effect": effect, "Action": action, "Resource": resource, **extra}
    if principal is None and "NotPrincipal" not in extra:
        principal = "*"
    if principal is not None:
        s["Principal"] = principal
    if condition is not None:
        s["Condition"] = condition
    return s


def doc(*statements: dict, version: str = "2012-10-17") -> str:
    return json.dumps({"Version": version, "Statement": list(statements)})


def req(
    action: str = "s3:GetObject",
    key: str | None = "k",
    who: Principal | None = BOB,
    **context: str,
) -> RequestContext:
    return RequestContext(action, BUCKET, key, who, {k.lower(): v for k, v in context.items()})


def decide(statements, request: RequestContext, owner: bool = False):
    policy = parse_policy(doc(*statements), BUCKET) if statements is not None else None
    return authorize(request, policy, owner)


# -- the evaluation order ------------------------------------------------------------------------

ALLOW_READ = stmt(Sid="PublicRead")
DENY_ALL = stmt("Deny", action="s3:*", resource=["arn:aws:s3:::bkt", "arn:aws:s3:::bkt/*"])

ORDER = [
    # (case, statements (None: no policy), request, owner, allowed, reason starts with)
    ("owner, no policy", None, req(who=ALICE), True, True, "allowed as bucket owner"),
    ("another user, no policy", None, req(), False, False, "denied: no statement"),
    ("anonymous, no policy", None, req(who=ANON), False, False, "denied: no statement"),
    ("allow reaches a user", [ALLOW_READ], req(), False, True, "allowed by bucket policy"),
    ("allow reaches anonymous", [ALLOW_READ], req(who=ANON), False, True, "allowed by"),
    (
        "allow names its statement",
        [ALLOW_READ],
        req(),
        False,
        True,
        "allowed by bucket policy statement PublicRead",
    ),  # noqa: E501
    ("allow of another action", [ALLOW_READ], req("s3:PutObject"), False, False, "denied: no"),
    (
        "deny wins over allow",
        [ALLOW_READ, stmt("Deny", Sid="NoK")],
        req(),
        False,
        False,
        "denied by bucket policy statement NoK",
    ),  # noqa: E501
    ("deny wins in either order", [stmt("Deny"), ALLOW_READ], req(), False, False, "denied by"),
    ("deny applies to the owner", [DENY_ALL], req(who=ALICE), True, False, "denied by"),
    (
        "owner keeps the policy: get",
        [DENY_ALL],
        req("s3:GetBucketPolicy", None, ALICE),
        True,
        True,
        "allowed as bucket owner",
    ),  # noqa: E501
    (
        "owner keeps the policy: put",
        [DENY_ALL],
        req("s3:PutBucketPolicy", None, ALICE),
        True,
        True,
        "allowed as",
    ),  # noqa: E501
    (
        "owner keeps the policy: delete",
        [DENY_ALL],
        req("s3:DeleteBucketPolicy", None, ALICE),
        True,
        True,
        "allowed as",
    ),  # noqa: E501
    (
        "others do not keep the policy",
        [DENY_ALL, stmt(action="s3:*", resource="*")],
        req("s3:GetBucketPolicy", None),
        False,
        False,
        "denied by",
    ),  # noqa: E501
    (
        "owner allowed what no statement names",
        [ALLOW_READ],
        req("s3:DeleteObject", who=ALICE),
        True,
        True,
        "allowed as",
    ),  # noqa: E501
    (
        "deny that does not apply",
        [ALLOW_READ, stmt("Deny", resource="arn:aws:s3:::bkt/private/*")],
        req(key="public/a"),
        False,
        True,
        "allowed by",
    ),  # noqa: E501
]


@pytest.mark.parametrize(
    ("statements", "request_", "owner", "allowed", "reason"),
    [case[1:] for case in ORDER],
    ids=[case[0] for case in ORDER],
)
def test_evaluation_order(statements, request_, owner, allowed, reason):
    decision = decide(statements, request_, owner)
    assert decision.allowed is allowed
    assert decision.reason.startswith(reason), decision.reason


# -- principals, actions, resources ---------------------------------------------------------------

ALICE_ARN = "arn:aws:iam::123456789012:user/alice"

MATCHING = [
    # (case, statement, request, allowed)
    ("principal *", stmt(principal="*"), req(who=ANON), True),
    ("principal AWS *", stmt(principal={"AWS": "*"}), req(who=ANON), True),
    ("principal ARN: that user", stmt(principal={"AWS": ALICE_ARN}), req(who=ALICE), True),
    ("principal ARN: another user", stmt(principal={"AWS": ALICE_ARN}), req(who=BOB), False),
    ("principal ARN: anonymous", stmt(principal={"AWS": ALICE_ARN}), req(who=ANON), False),
    (
        "principal ARN without account",
        stmt(principal={"AWS": "arn:aws:iam:::user/alice"}),
        req(who=ALICE),
        True,
    ),  # noqa: E501
    (
        "principal ARN with a path",
        stmt(principal={"AWS": "arn:aws:iam::1:user/ops/alice"}),
        req(who=ALICE),
        True,
    ),  # noqa: E501
    ("principal access key", stmt(principal={"AWS": ALICE.access_key}), req(who=ALICE), True),
    ("principal access key, other", stmt(principal={"AWS": ALICE.access_key}), req(who=BOB), False),  # noqa: E501
    ("principal list", stmt(principal={"AWS": [ALICE_ARN, BOB.access_key]}), req(who=BOB), True),
    (
        "NotPrincipal leaves out the named",
        stmt(NotPrincipal={"AWS": ALICE_ARN}),
        req(who=ALICE),
        False,
    ),  # noqa: E501
    ("NotPrincipal takes in the others", stmt(NotPrincipal={"AWS": ALICE_ARN}), req(who=BOB), True),  # noqa: E501
    ("NotPrincipal takes in anonymous", stmt(NotPrincipal={"AWS": ALICE_ARN}), req(who=ANON), True),  # noqa: E501
    ("action exact", stmt(action="s3:GetObject"), req("s3:GetObject"), True),
    ("action case-insensitive", stmt(action="S3:getobject"), req("s3:GetObject"), True),
    ("action wildcard", stmt(action="s3:Get*"), req("s3:GetObjectAcl"), True),
    ("action wildcard, other", stmt(action="s3:Get*"), req("s3:PutObject"), False),
    ("action ?", stmt(action="s3:?etObject"), req("s3:GetObject"), True),
    ("action *", stmt(action="*"), req("s3:DeleteObject"), True),
    ("action s3:*", stmt(action="s3:*"), req("s3:DeleteObject"), True),
    ("action list", stmt(action=["s3:PutObject", "s3:GetObject"]), req("s3:GetObject"), True),
    (
        "NotAction, named",
        stmt(NotAction="s3:DeleteObject", action=None),
        req("s3:DeleteObject"),
        False,
    ),  # noqa: E501
    ("NotAction, other", stmt(NotAction="s3:DeleteObject", action=None), req("s3:GetObject"), True),  # noqa: E501
    ("resource prefix", stmt(resource="arn:aws:s3:::bkt/public/*"), req(key="public/a/b"), True),
    (
        "resource prefix, other",
        stmt(resource="arn:aws:s3:::bkt/public/*"),
        req(key="private/a"),
        False,
    ),  # noqa: E501
    (
        "resource is case-sensitive",
        stmt(resource="arn:aws:s3:::bkt/Public/*"),
        req(key="public/a"),
        False,
    ),  # noqa: E501
    ("resource ?", stmt(resource="arn:aws:s3:::bkt/file?.txt"), req(key="file1.txt"), True),
    (
        "resource ? is one character",
        stmt(resource="arn:aws:s3:::bkt/file?.txt"),
        req(key="file10.txt"),
        False,
    ),  # noqa: E501
    (
        "resource * spans slashes",
        stmt(resource="arn:aws:s3:::bkt/*.jpg"),
        req(key="a/b/c.jpg"),
        True,
    ),  # noqa: E501
    ("resource *", stmt(resource="*"), req(key="x"), True),
    (
        "bucket ARN names the bucket",
        stmt(action="s3:ListBucket", resource="arn:aws:s3:::bkt"),
        req("s3:ListBucket", None),
        True,
    ),  # noqa: E501
    (
        "object ARN does not name the bucket",
        stmt(action="s3:ListBucket", resource="arn:aws:s3:::bkt/*"),
        req("s3:ListBucket", None),
        False,
    ),  # noqa: E501
    ("bucket ARN does not name objects", stmt(resource="arn:aws:s3:::bkt"), req(key="k"), False),
    (
        "NotResource, named",
        stmt(NotResource="arn:aws:s3:::bkt/secret/*", resource=None),
        req(key="secret/x"),
        False,
    ),  # noqa: E501
    (
        "NotResource, other",
        stmt(NotResource="arn:aws:s3:::bkt/secret/*", resource=None),
        req(key="open/x"),
        True,
    ),  # noqa: E501
    (
        "key with special characters",
        stmt(resource="arn:aws:s3:::bkt/a+b (1)[x].txt"),
        req(key="a+b (1)[x].txt"),
        True,
    ),  # noqa: E501
]


def _clean(statement: dict) -> dict:
    return {k: v for k, v in statement.items() if v is not None}


@pytest.mark.parametrize(
    ("statement", "request_", "allowed"),
    [case[1:] for case in MATCHING],
    ids=[case[0] for case in MATCHING],
)
def test_statement_elements(statement, request_, allowed):
    assert decide([_clean(statement)], request_).allowed is allowed


# -- conditions -----------------------------------------------------------------------------------

LIST = {"action": "s3:ListBucket", "resource": "arn:aws:s3:::bkt"}


def listing(**context: str) -> RequestContext:
    return req("s3:ListBucket", None, **context)


CONDITIONS = [
    # (case, condition, request, allowed) -- each an Allow statement with that condition
    (
        "StringEquals s3:prefix",
        {"StringEquals": {"s3:prefix": "home/"}},
        listing(**{"s3:prefix": "home/"}),
        True,
    ),  # noqa: E501
    (
        "StringEquals, other value",
        {"StringEquals": {"s3:prefix": "home/"}},
        listing(**{"s3:prefix": "etc/"}),
        False,
    ),  # noqa: E501
    ("StringEquals, absent key", {"StringEquals": {"s3:prefix": "home/"}}, listing(), False),
    (
        "StringEquals is case-sensitive",
        {"StringEquals": {"s3:prefix": "home/"}},
        listing(**{"s3:prefix": "HOME/"}),
        False,
    ),  # noqa: E501
    (
        "key names are case-insensitive",
        {"StringEquals": {"S3:Prefix": "home/"}},
        listing(**{"s3:prefix": "home/"}),
        True,
    ),  # noqa: E501
    (
        "values are OR-ed",
        {"StringEquals": {"s3:prefix": ["a/", "b/"]}},
        listing(**{"s3:prefix": "b/"}),
        True,
    ),  # noqa: E501
    (
        "keys are AND-ed",
        {"StringEquals": {"s3:prefix": "a/", "s3:delimiter": "/"}},
        listing(**{"s3:prefix": "a/"}),
        False,
    ),  # noqa: E501
    (
        "keys are AND-ed, both",
        {"StringEquals": {"s3:prefix": "a/", "s3:delimiter": "/"}},
        listing(**{"s3:prefix": "a/", "s3:delimiter": "/"}),
        True,
    ),  # noqa: E501
    (
        "operators are AND-ed",
        {"StringEquals": {"s3:prefix": "a/"}, "NumericLessThanEquals": {"s3:max-keys": "10"}},
        listing(**{"s3:prefix": "a/", "s3:max-keys": "11"}),
        False,
    ),  # noqa: E501
    (
        "StringNotEquals",
        {"StringNotEquals": {"s3:prefix": "secret/"}},
        listing(**{"s3:prefix": "pub/"}),
        True,
    ),  # noqa: E501
    (
        "StringNotEquals, equal",
        {"StringNotEquals": {"s3:prefix": "secret/"}},
        listing(**{"s3:prefix": "secret/"}),
        False,
    ),  # noqa: E501
    (
        "StringNotEquals, absent key is true",
        {"StringNotEquals": {"s3:prefix": "secret/"}},
        listing(),
        True,
    ),  # noqa: E501
    (
        "negated values are NOR-ed",
        {"StringNotEquals": {"s3:prefix": ["a/", "b/"]}},
        listing(**{"s3:prefix": "b/"}),
        False,
    ),  # noqa: E501
    (
        "StringEqualsIgnoreCase",
        {"StringEqualsIgnoreCase": {"s3:prefix": "Home/"}},
        listing(**{"s3:prefix": "HOME/"}),
        True,
    ),  # noqa: E501
    (
        "StringNotEqualsIgnoreCase",
        {"StringNotEqualsIgnoreCase": {"s3:prefix": "Home/"}},
        listing(**{"s3:prefix": "HOME/"}),
        False,
    ),  # noqa: E501
    (
        "StringLike aws:Referer",
        {"StringLike": {"aws:Referer": "https://example.com/*"}},
        req(**{"aws:referer": "https://example.com/page"}),
        True,
    ),  # noqa: E501
    (
        "StringLike, other site",
        {"StringLike": {"aws:Referer": "https://example.com/*"}},
        req(**{"aws:referer": "https://evil.example/x"}),
        False,
    ),  # noqa: E501
    (
        "StringLike ?",
        {"StringLike": {"s3:prefix": "home/?/"}},
        listing(**{"s3:prefix": "home/a/"}),
        True,
    ),  # noqa: E501
    (
        "StringNotLike",
        {"StringNotLike": {"aws:UserAgent": "*curl*"}},
        req(**{"aws:useragent": "rclone/v1.66"}),
        True,
    ),  # noqa: E501
    (
        "StringNotLike, matching",
        {"StringNotLike": {"aws:UserAgent": "*curl*"}},
        req(**{"aws:useragent": "curl/8.0"}),
        False,
    ),  # noqa: E501
    (
        "StringLike aws:UserAgent",
        {"StringLike": {"aws:UserAgent": "rclone/*"}},
        req(**{"aws:useragent": "rclone/v1.66"}),
        True,
    ),  # noqa: E501
    (
        "IpAddress",
        {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
        req(**{"aws:sourceip": "192.0.2.7"}),
        True,
    ),  # noqa: E501
    (
        "IpAddress, outside",
        {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
        req(**{"aws:sourceip": "198.51.100.1"}),
        False,
    ),  # noqa: E501
    (
        "IpAddress, single address",
        {"IpAddress": {"aws:SourceIp": "203.0.113.9"}},
        req(**{"aws:sourceip": "203.0.113.9"}),
        True,
    ),  # noqa: E501
    (
        "IpAddress IPv6",
        {"IpAddress": {"aws:SourceIp": "2001:db8::/32"}},
        req(**{"aws:sourceip": "2001:db8::1"}),
        True,
    ),  # noqa: E501
    (
        "IpAddress IPv4 client, IPv6 range",
        {"IpAddress": {"aws:SourceIp": "2001:db8::/32"}},
        req(**{"aws:sourceip": "192.0.2.1"}),
        False,
    ),  # noqa: E501
    (
        "IpAddress list",
        {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.0/24"]}},
        req(**{"aws:sourceip": "10.1.2.3"}),
        True,
    ),  # noqa: E501
    (
        "NotIpAddress",
        {"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
        req(**{"aws:sourceip": "198.51.100.1"}),
        True,
    ),  # noqa: E501
    (
        "NotIpAddress, inside",
        {"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
        req(**{"aws:sourceip": "192.0.2.1"}),
        False,
    ),  # noqa: E501
    (
        "Bool SecureTransport true",
        {"Bool": {"aws:SecureTransport": "true"}},
        req(**{"aws:securetransport": "true"}),
        True,
    ),  # noqa: E501
    (
        "Bool SecureTransport, plain HTTP",
        {"Bool": {"aws:SecureTransport": "true"}},
        req(**{"aws:securetransport": "false"}),
        False,
    ),  # noqa: E501
    (
        "Bool as a JSON boolean",
        {"Bool": {"aws:SecureTransport": True}},
        req(**{"aws:securetransport": "true"}),
        True,
    ),  # noqa: E501
    (
        "Bool value case",
        {"Bool": {"aws:SecureTransport": "TRUE"}},
        req(**{"aws:securetransport": "true"}),
        True,
    ),  # noqa: E501
    (
        "NumericLessThanEquals",
        {"NumericLessThanEquals": {"s3:max-keys": "100"}},
        listing(**{"s3:max-keys": "100"}),
        True,
    ),  # noqa: E501
    (
        "NumericLessThanEquals, over",
        {"NumericLessThanEquals": {"s3:max-keys": "100"}},
        listing(**{"s3:max-keys": "101"}),
        False,
    ),  # noqa: E501
    (
        "NumericLessThan",
        {"NumericLessThan": {"s3:max-keys": 100}},
        listing(**{"s3:max-keys": "100"}),
        False,
    ),  # noqa: E501
    (
        "NumericGreaterThan",
        {"NumericGreaterThan": {"s3:max-keys": "10"}},
        listing(**{"s3:max-keys": "11"}),
        True,
    ),  # noqa: E501
    (
        "NumericGreaterThanEquals",
        {"NumericGreaterThanEquals": {"s3:max-keys": "10"}},
        listing(**{"s3:max-keys": "9"}),
        False,
    ),  # noqa: E501
    (
        "NumericEquals",
        {"NumericEquals": {"s3:max-keys": "10"}},
        listing(**{"s3:max-keys": "10.0"}),
        True,
    ),  # noqa: E501
    (
        "NumericNotEquals",
        {"NumericNotEquals": {"s3:max-keys": "10"}},
        listing(**{"s3:max-keys": "10"}),
        False,
    ),  # noqa: E501
    (
        "Numeric, not a number",
        {"NumericLessThan": {"s3:max-keys": "10"}},
        listing(**{"s3:max-keys": "abc"}),
        False,
    ),  # noqa: E501
    ("Numeric, absent key", {"NumericLessThan": {"s3:max-keys": "10"}}, listing(), False),
    ("IfExists, absent key", {"NumericLessThanIfExists": {"s3:max-keys": "10"}}, listing(), True),  # noqa: E501
    (
        "IfExists, present key",
        {"NumericLessThanIfExists": {"s3:max-keys": "10"}},
        listing(**{"s3:max-keys": "50"}),
        False,
    ),  # noqa: E501
    (
        "StringEqualsIfExists, absent",
        {"StringEqualsIfExists": {"s3:x-amz-acl": "private"}},
        req("s3:PutObject"),
        True,
    ),  # noqa: E501
    (
        "s3:delimiter",
        {"StringEquals": {"s3:delimiter": "/"}},
        listing(**{"s3:delimiter": "/"}),
        True,
    ),  # noqa: E501
    (
        "s3:ExistingObjectTag",
        {"StringEquals": {"s3:ExistingObjectTag/classification": "public"}},
        req(**{"s3:existingobjecttag/classification": "public"}),
        True,
    ),  # noqa: E501
    (
        "s3:ExistingObjectTag, other value",
        {"StringEquals": {"s3:ExistingObjectTag/classification": "public"}},
        req(**{"s3:existingobjecttag/classification": "secret"}),
        False,
    ),  # noqa: E501
    (
        "s3:ExistingObjectTag, untagged",
        {"StringEquals": {"s3:ExistingObjectTag/classification": "public"}},
        req(),
        False,
    ),  # noqa: E501
    (
        "s3:x-amz-acl",
        {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}},
        req("s3:PutObject", **{"s3:x-amz-acl": "bucket-owner-full-control"}),
        True,
    ),  # noqa: E501
    ("Null true: key absent", {"Null": {"s3:x-amz-acl": "true"}}, req("s3:PutObject"), True),
    (
        "Null true: key present",
        {"Null": {"s3:x-amz-acl": "true"}},
        req("s3:PutObject", **{"s3:x-amz-acl": "private"}),
        False,
    ),  # noqa: E501
    (
        "Null false: key present",
        {"Null": {"s3:x-amz-acl": False}},
        req("s3:PutObject", **{"s3:x-amz-acl": "private"}),
        True,
    ),  # noqa: E501
    (
        "aws:username",
        {"StringEquals": {"aws:username": "bob"}},
        req(**{"aws:username": "bob"}),
        True,
    ),  # noqa: E501
]


@pytest.mark.parametrize(
    ("condition", "request_", "allowed"),
    [case[1:] for case in CONDITIONS],
    ids=[case[0] for case in CONDITIONS],
)
def test_conditions(condition, request_, allowed):
    where = LIST if request_.action == "s3:ListBucket" else {}
    action = request_.action if not where else where["action"]
    statement = stmt(condition=condition, **{**where, "action": action})
    assert decide([statement], request_).allowed is allowed


def test_deny_over_plain_http_wins_over_a_public_read():
    """The common pattern: public read, but never over plain HTTP."""
    statements = [
        stmt(Sid="Read"),
        stmt(
            "Deny",
            Sid="TLSOnly",
            action="s3:*",
            condition={"Bool": {"aws:SecureTransport": "false"}},
        ),  # noqa: E501
    ]
    https = req(who=ANON, **{"aws:securetransport": "true"})
    http = req(who=ANON, **{"aws:securetransport": "false"})
    assert decide(statements, https).reason == "allowed by bucket policy statement Read"
    assert decide(statements, http).reason == "denied by bucket policy statement TLSOnly"
    assert not decide(statements, http, owner=True).allowed  # the owner too


def test_request_context_keys():
    context = request_context(
        secure=True,
        source_ip="192.0.2.1",
        user="bob",
        headers={"referer": "https://x/", "user-agent": "ua", "x-amz-acl": "private"},
        query={"prefix": "p/", "delimiter": "/", "max-keys": "5", "marker": "m"},
        listing=True,
        object_tags={"Class": "public"},
    )
    assert context == {
        "aws:securetransport": "true",
        "aws:sourceip": "192.0.2.1",
        "aws:username": "bob",
        "aws:referer": "https://x/",
        "aws:useragent": "ua",
        "s3:x-amz-acl": "private",
        "s3:prefix": "p/",
        "s3:delimiter": "/",
        "s3:max-keys": "5",
        "s3:existingobjecttag/class": "public",
    }
    # s3:prefix and friends exist only on a listing; anonymous requests have no username.
    plain = request_context(secure=False, source_ip="::1", query={"prefix": "p/"})
    assert plain == {"aws:securetransport": "false", "aws:sourceip": "::1"}


# -- parsing: every refusal -----------------------------------------------------------------------


def too_large() -> str:
    statements = [
        stmt(Sid=f"S{i}", resource=f"arn:aws:s3:::bkt/{'x' * 200}/{i}/*") for i in range(100)
    ]
    return doc(*statements)


MALFORMED = [
    # (case, document)
    ("not JSON", "{not json"),
    ("empty", ""),
    ("a JSON array", "[]"),
    ("a JSON string", '"policy"'),
    ("invalid UTF-8", b'{"Version": "\xff"}'),
    (
        "unknown top-level field",
        json.dumps({"Version": "2012-10-17", "Statement": [stmt()], "Extra": 1}),
    ),  # noqa: E501
    ("bad version", doc(stmt(), version="2020-01-01")),
    ("no Statement", json.dumps({"Version": "2012-10-17"})),
    ("empty Statement", json.dumps({"Version": "2012-10-17", "Statement": []})),
    ("statement not an object", json.dumps({"Statement": ["Allow"]})),
    ("unknown statement field", doc(stmt(Extra="x"))),
    ("no Effect", doc({k: v for k, v in stmt().items() if k != "Effect"})),
    ("Effect in lower case", doc(stmt("allow"))),
    ("no Principal", doc({k: v for k, v in stmt().items() if k != "Principal"})),
    ("Principal and NotPrincipal", doc(stmt(principal="*", NotPrincipal={"AWS": ALICE_ARN}))),
    ("CanonicalUser principal", doc(stmt(principal={"CanonicalUser": "abc"}))),
    ("service principal", doc(stmt(principal={"Service": "logging.s3.amazonaws.com"}))),
    ("principal ARN with a wildcard", doc(stmt(principal={"AWS": "arn:aws:iam::1:user/*"}))),
    ("principal neither ARN nor key", doc(stmt(principal={"AWS": "alice"}))),
    ("empty principal list", doc(stmt(principal={"AWS": []}))),
    ("no Action", doc(_clean(stmt(action=None)))),
    ("Action and NotAction", doc(stmt(NotAction="s3:PutObject"))),
    ("unknown action", doc(stmt(action="s3:GetObjectFoo"))),
    ("wildcard matching no action", doc(stmt(action="s3:Frob*"))),
    ("another service's action", doc(stmt(action="ec2:RunInstances"))),
    ("action without service", doc(stmt(action="GetObject"))),
    ("action not a string", doc(stmt(action=["s3:GetObject", 7]))),
    ("no Resource", doc(_clean(stmt(resource=None)))),
    ("resource not an S3 ARN", doc(stmt(resource="arn:aws:sqs:::bkt"))),
    ("resource in another bucket", doc(stmt(resource="arn:aws:s3:::other/*"))),
    ("resource in a bucket with the name as prefix", doc(stmt(resource="arn:aws:s3:::bkt2/*"))),
    ("resource wildcard for another bucket", doc(stmt(resource="arn:aws:s3:::oth*/x"))),
    ("policy variable in a resource", doc(stmt(resource="arn:aws:s3:::bkt/${aws:username}/*"))),
    ("unknown condition operator", doc(stmt(condition={"StringFoo": {"s3:prefix": "a"}}))),
    ("set operator", doc(stmt(condition={"ForAnyValue:StringEquals": {"s3:prefix": "a"}}))),
    (
        "Date operator",
        doc(stmt(condition={"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}})),
    ),  # noqa: E501
    ("NullIfExists", doc(stmt(condition={"NullIfExists": {"s3:prefix": "true"}}))),
    ("unknown condition key", doc(stmt(condition={"StringEquals": {"aws:FooBar": "a"}}))),
    (
        "tag key without a tag",
        doc(stmt(condition={"StringEquals": {"s3:ExistingObjectTag/": "a"}})),
    ),  # noqa: E501
    ("condition block empty", doc(stmt(condition={}))),
    ("condition operator block empty", doc(stmt(condition={"StringEquals": {}}))),
    ("condition value an object", doc(stmt(condition={"StringEquals": {"s3:prefix": {"a": 1}}}))),
    ("condition values empty", doc(stmt(condition={"StringEquals": {"s3:prefix": []}}))),
    ("bad IP range", doc(stmt(condition={"IpAddress": {"aws:SourceIp": "300.1.1.1/8"}}))),
    (
        "Numeric value not a number",
        doc(stmt(condition={"NumericLessThan": {"s3:max-keys": "ten"}})),
    ),  # noqa: E501
    ("Bool value not a boolean", doc(stmt(condition={"Bool": {"aws:SecureTransport": "yes"}}))),
    (
        "policy variable in a condition",
        doc(stmt(condition={"StringLike": {"s3:prefix": "${aws:username}/*"}})),
    ),  # noqa: E501
    ("duplicate Sid", doc(stmt(Sid="A"), stmt(Sid="A"))),
    ("Sid with punctuation", doc(stmt(Sid="a;b"))),
    ("duplicate JSON field", '{"Version": "2012-10-17", "Version": "2008-10-17", "Statement": []}'),  # noqa: E501
    (
        "NaN in a condition",
        '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*", "Condition": {"NumericLessThan": {"s3:max-keys": NaN}}}]}',
    ),  # noqa: E501
]


@pytest.mark.parametrize("document", [c[1] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_policies_are_refused(document):
    with pytest.raises(S3Error) as exc:
        parse_policy(document, BUCKET)
    assert exc.value.code == "MalformedPolicy"
    assert exc.value.status == 400
    assert exc.value.message


def test_size_limit():
    big = too_large()
    assert len(big) > MAX_POLICY_BYTES
    with pytest.raises(S3Error) as exc:
        parse_policy(big, BUCKET)
    assert exc.value.code == "PolicyTooLarge" and exc.value.status == 400
    # The limit counts the document without its whitespace, as S3 does: padding is free.
    padded = json.dumps(json.loads(doc(stmt())), indent=40) + " " * (2 * MAX_POLICY_BYTES)
    assert len(padded) > MAX_POLICY_BYTES
    assert len(parse_policy(padded, BUCKET).statements) == 1
    with pytest.raises(S3Error) as exc:
        parse_policy(b" " * (2 * 1024 * 1024), BUCKET)
    assert exc.value.code == "PolicyTooLarge"


VALID = [
    ("a single statement object", json.dumps({"Version": "2012-10-17", "Statement": stmt()})),
    ("no Version", json.dumps({"Statement": [stmt()]})),
    ("Id", json.dumps({"Version": "2012-10-17", "Id": "P1", "Statement": [stmt()]})),
    (
        "2008 version keeps ${ literal",
        doc(stmt(resource="arn:aws:s3:::bkt/${x}"), version="2008-10-17"),
    ),  # noqa: E501
    ("bucket wildcard", doc(stmt(resource="arn:aws:s3:::bk*/x"))),
    ("wildcard before the key", doc(stmt(resource="arn:aws:s3:::*"))),
    (
        "numbers and booleans in conditions",
        doc(
            stmt(
                condition={
                    "NumericLessThan": {"s3:max-keys": 10},
                    "Bool": {"aws:SecureTransport": False},
                }
            )
        ),
    ),  # noqa: E501
    (
        "every operator",
        doc(
            stmt(
                condition={
                    op: {"s3:prefix": "1"}
                    for op in (
                        "StringEquals",
                        "StringNotEquals",
                        "StringEqualsIgnoreCase",
                        "StringNotEqualsIgnoreCase",
                        "StringLike",
                        "StringNotLike",
                        "NumericEquals",
                        "NumericNotEquals",
                        "NumericLessThan",
                        "NumericLessThanEquals",
                        "NumericGreaterThan",
                        "NumericGreaterThanEquals",
                        "StringEqualsIfExists",
                        "NumericLessThanIfExists",
                    )
                }
            )
        ),
    ),  # fmt: skip
    ("Sid with spaces", doc(stmt(Sid="Public read 1"))),
]


@pytest.mark.parametrize("document", [c[1] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_policies_parse(document):
    policy = parse_policy(document, BUCKET)
    assert policy.statements
    assert policy.text == document


# -- helpers and tables ---------------------------------------------------------------------------


def test_wildcards():
    assert wildcard_match("a*c", "abbbc")
    assert wildcard_match("a*c", "ac")
    assert not wildcard_match("a?c", "ac")
    assert wildcard_match("a.c", "a.c") and not wildcard_match("a.c", "abc")  # no regex leaks
    assert wildcard_match("[x]", "[x]") and not wildcard_match("[x]", "x")
    assert not wildcard_match("A*", "a*")
    assert wildcard_match("A*", "a*", ignore_case=True)
    assert wildcard_match("a*", "a\nb")


def test_every_operation_has_a_known_action():
    skipped = {Operation.NOT_IMPLEMENTED, Operation.METHOD_NOT_ALLOWED}
    assert set(ACTION_OF) == set(Operation) - skipped
    for op, action in ACTION_OF.items():
        assert action.startswith("s3:") and action[3:].lower() in ACTIONS, (op, action)
