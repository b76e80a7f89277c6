"""Alerts: durable outbox, delivery over webhook then SMTP, retry with backoff, duplicate
suppression, and survival across kill -9 (the S3 2017 customer who lost his alert mail).

Real receivers: an HTTP server that fails its first N calls, and aiosmtpd."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import start_server
from tests.e2e.ops_helpers import Mailbox, Webhook, metric_value, metrics_text, status, wait_for

FAST = ["--alert-retry-base", "0.2", "--alert-retry-max", "1", "--alert-eval-interval", "0.5"]


@pytest.fixture
def webhook():
    hooks: list[Webhook] = []

    def make(fail_first: int = 0) -> Webhook:
        hooks.append(Webhook(fail_first))
        return hooks[-1]

    yield make
    for h in hooks:
        h.close()


@pytest.fixture
def mailbox():
    box = Mailbox()
    yield box
    box.close()


def alerts_of(server) -> dict:
    return status(server)["alerts"]


def test_webhook_retried_with_backoff_until_it_accepts(tmp_path, webhook):
    hook = webhook(fail_first=3)
    server = start_server(tmp_path, extra_args=["--alert-webhook", hook.url, *FAST])
    try:
        wait_for(lambda: hook.received, 20, "the restart alert to get through")
        (alert,) = hook.received
        assert alert["rule"] == "node_restart" and alert["kind"] == "event"
        assert alert["attempt"] == 4 and hook.calls == 4  # three failures, then delivered
        assert alert["node"]["boot_id"] and alert["id"].startswith("restart:")
        state = wait_for(
            lambda: (
                (a := alerts_of(server)).get("recent")
                and a["recent"][0]["state"] == "delivered"
                and a
            ),
            10,
            "status to show the delivery",
        )
        assert state["pending"] == 0 and state["recent"][0]["delivered_via"].startswith("webhook")
        assert "s3cr3t-token" not in json.dumps(status(server))  # the URL's query is a secret
        text = metrics_text(server)
        assert metric_value(text, "holdfast_alert_delivery_attempts_total", result="failed") == 3
        assert metric_value(text, "holdfast_alert_delivery_attempts_total", result="ok") == 1
    finally:
        server.stop()


def test_falls_back_to_smtp_when_webhook_fails(tmp_path, webhook, mailbox):
    hook = webhook(fail_first=10**6)  # never accepts
    server = start_server(
        tmp_path,
        extra_args=[
            "--alert-webhook", hook.url,
            "--alert-smtp", mailbox.address,
            "--alert-email-to", "ops@example.com",
            "--alert-email-from", "holdfast@example.com",
            *FAST,
        ],
    )  # fmt: skip
    try:
        wait_for(lambda: mailbox.messages, 20, "the alert mail")
        (mail,) = mailbox.messages
        assert mail["to"] == ["ops@example.com"] and mail["from"] == "holdfast@example.com"
        assert "node_restart" in mail["data"] and "Subject: [holdfast" in mail["data"]
        assert hook.calls >= 1 and not hook.received  # the webhook was tried first
        recent = wait_for(
            lambda: (r := alerts_of(server).get("recent")) and r[0]["state"] == "delivered" and r,
            10,
            "status to show the delivery",
        )
        assert recent[0]["delivered_via"].startswith("smtp")
    finally:
        server.stop()


def test_condition_alerts_once_then_resolves(tmp_path, webhook):
    hook = webhook()
    server = start_server(
        tmp_path,
        drives=2,
        extra_args=["--alert-webhook", hook.url, "--status-refresh", "0.3", *FAST],
    )
    pulled = tmp_path / "pulled"
    try:
        wait_for(lambda: hook.received, 10, "the restart alert")
        server.data_dirs[1].rename(pulled)
        wait_for(lambda: any(a["rule"] == "drive" for a in hook.received), 15, "the drive alert")
        time.sleep(3)  # many evaluations with the drive still gone: no repeat
        drive_alerts = [a for a in hook.received if a["rule"] == "drive"]
        assert len(drive_alerts) == 1
        assert drive_alerts[0]["kind"] == "firing" and "d1" in drive_alerts[0]["summary"]
        active = alerts_of(server)["active"]
        assert [a["key"] for a in active] == ["drive:d1"]
        pulled.rename(server.data_dirs[1])
        wait_for(
            lambda: any(a["kind"] == "resolved" for a in hook.received), 15, "the resolved alert"
        )
        kinds = [a["kind"] for a in hook.received if a["rule"] == "drive"]
        assert kinds == ["firing", "resolved"]
    finally:
        server.stop()


def test_outbox_survives_kill9(tmp_path, webhook):
    dead = webhook(fail_first=10**6)  # every delivery fails while the first node runs
    server = start_server(tmp_path, drives=2, extra_args=["--alert-webhook", dead.url, *FAST])
    first_boot = status(server)["node"]["boot_id"]
    server.data_dirs[1].rename(tmp_path / "pulled")  # raise a condition alert too
    pending = wait_for(
        lambda: (a := alerts_of(server)).get("pending", 0) >= 2 and a["last_error"] and a,
        20,
        "two undelivered alerts",
    )
    assert "500" in pending["last_error"]
    server.kill9()

    good = webhook()
    server.extra_args = ["--alert-webhook", good.url, *FAST]
    server.start()
    try:
        wait_for(lambda: len(good.received) >= 3, 20, "the old alerts and the new restart alert")
        ids = [a["id"] for a in good.received]
        assert ids[0] == f"restart:{first_boot}"  # oldest first, raised before the kill
        assert any(a["rule"] == "drive" and a["kind"] == "firing" for a in good.received)
        second = [a for a in good.received if a["rule"] == "node_restart"][-1]
        assert second["details"]["previous_shutdown"] == "unclean"
        assert second["severity"] == "warning"
        assert len(ids) == len(set(ids))
    finally:
        (tmp_path / "pulled").rename(server.data_dirs[1])
        server.stop()
