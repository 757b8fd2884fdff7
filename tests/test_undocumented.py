"""What CloudAgent and the network do that nobody documented (issue 10): each case end to end, over real sockets."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from leadpush.checks import CheckSettings, RowDefaults
from leadpush.cloudagent import (
    BODY_CAP,
    TOKEN_PATH,
    Connection,
    TokenKeeper,
    TokenStore,
    classify,
    make_session,
    retry_after,
    sendable_token,
)
from leadpush.jobs import InputOptions, open_input
from leadpush.pacing import Pacer, parse_rate
from leadpush.report import RateWindow, progress_bar
from leadpush.sandbox import Sandbox
from leadpush.upload import UploadSettings, upload
from tests.conftest import FakeClock, read_csv, read_jsonl, write_csv
from tests.test_upload import CONFIG, KEY, TODAY, leads_in, phones, statuses

SUCCESS = '{"status": "SUCCESS", "message": "SuccessFully Updated"}'


@pytest.fixture
def clock():
    return FakeClock()


def run(tmp_path, sb, rows, *, clock, workers=1, retries=3, check_dup=True, user="demo", key=KEY, cache=None,
        timeout=5.0, interrupt=None, conn=None, progress=None, results="results.csv"):
    path = write_csv(tmp_path / "leads.csv", rows)
    opts = InputOptions(file=str(path), checks=CheckSettings(defaults=RowDefaults(check_duplicate=check_dup)),
                        results=tmp_path / results)
    settings = UploadSettings(conn=conn or Connection(sb.base_url, user, key), rate=parse_rate("6000/min"),
                              cache_dir=cache or tmp_path / "cache", workers=workers, retries=retries,
                              timeout=timeout)
    with open_input(opts) as lead_file, make_session(workers) as session, \
            progress_bar(sys.stderr, "", enabled=False) as no_progress:
        return upload(opts, settings, lead_file, today=TODAY, session=session, clock=clock, sleep=clock.sleep,
                      progress=progress or no_progress, rng=random.Random(3), interrupt=interrupt)


def by_phone(tmp_path, name="results.csv"):
    return {r["phoneNumber"]: r for r in read_csv(tmp_path / name)}


class HeaderRecorder:
    """Another host (127.0.0.2) that records every request's headers and answers as a happy CloudAgent would."""

    def __init__(self, token: str = "eyJh.eyJi.c2ln") -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                recorder.seen.append((self.command, self.path, dict(self.headers)))
                body = SUCCESS.encode()
                if "generateToken" in self.path:
                    body = json.dumps({"token": token, "message": ""}, ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.2:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def headers_text(self) -> str:
        return json.dumps([h for _, _, h in self.seen])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def elsewhere():
    rec = HeaderRecorder()
    yield rec
    rec.close()


# ---------------------------------------------------------------------------- 1. gateway errors after storing

def test_504_after_storing_is_never_resent_without_check_duplicate(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0, gateway_rate=0.3, seed=4) as sb:
        s = run(tmp_path, sb, phones(60), clock=clock, retries=5, check_dup=False)
        stored = Counter(leads_in(sb, "Main"))
        outcomes = sb.state.stats_view()["requests"]["AddCampaignData"]
    assert outcomes["http-504-after-added"] > 5
    assert max(stored.values()) == 1  # nothing stored twice
    results = read_csv(tmp_path / "results.csv")
    unknown = [r for r in results if r["status"] == "failed"]
    assert len(unknown) == outcomes["http-504-after-added"]
    assert all(r["message"].startswith("outcome unknown: HTTP 504") for r in unknown)
    assert {r["phoneNumber"] for r in unknown} <= set(stored)  # they were stored: "unknown" was right
    assert s.exit_code == 1


def test_504_after_storing_with_check_duplicate_is_resent_and_says_it_was_ours(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0, gateway_rate=0.3, gateway_status=502, seed=4) as sb:
        s = run(tmp_path, sb, phones(30), clock=clock, retries=20)
        stored = Counter(leads_in(sb, "Main"))
    assert set(stored.values()) == {1} and len(stored) == 30
    results = read_csv(tmp_path / "results.csv")
    ours = [r for r in results if r["status"] == "exists"]
    assert ours and all(r["message"].startswith("stored; an earlier attempt of this run probably added it")
                        for r in ours)
    assert s.exit_code == 0 and s.exists_after_our_attempt == len(ours)


# ---------------------------------------------------------------------------- 2. redirects

@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirected_base_url_stops_the_run_and_nothing_leaks(tmp_path, clock, elsewhere, code):
    with Sandbox(CONFIG, clock=clock, rate_limit=0, redirect_status=code, redirect_to=elsewhere.url) as sb:
        s = run(tmp_path, sb, phones(3), clock=clock)
    assert s.exit_code == 3 and f"redirects to {elsewhere.url}/ca_apis/CAToken/generateToken" in s.stop_reason
    assert statuses(s) == {"aborted": 3} and elsewhere.seen == []


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("target", ["http://127.0.0.2:{port}/ca_apis/AddCampaignData",
                                    "https://127.0.0.2:{port}/ca_apis/AddCampaignData"])
def test_a_redirected_lead_is_not_followed_nor_counted(tmp_path, clock, elsewhere, code, target):
    location = target.format(port=elsewhere.server.server_address[1])
    answers = [{"phone": "9100000001", "status": code, "body": "", "headers": {"Location": location}}]
    with Sandbox(CONFIG, clock=clock, rate_limit=0, answers=answers) as sb:
        s = run(tmp_path, sb, phones(4), clock=clock, workers=1)
        token = json.loads(next((tmp_path / "cache" / "tokens").glob("*.json")).read_text())["token"]
    rows = by_phone(tmp_path)
    assert s.exit_code == 3 and location in s.stop_reason
    assert rows["9100000001"]["status"] == "rejected" and rows["9100000000"]["status"] == "added"
    assert {rows[p]["status"] for p in ("9100000002", "9100000003")} == {"aborted"}
    assert elsewhere.seen == []
    assert KEY not in elsewhere.headers_text() and token not in elsewhere.headers_text()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a certificate")
@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_an_https_base_url_redirecting_to_plain_http_sends_nothing_there(tmp_path, clock, elsewhere, code,
                                                                        monkeypatch):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    answers = [{"phone": "9100000001", "status": code, "body": "",
                "headers": {"Location": elsewhere.url + "/ca_apis/AddCampaignData"}}]
    with Sandbox(CONFIG, clock=clock, rate_limit=0, answers=answers, tls=(str(cert), str(key))) as sb:
        assert sb.base_url.startswith("https://")
        s = run(tmp_path, sb, phones(3), clock=clock)
    rows = by_phone(tmp_path)
    assert rows["9100000000"]["status"] == "added"  # https itself works
    assert s.exit_code == 3 and f"redirects to {elsewhere.url}/ca_apis/AddCampaignData" in s.stop_reason
    assert elsewhere.seen == [] and KEY not in elsewhere.headers_text()


# ---------------------------------------------------------------------------- 3. success-worded refusals

SUCCESS_WORDED = {
    "9100000001": ('{"status": "success", "message": "Number is in DND list, not added"}', "rejected"),
    "9100000002": ('{"status": "SUCCESS", "message": "Duplicate Number"}', "rejected"),
    "9100000003": ('{"status": "Success", "message": "Number is already exist"}', "rejected"),
    "9100000004": ('{"status": "FAIL", "message": "PhoneNumber Added is a DND Number"}', "rejected"),
    "9100000005": ('{"status": "success", "message": "Number blocked"}', "rejected"),
    "9100000006": ('{"status": "success", "message": "Lead accepted"}', "failed"),
    "9100000007": ('{"transactionId": 7, "status": "success", "message": "queued successfully"}', "failed"),
    "9100000008": ('{"status": "success"}', "failed"),
}


def test_only_a_documented_success_counts_as_added(tmp_path, clock):
    answers = [{"phone": p, "body": body} for p, (body, _) in SUCCESS_WORDED.items()]
    answers.append({"phone": "9100000009", "status": 202, "body": '{"status": "success", "message": '
                                                                 '"SuccessFully Updated"}'})
    with Sandbox(CONFIG, clock=clock, rate_limit=0, answers=answers) as sb:
        s = run(tmp_path, sb, phones(10), clock=clock)
    rows = by_phone(tmp_path)
    for phone, (body, status) in SUCCESS_WORDED.items():
        assert rows[phone]["status"] == status, (phone, rows[phone])
        assert json.loads("{" + body.strip("{}") + "}").get("message", "") in rows[phone]["message"]
    assert rows["9100000009"]["status"] == "failed"
    assert "unrecognised answer (HTTP 202)" in rows["9100000009"]["message"]
    assert {rows[p]["cause"] for p in rows if rows[p]["status"] == "failed"} == {"cloudagent.unrecognised"}
    assert rows["9100000000"]["status"] == "added"
    assert statuses(s) == {"added": 1, "rejected": 5, "failed": 4} and s.exit_code == 1
    failures = {r["phone"]: r for r in read_csv(tmp_path / "leads.csv.failures.csv")}
    assert failures["9100000001"]["leadpush_error"] == "Number is in DND list, not added"
    assert failures["9100000004"]["leadpush_error"] == "PhoneNumber Added is a DND Number"


def test_a_campaign_name_holding_a_negation_does_not_spoil_its_success():
    v = classify(200, '{"status": "Success", "message": "Campaign Do Not Call Is Already Started"}', {},
                 "Do Not Call")
    assert v.kind == "added"
    # A success text with more to it says two things: unrecognised, never added (review 10-16, item 3).
    assert classify(200, '{"status": "Success", "message": "SuccessFully Updated, not stored"}', {}).kind == \
        "unrecognised"


# ---------------------------------------------------------------------------- 4. bodies before status codes

def test_documented_bodies_win_over_their_status_codes(tmp_path, clock):
    answers = [
        {"phone": "9100000001", "status": 404, "body": '{"status": "FAIL", "message": "No User Found or Campaign '
                                                       'Name is Invalid"}'},
        {"phone": "9100000002", "status": 401, "body": '{"status": "error", "message": "phone number should be '
                                                       'numeric and must be between 3 to 16 digits and allows '
                                                       'prefix +"}'},
        {"phone": "9100000003", "status": 500, "body": '{"status": "false", "message": "Token Expired", '
                                                       '"data": null}'},
    ]
    rows = [["phone", "campaign"], ["9100000001", "Main"], ["9100000004", "Main"], ["9100000002", "Other"],
            ["9100000003", "Other"], ["9100000005", "Other"]]
    with Sandbox(CONFIG, clock=clock, rate_limit=0, answers=answers) as sb:
        s = run(tmp_path, sb, rows, clock=clock)
        tokens = sb.state.tokens_issued
    got = {p: r["status"] for p, r in by_phone(tmp_path).items()}
    assert got == {"9100000001": "rejected", "9100000004": "aborted",  # that campaign stopped, not the run
                   "9100000002": "rejected", "9100000003": "added", "9100000005": "added"}
    assert s.exit_code == 1 and tokens == 2  # the 500 "Token Expired" got a new token, not a retry


def test_token_expired_sent_with_500_gets_a_fresh_token(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0, token_expired_status=500) as sb:
        requests.post(sb.base_url + TOKEN_PATH, headers={"apiKey": KEY}, json={"userName": "demo"})
        dead = Connection(sb.base_url, "demo", KEY, given_token="eyJh.eyJi.c2ln")
        s = run(tmp_path, sb, phones(3), clock=clock, conn=dead, retries=0)
        stats = sb.state.stats_view()["requests"]["AddCampaignData"]
    assert statuses(s) == {"added": 3} and stats["token-expired"] == 1


# ---------------------------------------------------------------------------- 5. unknown "false" answers

def test_an_unknown_false_answer_stops_the_run(tmp_path, clock):
    answers = [{"phone": "9100000001", "body": '{"status": "false", "message": "Invalid Token", "data": null}'}]
    with Sandbox(CONFIG, clock=clock, rate_limit=0, answers=answers) as sb:
        s = run(tmp_path, sb, phones(5), clock=clock)
        stored = leads_in(sb, "Main")
    assert s.exit_code == 3 and "Invalid Token" in s.stop_reason
    assert stored == ["9100000000"] and statuses(s) == {"added": 1, "rejected": 1, "aborted": 3}


# ---------------------------------------------------------------------------- 7. auth check

@pytest.mark.parametrize("body,content_type,said", [
    ("<html><form>Login</form></html>", "text/html", "<html><form>Login</form></html>"),
    ("", "application/json", "empty body"),
    ('{"status": "SUCCESS", "message": "SuccessFully Updated"}', "application/json", "SuccessFully Updated")])
def test_auth_check_confirms_only_on_the_documented_answer(cli, tmp_path, body, content_type, said):
    answers = [{"phone": "", "body": body, "content_type": content_type, "times": 0}]
    env = {"LEADPUSH_USERNAME": "demo", "LEADPUSH_API_KEY": KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
    with Sandbox(CONFIG, rate_limit=0, answers=answers) as sb:
        r = cli("auth", "check", "--base-url", sb.base_url, env=env)
    assert r.exit_code == 3 and "could not confirm the account" in r.stderr and "OK" not in r.stdout
    assert said in r.stderr and "(HTTP 200)" in r.stderr


def test_auth_check_ok_on_please_provide_campaign_details(cli, tmp_path):
    env = {"LEADPUSH_USERNAME": "demo", "LEADPUSH_API_KEY": KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
    with Sandbox(CONFIG, rate_limit=0) as sb:
        r = cli("auth", "check", "--base-url", sb.base_url, env=env)
    assert r.exit_code == 0 and r.stdout.startswith("OK: user demo")


# ---------------------------------------------------------------------------- 8. answers that never end or never stop

@pytest.mark.parametrize("headers_too", [False, True])
def test_a_trickled_answer_is_cut_at_the_total_deadline(tmp_path, clock, headers_too):
    answers = [{"phone": "9100000001", "body": SUCCESS, "trickle_ms": 100, "store": True,  # 5.5 s or more
                "trickle_headers": headers_too}]
    with Sandbox(CONFIG, clock=clock, rate_limit=0, answers=answers) as sb:
        started = time.monotonic()
        s = run(tmp_path, sb, phones(3), clock=clock, timeout=1.0, check_dup=False)
        elapsed = time.monotonic() - started
    row = by_phone(tmp_path)["9100000001"]
    assert row["status"] == "failed" and row["message"].startswith(
        "outcome unknown: no complete answer within the timeout")
    assert elapsed < 3.0, elapsed
    assert statuses(s) == {"added": 2, "failed": 1}


@pytest.mark.parametrize("length", [True, False])
def test_an_oversized_answer_is_not_read_and_never_added(tmp_path, clock, length):
    answers = [{"phone": "9100000001", "body": SUCCESS, "pad_bytes": 48 << 20, "length": length}]
    with Sandbox(CONFIG, clock=clock, rate_limit=0, answers=answers) as sb:
        s = run(tmp_path, sb, phones(3), clock=clock)
        written = sb.written["scripted-200"]
    row = by_phone(tmp_path)["9100000001"]
    assert row["status"] == "failed" and f"longer than {BODY_CAP} bytes, not read" in row["message"]
    assert statuses(s) == {"added": 2, "failed": 1}
    assert written < 24 << 20  # the client hung up instead of taking it all


# ---------------------------------------------------------------------------- 9. Retry-After in every form

@pytest.mark.parametrize("value,waited", [
    ("Mon, 01 Jan 2080 00:00:00 GMT", 120.0),  # a date: honoured up to the cap
    ("Mon, 01 Jan 99999999999 00:00:00 GMT", 0.0),  # absurd: ignored
    ("-5", 0.0), ("soon", 0.0), ("nan", 0.0), ("1e400", 0.0),
    ("7", 7.0),
])
def test_retry_after_in_every_form(tmp_path, clock, value, waited):
    answers = [{"phone": "9100000000", "status": 429, "body": "<html>slow down</html>", "content_type": "text/html",
                "headers": {"Retry-After": value}}]
    with Sandbox(CONFIG, clock=clock, rate_limit=0, answers=answers) as sb:
        before = clock()
        s = run(tmp_path, sb, phones(1), clock=clock)
    assert statuses(s) == {"added": 1}
    assert waited <= clock() - before <= max(waited, 1.0) + 0.1


def test_retry_after_dates_from_the_rate_limit(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=5, retry_after="date") as sb:
        s = run(tmp_path, sb, phones(8), clock=clock, retries=5)
    assert statuses(s) == {"added": 8}


def test_retry_after_values():
    now = lambda: 1_900_000_000.0  # noqa: E731
    assert retry_after("Thu, 01 Jan 2030 00:00:10 GMT", now=lambda: 1893456000.0) == 10.0
    assert retry_after("Mon, 01 Jan 2001 00:00:00 GMT", now=now) == 0.0  # past: now
    assert retry_after("100000", now=now) == 120.0
    for garbage in ("", "-1", "inf", "soon", "Mon, 01 Jan 99999999999 00:00:00 GMT", "Mon, 99 Foo 2030"):
        assert retry_after(garbage, now=now) is None


# ---------------------------------------------------------------------------- 10. secrets echoed in other spellings

ODD_KEY = "k3y/With+slash=7f3a"
ODD_CONFIG = {"accounts": [{"user": "demo", "api_key": ODD_KEY, "auth_mode": "TOKEN_AUTH",
                            "campaigns": [{"name": "Main", "type": "progressive"}]}]}


def test_secrets_echoed_in_other_spellings_are_scrubbed_everywhere(cli, tmp_path):
    answers = [
        {"phone": "9100000001", "body": '{"status": "FAIL", "message": "bad key {api_key_json}"}'},
        {"phone": "9100000002", "body": '{"status": "FAIL", "message": "bad key {api_key_url}"}'},
        {"phone": "9100000003", "body": '{"status": "FAIL", "message": "bad key {api_key} token {token}"}'},
        {"phone": "9100000004", "body": '{"status": "success", "message": "odd {api_key_json}"}'},
    ]
    answers = [dict(a, times=0) for a in answers]  # the same answers to the second run
    p = write_csv(tmp_path / "leads.csv", phones(5))
    env = {"LEADPUSH_USERNAME": "demo", "LEADPUSH_API_KEY": ODD_KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
    with Sandbox(ODD_CONFIG, rate_limit=0, answers=answers) as sb:
        r = cli("upload", p, "--base-url", sb.base_url, "--rate", "6000/min", "--results", tmp_path / "out.jsonl",
                "--log-file", tmp_path / "run.log", "--journal", tmp_path / "j.jsonl", env=env)
        r2 = cli("upload", p, "--base-url", sb.base_url, "--rate", "6000/min", "--json", "--restart",
                 "--results", tmp_path / "out.csv", "--journal", tmp_path / "j2.jsonl", env=env)
    token = json.loads(next((tmp_path / "cache" / "tokens").glob("*.json")).read_text())["token"]
    assert r.exit_code == 1, r.output
    texts = {"stdout": r.stdout, "stderr": r.stderr, "json": r2.stdout}
    for name in ("out.jsonl", "out.csv", "leads.csv.failures.csv", "run.log", "j.jsonl", "j2.jsonl"):
        texts[name] = (tmp_path / name).read_text()
    assert "bad key ***" in texts["out.jsonl"]
    spellings = (ODD_KEY, "k3y\\/With+slash=7f3a", "k3y%2FWith%2Bslash%3D7f3a", "k3y%2fWith%2bslash%3d7f3a", token)
    for name, text in texts.items():
        for spelling in spellings:
            assert spelling not in text, (name, spelling)
            assert json.dumps(spelling)[1:-1] not in text, (name, spelling)


# ---------------------------------------------------------------------------- 11. the token cache

POISONED = [
    {"token": "eyJh.eyJi\n.c2ln", "generations": []},
    {"token": "eyJh.eyJi.c2lnö€", "generations": []},
    {"token": 12345, "generations": []},
    {"token": ["eyJh", "eyJi"], "generations": []},
    {"token": None, "generations": [None, None]},
    {"generations": [1e308, 10 ** 30]},
    {"generations": "lots"},
    {"generations": [True, "x", {"a": 1}]},
    ["not", "a", "dict"],
]


@pytest.mark.parametrize("content", POISONED)
def test_a_poisoned_cache_is_never_trusted_nor_a_crash(tmp_path, clock, content):
    with Sandbox(CONFIG, clock=clock, rate_limit=0) as sb:
        store = TokenStore(tmp_path / "cache", sb.base_url, "demo")
        store.path.parent.mkdir(parents=True)
        store.path.write_text(json.dumps(content))
        s = run(tmp_path, sb, phones(3), clock=clock)
        issued = sb.state.tokens_issued
    assert statuses(s) == {"added": 3} and issued == 1
    saved = json.loads(store.path.read_text())
    assert sendable_token(saved["token"])
    assert all(isinstance(t, float) and t <= clock() for t in saved["generations"])


@pytest.mark.parametrize("token", ["eyJh.eyJi\n.c2ln", "eyJh.eyJi.c2ln\u20ac", "not a jwt"])
def test_a_token_that_cannot_go_in_a_header_is_refused_and_never_cached(tmp_path, clock, token):
    server = HeaderRecorder(token=token)  # a server whose Generate Token answers such a token
    try:
        s = run(tmp_path, type("At", (), {"base_url": server.url})(), phones(2), clock=clock)
    finally:
        server.close()
    assert s.exit_code == 3 and "cannot be sent back in an HTTP header" in s.stop_reason
    assert [path for _, path, _ in server.seen] == ["/ca_apis/CAToken/generateToken"]  # no lead sent with it
    assert not list((tmp_path / "cache").glob("tokens/*.json"))


def test_unreadable_generations_assume_the_cap_is_near(tmp_path):
    now = 1_800_000_000.0
    assert TokenStore.generations({"generations": "lots"}, now, 10) == [now] * 9
    assert TokenStore.generations({"generations": [None, now + 9999, now - 10, now - 7200]}, now, 10) == \
        [now, now, now - 10]
    assert TokenStore.generations({}, now, 10) == []
    assert not sendable_token("eyJh.eyJi\n.c2ln") and not sendable_token("é.a.b") and sendable_token("eyJh.eyJi.c2ln")


def test_a_cache_that_cannot_be_parsed_counts_as_near_the_cap(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0) as sb:
        store = TokenStore(tmp_path / "cache", sb.base_url, "demo")
        store.path.parent.mkdir(parents=True)
        store.path.write_text("{not json")
        s = run(tmp_path, sb, phones(2), clock=clock)
    assert statuses(s) == {"added": 2}
    assert len(json.loads(store.path.read_text())["generations"]) == 10  # 9 assumed + 1 made


# ---------------------------------------------------------------------------- 12. Ctrl-C twice

def _spawn(tmp_path, sb, extra=(), n=10):
    p = write_csv(tmp_path / "leads.csv", phones(n))
    env = {**os.environ, "LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "demo", "LEADPUSH_API_KEY": KEY,
           "LEADPUSH_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "leadpush", "upload", str(p), "--rate", "6000/min",
                             "--workers", "2", "--results", str(tmp_path / "out.jsonl"), "--no-journal", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_second_ctrl_c_quits_at_once_keeping_what_was_recorded(tmp_path):
    with Sandbox(CONFIG, rate_limit=0, latency_ms=8000) as sb:
        proc = _spawn(tmp_path, sb, ("--timeout", "30"))
        _wait_for(lambda: len(leads_in(sb, "Main")) >= 2)  # two requests stored, their answers 8 s away
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - started
    assert proc.returncode == 130, err
    assert elapsed < 3.0, elapsed
    results = read_jsonl(tmp_path / "out.jsonl")
    assert len(results) == 10
    unknown = [r for r in results if r["status"] == "failed"]
    assert len(unknown) == 2 and all("outcome unknown: quit" in r["message"] for r in unknown)
    assert {r["cause"] for r in unknown} == {"send.unknown"}
    assert {r["status"] for r in results} == {"failed", "aborted"}


def test_sigterm_against_a_trickling_server_ends_within_the_timeout(tmp_path):
    answers = [{"phone": str(9100000000 + i), "body": SUCCESS, "trickle_ms": 500, "times": 0} for i in range(10)]
    with Sandbox(CONFIG, rate_limit=0, answers=answers) as sb:
        proc = _spawn(tmp_path, sb, ("--timeout", "1"))
        _wait_for(lambda: sb.written["scripted-200"] >= 1)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - started
    assert proc.returncode == 143, err
    assert elapsed < 4.0, elapsed
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 10


# ---------------------------------------------------------------------------- 13. generations counted under a lock

def test_concurrent_runs_count_every_generation(tmp_path):
    with Sandbox(CONFIG, rate_limit=0, token_cap=0, latency_ms=0) as sb:
        errors = []

        def one_run():
            try:
                with make_session(1) as session:
                    keeper = TokenKeeper(session, Connection(sb.base_url, "demo", KEY),
                                         TokenStore(tmp_path / "cache", sb.base_url, "demo"),
                                         Pacer(None, clock=time.monotonic, sleep=time.sleep), clock=time.time,
                                         timeout=5, cap=1000)
                    for _ in range(6):
                        keeper.expired(keeper.current())
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=one_run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        issued = sb.state.tokens_issued
    counted = json.loads(next((tmp_path / "cache" / "tokens").glob("*.json")).read_text())["generations"]
    assert errors == [] and issued >= 6 and len(counted) == issued


# ---------------------------------------------------------------------------- 14. proxies

def test_a_loopback_base_url_never_goes_through_a_proxy(cli, tmp_path, elsewhere):
    p = write_csv(tmp_path / "leads.csv", phones(2))
    proxy = {"http_proxy": elsewhere.url, "HTTP_PROXY": elsewhere.url, "https_proxy": elsewhere.url,
             "HTTPS_PROXY": elsewhere.url, "all_proxy": elsewhere.url, "no_proxy": None, "NO_PROXY": None,
             "LEADPUSH_USERNAME": "demo", "LEADPUSH_API_KEY": KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
    with Sandbox(CONFIG, rate_limit=0) as sb:
        for base in (sb.base_url, sb.base_url.replace("127.0.0.1", "localhost")):
            r = cli("upload", p, "--base-url", base, "--rate", "6000/min", "--json", "--no-journal", env=proxy)
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["counts"]["added"] + json.loads(r.stdout)["counts"]["exists"] == 2
    assert elsewhere.seen == []


# ---------------------------------------------------------------------------- 15. the progress bar's rate

def test_rate_and_eta_include_the_waits():
    clock = FakeClock(0.0)
    window = RateWindow(clock)
    for _ in range(100):  # a burst: 100 rows in a second ...
        clock.advance(0.01)
        window.advance()
    window.waiting(52, "CloudAgent asked to slow down (429)")
    assert window.note() == "waiting 52 s: CloudAgent asked to slow down (429)"
    clock.advance(52)  # ... then a 52-second wait
    rate = window.per_minute()
    assert 100 <= rate <= 116  # 100 rows in 53 s, not 6,000/min
    assert window.note() == ""
    assert window.eta(1000) == pytest.approx(900 / rate * 60)


def test_the_progress_bar_hears_of_429_waits(tmp_path, clock):
    class Recording:
        def __init__(self):
            self.waits = []

        def set_total(self, total):
            pass

        def advance(self, n=1):
            pass

        def waiting(self, seconds, reason):
            self.waits.append((seconds, reason))

    progress = Recording()
    with Sandbox(CONFIG, clock=clock, rate_limit=3) as sb:
        s = run(tmp_path, sb, phones(5), clock=clock, retries=5, progress=progress)
    assert statuses(s) == {"added": 5}
    assert progress.waits and all(r == "CloudAgent asked to slow down (429)" and w > 1 for w, r in progress.waits)


# ---------------------------------------------------------------------------- 16. the token call is retried

def test_connection_refused_on_the_token_call_is_retried(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0) as sb:
        base, port = sb.base_url, sb.server.server_address[1]
    # Nothing listens; the server comes up during the first backoff.
    later: list[Sandbox] = []

    def sleep(seconds):
        clock.advance(seconds)
        if not later:
            later.append(Sandbox(CONFIG, clock=clock, rate_limit=0, port=port).start())

    clock.sleep = sleep
    try:
        s = run(tmp_path, type("At", (), {"base_url": base})(), phones(2), clock=clock, retries=2)
        stored = leads_in(later[0], "Main")
    finally:
        for sb in later:
            sb.stop()
    assert statuses(s) == {"added": 2} and sorted(stored) == ["9100000000", "9100000001"]


def test_connection_refused_on_the_token_call_gives_up_after_the_retries(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock) as sb:
        base = sb.base_url
    before = clock()
    s = run(tmp_path, type("Closed", (), {"base_url": base})(), phones(2), clock=clock, retries=2)
    assert s.exit_code == 1 and "could not reach CloudAgent for a token" in s.stop_reason
    assert "after 3 attempts" in s.stop_reason and clock() > before  # it waited between attempts
    assert statuses(s) == {"aborted": 2}


# ---------------------------------------------------------------------------- 17. limits the README promises

def test_retries_are_spent_then_the_row_fails(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0, fail_rate=1.0) as sb:
        s = run(tmp_path, sb, phones(2), clock=clock, retries=2)
        stats = sb.state.stats_view()["requests"]["AddCampaignData"]
    assert stats == {"http-503": 6}  # 1 + 2 retries, per row
    results = read_csv(tmp_path / "results.csv")
    assert {r["status"] for r in results} == {"failed"} and {r["attempts"] for r in results} == {"3"}
    assert all(r["message"] == "HTTP 503 from CloudAgent (nothing stored); gave up after 3 attempts" for r in results)
    assert s.exit_code == 1


def test_token_expired_resends_are_capped(tmp_path, clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0, token_ttl=-1) as sb:  # every token is born expired
        run(tmp_path, sb, phones(1), clock=clock, retries=0)
        stats = sb.state.stats_view()["requests"]["AddCampaignData"]
    [row] = read_csv(tmp_path / "results.csv")
    assert row["status"] == "failed" and "kept answering 'Token Expired'" in row["message"]
    assert stats == {"token-expired": 4} and row["attempts"] == "4"


def test_stopped_before_a_retry_after_a_maybe_stored_attempt(tmp_path, clock):
    interrupt = threading.Event()
    with Sandbox(CONFIG, clock=clock, rate_limit=0, drop_rate=1.0) as sb:
        def sleep(seconds):
            clock.advance(seconds)
            interrupt.set()  # Ctrl-C during the backoff after a dropped connection
        clock.sleep = sleep
        s = run(tmp_path, sb, phones(1), clock=clock, retries=3, interrupt=interrupt)
        stored = leads_in(sb, "Main")
    [row] = read_csv(tmp_path / "results.csv")
    assert row["status"] == "failed" and row["message"].startswith("the run stopped before a retry")
    assert stored == ["9100000000"] and s.exit_code == 130
