"""validate --split: <input name>.valid.<ext> holds the rows that would be sent, exactly as they would be sent."""

from __future__ import annotations

import json

import openpyxl

from tests.conftest import read_csv, read_jsonl, write_csv

ROWS = [["Phone Number", "Campaign", "Priority", "Expiry", "checkDuplicate", "City"],
        ["98765 43210", "", "7.0", "25/12/2030", "yes", "Pune"],  # valid: cleaned
        ["9.87654E+09", "demo", "", "", "", ""],  # invalid
        ["98765-43210", "", "", "", "", ""],  # skipped: duplicate of row 2
        ["'09845012345", "ivr", "", "2031-01-02", "0", ""]]  # valid


def test_split_writes_the_bodies_as_sent(cli, tmp_path):
    src = write_csv(tmp_path / "leads.csv", ROWS)
    r = cli("validate", src, "--split", "--campaign", "demo", "--table", "none")
    assert r.exit_code == 1
    assert "Valid rows, as they would be sent: " in r.stdout
    assert read_csv(tmp_path / "leads.csv.valid.csv") == [
        {"campaignName": "demo", "phoneNumber": "9876543210", "priority": "7", "expiryDate": "2030-12-25",
         "checkDuplicate": "TRUE", "City": "Pune"},
        {"campaignName": "ivr", "phoneNumber": "09845012345", "priority": "", "expiryDate": "2031-01-02",
         "checkDuplicate": "FALSE", "City": ""}]
    assert (tmp_path / "leads.csv.failures.csv").exists()
    # The split file is itself a lead file that passes as it is.
    r = cli("validate", tmp_path / "leads.csv.valid.csv", "-q")
    assert r.exit_code == 0 and "2 rows: 2 valid" in r.stdout


def test_split_follows_the_input_format(cli, tmp_path):
    wb = openpyxl.Workbook()
    for row in ROWS:
        wb.active.append(row)
    wb.save(tmp_path / "leads.xlsx")
    cli("validate", tmp_path / "leads.xlsx", "--split", "--campaign", "demo", "--table", "none")
    ws = openpyxl.load_workbook(tmp_path / "leads.xlsx.valid.xlsx").worksheets[0]
    assert [c.value for c in ws[2]] == ["demo", "9876543210", "7", "2030-12-25", "TRUE", "Pune"]
    assert all(c.data_type == "s" and c.number_format == "@" for c in ws[2])

    objects = [dict(zip(ROWS[0], r, strict=False)) for r in ROWS[1:]]
    (tmp_path / "leads.jsonl").write_text("\n".join(json.dumps(o) for o in objects))
    cli("validate", tmp_path / "leads.jsonl", "--split", "--campaign", "demo", "--table", "none")
    bodies = read_jsonl(tmp_path / "leads.jsonl.valid.jsonl")
    assert bodies[0] == {"campaignName": "demo", "phoneNumber": "9876543210", "priority": "7",
                         "expiryDate": "2030-12-25", "checkDuplicate": "TRUE", "City": "Pune"}
    (tmp_path / "leads.json").write_text(json.dumps(objects))
    cli("validate", tmp_path / "leads.json", "--split", "--campaign", "demo", "--table", "none")
    assert json.loads((tmp_path / "leads.json.valid.json").read_text()) == bodies


def test_no_valid_rows_leaves_no_split_file(cli, tmp_path):
    src = write_csv(tmp_path / "bad.csv", [["phone", "campaign"], ["12", "demo"]])
    (tmp_path / "bad.csv.valid.csv").write_text("old")
    r = cli("validate", src, "--split", "-q")
    assert r.exit_code == 1 and not (tmp_path / "bad.csv.valid.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_without_split_no_file(cli, tmp_path):
    src = write_csv(tmp_path / "ok.csv", [["phone", "campaign"], ["9845012345", "demo"]])
    assert cli("validate", src, "-q").exit_code == 0
    assert cli("upload", src, "--dry-run", "-q").exit_code == 0
    assert not (tmp_path / "ok.csv.valid.csv").exists()
