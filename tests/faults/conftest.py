"""Fixtures of the fault-injection suite (see support.py)."""

from tests.faults.support import mounts  # noqa: F401  (a fixture)
