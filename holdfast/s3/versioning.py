"""Versioning XML: the PutBucketVersioning body and GetBucketVersioning's answer.

S3 keeps a bucket in one of three states: never versioned (an empty
``VersioningConfiguration``), Enabled, Suspended; once enabled it can never go back to the
first. MFA delete needs an MFA device S3 checks with the request (``x-amz-mfa``); Holdfast
has none, so asking to enable it is NotImplemented rather than accepted and not enforced.
"""

from __future__ import annotations

from holdfast.errors import S3Error
from holdfast.s3 import xml

ENABLED = "Enabled"
SUSPENDED = "Suspended"


def parse(body: bytes) -> str:
    """``Enabled`` or ``Suspended``."""
    root = xml.parse(body)
    if root.tag != "VersioningConfiguration":
        raise S3Error("MalformedXML")
    status = root.findtext("Status")
    mfa = root.findtext("MfaDelete")
    if mfa is not None and mfa.strip() not in ("Enabled", "Disabled"):
        raise S3Error("MalformedXML")
    if mfa is not None and mfa.strip() == "Enabled":
        raise S3Error("NotImplemented", "MFA delete is not implemented by Holdfast.")
    if status is None or status.strip() not in (ENABLED, SUSPENDED):
        raise S3Error("MalformedXML")
    return status.strip()


def render(status: str | None) -> bytes:
    """``status`` None: never versioned."""
    return xml.render("VersioningConfiguration", [("Status", status)] if status else [])
