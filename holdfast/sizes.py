"""Byte sizes as people write and read them: one parser for every size flag, one formatter
for the status page, the CLI and fsck, so ``64MiB`` means the same everywhere."""

from __future__ import annotations

import argparse
import re

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtKMGT]?)(?:i?[bB])?\s*")
_NAMES = ("B", "KiB", "MiB", "GiB", "TiB")


def parse_size(text: str) -> int:
    """Bytes from "1048576", "64MiB", "64M", "1.5g", "512k" (binary units). An
    ArgumentTypeError, so argparse names the flag and the value it could not read."""
    m = _SIZE.fullmatch(text)
    if m is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 64MiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_size(n: float | None, *, short: bool = False, missing: str = "-") -> str:
    """``3.2 GiB``; ``short`` gives ``3.2G`` for narrow CLI tables."""
    if n is None:
        return missing
    for name in _NAMES:
        if abs(n) < 1024 or name == _NAMES[-1]:
            unit = name[0] if short else f" {name}"
            if name == "B":
                return f"{n:.0f}{'B' if short else ' B'}"
            return f"{n:.1f}{unit}"
        n /= 1024
    raise AssertionError("unreachable")
