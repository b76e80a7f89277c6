"""Back-end stores registered with ``holdfast store add`` (an external S3 service): how their
credentials are sealed in the index, how a registration becomes a :class:`S3Store`, and the
check that a back-end really is one before it is registered (docs/stores.md).

Store ids: a back-end is no node's drive, so its id is ``@s3/<name>``; ``@`` cannot start a
node name (holdfast/stores/registry.py), so it never collides with ``<node>/<drive>``.

boto3 (holdfast/stores/s3.py) is imported only when a back-end is opened or checked: every
node process imports this module, and most nodes have no back-end store (the import was a
third of a process's start-up CPU; docs/failure-testing.md, "Restart at scale").
"""

from __future__ import annotations

import errno
import json
import re
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from holdfast.index.records import BackendRecord
from holdfast.masterkey import Keyring
from holdfast.stores.registry import NODE_NAME
from holdfast.stores.s3_settings import LimitSettings, S3Settings

if TYPE_CHECKING:
    from holdfast.stores.s3 import S3Store

BACKEND_PREFIX = "@s3/"


class BackendRefused(Exception):
    """The back-end cannot be used as given: the message is one line, for the operator."""


def backend_store_id(name: str) -> str:
    return BACKEND_PREFIX + name


def check_name(name: str) -> str:
    if not NODE_NAME.fullmatch(name):
        raise BackendRefused(
            f"not a store name: {name!r} (1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit)"
        )
    if re.fullmatch(r"d[0-9]+", name):
        raise BackendRefused(f"{name!r} is how this node names its drives: choose another name")
    return name


def _aad(name: str) -> bytes:
    """Sealed credentials are bound to their store's name: moved to another row, they do
    not open."""
    return b"holdfast-backend-store:" + name.encode()


def seal_credentials(keyring: Keyring, name: str, access_key: str, secret_key: str) -> bytes:
    plain = json.dumps({"access_key": access_key, "secret_key": secret_key}).encode()
    return keyring.seal(plain, _aad(name))


def reseal_backends(index, keyring: Keyring) -> int:
    """``holdfast key rotate``: seal every back-end's credentials under the current key (the
    old keys are dropped afterwards). Returns how many were re-sealed."""
    from holdfast.masterkey import sealed_key_id

    count = 0
    for record in index.backend_stores():
        if sealed_key_id(record.secret) == keyring.current_id:
            continue
        plain = keyring.open(record.secret, _aad(record.name))
        index.set_backend_secret(record.name, keyring.seal(plain, _aad(record.name)))
        count += 1
    return count


def settings_of(record: BackendRecord, keyring: Keyring) -> S3Settings:
    creds = json.loads(keyring.open(record.secret, _aad(record.name)))
    s = record.settings
    return S3Settings(
        endpoint=s["endpoint"],
        bucket=s["bucket"],
        access_key=creds["access_key"],
        secret_key=creds["secret_key"],
        region=s.get("region") or "us-east-1",
        prefix=s.get("prefix", ""),
        quota=int(s["quota"]),
    )


def open_backend(
    record: BackendRecord, keyring: Keyring, limits: LimitSettings | None = None
) -> S3Store:
    if record.kind != "s3":
        raise ValueError(f"store {record.name}: unknown kind {record.kind!r}")
    from holdfast.stores.s3 import S3Store

    return S3Store(record.store_id, settings_of(record, keyring), limits)


def new_record(name: str, settings: S3Settings, keyring: Keyring) -> BackendRecord:
    return BackendRecord(
        name=name,
        kind="s3",
        store_id=backend_store_id(name),
        settings=settings.public(),
        secret=seal_credentials(keyring, name, settings.access_key, settings.secret_key),
        added=time.time(),
    )


def normalize_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


def check_backend(settings: S3Settings, timeout: float = 10.0) -> None:
    """Prove the back-end is an S3 service that knows these credentials, has the bucket and
    gives back what it is given: a listing, then a small object written, read back and
    removed. BackendRefused (one line) otherwise."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    from holdfast.stores.s3 import make_client

    url = urlsplit(settings.endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise BackendRefused(f"not an http(s) URL: {settings.endpoint!r}")
    where = f"{settings.endpoint} bucket {settings.bucket!r}"
    client = make_client(settings, LimitSettings(timeout=timeout, concurrency=2))
    probe = f"{settings.prefix}tmp/.check-{secrets.token_hex(8)}"
    body = secrets.token_bytes(64)
    try:
        client.list_objects_v2(Bucket=settings.bucket, Prefix=settings.prefix, MaxKeys=1)
        client.put_object(Bucket=settings.bucket, Key=probe, Body=body)
        got = client.get_object(Bucket=settings.bucket, Key=probe)["Body"].read()
        client.delete_object(Bucket=settings.bucket, Key=probe)
    except EndpointConnectionError as e:
        raise BackendRefused(f"cannot connect to {settings.endpoint}: {e}") from None
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            raise BackendRefused(f"{where}: no such bucket") from None
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied") or status in (
            401,
            403,
        ):
            raise BackendRefused(f"{where}: the credentials were refused ({code})") from None
        if not code or code == str(status):
            raise BackendRefused(
                f"{settings.endpoint} does not answer as an S3 service (HTTP {status})"
            ) from None
        raise BackendRefused(f"{where}: {code} (HTTP {status})") from None
    except (BotoCoreError, OSError, ValueError) as e:
        raise BackendRefused(
            f"{settings.endpoint} does not answer as an S3 service: {type(e).__name__}"
        ) from None
    if got != body:
        raise BackendRefused(f"{settings.endpoint} does not answer as an S3 service")


def classify_os_error(e: OSError) -> str:
    """A short reason for the status page."""
    return {errno.EACCES: "credentials refused", errno.ETIMEDOUT: "timed out"}.get(
        e.errno or 0, str(e)
    )
