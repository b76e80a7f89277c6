"""One parser and one formatter for sizes: the flags, the CLI, the status page and fsck."""

from __future__ import annotations

import argparse

import pytest

from holdfast.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1 << 20),
        ("64MiB", 64 << 20),
        ("64M", 64 << 20),
        ("64mb", 64 << 20),
        ("512k", 512 << 10),
        ("1.5g", 3 << 29),
        ("2T", 2 << 40),
        (" 8 KiB ", 8 << 10),
    ],
)
def test_sizes_people_write(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "abc", "-1M", "12P", "1.M", "M"])
def test_what_is_not_a_size_is_refused_with_a_hint(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="try 64MiB"):
        parse_size(text)


def test_sizes_as_people_read_them() -> None:
    assert format_size(512) == "512 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(64 << 20) == "64.0 MiB"
    assert format_size(5 << 50) == "5120.0 TiB"  # the largest unit has no ceiling
    assert format_size(3 << 29, short=True) == "1.5G"
    assert format_size(100, short=True) == "100B"
    assert format_size(None) == "-" and format_size(None, missing="–") == "–"
