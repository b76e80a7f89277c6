"""Anti-entropy on one node with two drives: copies lost without a hint (files deleted
behind the node's back, as a swapped or restored drive would lose them) are found by
comparing hash trees of the index and the drive, and exactly those are copied back.

The scrubber is off (``--scrub-rate 0``), so only anti-entropy can find them. The ratio is
counted in bytes, from the repair worker's own counter: bytes copied / bytes lost."""

from __future__ import annotations

import os
import random

from tests.faults.support import blob_files, serve, status, wait_for

ARGS = ("--anti-entropy-interval", "1", "--scrub-rate", "0", "--repair-backoff-base", "0.2")


def _ae(server) -> dict:
    return status(server).get("anti_entropy") or {}


def test_lost_copies_are_found_and_only_they_are_copied(tmp_path):
    d0, d1 = tmp_path / "d0", tmp_path / "d1"
    server = serve([d0, d1], *ARGS)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="aebucket")
        rnd = random.Random(5)
        for i in range(40):
            body = os.urandom(rnd.randrange(70_000, 400_000))
            s3.put_object(Bucket="aebucket", Key=f"k{i}", Body=body)
        # A pass over both drives that finds nothing to do.
        passes = wait_for("a clean pass", lambda: _ae(server).get("passes", 0) >= 1, 30)
        first = wait_for(
            "the first pass recorded",
            lambda: (
                (a := _ae(server)).get("passes", 0) >= passes
                and len(a.get("drives", {})) == 2
                and a
            ),
            30,
        )
        assert first["blobs_resynced"] == 0, first
        before = status(server)["repair"]["bytes_copied"]
        ranges_before = first["ranges_compared"]
        passes_before = first["passes"]

        # 7 copies on d1 lost without a hint: no repair row, nothing the node was told.
        files = blob_files(d1)
        assert len(files) == 40
        lost = random.Random(9).sample(sorted(files), 7)
        lost_bytes = 0
        for blob_id in lost:
            lost_bytes += files[blob_id].stat().st_size
            files[blob_id].unlink()

        def restored():
            now = blob_files(d1)
            return all(b in now for b in lost) and _ae(server)

        wait_for("the lost copies copied back", restored, 60)
        a = wait_for(
            "the pass's counters",
            lambda: (x := _ae(server))["passes"] > passes_before and x["blobs_resynced"] and x,
            30,
        )
        copied = wait_for(
            "the repair counter",
            lambda: (status(server)["repair"]["bytes_copied"] - before) or None,
            30,
        )
        ratio = copied / lost_bytes
        print(
            f"\nanti-entropy re-sync: lost {lost_bytes} bytes, copied {copied}, ratio {ratio:.3f}"
        )
        assert a["blobs_resynced"] == 7 and a["bytes_resynced"] == lost_bytes, a
        assert ratio <= 1.1, (copied, lost_bytes)
        assert copied == lost_bytes
        # The other drive, which lost nothing, cost one comparison per pass.
        d0_result = next(r for sid, r in a["drives"].items() if sid.endswith("d0"))
        assert d0_result["ranges_compared"] == 1 and d0_result["blobs_queued"] == 0
        assert a["ranges_compared"] > ranges_before
        # Every object still reads whole.
        for i in range(40):
            s3.get_object(Bucket="aebucket", Key=f"k{i}")["Body"].read()
    finally:
        server.stop()
