"""Alerts: rules, a durable outbox, and delivery over fallback channels with backoff.

The S3 2017 customer lost his alert e-mails because they went out through one provider with
no queue. Here every alert is first committed to an outbox (holdfast/index/outbox.py: a
node-local store in the ops directory, apart from the index engine, so it works while the
index is broken or unreachable), and only then delivered. Delivery walks the configured channels in order
(webhooks, then SMTP); the first that accepts the alert wins. If all fail, the alert is
retried after an exponential backoff with jitter that grows with its own attempt count
(kept in the outbox, so a restart neither forgets an alert nor resets its backoff).

Alerts go out oldest first: an alert that cannot be delivered holds the ones behind it, so
the receiver sees them in the order they were raised.

Rules are pure functions of the status snapshot and the time series (:func:`evaluate`).
A rule reports *conditions* with stable keys ("drive:d1:missing"); a condition raises one
alert when it appears and one "resolved" alert when it has been gone for a while. While it
persists nothing more is sent, however often the rules run: duplicates are suppressed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
import time
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

from holdfast import __version__
from holdfast.config import Config
from holdfast.index.outbox import Outbox
from holdfast.ops import metrics
from holdfast.ops.requestlog import iso_utc
from holdfast.ops.status import BoundedCall, redact_url
from holdfast.workers.limits import jittered_delay

log = logging.getLogger("holdfast.alerts")

SEND_TIMEOUT = 15.0
# A condition must be absent from this many evaluations in a row before it is resolved, so a
# value hovering around a threshold does not flap.
CLEAR_AFTER_EVALUATIONS = 3


@dataclass(frozen=True)
class Condition:
    key: str
    rule: str
    severity: str  # critical, warning, info
    summary: str
    details: dict = field(default_factory=dict)


# -- rules -------------------------------------------------------------------------------------


def evaluate(
    snap: dict, points_10s: list[dict], points_1m: list[dict], config: Config
) -> tuple[list[Condition], set[str]]:
    """Conditions that hold now, and the rules that could be evaluated at all: a rule whose
    input is unknown (the index is unreachable, so corruption cannot be counted) must not
    resolve the conditions it raised earlier."""
    conditions: list[Condition] = []
    known = {"index", "drive", "free_space"}
    index = snap.get("index", {})
    if not index.get("readable"):
        conditions.append(
            Condition(
                "index:unreachable", "index", "critical", f"index unreachable: {index.get('error')}"
            )
        )
    elif not index.get("writable"):
        conditions.append(
            Condition(
                "index:not-writable",
                "index",
                "critical",
                f"index not writable: {index.get('error')}",
            )
        )
    for d in snap.get("drives", []):
        if d["state"] != "ok":
            conditions.append(
                Condition(
                    f"drive:{d['id']}",
                    "drive",
                    "critical",
                    f"drive {d['id']} ({d['path']}) {d['state']}: {d['reason']}",
                    {"drive": d},
                )
            )
        elif d.get("free_percent") is not None and d["free_percent"] < config.alert_free_percent:
            conditions.append(
                Condition(
                    f"free:{d['id']}",
                    "free_space",
                    "warning",
                    f"drive {d['id']} ({d['path']}) has {d['free_percent']:.1f}% free, under {config.alert_free_percent:g}%",
                    {"drive": d},
                )
            )
    if index.get("corrupt_objects") is not None:
        known.add("corruption")
        for ex in index.get("corrupt_examples", []):
            conditions.append(
                Condition(
                    f"corrupt:{ex['bucket']}/{ex['key']}",
                    "corruption",
                    "critical",
                    f"object {ex['bucket']}/{ex['key']} is {ex['state']}: no good copy",
                    ex,
                )
            )
    error = error_rate_condition(points_10s, config)
    if error is not None:
        known.add("error_rate")
        if error.key:
            conditions.append(error)
    if snap.get("repair", {}).get("available"):
        known.add("repair_backlog")
        backlog = backlog_condition(points_1m, config.alert_backlog_minutes)
        if backlog is not None:
            conditions.append(backlog)
    return conditions, known


def error_rate_condition(points_10s: list[dict], config: Config) -> Condition | None:
    """None when there is no traffic data; a Condition with an empty key when it is fine."""
    window = int(config.alert_error_window_seconds // 10) or 1
    recent = [p for p in points_10s[-window:] if p.get("requests") is not None]
    if not recent:
        return None
    requests = sum(p["requests"] for p in recent)
    errors = sum(p["errors_5xx"] for p in recent)
    if requests < config.alert_error_min_requests or errors / requests <= config.alert_error_rate:
        return Condition("", "error_rate", "", "")
    rate = errors / requests
    return Condition(
        "error-rate",
        "error_rate",
        "critical",
        f"{rate:.1%} of {requests:.0f} requests failed with 5xx in the last {config.alert_error_window_seconds:g}s (threshold {config.alert_error_rate:.1%})",
        {"requests": requests, "errors_5xx": errors},
    )


def backlog_condition(points_1m: list[dict], minutes: int) -> Condition | None:
    """The repair backlog grew, never shrinking, over each of the last ``minutes`` minutes."""
    values = [p.get("repair_backlog") for p in points_1m[-(minutes + 1) :]]
    if len(values) < minutes + 1 or any(v is None for v in values):
        return None
    if all(b >= a for a, b in zip(values, values[1:], strict=False)) and values[-1] > values[0]:
        return Condition(
            "repair-backlog",
            "repair_backlog",
            "warning",
            f"repair backlog grew from {values[0]:.0f} to {values[-1]:.0f} over {minutes} minutes",
            {"backlog": values},
        )
    return None


# -- the outbox ------------------------------------------------------------------------------


# -- channels --------------------------------------------------------------------------------


class Channel(Protocol):
    name: str

    def send(self, payload: dict) -> None:
        """Deliver or raise. Blocking; runs in a thread with a timeout."""


class WebhookChannel:
    def __init__(self, url: str) -> None:
        self.url = url
        self.name = f"webhook {redact_url(url)}"

    def send(self, payload: dict) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "User-Agent": f"holdfast/{__version__}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT - 5) as response:
            response.read(65536)


class SmtpChannel:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        to: list[str],
        starttls: bool,
        user: str | None,
        password: str | None,
    ) -> None:
        self.host, self.port = host, port
        self.sender, self.to = sender, to
        self.starttls = starttls
        self.user, self.password = user, password
        self.name = f"smtp {host}:{port}"

    def send(self, payload: dict) -> None:
        msg = EmailMessage()
        msg["Subject"] = (
            f"[holdfast {payload['node']['hostname']}] {payload['severity']}: {payload['summary']}"[
                :200
            ]
        )
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(payload["created_epoch"], localtime=False)
        msg["Message-ID"] = f"<{payload['id'].replace('@', '.').replace(':', '.')}@holdfast>"
        msg["X-Holdfast-Alert-Id"] = payload["id"]
        msg.set_content(json.dumps(payload, indent=2))
        with smtplib.SMTP(self.host, self.port, timeout=SEND_TIMEOUT - 5) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(msg)


def channels_from_config(config: Config, env: dict[str, str]) -> list[Channel]:
    """Webhooks first, in the order given, then SMTP. SMTP credentials come from the
    environment only, so they never appear in the configuration the status page shows."""
    channels: list[Channel] = [WebhookChannel(u) for u in config.alert_webhooks]
    if config.alert_smtp and config.alert_email_to:
        host, _, port = config.alert_smtp.rpartition(":")
        channels.append(
            SmtpChannel(
                host or "127.0.0.1",
                int(port or 25),
                config.alert_email_from,
                config.alert_email_to,
                config.alert_smtp_starttls,
                env.get("HOLDFAST_ALERT_SMTP_USER"),
                env.get("HOLDFAST_ALERT_SMTP_PASSWORD"),
            )
        )
    return channels


def payload_of(alert: dict, node: dict) -> dict:
    return {
        "id": alert["uid"],
        "rule": alert["rule"],
        "kind": alert["kind"],
        "severity": alert["severity"],
        "summary": alert["summary"],
        "condition": alert["condition_key"],
        "details": alert["details"],
        "created": iso_utc(alert["created"]),
        "created_epoch": alert["created"],
        "attempt": alert["attempts"] + 1,
        "node": node,
    }


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Equal-jitter exponential backoff after ``attempts`` failed rounds (workers/limits)."""
    return jittered_delay(base, cap, max(0, attempts - 1))


class Deliverer:
    """Delivers the outbox, oldest alert first, over the channels in order."""

    def __init__(self, outbox: Outbox, channels: list[Channel], config: Config, node: dict) -> None:
        self.outbox = outbox
        self.channels = channels
        self.config = config
        self.node = node
        self.wake = asyncio.Event()
        self._outbox_call = BoundedCall("outbox")
        self._channel_calls = [BoundedCall(f"alert{i}") for i in range(len(channels))]

    async def run(self) -> None:
        while True:
            try:
                delay = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert delivery failed")
                delay = 5.0
            if delay > 0:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), delay)
                except TimeoutError:
                    pass

    async def step(self) -> float:
        """Deliver the oldest pending alert if it is due; returns how long to wait."""
        ok, alert = await self._outbox_call(5.0, self.outbox.next_pending)
        if not ok:
            log.warning("alert outbox unreadable: %s", alert)
            return 5.0
        if alert is None:
            return 5.0
        wait = alert["next_attempt"] - time.time()
        if wait > 0:
            return min(wait, 5.0)
        payload = payload_of(alert, self.node)
        errors: list[tuple[str, str]] = []
        for channel, call in zip(self.channels, self._channel_calls, strict=True):
            sent, why = await call(SEND_TIMEOUT, channel.send, payload)
            metrics.ALERT_DELIVERIES.labels(
                channel.name.split()[0], "ok" if sent else "failed"
            ).inc()
            if sent:
                await self._outbox_call(5.0, self.outbox.delivered, alert["id"], channel.name)
                log.info("alert %s delivered via %s", alert["uid"], channel.name)
                return 0.0
            errors.append((channel.name, str(why)))
        delay = retry_delay(
            alert["attempts"] + 1,
            self.config.alert_retry_base_seconds,
            self.config.alert_retry_cap_seconds,
        )
        await self._outbox_call(5.0, self.outbox.failed, alert["id"], errors, time.time() + delay)
        log.warning("alert %s not delivered (%s); retrying in %.1fs", alert["uid"], errors, delay)
        return delay

    def close(self) -> None:
        for call in (self._outbox_call, *self._channel_calls):
            call.close()
