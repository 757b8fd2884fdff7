"""Reading what real exports do to a file: unclosed quotes, two encodings in one file, title rows and
report footers, Excel's sep= line, JSON wrappers and what is not JSON, files that are not text."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from leadpush.checks import Checker, CheckSettings, RowDefaults
from leadpush.jobs import InputOptions, open_input
from leadpush.mapping import maps_phone
from leadpush.outcomes import InputError
from leadpush.readers import open_lead_file
from tests.conftest import read_csv, read_jsonl

TODAY = dt.date(2026, 11, 27)


def by_name(f, values):
    """A row's values by column name (CSV rows are lists in column order, JSON rows objects)."""
    return values if isinstance(values, dict) else dict(zip(f.keys or [], values, strict=True))


def read(path, **kw):
    """(lead file, [(row, {column: value})]) with the header found as the CLI finds it."""
    kw.setdefault("header_test", lambda cells: maps_phone(cells, {}))
    with open_lead_file(path, **kw) as f:
        return f, [(row, by_name(f, values)) for row, values in f.rows()]


def write(tmp_path, text, name="a.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


def outcomes(path, **kw):
    with open_input(InputOptions(file=str(path), checks=CheckSettings(defaults=RowDefaults(campaign="C"), **kw))) as f:
        return [(o.row, o.status.value, o.message) for o, _ in Checker(f and CheckSettings(
            defaults=RowDefaults(campaign="C"), **kw), today=TODAY).check_file(f)]


# ---------------------------------------------------------------------------- item 1: unclosed quotes

def test_a_quote_running_to_the_end_of_the_file_stops_it(tmp_path):
    p = write(tmp_path, 'name,phone\nAsha,9876543210\n"Ravi,9876543211\nMeera,9876543212\nArjun,9876543213\n')
    with pytest.raises(InputError, match=r"a\.csv: line 3, column 1: a quote opens here and is never closed: "
                                         r"it runs to the end of the file, taking 2 more lines"):
        read(p)


def test_a_quote_open_on_the_last_line_without_a_newline(tmp_path):
    p = write(tmp_path, 'name,phone\nAsha,9876543210\nRavi,"98765')
    with pytest.raises(InputError, match=r"line 3, column 2: a quote opens here and is never closed"):
        read(p)


def test_a_quote_that_swallows_whole_rows_and_closes_later_stops_the_file(tmp_path):
    # The quote on line 3 is closed by the one opening line 5's name: lines 3-4 would vanish.
    p = write(tmp_path, 'name,phone,campaign\nAsha,9876543210,C\n"Ravi,9876543211,C\n'
                        'Meera,9876543212,C\n"Arjun",9876543213,C\n')
    with pytest.raises(InputError, match=r"line 3, column 1: a quote opens here and runs on over 2 line breaks"):
        read(p)


def test_the_line_of_the_quote_counts_earlier_line_breaks_of_the_record(tmp_path):
    p = write(tmp_path, 'phone,note,name\n9876543210,"two\nlines","Ravi\n9876543211,x,y\n')
    with pytest.raises(InputError, match=r"line 3, column 3: a quote opens here and is never closed"):
        read(p)


def test_values_that_rightly_span_lines_are_read(tmp_path):
    p = write(tmp_path, 'phone,name,address\n9876543210,Asha,"Flat 2,\nMG Road, Pune"\n'
                        '9876543211,"Ravi ""RK""\r\nKumar",x\n')
    _, rows = read(p)
    assert rows == [(2, {"phone": "9876543210", "name": "Asha", "address": "Flat 2,\nMG Road, Pune"}),
                    (4, {"phone": "9876543211", "name": 'Ravi "RK"\r\nKumar', "address": "x"})]


# ---------------------------------------------------------------------------- item 4: two encodings

def test_one_windows_1252_line_in_a_utf8_file_stops_naming_line_and_byte(tmp_path):
    data = "name,phone\nआरव,9876543210\n".encode() + "José,9876543211\n".encode("cp1252") + "Zoë,1\n".encode()
    with pytest.raises(InputError, match=r"a\.csv: line 3: byte 0xE9 is not UTF-8, but line 2 is UTF-8: "
                                         r"the file mixes two encodings.*'José,9876543211'"):
        read(write(tmp_path, data))


def test_utf8_after_windows_1252_lines_is_named_too(tmp_path):
    data = "name,phone\nJosé,9876543211\n".encode("cp1252") + "आरव,9876543210\n".encode()
    with pytest.raises(InputError, match=r"line 2: byte 0xE9 is not UTF-8, but line 3 is UTF-8"):
        read(write(tmp_path, data))


def test_a_utf8_bom_file_with_a_bad_byte_names_its_line_and_speaks_of_utf8(tmp_path):
    data = "\ufeffname,phone\n".encode() + b"x" * 70000 + b",1\n" + "José,2\n".encode("cp1252")
    with pytest.raises(InputError) as e:
        read(write(tmp_path, data))
    assert "line 3: byte 0xE9 is not valid UTF-8" in str(e.value) and "utf-8-sig" not in str(e.value)


def test_a_whole_windows_1252_file_is_still_read_as_one(tmp_path):
    f, rows = read(write(tmp_path, "name,phone\nJosé – Müller,9876543211\n", encoding="cp1252"))
    assert f.encoding_note == "Windows-1252" and rows[0][1]["name"] == "José – Müller"


def test_json_that_is_not_utf8_names_line_and_byte(tmp_path):
    data = '[{"phone": "1"},\n {"name": "आरव"},\n'.encode() + '{"name": "José"}]'.encode("cp1252")
    with pytest.raises(InputError, match=r"a\.json: line 3: byte 0xE9 is not UTF-8, but line 2 is UTF-8"):
        read(write(tmp_path, data, "a.json"))


# ---------------------------------------------------------------------------- item 9: header row, footers

def test_header_row_is_found_below_a_title_block(tmp_path):
    p = write(tmp_path, '"Leads report"\n"As of 27/11/2026"\n\nName,Mobile,City\nAsha,9876543210,Pune\n')
    f, rows = read(p)
    assert f.columns == ["Name", "Mobile", "City"]
    assert rows == [(5, {"Name": "Asha", "Mobile": "9876543210", "City": "Pune"})]
    assert f.not_lead_rows == [(1, "title", "Leads report"), (2, "title", "As of 27/11/2026")]
    assert "the header is on line 4; 2 rows above it" in f.notes[0]


def test_a_user_map_names_the_phone_column_of_the_header(tmp_path):
    p = write(tmp_path, 'Report,\nWho,Cust Contact\nAsha,9876543210\n')
    f, _ = read(p, header_test=lambda cells: maps_phone(cells, {"custcontact": "phoneNumber"}))
    assert f.columns == ["Who", "Cust Contact"]
    f, _ = read(p)  # without the map nothing names a phone: the first row stays the header
    assert f.columns == ["Report", ""]


def test_a_phone_word_in_the_data_does_not_make_a_header(tmp_path):
    # The first row is a table's header whose phone column has a name not known; "Phone" further
    # down is a value (a lead source), not a header: the first row stays the header.
    p = write(tmp_path, 'Name,Contact Ph,Source\nAsha,9876543210,Web\nRavi,9876543211,Phone\n')
    f, rows = read(p)
    assert f.columns == ["Name", "Contact Ph", "Source"] and len(rows) == 2 and f.not_lead_rows == []


def test_header_row_option(tmp_path):
    p = write(tmp_path, 'a,b\nx,y\nName,Contact\nAsha,9876543210\n')
    f, rows = read(p, header_row=3)
    assert f.columns == ["Name", "Contact"] and rows == [(4, {"Name": "Asha", "Contact": "9876543210"})]
    with pytest.raises(InputError, match=r"--header-row 9: the file has no row on line 9"):
        read(p, header_row=9)
    p2 = write(tmp_path, 'a,b\n\nName,phone\n', "b.csv")
    with pytest.raises(InputError, match=r"--header-row 2: no row starts on line 2"):
        read(p2, header_row=2)


def test_header_row_option_on_the_command_line(cli, tmp_path):
    p = write(tmp_path, 'Title,\nphone,campaign\n9876543210,C\n')
    r = cli("validate", p, "--header-row", "2", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"] == 1
    assert re.search(r"--header-row +N \[x>=1\]", cli("validate", "--help").stdout)


def test_trailing_report_footers_are_not_lead_rows(tmp_path, cli):
    p = write(tmp_path, 'phone,campaign,name\n9876543210,C,Asha\n\n"Grand Totals (1 records)"\n'
                        'Confidential Information,,\n"Generated By: Priya 27/11/2026, 10:03 am"\n')
    f, rows = read(p)
    assert [r[0] for r in rows] == [2]
    assert f.not_lead_rows == [(4, "footer", "Grand Totals (1 records)"), (5, "footer", "Confidential Information"),
                               (6, "footer", "Generated By: Priya 27/11/2026, 10:03 am")]
    r = cli("validate", p, "--json")
    summary = json.loads(r.stdout)
    assert r.exit_code == 0 and summary["rows"] == 1 and summary["counts"]["invalid"] == 0
    assert len(summary["not_lead_rows"]) == 3


def test_a_text_only_row_followed_by_leads_is_a_row_not_a_footer(tmp_path):
    p = write(tmp_path, 'name,phone\nAsha,9876543210\nSection B,\nRavi,9876543211\n')
    _, rows = read(p)
    assert [r[0] for r in rows] == [2, 3, 4]


def test_a_trailing_row_holding_a_phone_is_a_lead_not_a_footer(tmp_path):
    p = write(tmp_path, 'phone,name\n9876543210,Asha\np:+919876543211,\nRavi 98765 43212,\n')
    _, rows = read(p)
    assert [r[0] for r in rows] == [2, 3, 4]


# ---------------------------------------------------------------------------- item 12: sep=

def test_excel_sep_line(tmp_path):
    f, rows = read(write(tmp_path, "sep=|\r\nname|phone\r\nA, B|9876543210\r\n"))
    assert f.delimiter == "|" and rows == [(3, {"name": "A, B", "phone": "9876543210"})]
    assert f.not_lead_rows == [] and "'sep=|' sets the delimiter" in f.notes[0]  # a directive, not a title


# ---------------------------------------------------------------------------- items 11, 14, 16: JSON

def test_json_wrapper_with_one_array(tmp_path):
    p = write(tmp_path, '{"CODE": 200, "RESPONSE": [{"phone": "1"}, {"phone": "2"}]}', "a.json")
    f, rows = read(p)
    assert rows == [(1, {"phone": "1"}), (2, {"phone": "2"})]
    assert "member 'RESPONSE'" in f.notes[0]


@pytest.mark.parametrize("text,message", [
    ('{"a": [], "b": [{"phone": 1}]}', r"holds 2 arrays \('a', 'b'\).*jq '\.a'"),
    ('{"phone": "9876543210"}', r"must be an array of objects .* or an object holding one"),
    ('{"RESPONSE": [1, 2]}', r"item 1 of 'RESPONSE': each item must be a JSON object, not a number"),
    ('{"RESPONSE": []} {}', r"line 1: unexpected text after the top-level object"),
    ('[]\n[{"phone": 1}]', r"line 2: unexpected text after the closing '\]'"),
    ('[] x', r"unexpected text after the closing '\]'"),
    ('[{"phone": NaN}]', r"item 1 \(line 1\): NaN is not JSON"),
    ('[{"phone": 1},\n {"p": -Infinity}]', r"item 2 \(line 2\): -Infinity is not JSON"),
    ('{"R": [{"phone": Infinity}]}', r"Infinity is not JSON"),
    ("[" * 100_000 + "]" * 100_000, r"item 1 \(line 1\): nested too deeply"),
    ('[{"a": ' + "[" * 5000 + "]" * 5000 + "}]", r"nested too deeply"),
    ('{"x": ' + "[" * 5000 + "]" * 5000 + "}", r"a\.json: nested too deeply"),
    # deep enough to exhaust the stack when written back out, though Python's decoder reads it
    ('[{"phone": "1", "x": ' + "[" * 975 + "]" * 975 + "}]", r"item 1 \(line 1\): nested too deeply"),
    ('{"R": [{"x": {"y": ' + "[" * 101 + "]" * 101 + "}}]}", r"item 1 of 'R': nested too deeply"),
])
def test_json_that_cannot_be_read_as_leads(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        read(write(tmp_path, text, "a.json"))


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_unreadable_json_is_one_line_and_exit_2(cli, tmp_path, fmt):
    body = "[" * 100_000 + "]" * 100_000
    p = write(tmp_path, body if fmt == "json" else '{"x": ' + body + "}\n", f"deep.{fmt}")
    r = cli("validate", p)
    assert r.exit_code == 2 and "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("number", ["1e999999999", "-1e999999999", "1" * 5000, "1.5e-999999999"])
def test_huge_numbers_are_row_problems_not_crashes(cli, tmp_path, number):
    p = write(tmp_path, f'[{{"phone": {number}, "campaign": "C"}}, {{"phone": "9876543210", "priority": '
                        f'{number}, "campaign": "C"}}]', "a.json")
    r = cli("validate", p, "--json")
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["counts"]["invalid"] == 2
    lines = (tmp_path / "a.json.failures.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line, parse_int=str, parse_float=str)["phone"] for line in lines][1] == "9876543210"


def test_a_json_array_or_object_where_text_is_expected_is_an_invalid_row(tmp_path, cli):
    p = write(tmp_path, json.dumps([
        {"phone": "9876543210", "campaign": ["C1"]},
        {"phone": "9876543211", "campaign": "C1", "name": {"first": "Asha"}},
        {"phone": "9876543212", "campaign": "C1", "tags": ["x"]},
        {"phone": "9876543213", "campaign": "C1", "tags": ["x"], "name": "Ravi"},
    ]), "a.json")
    r = cli("validate", p, "--map", "tags=", "--json")
    summary = json.loads(r.stdout)
    assert r.exit_code == 1 and summary["counts"] == {**summary["counts"], "valid": 2, "invalid": 2}
    failures = read_jsonl(tmp_path / "a.json.failures.jsonl")
    assert "'campaign' holds an array ([\"C1\"]), not a text" in failures[0]["leadpush_error"]
    assert "'name' holds an object" in failures[1]["leadpush_error"]
    r = cli("validate", p, "--json", "--no-failures")  # tags sent as an extra field: refused too
    assert json.loads(r.stdout)["counts"]["invalid"] == 4


def test_many_distinct_json_key_sets_are_mapped_in_linear_time(tmp_path):
    import time

    def seconds(n):
        p = write(tmp_path, json.dumps([{"phone": str(9000000000 + i), "campaign": "C", f"k{i}": "x"}
                                        for i in range(n)]), f"k{n}.json")
        start = time.process_time()
        with open_lead_file(p) as f:
            checker = Checker(CheckSettings(), today=TODAY, build_bodies=False)
            assert sum(1 for _ in checker.check_file(f)) == n
            assert len(checker.column_map.passthrough) == n
        return time.process_time() - start

    small, big = seconds(5_000), seconds(40_000)
    assert big < small * 8 * 2.5  # 8 times the rows; quadratic would be 64 times the time


# ---------------------------------------------------------------------------- messages

@pytest.mark.parametrize("data,fmt,message", [
    (b"\x1f\x8b\x08\x00rest", None, "is gzip-compressed"),
    (b"\x1f\x8b\x08\x00rest", "json", "is gzip-compressed"),
    (b"%PDF-1.7 ...", None, "is a PDF document"),
    # Without --format, workbook bytes are read as the workbook they are; with it, said.
    (b"PK\x03\x04\x14\x00[Content_Types].xml xl/workbook.xml", "csv", r"is a workbook, not CSV: leave out --format"),
    (b"PK\x03\x04\x14\x00 leads.csv", "csv", "is a ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "json", r"is an Excel 97-2003 workbook \(\.xls\), not JSON"),
])
def test_files_that_are_not_text_say_what_they_are(tmp_path, data, fmt, message):
    with pytest.raises(InputError, match=message):
        read(write(tmp_path, data, "leads.csv"), fmt=fmt)


def test_an_unnamed_column_is_named_by_its_position(cli, tmp_path):
    p = write(tmp_path, "name,,city\nAsha,9876543210,Pune\n")
    r = cli("validate", p)
    assert r.exit_code == 2
    assert "columns: name, column 2 (no header), city" in r.stderr and "\x00" not in r.stderr


def test_feeding_a_failures_file_back_to_upload_rewrites_it_with_the_first_row_numbers(cli, tmp_path):
    from leadpush.sandbox import Sandbox

    p = write(tmp_path, "phone,campaign\n9876543210,Main\n12,Main\n9876543211,Nope\n", "x.csv")
    key = "k"
    config = {"accounts": [{"user": "u", "api_key": key, "auth_mode": "TOKEN_AUTH",
                            "campaigns": [{"name": "Main", "type": "progressive", "started": True}]}]}
    with Sandbox(config, rate_limit=0) as sb:
        env = {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "u", "LEADPUSH_API_KEY": key,
               "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
        assert cli("upload", p, "--no-journal", "--rate", "6000/min", env=env).exit_code == 1
        failures = tmp_path / "x.csv.failures.csv"
        assert [f["leadpush_row"] for f in read_csv(failures)] == ["3", "4"]
        # validate leaves a failures file given as input as it is (its valid rows would be lost)
        before = failures.read_bytes()
        assert cli("validate", failures).exit_code == 1 and failures.read_bytes() == before
        # fix one row, upload again: the same file now holds the one row left, under its first number
        rows = read_csv(failures)
        rows[0]["phone"] = "9876543212"
        failures.write_text("phone,campaign,leadpush_row,leadpush_status,leadpush_error\n" + "".join(
            f"{r['phone']},{r['campaign']},{r['leadpush_row']},{r['leadpush_status']},x\n" for r in rows))
        r = cli("upload", failures, "--no-journal", "--rate", "6000/min", env=env)
        assert r.exit_code == 1, r.output
        assert not (tmp_path / "x.csv.failures.csv.failures.csv").exists()
        assert [(f["leadpush_row"], f["phone"]) for f in read_csv(failures)] == [("4", "9876543211")]
        # the last row fixed: everything went through, and the failures file is gone like any other
        failures.write_text("phone,campaign,leadpush_row\n9876543213,Main,4\n")
        assert cli("upload", failures, "--no-journal", "--rate", "6000/min", env=env).exit_code == 0
        assert not failures.exists() and not (tmp_path / "x.csv.failures.csv.failures.csv").exists()


def test_workbook_header_row_option_and_title_rows(tmp_path):
    pytest.importorskip("python_calamine")
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    for row in (["Leads"], ["Name", "Notes"], ["Name", "Mobile"], ["Asha", "9876543210"], [], ["Total: 1"]):
        wb.active.append(row)
    p = tmp_path / "a.xlsx"
    wb.save(p)
    f, rows = read(p)  # found: row 3 is the first that names a phone column
    assert f.columns == ["Name", "Mobile"] and rows == [(4, {"Name": "Asha", "Mobile": "9876543210"})]
    assert f.not_lead_rows == [(1, "title", "Leads"), (2, "title", "Name | Notes"), (6, "footer", "Total: 1")]
    f, rows = read(p, header_row=2)
    assert f.columns == ["Name", "Notes"] and [r[0] for r in rows] == [3, 4]
    with pytest.raises(InputError, match=r"row 5 of sheet .Sheet. is empty; it cannot be the header"):
        read(p, header_row=5)
