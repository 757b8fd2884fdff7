"""`leadpush validate` through the real CLI: table, summary, JSON, results, failures file, exit codes."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import read_csv, read_jsonl, write_csv

GOOD = [["Phone Number", "Name", "Campaign", "Priority", "Expiry Date", "address"],
        ["98765 43210", "Asha", "demo_progressive", "5", "2030-12-25", "Pune"],
        ["98765 43211", "Ravi", "demo_progressive", "", "", ""]]


def test_clean_file_exits_0_and_shows_every_row(cli, tmp_path):
    p = write_csv(tmp_path / "leads.csv", GOOD)
    r = cli("validate", p)
    assert r.exit_code == 0, r.output
    assert "leads.csv: 2 rows: 2 valid" in r.stdout
    assert "9876543210" in r.stdout and "9876543211" in r.stdout
    assert "Passed through as extra fields: address" in r.stdout
    assert r.stderr == ""
    assert not (tmp_path / "leads.csv.failures.csv").exists()


def test_problem_rows_exit_1_and_land_in_a_failures_file_that_round_trips(cli, tmp_path):
    rows = GOOD + [["12", "Short", "demo_progressive", "", "", ""],
                   ["98765 43212", "Late", "demo_progressive", "", "2001-01-01", "Mumbai, MH"],
                   ["9876543210", "Again", "demo_progressive", "", "", ""]]
    p = write_csv(tmp_path / "leads.csv", rows)
    r = cli("validate", p)
    assert r.exit_code == 1
    assert "5 rows: 2 valid, 1 skipped, 2 invalid" in r.stdout
    failures = tmp_path / "leads.csv.failures.csv"
    got = read_csv(failures)
    assert [f["leadpush_row"] for f in got] == ["4", "5"]
    # the original columns and values exactly as read, in the original order, then leadpush's
    assert list(got[1].keys()) == GOOD[0] + ["leadpush_row", "leadpush_status", "leadpush_error"]
    assert got[1]["address"] == "Mumbai, MH" and got[1]["Phone Number"] == "98765 43212"
    assert got[1]["leadpush_status"] == "invalid" and "in the past" in got[1]["leadpush_error"]

    # feed the failures file straight back: the same rows fail for the same reasons, and keep the
    # row numbers of the file they first came from
    r2 = cli("validate", failures, "--failures", tmp_path / "again.csv")
    assert r2.exit_code == 1
    again = read_csv(tmp_path / "again.csv")
    assert [(a["leadpush_row"], a["leadpush_error"]) for a in again] == [("4", got[0]["leadpush_error"]),
                                                                       ("5", got[1]["leadpush_error"])]
    assert list(again[0].keys()) == list(got[0].keys())  # no second set of leadpush_* columns
    assert "Not sent: leadpush_row, leadpush_status, leadpush_error" in r2.stdout


def test_fixing_the_rows_removes_the_old_failures_file(cli, tmp_path):
    p = write_csv(tmp_path / "leads.csv", GOOD + [["12", "x", "demo_progressive", "", "", ""]])
    assert cli("validate", p).exit_code == 1
    assert (tmp_path / "leads.csv.failures.csv").exists()
    write_csv(p, GOOD)
    assert cli("validate", p).exit_code == 0
    assert not (tmp_path / "leads.csv.failures.csv").exists()


def test_error_cells_cannot_run_as_formulas_but_user_values_stay(cli, tmp_path):
    p = write_csv(tmp_path / "leads.csv", [["phone", "campaign", "note"], ["=1+2", "c", "=HYPERLINK(1)"]])
    cli("validate", p, "--map", "note=")
    [row] = read_csv(tmp_path / "leads.csv.failures.csv")
    assert row["phone"] == "=1+2" and row["note"] == "=HYPERLINK(1)"  # untouched
    assert row["leadpush_error"].startswith("phone number '=1+2'")
    # a message of leadpush's own that starts with a trigger is defused
    from leadpush.records import formula_safe
    assert formula_safe("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    assert formula_safe("-1") == "'-1" and formula_safe("ok") == "ok"


def test_json_input_gets_a_jsonl_failures_file_with_exact_values(cli, tmp_path):
    p = tmp_path / "leads.json"
    p.write_text('[{"phone": 9876543210, "campaign": "c"}, {"phone": 9.87654E+9, "campaign": "c", "n": 1.50}]')
    r = cli("validate", p)
    assert r.exit_code == 1
    text = (tmp_path / "leads.json.failures.jsonl").read_text()
    assert '"phone": 9.87654E+9' in text and '"n": 1.50' in text  # the literal, not a rounded float
    [row] = read_jsonl(tmp_path / "leads.json.failures.jsonl")
    assert row["leadpush_row"] == 2 and "scientific notation" in row["leadpush_error"]
    r2 = cli("validate", tmp_path / "leads.json.failures.jsonl", "--no-failures")
    assert r2.exit_code == 1 and "1 invalid" in r2.stdout


def test_json_summary_and_results_file(cli, tmp_path):
    p = write_csv(tmp_path / "leads.csv", GOOD + [["12", "x", "demo_progressive", "", "", ""]])
    r = cli("validate", p, "--json", "--results", tmp_path / "out.jsonl")
    assert r.exit_code == 1
    summary = json.loads(r.stdout)
    assert summary["rows"] == 3 and summary["counts"]["valid"] == 2 and summary["counts"]["invalid"] == 1
    assert summary["exit_code"] == 1 and summary["columns"]["passthrough"] == ["address"]
    assert summary["failures_file"].endswith("leads.csv.failures.csv")
    results = read_jsonl(tmp_path / "out.jsonl")
    assert [(x["row"], x["status"], x["phoneNumber"]) for x in results] == [
        (2, "valid", "9876543210"), (3, "valid", "9876543211"), (4, "invalid", "12")]
    cli("validate", p, "--results", tmp_path / "out.csv", "--no-failures")
    assert [x["status"] for x in read_csv(tmp_path / "out.csv")] == ["valid", "valid", "invalid"]


def test_big_files_show_only_problem_rows_by_default(cli, tmp_path):
    rows = [["phone", "campaign"]] + [[str(9000000000 + i), "c"] for i in range(250)] + [["1", "c"]]
    p = write_csv(tmp_path / "big.csv", rows)
    r = cli("validate", p, "--no-failures")
    assert "Problem rows of" in r.stdout and "9000000000" not in r.stdout and "252" in r.stdout
    r = cli("validate", p, "--no-failures", "--table", "all")
    assert "9000000249" in r.stdout
    r = cli("validate", p, "--no-failures", "--table", "none")
    assert "│" not in r.stdout and "251 rows: 250 valid, 1 invalid" in r.stdout


def test_stdin(cli):
    r = cli("validate", "-", "--format", "csv", "--campaign", "c", "--no-failures",
            input="phone\n9876543210\n12\n")
    assert r.exit_code == 1 and "<stdin>: 2 rows: 1 valid, 1 invalid" in r.stdout


def test_encoding_note_goes_to_stderr(cli, tmp_path):
    p = tmp_path / "w.csv"
    p.write_bytes("phone,campaign,name\n9876543210,c,José\n".encode("cp1252"))
    r = cli("validate", p)
    assert r.exit_code == 0
    assert "is not UTF-8; read it as Windows-1252" in r.stderr


@pytest.mark.parametrize("args,content,message", [
    (["missing.csv"], None, "Error: missing.csv: no such file"),
    (["empty.csv"], "", "Error: empty.csv: the file is empty"),
    (["nophone.csv"], "name,city\nx,y\n", "Error: nophone.csv: no phone number column"),
    (["broken.json"], '[{"phone": ', "Error: broken.json: line 1: not valid JSON"),
    (["ok.csv", "--map", "oops"], "phone\n123\n", "Error: --map 'oops': write it as"),
    (["ok.csv", "--phone-format", "e164"], "phone\n123\n", "Error: --phone-format e164/national needs --region"),
    (["ok.csv", "--dayfirst", "--monthfirst"], "phone\n123\n", "Error: --dayfirst and --monthfirst exclude"),
    (["ok.csv", "--failures", "ok.csv"], "phone\n123\n", "--failures (ok.csv) and the input (ok.csv) are the same"),
])
def test_bad_input_is_one_line_exit_2_no_traceback(cli, tmp_path, monkeypatch, args, content, message):
    monkeypatch.chdir(tmp_path)
    if content is not None:
        (tmp_path / args[0]).write_text(content)
    r = cli("validate", *args)
    assert r.exit_code == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_missing_xlsx_extra_is_explained(cli, tmp_path, monkeypatch):
    (tmp_path / "a.xlsx").write_bytes(b"PK\x03\x04")
    monkeypatch.setitem(sys.modules, "python_calamine", None)  # as if the extra were not installed
    r = cli("validate", tmp_path / "a.xlsx")
    assert r.exit_code == 2 and "pip install 'leadpush[xlsx]'" in r.stderr


def test_usage_error_is_exit_2(cli):
    r = cli("validate", "--table", "sideways", "x.csv")
    assert r.exit_code == 2


def test_help_documents_every_command(cli):
    for command in (["validate"], ["upload"], ["sandbox"], ["config", "show"], ["auth", "check"]):
        r = cli(*command, "--help")
        assert r.exit_code == 0 and "Usage" in r.stdout, command
        assert len(r.stdout.splitlines()) > 5  # options and the docstring are there
    r = cli("--version")
    assert r.stdout.startswith("leadpush ")
