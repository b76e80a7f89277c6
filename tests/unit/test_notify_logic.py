"""Pure logic of event notifications: rule matching, configuration validation (S3's errors),
the event message's shape, target ARNs and the message signature."""

from __future__ import annotations

import json

import pytest

from holdfast.errors import S3Error
from holdfast.index.notify import event_matches, matching_rules
from holdfast.index.records import NotifyEvent
from holdfast.masterkey import Keyring, new_key
from holdfast.s3 import xml
from holdfast.service import notify
from holdfast.service.versionids import encode


def cfg(*rules: dict) -> str:
    return json.dumps({"rules": list(rules)})


@pytest.mark.parametrize(
    ("pattern", "event", "match"),
    [
        ("s3:ObjectCreated:*", "ObjectCreated:Put", True),
        ("s3:ObjectCreated:*", "ObjectCreated:CompleteMultipartUpload", True),
        ("s3:ObjectCreated:*", "ObjectRemoved:Delete", False),
        ("s3:ObjectCreated:Put", "ObjectCreated:Post", False),
        ("s3:ObjectRemoved:DeleteMarkerCreated", "ObjectRemoved:DeleteMarkerCreated", True),
        ("s3:ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated", False),
    ],
)
def test_event_patterns(pattern, event, match) -> None:
    assert event_matches(pattern, event) is match


def test_rules_filter_by_prefix_suffix_and_one_event_per_target() -> None:
    text = cfg(
        {"id": "a", "target": "t", "events": ["s3:ObjectCreated:*"], "prefix": "img/"},
        {"id": "b", "target": "t", "events": ["s3:ObjectCreated:Put"], "suffix": ".jpg"},
        {"id": "c", "target": "u", "events": ["s3:ObjectRemoved:*"]},
    )
    assert matching_rules(text, "ObjectCreated:Put", "img/x.jpg") == [("a", "t")]
    assert matching_rules(text, "ObjectCreated:Put", "doc/x.jpg") == [("b", "t")]
    assert matching_rules(text, "ObjectCreated:Copy", "doc/x.jpg") == []
    assert matching_rules(text, "ObjectRemoved:Delete", "any") == [("c", "u")]
    assert matching_rules(None, "ObjectCreated:Put", "k") == []


def parse(body: str, targets=("hook",)) -> str | None:
    known = {t: notify.Target(t, "http://x/") for t in targets}
    return notify.parse_config(xml.parse(body.encode()), known)


ARN = "arn:holdfast:sqs:us-east-1:hook:webhook"


def queue(events: str, filt: str = "", rule_id: str = "", arn: str = ARN) -> str:
    return f"<QueueConfiguration>{rule_id}<Queue>{arn}</Queue>{events}{filt}</QueueConfiguration>"


def doc(*confs: str) -> str:
    return (
        '<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        + "".join(confs)
        + "</NotificationConfiguration>"
    )


def prefix(value: str, name: str = "prefix") -> str:
    return (
        f"<Filter><S3Key><FilterRule><Name>{name}</Name><Value>{value}</Value></FilterRule>"
        "</S3Key></Filter>"
    )


def code(body: str) -> tuple[str, dict]:
    with pytest.raises(S3Error) as e:
        parse(body)
    return e.value.code, e.value.extra


def test_a_valid_configuration_round_trips() -> None:
    text = parse(
        doc(
            queue("<Event>s3:ObjectCreated:*</Event>", prefix("a/"), "<Id>one</Id>"),
            queue("<Event>s3:ObjectCreated:*</Event>", prefix("b/")),
        )
    )
    rules = json.loads(text)["rules"]
    assert rules[0] | {"events": None} == {
        "id": "one",
        "kind": "Queue",
        "arn": ARN,
        "target": "hook",
        "events": None,
        "prefix": "a/",
        "suffix": "",
    }
    assert len(rules[1]["id"]) == 32  # generated, as S3 does
    rendered = xml.render("NotificationConfiguration", notify.render_config(text)).decode()
    assert "<Name>Prefix</Name><Value>a/</Value>" in rendered
    assert parse(doc()) is None  # empty: removes the configuration
    # MinIO's ARN shape names the same target.
    assert parse(doc(queue("<Event>s3:ObjectRemoved:*</Event>", arn="arn:minio:sqs::hook:webhook")))


def test_invalid_configurations_get_s3_errors() -> None:
    assert code(doc(queue("<Event>s3:ObjectCreated:*</Event>", arn=ARN.replace("hook", "no")))) == (
        "InvalidArgument",
        {
            "ArgumentName1": ARN.replace("hook", "no"),
            "ArgumentValue1": "The destination is not a registered notification target",
        },
    )
    assert code(doc(queue("<Event>s3:ObjectCreated:Nope</Event>")))[0] == "InvalidArgument"
    assert code(doc(queue("<Event>s3:ObjectCreated:*</Event>", prefix("x", "middle"))))[0] == (
        "InvalidArgument"
    )
    twice = "<Filter><S3Key>" + ("<FilterRule><Name>prefix</Name><Value>a</Value></FilterRule>" * 2)
    assert code(doc(queue("<Event>s3:ObjectCreated:*</Event>", twice + "</S3Key></Filter>")))[
        0
    ] == ("InvalidArgument")
    overlapping = doc(
        queue("<Event>s3:ObjectCreated:*</Event>", prefix("a/")),
        queue("<Event>s3:ObjectCreated:Put</Event>", prefix("a/b")),
    )
    assert code(overlapping)[0] == "InvalidArgument"
    assert code(doc(queue("")))[0] == "MalformedXML"  # no event
    assert code("<Other/>")[0] == "MalformedXML"
    assert code(doc("<EventBridgeConfiguration/>"))[0] == "NotImplemented"
    same_id = doc(
        queue("<Event>s3:ObjectCreated:*</Event>", prefix("a/"), "<Id>x</Id>"),
        queue("<Event>s3:ObjectRemoved:*</Event>", prefix("a/"), "<Id>x</Id>"),
    )
    assert code(same_id)[0] == "InvalidArgument"


def test_event_message_shape() -> None:
    created = NotifyEvent(
        26, "bkt", "t", "r", "ObjectCreated:Put", "a b/c+d.txt", 5, "abc", 0, True, 0.5
    )
    (rec,) = notify.event_message(created, "eu-1")["Records"]
    assert rec["eventName"] == "ObjectCreated:Put" and rec["awsRegion"] == "eu-1"
    assert rec["eventTime"] == "1970-01-01T00:00:00.500Z"
    assert rec["s3"]["object"] == {
        "key": "a+b/c%2Bd.txt",
        "size": 5,
        "eTag": "abc",
        "sequencer": "000000000000001A",
    }
    assert rec["s3"]["bucket"]["name"] == "bkt" and rec["s3"]["configurationId"] == "r"
    removed = NotifyEvent(
        27, "bkt", "t", "r", "ObjectRemoved:DeleteMarkerCreated", "k", 0, "", 9, False, 1.0
    )
    obj = notify.event_message(removed, "eu-1")["Records"][0]["s3"]["object"]
    assert obj == {"key": "k", "versionId": encode(9), "sequencer": "000000000000001B"}


def test_target_secrets_are_sealed_and_arns_parse() -> None:
    keyring = Keyring.of([new_key()], "test")
    t = notify.new_target(keyring, "hook", "https://u:p@h:8443/p?q=1", "TOKEN-1", "SECRET-2")
    stored = notify.targets_to_text({"hook": t})
    assert "TOKEN-1" not in stored and "SECRET-2" not in stored
    assert notify.open_token(keyring, t) == "TOKEN-1"
    assert notify.open_secret(keyring, t) == "SECRET-2"
    shown = t.public("us-east-1")
    assert shown["url"] == "https://h:8443/p?…" and shown["auth_token"] is True
    assert notify.arn_target(t.arn("us-east-1")) == "hook"
    assert notify.arn_target("arn:aws:sns:us-east-1:123:topic") is None
    with pytest.raises(ValueError):
        notify.new_target(keyring, "bad name", "http://x/", None, None)
    with pytest.raises(ValueError):
        notify.new_target(keyring, "ok", "file:///etc/passwd", None, None)
    sig = notify.signature("sec", b"body")
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
