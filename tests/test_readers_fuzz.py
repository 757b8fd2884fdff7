"""Arbitrary bytes and text thrown at every reader and the checks: clear errors only, never a crash."""

from __future__ import annotations

import datetime as dt
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadpush.checks import Checker, CheckSettings
from leadpush.outcomes import LeadpushError
from leadpush.readers import open_lead_file

FORMATS = st.sampled_from([None, "csv", "json", "jsonl", "xlsx"])
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_everything(data: bytes, fmt: str | None) -> None:
    try:
        with open_lead_file("-", fmt=fmt, stdin=io.BytesIO(data)) as f:
            checker = Checker(CheckSettings(), today=dt.date(2026, 11, 27))
            for outcome, _body in checker.check_file(f):
                assert outcome.status.value in ("valid", "invalid", "skipped")
    except LeadpushError as e:
        # A clear, one-line message that names the input.
        assert str(e).startswith("<stdin>") and "\n" not in str(e) and "\r" not in str(e)


@SETTINGS
@given(st.binary(max_size=400), FORMATS)
def test_arbitrary_bytes(data, fmt):
    read_everything(data, fmt)


csv_cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@SETTINGS
@given(st.lists(st.lists(csv_cell, min_size=1, max_size=5), min_size=1, max_size=6),
       st.sampled_from([",", ";", "\t", "|"]), st.sampled_from(["utf-8", "utf-16", "cp1252"]))
def test_arbitrary_text_tables(rows, delimiter, encoding):
    header = ["phone", "campaign", "priority", "expiry", "name"]
    text = delimiter.join(header) + "\n" + "\n".join(delimiter.join(r) for r in rows)
    read_everything(text.encode(encoding, errors="replace"), "csv")


@SETTINGS
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | csv_cell,
                    lambda children: st.lists(children, max_size=3)
                    | st.dictionaries(st.sampled_from(["phone", "campaign", "priority", "expiryDate", "x"]),
                                      children, max_size=5),
                    max_leaves=12))
def test_arbitrary_json_values(value):
    import json

    read_everything(json.dumps(value).encode(), "json")
    read_everything(json.dumps(value).encode(), "jsonl")
