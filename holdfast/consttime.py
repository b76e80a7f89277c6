"""Constant-time equality of secrets and signatures, for any text a client can send.

``hmac.compare_digest`` raises ``TypeError`` for two ``str`` when either holds a character
outside ASCII, and ``str.encode()`` raises on a lone surrogate (JSON's ``"\\ud800"``). Either
turned a mutated signature, access key, cookie or CSRF header into a 500. Every comparison
of something secret against something received goes through :func:`same`, which compares
bytes and so is total: odd input is simply "not equal".
"""

from __future__ import annotations

import hmac


def _bytes(value: str | bytes) -> bytes:
    # surrogatepass: every str has an encoding, so no input can make the comparison raise.
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def same(a: str | bytes, b: str | bytes) -> bool:
    """True when ``a`` and ``b`` are equal, in time that does not depend on where they differ."""
    return hmac.compare_digest(_bytes(a), _bytes(b))
