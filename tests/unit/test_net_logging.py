"""Rejections are counted every time but logged at most once per peer per minute
(holdfast/net/frames.py, holdfast/net/tls.py): a peer sending garbage every millisecond
must show in the log without flooding it."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY

from holdfast.net import frames, tls
from holdfast.net.frames import BadFrame, Kind


def value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_rejections_are_all_counted_and_logged_once_per_peer(caplog, monkeypatch):
    monkeypatch.setattr(frames, "_reject_log", tls.OncePerMinute())
    labels = {"peer": "nX", "kind": "data"}
    before = value("holdfast_internal_messages_rejected_total", labels)
    with caplog.at_level(logging.WARNING, logger="holdfast.net"):
        for _ in range(50):
            frames.reject("nX", BadFrame("frame checksum mismatch", Kind.DATA))
        frames.reject("nY", BadFrame("header checksum mismatch"))
    assert value("holdfast_internal_messages_rejected_total", labels) == before + 50
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "from node nX rejected, not applied" in lines[0] and "nY" in lines[1]


def test_tls_refusals_likewise(caplog, monkeypatch):
    monkeypatch.setattr(tls, "_refusal_log", tls.OncePerMinute())
    before = value("holdfast_internal_tls_refused_total", {"reason": "expired"})
    with caplog.at_level(logging.WARNING, logger="holdfast.net"):
        for _ in range(20):
            tls.refuse("expired", "n1@10.0.0.1:7000", "certificate has expired")
    assert value("holdfast_internal_tls_refused_total", {"reason": "expired"}) == before + 20
    assert len(caplog.records) == 1


def test_once_per_minute_forgets_after_the_interval(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(tls.time, "monotonic", lambda: now[0])
    gate = tls.OncePerMinute()
    assert gate.allow("a") and not gate.allow("a") and gate.allow("b")
    now[0] += 59.9
    assert not gate.allow("a")
    now[0] += 0.2
    assert gate.allow("a")
