"""Review of issues 10/16, the network half: success texts, compressed answers, the total deadline,
secrets cut or escaped, huge token expiries, sandbox settings. End to end over real sockets where
the point is the network."""

from __future__ import annotations

import json
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import urllib3.connection

from leadpush.cloudagent import ADD_PATH, BODY_CAP, DeadlinePassed, classify, exchange, make_session
from leadpush.sandbox import Sandbox
from tests.conftest import FakeClock, read_csv, write_csv
from tests.test_undocumented import HeaderRecorder, by_phone, run
from tests.test_upload import CONFIG, KEY, leads_in, phones, statuses

SUCCESS = '{"status": "SUCCESS", "message": "SuccessFully Updated"}'


@pytest.fixture
def clock():
    return FakeClock()


# ---------------------------------------------------------------------------- 3. only the documented success texts

UNDOCUMENTED_SUCCESSES = [
    "SuccessFully Updated, 0 leads inserted", "SuccessFully Updated, 0 records", "SuccessFully Updated, lead ignored",
    "SuccessFully Updated but lead discarded", "SuccessFully Updated, already in campaign",
    "SuccessFully Updated, numberNotAdded", "SuccessFully Updated, lead queued for review",
    "SuccessFully Updated, Other was started",  # another campaign's name
    "Campaign Other Is Already Started", "SuccessFully Updated Main Campaign, not really",
]
DOCUMENTED_SUCCESSES = [
    "SuccessFully Updated", "SuccessFully Updated, Main was started", "SuccessFully Updated Main Campaign",
    "Campaign Main Is Already Started", "SuccessFully Updated Progressive Campaign Stoped",
    "Please pass the valid Campaign action SuccessFully Updated Main Campaign Data",
]


@pytest.mark.parametrize("message", UNDOCUMENTED_SUCCESSES)
def test_a_success_text_with_more_to_it_is_unrecognised(message):
    body = json.dumps({"status": "SUCCESS", "message": message})
    assert classify(200, body, {}, "Main").kind == "unrecognised"


@pytest.mark.parametrize("message", DOCUMENTED_SUCCESSES)
def test_the_documented_success_texts_count_added(message):
    assert classify(200, json.dumps({"status": "Success", "message": message}), {}, "Main").kind == "added"


@pytest.mark.parametrize("message,campaign", [
    ("SuccessFully Updated, not added", "no"), ("SuccessFully Updated, not added", "not"),
    ("SuccessFully Updated, DND", "D"), ("SuccessFully Updated, not added", "Not"),
    ("SuccessFully Updated, not added", "")])
def test_a_campaign_name_is_compared_whole_not_stripped_as_a_substring(message, campaign):
    body = json.dumps({"status": "success", "message": message})
    assert classify(200, body, {}, campaign).kind == "unrecognised"


@pytest.mark.parametrize("status", [400, 409, 422, 451])
def test_a_4xx_saying_success_is_unrecognised_not_rejected(status):
    assert classify(status, SUCCESS, {}, "Main").kind == "unrecognised"
    assert classify(status, '{"status": "success", "message": "Lead stored"}', {}, "Main").kind == "unrecognised"
    # a 4xx that says it failed is still a refusal in CloudAgent's words
    assert classify(status, '{"status": "error", "message": "bad lead"}', {}, "Main").kind == "rejected"


def test_undocumented_success_texts_end_to_end_are_failed_never_added(tmp_path, clock):
    answers = [{"phone": str(9100000000 + i), "body": json.dumps({"status": "SUCCESS", "message": m}),
                "store": True} for i, m in enumerate(UNDOCUMENTED_SUCCESSES)]
    answers.append({"phone": "9100000011", "status": 400, "body": SUCCESS, "store": True})
    with Sandbox(CONFIG, clock=clock, rate_limit=0, answers=answers) as sb:
        s = run(tmp_path, sb, phones(12), clock=clock)
    rows = by_phone(tmp_path)
    for i in range(len(UNDOCUMENTED_SUCCESSES)):
        row = rows[str(9100000000 + i)]
        assert row["status"] == "failed" and row["cause"] == "cloudagent.unrecognised", row
    assert rows["9100000011"]["status"] == "failed" and "HTTP 400" in rows["9100000011"]["message"]
    assert rows["9100000010"]["status"] == "added"
    assert s.exit_code == 1


# ---------------------------------------------------------------------------- 4. compressed answers

def test_a_compressed_answer_is_decoded_and_counts(tmp_path, clock):
    answers = [{"phone": "9100000000", "body": SUCCESS, "content_encoding": "gzip", "store": True},
               {"phone": "9100000001", "body": SUCCESS, "content_encoding": "deflate", "store": True},
               {"phone": "9100000002", "body": SUCCESS, "content_encoding": "br", "store": True}]
    with Sandbox(CONFIG, clock=clock, rate_limit=0, answers=answers) as sb:
        s = run(tmp_path, sb, phones(3), clock=clock)
    rows = by_phone(tmp_path)
    assert rows["9100000000"]["status"] == "added" and rows["9100000001"]["status"] == "added"
    # an encoding leadpush cannot read: unrecognised, never added, never resent
    assert rows["9100000002"]["status"] == "failed" and "'br'" in rows["9100000002"]["message"]
    assert statuses(s) == {"added": 2, "failed": 1}


def test_a_gzip_bomb_stops_at_the_size_cap(tmp_path, clock):
    # 8 MB of spaces compress to a few KB: decoded, they would pass the cap eight times over.
    answers = [{"phone": "9100000000", "body": SUCCESS, "pad_bytes": 8 * BODY_CAP, "content_encoding": "gzip"}]
    with Sandbox(CONFIG, clock=clock, rate_limit=0, answers=answers) as sb:
        run(tmp_path, sb, phones(1), clock=clock)
    row = by_phone(tmp_path)["9100000000"]
    assert row["status"] == "failed" and f"longer than {BODY_CAP} bytes" in row["message"]


def test_the_answer_is_asked_for_uncompressed():
    elsewhere = HeaderRecorder()
    with make_session(1) as session:
        exchange(session, elsewhere.url + ADD_PATH, b"{}", {"Content-Type": "application/json"}, 5.0)
    elsewhere.close()
    assert elsewhere.seen and all(h.get("Accept-Encoding") == "identity" for _, _, h in elsewhere.seen)


# ---------------------------------------------------------------------------- 5. urllib3 with read1

def test_urllib3_is_required_at_a_version_with_read1():
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if d.replace(" ", "").startswith("urllib3")]
    assert pins == ["urllib3>=2.2"]
    assert hasattr(urllib3.HTTPResponse, "read1")


# ---------------------------------------------------------------------------- 6. the deadline while connecting

def test_the_deadline_holds_when_it_passes_while_connecting(monkeypatch):
    # The whole answer takes 10 s (a byte every 50 ms); the connection takes 0.6 s; the deadline is 0.3 s.
    answers = [{"phone": "9100000001", "body": SUCCESS + " " * 200, "trickle_ms": 50, "times": 0}]
    connect = urllib3.connection.HTTPConnection.connect

    def slow_connect(self):
        time.sleep(0.6)  # a slow handshake that still completes (real time: the deadline is real time)
        return connect(self)

    with Sandbox(CONFIG, rate_limit=0, answers=answers) as sb, make_session(1, sb.base_url) as session:
        import requests
        token = requests.post(sb.base_url + "/ca_apis/CAToken/generateToken", headers={"apiKey": KEY},
                              json={"userName": "demo"}, timeout=5).json()["token"]
        monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", slow_connect)
        headers = {"Content-Type": "application/json", "apiKey": KEY, "Authorization": f"Bearer {token}"}
        payload = json.dumps({"phoneNumber": "9100000001", "campaignName": "Main", "userName": "demo"}).encode()
        start = time.monotonic()
        with pytest.raises(DeadlinePassed):
            exchange(session, sb.base_url + ADD_PATH, payload, headers, 0.3)
        took = time.monotonic() - start
    assert took < 1.5, took


# ---------------------------------------------------------------------------- 7, 8. secrets cut or escaped

LEAK_KEY = "acme-key/+&=<x>"


class TokenRefuser:
    """A token endpoint that refuses with an HTML page echoing the key just before the 200th character."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = ("<html>" + "x" * 182 + " key=" + self.headers.get("apiKey", "") + "</html>").encode()
                self.send_response(401)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _fragments(secret: str) -> list[str]:
    return [secret[:n] for n in range(7, len(secret) + 1)]


def test_a_key_straddling_the_cut_of_a_token_refusal_leaves_no_part(cli, tmp_path):
    p = write_csv(tmp_path / "leads.csv", phones(2))
    env = {"LEADPUSH_USERNAME": "acme", "LEADPUSH_API_KEY": LEAK_KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "c")}
    with TokenRefuser() as server:
        r = cli("upload", p, "--base-url", server.base_url, "--no-journal", env=env)
        a = cli("auth", "check", "--base-url", server.base_url, env=env)
    assert r.exit_code == 3 and a.exit_code == 3
    texts = {"upload": r.output, "auth": a.output}
    for f in tmp_path.glob("leads.*"):
        if f.suffix != ".csv" or "failures" in f.name or "results" in f.name:
            texts[f.name] = f.read_text(errors="replace")
    assert "key=***" in r.stderr or "key=" not in r.stderr
    for name, text in texts.items():
        for fragment in _fragments(LEAK_KEY):
            assert fragment not in text, (name, fragment)


def test_an_html_escaped_key_is_scrubbed_everywhere(cli, tmp_path):
    config = {"accounts": [{"user": "demo", "api_key": LEAK_KEY, "auth_mode": "TOKEN_AUTH",
                            "campaigns": [{"name": "Main", "type": "progressive"}]}]}
    answers = [{"phone": "9100000001", "body": '{"status": "FAIL", "message": "bad key {api_key_html}"}'},
               {"phone": "9100000002", "body": '{"status": "FAIL", "message": "bad key {api_key_ncr}"}'},
               {"phone": "9100000003", "content_type": "text/html", "status": 500,
                "body": "<p>key {api_key_html}</p>"}]
    p = write_csv(tmp_path / "leads.csv", phones(4))
    env = {"LEADPUSH_USERNAME": "demo", "LEADPUSH_API_KEY": LEAK_KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "c")}
    with Sandbox(config, rate_limit=0, answers=answers) as sb:
        r = cli("upload", p, "--base-url", sb.base_url, "--rate", "6000/min", "--no-check-duplicate",
                "--results", tmp_path / "out.jsonl", "--log-file", tmp_path / "run.log", "--no-journal", env=env)
    assert r.exit_code == 1, r.output
    texts = {"out": r.output}
    for name in ("out.jsonl", "leads.csv.failures.csv", "run.log"):
        texts[name] = (tmp_path / name).read_text()
    assert "bad key ***" in texts["out.jsonl"]
    spellings = ("acme-key/+&amp;=&lt;x&gt;", "acme-key&#47;&#43;&#38;&#61;&#60;x&#62;", "acme-key/+&=<x>")
    for name, text in texts.items():
        for spelling in spellings:
            assert spelling not in text, (name, spelling)
        assert "acme-key" not in text, name


# ---------------------------------------------------------------------------- 11. a token's huge exp

def test_auth_check_with_a_token_expiring_past_what_a_date_can_show(cli, tmp_path):
    env = {"LEADPUSH_USERNAME": "demo", "LEADPUSH_API_KEY": KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
    with Sandbox(CONFIG, rate_limit=0, token_ttl=1e20) as sb:
        r = cli("auth", "check", "--base-url", sb.base_url, env=env)
    assert r.exit_code == 0, r.output
    assert "cannot be shown as a date" in r.stdout and "Traceback" not in r.output


# ---------------------------------------------------------------------------- 15. sandbox settings in range

ACCOUNT = '[[accounts]]\nuser = "acme"\napi_key = "k"\nauth_mode = "TOKEN_AUTH"\n'


@pytest.mark.parametrize("extra,said", [
    ("[faults]\ngateway_rate = 2.0\n", "gateway_rate = 2.0 must be a share between 0 and 1"),
    ("[faults]\ngateway_rate = -0.1\n", "gateway_rate"),
    ("[faults]\ngateway_status = 99\n", "gateway_status"),
    ("[faults]\nredirect_status = 200\nredirect_to = \"http://127.0.0.2\"\n", "redirect_status"),
    ("[faults]\nretry_after = \"5\\r\\nX-Evil: 1\"\n", "retry_after"),
    ('[[answers]]\nphone = "1"\ntrickle_ms = -5\n', "trickle_ms must be between 0 and 60000"),
    ('[[answers]]\nphone = "1"\npad_bytes = -3\n', "pad_bytes"),
    ('[[answers]]\nphone = "1"\nstatus = 99\n', "status must be an HTTP status"),
    ('[[answers]]\nphone = "1"\ntimes = -1\n', "times"),
    ('[[answers]]\nphone = "1"\nheaders = { "X-A" = "a\\nb" }\n', "cannot go in an HTTP header"),
    ('[[answers]]\nphone = "1"\nheaders = { "X A" = "a" }\n', "header name"),
    ('[[answers]]\nphone = "1"\ncontent_encoding = "zip"\n', "content_encoding"),
])
def test_sandbox_settings_out_of_range_are_refused_in_one_line(cli, tmp_path, extra, said):
    path = tmp_path / "sb.toml"
    path.write_text(ACCOUNT + extra)
    r = cli("sandbox", "--config", path, "--port", "0")
    assert r.exit_code == 2, r.output
    assert said in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_leads_in_helper_still_sees_stored_leads(tmp_path, clock):
    # the gzip answer that stores does store (the sandbox's content_encoding changes only the bytes sent)
    answers = [{"phone": "9100000000", "body": SUCCESS, "content_encoding": "gzip", "store": True}]
    with Sandbox(CONFIG, clock=clock, rate_limit=0, answers=answers) as sb:
        run(tmp_path, sb, phones(1), clock=clock)
        assert leads_in(sb, "Main") == ["9100000000"]
    assert read_csv(tmp_path / "results.csv")[0]["status"] == "added"
