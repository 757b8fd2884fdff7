"""Peer parser suites as adversaries (data vendored under tests/fixtures/, see SOURCES.md), and
hypothesis over CSV cells: leadpush reads what the file holds, or refuses it; never a third thing."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadpush.outcomes import InputError
from leadpush.readers import open_lead_file

FIXTURES = Path(__file__).parent / "fixtures"
SPECTRUM = sorted((FIXTURES / "csv-spectrum" / "csvs").glob("*.csv"))
JSON_CASES = sorted((FIXTURES / "JSONTestSuite" / "test_parsing").glob("*.json"))


def by_name(f, values):
    """A row's values by column name (CSV rows are lists in column order, JSON rows objects)."""
    return values if isinstance(values, dict) else dict(zip(f.keys or [], values, strict=True))


def rows_of(path, **kw):
    with open_lead_file(path, **kw) as f:
        return [by_name(f, values) for _, values in f.rows()]


@pytest.mark.parametrize("path", SPECTRUM, ids=lambda p: p.stem)
def test_csv_spectrum(path):
    want = json.loads((path.parent.parent / "json" / f"{path.stem}.json").read_text(encoding="utf-8"))
    if path.stem == "location_coordinates":  # upstream's JSON has another phone than its CSV
        assert want["Contact Phone Number"] == "1234567890"
        want["Contact Phone Number"] = "2095257564"
    assert rows_of(path) == (want if isinstance(want, list) else [want])  # one case is a bare object


def test_the_suites_are_there():
    assert len(SPECTRUM) == 12 and len(JSON_CASES) == 316


def _embedded(tmp_path, data: bytes):
    """The case as the value of a lead's field: the reader must parse it exactly, or refuse the file."""
    p = tmp_path / "lead.json"
    p.write_bytes(b'[{"phone": "9876543210", "v": ' + data + b"}]")
    return rows_of(p)


@pytest.mark.parametrize("path", JSON_CASES, ids=lambda p: p.name)
def test_json_test_suite(tmp_path, path):
    data = path.read_bytes()
    verdict = path.name[0]
    if verdict == "n":
        with pytest.raises(InputError):
            rows_of(path)
        with pytest.raises(InputError):
            _embedded(tmp_path, data)
    elif verdict == "y":
        rows = _embedded(tmp_path, data)
        assert rows == [{"phone": "9876543210", "v": json.loads(data, parse_float=Decimal)}]
        try:
            rows_of(path)
        except InputError:
            pass  # valid JSON that is not a list of leads: refused in one line
    else:
        for attempt in (lambda: rows_of(path), lambda: _embedded(tmp_path, data)):
            try:
                attempt()
            except InputError:
                pass


@pytest.mark.parametrize("text", ["[" * 100_000, "[{" + '"a":[' * 50_000])
def test_json_test_suite_big_cases(tmp_path, text):
    p = tmp_path / "big.json"
    p.write_text(text)
    with pytest.raises(InputError):
        rows_of(p)


# Cells from the Unicode categories that trouble readers: digits of other scripts (Nd), spaces (Zs),
# dashes (Pd), control characters (Cc: line breaks, NUL, form feed ...), plus quotes and delimiters.
CELL = st.text(alphabet=st.characters(whitelist_categories=("Nd", "Zs", "Pd", "Cc", "Lu", "Ll"),
                                      whitelist_characters='",;\t|\r\n'), max_size=15)
DELIMITERS = st.sampled_from([",", ";", "\t", "|"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(CELL, min_size=3, max_size=3), min_size=1, max_size=8), DELIMITERS,
       st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]), st.sampled_from(["\n", "\r\n"]))
def test_any_cells_written_by_a_csv_writer_are_read_back_exactly(rows, delimiter, encoding, newline):
    # The last cell is never empty, so that no row is blank or looks like a report footer.
    table = [["phone", "name", "note", "id"]] + [r + [f"id{i}"] for i, r in enumerate(rows)]
    buf = io.StringIO()
    # (With "\n" line ends, Python's writer leaves a lone "\r" unquoted, which no reader can tell
    # from a line break: quote every cell there.)
    quoting = csv.QUOTE_MINIMAL if newline == "\r\n" else csv.QUOTE_ALL
    csv.writer(buf, delimiter=delimiter, lineterminator=newline, quoting=quoting).writerows(table)
    try:
        with open_lead_file("-", fmt="csv", delimiter=delimiter,
                            stdin=io.BytesIO(buf.getvalue().encode(encoding))) as f:
            got = [values for _, values in f.rows()]
    except InputError as e:
        if "NUL bytes" in str(e):  # a text file holds no NUL: refused as binary, as it should be
            assert any("\x00" in c for r in rows for c in r)
            return
        # Otherwise refused only as a quote that seems to swallow rows: a value holding line
        # breaks, and a line of it with a whole row's delimiters and a phone-like number.
        assert "a quote opens here" in str(e)
        assert any(("\n" in c or "\r" in c) and delimiter in c for r in rows for c in r)
        return
    assert got == [r for r in table[1:]]
