"""Command-line flags for placement, repair, scrubbing and drive health (``holdfast serve``),
kept here so that every limit docs/integrity.md lists has exactly one flag, one default and
one place that copies it into the Config."""

from __future__ import annotations

import argparse

from holdfast.config import Config
from holdfast.sizes import format_size, parse_size
from holdfast.stores.registry import check_node_name


def _percent(text: str) -> float:
    value = float(text.rstrip("%"))
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError(f"not a percentage below 100: {text!r}")
    return value


def _node_name(text: str) -> str:
    try:
        return check_node_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# (flag, Config field, type, help). Defaults come from Config itself.
FLAGS: list[tuple[str, str, object, str]] = [
    (
        "--node-name",
        "node_name",
        _node_name,
        "this node's name; its stores are NAME/d0, NAME/d1, ...",
    ),
    ("--copies", "copies", int, "copies per object on distinct drives"),
    (
        "--min-copies",
        "min_copies",
        int,
        "write quorum: durable copies before a PUT is acknowledged",
    ),
    (
        "--spread",
        "spread",
        str,
        "spread copies over kinds of store, e.g. kinds=2 or kinds=2,s3>=1 (docs/stores.md)",
    ),
    ("--backend-concurrency", "backend_concurrency", int, "requests in flight per back-end"),
    ("--backend-ops", "backend_ops_per_second", float, "requests per second per back-end"),
    ("--backend-rate", "backend_bytes_per_second", parse_size, "bytes per second per back-end"),
    (
        "--backend-slow",
        "backend_slow_seconds",
        float,
        "a back-end request slower than this (s, beyond 1 s per MiB sent) counts as a failure",
    ),
    ("--reserve", "reserve_percent", _percent, "percent of each drive kept free by writes"),
    ("--repair-reserve", "repair_reserve_percent", _percent, "percent kept free by repair"),
    (
        "--repair-rate",
        "repair_bytes_per_second",
        parse_size,
        "bytes per second of every background transfer together: repair, re-sync, drain, "
        "rebalance (each one-second window)",
    ),
    (
        "--repair-ops",
        "repair_ops_per_second",
        float,
        "background transfers (repairs, copies moved) started per second, all kinds together",
    ),
    (
        "--transfer-node-rate",
        "transfer_node_bytes_per_second",
        parse_size,
        "bytes per second of background transfers into any one node",
    ),
    (
        "--transfer-node-ops",
        "transfer_node_ops_per_second",
        float,
        "background transfers started per second toward any one node",
    ),
    ("--repair-concurrency", "repair_concurrency", int, "repairs running at once"),
    ("--repair-backoff-base", "repair_backoff_base_seconds", float, "first retry delay (s)"),
    ("--repair-backoff-cap", "repair_backoff_cap_seconds", float, "longest retry delay (s)"),
    ("--scrub-rate", "scrub_bytes_per_second", parse_size, "scrubber bytes per second (0: off)"),
    ("--scrub-interval", "scrub_interval_seconds", float, "pause between scrub passes (s)"),
    (
        "--anti-entropy-interval",
        "anti_entropy_interval_seconds",
        float,
        "seconds between anti-entropy passes over every drive (0: only drives coming back)",
    ),
    (
        "--lifecycle-interval",
        "lifecycle_interval_seconds",
        float,
        "pause between lifecycle passes (s)",
    ),
    (
        "--lifecycle-ops",
        "lifecycle_ops_per_second",
        float,
        "versions and uploads the lifecycle job examines or removes per second",
    ),
    (
        "--lifecycle-day-seconds",
        "lifecycle_day_seconds",
        float,
        "TEST ONLY: seconds in a lifecycle 'day' (docs/lifecycle.md)",
    ),
    ("--drive-errors", "drive_error_threshold", int, "errors that mark a drive down"),
    ("--drive-error-window", "drive_error_window_seconds", float, "... within this many seconds"),
    ("--drive-probe-cap", "drive_probe_cap_seconds", float, "longest wait between probes (s)"),
    ("--gc-grace", "gc_grace_seconds", float, "delay before a replaced blob is deleted (s)"),
]


# Defaults whose stored value is not what applies: shown as they apply.
DEFAULT_TEXT = {
    "transfer_node_bytes_per_second": "the --repair-rate",
    "transfer_node_ops_per_second": "the --repair-ops",
    "copies": "1 with one drive, 2 with two or more",
    "node_name": "the name its drives were registered under, else 'local'",
}


def default_text(field: str, kind: object) -> str:
    """A flag's default as a person reads it: sizes with units, percentages with %."""
    if field in DEFAULT_TEXT:
        return DEFAULT_TEXT[field]
    value = getattr(Config(), field)
    if kind is parse_size:
        return format_size(value) + "/s" if field.endswith("per_second") else format_size(value)
    if kind is _percent:
        return f"{value:g}%"
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_integrity_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("integrity (docs/integrity.md)")
    for flag, field, kind, text in FLAGS:
        group.add_argument(
            flag,
            dest=field,
            type=kind,
            default=None,
            metavar="NAME" if kind is _node_name else "N",
            # argparse formats help with %: a literal one must be doubled.
            help=f"{text} (default {default_text(field, kind)})".replace("%", "%%"),
        )


def apply_integrity_flags(args: argparse.Namespace, config: Config) -> None:
    """Copy the flags that were given into ``config``, then check they make sense."""
    if getattr(args, "command", None) != "serve":
        return
    for _flag, field, _kind, _text in FLAGS:
        value = getattr(args, field, None)
        if value is not None:
            setattr(config, field, value)
    drives = len(config.data_dirs)
    if config.copies < 0 or config.min_copies < 1:
        raise SystemExit("holdfast: --copies must be >= 1 and --min-copies >= 1")
    if config.copies and config.min_copies > config.copies:
        raise SystemExit("holdfast: --min-copies cannot exceed --copies")
    if config.lifecycle_day_seconds <= 0 or config.lifecycle_ops_per_second <= 0:
        raise SystemExit("holdfast: --lifecycle-day-seconds and --lifecycle-ops must be positive")
    if config.lifecycle_interval_seconds < 0:
        raise SystemExit("holdfast: --lifecycle-interval cannot be negative")
    if config.spread:
        from holdfast.placement.policy import parse_spread

        try:
            parse_spread(config.spread)
        except ValueError as e:
            raise SystemExit(f"holdfast: --spread: {e}") from None
    # A rate of zero would stall repair for good, a negative one is meaningless (issue 13).
    if config.repair_concurrency < 1 or config.repair_ops_per_second <= 0:
        raise SystemExit("holdfast: --repair-concurrency and --repair-ops must be positive")
    if config.repair_bytes_per_second <= 0:
        raise SystemExit("holdfast: --repair-rate must be positive")
    for flag, value in (
        ("--transfer-node-rate", config.transfer_node_bytes_per_second),
        ("--transfer-node-ops", config.transfer_node_ops_per_second),
    ):
        if value is not None and value <= 0:
            raise SystemExit(f"holdfast: {flag} must be positive")
    if config.anti_entropy_interval_seconds < 0:
        raise SystemExit(
            "holdfast: --anti-entropy-interval must be 0 (only drives coming back) or more"
        )
    _ = drives  # counted with the back-end stores once the index is open: check_stores


def check_stores(config: Config, kinds: list[str]) -> str | None:
    """Whether the server's policy fits the stores there are (``kinds``: one per store, the
    local drives and the registered back-ends): the reason it does not, or None."""
    from holdfast.placement.policy import Policy

    stores = len(kinds)
    if config.min_copies > stores:
        return f"--min-copies {config.min_copies} needs that many stores ({stores} there)"
    if config.copies > stores:
        return (
            f"--copies {config.copies} needs {config.copies} stores, {stores} there "
            "(add --data DIR once per drive, or holdfast store add)"
        )
    if not config.spread:
        return None
    copies = config.copies or (2 if stores >= 2 else 1)
    try:
        policy = Policy(copies, min(config.min_copies, copies)).with_spread(config.spread)
    except ValueError as e:
        return f"--spread: {e}"
    reason = policy.unmeetable(kinds)
    return f"--spread {config.spread}: {reason}" if reason else None
