"""Phone cells as real exports write them: other scripts' digits, Unicode dashes and spaces, line
breaks, Meta's p: prefix and test leads, spreadsheet errors, digit grouping; what reaches the
sandbox is exactly what the file meant."""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from leadpush.checks import Checker, CheckSettings, RowDefaults, read_phone
from leadpush.outcomes import Status
from leadpush.readers import open_lead_file
from leadpush.sandbox import ADD_PATH, TOKEN_PATH, Sandbox
from tests.conftest import write_csv

TODAY = dt.date(2026, 11, 27)
SENT = re.compile(r"\+?[0-9]{3,16}")
KEY = "demo-key-field-values"
CONFIG = {"accounts": [{"user": "demo", "api_key": KEY, "auth_mode": "TOKEN_AUTH", "campaigns": [
    {"name": "Main", "type": "progressive", "started": True}]}]}


def outcomes(path, **kw):
    with open_lead_file(path) as f:
        return [o for o, _ in Checker(CheckSettings(**kw), today=TODAY).check_file(f)]


@pytest.mark.parametrize(("cell", "script"), [
    ("९८७६५४३२१०", "Devanagari"), ("٩٨٧٦٥٤٣٢١٠", "Arabic-Indic"), ("９８７６５４３２１０", "Fullwidth"),
    ("۹۸۷۶۵۴۳۲۱۰", "Extended Arabic-Indic"), ("৯৮৭৬৫৪৩২১০", "Bengali"), ("98765४३२१०", "Devanagari")])
def test_other_scripts_digits_are_read_as_ascii_and_said(cell, script):
    phone, problem, note = read_phone(cell)
    assert (phone, problem) == ("9876543210", None)
    assert note.cause == "read.digits" and script in note and "sent as 9876543210" in note


@pytest.mark.parametrize("sep", ["\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212",
                                 "\u00a0", "\u202f", "\u2009", "\u200b", "\u2060", "\ufeff", "\u3000"])
def test_unicode_dashes_and_spaces_are_separators(sep):
    assert read_phone(f"+91{sep}98765{sep}43210")[:2] == ("+919876543210", None)


@pytest.mark.parametrize("cell", ["9876543210\n", "9876543210\r\n", "\n9876543210", "9876543210\u2028"])
def test_a_line_break_around_the_number_is_trimmed(cell):
    assert read_phone(cell)[:2] == ("9876543210", None)


def test_a_cell_ending_in_a_line_break_is_trimmed_on_the_fast_path_too(tmp_path):
    path = tmp_path / "alt-enter.csv"
    path.write_text('phone,campaign\n9876543210,c\n"9876543210\n",c\n"9123456789\n",c\n', encoding="utf-8")
    with open_lead_file(path) as f:
        rows = list(Checker(CheckSettings(), today=TODAY).check_file(f))
    assert [(o.status, o.phone) for o, _ in rows] == [
        (Status.VALID, "9876543210"), (Status.SKIPPED, "9876543210"), (Status.VALID, "9123456789")]
    assert rows[2][1]["phoneNumber"] == "9123456789"


def test_meta_prefix_is_removed_and_said():
    phone, problem, note = read_phone("p:+919876543210")
    assert (phone, problem, note.cause) == ("+919876543210", None, "read.meta_prefix")
    assert "p:" in note
    phone, _, note = read_phone("p:+९१९८७६५४३२१०")
    assert phone == "+919876543210" and note.cause == "read.meta_prefix;read.digits"


def test_meta_test_leads_are_skipped_with_the_reason(tmp_path):
    path = write_csv(tmp_path / "meta.csv", [["full_name", "phone_number"],
                                           ["<test lead: dummy data for full_name>",
                                            "<test lead: dummy data for phone_number>"],
                                           ["Asha", "p:+919876543210"]])
    out = outcomes(path, defaults=RowDefaults(campaign="Main"))
    assert [(o.status, o.cause) for o in out] == [(Status.SKIPPED, "row.test_lead"), (Status.VALID, "")]
    assert "test lead" in out[0].message
    assert out[1].note == "read.meta_prefix" and out[1].phone == "+919876543210"


@pytest.mark.parametrize("cell", ["#ERROR!", "#VALUE!", "#REF!", "#N/A", "#NAME?", "#DIV/0!", "#NUM!"])
def test_spreadsheet_errors_are_named(cell):
    _, problem, _ = read_phone(cell)
    assert problem.cause == "phone.spreadsheet_error" and "spreadsheet's error value" in problem


def test_digit_grouping_is_named():
    _, problem, _ = read_phone("98,20,69,5317")
    assert problem.cause == "phone.grouped" and "commas between groups of digits" in problem


def test_region_duplicates_key_on_the_parsed_number(tmp_path):
    path = write_csv(tmp_path / "spellings.csv", [["phone", "campaign"], ["9876543210", "c"],
                                                  ["+91 98765 43210", "c"], ["09876543210", "c"],
                                                  ["9876543210", "d"]])
    out = outcomes(path, region="IN")
    assert [(o.status, o.message) for o in out] == [
        (Status.VALID, ""), (Status.SKIPPED, "duplicate of row 2"), (Status.SKIPPED, "duplicate of row 2"),
        (Status.VALID, "")]
    # Without a region the spellings are different numbers, as before.
    assert [o.status for o in outcomes(path)] == [Status.VALID] * 4


def test_errors_name_countries(tmp_path):
    out = outcomes(write_csv(tmp_path / "c.csv", [["phone", "campaign"], ["+14155550123", "c"]]), region="IN")
    assert out[0].message == "phone number '+14155550123' is a number of United States (US), not of India (IN)"


_CELL = st.text(alphabet=st.one_of(st.characters(categories=["Nd", "Zs", "Pd", "Cc"]),
                                   st.sampled_from("0123456789+-(). ")), max_size=24)


@settings(max_examples=400, deadline=None)
@given(_CELL)
def test_whatever_the_cell_a_phone_read_is_what_cloudagent_takes_and_what_the_cell_meant(cell):
    phone, problem, note = read_phone(cell)
    if phone is None:
        return
    assert SENT.fullmatch(phone)
    meant = "".join(str(unicodedata.decimal(c)) for c in cell if c.isdecimal())
    assert phone.lstrip("+") == meant
    assert (note is not None and "read.digits" in note.cause) == (not cell.strip().isascii()
                                                                  and any(c.isdecimal() and not c.isascii()
                                                                          for c in cell))


@pytest.mark.parametrize("phone", ["९८७६५४३२१०", "9876543210\n", "９８７６５４３２１０", "98765\u221243210"])
def test_the_sandbox_refuses_what_cloudagent_refuses(phone):
    with Sandbox(CONFIG, rate_limit=0) as sb:
        token = requests.post(sb.base_url + TOKEN_PATH, headers={"apiKey": KEY},
                              json={"userName": "demo"}).json()["token"]
        r = requests.post(sb.base_url + ADD_PATH, headers={"apiKey": KEY, "Authorization": f"Bearer {token}",
                                                           "Content-Type": "application/json"},
                          data=json.dumps({"userName": "demo", "campaignName": "Main", "phoneNumber": phone}))
    assert r.json()["message"].startswith("phone number should be numeric")


def test_end_to_end_the_sandbox_receives_what_the_file_meant(cli, tmp_path):
    rows = [["Name", "Phone", "Campaign"],
            ["Devanagari", "९८७६५४३२१०", "Main"],
            ["Full-width", "９１２３４５６７８９", "Main"],
            ["Dashes", "98765\u201343210", "Main"],  # the same number as the first row
            ["Meta", "p:+919988776655", "Main"],
            ["Spaces", "\u200b91234\u00a056780\n", "Main"],
            ["Test", "<test lead: dummy data for phone_number>", "Main"],
            ["Error", "#ERROR!", "Main"]]
    path = write_csv(tmp_path / "leads.csv", rows)
    with Sandbox(CONFIG, rate_limit=0) as sb:
        env = {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "demo", "LEADPUSH_API_KEY": KEY,
               "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
        r = cli("upload", str(path), "--rate", "6000/min", "--json", env=env)
        leads = requests.get(sb.base_url + "/sandbox/leads").json()["accounts"]["demo"]["campaigns"]["Main"]
    assert r.exit_code == 1, r.output  # the #ERROR! row is invalid
    sent = sorted((lead["Name"], lead["phoneNumber"]) for lead in leads["leads"])
    assert sent == [("Devanagari", "9876543210"), ("Full-width", "9123456789"), ("Meta", "+919988776655"),
                    ("Spaces", "9123456780")]
    summary = json.loads(r.stdout)
    assert {n["note"]: n["rows"] for n in summary["notes"]} == {"read.digits": 2, "read.meta_prefix": 1}
    assert {c["cause"]: c["rows"] for c in summary["causes"]} == {
        "phone.spreadsheet_error": 1, "row.duplicate": 1, "row.test_lead": 1}


def test_validate_summary_says_what_was_read_for_you(cli, tmp_path):
    path = write_csv(tmp_path / "leads.csv", [["Phone", "Campaign"]] +
                     [[f"p:+9198765432{i:02d}", "c"] for i in range(40)])
    r = cli("validate", str(path), "--table", "none", env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "Read for you:" in r.stdout and "40 rows: phone starts with Meta's 'p:' (removed)" in r.stdout
