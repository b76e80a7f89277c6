"""``holdfast serve`` flags of event notification delivery and SSE key re-sealing: one flag,
one Config field, one default each (docs/notifications.md, docs/security.md)."""

from __future__ import annotations

import argparse

from holdfast.config import Config

# (flag, Config field, type, help). Defaults come from Config itself.
FLAGS: list[tuple[str, str, type, str]] = [
    ("--notify-rate", "notify_rate", float, "event deliveries per second, at most"),
    ("--notify-concurrency", "notify_concurrency", int, "event streams delivered at once"),
    ("--notify-timeout", "notify_timeout_seconds", float, "one delivery's deadline (s)"),
    ("--notify-retry-base", "notify_retry_base_seconds", float, "first retry delay (s)"),
    ("--notify-retry-cap", "notify_retry_cap_seconds", float, "longest retry delay (s)"),
    ("--notify-max-attempts", "notify_max_attempts", int, "attempts before dead-lettering"),
    ("--sse-reseal-rate", "sse_reseal_per_second", float, "SSE-S3 keys re-sealed per second"),
]


def add_notify_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("event notifications (docs/notifications.md)")
    for flag, field, kind, text in FLAGS:
        default = getattr(Config(), field)
        group.add_argument(
            flag,
            dest=field,
            type=kind,
            default=None,
            metavar="N",
            help=f"{text} (default {default:g})",
        )


def apply_notify_flags(args: argparse.Namespace, config: Config) -> None:
    for _flag, field, _kind, _text in FLAGS:
        value = getattr(args, field, None)
        if value is not None:
            if value <= 0:
                raise SystemExit(f"holdfast: {_flag} must be positive")
            setattr(config, field, value)
