"""The parts check_row is made of: the duplicate index, the statuses, settings left as given."""

import datetime as dt

from leadpush.checks import Checker, CheckSettings, DuplicateIndex
from leadpush.outcomes import FAILURE_STATUSES, Status


def test_checker_leaves_the_callers_settings_as_given():
    settings = CheckSettings(region="in", phone_format="e164")
    Checker(settings, today=dt.date(2026, 11, 27))
    assert settings.region == "in"


def test_duplicate_index_tells_spellings_and_campaigns_apart():
    index = DuplicateIndex()
    rows = {phone: index.first_row("c1", phone, row) for row, phone in
            enumerate(["123", "0123", "+123", "00123", "+0123", "9876543210123456"], start=1)}
    assert rows == {"123": 1, "0123": 2, "+123": 3, "00123": 4, "+0123": 5, "9876543210123456": 6}
    assert index.first_row("c1", "0123", 10) == 2
    assert index.first_row("c2", "0123", 11) == 11  # another campaign: not a duplicate
    assert index.first_row("c1", "+9876543210123456", 12) == 12
    assert index.first_row("c2", "0123", 13) == 11


def test_statuses_are_plain_str_enum_members():
    # str's own methods are not shadowed by per-member attributes.
    assert Status.VALID.index("l") == 2
    assert {s for s in Status if s in FAILURE_STATUSES} == {Status.INVALID, Status.REJECTED, Status.FAILED,
                                                            Status.ABORTED}
