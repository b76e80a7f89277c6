"""The layout commands against a real PostgreSQL (the cluster's index engine), run as an
operator runs them: ``holdfast cluster node add|remove``, ``layout show|apply|revert|
history``. Bad input is one line on stderr, a non-zero exit, and no change."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import pytest

from holdfast.cli import main
from tests.conftest import free_port


def hf(
    dsn: str, *args: str, stdin: str | None = None, process: bool = False
) -> subprocess.CompletedProcess:
    """The command, in a process of its own (``process``) or, faster, through the same
    ``main()`` in this one (the machine has two cores; each process start costs a second)."""
    argv = ["cluster", *args, "--index-dsn", dsn]
    if process:
        return subprocess.run(
            [sys.executable, "-m", "holdfast.cli", *argv],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=60,
        )
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else (print(e.code, file=sys.stderr) or 2)
    finally:
        sys.stdin = saved
    return subprocess.CompletedProcess(argv, rc, out.getvalue(), err.getvalue())


def ok(dsn: str, *args: str, stdin: str | None = None) -> str:
    r = hf(dsn, *args, stdin=stdin)
    assert r.returncode == 0, r.stderr
    return r.stdout


def state(dsn: str) -> dict:
    return json.loads(ok(dsn, "layout", "show", "--json"))


def refused(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


@pytest.fixture
def four(pg_dsn) -> str:
    """A database whose layout has four active nodes (version 1)."""
    for i in range(1, 5):
        ok(
            pg_dsn,
            "node",
            "add",
            f"n{i}",
            f"127.0.0.1:74{i:02d}",
            "--zone",
            f"z{i}",
            "--s3",
            f"http://127.0.0.1:90{i:02d}",
        )
    out = ok(pg_dsn, "layout", "apply", "--cluster-name", "prod-east")
    assert "+ n1" in out and "applied: layout version 1" in out
    return pg_dsn


def test_stage_show_apply_history(pg_dsn):
    ok(pg_dsn, "node", "add", "n1", "127.0.0.1:7401", "--zone", "z1", "--capacity", "2T")
    ok(pg_dsn, "node", "add", "n2", "127.0.0.1:7402")
    shown = state(pg_dsn)
    assert shown["version"] == 0 and shown["nodes"] == []
    assert [c["node"] for c in shown["staged"]["changes"]] == ["n1", "n2"]
    assert shown["staged"]["nodes"][0]["capacity"] == 2 * 1024**4
    text = ok(pg_dsn, "layout", "show")
    assert "+ n1" in text and "staged by" in text
    dry = ok(pg_dsn, "layout", "apply", "--dry-run")
    assert "+ n2" in dry and "nothing changed" in dry
    assert state(pg_dsn)["version"] == 0
    out = ok(pg_dsn, "layout", "apply")
    assert out.index("+ n1") < out.index("blast radius") < out.index("applied: layout version 1")
    shown = state(pg_dsn)
    assert shown["version"] == 1 and shown["staged"] is None
    assert {n["name"]: n["state"] for n in shown["nodes"]} == {"n1": "active", "n2": "active"}
    history = json.loads(ok(pg_dsn, "layout", "history", "--json"))
    assert len(history) == 1
    assert history[0]["version"] == 1 and "@" in history[0]["applied_by"]
    assert [c["change"] for c in history[0]["changes"]] == ["added", "added"]
    assert history[0]["blast_radius"]["nodes_after"] == 2
    assert "version 1" in ok(pg_dsn, "layout", "history")


def test_removing_three_of_four_nodes_is_refused_and_changes_nothing(four):
    before = state(four)
    for name in ("n2", "n3", "n4"):  # the mistyped command: three nodes at once
        ok(four, "node", "remove", name)
    r = hf(four, "layout", "apply", process=True)
    refused(
        r, "one-node-per-step", "removes 3 nodes (n2, n3, n4)", "enough-nodes", "nothing changed"
    )
    assert "- n2" in r.stdout and "nodes 4 -> 1" in r.stdout  # the blast radius was shown first
    after = state(four)
    assert after["version"] == before["version"] == 1
    assert after["nodes"] == before["nodes"]
    assert len(json.loads(ok(four, "layout", "history", "--json"))) == 1
    # --force without the cluster's name typed: still nothing.
    r = hf(four, "layout", "apply", "--force", stdin="prod-west\n")
    refused(r, "cluster's name was not typed")
    assert state(four)["version"] == 1
    # One node per step goes through.
    ok(four, "layout", "revert")
    ok(four, "node", "remove", "n4")
    assert "applied: layout version 2" in ok(four, "layout", "apply")
    assert {n["name"]: n["state"] for n in state(four)["nodes"]}["n4"] == "removed"


def test_force_with_the_cluster_name_is_recorded(four):
    ok(four, "node", "remove", "n3")
    ok(four, "node", "remove", "n4")
    out = ok(four, "layout", "apply", "--force", stdin="prod-east\n")
    assert "applied: layout version 2" in out
    history = json.loads(ok(four, "layout", "history", "--json"))
    assert history[0]["applied_by"].endswith("(forced)")
    assert history[0]["blast_radius"]["nodes_removed"] == ["n3", "n4"]


def test_stale_apply_is_refused(four):
    ok(four, "node", "remove", "n4")  # staged on version 1
    # Another operator applies meanwhile (straight through the index, as another tool would).
    import asyncio

    from holdfast.config import Config
    from holdfast.index import open_index
    from holdfast.index.records import LayoutRecord

    async def other_operator() -> None:
        config = Config(data_dirs=[])
        config.index_dsn = four
        index = open_index(config, role="tool")
        await index.start()
        try:
            current = await index.get_layout()
            await index.apply_layout(
                1, LayoutRecord(2, current.nodes, 0, "bob@elsewhere"), drop_staged=False
            )
        finally:
            await index.close()

    asyncio.run(other_operator())
    r = hf(four, "layout", "apply")
    refused(r, "made on layout version 1", "now at version 2", "stage again")
    assert state(four)["version"] == 2
    assert all(n["state"] == "active" for n in state(four)["nodes"])


@pytest.mark.parametrize(
    "args, words",
    [
        (("node", "remove", "nope"), ["no node 'nope'"]),
        (("node", "add", "n5", "localhost"), ["is not HOST:PORT"]),
        (("node", "add", "N_5", "127.0.0.1:7405"), ["not valid"]),
        (("node", "add", "n1", "127.0.0.1:7409"), ["already in the layout"]),
        (("node", "add", "n5", "127.0.0.1:7405", "--capacity", "lots"), ["not a size"]),
        (("node", "add", "n5", "127.0.0.1:7405", "--capacity", "0"), ["above 0"]),
        (("node", "set", "n9", "--capacity", "1T"), ["no node 'n9'"]),
        (("node", "set", "n1", "--capacity", "0"), ["capacity must be above 0"]),
        (("node", "set", "n1", "--capacity=-5G"), ["capacity must be above 0"]),
        (("rebalance", "stop"), ["no rebalance under way"]),
        (("layout", "apply"), ["nothing is staged"]),
    ],
)
def test_bad_layout_commands_change_nothing(four, args, words):
    before = state(four)
    refused(hf(four, *args), *words)
    assert state(four) == before
    assert len(hf(four, *args).stderr.strip().splitlines()) == 1


def test_capacity_change_shows_what_moves_and_requests_a_rebalance(four):
    """'node set --capacity' is staged like any change; its apply shows the bytes the new
    shares require to move and the time at the rebalance rate (nothing is stored yet: 0),
    and asks the leading node for a rebalance ('rebalance status' says it is pending)."""
    ok(four, "node", "set", "n2", "--capacity", "2T")
    shown = state(four)
    assert [c["change"] for c in shown["staged"]["changes"]] == ["changed"]
    dry = json.loads(ok(four, "layout", "apply", "--dry-run", "--json"))
    blast = dry["blast_radius"]
    assert blast["rebalances"] and blast["bytes_to_rebalance"] == 0
    assert blast["seconds_at_rebalance_rate"] == 0.0
    assert state(four)["version"] == 1
    out = ok(four, "layout", "apply")
    assert "~ n2  capacity 0 -> 2199023255552" in out and "rebalance: 0 bytes must move" in out
    assert "rebalance requested" in out
    status = json.loads(ok(four, "rebalance", "status", "--json"))
    assert status["pending_request"]["reason"].startswith("layout version 2: n2 capacity")
    assert "the leading node takes it up" in ok(four, "rebalance", "status")


def test_malformed_command_is_a_usage_error(pg_dsn):
    r = hf(pg_dsn, "node", "add", "n1")  # no address
    assert r.returncode == 2 and "ADDR" in r.stderr


def test_bad_dsn_and_unreachable_engine(pg_dsn):
    r = hf("host=127.0.0.1 port=notaport", "layout", "show")
    refused(r, "holdfast:")
    assert len(r.stderr.strip().splitlines()) == 1
    dead = f"host=127.0.0.1 port={free_port()} dbname=x user=postgres connect_timeout=2"
    r = hf(dead, "layout", "show", process=True)
    refused(r, "cannot reach the index engine", "--index-dsn")
    assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1


def test_capacity_rules_through_the_cli(pg_dsn):
    """Capacity share and the interval between removals, with their numbers set by
    'layout rules': each refusal names its rule, says what to do, and changes nothing."""
    for i in range(1, 5):
        ok(pg_dsn, "node", "add", f"n{i}", f"127.0.0.1:74{i:02d}", "--capacity", "1T")
    ok(pg_dsn, "layout", "apply", "--cluster-name", "prod-east")
    assert json.loads(ok(pg_dsn, "layout", "rules", "--json")) == {
        "headroom_floor_percent": 10.0,
        "max_capacity_share_percent": 34.0,
        "min_interval_seconds": 3600.0,
        "drain_bytes_per_second": 32 * 1024**2,
        "rebalance_bytes_per_second": 32 * 1024**2,
        "rebalance_tolerance_percent": 5.0,
        "transfer_cap": 8,
    }
    ok(pg_dsn, "layout", "rules", "--max-capacity-share", "20%")
    assert "max-capacity-share   20" in ok(pg_dsn, "layout", "rules")
    ok(pg_dsn, "node", "remove", "n4")
    r = hf(pg_dsn, "layout", "apply", process=True)
    refused(r, "capacity-share", "removes 25.0% of the capacity", "at most 20%", "nothing changed")
    assert "headroom after:" in r.stdout  # the blast radius shows the headroom left
    assert state(pg_dsn)["version"] == 1
    ok(pg_dsn, "layout", "rules", "--max-capacity-share", "30")
    assert "applied: layout version 2" in ok(pg_dsn, "layout", "apply")
    # A second removal right after the first: the interval rule.
    ok(pg_dsn, "node", "remove", "n3")
    r = hf(pg_dsn, "layout", "apply")
    refused(r, "min-interval", "layout version 2 removed capacity", "3600s apart", "wait until")
    assert state(pg_dsn)["version"] == 2
    out = ok(pg_dsn, "layout", "apply", "--force", stdin="prod-east\n")
    assert "applied: layout version 3" in out
    # Bad numbers: one line, exit 2, nothing changed.
    before = ok(pg_dsn, "layout", "rules", "--json")
    for flag, value in (
        ("--headroom-floor", "150"),
        ("--min-interval", "-5"),
        ("--max-capacity-share", "lots"),
        ("--rebalance-rate", "0"),
        ("--rebalance-rate", "-1"),
        ("--drain-rate", "0"),
        ("--rebalance-tolerance", "-1"),
        ("--transfer-cap", "0"),
        ("--transfer-cap", "-3"),
        ("--transfer-cap", "1.5"),
        ("--transfer-cap", "many"),
    ):
        r = hf(pg_dsn, "layout", "rules", flag, value)
        assert r.returncode == 2 and flag in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert ok(pg_dsn, "layout", "rules", "--json") == before
    # The cluster's cap on concurrent transfers (holdfast/workers/transfers.py).
    assert "transfer-cap         3" in ok(pg_dsn, "layout", "rules", "--transfer-cap", "3")
    assert json.loads(ok(pg_dsn, "layout", "rules", "--json"))["transfer_cap"] == 3
