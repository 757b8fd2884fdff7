"""`leadpush undo`: exactly the added leads deleted, asking first, resume after a kill, faults, the delete API."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest
import requests

from leadpush.cloudagent import Connection, make_session
from leadpush.ledger import LEDGER_NAME, Ledger, RunLog
from leadpush.outcomes import RowOutcome, Status
from leadpush.pacing import parse_rate
from leadpush.report import progress_bar
from leadpush.sandbox import DELETE_PATH, Sandbox
from leadpush.undo import UndoPlan, classify_delete, undo
from leadpush.upload import UploadSettings
from tests.conftest import FakeClock, read_csv, rows, write_csv

KEY = "undo-key-44a"
BEFORE = ["9300000003", "9300000007"]  # in the campaign before any run
CONFIG = {"accounts": [
    {"user": "ops", "api_key": KEY, "auth_mode": "TOKEN_AUTH", "campaigns": [
        {"name": "Nightly", "type": "progressive", "started": True, "numbers": BEFORE},
        {"name": "Morning", "type": "progressive", "started": True}]},
    {"user": "other", "api_key": "other-key", "auth_mode": "TOKEN_AUTH", "campaigns": []}]}




def campaign(sb, name="Nightly"):
    return sb.state.leads_view()["accounts"]["ops"]["campaigns"][name]


def numbers(sb, name="Nightly"):
    return Counter(lead["phoneNumber"] for lead in campaign(sb, name)["leads"])



@pytest.fixture
def env(sb, tmp_path, home, data_dir):
    return {**home, "LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops", "LEADPUSH_API_KEY": KEY,
            "LEADPUSH_CACHE_DIR": str(tmp_path / "cache"), "LEADPUSH_DATA_DIR": str(data_dir)}


def test_undo_deletes_exactly_what_the_run_added(cli, sb, tmp_path, env, data_dir):
    p = write_csv(tmp_path / "leads.csv", rows(10) + rows(3, start=9300000100, campaign="Morning")[1:])
    r = cli("upload", p, "--rate", "6000/min", "--json", env=env)
    assert json.loads(r.stdout)["counts"] == {**json.loads(r.stdout)["counts"], "added": 11, "exists": 2}
    r = cli("undo", "1", "--yes", "--rate", "6000/min", "--results", tmp_path / "undo.csv", env=env)
    assert r.exit_code == 0, r.output
    assert "run 1 (" in r.stderr and "11 leads to delete" in r.stderr and "Nightly: 8" in r.stderr
    assert "Morning: 3" in r.stderr and "2 were there before the run (exists) and are left alone" in r.stderr
    assert numbers(sb) == Counter(BEFORE) and numbers(sb, "Morning") == Counter()
    assert campaign(sb)["deletions"] == {str(9300000000 + i): 1 for i in range(10) if str(9300000000 + i) not in BEFORE}
    assert sb.state.stats_view()["requests"]["deleteCampaignData"] == {"deleted": 11}
    assert {row["status"] for row in read_csv(tmp_path / "undo.csv")} == {"deleted"}
    db = sqlite3.connect(data_dir / LEDGER_NAME)
    assert db.execute("SELECT command, undo_of, exit_code FROM runs WHERE id = 2").fetchone() == ("undo", 1, 0)
    assert db.execute("SELECT count(*) FROM leads WHERE run_id = 2 AND status = 'deleted'").fetchone() == (11,)
    # Nothing left: a second undo sends nothing.
    r = cli("undo", "1", "--yes", env=env)
    assert r.exit_code == 0 and "11 already deleted by an earlier undo" in r.stderr and "Nothing to delete" in r.stderr
    assert sum(sb.state.stats_view()["requests"]["deleteCampaignData"].values()) == 11


def test_undo_asks_first_and_refuses_without_a_terminal(cli, sb, tmp_path, env):
    assert cli("upload", write_csv(tmp_path / "l.csv", rows(2)), "--rate", "6000/min", env=env).exit_code == 0
    r = cli("undo", "1", env=env)
    assert r.exit_code == 2 and "pass --yes" in r.stderr and "2 leads to delete" in r.stderr
    assert numbers(sb) == Counter(BEFORE + ["9300000000", "9300000001"])


def test_undo_from_a_journal_file(cli, sb, tmp_path, env):
    p = write_csv(tmp_path / "leads.csv", rows(5))
    assert cli("upload", p, "--rate", "6000/min", env=env).exit_code == 0
    r = cli("undo", tmp_path / "leads.csv.leadpush-journal.jsonl", "--yes", "--json", env=env)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["counts"]["deleted"] == 4 and out["command"] == "undo" and out["run"] == 2
    assert numbers(sb) == Counter(BEFORE)


@pytest.mark.parametrize("target, message", [
    ("7", "no run 7 in the ledger"),
    ("nonsense.jsonl", "neither a run id of the ledger"),
])
def test_undo_of_something_unknown(cli, sb, env, target, message):
    r = cli("undo", target, "--yes", env=env)
    assert r.exit_code == 2 and message in r.stderr


def test_undo_as_another_user_or_of_an_undo_is_refused(cli, sb, tmp_path, env):
    assert cli("upload", write_csv(tmp_path / "l.csv", rows(2)), "--rate", "6000/min", env=env).exit_code == 0
    r = cli("undo", "1", "--yes", env={**env, "LEADPUSH_USERNAME": "other", "LEADPUSH_API_KEY": "other-key"})
    assert r.exit_code == 2 and "connect as that user" in r.stderr
    assert cli("undo", "1", "--yes", env=env).exit_code == 0
    r = cli("undo", "2", "--yes", env=env)
    assert r.exit_code == 2 and "only uploads can be undone" in r.stderr


def test_interrupted_then_resumed_deletes_every_added_lead_once_and_nothing_else(sb, tmp_path, env, data_dir):
    full = {**os.environ, **env, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    p = write_csv(tmp_path / "leads.csv", rows(50))
    up = subprocess.run([sys.executable, "-m", "leadpush", "upload", p, "--rate", "6000/min", "--quiet"],
                        env=full, capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    added = {str(9300000000 + i) for i in range(50)} - set(BEFORE)
    proc = subprocess.Popen([sys.executable, "-m", "leadpush", "undo", "1", "--yes", "--rate", "20/s"],
                            env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(campaign(sb)["deletions"]) < 12:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.kill()  # kill -9: no handler, nothing flushed after this
    proc.wait()
    deleted_before = set(campaign(sb)["deletions"])
    assert 12 <= len(deleted_before) < len(added)

    again = subprocess.run([sys.executable, "-m", "leadpush", "undo", "1", "--yes"], env=full,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--resume" in again.stderr

    resumed = subprocess.run([sys.executable, "-m", "leadpush", "undo", "1", "--yes", "--resume", "--rate",
                              "6000/min", "--json"], env=full, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert numbers(sb) == Counter(BEFORE)  # the leads that were there before are still there
    assert campaign(sb)["deletions"] == {n: 1 for n in added}  # every added lead deleted, once
    assert json.loads(resumed.stdout)["counts"]["deleted"] <= len(added) - len(deleted_before) + 4
    # the ledger knows every deletion, across both undo runs
    db = sqlite3.connect(data_dir / LEDGER_NAME)
    assert {p for (p,) in db.execute("SELECT l.phone FROM leads l JOIN runs r ON r.id = l.run_id "
                                     "WHERE r.undo_of = 1 AND l.status = 'deleted'")} == added


def test_faults_are_retried_because_a_resent_delete_is_harmless(tmp_path):
    clock = FakeClock()
    with Sandbox(CONFIG, clock=clock, rate_limit=0, fail_rate=0.25, drop_rate=0.25, seed=3) as sb:
        for n in range(30):
            sb.state.accounts["ops"].campaigns["Morning"].store({"phoneNumber": str(9400000000 + n)})
        ledger = Ledger(tmp_path / LEDGER_NAME, clock=clock)
        plan = UndoPlan("run 1", "undo-run-1",
                        [RowOutcome(n + 2, Status.VALID, "", str(9400000000 + n), "Morning") for n in range(30)])
        settings = UploadSettings(conn=Connection(sb.base_url, "ops", KEY), rate=parse_rate("6000/min"),
                                  cache_dir=tmp_path / "cache", workers=2, retries=30, timeout=5.0)
        with make_session(2) as session, progress_bar(sys.stderr, "", enabled=False) as progress:
            summary = undo(plan, settings, session=session, clock=clock, sleep=clock.sleep, progress=progress,
                           run_log=RunLog(ledger, "undo", sb.base_url, "ops"), rng=random.Random(1))
        outcomes = sb.state.stats_view()["requests"]["deleteCampaignData"]
        assert outcomes["http-503"] > 0 and outcomes["no-record"] > 0  # drops were resent
        assert summary.exit_code == 0 and summary.recorder.counts[Status.DELETED] == 30
        assert numbers(sb, "Morning") == Counter()
        assert set(campaign(sb, "Morning")["deletions"].values()) == {1}


def test_a_campaign_that_is_gone_stops_only_its_own_rows(tmp_path):
    clock = FakeClock()
    with Sandbox(CONFIG, clock=clock, rate_limit=0) as sb:
        sb.state.accounts["ops"].campaigns["Morning"].store({"phoneNumber": "9400000000"})
        plan = UndoPlan("run 1", "undo-run-1", [
            RowOutcome(2, Status.VALID, "", "9400000001", "Gone"),
            RowOutcome(3, Status.VALID, "", "9400000002", "Gone"),
            RowOutcome(4, Status.VALID, "", "9400000000", "Morning")])
        settings = UploadSettings(conn=Connection(sb.base_url, "ops", KEY), rate=parse_rate("6000/min"),
                                  cache_dir=tmp_path / "cache", workers=1)
        with make_session(1) as session, progress_bar(sys.stderr, "", enabled=False) as progress:
            s = undo(plan, settings, session=session, clock=clock, sleep=clock.sleep, progress=progress,
                     run_log=RunLog(Ledger(tmp_path / LEDGER_NAME, clock=clock), "undo", sb.base_url, "ops"))
    by_row = {o.row: o for o in s.recorder.table_rows}
    assert by_row[2].status is Status.REJECTED and by_row[2].message == "Passed campaign are invalid"
    assert by_row[3].status is Status.ABORTED and "campaign Gone was refused" in by_row[3].message
    assert by_row[4].status is Status.DELETED and s.exit_code == 1


@pytest.mark.parametrize("body, kind", [
    ({"status": "Success", "message": "Deleted Successfully"}, "deleted"),
    ({"status": "Error", "message": "Campaign should not be null are empty"}, "campaign"),
    ({"status": "Error", "message": "Passed campaign are invalid"}, "campaign"),
    ({"status": "Error", "message": "PhoneNumber should not be null are empty"}, "rejected"),
    ({"status": "Error", "message": "No Record Found"}, "no-record"),
    ({"status": "false", "message": "Token Expired"}, "token-expired"),
    ({"status": "false", "message": "Invalid User Details"}, "account"),
])
def test_delete_answers(body, kind):
    assert classify_delete(200, json.dumps(body), {}).kind == kind


def test_delete_http_faults():
    assert classify_delete(503, "<html>", {}).kind == "transient"
    assert classify_delete(500, "<html>", {}).kind == "ambiguous"
    v = classify_delete(405, "<html>", {})
    assert v.kind == "account" and DELETE_PATH in v.message


def test_the_sandbox_delete_api(sb):
    token = requests.post(sb.base_url + "/ca_apis/CAToken/generateToken", json={"userName": "ops"},
                          headers={"apiKey": KEY}, timeout=5).json()["token"]
    headers = {"apiKey": KEY, "Authorization": f"Bearer {token}"}

    def delete(body, h=headers, path=DELETE_PATH):
        r = requests.delete(sb.base_url + path, json=body, headers=h, timeout=5)
        return r.status_code, r.text

    assert json.loads(delete({"userName": "ops", "phoneNumber": "9300000003"})[1])["message"] == \
        "Campaign should not be null are empty"
    assert json.loads(delete({"userName": "ops", "campaignName": "Nope", "phoneNumber": "1"})[1])["message"] == \
        "Passed campaign are invalid"
    assert json.loads(delete({"userName": "ops", "campaignName": "Nightly"})[1])["message"] == \
        "PhoneNumber should not be null are empty"
    assert json.loads(delete({"userName": "ops", "campaignName": "Nightly", "phoneNumber": "1"},
                             h={"apiKey": KEY, "Authorization": "Bearer x.y.z"})[1])["message"] == "Token Expired"
    assert json.loads(delete({"userName": "ops", "campaignName": "Nightly", "phoneNumber": "9300000003"})[1])[
        "message"] == "Deleted Successfully"
    assert numbers(sb) == Counter({"9300000007": 1})
    assert delete({}, path="/ca_apis/AddCampaignData")[0] == 405
    assert requests.get(sb.base_url + DELETE_PATH, timeout=5).status_code == 405


def test_the_sandbox_limits_deletes_to_100_a_minute():
    clock = FakeClock()
    with Sandbox(CONFIG, clock=clock, rate_limit=100) as sb:
        token = requests.post(sb.base_url + "/ca_apis/CAToken/generateToken", json={"userName": "ops"},
                              headers={"apiKey": KEY}, timeout=5).json()["token"]
        codes = Counter(requests.delete(sb.base_url + DELETE_PATH, timeout=5,
                                        json={"userName": "ops", "campaignName": "Nightly", "phoneNumber": "1"},
                                        headers={"apiKey": KEY, "Authorization": f"Bearer {token}"}).status_code
                        for _ in range(103))
    assert codes == Counter({200: 100, 429: 3})


def test_a_lead_someone_already_removed_is_skipped_not_failed(cli, sb, tmp_path, env):
    assert cli("upload", write_csv(tmp_path / "l.csv", rows(3, start=9300000010)), "--rate", "6000/min",
               env=env).exit_code == 0
    sb.state.accounts["ops"].campaigns["Nightly"].delete("9300000011")  # removed by hand in CloudAgent
    r = cli("undo", "1", "--yes", "--results", tmp_path / "u.csv", env=env)
    assert r.exit_code == 0, r.output
    got = {row["phoneNumber"]: (row["status"], row["message"]) for row in read_csv(tmp_path / "u.csv")}
    assert got["9300000011"] == ("skipped", "not in the campaign any more (No Record Found): nothing to delete")
    assert got["9300000010"][0] == got["9300000012"][0] == "deleted"
    assert {row["phoneNumber"]: row["cause"] for row in read_csv(tmp_path / "u.csv")}["9300000011"] == "row.gone"
    # gone is gone: the ledger counts it deleted, so nothing is left for a second undo
    r = cli("undo", "1", "--yes", env=env)
    assert r.exit_code == 0 and "3 already deleted by an earlier undo" in r.stderr


def test_a_redirect_is_never_followed_and_stops_the_undo(cli, sb, tmp_path, env):
    assert cli("upload", write_csv(tmp_path / "l.csv", rows(2, start=9300000020)), "--rate", "6000/min",
               env=env).exit_code == 0
    sb.state.redirect_status, sb.state.redirect_to = 302, "http://127.0.0.1:9"  # the token stays cached
    r = cli("undo", "1", "--yes", env=env)
    assert r.exit_code == 3, r.output
    assert "redirects to http://127.0.0.1:9" in r.stderr and KEY not in r.output
    assert numbers(sb) == Counter(BEFORE + ["9300000020", "9300000021"])
    assert sb.state.stats_view()["requests"]["deleteCampaignData"] == {"redirect-302": 1}
