"""Review of issues 10/16, the failures-file half: rows with an unknown outcome, JSON Lines from list
rows, cells a workbook cannot hold, the Summary's column counts, the probably-ours count."""

from __future__ import annotations

import json
import threading
from collections import Counter

import openpyxl
import pytest

from leadpush.causes import Problem
from leadpush.fixit import FixitWriter
from leadpush.outcomes import RowOutcome, Status
from leadpush.sandbox import Sandbox
from tests.conftest import read_csv, write_csv
from tests.test_upload import CONFIG, KEY, leads_in, phones

ENV = {"LEADPUSH_USERNAME": "demo", "LEADPUSH_API_KEY": KEY}


def _env(tmp_path):
    return {**ENV, "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}


# ---------------------------------------------------------------------------- 2. outcome unknown

def _first_run(cli, tmp_path, sb, failures):
    p = write_csv(tmp_path / "leads.csv", phones(3))
    r = cli("upload", p, "--base-url", sb.base_url, "--rate", "6000/min", "--no-check-duplicate", "--no-journal",
            "--failures", tmp_path / failures, "--retries", "0", env=_env(tmp_path))
    assert r.exit_code == 1, r.output
    return r


@pytest.mark.parametrize("failures", ["fixes.xlsx", "fixes.csv", "fixes.jsonl"])
def test_a_row_with_an_unknown_outcome_is_not_resent_from_the_failures_file(cli, tmp_path, failures):
    # Stored, then the connection dropped: the outcome is unknown and checkDuplicate is FALSE.
    answers = [{"phone": "9100000001", "drop": True, "store": True}]
    with Sandbox(CONFIG, rate_limit=0, answers=answers) as sb:
        r = _first_run(cli, tmp_path, sb, failures)
        said = " ".join(r.output.split())
        assert "run it again as it is" not in said
        assert "may already be in CloudAgent" in said and "--resend-unknown" in said
        again = cli("upload", tmp_path / failures, "--base-url", sb.base_url, "--rate", "6000/min",
                    "--no-check-duplicate", "--no-journal", "--results", tmp_path / "again.csv",
                    "--failures", tmp_path / f"second.{failures.split('.')[1]}", env=_env(tmp_path))
        assert leads_in(sb, "Main").count("9100000001") == 1  # not stored twice
        assert again.exit_code == 1, again.output
        row = read_csv(tmp_path / "again.csv")[0]
        assert row["status"] == "failed" and row["cause"] == "send.unknown"
        assert "earlier run could not tell" in row["message"]
        # The explicit choice sends it.
        chosen = cli("upload", tmp_path / failures, "--base-url", sb.base_url, "--rate", "6000/min",
                     "--no-check-duplicate", "--resend-unknown", env=_env(tmp_path))  # (implies --resume)
        assert chosen.exit_code == 0, chosen.output
        assert leads_in(sb, "Main").count("9100000001") == 2


def test_with_check_duplicate_true_an_unknown_row_goes_again(cli, tmp_path):
    answers = [{"phone": "9100000001", "drop": True, "store": True, "times": 2}]
    p = write_csv(tmp_path / "leads.csv", phones(2))
    with Sandbox(CONFIG, rate_limit=0, answers=answers) as sb:
        r = cli("upload", p, "--base-url", sb.base_url, "--rate", "6000/min", "--no-journal", "--retries", "1",
                "--failures", tmp_path / "fixes.xlsx", env=_env(tmp_path))
        assert r.exit_code == 1, r.output
        again = cli("upload", tmp_path / "fixes.xlsx", "--base-url", sb.base_url, "--rate", "6000/min",
                    "--no-journal", "--results", tmp_path / "again.csv", env=_env(tmp_path))
    # checkDuplicate TRUE: the resend is harmless, and CloudAgent says it has the number.
    assert read_csv(tmp_path / "again.csv")[0]["status"] == "exists", again.output


def test_the_workbook_marks_unknown_rows_red_and_never_says_just_run_again(cli, tmp_path):
    answers = [{"phone": "9100000001", "drop": True, "store": True}]
    with Sandbox(CONFIG, rate_limit=0, answers=answers) as sb:
        _first_run(cli, tmp_path, sb, "fixes.xlsx")
    wb = openpyxl.load_workbook(tmp_path / "fixes.xlsx")
    ws, summary = wb.worksheets
    cell = ws["A2"]
    assert cell.fill.fgColor.rgb.endswith("FFC7CE")  # red, not the amber of "run again"
    assert cell.comment.text.startswith("Outcome unknown: CloudAgent may already hold this lead")
    text = " ".join(str(c.value) for row in summary.iter_rows() for c in row if c.value is not None)
    assert "1 red row say 'outcome unknown'" in text or "1 red row says" in text or "outcome unknown" in text
    assert "as it is" not in text


# ---------------------------------------------------------------------------- 10. JSON Lines from list rows

def test_jsonl_failures_from_csv_rows_are_objects_by_column_name(cli, tmp_path):
    p = write_csv(tmp_path / "leads.csv", [["phone", "campaign", "note"], ["12", "Main", "a"]])
    r = cli("validate", p, "--failures-format", "jsonl", env=_env(tmp_path))
    assert r.exit_code == 1, r.output
    rows = [json.loads(line) for line in (tmp_path / "leads.csv.failures.jsonl").read_text().splitlines()]
    assert rows[0]["phone"] == "12" and rows[0]["note"] == "a" and rows[0]["campaign"] == "Main"
    assert rows[0]["leadpush_status"] == "invalid"


def test_jsonl_failures_from_a_workbook(cli, tmp_path):
    wb = openpyxl.Workbook()
    wb.active.append(["phone", "campaign"])
    wb.active.append(["12", "Main"])
    wb.save(tmp_path / "leads.xlsx")
    r = cli("validate", tmp_path / "leads.xlsx", "--failures", tmp_path / "x.jsonl", env=_env(tmp_path))
    assert r.exit_code == 1, r.output
    row = json.loads((tmp_path / "x.jsonl").read_text().splitlines()[0])
    assert row["phone"] == "12" and row["campaign"] == "Main"


# ---------------------------------------------------------------------------- 12. cells a workbook cannot hold

def _write(tmp_path, outcomes, columns):
    w = FixitWriter(tmp_path / "f.xlsx", columns=columns, keys=columns)
    for o in outcomes:
        w.write(o)
    w.close(Counter(o.status for o in outcomes))
    return w


@pytest.mark.parametrize("odd", ["\ufffe", "\uffff", "\ud800", "a\udfffb", "\x01"])
def test_xml_illegal_characters_make_a_readable_workbook_and_say_so(tmp_path, odd):
    o = RowOutcome(2, Status.INVALID, "bad phone", "x", "Main", source=["x", "Main", f"note{odd}"],
                   cause="phone.invalid", problems=(Problem("phone.invalid", "bad phone"),))
    w = _write(tmp_path, [o], ["phone", "campaign", "note"])
    ws = openpyxl.load_workbook(tmp_path / "f.xlsx").worksheets[0]  # malformed XML would raise here
    assert "\ufffd" in ws["C2"].value and "cannot store" in ws["C2"].comment.text
    assert w.cells_altered == 1


def test_a_cell_over_32767_characters_is_cut_and_says_so(tmp_path):
    long = "y" * 40000
    o = RowOutcome(2, Status.FAILED, "no answer", "9100000001", "Main", source=["9100000001", "Main", long],
                   cause="send.gave_up")
    _write(tmp_path, [o], ["phone", "campaign", "note"])
    wb = openpyxl.load_workbook(tmp_path / "f.xlsx")
    ws, summary = wb.worksheets
    assert len(ws["C2"].value) == 32767 and "40,000 characters" in ws["C2"].comment.text
    text = " ".join(str(c.value) for row in summary.iter_rows() for c in row if c.value is not None)
    assert "could not be written exactly" in text


# ---------------------------------------------------------------------------- 14. Summary column counts

def test_whole_row_marks_are_not_counted_for_the_first_column(tmp_path):
    rejected = RowOutcome(2, Status.REJECTED, "DND", "9100000001", "Main", source=["9100000001", "Main"],
                          cause="cloudagent.rejected")
    invalid = RowOutcome(3, Status.INVALID, "bad phone", "x", "Main", source=["x", "Main"], cause="phone.invalid",
                         problems=(Problem("phone.invalid", "bad phone"),))
    _write(tmp_path, [rejected, invalid], ["phone", "campaign"])
    summary = openpyxl.load_workbook(tmp_path / "f.xlsx").worksheets[1]
    rows = [[c.value for c in row] for row in summary.iter_rows()]
    start = next(i for i, r in enumerate(rows) if r[0] == "Column (cells marked)")
    table = {r[0]: r[1] for r in rows[start + 1:] if r[0]}
    assert table == {"phone": 1}


# ---------------------------------------------------------------------------- 13. the probably-ours count

def test_the_probably_ours_count_is_exact_with_many_workers(tmp_path):
    # Every row: the first answer lost after storing, the resend says Number Already Exist. (Lost
    # increments are a race: this test shows the count right, it cannot force the interleaving.)
    from tests.conftest import FakeClock
    from tests.test_undocumented import run

    answers = [{"phone": str(9100000000 + i), "drop": True, "store": True} for i in range(60)]
    clock = FakeClock()
    with Sandbox(CONFIG, clock=clock, rate_limit=0, answers=answers) as sb:
        s = run(tmp_path, sb, phones(60), clock=clock, workers=6)
    assert s.exists_after_our_attempt == 60
    assert threading.active_count() < 20


def test_the_split_workbook_refuses_a_value_it_cannot_hold_exactly(tmp_path):
    from leadpush.outcomes import ConfigError
    from leadpush.split import SplitWriter

    w = SplitWriter(tmp_path / "l.valid.xlsx", "xlsx", lambda: ["phoneNumber", "note"])
    w.write({"phoneNumber": "9100000001", "note": "fine"})
    with pytest.raises(ConfigError, match="cannot be written as a workbook exactly"):
        w.write({"phoneNumber": "9100000002", "note": "odd\ufffe"})
    w.close(keep=False)
    assert not (tmp_path / "l.valid.xlsx").exists()
