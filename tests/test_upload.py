"""`leadpush upload` against the sandbox: every answer's outcome, tokens, faults, pacing, secrets, Ctrl-C."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import requests

from leadpush.checks import CheckSettings, RowDefaults
from leadpush.cloudagent import TOKEN_PATH, Connection, TokenStore, make_session
from leadpush.jobs import InputOptions, open_input
from leadpush.pacing import parse_rate
from leadpush.report import progress_bar
from leadpush.sandbox import Sandbox
from leadpush.upload import UploadSettings, upload
from tests.conftest import FakeClock, read_csv, read_jsonl, write_csv

TODAY = dt.date(2026, 11, 27)
CONFIG = {"accounts": [
    {"user": "demo", "api_key": "demo-key-7f3a9c", "auth_mode": "TOKEN_AUTH", "campaigns": [
        {"name": "Main", "type": "progressive", "started": True, "numbers": ["9000000001"]},
        {"name": "Other", "type": "ivr", "started": True},
        {"name": "Agents", "type": "agent-wise", "agents": ["a1"]},
        {"name": "Skills", "type": "skill-wise", "skills": ["sales"]},
        {"name": "Inbound", "type": "inbound"},
    ]},
    {"user": "basic", "api_key": "basic-key", "auth_mode": "BASIC_AUTH", "campaigns": [
        {"name": "Main", "type": "progressive"}]},
]}
KEY = "demo-key-7f3a9c"


def leads_in(sb, campaign, user="demo"):
    view = sb.state.leads_view()["accounts"][user]["campaigns"][campaign]["leads"]
    return [lead["phoneNumber"] for lead in view if not lead.get("preexisting")]


def run(tmp_path, sb, rows, *, clock, workers=1, rate="6000/min", retries=3, check_dup=True, user="demo",
        key=KEY, cache=None, timeout=5.0, interrupt=None, results=True):
    path = write_csv(tmp_path / "leads.csv", rows)
    opts = InputOptions(file=str(path), checks=CheckSettings(defaults=RowDefaults(check_duplicate=check_dup)),
                        results=tmp_path / "results.csv" if results else None)
    settings = UploadSettings(conn=Connection(sb.base_url, user, key), rate=parse_rate(rate),
                              cache_dir=cache or tmp_path / "cache", workers=workers, retries=retries,
                              timeout=timeout)
    with open_input(opts) as lead_file, make_session(workers) as session, \
            progress_bar(sys.stderr, "", enabled=False) as progress:
        return upload(opts, settings, lead_file, today=TODAY, session=session, clock=clock, sleep=clock.sleep,
                      progress=progress, rng=random.Random(3), interrupt=interrupt)


def phones(n, start=9100000000, campaign="Main"):
    return [["phone", "campaign"]] + [[str(start + i), campaign] for i in range(n)]


@pytest.fixture
def clock():
    return FakeClock()


def statuses(summary):
    return {s.value: n for s, n in summary.recorder.counts.items() if n}


def test_every_row_outcome_end_to_end(tmp_path, clock):
    rows = [["phone", "campaign", "agent", "skill"],
            ["9100000001", "Main", "", ""],  # added
            ["9000000001", "Main", "", ""],  # exists (in the campaign already, checkDuplicate TRUE)
            ["9100000002", "Agents", "", ""],  # rejected: Agent Is Empty! (brace-less body)
            ["9100000003", "Agents", "zz", ""],  # rejected: Agent is not correctly mapped!
            ["9100000004", "Agents", "a1", ""],  # added
            ["9100000005", "Skills", "", "nope"],  # rejected: Please provide valid skill
            ["9100000006", "Nowhere", "", ""],  # rejected: campaign unknown -> its other rows aborted
            ["9100000007", "Inbound", "", ""],  # rejected: not outbound
            ["9100000008", "Nowhere", "", ""],  # aborted
            ["12", "Main", "", ""],  # invalid locally, never sent
            ["9100000001", "Main", "", ""],  # skipped: duplicate of row 2
            ["9100000009", "Other", "", ""]]  # added: other campaigns carry on
    with Sandbox(CONFIG, clock=clock, rate_limit=0) as sb:
        s = run(tmp_path, sb, rows, clock=clock)
        assert [lead for lead in leads_in(sb, "Main")] == ["9100000001"]
        assert leads_in(sb, "Other") == ["9100000009"]
    got = [(r["row"], r["status"], r["message"]) for r in read_csv(tmp_path / "results.csv")]
    assert got == [
        ("2", "added", "SuccessFully Updated Main Campaign"),
        ("3", "exists", "Number Already Exist"),
        ("4", "rejected", "Agent Is Empty!"),
        ("5", "rejected", "Agent is not correctly mapped!"),
        ("6", "added", "SuccessFully Updated"),
        ("7", "rejected", "Please provide valid skill"),
        ("8", "rejected", "No User Found or Campaign Name is Invalid"),
        ("9", "rejected", "The selected campaign is not outbound"),
        ("10", "aborted", "not sent: campaign Nowhere was refused (No User Found or Campaign Name is Invalid)"),
        ("11", "invalid", "phone number '12' has 2 digits; CloudAgent takes 3 to 16 (an optional leading + allowed)"),
        ("12", "skipped", "duplicate of row 2"),
        ("13", "added", "SuccessFully Updated Other Campaign"),
    ]
    assert s.exit_code == 1
    failures = read_csv(tmp_path / "leads.csv.failures.csv")
    assert [f["leadpush_row"] for f in failures] == ["4", "5", "7", "8", "9", "10", "11"]
    results = read_csv(tmp_path / "results.csv")
    assert results[0]["attempts"] == "1" and results[0]["http_status"] == "200"


def test_account_refusal_stops_the_run_with_exit_3(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0) as sb:
        s = run(tmp_path, sb, phones(5), clock=clock, user="basic", key="basic-key")
        assert leads_in(sb, "Main", user="basic") == []
    assert s.exit_code == 3
    assert "not TOKEN_AUTH" in s.stop_reason
    results = read_csv(tmp_path / "results.csv")
    assert results[0]["status"] == "rejected"
    assert {r["status"] for r in results[1:]} == {"aborted"}
    assert all("not TOKEN_AUTH" in r["message"] for r in results[1:])
    assert len(read_csv(tmp_path / "leads.csv.failures.csv")) == 5


def test_wrong_key_stops_before_sending(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0) as sb:
        s = run(tmp_path, sb, phones(3), clock=clock, key="wrong")
        assert sb.state.stats_view()["requests"]["AddCampaignData"] == {}
    assert s.exit_code == 3 and "Invalid userName or apiKey" in s.stop_reason
    assert statuses(s) == {"aborted": 3}


def test_token_expiring_mid_run_loses_no_row(tmp_path, clock):
    # 100/min paces 0.6 s apart in fake time; tokens live 5 s: about one expiry every 8 rows.
    with Sandbox(CONFIG, clock=clock, rate_limit=0, token_ttl=5, token_cap=0) as sb:
        s = run(tmp_path, sb, phones(40), clock=clock, rate="100/min")
        assert sorted(leads_in(sb, "Main")) == [str(9100000000 + i) for i in range(40)]
        assert sb.state.stats_view()["tokens_issued"] >= 4
    assert statuses(s) == {"added": 40} and s.exit_code == 0


def test_another_client_invalidating_our_token_mid_run(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0) as sb:
        stolen = []

        def sleep(seconds):
            clock.advance(seconds)
            if len(stolen) < 3 and clock() > 1_800_000_000 + 3 * (len(stolen) + 1):
                # someone else, same account, generates a token: ours dies
                stolen.append(requests.post(sb.base_url + TOKEN_PATH, headers={"apiKey": KEY},
                                            json={"userName": "demo"}).json()["token"])

        clock.sleep = sleep
        s = run(tmp_path, sb, phones(30), clock=clock, rate="100/min")
        assert len(stolen) == 3
        assert sorted(leads_in(sb, "Main")) == [str(9100000000 + i) for i in range(30)]
        expired = sb.state.stats_view()["requests"]["AddCampaignData"].get("token-expired", 0)
    assert statuses(s) == {"added": 30} and expired == 3
    assert s.token_generations == 4
    assert all(r["attempts"] in ("1", "2") for r in read_csv(tmp_path / "results.csv"))


def test_token_is_reused_across_runs(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0) as sb:
        run(tmp_path, sb, phones(3), clock=clock)
        s2 = run(tmp_path, sb, phones(3, start=9200000000), clock=clock)
        assert sb.state.stats_view()["tokens_issued"] == 1
    assert s2.token_generations == 0


def test_the_generation_cap_stops_the_run(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0) as sb:
        store = TokenStore(tmp_path / "cache", sb.base_url, "demo")
        store.save({"generations": [clock() - i for i in range(10)]})
        s = run(tmp_path, sb, phones(3), clock=clock)
        assert sb.state.stats_view()["tokens_issued"] == 0
    assert s.exit_code == 3 and "CloudAgent's cap" in s.stop_reason and statuses(s) == {"aborted": 3}


def test_server_side_cap_is_an_account_refusal(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0, token_cap=1) as sb:
        requests.post(sb.base_url + TOKEN_PATH, headers={"apiKey": KEY}, json={"userName": "demo"})
        s = run(tmp_path, sb, phones(2), clock=clock, cache=tmp_path / "elsewhere")
    assert s.exit_code == 3 and "Token generation limit exceeded" in s.stop_reason


def test_429_storm_is_ridden_out_with_retry_after(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=5) as sb:
        s = run(tmp_path, sb, phones(12), clock=clock, rate="6000/min", retries=10)
        stats = sb.state.stats_view()
        assert sorted(leads_in(sb, "Main")) == [str(9100000000 + i) for i in range(12)]
    assert statuses(s) == {"added": 12}
    assert stats["requests"]["AddCampaignData"]["http-429"] >= 2
    # after the first 429 everyone waited as told: no more than a few refusals per window
    assert stats["requests"]["AddCampaignData"]["http-429"] <= 6


@pytest.mark.parametrize("workers", [1, 4])
def test_503_and_dropped_connections_with_check_duplicate_store_each_lead_once(tmp_path, clock, workers):
    with Sandbox(CONFIG, clock=clock, rate_limit=0, fail_rate=0.25, drop_rate=0.25, seed=11) as sb:
        # Retries enough that none is exhausted: with a fake clock and seeded backoff, two retrying
        # rows can fall into step and one draw the server's faults again and again.
        s = run(tmp_path, sb, phones(40), clock=clock, retries=30, workers=workers)
        stored = Counter(leads_in(sb, "Main"))
        outcomes = sb.state.stats_view()["requests"]["AddCampaignData"]
    assert outcomes["http-503"] > 0 and outcomes["exists"] > 0  # drops were resent and answered "exists"
    assert set(stored) == {str(9100000000 + i) for i in range(40)} and set(stored.values()) == {1}
    failed = [r for r in read_csv(tmp_path / "results.csv") if r["status"] not in ("added", "exists")]
    assert failed == [] and s.exit_code == 0, (failed, outcomes)


def test_dropped_connections_without_check_duplicate_are_never_resent(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0, fail_rate=0.2, drop_rate=0.3, seed=5) as sb:
        s = run(tmp_path, sb, phones(40), clock=clock, retries=12, check_dup=False)
        stored = Counter(leads_in(sb, "Main"))
    results = read_csv(tmp_path / "results.csv")
    unknown = [r for r in results if r["status"] == "failed"]
    assert unknown and all("not resent because checkDuplicate is FALSE" in r["message"] for r in unknown)
    assert max(stored.values()) == 1  # never sent twice
    added = {r["phoneNumber"] for r in results if r["status"] == "added"}
    assert added <= set(stored) and len(added) + len(unknown) == 40
    assert {r["phoneNumber"] for r in unknown} <= set(stored)  # the drops did store: "unknown" was right
    assert s.exit_code == 1


def test_connection_refused_is_retried_then_fails(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock) as sb:
        base = sb.base_url
    # the port is closed now: nothing listens, nothing could have been stored
    sb_closed = type("Closed", (), {"base_url": base})()
    s = run(tmp_path, sb_closed, phones(2), clock=clock, retries=2)
    assert s.exit_code == 1 and "could not reach CloudAgent for a token" in s.stop_reason
    assert statuses(s) == {"aborted": 2}


def test_interrupt_stops_dispatching_and_aborts_the_rest(tmp_path, clock):
    import threading

    interrupt = threading.Event()
    with Sandbox(CONFIG, clock=clock, rate_limit=0) as sb:
        def sleep(seconds):
            clock.advance(seconds)
            if clock() > 1_800_000_000 + 5:
                interrupt.set()
        clock.sleep = sleep
        s = run(tmp_path, sb, phones(30), clock=clock, rate="60/min", interrupt=interrupt)
        stored = leads_in(sb, "Main")
    assert s.exit_code == 130
    results = read_csv(tmp_path / "results.csv")
    added = [r for r in results if r["status"] == "added"]
    assert 3 <= len(added) < 30 and len(stored) == len(added)
    assert {r["message"] for r in results if r["status"] == "aborted"} == {"not sent: interrupted"}
    assert len(read_csv(tmp_path / "leads.csv.failures.csv")) == 30 - len(added)


def test_pacing_holds_under_the_rate_in_real_time(tmp_path):
    # Real time here: the sandbox's own window counts are the judge. 20/s for ~2 s, 4 workers.
    with Sandbox(CONFIG, rate_limit=0, latency_ms=30, jitter_ms=20, seed=2) as sb:
        started = time.monotonic()
        path = write_csv(tmp_path / "leads.csv", phones(41))
        opts = InputOptions(file=str(path))
        settings = UploadSettings(conn=Connection(sb.base_url, "demo", KEY), rate=parse_rate("20/s"),
                                  cache_dir=tmp_path / "cache", workers=4, retries=0, timeout=5)
        with open_input(opts) as lf, make_session(4) as session, progress_bar(sys.stderr, "", enabled=False) as p:
            s = upload(opts, settings, lf, today=TODAY, session=session, clock=time.monotonic, sleep=time.sleep,
                       progress=p)
        elapsed = time.monotonic() - started
        stats = sb.state.stats_view()
    assert statuses(s) == {"added": 41}
    assert stats["busiest_1s"] <= 21  # 20 per second, +1 for a window's closed edge
    assert s.requests == 42  # 41 rows and one token
    assert 41 / 20 * 0.95 <= elapsed <= 41 / 20 * 1.6


# ---------------------------------------------------------------------------- through the CLI

@pytest.fixture
def live():
    with Sandbox(CONFIG, rate_limit=0) as sb:
        yield sb


def env_for(sb, tmp_path):
    return {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "demo", "LEADPUSH_API_KEY": KEY,
            "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}


def test_cli_upload_with_json_summary(cli, tmp_path, live):
    p = write_csv(tmp_path / "leads.csv", phones(5))
    r = cli("upload", p, "--rate", "6000/min", "--json", env=env_for(live, tmp_path))
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["counts"]["added"] == 5 and summary["requests"] == 6 and summary["token_generations"] == 1
    assert summary["elapsed_seconds"] > 0 and summary["achieved_rate_per_min"] > 0


def test_cli_upload_table_and_summary(cli, tmp_path, live):
    p = write_csv(tmp_path / "leads.csv", phones(2) + [["1", "Main"]])
    r = cli("upload", p, "--rate", "6000/min", env=env_for(live, tmp_path))
    assert r.exit_code == 1
    assert "leads.csv: 3 rows: 2 added, 1 invalid" in r.stdout.replace(str(tmp_path) + "/", "") and "Failures file:" in r.stdout
    assert "requests" in r.stdout


def test_secrets_appear_nowhere(cli, tmp_path, live):
    p = write_csv(tmp_path / "leads.csv", phones(3) + [["9100000009", "Nowhere"], ["1", "Main"]])
    r = cli("upload", p, "--rate", "6000/min", "--results", tmp_path / "out.jsonl", env=env_for(live, tmp_path))
    token = json.loads(next((tmp_path / "cache" / "tokens").glob("*.json")).read_text())["token"]
    texts = [r.stdout, r.stderr, (tmp_path / "out.jsonl").read_text(),
             (tmp_path / "leads.csv.failures.csv").read_text()]
    r2 = cli("upload", p, "--rate", "6000/min", "--json", env={**env_for(live, tmp_path), "LEADPUSH_USERNAME": "basic",
                                                              "LEADPUSH_API_KEY": "basic-key"})
    texts += [r2.stdout, r2.stderr]
    for text in texts:
        assert KEY not in text and token not in text and "basic-key" not in text


def test_missing_settings_are_named(cli, tmp_path):
    p = write_csv(tmp_path / "leads.csv", phones(1))
    r = cli("upload", p)
    assert r.exit_code == 2 and "no user name: pass --username, set LEADPUSH_USERNAME, or use a --profile" in r.stderr
    r = cli("upload", p, "--username", "demo")
    assert r.exit_code == 2 and "no API key: set LEADPUSH_API_KEY, or api_key_env in a --profile" in r.stderr
    r = cli("upload", p, "--username", "demo", "--base-url", "http://example.com", env={"LEADPUSH_API_KEY": "k"})
    assert r.exit_code == 2 and "plain http is refused" in r.stderr
    r = cli("upload", p, "--username", "demo", "--rate", "fast", env={"LEADPUSH_API_KEY": "k"})
    assert r.exit_code == 2 and "--rate 'fast'" in r.stderr


def test_api_key_has_no_flag(cli):
    r = cli("upload", "--help")
    assert "--api-key" not in r.stdout and "--sandbox" in r.stdout


def test_dry_run_is_validate(cli, tmp_path):
    p = write_csv(tmp_path / "leads.csv", phones(2))
    r = cli("upload", p, "--dry-run")
    assert r.exit_code == 0 and "2 rows: 2 valid" in r.stdout


def test_upload_sandbox_flag_runs_the_whole_job(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = write_csv(tmp_path / "leads.csv", [["phone", "campaign"], ["9100000001", "demo_progressive"],
                                          ["9100000002", "demo_inbound"], ["9100000003", "demo_ivr"]])
    r = cli("upload", p, "--sandbox", "--rate", "6000/min")
    assert r.exit_code == 1, r.output
    assert "3 rows: 2 added, 1 rejected" in r.stdout
    assert "built-in sandbox" in r.stderr
    [failure] = read_csv(tmp_path / "leads.csv.failures.csv")
    assert failure["leadpush_error"] == "The selected campaign is not outbound"


def test_ctrl_c_in_a_real_process(tmp_path, live):
    p = write_csv(tmp_path / "leads.csv", phones(40))
    env = {**os.environ, **env_for(live, tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "leadpush", "upload", str(p), "--rate", "10/s",
                             "--results", str(tmp_path / "out.jsonl")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 20
    while len(leads_in(live, "Main")) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Stopping: finishing the rows in flight" in err
    results = read_jsonl(tmp_path / "out.jsonl")
    assert len(results) == 40
    added = [r for r in results if r["status"] == "added"]
    assert len(added) == len(leads_in(live, "Main")) and 5 <= len(added) < 40
    assert {r["status"] for r in results} == {"added", "aborted"}
    assert len(read_csv(tmp_path / "leads.csv.failures.csv")) == 40 - len(added)


def test_achieved_rate_counts_intervals_not_requests(tmp_path, clock):
    # 9 requests paced at 100/min take 8 intervals: the summary must not claim 112/min.
    with Sandbox(CONFIG, clock=clock, rate_limit=0) as sb:
        s = run(tmp_path, sb, phones(8), clock=clock, rate="100/min")
    assert s.requests == 9
    assert 99.0 <= s.achieved_rate <= 100.0
