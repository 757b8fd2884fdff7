"""Profiles that hold everything a file needs: a column map, how to read it, how to check it."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from typer.testing import CliRunner

from leadpush.cli import app
from leadpush.environment import Environment
from leadpush.outcomes import ConfigError
from leadpush.settings import Profile, resolve

from .conftest import ENV, write_csv

PROFILE = '''
[profiles.nightly]
campaign = "Nightly"
sheet = "Leads"
dayfirst = true
header_row = 1
keep_duplicates = true

[profiles.nightly.map]
"Customer Mobile" = "phoneNumber"
"Customer" = "Name"
"Note" = ""
'''


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(PROFILE, encoding="utf-8")
    return path


def _xlsx(path, sheets):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def test_a_profile_maps_columns_reads_the_named_sheet_and_orders_dates(cli, cfg, tmp_path):
    book = _xlsx(tmp_path / "in.xlsx", {
        "Cover": [["nothing here"]],
        "Leads": [["Customer Mobile", "Customer", "Note", "expiry"],
                  ["9876543210", "Asha", "call at 5", "01/02/2030"]]})
    results = tmp_path / "r.csv"
    r = cli("validate", book, "--profile", "nightly", "--config", cfg, "--json", "--results", results)
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["columns"]["mapped"] == {"phoneNumber": "Customer Mobile", "Name": "Customer",
                                            "expiryDate": "expiry"}
    assert summary["columns"]["ignored"] == ["Note"]
    assert summary["counts"]["valid"] == 1


def test_dates_follow_the_profile_and_a_flag_overrides_it(home, cfg, tmp_path):
    p = write_csv(tmp_path / "l.csv", [["Customer Mobile", "Customer", "expiry"], ["9876543210", "A", "01/12/2099"]])

    def validate(*flags):
        out, err = io.StringIO(), io.StringIO()
        env = Environment(stdin=io.BytesIO(), stdout=out, stderr=err, today=lambda: dt.date(2099, 6, 15))
        r = CliRunner().invoke(app, ["validate", str(p), "--profile", "nightly", "--config", str(cfg), "--json",
                                     *flags], obj=env, env={**ENV, **home})
        assert r.exit_code in (0, 1), err.getvalue()
        return json.loads(out.getvalue())["counts"]

    assert validate()["valid"] == 1  # 1 December: still to come
    assert validate("--monthfirst")["invalid"] == 1  # 12 January: passed


def test_a_map_flag_wins_for_its_column_and_the_profile_keeps_the_others():
    profile = Profile("nightly", None, {"map_options": {"Customer Mobile": "phoneNumber", "Note": ""}}, [])
    s = resolve({"map_options": (["Note=remarks"], "flag")}, profile)
    assert s.map_options == {"Customer Mobile": "phoneNumber", "Note": "remarks"}
    assert s.source("map_options") == "profile nightly (None) and flag"


def test_config_show_lists_the_file_settings_with_their_source(cli, cfg):
    r = cli("config", "show", "--profile", "nightly", "--config", cfg)
    assert r.exit_code == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert '"Customer Mobile=phoneNumber", "Customer=Name", "Note="' in lines["map"]
    assert f"profile nightly ({cfg})" in lines["map"]
    assert "Leads" in lines["sheet"] and "profile nightly" in lines["sheet"]
    assert "True" in lines["dayfirst"] and "profile nightly" in lines["dayfirst"]
    assert lines["encoding"].split()[1:] == ["(not", "set)", "default"]


@pytest.mark.parametrize("toml, words", [
    ('[profiles.p.map]\n"Mobile" = "phoneNumbr"\n',
     "'Mobile' = 'phoneNumbr': no such CloudAgent field; did you mean 'phoneNumber'?"),
    ('[profiles.p.map]\n"Key" = "apiKey"\n', "apiKey is set by leadpush"),
    ('[profiles.p]\nmap = "Mobile=phone"\n', "map has the wrong type (str)"),
    ('[profiles.p.map]\n"Mobile" = 5\n', "every value of map must be text"),
    ('[profiles.p]\nheader_row = 0\n', "header-row (from profile p"),
    ('[profiles.p]\ndelimiter = ";;"\n', "must be one character or 'tab'"),
    ('[profiles.p]\ndayfirst = true\nmonthfirst = true\n', "exclude each other"),
])
def test_a_bad_profile_file_setting_is_one_clear_line(cli, tmp_path, toml, words):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml, encoding="utf-8")
    p = write_csv(tmp_path / "l.csv", [["phone", "campaign"], ["9876543210", "C"]])
    r = cli("validate", p, "--profile", "p", "--config", cfg)
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and words in r.stderr, r.stderr


def test_a_file_without_a_column_the_map_names_stops_before_anything_is_sent(cli, cfg, tmp_path):
    p = write_csv(tmp_path / "l.csv", [["Mobile", "Customer"], ["9876543210", "Asha"]])
    r = cli("upload", p, "--profile", "nightly", "--config", cfg, "--sandbox")
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"Error: {p}: no column 'Customer Mobile', which the map sends to phoneNumber (columns: Mobile, Customer)")
    assert not (tmp_path / "l.failures.csv").exists()


def test_near_miss_fields_are_refused_in_map_flags_too():
    with pytest.raises(ConfigError, match="did you mean .expiryDate."):
        resolve({"map_options": (["Until=expiryDte"], "flag")}, Profile(None, None, {}, []))
    # A custom field is passed through, as before.
    assert resolve({"map_options": (["Addr=address"], "flag")}, Profile(None, None, {}, [])).map_options == {
        "Addr": "address"}


def test_header_row_from_a_profile(cli, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[profiles.p]\nheader_row = 3\ncampaign = "C"\n', encoding="utf-8")
    p = tmp_path / "report.csv"
    p.write_text("Leads export,,\nphone,Name\nMobile,Customer\n9876543210,Asha\n", encoding="utf-8")
    r = cli("validate", p, "--profile", "p", "--config", cfg, "--json", "--map", "Mobile=phoneNumber")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["columns"]["mapped"]["phoneNumber"] == "Mobile"
    assert cli("validate", p, "--profile", "p", "--config", cfg, "--header-row", "2", "--json").exit_code == 1
