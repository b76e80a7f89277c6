"""``holdfast serve --help``: every flag explains itself and shows the default that applies."""

from __future__ import annotations

import argparse

import pytest

from holdfast.cli import build_parser
from holdfast.ops.commands import endpoint_url


def _serve_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices["serve"]


def test_every_serve_flag_has_help_text():
    missing = [
        a.option_strings[0]
        for a in _serve_parser()._actions
        if a.option_strings and (not a.help or a.help == argparse.SUPPRESS)
    ]
    assert missing == []


def test_defaults_are_shown_as_they_apply():
    text = _serve_parser().format_help()
    flat = " ".join(text.split())
    assert (
        "--copies N copies per object on distinct drives (default 1 with one drive, 2 with two or more)"
        in flat
    )
    assert "(default 64.0 MiB/s)" in flat  # --repair-rate, not 67108864
    assert "(default 1%)" in flat  # --reserve
    for flag in ("--listen", "--region", "--status-refresh", "--alert-retry-max"):
        line = flat.split(flag, 2)[-1][:200]
        assert "default" in line, flag


@pytest.mark.parametrize(
    "given, url",
    [
        ("127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("node1:9000", "http://node1:9000"),
        ("[::1]:9000", "http://[::1]:9000"),
        ("http://h:1", "http://h:1"),
        ("https://h:1/", "https://h:1/"),
    ],
)
def test_endpoint_accepts_host_port_or_url(given, url):
    assert endpoint_url(given) == url


@pytest.mark.parametrize("bad", ["ftp://h:1", "", "h:1/path"])
def test_endpoint_refuses_other_forms(bad):
    with pytest.raises(argparse.ArgumentTypeError):
        endpoint_url(bad)
