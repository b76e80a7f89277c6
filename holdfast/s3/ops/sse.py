"""Server-side encryption at the S3 front: the request headers (SSE-S3, SSE-C and the copy
source's SSE-C key), the bucket default (Put/Get/DeleteBucketEncryption) and S3's errors.

The cryptography is holdfast/service/encryption.py's. A customer key lives only in this
request's memory: it is never stored, logged or echoed (only its MD5 is).
"""

from __future__ import annotations

import base64
import binascii
import json

from holdfast.errors import S3Error
from holdfast.index.records import ObjectRecord
from holdfast.s3.access import ENCRYPTION
from holdfast.s3.http import Request, Response
from holdfast.s3.ops.buckets import read_xml_body, xml_response
from holdfast.s3.ops.common import Context, bucket_config
from holdfast.service.encryption import (
    META_HEADER,
    SSE_S3,
    BlockCipher,
    Encryption,
    WrongKey,
    key_md5,
    new_encryption,
    open_data_key,
)

CONFIG_NAME = ENCRYPTION
SSE = "x-amz-server-side-encryption"
C_PREFIX = "x-amz-server-side-encryption-customer-"
COPY_C_PREFIX = "x-amz-copy-source-server-side-encryption-customer-"


def customer_key(request: Request, prefix: str = C_PREFIX) -> bytes | None:
    """The SSE-C key the request carries under ``prefix``, checked as S3 checks it."""
    algorithm = request.headers.get(prefix + "algorithm")
    key_text = request.headers.get(prefix + "key")
    md5_text = request.headers.get(prefix + "key-md5")
    if algorithm is None and key_text is None and md5_text is None:
        return None
    if algorithm is None:
        raise S3Error(
            "InvalidArgument",
            "Requests specifying Server Side Encryption with Customer provided keys must "
            "provide a valid encryption algorithm.",
            ArgumentName=prefix + "algorithm",
        )
    if algorithm != "AES256":
        raise S3Error(
            "InvalidEncryptionAlgorithmError",
            "The encryption request you specified is not valid. The valid value is AES256.",
            ArgumentName=prefix + "algorithm",
            ArgumentValue=algorithm[:64],
        )
    if key_text is None or md5_text is None:
        raise S3Error(
            "InvalidArgument",
            "Requests specifying Server Side Encryption with Customer provided keys must "
            "provide an appropriate secret key and its MD5.",
            ArgumentName=prefix + ("key" if key_text is None else "key-MD5"),
        )
    try:
        key = base64.b64decode(key_text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise S3Error(
            "InvalidArgument",
            "The secret key was invalid for the specified algorithm.",
            ArgumentName=prefix + "key",
        )
    if key_md5(key) != md5_text.strip():
        raise S3Error(
            "InvalidArgument",
            "The calculated MD5 hash of the key did not match the hash that was provided.",
            ArgumentName=prefix + "key-MD5",
        )
    if request.scheme != "https":
        raise S3Error(
            "InvalidRequest",
            "Requests specifying Server Side Encryption with Customer provided keys must be "
            "made over a secure connection.",
        )
    return key


async def bucket_default(ctx: Context) -> str | None:
    """The request bucket's default algorithm (read with the access decision's statement)."""
    text = await bucket_config(ctx, CONFIG_NAME)
    return json.loads(text)["algorithm"] if text else None


async def for_write(ctx: Context) -> tuple[Encryption, bytes, str] | None:
    """How a new object (or upload) is to be encrypted, from its headers or else the bucket's
    default: (description, data key, ETag kind), or None for no encryption."""
    sse = ctx.request.headers.get(SSE)
    key = customer_key(ctx.request)
    if sse is not None and key is not None:
        raise S3Error(
            "InvalidArgument",
            "Server Side Encryption with Customer provided key is incompatible with the "
            "encryption method specified",
            ArgumentName=SSE,
            ArgumentValue=sse[:64],
        )
    if sse is not None:
        if sse == "aws:kms" or sse == "aws:kms:dsse":
            raise S3Error("NotImplemented", "SSE-KMS is not implemented by Holdfast.")
        if sse != SSE_S3:
            raise S3Error(
                "InvalidArgument",
                "The encryption method specified is not supported",
                ArgumentName=SSE,
                ArgumentValue=sse[:64],
            )
    if key is None and sse is None and await bucket_default(ctx) is None:
        return None
    keyring = ctx.service.users.keyring
    enc, data_key = new_encryption(keyring, ctx.service.config.block_size, key)
    return enc, data_key, enc.kind


def describe(obj: ObjectRecord | None) -> Encryption | None:
    return Encryption.from_headers(obj.headers) if obj is not None else None


def cipher_for_read(ctx: Context, obj: ObjectRecord, prefix: str = C_PREFIX) -> BlockCipher | None:
    """The block cipher to read ``obj`` with (None if it is not encrypted), checking the
    SSE-C key the request must carry for an SSE-C object, and must not carry otherwise."""
    enc = describe(obj)
    key = customer_key(ctx.request, prefix)
    if enc is None or enc.kind != "C":
        if key is not None:
            raise S3Error(
                "InvalidRequest",
                "The encryption parameters are not applicable to this object.",
            )
        if enc is None:
            return None
    elif key is None:
        raise S3Error(
            "InvalidRequest",
            "The object was stored using a form of Server Side Encryption. The correct "
            "parameters must be provided to retrieve the object.",
        )
    try:
        data_key = open_data_key(enc, ctx.service.users.keyring, key)
    except WrongKey:
        raise S3Error("AccessDenied", "Access Denied") from None
    return BlockCipher(data_key, enc.plain_block)


def public_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != META_HEADER}


# -- PutBucketEncryption / GetBucketEncryption / DeleteBucketEncryption ------------------------


async def put_bucket_encryption(ctx: Context) -> Response:
    await ctx.owned_bucket()
    doc = await read_xml_body(ctx)
    if doc is None or doc.tag != "ServerSideEncryptionConfiguration":
        raise S3Error("MalformedXML")
    rules = doc.findall("Rule")
    if len(rules) != 1:
        raise S3Error("MalformedXML")
    default = rules[0].find("ApplyServerSideEncryptionByDefault")
    if default is None:
        raise S3Error("MalformedXML")
    algorithm = (default.findtext("SSEAlgorithm") or "").strip()
    if algorithm in ("aws:kms", "aws:kms:dsse"):
        raise S3Error("NotImplemented", "SSE-KMS is not implemented by Holdfast.")
    if algorithm != SSE_S3 or default.find("KMSMasterKeyID") is not None:
        raise S3Error("MalformedXML")
    value = json.dumps({"algorithm": SSE_S3})
    if not await ctx.service.node.index.set_bucket_config(ctx.bucket, CONFIG_NAME, value):
        raise S3Error("NoSuchBucket", BucketName=ctx.bucket)
    return Response(200)


async def get_bucket_encryption(ctx: Context) -> Response:
    await ctx.owned_bucket()
    algorithm = await bucket_default(ctx)
    if algorithm is None:
        raise S3Error("ServerSideEncryptionConfigurationNotFoundError", BucketName=ctx.bucket)
    rule = [
        ("ApplyServerSideEncryptionByDefault", [("SSEAlgorithm", algorithm)]),
        ("BucketKeyEnabled", "false"),
    ]
    return xml_response("ServerSideEncryptionConfiguration", [("Rule", rule)])


async def delete_bucket_encryption(ctx: Context) -> Response:
    await ctx.owned_bucket()
    await ctx.service.node.index.set_bucket_config(ctx.bucket, CONFIG_NAME, None)
    return Response(204)
