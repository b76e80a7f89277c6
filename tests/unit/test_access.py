"""The one access decision (holdfast/s3/access.py): owner, policy, ACL, ownership controls and
public access block, in the documented order. Table-driven: each row is a bucket's documents,
a request, and the expected outcome with the part that decided it."""

from __future__ import annotations

import json

import pytest

from holdfast.errors import S3Error
from holdfast.index.records import BucketRecord
from holdfast.s3 import access
from holdfast.s3 import acl as acls
from holdfast.s3.policy import Principal, RequestContext, parse_policy

B = "bkt"
OWNER = "alice"
BOB = Principal("bob", "BOBKEY0000000000")
ALICE = Principal(OWNER, "ALICEKEY00000000")


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def stmt(effect: str, principal, action: str, resource: str, **extra) -> dict:
    return {
        "Effect": effect,
        "Principal": principal,
        "Action": action,
        "Resource": f"arn:aws:s3:::{resource}",
        **extra,
    }


PUBLIC_GET = policy(stmt("Allow", "*", "s3:GetObject", f"{B}/*"))
BOB_GET = policy(stmt("Allow", {"AWS": "arn:aws:iam::1:user/bob"}, "s3:GetObject", f"{B}/*"))
DENY_ALL_GET = policy(stmt("Deny", "*", "s3:GetObject", f"{B}/*"))
DENY_POLICY = policy(stmt("Deny", "*", "s3:*", B))
PUBLIC_FROM_NET = policy(
    stmt(
        "Allow",
        "*",
        "s3:GetObject",
        f"{B}/*",
        Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    )
)


def acl(name: str) -> str:
    return acls.canned(name, OWNER).to_json()


def pab(**flags: bool) -> str:
    return access.PublicAccessBlock(**flags).to_json()


GET, LIST, PUT = "s3:GetObject", "s3:ListBucket", "s3:PutObject"

# (documents, action, key, principal, allowed, reason starts with)
CASES = [
    # 1. nothing set: the owner only
    ({}, GET, "k", ALICE, True, "allowed as bucket owner"),
    ({}, GET, "k", BOB, False, "denied: nothing"),
    ({}, GET, "k", None, False, "denied: nothing allows s3:GetObject to anonymous"),
    ({}, LIST, None, None, False, "denied"),
    # 2. policy allows
    ({"policy": PUBLIC_GET}, GET, "k", None, True, "allowed by bucket policy"),
    ({"policy": PUBLIC_GET}, LIST, None, None, False, "denied"),
    ({"policy": BOB_GET}, GET, "k", BOB, True, "allowed by bucket policy"),
    ({"policy": BOB_GET}, GET, "k", None, False, "denied"),
    # 3. explicit deny beats owner, ACL and allow; not the owner's policy actions
    ({"policy": DENY_ALL_GET}, GET, "k", ALICE, False, "denied by bucket policy"),
    ({"policy": DENY_ALL_GET, "acl": acl("public-read")}, LIST, None, None, True, "allowed by bucket ACL"),
    ({"policy": DENY_POLICY}, "s3:PutBucketPolicy", None, ALICE, True, "allowed as bucket owner"),
    ({"policy": DENY_POLICY}, "s3:GetBucketAcl", None, ALICE, False, "denied by bucket policy"),
    # 4. bucket ACLs: READ lists, WRITE puts; objects are not readable by a bucket grant
    ({"acl": acl("public-read")}, LIST, None, None, True, "allowed by bucket ACL grant READ to AllUsers"),
    ({"acl": acl("public-read")}, GET, "k", None, False, "denied"),
    ({"acl": acl("public-read")}, PUT, "k", None, False, "denied"),
    ({"acl": acl("public-read-write")}, PUT, "k", None, True, "allowed by bucket ACL grant WRITE"),
    ({"acl": acl("authenticated-read")}, LIST, None, BOB, True, "allowed by bucket ACL"),
    ({"acl": acl("authenticated-read")}, LIST, None, None, False, "denied"),
    ({"acl": acl("public-read")}, "s3:GetBucketAcl", None, None, False, "denied"),
    # 5. ownership controls: BucketOwnerEnforced switches ACLs off, not policies
    ({"acl": acl("public-read"), "ownership": "BucketOwnerEnforced"}, LIST, None, None, False, "denied"),
    ({"acl": acl("public-read"), "ownership": "ObjectWriter"}, LIST, None, None, True, "allowed by bucket ACL"),
    ({"policy": PUBLIC_GET, "ownership": "BucketOwnerEnforced"}, GET, "k", None, True, "allowed by bucket policy"),
    # 6. public access block: Ignore/Restrict at decision time
    ({"acl": acl("public-read"), "public-access-block": pab(ignore_public_acls=True)}, LIST, None, None, False, "denied"),
    ({"acl": acl("public-read"), "public-access-block": pab(restrict_public_buckets=True)}, LIST, None, None, True, "allowed by bucket ACL"),
    ({"policy": PUBLIC_GET, "public-access-block": pab(restrict_public_buckets=True)}, GET, "k", None, False, "denied by public access block"),
    ({"policy": PUBLIC_GET, "public-access-block": pab(restrict_public_buckets=True)}, GET, "k", ALICE, True, "allowed as bucket owner"),
    ({"policy": BOB_GET, "public-access-block": pab(restrict_public_buckets=True)}, GET, "k", BOB, True, "allowed by bucket policy"),
    ({"policy": PUBLIC_GET, "public-access-block": pab(ignore_public_acls=True)}, GET, "k", None, True, "allowed by bucket policy"),
    ({"policy": PUBLIC_FROM_NET, "public-access-block": pab(restrict_public_buckets=True)}, GET, "k", None, True, "allowed by bucket policy"),
    ({"policy": PUBLIC_GET, "public-access-block": pab(block_public_policy=True, block_public_acls=True)}, GET, "k", None, True, "allowed by bucket policy"),
]  # fmt: skip


@pytest.mark.parametrize(("docs", "action", "key", "principal", "allowed", "reason"), CASES)
def test_decision_order(docs, action, key, principal, allowed, reason):
    state = access.BucketAccess(BucketRecord(B, OWNER, 0.0, "us-east-1"), docs)
    context = {"aws:sourceip": "10.1.2.3", "aws:securetransport": "false"}
    decision = access.decide(RequestContext(action, B, key, principal, context), state)
    assert (decision.allowed, decision.reason[: len(reason)]) == (allowed, reason)


def test_object_acl_grants_read():
    state = access.BucketAccess(BucketRecord(B, OWNER, 0.0, "us-east-1"), {})
    req = RequestContext(GET, B, "k", None, {})
    public = acls.canned("public-read", OWNER)
    assert access.decide(req, state, public).allowed
    assert not access.decide(req, state, acls.canned("private", OWNER)).allowed
    ignoring = access.BucketAccess(
        state.bucket, {"public-access-block": pab(ignore_public_acls=True)}
    )
    assert not access.decide(req, ignoring, public).allowed


def test_no_bucket_operations():
    assert access.decide(RequestContext("s3:ListAllMyBuckets", "", None, BOB, {}), None).allowed
    assert not access.decide(
        RequestContext("s3:ListAllMyBuckets", "", None, None, {}), None
    ).allowed


@pytest.mark.parametrize(
    ("doc", "public"),
    [(PUBLIC_GET, True), (BOB_GET, False), (DENY_ALL_GET, False), (PUBLIC_FROM_NET, False)],
)
def test_public_policy(doc, public):
    assert access.is_public_policy(parse_policy(doc, B)) is public


def test_put_checks():
    blocked = access.BucketAccess(
        BucketRecord(B, OWNER, 0.0, "us-east-1"),
        {"public-access-block": pab(block_public_acls=True, block_public_policy=True)},
    )
    with pytest.raises(S3Error) as e:
        access.check_policy_put(parse_policy(PUBLIC_GET, B), blocked)
    assert e.value.code == "AccessDenied"
    access.check_policy_put(parse_policy(BOB_GET, B), blocked)
    with pytest.raises(S3Error):
        access.check_acl_put(acls.canned("public-read", OWNER), blocked, "public-read")
    access.check_acl_put(acls.canned("private", OWNER), blocked, "private")
    enforced = access.BucketAccess(blocked.bucket, {"ownership": "BucketOwnerEnforced"})
    with pytest.raises(S3Error) as e:
        access.check_acl_put(
            acls.canned("authenticated-read", OWNER), enforced, "authenticated-read"
        )
    assert e.value.code == "AccessControlListNotSupported"
    access.check_acl_put(
        acls.canned("bucket-owner-full-control", OWNER), enforced, "bucket-owner-full-control"
    )


def test_acl_headers_and_xml():
    got = acls.from_headers(
        {"x-amz-grant-read": 'uri="http://acs.amazonaws.com/groups/global/AllUsers", id=abc'}, OWNER
    )
    assert got.grants == (
        acls.Grant("group", acls.ALL_USERS, "READ"),
        acls.Grant("id", "abc", "READ"),
    )
    assert acls.from_headers({}, OWNER) is None
    for bad in ({"x-amz-acl": "private", "x-amz-grant-read": "id=a"}, {"x-amz-grant-read": "id"},
                {"x-amz-acl": "nope"}, {"x-amz-grant-write": "uri=http://example.com/g"}):  # fmt: skip
        with pytest.raises(S3Error):
            acls.from_headers(bad, OWNER)
    body = acls.render(acls.canned("public-read", OWNER), OWNER, {})
    assert acls.from_xml(body, OWNER) == acls.canned("public-read", OWNER)
    for bad_body in (b"<AccessControlPolicy/>", b"<x/>", b"<AccessControlPolicy><Owner><ID>zz</ID></Owner>"
                     b"<AccessControlList/></AccessControlPolicy>"):  # fmt: skip
        with pytest.raises(S3Error):
            acls.from_xml(bad_body, OWNER)


TAGGED_GET = policy(
    stmt(
        "Allow",
        "*",
        "s3:GetObject",
        f"{B}/*",
        Condition={"StringEquals": {"s3:ExistingObjectTag/share": "yes"}},
    )
)


def test_existing_object_tag_reaches_the_policy():
    """The object's tags are read only where the policy tests them, and then decide."""
    state = access.BucketAccess(BucketRecord(B, OWNER, 0.0, "us-east-1"), {"policy": TAGGED_GET})
    assert access.needs_tags(GET, "k", state)
    assert not access.needs_tags(GET, None, state)
    assert not access.needs_tags("s3:DeleteObject", "k", state)  # S3 gives it no tag keys
    plain = access.BucketAccess(state.bucket, {"policy": PUBLIC_GET})
    assert not access.needs_tags(GET, "k", plain)
    from holdfast.s3.policy import request_context

    def ctx(tags):
        return request_context(secure=False, source_ip="1.2.3.4", object_tags=tags)

    shared = RequestContext(GET, B, "k", None, ctx({"share": "yes"}))
    assert access.decide(shared, state).allowed
    assert not access.decide(RequestContext(GET, B, "k", None, ctx({})), state).allowed


def test_object_acl_is_read_only_when_it_could_allow():
    state = access.BucketAccess(BucketRecord(B, OWNER, 0.0, "us-east-1"), {})
    denied = access.decide(RequestContext(GET, B, "k", None, {}), state)
    assert access.may_need_object_acl(denied, GET, state)
    owner = access.decide(RequestContext(GET, B, "k", ALICE, {}), state)
    assert not access.may_need_object_acl(owner, GET, state)
    assert not access.may_need_object_acl(denied, PUT, state)  # no object ACL grants a PUT
    deny = access.BucketAccess(state.bucket, {"policy": DENY_ALL_GET})
    explicit = access.decide(RequestContext(GET, B, "k", None, {}), deny)
    assert not access.may_need_object_acl(explicit, GET, deny)
    enforced = access.BucketAccess(state.bucket, {"ownership": "BucketOwnerEnforced"})
    assert not access.may_need_object_acl(denied, GET, enforced)
