"""Do-not-call lists read in full or not at all: list cells cleaned by the leads' own function,
unreadable entries stop the run, one-number-a-line lists never split, the date order reaches expiry."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from leadpush.checks import clean_phone
from leadpush.outcomes import ConfigError
from leadpush.sandbox import Sandbox
from leadpush.suppress import load_suppression, plain_key
from tests.conftest import write_csv

KEY = "dnc-key-77e"
CONFIG = {"accounts": [{"user": "ops", "api_key": KEY, "auth_mode": "TOKEN_AUTH",
                        "campaigns": [{"name": "Main", "type": "progressive", "started": True}]}]}
PHONES = ["9876543210", "9876543211", "9876543212", "9876543213", "9876543214"]


@pytest.fixture
def sb():
    with Sandbox(CONFIG, rate_limit=0) as server:
        yield server


def env_for(sb, tmp_path):
    return {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops", "LEADPUSH_API_KEY": KEY,
            "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}


def sent(sb):
    leads = sb.state.leads_view()["accounts"]["ops"]["campaigns"]["Main"]["leads"]
    return Counter(lead["phoneNumber"] for lead in leads)


def leads(tmp_path, phones=PHONES):
    return write_csv(tmp_path / "leads.csv", [["phone", "campaign"]] + [[p, "Main"] for p in phones])


# A list cell as spreadsheets and editors write it: every one of these is a listed number.
SPELLINGS = {
    "9876543210": '"9876543210\n"',  # a cell with a trailing line break (Alt+Enter)
    "9876543211": "9876543211\r",  # CRLF line ends (the \n is the row's)
    "9876543212": "\u0669\u0668\u0667\u0666\u0665\u0664\u0663\u0662\u0661\u0662",  # Arabic-Indic digits
    "9876543213": "98765\u00a043213",  # a no-break space
}


@pytest.mark.parametrize("suffix, header", [(".csv", "phone\n"), (".txt", ""), (".csv", "")])
def test_list_cells_are_cleaned_like_leads(cli, tmp_path, sb, suffix, header):
    dnc = tmp_path / f"dnc{suffix}"
    dnc.write_bytes((header + "\n".join(SPELLINGS.values()) + "\n").encode())
    r = cli("upload", leads(tmp_path), "--suppress", dnc, "--rate", "6000/min", "--no-journal", "--json",
            env=env_for(sb, tmp_path))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"]["suppressed"] == 4
    assert sent(sb) == Counter({"9876543214": 1})  # no listed number was dialled


def test_one_cleaning_function_for_leads_and_lists():
    from leadpush.suppress import list_key

    for raw in ["9876543210\n", " +91 98765-43210 ", "(0)98765.43210", "9876543210.0", "'9876543210",
                "\u0669\u0668\u0667\u0666\u0665\u0664\u0663\u0662\u0661\u0660", "98765\u00a043210\r\n"]:
        phone, _ = clean_phone(raw)
        assert phone is not None
        assert list_key(raw, None) == (plain_key(phone), None)


@pytest.mark.parametrize("content, line, value", [
    ("phone\n9876543210\n9.87654E+09\n", 3, "9.87654E+09"),
    ('phone\n9876543210\n"9,876,543,210"\n', 3, "9,876,543,210"),
    ("9876543210\n98765\n12\n", 3, "12"),
    ("phone\n9876543210\nunknown\n", 3, "unknown"),
])
@pytest.mark.parametrize("quiet", [[], ["-q"], ["--json"]])
def test_an_unreadable_list_entry_stops_the_run(cli, tmp_path, sb, content, line, value, quiet):
    dnc = tmp_path / "dnc.csv"
    dnc.write_text(content)
    r = cli("upload", leads(tmp_path), "--suppress", dnc, "--rate", "6000/min", *quiet, env=env_for(sb, tmp_path))
    assert r.exit_code == 2, r.output
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and str(dnc) in err[0] and f"line {line}" in err[0] and repr(value) in err[0]
    assert "Traceback" not in r.output and r.stdout == ""
    assert sent(sb) == Counter()


@pytest.mark.parametrize("name", ["dnc.txt", "dnc.csv", "dnc"])
def test_a_headerless_list_is_never_split_on_delimiters(cli, tmp_path, sb, name):
    dnc = tmp_path / name
    dnc.write_text("987|654|3210\n987;654;3211\n")
    r = cli("upload", leads(tmp_path, ["9876543210", "987"]), "--suppress", dnc, "--rate", "6000/min",
            env=env_for(sb, tmp_path))
    assert r.exit_code == 2, r.output
    assert len(r.stderr.strip().splitlines()) == 1 and str(dnc) in r.stderr
    assert sent(sb) == Counter()


def test_a_txt_list_is_one_number_a_line_under_an_optional_header(tmp_path):
    today = dt.date(2026, 11, 27)
    (tmp_path / "a.txt").write_text("phone\n9876543210\n\n+919876543211\n")
    sup = load_suppression([tmp_path / "a.txt"], region=None, today=today)
    assert sup.lists[0].entries == 2
    (tmp_path / "b.txt").write_text("9876543210;9876543211\n")  # a TXT line is one number, never two
    with pytest.raises(ConfigError, match=r"line 1: phone number '9876543210;9876543211'"):
        load_suppression([tmp_path / "b.txt"], region=None, today=today)


def test_the_date_order_reaches_the_expiry_column(cli, tmp_path):
    dnc = tmp_path / "dnc.csv"
    dnc.write_text("phone,until\n9876543210,01/02/2099\n")
    r = cli("validate", leads(tmp_path), "--suppress", dnc, "--dayfirst", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"]["suppressed"] == 1
    dnc.write_text("phone,until\n9876543210,12/01/2026\n9876543211,\n")
    today = dt.date(2026, 6, 1)
    day = load_suppression([dnc], region=None, today=today, date_order="day")  # 12 January: expired
    month = load_suppression([dnc], region=None, today=today, date_order="month")  # 1 December: in force
    assert (day.lists[0].expired, day.lists[0].entries) == (1, 1)
    assert (month.lists[0].expired, month.lists[0].entries) == (0, 2)
