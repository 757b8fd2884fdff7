"""Every way in: CSV dialects and encodings, JSON, JSON Lines, XLSX, stdin; positions and clear errors."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import pytest

from leadpush.outcomes import InputError
from leadpush.readers import open_lead_file


def rows_of(path, **kw):
    """The rows with their values by column name (CSV/XLSX rows are lists in column order)."""
    with open_lead_file(path, **kw) as f:
        return f, [(row, values if isinstance(values, dict) else dict(zip(f.keys or [], values, strict=False)))
                   for row, values in f.rows()]


def test_csv_rows_are_lists_in_header_order(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("phone,name,\n123,x,extra-empty-header\n", encoding="utf-8")
    with open_lead_file(p) as f:
        assert f.keys == ["phone", "name", "\x003"] and list(f.rows()) == [(2, ["123", "x", "extra-empty-header"])]


def test_csv_with_bom_crlf_and_stray_header_spaces(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes("\ufeff Phone ,Name\r\n9876543210,Asha\r\n".encode("utf-8"))
    f, rows = rows_of(p)
    assert f.columns == [" Phone ", "Name"]  # as read; the BOM never reaches the first header
    assert f.encoding == "utf-8-sig" and f.encoding_note is None
    assert rows == [(2, {" Phone ": "9876543210", "Name": "Asha"})]


@pytest.mark.parametrize("delim", [";", "\t", "|", ","])
def test_delimiter_is_sniffed_from_the_header(tmp_path, delim):
    p = tmp_path / "a.csv"
    p.write_text(f"phone{delim}name{delim}city\n98765{delim}\"A, B\"{delim}Pune\n", encoding="utf-8")
    f, rows = rows_of(p)
    assert f.delimiter == delim
    assert rows[0][1] == {"phone": "98765", "name": "A, B", "city": "Pune"}


def test_delimiter_override(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("phone;name\n123;x\n", encoding="utf-8")
    _, rows = rows_of(p, delimiter=",")
    assert rows[0][1] == {"phone;name": "123;x"}


def test_windows_1252_is_detected_and_named(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes("phone,name\n98765,José – Müller\n".encode("cp1252"))
    f, rows = rows_of(p)
    assert f.encoding == "cp1252" and f.encoding_note == "Windows-1252"
    assert rows[0][1]["name"] == "José – Müller"


def test_utf16_with_bom(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes("phone\tname\r\n98765\tZoë\r\n".encode("utf-16"))
    f, rows = rows_of(p)
    assert f.encoding_note == "UTF-16"
    assert rows == [(2, {"phone": "98765", "name": "Zoë"})]


def test_encoding_override(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes("phone,name\n98765,Ž\n".encode("iso-8859-2"))
    _, rows = rows_of(p, encoding="iso-8859-2")
    assert rows[0][1]["name"] == "Ž"


def test_embedded_newlines_and_blank_lines_keep_the_start_line(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text('phone,note\n\n111,"two\nlines"\n\n,\n222,x\n', encoding="utf-8")
    _, rows = rows_of(p)
    # line 3 starts the quoted record; blank lines (and a row of empty cells) are not rows
    assert [r[0] for r in rows] == [3, 7]
    assert rows[0][1]["note"] == "two\nlines"


def test_short_rows_are_padded_and_extra_cells_are_an_error(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("phone,name,city\n111,a\n222,b,c,,\n333,b,c,oops\n", encoding="utf-8")
    with open_lead_file(p) as f:
        it = f.rows()
        assert next(it) == (2, ["111", "a", ""])
        assert next(it) == (3, ["222", "b", "c"])  # trailing empty cells are harmless
        with pytest.raises(InputError, match=r"a\.csv: line 4, column 4: the row has 4 cells"):
            next(it)


def test_duplicate_header_is_an_error(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("phone,name,phone\n1,2,3\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line 1, column 3: column 'phone' appears twice"):
        open_lead_file(p)


@pytest.mark.parametrize("content,message", [
    (b"", "the file is empty"),
    (b"\n\n  \n", "the file is empty"),
    (b"\x00\x01\x02\x03binary\x00\xff", "does not look like a text file"),
])
def test_unreadable_files(tmp_path, content, message):
    p = tmp_path / "a.csv"
    p.write_bytes(content)
    with pytest.raises(InputError, match=message):
        open_lead_file(p)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.csv: no such file"):
        open_lead_file(tmp_path / "nope.csv")


def test_json_array_keeps_exact_number_digits_and_index(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('[{"phone": 9876543210, "p": 7.0},\n {"phone": "+91 98765", "p": 9.87654E+9}]', encoding="utf-8")
    f, rows = rows_of(p)
    assert f.format == "json"
    assert rows[0] == (1, {"phone": 9876543210, "p": Decimal("7.0")})
    assert rows[1][0] == 2 and str(rows[1][1]["p"]) == "9.87654E+9"


def test_json_array_streams_across_chunk_boundaries(tmp_path):
    p = tmp_path / "big.json"
    items = [{"phone": str(9000000000 + i), "name": "x" * (i % 50)} for i in range(5000)]
    p.write_text(json.dumps(items, indent=1), encoding="utf-8")
    _, rows = rows_of(p)
    assert len(rows) == 5000 and rows[-1] == (5000, items[-1])


@pytest.mark.parametrize("text,message", [
    ('{"phone": 1}', "must be an array of objects"),
    ('[{"phone": 1}, {"phone": }]', r"line 1: not valid JSON"),
    ('[{"phone": 1},\n\n 5]', r"item 2 \(line 3\): each item must be a JSON object, not a number"),
    ('[{"phone": 1}', r"missing '\]'"),
    ('[{"phone": 1}] x', "unexpected text after"),
])
def test_broken_json_names_the_position(tmp_path, text, message):
    p = tmp_path / "a.json"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        rows_of(p)


def test_jsonl_rows_are_lines_and_broken_lines_are_named(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"phone": 1}\n\n{"phone": 2}\n{"phone": \n', encoding="utf-8")
    with open_lead_file(p) as f:
        it = f.rows()
        assert next(it) == (1, {"phone": 1})
        assert next(it) == (3, {"phone": 2})
        with pytest.raises(InputError, match=r"a\.jsonl: line 4, column \d+: not valid JSON"):
            next(it)


def test_stdin_is_spooled_and_readable_twice():
    data = io.BytesIO(b"phone,name\n123,x\n")
    with open_lead_file("-", fmt="csv", stdin=data) as f:
        assert f.name == "<stdin>"
        assert list(f.rows()) == list(f.rows()) == [(2, ["123", "x"])]


def test_stdin_format_is_sniffed():
    with open_lead_file("-", stdin=io.BytesIO(b'[{"phone": "1234"}]')) as f:
        assert f.format == "json"


def test_broken_xls_is_one_clear_line(tmp_path):
    # .xls is read now (tests/test_workbooks.py); a broken one is refused in one line.
    p = tmp_path / "old.xls"
    p.write_bytes(b"\xd0\xcf\x11\xe0 whatever")
    with pytest.raises(InputError, match=r"old\.xls: not a readable \.xls workbook"):
        open_lead_file(p)


def test_xlsx_numbers_become_digits_and_dates_stay_dates(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Leads"
    other = wb.create_sheet("Other")
    other.append(["phone"])
    other.append(["555"])
    ws.append([])  # an empty first row: the header is the first non-empty one
    ws.append(["Phone", "Priority", "Expiry", "Name"])
    ws.append([9876543210.0, 7, dt.datetime(2030, 12, 25), "Asha"])
    ws.append([])
    ws.append([919876543210, 1.5, dt.datetime(2030, 1, 2, 10, 30), None])
    p = tmp_path / "a.xlsx"
    wb.save(p)
    f, rows = rows_of(p)
    assert f.columns == ["Phone", "Priority", "Expiry", "Name"]
    assert rows[0] == (3, {"Phone": "9876543210", "Priority": "7", "Expiry": dt.date(2030, 12, 25), "Name": "Asha"})
    assert rows[1][0] == 5
    assert rows[1][1]["Phone"] == "919876543210" and rows[1][1]["Priority"] == "1.5"
    _, other_rows = rows_of(p, sheet="Other")
    assert other_rows == [(2, {"phone": "555"})]
    with pytest.raises(InputError, match=r"no sheet named 'Nope' \(sheets: Leads, Other\)"):
        rows_of(p, sheet="Nope")


def test_broken_xlsx(tmp_path):
    pytest.importorskip("openpyxl")
    p = tmp_path / "a.xlsx"
    p.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match=r"a\.xlsx: not a readable \.xlsx workbook"):
        open_lead_file(p)
