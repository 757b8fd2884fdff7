"""A template honours everything its profile says about the file: sheet, header row, delimiter,
encoding, and the columns its map drops. Each template passes `validate` with its own profile."""

from __future__ import annotations

import pytest

openpyxl = pytest.importorskip("openpyxl")

PROFILES = '''
[profiles.sheet_and_header]
campaign = "Nightly"
sheet = "Data"
delimiter = ";"
header_row = 3
[profiles.sheet_and_header.map]
"Téléphone" = "phoneNumber"
"Nom" = "Name"

[profiles.windows]
campaign = "Nightly"
encoding = "cp1252"
delimiter = "tab"
[profiles.windows.map]
"Téléphone" = "phoneNumber"
"Nom" = "Name"

[profiles.drops_name]
campaign = "Nightly"
[profiles.drops_name.map]
"Mobile" = "phoneNumber"
"Name" = ""
'''


@pytest.mark.parametrize("profile", ["sheet_and_header", "windows", "drops_name"])
@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_every_template_validates_with_its_own_profile(cli, tmp_path, profile, suffix):
    cfg = tmp_path / "config.toml"
    cfg.write_text(PROFILES, encoding="utf-8")
    out = tmp_path / f"t.{suffix}"
    r = cli("template", "--profile", profile, "--config", cfg, "-o", out)
    assert r.exit_code == 0, r.stderr
    r = cli("validate", out, "--profile", profile, "--config", cfg)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "1 valid" in r.stdout + r.stderr


def test_the_template_is_written_as_the_profile_reads(cli, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(PROFILES, encoding="utf-8")
    r = cli("template", "--profile", "windows", "--config", cfg, "-o", tmp_path / "w.csv")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "w.csv").read_bytes().splitlines()[0] == "Téléphone\tNom".encode("cp1252")
    r = cli("template", "--profile", "sheet_and_header", "--config", cfg, "-o", tmp_path / "s.xlsx")
    wb = openpyxl.load_workbook(tmp_path / "s.xlsx")
    assert wb.sheetnames == ["Data"]
    assert [c.value for c in wb["Data"][3]] == ["Téléphone", "Nom"]
    r = cli("template", "--profile", "drops_name", "--config", cfg, "-o", tmp_path / "d.csv")
    assert r.stdout.strip() == f"Wrote {tmp_path / 'd.csv'}: Mobile"  # no Name column the map would drop
