"""`leadpush template`: the headers a profile expects, one example row, and a phone column Excel keeps as text."""

from __future__ import annotations

import json

import pytest

openpyxl = pytest.importorskip("openpyxl")

PROFILE = '''
[profiles.nightly]
campaign = "Nightly"
region = "US"
campaign_type = "skill-wise"

[profiles.nightly.map]
"Customer" = "Name"
"Customer Mobile" = "phone"
"Note" = ""
"Address" = "address"
'''


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(PROFILE, encoding="utf-8")
    return path


def test_xlsx_template_from_a_profile_passes_its_own_checks(cli, cfg, tmp_path):
    out = tmp_path / "t.xlsx"
    r = cli("template", "--profile", "nightly", "--config", cfg, "-o", out)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == f"Wrote {out}: Customer, Customer Mobile, Address, skill"
    ws = openpyxl.load_workbook(out).active
    rows = [[c.value for c in row] for row in ws.iter_rows(max_row=2)]
    assert rows[0] == ["Customer", "Customer Mobile", "Address", "skill"]
    assert rows[1][1] == "2015550123" and isinstance(rows[1][1], str)  # the region's example mobile, as text
    phone = ws["B2"]
    assert phone.number_format == "@" and ws["B500"].number_format == "@"  # rows pasted in later, too
    assert ws["A2"].number_format != "@"  # only the phone column
    v = cli("validate", out, "--profile", "nightly", "--config", cfg, "--json")
    assert v.exit_code == 0, v.stderr
    summary = json.loads(v.stdout)
    assert summary["counts"]["valid"] == 1
    assert summary["columns"]["mapped"] == {"Name": "Customer", "phoneNumber": "Customer Mobile", "skill": "skill"}


def test_csv_template_without_a_profile(cli, tmp_path):
    out = tmp_path / "t.csv"
    r = cli("template", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert out.read_text(encoding="utf-8-sig").splitlines() == ["phoneNumber,Name,campaignName",
                                                                 "9876543210,Asha Rao,Your campaign"]
    assert cli("validate", out).exit_code == 0


def test_format_flag_and_no_overwrite(cli, tmp_path):
    out = tmp_path / "list.dat"
    assert cli("template", "-o", out, "--format", "csv").exit_code == 0
    assert out.read_text(encoding="utf-8-sig").startswith("phoneNumber,")
    again = cli("template", "-o", out)
    assert again.exit_code == 2
    assert again.stderr.strip() == f"Error: {out}: already exists; choose another with -o"
