"""Rates ("100/min", "2/s") and the pacer that spaces every request evenly under one."""

from __future__ import annotations

import math
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .outcomes import ConfigError

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*$", re.I)
_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0}

# Requests are spaced this much wider than the rate asks, so that jitter between our clock and
# the server's arrival times (thread wake-ups, the network) can never put one request too many
# in the server's window: 0.4% of a 60 s window is 240 ms of tolerance.
HEADROOM = 0.004
# No account has a rate anywhere near this; above it the pacer's arithmetic means nothing.
MAX_PER_MINUTE = 1_000_000


@dataclass(frozen=True)
class Rate:
    count: float
    period: float  # seconds

    @property
    def per_minute(self) -> float:
        return self.count * 60.0 / self.period

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        return f"{self.per_minute:g}/min"


def parse_rate(text: str, *, option: str = "--rate", allow_zero: bool = False) -> Rate | None:
    """'100/min', '2/s', '6000/hour' or a bare number (per minute); '0' is 'no limit' where allowed."""
    m = _RATE.match(str(text))
    if not m:
        raise ConfigError(f"{option} {text!r}: write it as a count per time, such as 100/min or 2/s")
    count = float(m[1])
    if count == 0:
        if allow_zero:
            return None
        raise ConfigError(f"{option} {text!r}: the rate must be above zero")
    rate = Rate(count, _PERIODS[(m[2] or "min").lower()])
    if rate.per_minute > MAX_PER_MINUTE:
        raise ConfigError(f"{option} {text!r}: at most {MAX_PER_MINUTE:,}/min (CloudAgent allows 100/min)")
    return rate


class Pacer:
    """Hands out evenly spaced send times: no burst, and no window holding more than its share.

    Every request (first sends, retries, token calls) takes a slot. A slot is never earlier than
    the previous slot plus the interval, and never in the past, so after a stall the pacer does
    not "catch up" with a burst. `pause_until` pushes every later slot back (for Retry-After).
    """

    def __init__(self, rate: Rate | None, *, clock: Callable[[], float],
                 sleep: Callable[[float], None]) -> None:
        self.interval = 0.0 if rate is None else (1.0 / rate.per_second) * (1.0 + HEADROOM)
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()
        # A guard on what actually went: at most `burst` sends in any `window` seconds (a second,
        # or the rate's own period when that is longer), so that a worker waking late cannot land
        # just ahead of one that is on time and crowd a second. Only a crowding send waits; later
        # slots keep their times, so lateness never accumulates.
        self._window = 0.0 if rate is None else max(1.0, rate.period if rate.per_second < 1 else 1.0)
        self._burst = 0 if rate is None else max(1, math.ceil(rate.per_second * self._window - 1e-9))
        # Inside the slots' own headroom, so that in steady state (slots a window apart plus 0.4%)
        # the guard never binds and only a crowding send ever waits.
        self._margin = HEADROOM * self._window / 2
        self._recent: deque[float] = deque(maxlen=max(1, self._burst))

    def reserve(self) -> float:
        """Take the next slot and return its time (without waiting)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            return slot

    def wait(self, stop: Callable[[], bool] | None = None) -> bool:
        """Take the next slot and sleep until it; False if `stop()` turned true meanwhile."""
        return self.wait_for(self.reserve(), stop)

    def wait_for(self, slot: float, stop: Callable[[], bool] | None = None) -> bool:
        """Sleep until a reserved slot, and until the last second has room for one more send."""
        while True:
            now = self._clock()
            with self._lock:
                due = slot
                if self._burst and len(self._recent) == self._burst:
                    due = max(due, self._recent[0] + self._window + self._margin)
                if now >= due:
                    if self._burst:
                        self._recent.append(now)
                    return True
            if stop is not None and stop():
                return False
            self._sleep(min(due - now, 0.25))

    def pause_until(self, when: float) -> None:
        with self._lock:
            self._next = max(self._next, when)
