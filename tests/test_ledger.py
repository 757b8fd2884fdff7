"""The run ledger: kill -9, two runs at once, a damaged file, `history`, --skip-loaded-within, schema versions."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections import Counter

import pytest

from leadpush.ledger import EXISTS_AFTER_ATTEMPT, LEDGER_NAME, SCHEMA_VERSION, Ledger, LedgerError, RunLog, parse_window
from leadpush.outcomes import RowOutcome, Status
from tests.conftest import FakeClock, leadpush, read_csv, read_jsonl, rows, stored, wait_for, write_csv

KEY = "ledger-key-9d2"
CONFIG = {"accounts": [{"user": "ops", "api_key": KEY, "auth_mode": "TOKEN_AUTH", "campaigns": [
    {"name": "Nightly", "type": "progressive", "started": True},
    {"name": "Morning", "type": "progressive", "started": True}]}]}






@pytest.fixture
def env(sb, tmp_path, home, data_dir):
    return {**os.environ, **home, "LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops",
            "LEADPUSH_API_KEY": KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1", "COLUMNS": "250", "LEADPUSH_DATA_DIR": str(data_dir)}




def ledger_leads(data_dir, run=None, status="added"):
    db = sqlite3.connect(data_dir / LEDGER_NAME)
    sql, args = "SELECT campaign, phone FROM leads WHERE status = ?", [status]
    if run is not None:
        sql += " AND run_id = ?"
        args.append(run)
    found = Counter(db.execute(sql, args).fetchall())
    db.close()
    return found


def test_kill_9_loses_nothing_the_journal_keeps(sb, tmp_path, env, data_dir):
    p = write_csv(tmp_path / "leads.csv", rows(60))
    proc = leadpush("upload", p, "--rate", "20/s", "--workers", "4", env=env, wait=False)
    wait_for(lambda: sum(stored(sb).values()) >= 15)
    proc.kill()
    proc.wait()
    lines = read_jsonl(tmp_path / "leads.csv.leadpush-journal.jsonl")
    journal = {(r["campaign"], r["phone"]) for r in lines if r.get("type") == "row" and r["status"] == "added"}
    # Rows the killed run had sent but whose answer it never wrote: the kill may land in that window.
    # (From the journal: a send line is written before its request goes out, whereas the sandbox may
    # still be storing a request sent just before the kill.)
    in_flight = {(r["campaign"], r["phone"]) for r in lines if r.get("type") == "send"} - journal
    in_ledger = ledger_leads(data_dir, run=1)
    assert len(journal) >= 10
    assert journal <= set(in_ledger)  # nothing the journal kept is missing from the ledger
    assert set(in_ledger) <= {("Nightly", p) for p in stored(sb)}  # and nothing that was not stored
    assert max(in_ledger.values()) == 1

    code, out, err = leadpush("history", "--json", env=env)
    (run,) = json.loads(out)
    assert code == 0 and run["id"] == 1 and run["finished"] is False and run["exit_code"] is None
    code, out, err = leadpush("history", env=env)
    assert "did not finish" in out

    there_before = {("Nightly", p) for p in stored(sb)}  # everything the killed run's requests stored, by now
    code, out, err = leadpush("upload", p, "--rate", "6000/min", "--resume", env=env)
    assert code == 0, err
    added = ledger_leads(data_dir)
    # A lead the killed run sent but never journaled is found `exists` on the resend: perhaps the run's
    # own lead, so the ledger keeps it as `exists_after_attempt`, never as `added` or as there before.
    # The ledger is written before the journal, so a kill between the two leaves a lead `added` by
    # run 1 that run 2 finds `exists_after_attempt` too (undo of run 1 still deletes it).
    window = set(in_ledger) - journal
    probable = ledger_leads(data_dir, status=EXISTS_AFTER_ATTEMPT)
    assert set(probable) <= in_flight and set(probable) & set(added) <= window
    assert not set(ledger_leads(data_dir, run=2)) & there_before  # the resumed run never claims those `added`
    assert set(added) | set(probable) == {("Nightly", p) for p in stored(sb)}
    assert max(added.values()) == 1
    assert sum(stored(sb).values()) == 60


def test_two_runs_at_once_both_land_in_the_ledger(sb, tmp_path, env, data_dir):
    a = write_csv(tmp_path / "a.csv", rows(40, start=9300000000))
    b = write_csv(tmp_path / "b.csv", rows(40, start=9400000000))
    procs = [leadpush("upload", f, "--rate", "6000/min", "--workers", "4", "--json", env=env, wait=False)
             for f in (a, b)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [code for _, _, code in results] == [0, 0], results
    runs = sorted(json.loads(out)["run"] for out, _, _ in results)
    assert runs == [1, 2]
    for run in runs:
        assert sum(ledger_leads(data_dir, run=run).values()) == 40
    assert set(ledger_leads(data_dir)) == {("Nightly", p) for p in stored(sb)}
    code, out, _ = leadpush("history", "--json", env=env)
    assert [r["counts"] for r in json.loads(out)] == [{"added": 40}, {"added": 40}]


@pytest.mark.parametrize("command", ["upload", "history"])
def test_a_damaged_ledger_is_one_line_exit_2_and_nothing_is_sent(sb, tmp_path, env, data_dir, command):
    (data_dir / LEDGER_NAME).write_bytes(b"this is not a database, just some bytes" * 100)
    p = write_csv(tmp_path / "leads.csv", rows(3))
    args = ("upload", p) if command == "upload" else ("history",)
    code, out, err = leadpush(*args, env=env)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "the run ledger is damaged" in err and "Traceback" not in err
    assert sb.state.stats_view()["requests"]["AddCampaignData"] == {}
    assert sb.state.stats_view()["requests"]["generateToken"] == {}


def test_history_of_one_run_and_its_results_file(cli, sb, tmp_path, env):
    p = write_csv(tmp_path / "leads.csv", rows(2) + [["9300000000", "Morning"]])
    sb.state.accounts["ops"].campaigns["Morning"].store({"phoneNumber": "9300000000", "preexisting": True})
    r = cli("upload", p, "--rate", "6000/min", "--json", env=env)
    assert r.exit_code == 0, r.output
    r = cli("history", "1", "--results", tmp_path / "h.csv", env=env)
    assert r.exit_code == 0, r.output
    assert "Run 1: upload of" in r.stdout and "Counts: 2 added, 1 exists" in r.stdout
    assert [(x["phoneNumber"], x["campaignName"], x["status"]) for x in read_csv(tmp_path / "h.csv")] == [
        ("9300000000", "Nightly", "added"), ("9300000001", "Nightly", "added"), ("9300000000", "Morning", "exists")]
    r = cli("history", "7", env=env)
    assert r.exit_code == 2 and "no run 7 in the ledger" in r.stderr
    assert KEY not in (tmp_path / "h.csv").read_text() and KEY not in json.dumps(
        json.loads(cli("history", "1", "--json", env=env).stdout))


def test_skip_loaded_within_works_across_files_and_names(cli, sb, tmp_path, env):
    first = write_csv(tmp_path / "monday.csv", rows(2))
    assert cli("upload", first, "--rate", "6000/min", env=env).exit_code == 0
    second = write_csv(tmp_path / "tuesday.csv", rows(3))  # another file, one number more
    r = cli("upload", second, "--rate", "6000/min", "--skip-loaded-within", "30d",
            "--results", tmp_path / "r.csv", env=env)
    assert r.exit_code == 0, r.output
    today = dt.date.today().isoformat()
    assert [(x["status"], x["message"]) for x in read_csv(tmp_path / "r.csv")][:2] == [
        ("skipped", f"loaded on {today} by run 1")] * 2
    assert read_csv(tmp_path / "r.csv")[2]["status"] == "added"
    assert read_csv(tmp_path / "r.csv")[0]["cause"] == "row.loaded_lately"
    assert stored(sb) == Counter({"9300000000": 1, "9300000001": 1, "9300000002": 1})


def test_skip_scope_campaign_or_account(cli, sb, tmp_path, env):
    assert cli("upload", write_csv(tmp_path / "a.csv", rows(1)), "--rate", "6000/min", env=env).exit_code == 0
    morning = write_csv(tmp_path / "b.csv", rows(1, campaign="Morning"))
    r = cli("upload", morning, "--skip-loaded-within", "7d", "--json", "--rate", "6000/min", env=env)
    assert json.loads(r.stdout)["counts"]["added"] == 1  # campaign scope: Morning never had it
    again = write_csv(tmp_path / "c.csv", [["phone", "campaign"], ["9300000000", "Other"]])
    r = cli("upload", again, "--skip-loaded-within", "7d", "--skip-scope", "account",
            "--results", tmp_path / "r.csv", env=env)
    (row,) = read_csv(tmp_path / "r.csv")
    assert row["status"] == "skipped" and row["message"].endswith("by run 2 (campaign Morning)")


def test_skip_loaded_within_from_a_profile_and_bad_values(cli, sb, tmp_path, env):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[profiles.p]\nskip_loaded_within = "30d"\nskip_scope = "account"\n')
    assert cli("upload", write_csv(tmp_path / "a.csv", rows(1)), "--rate", "6000/min", env=env).exit_code == 0
    r = cli("upload", write_csv(tmp_path / "b.csv", rows(1, campaign="Morning")), "--profile", "p",
            "--config", cfg, "--json", env=env)
    assert json.loads(r.stdout)["counts"]["skipped"] == 1
    r = cli("upload", tmp_path / "b.csv", "--skip-loaded-within", "soon", env=env)
    assert r.exit_code == 2 and "skip-loaded-within (from flag) must be a duration such as 30d" in r.stderr
    cfg.write_text('[profiles.p]\nskip_scope = "galaxy"\n')
    r = cli("upload", tmp_path / "b.csv", "--profile", "p", "--config", cfg, env=env)
    assert r.exit_code == 2 and "must be one of campaign, account, not 'galaxy'" in r.stderr


def test_the_window_ends_and_undone_leads_do_not_count(tmp_path):
    clock = FakeClock()
    ledger = Ledger(tmp_path / LEDGER_NAME, clock=clock)
    log = RunLog(ledger, "upload", "https://x", "ops")
    log.start()
    log.row(RowOutcome(2, Status.ADDED, "", "9300000000", "Nightly"))
    log.row(RowOutcome(3, Status.EXISTS, "", "9300000001", "Nightly"))  # found, not loaded by us
    log.end({Status.ADDED: 1, Status.EXISTS: 1}, 0)
    clock.advance(29 * 86400)
    later = RunLog(ledger, "upload", "https://x", "ops")
    later.start()
    window = parse_window("30d")
    assert later.loaded_lately(RowOutcome(2, Status.VALID, "", "9300000000", "Nightly"), window, "campaign")
    assert not later.loaded_lately(RowOutcome(3, Status.VALID, "", "9300000001", "Nightly"), window, "campaign")
    other_user = RunLog(ledger, "upload", "https://x", "someone-else")
    assert not other_user.loaded_lately(RowOutcome(2, Status.VALID, "", "9300000000", "Nightly"), window,
                                        "account")
    clock.advance(2 * 86400)
    assert not later.loaded_lately(RowOutcome(2, Status.VALID, "", "9300000000", "Nightly"), window, "campaign")
    clock.advance(-2 * 86400)
    undo = RunLog(ledger, "undo", "https://x", "ops", undo_of=1)
    undo.start()
    undo.row(RowOutcome(2, Status.DELETED, "", "9300000000", "Nightly"))
    assert not later.loaded_lately(RowOutcome(2, Status.VALID, "", "9300000000", "Nightly"), window, "campaign")
    assert ledger.deleted(1) == {("Nightly", "9300000000")}


def test_schema_is_versioned_and_migrates_forward(tmp_path):
    path = tmp_path / LEDGER_NAME
    sqlite3.connect(path).close()  # an empty database: version 0
    ledger = Ledger(path)
    assert ledger.schema_version == SCHEMA_VERSION
    ledger.close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(LedgerError, match="written by a newer leadpush"):
        Ledger(path)


def test_two_runs_opening_a_new_ledger_at_once_both_open_it(tmp_path, monkeypatch):
    """SQLite answers "database is locked" at once, without its busy wait, to the one of two
    connections that would deadlock switching a new database to WAL: that one tries again."""
    answered = Counter()

    class Contended(sqlite3.Connection):
        def execute(self, sql, *args):
            if sql == "PRAGMA journal_mode=WAL" and answered["locked"] < 2:
                answered["locked"] += 1
                raise sqlite3.OperationalError("database is locked")
            return super().execute(sql, *args)

    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(*a, **k, factory=Contended))
    ledger = Ledger(tmp_path / LEDGER_NAME)
    assert answered["locked"] == 2 and ledger.schema_version == SCHEMA_VERSION
    ledger.close()


def test_a_locked_ledger_is_a_clear_error(tmp_path):
    path = tmp_path / LEDGER_NAME
    Ledger(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        ledger = Ledger(path, busy=0.05)
        with pytest.raises(LedgerError, match="locked by another process"):
            ledger.start_run("upload", base_url="https://x", username="ops")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
