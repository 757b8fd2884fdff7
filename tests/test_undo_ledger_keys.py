"""Undo and the ledger agree on whose lead is whose: a later run's lead is never deleted, a journal
undo is seen by every later plan, `exists` after a run's own attempt is kept apart, an unknown
answer to a resent delete is not `deleted`, --region numbers compare as parsed, no crash on odd ids."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

import pytest

from leadpush.ledger import LEDGER_NAME, Ledger, parse_window
from leadpush.outcomes import ConfigError
from leadpush.sandbox import Sandbox
from tests.conftest import read_csv, stored, write_csv

KEY = "undo-keys-5f1"
CONFIG = {"accounts": [{"user": "ops", "api_key": KEY, "auth_mode": "TOKEN_AUTH", "campaigns": [
    {"name": "Nightly", "type": "progressive", "started": True}]}]}
X, Y = "9300000001", "9300000002"
FAST = ("--rate", "6000/min")


@pytest.fixture
def env(tmp_path, home, data_dir):
    return {**home, "LEADPUSH_USERNAME": "ops", "LEADPUSH_API_KEY": KEY,
            "LEADPUSH_CACHE_DIR": str(tmp_path / "cache"), "LEADPUSH_DATA_DIR": str(data_dir)}


def serve(env, **options):
    sb = Sandbox(CONFIG, rate_limit=0, **options)
    sb.__enter__()
    env["LEADPUSH_BASE_URL"] = sb.base_url
    return sb


@pytest.fixture
def sb(env):
    server = serve(env)
    yield server
    server.__exit__(None, None, None)



def deletions(sb):
    return sb.state.leads_view()["accounts"]["ops"]["campaigns"]["Nightly"]["deletions"]


def leads_file(tmp_path, name, phones):
    return write_csv(tmp_path / name, [["phone", "campaign"]] + [[p, "Nightly"] for p in phones])


def ledger_rows(data_dir, run):
    db = sqlite3.connect(data_dir / LEDGER_NAME)
    found = dict(db.execute("SELECT phone, status FROM leads WHERE run_id = ?", (run,)).fetchall())
    db.close()
    return found


# ---------------------------------------------------------------------------- 4: a later run's lead

def test_undo_leaves_alone_a_lead_a_later_run_added_again(cli, sb, tmp_path, env):
    assert cli("upload", leads_file(tmp_path, "a.csv", [X, Y]), *FAST, env=env).exit_code == 0  # run 1
    r = cli("upload", leads_file(tmp_path, "b.csv", [X]), "--no-check-duplicate", *FAST, "--json", env=env)
    assert r.exit_code == 0 and json.loads(r.stdout)["counts"]["added"] == 1  # run 2: a second copy of X
    r = cli("undo", "1", "--yes", *FAST, env=env)
    assert r.exit_code == 0, r.output
    assert "1 lead to delete" in r.stderr and "1 added again by the later run 2 and left alone" in r.stderr
    assert deletions(sb) == {Y: 1}  # run 2's lead is not touched


def test_undo_leaves_alone_a_lead_removed_by_hand_and_added_again(cli, sb, tmp_path, env):
    assert cli("upload", leads_file(tmp_path, "a.csv", [X, Y]), *FAST, env=env).exit_code == 0  # run 1
    with sb.state.lock:
        assert sb.state.accounts["ops"].campaigns["Nightly"].delete(X)  # someone removed it in CloudAgent
    r = cli("upload", leads_file(tmp_path, "c.csv", [X]), *FAST, "--json", env=env)  # run 2 adds it again
    assert json.loads(r.stdout)["counts"]["added"] == 1
    r = cli("undo", "1", "--yes", *FAST, env=env)
    assert r.exit_code == 0 and "added again by the later run 2" in r.stderr
    assert stored(sb) == Counter({X: 1})  # run 2's lead is still there


# ---------------------------------------------------------------------------- 5: journal undos are seen

def test_a_journal_undo_is_seen_by_later_plans_and_the_skip_window(cli, sb, tmp_path, env):
    g = leads_file(tmp_path, "g.csv", [X, Y])
    assert cli("upload", g, *FAST, env=env).exit_code == 0  # run 1
    journal = tmp_path / "g.csv.leadpush-journal.jsonl"
    r = cli("undo", journal, "--yes", *FAST, env=env)  # run 2
    assert r.exit_code == 0 and deletions(sb) == {X: 1, Y: 1}
    # The same journal undone again: the ledger knows, nothing is deleted twice.
    r = cli("undo", journal, "--yes", *FAST, env=env)
    assert r.exit_code == 0 and "2 already deleted by an earlier undo" in r.stderr and "Nothing to delete" in r.stderr
    # Deleted leads are not "loaded lately".
    r = cli("upload", leads_file(tmp_path, "h.csv", [X]), "--skip-loaded-within", "30d", *FAST, "--json", env=env)
    assert r.exit_code == 0 and json.loads(r.stdout)["counts"]["added"] == 1  # run 3
    # Undoing run 1 by its id now deletes nothing: its leads were deleted, X is run 3's.
    r = cli("undo", "1", "--yes", *FAST, env=env)
    assert r.exit_code == 0 and "2 already deleted by an earlier undo" in r.stderr, r.stderr
    assert deletions(sb) == {X: 1, Y: 1} and stored(sb) == Counter({X: 1})
    r = cli("history", "--json", env=env)
    assert [(run["id"], run["undo_of"]) for run in json.loads(r.stdout)][-2:] == [(2, 1), (1, None)]


# ---------------------------------------------------------------------------- 6: exists after our attempt

def test_exists_after_the_runs_own_attempt_is_kept_apart_and_not_deleted_silently(cli, tmp_path, env, data_dir):
    # X is stored and its answer lost; the resend hears "Number Already Exist".
    sb = serve(env, answers=[{"phone": X, "store": True, "drop": True}])
    try:
        r = cli("upload", leads_file(tmp_path, "a.csv", [X, Y]), *FAST, env=env)
        assert r.exit_code == 0, r.output
        assert ledger_rows(data_dir, 1) == {X: "exists_after_attempt", Y: "added"}
        r = cli("undo", "1", "--yes", *FAST, env=env)
        assert r.exit_code == 0
        assert "1 found already there after the run's own attempt" in r.stderr
        assert "--include-probable deletes them too" in r.stderr and "before the run" not in r.stderr
        assert deletions(sb) == {Y: 1}
        r = cli("undo", "1", "--yes", "--include-probable", *FAST, env=env)
        assert r.exit_code == 0 and "1 lead to delete" in r.stderr and deletions(sb) == {X: 1, Y: 1}
    finally:
        sb.__exit__(None, None, None)


# ---------------------------------------------------------------------------- 13: unknown answers to a delete

def test_an_unknown_answer_to_a_resent_delete_is_outcome_unknown_not_deleted(cli, tmp_path, env, data_dir):
    # X's first delete is done and its answer lost; the resend hears an answer undo does not know.
    sb = serve(env, answers=[
        {"phone": X, "api": "delete", "store": True, "drop": True},
        {"phone": X, "api": "delete", "body": '{"status": "Error", "message": "Lead not present"}'}])
    try:
        assert cli("upload", leads_file(tmp_path, "a.csv", [X, Y]), *FAST, env=env).exit_code == 0
        r = cli("undo", "1", "--yes", *FAST, "--results", tmp_path / "u.csv", env=env)
        assert r.exit_code == 1, r.output
        by_phone = {row["phoneNumber"]: row for row in read_csv(tmp_path / "u.csv")}
        assert by_phone[X]["status"] == "failed" and "outcome unknown" in by_phone[X]["message"]
        assert by_phone[Y]["status"] == "deleted"
        assert ledger_rows(data_dir, 2) == {Y: "deleted"}  # the ledger is not told X was deleted
        r = cli("undo", "1", "--yes", *FAST, env=env)  # so a second undo tries X again
        assert r.exit_code == 0 and "1 lead to delete" in r.stderr
    finally:
        sb.__exit__(None, None, None)


# ---------------------------------------------------------------------------- 9: --region compares parsed numbers

@pytest.mark.parametrize("first, first_args, again", [
    ("9876543215", [], "+91 98765 43215"),
    ("+91 98765 43215", ["--region", "IN"], "09876543215"),
    ("9876543215", [], "098765-43215"),
])
def test_skip_loaded_within_compares_parsed_numbers_with_a_region(cli, sb, tmp_path, env, first, first_args, again):
    assert cli("upload", leads_file(tmp_path, "a.csv", [first]), *first_args, *FAST, env=env).exit_code == 0
    r = cli("upload", leads_file(tmp_path, "b.csv", [again]), "--region", "IN", "--skip-loaded-within", "30d",
            *FAST, "--json", env=env)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["counts"]["skipped"] == 1 and out["counts"]["added"] == 0
    assert sum(stored(sb).values()) == 1


# ---------------------------------------------------------------------------- 10: odd values, one line each

@pytest.mark.parametrize("args, message", [
    (("upload", "LEADS", "--skip-loaded-within", "9999999999d"), "skip-loaded-within (from flag) must be a duration"),
    (("upload", "LEADS", "--skip-loaded-within", "1e400"), "not '1e400'"),
    (("history", "99999999999999999999"), "no run 99999999999999999999"),
    (("undo", "99999999999999999999", "--yes"), "no run 99999999999999999999"),
    (("undo", "\u00b2", "--yes"), "neither a run id of the ledger"),
    (("undo", "\u0661", "--yes"), "neither a run id of the ledger"),
])
def test_odd_values_are_one_line_exit_2(cli, sb, tmp_path, env, args, message):
    leads = leads_file(tmp_path, "a.csv", [X])
    r = cli(*[leads if a == "LEADS" else a for a in args], env=env)
    assert r.exit_code == 2, r.output
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert stored(sb) == Counter()


def test_parse_window_limits():
    assert parse_window("30d").days == 30
    for text in ("9999999999d", "99999999999999999999w", "40000d"):
        with pytest.raises(ConfigError):
            parse_window(text)


# ---------------------------------------------------------------------------- 11: secrets in the base URL

@pytest.mark.parametrize("url", ["http://ops:{key}@127.0.0.1:{port}", "http://127.0.0.1:{port}/?apiKey={key}",
                                 "http://127.0.0.1:{port}/#{key}", "http://{key}@127.0.0.1:{port}"])
def test_a_base_url_with_userinfo_query_or_fragment_is_refused(cli, sb, tmp_path, env, url):
    port = sb.base_url.rsplit(":", 1)[1]
    r = cli("upload", leads_file(tmp_path, "a.csv", [X]), "--base-url", url.format(key=KEY, port=port), *FAST, env=env)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert KEY not in r.output and stored(sb) == Counter()


def test_the_ledger_never_stores_userinfo_or_query(tmp_path):
    ledger = Ledger(tmp_path / LEDGER_NAME)
    run = ledger.start_run("upload", base_url="https://ops:secret@example.com/x?apiKey=secret#secret", username="ops")
    assert ledger.run(run)["base_url"] == "https://example.com/x"
    ledger.close()


def test_a_journal_of_two_runs_undone_is_seen_by_both_runs_and_the_skip_window(cli, sb, tmp_path, env):
    g = leads_file(tmp_path, "g.csv", [X, Y])
    assert cli("upload", g, "--limit", "1", *FAST, env=env).exit_code in (0, 1)  # run 1: X only
    r = cli("upload", g, "--resume", *FAST, env=env)  # run 2: Y
    assert r.exit_code == 0, r.output
    assert stored(sb) == Counter({X: 1, Y: 1})
    r = cli("undo", tmp_path / "g.csv.leadpush-journal.jsonl", "--yes", *FAST, "--json", env=env)  # run 3
    assert r.exit_code == 0 and json.loads(r.stdout).get("undo_of") is None  # two runs wrote that journal
    assert deletions(sb) == {X: 1, Y: 1}
    r = cli("upload", leads_file(tmp_path, "h.csv", [X, Y]), "--skip-loaded-within", "30d", *FAST, "--json",
            env=env)
    assert json.loads(r.stdout)["counts"]["added"] == 2  # deleted leads are not "loaded lately"
    for run in ("1", "2"):
        r = cli("undo", run, "--yes", *FAST, env=env)
        assert r.exit_code == 0, r.output
        assert "1 already deleted by an earlier undo" in r.stderr and "Nothing to delete" in r.stderr
    assert stored(sb) == Counter({X: 1, Y: 1})
