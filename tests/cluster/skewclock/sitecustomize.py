"""A wrong wall clock for one test process, and for every process it starts (on PYTHONPATH,
Python imports this module at start-up): ``FAKE_CLOCK_OFFSET_SECONDS`` is added to
``time.time``/``time.time_ns`` and to ``datetime.now``/``utcnow``. The monotonic clock, which
nothing takes for the time of day, is left alone (as it is by a wrong NTP setting).

Test tooling only (tests/cluster/test_clock_skew.py); Holdfast has no such setting. Where
Debian's libfaketime is installed the same can be had with ``LD_PRELOAD``; this needs nothing.
"""

import os

_OFFSET = float(os.environ.get("FAKE_CLOCK_OFFSET_SECONDS") or 0)

if _OFFSET:
    import datetime as _datetime
    import time as _time

    _real_time, _real_time_ns = _time.time, _time.time_ns

    def _time_skewed() -> float:
        return _real_time() + _OFFSET

    def _time_ns_skewed() -> int:
        return _real_time_ns() + int(_OFFSET * 1e9)

    _time.time = _time_skewed
    _time.time_ns = _time_ns_skewed

    class _SkewedDatetime(_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls.fromtimestamp(_time_skewed(), tz)

        @classmethod
        def utcnow(cls):
            return cls.fromtimestamp(_time_skewed(), _datetime.UTC).replace(tzinfo=None)

        @classmethod
        def today(cls):
            return cls.fromtimestamp(_time_skewed())

    _datetime.datetime = _SkewedDatetime
