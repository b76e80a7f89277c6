"""Version ids (opaque, order from the index's sequence) and the versioning XML."""

from __future__ import annotations

import random

import pytest

from holdfast.errors import S3Error
from holdfast.s3 import versioning
from holdfast.service import versionids


def test_ids_round_trip_and_look_opaque():
    rng = random.Random(7)
    seqs = [1, 2, 3, 2**32, 2**64 - 1] + [rng.randrange(1, 2**64) for _ in range(2000)]
    ids = [versionids.encode(s) for s in seqs]
    assert [versionids.decode(i) for i in ids] == seqs
    assert len(set(ids)) == len(ids)
    assert len({len(i) for i in ids}) == 1
    # Neighbouring sequence numbers share no obvious prefix (not a visible counter).
    assert versionids.encode(1)[:6] != versionids.encode(2)[:6]


@pytest.mark.parametrize("bad", ["", "null", "3HL4kqtJlcpXroDTDmJ", "0DaBOThvysi5X", "!" * 13])
def test_foreign_ids_are_refused(bad):
    assert versionids.decode(bad) is None


def test_a_typo_is_caught():
    good = versionids.encode(12345)
    for i in range(len(good)):
        for c in "0aZ":
            typo = good[:i] + c + good[i + 1 :]
            if typo != good:
                assert versionids.decode(typo) != 12345


def test_versioning_xml():
    ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    assert (
        versioning.parse(
            f"<VersioningConfiguration {ns}><Status>Enabled</Status></VersioningConfiguration>".encode()
        )
        == "Enabled"
    )
    assert (
        versioning.parse(
            b"<VersioningConfiguration><Status>Suspended</Status>"
            b"<MfaDelete>Disabled</MfaDelete></VersioningConfiguration>"
        )
        == "Suspended"
    )
    for bad in (
        b"<VersioningConfiguration/>",
        b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>",
        b"<Versioning><Status>Enabled</Status></Versioning>",
    ):
        with pytest.raises(S3Error) as e:
            versioning.parse(bad)
        assert e.value.code == "MalformedXML"
    with pytest.raises(S3Error) as e:
        versioning.parse(
            b"<VersioningConfiguration><Status>Enabled</Status>"
            b"<MfaDelete>Enabled</MfaDelete></VersioningConfiguration>"
        )
    assert e.value.code == "NotImplemented"
    assert b"<Status>" not in versioning.render(None)
    assert b"<Status>Suspended</Status>" in versioning.render("Suspended")
