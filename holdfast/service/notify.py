"""Event notifications: the operator's targets, a bucket's notification configuration, and
the event message a target receives.

* **Targets** are webhooks the operator registers (``holdfast notify target add``); buckets
  refer to them by ARN, ``arn:holdfast:sqs:<region>:<name>:webhook`` (the shape MinIO uses,
  so ``mc event add`` style ARNs read the same). They live in the index (meta
  ``notify_targets``) so every node of a cluster delivers with the same ones; a target's
  bearer token and HMAC secret are sealed with the master key (holdfast/masterkey.py, the
  target name as associated data) and never printed or logged.
* **The configuration** is S3's NotificationConfiguration XML, validated as S3 validates it
  (unknown destination, unknown event, bad or overlapping filters: InvalidArgument) and
  stored as JSON (holdfast/index/notify.py reads it inside every object write).
* **The message** is S3's event message structure (``Records[]``, eventVersion 2.1).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, urlsplit

from holdfast.errors import S3Error
from holdfast.index.notify import CONFIG_NAME, CREATED, EVENTS, REMOVED, event_matches
from holdfast.index.records import NotifyEvent
from holdfast.masterkey import Keyring, sealed_key_id, text_bytes
from holdfast.service import versionids

META_TARGETS = "notify_targets"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
KINDS = {  # configuration element -> the element naming its destination
    "QueueConfiguration": "Queue",
    "TopicConfiguration": "Topic",
    "CloudFunctionConfiguration": "CloudFunction",
}
SIGNATURE_HEADER = "X-Holdfast-Signature"
MAX_RULE_ID = 255
CONCRETE = [f"ObjectCreated:{e}" for e in CREATED] + [f"ObjectRemoved:{e}" for e in REMOVED]

__all__ = ["CONFIG_NAME"]


# -- targets ----------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    token: str | None = None  # sealed text (hfsealed1:...), sent as "Authorization: Bearer"
    secret: str | None = None  # sealed text: the HMAC-SHA256 key of the signature header
    added: float = 0.0

    def arn(self, region: str) -> str:
        return target_arn(self.name, region)

    def public(self, region: str) -> dict:
        """What ``notify target list`` shows: never a token or secret, only whether set."""
        return {
            "name": self.name,
            "arn": self.arn(region),
            "url": redact(self.url),
            "auth_token": self.token is not None,
            "hmac_secret": self.secret is not None,
            "added": self.added,
        }


def target_arn(name: str, region: str) -> str:
    return f"arn:holdfast:sqs:{region}:{name}:webhook"


def arn_target(arn: str) -> str | None:
    """The target name an ARN refers to (None if it is not a webhook target's ARN). Any
    partition and region are accepted, so MinIO-style ``arn:minio:sqs::NAME:webhook`` works."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or parts[5] != "webhook":
        return None
    return parts[4] or None


def redact(url: str) -> str:
    """A URL without user info or query (they may carry credentials)."""
    try:
        u = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = u.hostname or ""
    if u.port:
        host += f":{u.port}"
    return f"{u.scheme}://{host}{u.path}" + ("?…" if u.query else "")


def check_target_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ValueError(
            f"target name {name!r}: letters, digits, '_', '.' and '-', at most 63, "
            "starting with a letter or digit"
        )
    return name


def check_url(url: str) -> str:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"a webhook URL is http:// or https://, got {redact(url)!r}")
    return url


def _aad(name: str) -> bytes:
    return b"holdfast notify target|" + name.encode()


def targets_from_text(text: str | None) -> dict[str, Target]:
    if not text:
        return {}
    return {name: Target(**d) for name, d in json.loads(text).items()}


def targets_to_text(targets: dict[str, Target]) -> str:
    return json.dumps({n: asdict(t) for n, t in sorted(targets.items())})


async def load_targets(index: Any) -> dict[str, Target]:
    return targets_from_text(await index.get_meta(META_TARGETS))


def new_target(
    keyring: Keyring, name: str, url: str, token: str | None, secret: str | None
) -> Target:
    check_target_name(name)
    check_url(url)
    return Target(
        name=name,
        url=url,
        token=keyring.seal_text(token, _aad(name)) if token else None,
        secret=keyring.seal_text(secret, _aad(name) + b"|hmac") if secret else None,
        added=time.time(),
    )


def open_token(keyring: Keyring, target: Target) -> str | None:
    return keyring.open_text(target.token, _aad(target.name)) if target.token else None


def open_secret(keyring: Keyring, target: Target) -> str | None:
    if not target.secret:
        return None
    return keyring.open_text(target.secret, _aad(target.name) + b"|hmac")


def sealed_ids(targets: dict[str, Target]) -> set[str]:
    """The master key ids the targets' secrets are sealed under."""
    return {
        sealed_key_id(text_bytes(v))
        for t in targets.values()
        for v in (t.token, t.secret)
        if v is not None
    }


def reseal_targets(index: Any, keyring: Keyring) -> int:
    """``holdfast key rotate``: seal every target's token and secret under the current key.
    ``index`` is a BlockingIndex. Returns how many targets changed."""
    targets = targets_from_text(index.get_meta(META_TARGETS))
    changed = 0
    for t in targets.values():
        if not (sealed_ids({t.name: t}) - {keyring.current_id}):
            continue
        token, secret = open_token(keyring, t), open_secret(keyring, t)
        fresh = new_target(keyring, t.name, t.url, token, secret)
        fresh.added = t.added
        targets[t.name] = fresh
        changed += 1
    if changed:
        index.set_meta(META_TARGETS, targets_to_text(targets))
    return changed


# -- the bucket's configuration ---------------------------------------------------------------


def _invalid(message: str, name: str | None = None, value: str | None = None) -> S3Error:
    extra = {}
    if name is not None:
        extra["ArgumentName"] = name[:256]
    if value is not None:
        extra["ArgumentValue"] = value[:256]
    return S3Error("InvalidArgument", message, **extra)


def parse_config(doc: Any, targets: dict[str, Target]) -> str | None:
    """A NotificationConfiguration element (namespaces stripped) to the stored JSON; None
    for an empty configuration (which removes it, as on S3). Raises S3Error."""
    if doc is None or doc.tag != "NotificationConfiguration":
        raise S3Error("MalformedXML")
    rules: list[dict] = []
    unknown_dest: list[str] = []
    for el in doc:
        if el.tag == "EventBridgeConfiguration":
            raise S3Error("NotImplemented", "EventBridge notifications are not implemented.")
        kind = KINDS.get(el.tag)
        if kind is None:
            raise S3Error("MalformedXML")
        arn = (el.findtext(kind) or "").strip()
        if not arn:
            raise S3Error("MalformedXML")
        events = [(e.text or "").strip() for e in el.findall("Event")]
        if not events:
            raise S3Error("MalformedXML")
        for event in events:
            if event not in EVENTS:
                raise _invalid("The event is not supported for notifications", event, event)
        rule_id = (el.findtext("Id") or "").strip() or _new_id()
        if len(rule_id) > MAX_RULE_ID:
            raise _invalid("The ID is longer than 255 characters", "Id", rule_id)
        prefix, suffix = _filter(el.find("Filter"))
        target = arn_target(arn)
        if target is None or target not in targets:
            unknown_dest.append(arn)
            continue
        rules.append(
            {
                "id": rule_id,
                "kind": kind,
                "arn": arn,
                "target": target,
                "events": events,
                "prefix": prefix,
                "suffix": suffix,
            }
        )
    if unknown_dest:
        extra = {}
        for i, arn in enumerate(unknown_dest, 1):
            extra[f"ArgumentName{i}"] = arn[:256]
            extra[f"ArgumentValue{i}"] = "The destination is not a registered notification target"
        raise S3Error(
            "InvalidArgument",
            "Unable to validate the following destination configurations",
            **extra,
        )
    ids = [r["id"] for r in rules]
    if len(set(ids)) != len(ids):
        raise _invalid("Two notification configurations have the same ID", "Id")
    _check_overlaps(rules)
    if not rules:
        return None
    return json.dumps({"rules": rules}, separators=(",", ":"))


def _new_id() -> str:
    return secrets.token_hex(16)


def _filter(el: Any) -> tuple[str, str]:
    if el is None:
        return "", ""
    key = el.find("S3Key")
    if key is None:
        return "", ""
    found: dict[str, str] = {}
    for rule in key.findall("FilterRule"):
        name = (rule.findtext("Name") or "").strip().lower()
        value = rule.findtext("Value") or ""
        if name not in ("prefix", "suffix"):
            raise _invalid(
                "filter rule name must be either prefix or suffix", "FilterRule", name or "Name"
            )
        if name in found:
            raise _invalid(f"Cannot specify more than one {name} rule in a filter.", "FilterRule")
        if len(value) > 1024:
            raise _invalid("The filter value is longer than 1024 characters", "FilterRule")
        found[name] = value
    return found.get("prefix", ""), found.get("suffix", "")


def _events_overlap(a: list[str], b: list[str]) -> bool:
    """Whether some event would match a pattern of each list."""
    return any(
        any(event_matches(x, e) for x in a) and any(event_matches(y, e) for y in b)
        for e in CONCRETE
    )


def _check_overlaps(rules: list[dict]) -> None:
    """S3 refuses two rules for the same event type whose filters could both match one key
    (a prefix of one starts the other's, and a suffix likewise)."""
    for i, a in enumerate(rules):
        for b in rules[i + 1 :]:
            if not _events_overlap(a["events"], b["events"]):
                continue
            prefixes = a["prefix"].startswith(b["prefix"]) or b["prefix"].startswith(a["prefix"])
            suffixes = a["suffix"].endswith(b["suffix"]) or b["suffix"].endswith(a["suffix"])
            if prefixes and suffixes:
                raise _invalid(
                    "Configuration is ambiguously defined. Cannot have overlapping suffixes "
                    "in two rules if the prefixes are overlapping for the same event type."
                )


def render_config(text: str | None) -> list:
    """The stored JSON as NotificationConfiguration children."""
    children: list = []
    for rule in json.loads(text).get("rules", []) if text else []:
        body: list = [("Id", rule["id"]), (rule["kind"], rule["arn"])]
        body += [("Event", e) for e in rule["events"]]
        filters = [
            ("FilterRule", [("Name", name.capitalize()), ("Value", rule[name])])
            for name in ("prefix", "suffix")
            if rule.get(name)
        ]
        if filters:
            body.append(("Filter", [("S3Key", filters)]))
        children.append((f"{rule['kind']}Configuration", body))
    return children


# -- the event message --------------------------------------------------------------------------


def _iso(epoch: float) -> str:
    dt = datetime.fromtimestamp(epoch, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def version_id(event: NotifyEvent) -> str | None:
    if event.vseq and not event.vnull:
        return versionids.encode(event.vseq)
    return "null" if event.vseq else None


def event_message(event: NotifyEvent, region: str) -> dict:
    """S3's event message structure for one event (one record per message, as S3 sends)."""
    obj: dict[str, Any] = {"key": quote_plus(event.key, safe="/")}
    if event.event.startswith("ObjectCreated:"):
        obj["size"] = event.size
        obj["eTag"] = event.etag
    vid = version_id(event)
    if vid is not None:
        obj["versionId"] = vid
    obj["sequencer"] = f"{event.id:016X}"
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "holdfast:s3",
                "awsRegion": region,
                "eventTime": _iso(event.created),
                "eventName": event.event,
                "userIdentity": {"principalId": ""},
                "requestParameters": {"sourceIPAddress": ""},
                "responseElements": {},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": event.config_id,
                    "bucket": {
                        "name": event.bucket,
                        "ownerIdentity": {"principalId": ""},
                        "arn": f"arn:aws:s3:::{event.bucket}",
                    },
                    "object": obj,
                },
            }
        ]
    }


def signature(secret: str, body: bytes) -> str:
    """The value of the X-Holdfast-Signature header: ``sha256=<hex HMAC of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
