"""Do-not-call lists: reading them, matching by cleaned or parsed number, `suppressed`, the sandbox's DND answer."""

from __future__ import annotations

import datetime as dt
import json
import random
from array import array
from collections import Counter

import pytest

from leadpush.outcomes import RowOutcome, Status
from leadpush.sandbox import Sandbox
from leadpush.suppress import KeyTable, load_suppression, plain_key
from tests.conftest import read_csv, write_csv

KEY = "dnc-key-31c"
CONFIG = {"accounts": [{"user": "ops", "api_key": KEY, "auth_mode": "TOKEN_AUTH",
                        "dnd_numbers": ["9811111111"],
                        "campaigns": [{"name": "Main", "type": "progressive", "started": True}]}]}


@pytest.fixture
def sb():
    with Sandbox(CONFIG, rate_limit=0) as server:
        yield server


def sent(sb):
    leads = sb.state.leads_view()["accounts"]["ops"]["campaigns"]["Main"]["leads"]
    return Counter(lead["phoneNumber"] for lead in leads)


def env_for(sb, tmp_path):
    return {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops", "LEADPUSH_API_KEY": KEY,
            "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}


def leads(tmp_path, phones):
    return write_csv(tmp_path / "leads.csv", [["phone", "campaign"]] + [[p, "Main"] for p in phones])


def test_validate_reports_suppressed_rows_per_list_and_exits_0(cli, tmp_path):
    p = leads(tmp_path, ["9876543210", "9876543211", "9876543212", "9876543213"])
    txt = tmp_path / "dnc_2026-11.txt"
    txt.write_text("9876543210\n98765 43211\n")  # no header: one number a line
    csv_list = write_csv(tmp_path / "dnc.csv", [["Mobile", "until"], ["9876543212", "2020-01-01"],
                                                 ["9876543213", "2099-12-31"]])
    r = cli("validate", p, "--suppress", txt, "--suppress", csv_list, "--json", "--results", tmp_path / "r.csv")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["counts"]["suppressed"] == 3 and out["counts"]["valid"] == 1
    assert out["suppressed_by"] == {str(txt): 2, str(csv_list): 1}
    rows = {row["row"]: row for row in read_csv(tmp_path / "r.csv")}
    assert rows["2"]["status"] == "suppressed" and rows["2"]["message"] == f"on do-not-call list {txt}"
    assert rows["2"]["cause"] == "row.suppressed"
    assert rows["4"]["status"] == "valid"  # its entry expired in 2020
    assert rows["5"]["message"] == f"on do-not-call list {csv_list}"
    assert "1 past their expiry date" in r.stderr
    assert not (tmp_path / "leads.csv.failures.csv").exists()  # suppressed is not a failure


def test_the_table_and_summary_name_the_list(cli, tmp_path):
    p = leads(tmp_path, ["9876543210", "9876543211"])
    (tmp_path / "dnc.txt").write_text("phone\n9876543210\n")
    r = cli("validate", p, "--suppress", tmp_path / "dnc.txt")
    assert r.exit_code == 0
    assert "suppressed" in r.stdout and "1 valid, 1 suppressed" in r.stdout
    assert f"Do-not-call list {tmp_path / 'dnc.txt'}: 1 row suppressed" in r.stdout


def test_without_region_the_cleaned_numbers_must_be_equal(cli, tmp_path):
    p = leads(tmp_path, ["09876543210", "+919876543210", "9876543210", "98765-43210"])
    (tmp_path / "dnc.txt").write_text("9876543210\n")
    r = cli("validate", p, "--suppress", tmp_path / "dnc.txt", "--json", "--results", tmp_path / "r.csv")
    assert r.exit_code == 0, r.output
    assert [row["status"] for row in read_csv(tmp_path / "r.csv")] == ["valid", "valid", "suppressed", "skipped"]


def test_with_region_numbers_are_compared_as_parsed(cli, tmp_path):
    p = leads(tmp_path, ["09876543210", "+91 98765 43210", "9876543210", "9876543219"])
    (tmp_path / "dnc.txt").write_text("+919876543210\n")
    r = cli("validate", p, "--suppress", tmp_path / "dnc.txt", "--region", "IN", "--keep-duplicates",
            "--results", tmp_path / "r.csv")
    assert r.exit_code == 0, r.output
    assert [row["status"] for row in read_csv(tmp_path / "r.csv")] == ["suppressed"] * 3 + ["valid"]


def test_an_xlsx_list_with_dates(cli, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Phone Number", "Expiry"])
    ws.append([9876543210, dt.datetime(2099, 1, 1)])
    ws.append([9876543211, dt.datetime(2001, 1, 1)])
    wb.save(tmp_path / "dnc.xlsx")
    p = leads(tmp_path, ["9876543210", "9876543211"])
    r = cli("validate", p, "--suppress", tmp_path / "dnc.xlsx", "--json")
    assert json.loads(r.stdout)["counts"]["suppressed"] == 1


def test_upload_never_sends_a_suppressed_row_and_exits_0(cli, tmp_path, sb):
    p = leads(tmp_path, ["9300000001", "9300000002", "9300000003"])
    (tmp_path / "dnc.txt").write_text("9300000002\n")
    r = cli("upload", p, "--suppress", tmp_path / "dnc.txt", "--json", "--rate", "6000/min",
            env=env_for(sb, tmp_path))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"]["suppressed"] == 1
    assert sent(sb) == Counter({"9300000001": 1, "9300000003": 1})


def test_suppress_in_a_profile(cli, tmp_path, sb):
    (tmp_path / "dnc.txt").write_text("9300000002\n")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[profiles.p]\nsuppress = ["{tmp_path / "dnc.txt"}"]\n')
    p = leads(tmp_path, ["9300000001", "9300000002"])
    r = cli("validate", p, "--profile", "p", "--config", cfg, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"]["suppressed"] == 1


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("name,city\nAsha,Pune\n", "no phone number column in the do-not-call list"),
    ("phone\nnot a number\n", "line 2: phone number 'not a number' is not valid"),
    ("phone,until\n9876543210,01/02/2030\n", "line 2, column 'until': date '01/02/2030' is ambiguous"),
])
def test_a_bad_list_stops_before_anything_is_sent(cli, tmp_path, sb, content, message):
    dnc = tmp_path / "dnc.csv"
    if content is not None:
        dnc.write_text(content)
    p = leads(tmp_path, ["9300000001"])
    r = cli("upload", p, "--suppress", dnc, env=env_for(sb, tmp_path))
    assert r.exit_code == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert sent(sb) == Counter()


def test_the_key_table_holds_exactly_its_keys():
    rng = random.Random(5)
    keys = [plain_key(str(rng.randrange(10**9, 10**10))) for _ in range(5000)]
    keys += keys[:100] + [plain_key("123"), plain_key("0123"), plain_key("+123")]  # duplicates, short ones
    table = KeyTable(array("q", keys))
    assert table.count == len(set(keys))
    assert all(k in table for k in keys)
    others = {plain_key(str(rng.randrange(10**9, 10**10))) for _ in range(5000)} - set(keys)
    assert not any(k in table for k in others)
    assert len({plain_key("0123"), plain_key("123"), plain_key("+123")}) == 3  # each pair differs


def test_screen_touches_only_valid_rows(tmp_path):
    (tmp_path / "dnc.txt").write_text("9876543210\n")
    sup = load_suppression([tmp_path / "dnc.txt"], region=None, today=dt.date(2026, 11, 27))
    invalid = RowOutcome(2, Status.INVALID, "bad", "9876543210", "Main")
    assert not sup.screen(invalid) and invalid.status is Status.INVALID
    valid = RowOutcome(3, Status.VALID, "", "9876543210", "Main")
    assert sup.screen(valid) and valid.status is Status.SUPPRESSED


def test_the_sandbox_answers_dnd_numbers_as_the_legacy_apis_do(cli, tmp_path, sb):
    p = leads(tmp_path, ["9811111111", "9300000001"])
    r = cli("upload", p, "--results", tmp_path / "r.csv", "--rate", "6000/min", env=env_for(sb, tmp_path))
    assert r.exit_code == 1
    rows = read_csv(tmp_path / "r.csv")
    assert rows[0]["status"] == "rejected" and "PhoneNumber Added is a DND Number" in rows[0]["message"]
    assert rows[1]["status"] == "added" and sent(sb) == Counter({"9300000001": 1})
    assert sb.state.stats_view()["requests"]["AddCampaignData"]["dnd"] == 1


def test_a_suppressed_row_is_not_among_the_split_valid_rows(cli, tmp_path):
    p = leads(tmp_path, ["9876543210", "9876543211"])
    (tmp_path / "dnc.txt").write_text("9876543210\n")
    r = cli("validate", p, "--suppress", tmp_path / "dnc.txt", "--split")
    assert r.exit_code == 0, r.output
    assert [row["phoneNumber"] for row in read_csv(tmp_path / "leads.csv.valid.csv")] == ["9876543211"]
