"""Version ids: opaque to clients, ordered by the index's commits.

The index hands each version a number from one sequence inside the transaction that commits
it (never a node's clock, so two nodes writing one key cannot order it differently from the
commit order). Clients see that number encoded as a fixed-width string with a check
character: it is opaque (nothing to parse, nothing to guess from), and a string that was not
made here (a typo, another store's id) is refused without an index read. ``null`` is S3's id
of the version written while versioning was never enabled or suspended.
"""

from __future__ import annotations

NULL = "null"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE = len(_ALPHABET)
_DIGITS = 12  # 62**12 > 2**71: every 64-bit sequence number fits
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}
# Mixes the sequence number so ids of neighbouring versions do not look like a counter.
_MIX = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


def encode(seq: int) -> str:
    if not 0 < seq <= _MASK:
        raise ValueError(seq)
    n = (seq * _MIX) & _MASK
    digits = []
    for _ in range(_DIGITS):
        n, r = divmod(n, _BASE)
        digits.append(_ALPHABET[r])
    body = "".join(reversed(digits))
    return body + _ALPHABET[_check(body)]


def decode(version_id: str) -> int | None:
    """The sequence number, or None for a string that is not a version id made here."""
    if len(version_id) != _DIGITS + 1:
        return None
    body, check = version_id[:-1], version_id[-1]
    n = 0
    for c in body:
        v = _VALUE.get(c)
        if v is None:
            return None
        n = n * _BASE + v
    if n > _MASK or _ALPHABET[_check(body)] != check:
        return None
    seq = (n * _INVERSE) & _MASK
    return seq or None


def _check(body: str) -> int:
    total = 0
    for i, c in enumerate(body):
        total += (i + 1) * _VALUE[c]
    return total % _BASE


_INVERSE = pow(_MIX, -1, 1 << 64)
