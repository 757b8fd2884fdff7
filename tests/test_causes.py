"""Cause codes: on every problem, in the results file, the --json summary, the terminal summary, the README."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from leadpush.causes import CAUSES, Problem, causes_of
from leadpush.checks import Checker, CheckSettings, clean_priority
from leadpush.outcomes import Status
from leadpush.readers import open_lead_file
from tests.conftest import read_csv, read_jsonl, write_csv

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 27)


def outcomes(path, **kw):
    checker = Checker(CheckSettings(**kw), today=TODAY)
    with open_lead_file(path) as f:
        return [o for o, _ in checker.check_file(f)]


def test_every_problem_of_the_checks_carries_a_known_cause(tmp_path):
    rows = [["phone", "campaign", "priority", "expiry", "action", "checkDuplicate", "agent", "skill",
             "WhatsApp Number"],
            ["9.87654E+09", "c", "150", "01/02/2030", "launch", "maybe", "", ""],
            ["12", "", "x", "2020-01-01", "", "", "", ""],
            ["98765abc10", "c", "-1", "45000", "", "", "", ""],
            ["", "c", "", "2030-02-30", "", "", "", ""],
            ["9845012345", "c", "", "Dec 2030", "", "", "", ""],
            ["9845012346", "c", "", "not a date", "", "", "", ""],
            ["+14155550123", "c", "", "", "", "", "", ""],
            ["123", "c", "", "", "", "", "", ""],
            ["#ERROR!", "c", "", "", "", "", "", ""],
            ["98,20,69,5317", "c", "", "", "", "", "", ""],
            ["", "c", "", "", "", "", "", "", "98450 12345"]]
    path = write_csv(tmp_path / "bad.csv", rows)
    seen = set()
    for kw in ({}, {"region": "IN", "campaign_type": "agent-wise"}, {"campaign_type": "skill-wise"}):
        for o in outcomes(path, **kw):
            if o.status is Status.INVALID:
                assert o.problems and all(isinstance(p, Problem) for p in o.problems), o
                assert o.message == "; ".join(o.problems)
                assert causes_of(o.cause) == [p.cause for p in o.problems]
                seen.update(causes_of(o.cause))
    assert seen <= set(CAUSES)
    local = {c.code for c in CAUSES.values() if c.field is not None}
    assert seen == local, local - seen  # every local cause is reachable, and each one is met here


@pytest.mark.parametrize(("raw", "cause"), [("150", "priority.range"), ("-1", "priority.range"),
                                            ("7.5", "priority.invalid"), ("high", "priority.invalid")])
def test_priority_causes(raw, cause):
    assert clean_priority(raw)[1].cause == cause


def test_duplicates_are_skipped_with_a_cause(tmp_path):
    path = write_csv(tmp_path / "d.csv", [["phone", "campaign"], ["9845012345", "c"], ["98450 12345", "c"]])
    assert [o.cause for o in outcomes(path)] == ["", "row.duplicate"]


def sample(tmp_path):
    rows = [["phone", "campaign", "priority"]] + [[f"9.8765{i}E+09", "c", ""] for i in range(3)] + \
           [["9845012345", "c", "150"], ["9845012345", "c", ""], ["9845012346", "c", ""]]
    return write_csv(tmp_path / "leads.csv", rows)


def test_results_files_carry_the_cause(cli, tmp_path):
    path = sample(tmp_path)
    cli("validate", path, "--results", tmp_path / "r.csv", "--table", "none")
    cli("validate", path, "--results", tmp_path / "r.jsonl", "--table", "none")
    expected = ["phone.scientific"] * 3 + ["priority.range", "", ""]
    assert [r["cause"] for r in read_csv(tmp_path / "r.csv")] == expected
    assert [r["cause"] for r in read_jsonl(tmp_path / "r.jsonl")] == expected
    # The CSV/JSONL failures files are as they were: no new column.
    assert list(read_csv(tmp_path / "leads.csv.failures.csv")[0]) == ["phone", "campaign", "priority", "leadpush_row",
                                                                  "leadpush_status", "leadpush_error"]


def test_json_summary_groups_by_cause(cli, tmp_path):
    r = cli("validate", sample(tmp_path), "--json")
    summary = json.loads(r.stdout)
    assert [(c["cause"], c["rows"]) for c in summary["causes"]] == [("phone.scientific", 3),
                                                                    ("priority.range", 1)]
    assert summary["causes"][0]["field"] == "phoneNumber"
    assert [(p["row"], p["cause"]) for p in summary["problem_rows"]] == [
        (2, "phone.scientific"), (3, "phone.scientific"), (4, "phone.scientific"), (5, "priority.range")]
    assert summary["problem_rows_omitted"] == 0


def test_terminal_summary_lists_the_top_causes(cli, tmp_path):
    r = cli("validate", sample(tmp_path), "--table", "none")
    lines = r.stdout.splitlines()
    start = lines.index("Causes:")
    assert lines[start + 1] == ("  3 rows: phone in scientific notation (digits already lost) — format the "
                                "column as text and export the file again (phone.scientific)")
    assert lines[start + 2] == "  1 row: priority outside 0-99 — use a whole number from 0 to 99 (priority.range)"


def test_terminal_summary_stops_at_five_causes(cli, tmp_path):
    path = write_csv(tmp_path / "many.csv", [
        ["phone", "campaign", "priority", "expiry", "action", "checkDuplicate"],
        ["9.8E+09", "c", "150", "01/02/2030", "launch", "maybe"], ["12", "", "", "", "", ""]])
    r = cli("validate", path, "--table", "none")
    assert "  ... and 2 more causes (--json lists them all)" in r.stdout


def test_readme_documents_every_cause():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", readme, flags=re.M))
    assert documented == set(CAUSES)
