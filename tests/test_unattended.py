"""Unattended runs: kill -9 and --resume, changed input, the lock, SIGTERM, profiles, --quiet, the log file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from leadpush.sandbox import Sandbox
from tests.conftest import read_csv, read_jsonl, write_csv

KEY = "nightly-key-5e1b"
CONFIG = {"accounts": [
    {"user": "ops", "api_key": KEY, "auth_mode": "TOKEN_AUTH",
     "campaigns": [{"name": "Nightly", "type": "progressive", "started": True}]},
    {"user": "basic", "api_key": "basic-key", "auth_mode": "BASIC_AUTH", "campaigns": []},
]}


@pytest.fixture
def sb():
    with Sandbox(CONFIG, rate_limit=0) as server:
        yield server


def stored(sb):
    leads = sb.state.leads_view()["accounts"]["ops"]["campaigns"]["Nightly"]["leads"]
    return Counter(lead["phoneNumber"] for lead in leads)


def rows(n, start=9300000000):
    return [["phone", "campaign"]] + [[str(start + i), "Nightly"] for i in range(n)]


@pytest.fixture
def env(sb, tmp_path, home):
    return {**os.environ, **home, "LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops",
            "LEADPUSH_API_KEY": KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1"}


def leadpush(*args, env, wait=True):
    cmd = [sys.executable, "-m", "leadpush", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def wait_for(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


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
    assert sum(1 for j in journal if j["type"] == "row") == len(added)


def write_config(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_config_precedence_and_masking(cli, tmp_path, sb):
    cfg = write_config(tmp_path / "config.toml", f"""
[profiles.nightly]
base_url = "{sb.base_url}"
username = "from-profile"
api_key_env = "NIGHTLY_KEY"
rate = "50/min"
workers = 2
campaign = "Nightly"
""")
    env = {"NIGHTLY_KEY": KEY, "LEADPUSH_USERNAME": "from-env"}
    r = cli("config", "show", "--profile", "nightly", "--config", cfg, env=env)
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line for line in r.stdout.splitlines()[2:]}
    assert "from-env" in lines["username"] and "environment (LEADPUSH_USERNAME)" in lines["username"]
    assert "50/min" in lines["rate"] and "profile nightly" in lines["rate"]
    assert lines["workers"].split()[1] == "2" and "profile nightly" in lines["workers"]
    assert "default" in lines["retries"]
    assert "(set, hidden)" in lines["api_key"] and "NIGHTLY_KEY" in lines["api_key"]
    assert KEY not in r.stdout
    r = cli("config", "show", "--profile", "nightly", "--config", cfg, "--username", "from-flag", env=env)
    assert "from-flag" in r.stdout and "flag" in r.stdout


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


def test_profile_errors(cli, tmp_path):
    cfg = write_config(tmp_path / "config.toml", "[profiles.a]\nworkers = 'many'\n")
    r = cli("config", "show", "--profile", "a", "--config", cfg)
    assert r.exit_code == 2 and "workers has the wrong type" in r.stderr
    r = cli("config", "show", "--profile", "nope", "--config", cfg)
    assert r.exit_code == 2 and "no profile 'nope' (profiles: a)" in r.stderr
    r = cli("config", "show", "--config", tmp_path / "missing.toml")
    assert r.exit_code == 2 and "no such config file" in r.stderr


def test_key_in_a_config_file_readable_by_others_is_warned_about(cli, tmp_path):
    text = '[profiles.p]\napi_key = "secret-in-file-123"\nusername = "ops"\n'
    cfg = write_config(tmp_path / "config.toml", text, mode=0o644)
    r = cli("config", "show", "--profile", "p", "--config", cfg)
    assert f"Warning: {cfg} holds an API key and other users can read it; fix with: chmod 600 {cfg}" in r.stderr
    assert "secret-in-file-123" not in r.stdout + r.stderr
    cfg.chmod(0o600)
    assert "Warning" not in cli("config", "show", "--profile", "p", "--config", cfg).stderr


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


def test_auth_check_uses_the_cached_token(cli, tmp_path, sb):
    env = {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops", "LEADPUSH_API_KEY": KEY,
           "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
    r = cli("auth", "check", env=env)
    assert r.exit_code == 0, r.output
    assert "OK: user ops" in r.stdout and "TOKEN_AUTH" in r.stdout and "a new token was generated" in r.stdout
    r = cli("auth", "check", env=env)
    assert "the cached token was used, no generation spent" in r.stdout
    assert sb.state.stats_view()["tokens_issued"] == 1
    assert sb.state.leads_view()["accounts"]["ops"]["campaigns"]["Nightly"]["leads"] == []
    token = json.loads(next((tmp_path / "cache" / "tokens").glob("*.json")).read_text())["token"]
    assert token not in r.stdout + r.stderr
    r = cli("auth", "check", env={**env, "LEADPUSH_USERNAME": "basic", "LEADPUSH_API_KEY": "basic-key"})
    assert r.exit_code == 3 and "not TOKEN_AUTH" in r.stderr
    r = cli("auth", "check", env={**env, "LEADPUSH_API_KEY": "wrong"})
    assert r.exit_code == 3 and "Invalid User Details" in r.stderr  # the cached token, the wrong key
