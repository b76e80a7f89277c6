"""Request -> operation: the table of method, bucket, key and sub-resource."""

from __future__ import annotations

import pytest

from holdfast.s3.router import Operation as Op
from holdfast.s3.router import resolve

CASES = [
    # (method, bucket, key, query, copy) -> operation
    (("GET", None, None, {}, False), Op.LIST_BUCKETS),
    (("GET", None, None, {"policy": ""}, False), Op.NOT_IMPLEMENTED),
    (("GET", None, None, {"foo": ""}, False), Op.NOT_IMPLEMENTED),
    (("PUT", None, None, {}, False), Op.METHOD_NOT_ALLOWED),
    (("GET", "b", None, {}, False), Op.LIST_OBJECTS),
    (("GET", "b", None, {"list-type": "2"}, False), Op.LIST_OBJECTS_V2),
    (("GET", "b", None, {"policy": ""}, False), Op.GET_BUCKET_POLICY),
    (("PUT", "b", None, {"policy": ""}, False), Op.PUT_BUCKET_POLICY),
    (("DELETE", "b", None, {"policy": ""}, False), Op.DELETE_BUCKET_POLICY),
    (("POST", "b", None, {"policy": ""}, False), Op.NOT_IMPLEMENTED),
    (("HEAD", "b", None, {"policy": ""}, False), Op.NOT_IMPLEMENTED),
    (("GET", "b", None, {"policyStatus": ""}, False), Op.GET_BUCKET_POLICY_STATUS),
    (("GET", "b", None, {"object-lock": ""}, False), Op.GET_OBJECT_LOCK_CONFIGURATION),
    (("DELETE", "b", None, {"object-lock": ""}, False), Op.NOT_IMPLEMENTED),
    (("GET", "b", None, {"lifecycle": ""}, False), Op.GET_BUCKET_LIFECYCLE_CONFIGURATION),
    (("DELETE", "b", None, {"lifecycle": ""}, False), Op.DELETE_BUCKET_LIFECYCLE),
    (("GET", "b", None, {"publicAccessBlock": ""}, False), Op.GET_PUBLIC_ACCESS_BLOCK),
    (("GET", "b", None, {"ownershipControls": ""}, False), Op.GET_BUCKET_OWNERSHIP_CONTROLS),
    (("GET", "b", None, {"requestPayment": ""}, False), Op.GET_BUCKET_REQUEST_PAYMENT),
    (("PUT", "b", None, {"versioning": ""}, False), Op.PUT_BUCKET_VERSIONING),
    (("GET", "b", None, {"inventory": ""}, False), Op.NOT_IMPLEMENTED),
    (("GET", "b", None, {"policy": "", "cors": ""}, False), Op.NOT_IMPLEMENTED),
    # On an object, the bucket configurations are not sub-resources S3 defines.
    (("GET", "b", "k", {"policy": ""}, False), Op.NOT_IMPLEMENTED),
    (("GET", "b", "k", {"tagging": ""}, False), Op.GET_OBJECT_TAGGING),
    (("DELETE", "b", "k", {"tagging": ""}, False), Op.DELETE_OBJECT_TAGGING),
    (("PUT", "b", "k", {"retention": ""}, False), Op.PUT_OBJECT_RETENTION),
    (("GET", "b", "k", {"legal-hold": ""}, False), Op.GET_OBJECT_LEGAL_HOLD),
    (("DELETE", "b", "k", {"legal-hold": ""}, False), Op.NOT_IMPLEMENTED),
    (("GET", "b", None, {"retention": ""}, False), Op.NOT_IMPLEMENTED),
    (("POST", "b", "k", {"uploads": ""}, False), Op.CREATE_MULTIPART_UPLOAD),
    (("POST", "b", "k", {"uploadId": "u"}, False), Op.COMPLETE_MULTIPART_UPLOAD),
    (("POST", "b", "k", {}, False), Op.NOT_IMPLEMENTED),
    (("GET", "b", "k", {"attributes": ""}, False), Op.GET_OBJECT_ATTRIBUTES),
    (("PUT", "b", "k", {"attributes": ""}, False), Op.NOT_IMPLEMENTED),
    (("GET", "b", None, {"attributes": ""}, False), Op.NOT_IMPLEMENTED),
    (("PUT", "b", "k", {"acl": ""}, False), Op.PUT_OBJECT_ACL),
    # versionId empty or null names the only version an unversioned bucket has.
    (("GET", "b", "k", {"versionId": "null"}, False), Op.GET_OBJECT),
    (("GET", "b", "k", {"acl": "", "versionId": "null"}, False), Op.GET_OBJECT_ACL),
    (("GET", "b", "k", {"attributes": "", "versionId": ""}, False), Op.GET_OBJECT_ATTRIBUTES),
    (("GET", "b", "k", {"versionId": "3HL4kqtJlcpXroDTDmJ"}, False), Op.GET_OBJECT),
    (("DELETE", "b", "k", {"versionId": "3HL4"}, False), Op.DELETE_OBJECT),
    (("PUT", "b", "k", {"versionId": "3HL4"}, False), Op.NOT_IMPLEMENTED),
    (("GET", "b", None, {"versions": ""}, False), Op.LIST_OBJECT_VERSIONS),
    (
        ("GET", "b", None, {"versions": "", "key-marker": "a", "version-id-marker": "x"}, False),
        Op.LIST_OBJECT_VERSIONS,
    ),
    (("GET", "b", "k", {"acl": "", "versionId": "3HL4"}, False), Op.GET_OBJECT_ACL),
    (("PUT", "b", "k", {"acl": "", "versionId": "3HL4"}, False), Op.PUT_OBJECT_ACL),
    (("GET", "b", "k", {"attributes": "", "versionId": "3HL4"}, False), Op.GET_OBJECT_ATTRIBUTES),
    (("PUT", "b", "k", {"tagging": "", "versionId": "3HL4"}, False), Op.PUT_OBJECT_TAGGING),
]


@pytest.mark.parametrize(("args", "expected"), CASES, ids=[str(c[0]) for c in CASES])
def test_resolve(args, expected):
    assert resolve(*args) is expected
