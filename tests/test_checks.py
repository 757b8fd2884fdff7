"""Each local rule, its message, the defaults, the column mapping and in-file duplicates."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from leadpush.checks import Checker, CheckSettings, RowDefaults, clean_expiry, clean_phone, clean_priority
from leadpush.mapping import build_column_map, parse_map_options
from leadpush.outcomes import ConfigError, InputError, Status
from leadpush.readers import open_lead_file

TODAY = dt.date(2026, 11, 27)


@pytest.mark.parametrize("raw,cleaned", [
    ("9876543210", "9876543210"),
    (" +91 98765-43210 ", "+919876543210"),
    ("(020) 2612.3456", "02026123456"),
    ("'09876543210", "09876543210"),
    ("9876543210.0", "9876543210"),
    (9876543210, "9876543210"),
    (Decimal("9876543210.0"), "9876543210"),
    ("123", "123"),
    ("+1234567890123456", "+1234567890123456"),
    ("98765\u00a043210", "9876543210"),
])
def test_phone_cleaning(raw, cleaned):
    assert clean_phone(raw) == (cleaned, None)


@pytest.mark.parametrize("raw,message", [
    ("9.87654E+09", "scientific notation, so the spreadsheet has already lost its last digits"),
    (Decimal("9.87654E+9"), "scientific notation"),
    ("12", "has 2 digits; CloudAgent takes 3 to 16"),
    ("12345678901234567", "has 17 digits"),
    ("98765abc", "is not valid: use 3 to 16 digits"),
    ("+", "is not valid"),
    ("91+9876", "is not valid"),
])
def test_bad_phones(raw, message):
    phone, problem = clean_phone(raw)
    assert phone is None and message in problem


def test_empty_phone_is_none():
    assert clean_phone("  ") == (None, None)


@pytest.mark.parametrize("raw,cleaned", [("7", "7"), ("7.0", "7"), ("0", "0"), ("99", "99"),
                                         (Decimal("7.0"), "7"), (7, "7"), ("", None)])
def test_priority_ok(raw, cleaned):
    assert clean_priority(raw) == (cleaned, None)


@pytest.mark.parametrize("raw", ["100", "-1", "7.5", "high", "1e2"])
def test_priority_bad(raw):
    assert clean_priority(raw)[1] == f"priority {raw!r} is not valid: use a whole number from 0 to 99"


@pytest.mark.parametrize("raw,order,expected", [
    ("2030-12-25", None, "2030-12-25"),
    ("2030-12-25 10:00:00", None, "2030-12-25"),
    ("2030/12/25", None, "2030-12-25"),
    ("25/12/2030", None, "2030-12-25"),
    ("12/25/2030", None, "2030-12-25"),
    ("Dec 25 2030", None, "2030-12-25"),
    ("25 December 2030", None, "2030-12-25"),
    ("01/02/2030", "day", "2030-02-01"),
    ("01/02/2030", "month", "2030-01-02"),
    (dt.datetime(2030, 12, 25, 0, 0), None, "2030-12-25"),
    (dt.date(2030, 12, 25), None, "2030-12-25"),
    ("", None, None),
])
def test_expiry_ok(raw, order, expected):
    assert clean_expiry(raw, today=TODAY, date_order=order) == (expected, None)


@pytest.mark.parametrize("raw,message", [
    ("01/02/2030", "expiry date '01/02/2030' is ambiguous: 2030-02-01 (day first) or 2030-01-02 (month first)"),
    ("2030-02-30", "is not a real date"),
    ("47000", "is a number, not a date"),
    ("soon", "is not a date: write it as YYYY-MM-DD"),
    ("Dec 2030", "is incomplete"),
    ("2020-01-01", "expiry date 2020-01-01 is in the past; fix it, or pass --allow-past-expiry"),
])
def test_expiry_bad(raw, message):
    value, problem = clean_expiry(raw, today=TODAY)
    assert value is None and message in problem


def test_past_expiry_allowed_on_request():
    assert clean_expiry("2020-01-01", today=TODAY, allow_past=True) == ("2020-01-01", None)


def test_aliases_and_passthrough_and_ignored():
    cmap = build_column_map(["Phone Number", "CAMPAIGN", "expiry_date", "Agent-ID", "Full Name", "address",
                             "leadpush_error", "userName", "\x004"], {})
    assert cmap.fields == {"phoneNumber": "Phone Number", "campaignName": "CAMPAIGN",
                           "expiryDate": "expiry_date", "agentId": "Agent-ID", "Name": "Full Name"}
    assert cmap.passthrough == [("address", "address")]
    assert cmap.ignored == ["leadpush_error", "userName", "column 4 (no header)"]


@pytest.mark.parametrize("header", ["msisdn", "Mobile", "phone_number", " PHONE "])
def test_phone_aliases(header):
    assert build_column_map([header], {}).fields == {"phoneNumber": header}


def test_user_map_renames_and_drops():
    user_map = parse_map_options(["Contact=phoneNumber", "Notes=", "Cust Addr=address"])
    cmap = build_column_map(["Contact", "Notes", "cust_addr", "city"], user_map)
    assert cmap.fields == {"phoneNumber": "Contact"}
    assert cmap.passthrough == [("cust_addr", "address"), ("city", "city")]
    assert cmap.ignored == ["Notes"]


def test_two_columns_for_one_field_must_be_resolved():
    with pytest.raises(InputError, match="columns 'phone' and 'mobile' both map to phoneNumber"):
        build_column_map(["phone", "mobile"], {})
    cmap = build_column_map(["phone", "mobile"], parse_map_options(["mobile="]))
    assert cmap.fields == {"phoneNumber": "phone"} and cmap.ignored == ["mobile"]


@pytest.mark.parametrize("option", ["nofieldsep", "=phoneNumber", "x=userName"])
def test_bad_map_options(option):
    with pytest.raises(ConfigError):
        parse_map_options([option])


def check(tmp_path, text, **settings):
    p = tmp_path / "leads.csv"
    p.write_text(text, encoding="utf-8")
    checker = Checker(CheckSettings(**settings), today=TODAY)
    with open_lead_file(p) as f:
        return list(checker.check_file(f))


def test_body_built_with_defaults_and_cell_values_winning(tmp_path):
    out = check(tmp_path, "phone,campaign,priority,Cust Addr,checkDuplicate,action\n"
                          "98765 43210,,,Pune,no,start\n12345,Other,9,,,\n",
                defaults=RowDefaults(campaign="Main", priority="5", expiry_date="2031-01-01", skill="sales",
                                     action="STOP"))
    (o1, b1), (o2, b2) = out
    assert o1.status is Status.VALID and o1.row == 2
    assert b1 == {"campaignName": "Main", "phoneNumber": "9876543210", "action": "START", "skill": "sales",
                  "priority": "5", "expiryDate": "2031-01-01", "checkDuplicate": "FALSE", "Cust Addr": "Pune"}
    assert b2["campaignName"] == "Other" and b2["priority"] == "9" and b2["checkDuplicate"] == "TRUE"
    assert b2["action"] == "STOP"


def test_every_problem_of_a_row_is_reported(tmp_path):
    [(o, body)] = check(tmp_path, "phone,priority,action,checkDuplicate\n12,200,go,maybe\n")
    assert body is None and o.status is Status.INVALID
    assert o.message == "; ".join([
        "phone number '12' has 2 digits; CloudAgent takes 3 to 16 (an optional leading + allowed)",
        "no campaign: add a campaignName column or pass --campaign",
        "priority '200' is not valid: use a whole number from 0 to 99",
        "action 'go' is not valid: use START, STOP or leave it empty",
        "checkDuplicate 'maybe' is not valid: use TRUE or FALSE (yes/no, 1/0 work too)",
    ])


def test_campaign_types_require_agent_or_skill(tmp_path):
    [(o, _)] = check(tmp_path, "phone,campaign\n12345,c\n", campaign_type="agent-wise")
    assert "agentId is empty and the campaign is agent-wise" in o.message
    [(o, _)] = check(tmp_path, "phone,campaign\n12345,c\n", campaign_type="skill-wise")
    assert "skill is empty and the campaign is skill-wise" in o.message


def test_duplicates_skipped_per_campaign_unless_kept(tmp_path):
    text = "phone,campaign\n98765-43210,a\n9876543210,b\n+9876543210,a\n(98765) 43210,a\n009876543210,a\n"
    out = [(o.row, o.status.value, o.message) for o, _ in check(tmp_path, text)]
    assert out == [(2, "valid", ""), (3, "valid", ""), (4, "valid", ""), (5, "skipped", "duplicate of row 2"),
                   (6, "valid", "")]
    kept = [o.status for o, _ in check(tmp_path, text, keep_duplicates=True)]
    assert kept == [Status.VALID] * 5


def test_region_and_phone_format(tmp_path):
    out = check(tmp_path, "phone,campaign\n98765 43210,c\n12345,c\n+14155550123,c\n",
                region="in", phone_format="e164")
    assert [(o.status.value, o.phone) for o, _ in out][:1] == [("valid", "+919876543210")]
    assert "is not a valid number of India (IN)" in out[1][0].message
    assert out[2][0].message == "phone number '+14155550123' is a number of United States (US), not of India (IN)"


def test_settings_errors():
    with pytest.raises(ConfigError, match="needs --region"):
        Checker(CheckSettings(phone_format="e164"), today=TODAY)
    with pytest.raises(ConfigError, match="not a known region"):
        Checker(CheckSettings(region="XX"), today=TODAY)
    with pytest.raises(ConfigError, match="--priority: priority '500'"):
        Checker(CheckSettings(defaults=RowDefaults(priority="500")), today=TODAY)
    with pytest.raises(ConfigError, match="--expiry-date: expiry date 2001-01-01 is in the past"):
        Checker(CheckSettings(defaults=RowDefaults(expiry_date="2001-01-01")), today=TODAY)


def test_no_phone_column_is_a_file_error_even_without_rows(tmp_path):
    with pytest.raises(InputError, match=r"leads\.csv: no phone number column \(columns: name, city\)"):
        check(tmp_path, "name,city\n")


def test_json_rows_may_differ_in_keys(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"phone": 12345, "campaign": "c"}\n{"mobile": "54321", "campaign": "c", "x": 1}\n'
                 '{"campaign": "c"}\n', encoding="utf-8")
    with open_lead_file(p) as f:
        out = list(Checker(CheckSettings(), today=TODAY).check_file(f))
    assert [o.status.value for o, _ in out] == ["valid", "valid", "invalid"]
    assert out[1][1]["phoneNumber"] == "54321" and out[1][1]["x"] == "1"
    assert out[2][0].message == "phone number is empty"
