"""The pacer: rates as written, evenly spaced slots, no burst after a stall, no crowded second."""

from __future__ import annotations

import pytest

from leadpush.outcomes import ConfigError
from leadpush.pacing import HEADROOM, Pacer, parse_rate
from tests.conftest import FakeClock


def test_rates():
    assert parse_rate("100/min").per_second == pytest.approx(100 / 60)
    assert parse_rate("2/s").per_minute == 120
    assert parse_rate("6000 / hour").per_minute == 100
    assert parse_rate("100").per_minute == 100
    assert parse_rate("0", allow_zero=True) is None
    for bad in ("fast", "0", "-1/min", "10/fortnight"):
        with pytest.raises(ConfigError):
            parse_rate(bad)


def test_pacer_spaces_evenly_and_never_bursts_after_a_stall():
    clock = FakeClock(0.0)
    pacer = Pacer(parse_rate("100/min"), clock=clock, sleep=clock.sleep)
    interval = 0.6 * (1 + HEADROOM)
    times = []
    for _ in range(5):
        pacer.wait()
        times.append(clock())
    assert times == pytest.approx([0, interval, 2 * interval, 3 * interval, 4 * interval])
    clock.advance(100)  # a stall: the next slots are spaced from now, not crammed in to catch up
    slots = [pacer.reserve() for _ in range(3)]
    assert slots == pytest.approx([clock(), clock() + interval, clock() + 2 * interval])
    pacer.pause_until(clock() + 50)
    assert pacer.reserve() == pytest.approx(clock() + 50)


def test_pacer_stop_while_waiting():
    clock = FakeClock(0.0)
    pacer = Pacer(parse_rate("1/min"), clock=clock, sleep=clock.sleep)
    assert pacer.wait() is True
    assert pacer.wait(stop=lambda: True) is False


def test_late_workers_never_crowd_a_second_nor_slow_the_run():
    clock = FakeClock(0.0)
    pacer = Pacer(parse_rate("3000/min"), clock=clock, sleep=clock.sleep)
    sent = []
    ahead = [pacer.reserve() for _ in range(20)]  # 20 workers, each holding its next slot
    for i in range(500):
        slot = ahead.pop(0)
        if i % 5 == 0 and clock() < slot + 0.03:
            clock.advance(slot + 0.03 - clock())  # every fifth worker wakes 30 ms late
        assert pacer.wait_for(slot)
        sent.append(clock())
        ahead.append(pacer.reserve())
    busiest = max(sum(1 for t in sent if s - 1.0 < t <= s) for s in sent)
    assert busiest <= 50  # 3000/min: never more than 50 in any second
    assert sent[-1] == pytest.approx(499 * pacer.interval, abs=0.1)  # lateness did not add up


@pytest.mark.parametrize("rate", ["100/min", "600/min", "3000/min", "2/s"])
def test_the_guard_never_slows_an_on_time_schedule(rate):
    clock = FakeClock(0.0)
    pacer = Pacer(parse_rate(rate), clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        assert pacer.wait()
    assert clock() == pytest.approx(999 * pacer.interval)  # exactly the slots: the guard never bound
