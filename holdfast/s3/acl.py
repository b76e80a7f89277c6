"""Access control lists: canned ACLs, ``x-amz-grant-*`` headers and the
``AccessControlPolicy`` XML body, parsed into one grant list, and what a grant list allows.

Pure logic, no I/O. A grant list is stored as JSON (``[[kind, grantee, permission], ...]``,
kind ``id`` for a canonical user id or ``group`` for a group URI); the owner's FULL_CONTROL
is always part of it, as S3 reports it. The decision that uses a list is made in
holdfast/s3/access.py, the one place that decides requests.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from holdfast.errors import S3Error
from holdfast.s3 import xml

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
GROUPS = (ALL_USERS, AUTHENTICATED_USERS)
PUBLIC_GROUPS = frozenset(GROUPS)
PERMISSIONS = ("FULL_CONTROL", "READ", "WRITE", "READ_ACP", "WRITE_ACP")
CANNED = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)
GRANT_HEADERS = {
    "x-amz-grant-read": "READ",
    "x-amz-grant-write": "WRITE",
    "x-amz-grant-read-acp": "READ_ACP",
    "x-amz-grant-write-acp": "WRITE_ACP",
    "x-amz-grant-full-control": "FULL_CONTROL",
}
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_GRANTS = 100


def canonical_id(user: str) -> str:
    """A user's canonical id: stable, opaque, 64 hex digits like S3's."""
    return hashlib.sha256(user.encode()).hexdigest()


@dataclass(frozen=True)
class Grant:
    kind: str  # "id" or "group"
    grantee: str  # a canonical user id or a group URI
    permission: str


@dataclass(frozen=True)
class Acl:
    grants: tuple[Grant, ...]

    def to_json(self) -> str:
        return json.dumps([[g.kind, g.grantee, g.permission] for g in self.grants])

    @classmethod
    def from_json(cls, text: str) -> Acl:
        return cls(tuple(Grant(*g) for g in json.loads(text)))

    @property
    def public(self) -> bool:
        """Grants anything to AllUsers or AuthenticatedUsers (what the public access block
        calls a public ACL)."""
        return any(g.kind == "group" and g.grantee in PUBLIC_GROUPS for g in self.grants)

    def allows(self, user: str | None, permission: str, ignore_public: bool) -> str | None:
        """The grant that gives ``user`` (None: anonymous) ``permission``, described for the
        request log, or None. With ``ignore_public`` grants to the two groups count for
        nothing (IgnorePublicAcls)."""
        uid = canonical_id(user) if user is not None else None
        for g in self.grants:
            if g.permission not in (permission, "FULL_CONTROL"):
                continue
            if g.kind == "id" and g.grantee == uid:
                return f"ACL grant {g.permission} to user {user}"
            public = g.grantee == ALL_USERS or (g.grantee == AUTHENTICATED_USERS and user)
            if g.kind == "group" and not ignore_public and public:
                return f"ACL grant {g.permission} to {g.grantee.rsplit('/', 1)[1]}"
        return None


def private(owner: str) -> Acl:
    return Acl((Grant("id", canonical_id(owner), "FULL_CONTROL"),))


def canned(name: str, owner: str) -> Acl:
    """The grants of a canned ACL. Objects belong to their bucket's owner in Holdfast, so the
    two bucket-owner ACLs are the private one."""
    base = private(owner).grants
    extra = {
        "private": (),
        "bucket-owner-read": (),
        "bucket-owner-full-control": (),
        "public-read": (Grant("group", ALL_USERS, "READ"),),
        "public-read-write": (
            Grant("group", ALL_USERS, "READ"),
            Grant("group", ALL_USERS, "WRITE"),
        ),
        "authenticated-read": (Grant("group", AUTHENTICATED_USERS, "READ"),),
    }
    if name not in extra:
        raise S3Error("InvalidArgument", "Invalid canned ACL", ArgumentName="x-amz-acl")
    return Acl(base + extra[name])


def _grantee(text: str) -> Grant:
    """One ``type=value`` of an x-amz-grant-* header (permission filled in by the caller)."""
    kind, sep, value = text.strip().partition("=")
    value = value.strip().strip('"')
    kind = kind.strip().lower()
    if not sep or not value:
        raise S3Error("InvalidArgument", "Invalid grant header value")
    if kind == "id":
        return Grant("id", value, "")
    if kind == "uri":
        if value not in GROUPS:
            raise S3Error("InvalidArgument", "Invalid group uri")
        return Grant("group", value, "")
    if kind == "emailaddress":
        raise S3Error("UnresolvableGrantByEmailAddress")
    raise S3Error("InvalidArgument", "Invalid grant header value")


def from_headers(headers: dict[str, str], owner: str) -> Acl | None:
    """The ACL a request's ``x-amz-acl`` or ``x-amz-grant-*`` headers ask for (None when it
    names none). Both at once is InvalidRequest, as on S3."""
    cannedname = headers.get("x-amz-acl")
    grants: list[Grant] = []
    for header, permission in GRANT_HEADERS.items():
        if header in headers:
            for part in headers[header].split(","):
                g = _grantee(part)
                grants.append(Grant(g.kind, g.grantee, permission))
    if cannedname is not None and grants:
        raise S3Error(
            "InvalidRequest", "Specifying both Canned ACLs and Header Grants is not allowed"
        )
    if cannedname is not None:
        return canned(cannedname.strip(), owner)
    if grants:
        if len(grants) > MAX_GRANTS:
            raise S3Error("InvalidArgument", "Too many grants")
        return Acl(tuple(dict.fromkeys(grants)))
    return None


def from_xml(body: bytes, owner: str) -> Acl:
    """An ``AccessControlPolicy`` body. Its Owner, when given, must be the owner."""
    root = xml.parse(body)
    if root.tag != "AccessControlPolicy":
        raise S3Error("MalformedACLError")
    owner_el = root.find("Owner")
    if owner_el is not None:
        given = xml.text(owner_el, "ID")
        if given is not None and given != canonical_id(owner):
            raise S3Error("AccessDenied")
    acl_el = root.find("AccessControlList")
    if acl_el is None:
        raise S3Error("MalformedACLError")
    grants: list[Grant] = []
    for grant_el in acl_el.findall("Grant"):
        grants.append(_grant_xml(grant_el))
    if len(grants) > MAX_GRANTS:
        raise S3Error("MalformedACLError", "Too many grants")
    return Acl(tuple(dict.fromkeys(grants)))


def _grant_xml(el: ET.Element) -> Grant:
    grantee = el.find("Grantee")
    permission = xml.text(el, "Permission")
    if grantee is None or permission not in PERMISSIONS:
        raise S3Error("MalformedACLError")
    kind = grantee.get(f"{{{XSI}}}type") or grantee.get("type") or ""
    if kind == "CanonicalUser" or (not kind and grantee.find("ID") is not None):
        uid = xml.text(grantee, "ID")
        if not uid:
            raise S3Error("MalformedACLError")
        return Grant("id", uid.strip(), permission)
    if kind == "Group" or (not kind and grantee.find("URI") is not None):
        uri = (xml.text(grantee, "URI") or "").strip()
        if uri not in GROUPS:
            raise S3Error("MalformedACLError", "Invalid group uri")
        return Grant("group", uri, permission)
    if kind == "AmazonCustomerByEmail":
        raise S3Error("UnresolvableGrantByEmailAddress")
    raise S3Error("MalformedACLError")


def render(acl: Acl, owner: str, names: dict[str, str]) -> bytes:
    """GetBucketAcl/GetObjectAcl's body; ``names`` maps canonical ids to display names."""
    grants = []
    for g in acl.grants:
        if g.kind == "id":
            grantee = xml.Fragment(
                f'<Grantee xmlns:xsi="{XSI}" xsi:type="CanonicalUser">'
                + xml.element("ID", g.grantee)
                + (xml.element("DisplayName", names[g.grantee]) if g.grantee in names else "")
                + "</Grantee>"
            )
        else:
            grantee = xml.Fragment(
                f'<Grantee xmlns:xsi="{XSI}" xsi:type="Group">'
                + xml.element("URI", g.grantee)
                + "</Grantee>"
            )
        grants.append(("Grant", [("Grantee", grantee), ("Permission", g.permission)]))
    owner_part = [("ID", canonical_id(owner)), ("DisplayName", owner)]
    return xml.render("AccessControlPolicy", [("Owner", owner_part), ("AccessControlList", grants)])


# An object's ACL travels with its version in the object's stored-header map under this
# name (as its encryption does, holdfast/service/encryption.py): both index engines hold it
# with the version, a new version starts with its own, and it is never sent to clients.
# Absent: the private ACL (FULL_CONTROL to the bucket's owner), the common case.
STORED_HEADER = "x-holdfast-acl"


def of_object(headers: dict[str, str]) -> Acl | None:
    text = headers.get(STORED_HEADER)
    return None if text is None else Acl.from_json(text)
