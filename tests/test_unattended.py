"""Unattended runs: kill -9 and --resume, changed input, the lock, SIGTERM, an upload driven by a profile, --quiet, the log file."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import pytest

from tests.conftest import leadpush, read_csv, read_jsonl, rows, stored, wait_for, write_config, write_csv

KEY = "nightly-key-5e1b"
CONFIG = {"accounts": [
    {"user": "ops", "api_key": KEY, "auth_mode": "TOKEN_AUTH",
     "campaigns": [{"name": "Nightly", "type": "progressive", "started": True}]},
    {"user": "basic", "api_key": "basic-key", "auth_mode": "BASIC_AUTH", "campaigns": []},
]}






@pytest.fixture
def env(sb, tmp_path, home):
    return {**os.environ, **home, "LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops",
            "LEADPUSH_API_KEY": KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1"}




def test_kill_9_then_resume_loses_nothing_and_doubles_nothing(sb, tmp_path, env):
    p = write_csv(tmp_path / "leads.csv", rows(60))
    proc = leadpush("upload", p, "--rate", "20/s", "--workers", "4", env=env, wait=False)
    wait_for(lambda: sum(stored(sb).values()) >= 15)
    proc.kill()  # SIGKILL: no handler runs, nothing is flushed by leadpush after this
    proc.wait()
    before = stored(sb)
    assert 15 <= sum(before.values()) < 60

    code, out, err = leadpush("upload", p, "--rate", "6000/min", env=env)
    assert code == 2 and "an earlier run of this file stopped at row" in err and "--resume" in err

    code, out, err = leadpush("upload", p, "--rate", "6000/min", "--resume", "--results", tmp_path / "r.csv",
                              env=env)
    assert code == 0, err
    after = stored(sb)
    assert set(after) == {str(9300000000 + i) for i in range(60)}
    assert set(after.values()) == {1}  # every lead stored exactly once
    results = read_csv(tmp_path / "r.csv")
    statuses = Counter(r["status"] for r in results)
    assert statuses["skipped"] >= 15 - 4  # journaled before the kill (in-flight ones may not be)
    assert statuses["skipped"] + statuses["added"] + statuses["exists"] == 60
    assert {r["message"] for r in results if r["status"] == "skipped"} == {"uploaded in an earlier run"}

    # the journal now ends complete: a later plain run starts afresh without complaint
    code, out, err = leadpush("upload", p, "--rate", "6000/min", "--json", env=env)
    assert code == 0 and json.loads(out)["counts"]["exists"] == 60


def test_resume_after_the_input_changed_goes_by_campaign_and_phone(sb, tmp_path, env):
    p = write_csv(tmp_path / "leads.csv", rows(40))
    proc = leadpush("upload", p, "--rate", "20/s", env=env, wait=False)
    wait_for(lambda: sum(stored(sb).values()) >= 10)
    proc.kill()
    proc.wait()
    # tonight's file: a new lead on top shifts every row number
    write_csv(p, [rows(1)[0], ["9399999999", "Nightly"]] + rows(40)[1:])
    code, out, err = leadpush("upload", p, "--rate", "6000/min", "--resume", "--json", env=env)
    assert code == 0, err
    assert "changed since" in err and "resuming by campaign and phone" in err
    after = stored(sb)
    assert set(after.values()) == {1} and len(after) == 41 and after["9399999999"] == 1


def test_second_run_on_the_same_input_is_refused_and_the_lock_dies_with_its_process(sb, tmp_path, env):
    p = write_csv(tmp_path / "leads.csv", rows(40))
    first = leadpush("upload", p, "--rate", "5/s", env=env, wait=False)
    wait_for(lambda: sum(stored(sb).values()) >= 2)
    code, out, err = leadpush("upload", p, "--rate", "6000/min", "--journal", tmp_path / "other.jsonl", env=env)
    assert code == 2
    assert f"is being uploaded by process {first.pid} right now" in err
    first.kill()
    first.wait()
    code, out, err = leadpush("upload", p, "--rate", "6000/min", "--resume", env=env)
    assert code == 0, err  # no stale lock after kill -9
    assert set(stored(sb).values()) == {1} and len(stored(sb)) == 40


def test_sigterm_finishes_in_flight_rows_and_exits_143(sb, tmp_path, env):
    p = write_csv(tmp_path / "leads.csv", rows(40))
    proc = leadpush("upload", p, "--rate", "10/s", "--results", tmp_path / "r.jsonl", env=env, wait=False)
    wait_for(lambda: sum(stored(sb).values()) >= 5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    results = read_jsonl(tmp_path / "r.jsonl")
    added = [r for r in results if r["status"] == "added"]
    assert len(results) == 40 and len(added) == sum(stored(sb).values())
    failures = read_csv(tmp_path / "leads.csv.failures.csv")
    assert len(failures) == 40 - len(added)
    assert {f["leadpush_error"] for f in failures} == {"not sent: interrupted"}
    journal = read_jsonl(tmp_path / "leads.csv.leadpush-journal.jsonl")
    assert journal[-1]["type"] == "end" and journal[-1]["complete"] is False
    verdicts = {j["row"]: j["status"] for j in journal if j["type"] == "row"}
    assert sorted(verdicts.values()).count("added") == len(added) and set(verdicts.values()) <= {"added", "aborted"}
    # rows stopped while waiting for their turn (their send line written) are not left in flight
    assert set(verdicts) == {j["row"] for j in journal if j["type"] == "send"}


def test_upload_with_a_profile(cli, tmp_path, sb):
    cfg = write_config(tmp_path / "config.toml", f"""
[profiles.nightly]
base_url = "{sb.base_url}"
username = "ops"
api_key_env = "NIGHTLY_KEY"
rate = "6000/min"
campaign = "Nightly"
""")
    p = write_csv(tmp_path / "leads.csv", [["phone"], ["9300000001"], ["9300000002"]])
    r = cli("upload", p, "--profile", "nightly", "--config", cfg, "--quiet",
            env={"NIGHTLY_KEY": KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")})
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().endswith("2 rows: 2 added; exit 0")
    assert len(r.stdout.strip().splitlines()) == 1 and r.stderr == ""
    assert stored(sb) == Counter({"9300000001": 1, "9300000002": 1})


def test_quiet_non_terminal_output_and_the_log_file(cli, tmp_path, sb):
    p = write_csv(tmp_path / "leads.csv", rows(3) + [["12", "Nightly"]])
    log = tmp_path / "leadpush.log"
    env = {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops", "LEADPUSH_API_KEY": KEY,
           "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
    r = cli("upload", p, "--rate", "6000/min", "--quiet", "--log-file", log, env=env)
    assert r.exit_code == 1
    assert len(r.stdout.splitlines()) == 1 and "4 rows: 3 added, 1 invalid" in r.stdout
    assert "\x1b[" not in r.stdout + r.stderr  # no colour, no progress bar when not a terminal
    r = cli("validate", p, "--log-file", log, "--quiet")
    lines = log.read_text().splitlines()
    assert lines[0].split(" ", 1)[1].startswith("start leadpush upload")
    assert sum(" row " in line for line in lines) == 8
    assert any("row 5 invalid phone=12" in line for line in lines)
    assert lines[5].split(" ", 1)[1].startswith("end leadpush upload") and lines[5].endswith("exit 1")
    assert lines[-1].split(" ", 1)[1].startswith("end leadpush validate")
    token = json.loads(next((tmp_path / "cache" / "tokens").glob("*.json")).read_text())["token"]
    assert KEY not in log.read_text() and token not in log.read_text()

