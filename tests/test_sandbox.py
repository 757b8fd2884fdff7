"""The sandbox answers as CloudAgent documents, over real HTTP on 127.0.0.1: one case per line of the vendor's table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import requests

from leadpush.outcomes import ConfigError
from leadpush.sandbox import ADD_PATH, TOKEN_PATH, Sandbox, SandboxState, load_config
from tests.conftest import FakeClock

CONFIG = {"accounts": [
    {"user": "demo", "api_key": "demo-key", "auth_mode": "TOKEN_AUTH", "campaigns": [
        {"name": "Progressive", "type": "progressive", "started": False, "numbers": ["9999999999"]},
        {"name": "Running", "type": "ivr", "started": True},
        {"name": "Agents", "type": "agent-wise", "agents": ["a1"]},
        {"name": "Skills", "type": "skill-wise", "skills": ["sales"], "numbers": ["8888888888"]},
        {"name": "Inbound", "type": "inbound"},
    ]},
    {"user": "basic", "api_key": "basic-key", "auth_mode": "BASIC_AUTH", "campaigns": []},
    {"user": "none", "api_key": "none-key", "auth_mode": "NONE", "campaigns": []},
]}


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sb(clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0) as server:
        yield server


def token_for(sb, user="demo", key="demo-key"):
    r = requests.post(sb.base_url + TOKEN_PATH, headers={"apiKey": key}, json={"userName": user})
    return r.json()["token"]


def add(sb, body, *, token="auto", key="demo-key", user="demo"):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["apiKey"] = key
    if token == "auto":
        token = token_for(sb, user if user else "demo", key if key else "demo-key")
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if user is not None:
        body = {"userName": user, **body}
    return requests.post(sb.base_url + ADD_PATH, headers=headers, data=json.dumps(body))


P = {"campaignName": "Progressive", "phoneNumber": "9876543210"}

# (case in the vendor's table, docs/cloudagent.md; request body, options, expected status code, expected exact body)
SEED = [
    ("token empty/null", P, {"token": None}, 200,
     '{"status": "false", "message": "Token Should Not be Null or Empty.", "data": null}'),
    ("setting BasicAuth", P, {"user": "basic", "key": "basic-key"}, 200,
     '{"status": "false", "message": "Invalid action.", "data": null}'),
    ("setting NONE", P, {"user": "none", "key": "none-key"}, 200,
     '{"status": "false", "message": "Invalid action.", "data": null}'),
    ("missing api_key", P, {"key": None, "token": "x"}, 200,
     '{"status": "false", "message": "Api Key Should Not be Null or Empty.", "data": null}'),
    ("invalid api_key", P, {"key": "wrong", "token": "x"}, 200,
     '{"status": "false", "message": "Invalid User Details", "data": null}'),
    ("empty api_key value", P, {"key": "", "token": "x"}, 200,
     '{"status": "false", "message": "Invalid User Details", "data": null}'),
    ("campaign name key missing", {"phoneNumber": "9876543210"}, {}, 200,
     '{"status": "Error", "message": "Please provide campaign details"}'),
    ("campaign name value empty", {"campaignName": "", "phoneNumber": "9876543210"}, {}, 200,
     '{"status": "Error", "message": "Please provide campaign details"}'),
    ("invalid campaign name key", {"campaign": "Progressive", "phoneNumber": "9876543210"}, {}, 200,
     '{"status": "Error", "message": "Please provide campaign details"}'),
    ("invalid campaign name value", {"campaignName": "Nope", "phoneNumber": "9876543210"}, {}, 200,
     '{"status": "FAIL", "message": "No User Found or Campaign Name is Invalid"}'),
    ("phone key missing", {"campaignName": "Progressive"}, {}, 200,
     '{"status": "error", "message": "phone number should be numeric and must be between 3 to 16 digits and allows prefix +"}'),
    ("invalid phone key", {"campaignName": "Progressive", "phone": "9876543210"}, {}, 200,
     '{"status": "error", "message": "phone number should be numeric and must be between 3 to 16 digits and allows prefix +"}'),
    ("invalid phone value", {"campaignName": "Progressive", "phoneNumber": "98-76"}, {}, 200,
     '{"status": "error", "message": "phone number should be numeric and must be between 3 to 16 digits and allows prefix +"}'),
    ("empty phone value", {"campaignName": "Progressive", "phoneNumber": ""}, {}, 200,
     '{"status": "error", "message": "phone number should be numeric and must be between 3 to 16 digits and allows prefix +"}'),
    ("valid phone, campaign running", {"campaignName": "Running", "phoneNumber": "9876543210", "action": "START"}, {}, 200,
     '{"status": "Success", "message": "Campaign Running Is Already Started"}'),
    ("action invalid", {**P, "action": "JUMP"}, {}, 200,
     '{"status": "Success", "message": "Please pass the valid Campaign action SuccessFully Updated Progressive Campaign Data"}'),
    ("action blank", {**P, "action": ""}, {}, 200,
     '{"status": "Success", "message": "Please pass the valid Campaign action SuccessFully Updated Progressive Campaign Data"}'),
    ("action stop", {**P, "action": "STOP"}, {}, 200,
     '{"status": "Success", "message": "SuccessFully Updated Progressive Campaign Stoped"}'),
    ("action start", {**P, "action": "START"}, {}, 200,
     '{"status": "SUCCESS", "message": "SuccessFully Updated, Progressive was started"}'),
    ("number exists, checkDuplicate true", {**P, "phoneNumber": "9999999999", "checkDuplicate": "true"}, {}, 200,
     '{"status": "SUCCESS", "message": "Number Already Exist"}'),
    ("number exists, checkDuplicate false", {**P, "phoneNumber": "9999999999", "checkDuplicate": "FALSE"}, {}, 200,
     '{"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}'),
    ("number exists, checkDuplicate invalid", {**P, "phoneNumber": "9999999999", "checkDuplicate": "maybe"}, {}, 200,
     '{"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}'),
    ("username key missing", P, {"user": None, "token": "x"}, 200,
     '{"status": "false", "message": "Username Should Not be Null or Empty.", "data": null}'),
    ("username empty", P, {"user": "", "token": "x"}, 200,
     '{"status": "false", "message": "Username Should Not be Null or Empty.", "data": null}'),
    ("username invalid", P, {"user": "nobody", "token": "x"}, 200,
     '{"status": "false", "message": "Invalid User Details", "data": null}'),
    ("priority key missing", P, {}, 200, '{"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}'),
    ("priority value invalid (accepted, as documented)", {**P, "priority": "abc"}, {}, 200,
     '{"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}'),
    ("priority value valid", {**P, "priority": "5"}, {}, 200,
     '{"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}'),
    ("priority value missing", {**P, "priority": ""}, {}, 200,
     '{"status": "Error", "message": "The priority value must be numeric and range from 0 to 99."}'),
    ("expiry key missing / value empty", {**P, "expiryDate": ""}, {}, 200,
     '{"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}'),
    ("expiry value invalid", {**P, "expiryDate": "25/12/2030"}, {}, 200,
     '{"status": "Error", "message": "Invalid date format. Please enter date in format yyyy-MM-dd"}'),
    ("expiry value valid", {**P, "expiryDate": "2030-12-25"}, {}, 200,
     '{"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}'),
    ("agent-wise, agentId missing", {"campaignName": "Agents", "phoneNumber": "9876543210"}, {}, 200,
     '"status": "FAIL", "message": "Agent Is Empty!"'),
    ("agent-wise, agentId empty", {"campaignName": "Agents", "phoneNumber": "9876543210", "agentId": ""}, {}, 200,
     '"status": "FAIL",\n"message": "Agent Is Empty!"'),
    ("agent-wise, agentId invalid", {"campaignName": "Agents", "phoneNumber": "9876543210", "agentId": "zz"}, {}, 200,
     '"status": "FAIL",\n"message": "Agent is not correctly mapped!"'),
    ("agent-wise, agentId valid", {"campaignName": "Agents", "phoneNumber": "9876543210", "agentId": "a1"}, {}, 200,
     '{"status": "SUCCESS", "message": "SuccessFully Updated"}'),
    ("skill-wise, skill missing", {"campaignName": "Skills", "phoneNumber": "9876543210"}, {}, 200,
     '"status": "FAIL",\n"message": "Please provide valid skill"'),
    ("skill-wise, skill empty", {"campaignName": "Skills", "phoneNumber": "9876543210", "skill": ""}, {}, 200,
     '"status": "FAIL",\n"message": "Please provide valid skill"'),
    ("skill-wise, skill invalid", {"campaignName": "Skills", "phoneNumber": "9876543210", "skill": "x"}, {}, 200,
     '"status": "FAIL",\n"message": "Please provide valid skill"'),
    ("skill-wise, skill valid", {"campaignName": "Skills", "phoneNumber": "9876543210", "skill": "sales"}, {}, 200,
     '{"status": "SUCCESS", "message": "SuccessFully Updated"}'),
    ("skill-wise, number exists", {"campaignName": "Skills", "phoneNumber": "8888888888", "skill": "sales",
                                   "checkDuplicate": "TRUE"}, {}, 200,
     '{"status": "Success", "message": "Number Already Existed"}'),
    ("non-mandatory mapped columns", {**P, "Name": "", "address": "x"}, {}, 200,
     '{"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}'),
    ("inbound campaign", {"campaignName": "Inbound", "phoneNumber": "9876543210"}, {}, 200,
     '{"status": "Fail", "message": "The selected campaign is not outbound"}'),
]


@pytest.mark.parametrize("case,body,options,status,expected", SEED, ids=[c[0] for c in SEED])
def test_seed_table(sb, case, body, options, status, expected):
    r = add(sb, body, **options)
    assert r.status_code == status
    assert r.text == expected


def test_token_expires_after_its_ttl(sb, clock):
    token = token_for(sb)
    claims = json.loads(__import__("base64").urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["exp"] - claims["iat"] == 3600
    assert add(sb, P, token=token).json()["status"] == "Success"
    clock.advance(3600)
    assert add(sb, P, token=token).text == '{"status": "false", "message": "Token Expired", "data": null}'


def test_a_new_token_kills_the_old_one(sb):
    old = token_for(sb)
    new = token_for(sb)
    assert add(sb, P, token=old).json()["message"] == "Token Expired"
    assert add(sb, {**P, "phoneNumber": "1234567"}, token=new).json()["status"] == "Success"


@pytest.mark.parametrize("bad", ["garbage", "a.b.c", "eyJ.eyJ.sig", "null"])
def test_forged_or_garbled_tokens_are_expired(sb, bad):
    token_for(sb)
    expected = "Token Should Not be Null or Empty." if bad == "null" else "Token Expired"
    assert add(sb, P, token=bad).json()["message"] == expected


def test_forged_signature_is_expired(sb):
    head, body, sig = token_for(sb).split(".")
    assert add(sb, P, token=f"{head}.{body}.{sig[:-4]}AAAA").json()["message"] == "Token Expired"


def test_token_errors_and_cap(sb, clock):
    url = sb.base_url + TOKEN_PATH
    assert requests.post(url, headers={"apiKey": "demo-key"}, json={}).text == \
        '{"status": "false", "message": "UserName is null", "data": null}'
    assert requests.post(url, headers={"apiKey": "bad"}, json={"userName": "demo"}).text == \
        '{"status": "false", "message": "Invalid userName or apiKey", "data": null}'
    for _ in range(10):
        assert "token" in requests.post(url, headers={"apiKey": "demo-key"}, json={"userName": "demo"}).json()
    capped = requests.post(url, headers={"apiKey": "demo-key"}, json={"userName": "demo"}).json()
    assert capped["status"] == "false" and "at most 10 tokens per hour" in capped["message"]
    clock.advance(3600)  # a rolling hour
    assert "token" in requests.post(url, headers={"apiKey": "demo-key"}, json={"userName": "demo"}).json()
    assert sb.state.stats_view()["tokens_issued"] == 11


def test_rate_limit_answers_429_with_retry_after(clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=3) as sb:
        token = token_for(sb)
        codes = [add(sb, {**P, "phoneNumber": f"12345{i}"}, token=token).status_code for i in range(3)]
        clock.advance(20)
        r = add(sb, P, token=token)
        assert codes == [200, 200, 200] and r.status_code == 429
        assert r.headers["Retry-After"] == "40" and "Too Many Requests" in r.text
        clock.advance(40)
        assert add(sb, P, token=token).status_code == 200
        stats = sb.state.stats_view()
        assert stats["requests"]["AddCampaignData"]["http-429"] == 1
        assert stats["busiest_60s"] == 4 and stats["busiest_1s"] == 3


def test_fail_rate_503_stores_nothing(clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0, fail_rate=1.0) as sb:
        r = add(sb, P)
        assert r.status_code == 503 and r.headers["Content-Type"] == "text/html" and "<html>" in r.text
        assert sb.state.leads_view()["accounts"]["demo"]["campaigns"]["Progressive"]["leads"][1:] == []


def test_drop_rate_stores_then_closes_without_answer(clock):
    with Sandbox(CONFIG, clock=clock, rate_limit=0, drop_rate=1.0) as sb:
        token = token_for(sb)
        with pytest.raises(requests.ConnectionError):
            add(sb, P, token=token)
        leads = sb.state.leads_view()["accounts"]["demo"]["campaigns"]["Progressive"]["leads"]
        assert [lead["phoneNumber"] for lead in leads] == ["9999999999", "9876543210"]


def test_faults_are_reproducible_with_a_seed(clock):
    def run():
        with Sandbox(CONFIG, clock=clock, rate_limit=0, fail_rate=0.5, seed=42) as sb:
            token = token_for(sb)
            return [add(sb, {**P, "phoneNumber": f"55500{i}"}, token=token).status_code for i in range(20)]
    first, second = run(), run()
    assert first == second and {200, 503} == set(first)


def test_latency_and_jitter_use_the_injected_sleep(clock):
    waits = []
    with Sandbox(CONFIG, clock=clock, rate_limit=0, latency_ms=250, jitter_ms=100, seed=1,
                 sleep=waits.append) as sb:
        token = token_for(sb)
        for i in range(20):
            add(sb, {**P, "phoneNumber": f"55500{i}"}, token=token)
    assert len(waits) == 20 and all(0.15 <= w <= 0.35 for w in waits) and len(set(waits)) > 10


def test_demo_account_has_one_campaign_of_each_kind():
    with Sandbox() as sb:
        view = requests.get(sb.base_url + "/sandbox/leads").json()
        kinds = {c["type"] for c in view["accounts"]["demo"]["campaigns"].values()}
        assert {"progressive", "ivr", "agent-wise", "skill-wise", "inbound"} <= kinds
        r = add(sb, {"campaignName": "demo_progressive", "phoneNumber": "9876543210"})
        assert r.json()["status"] == "Success"


def test_leads_stats_and_reset_endpoints(sb):
    add(sb, {**P, "Name": "Asha", "address": "Pune"})
    leads = requests.get(sb.base_url + "/sandbox/leads").json()["accounts"]["demo"]["campaigns"]["Progressive"]
    assert leads["leads"][-1]["Name"] == "Asha" and leads["leads"][-1]["address"] == "Pune"
    assert "userName" not in leads["leads"][-1]
    stats = requests.get(sb.base_url + "/sandbox/stats").json()
    assert stats["requests"]["AddCampaignData"] == {"added": 1} and stats["tokens_issued"] == 1
    assert requests.post(sb.base_url + "/sandbox/reset").json() == {"status": "reset"}
    assert requests.get(sb.base_url + "/sandbox/stats").json()["tokens_issued"] == 0
    assert requests.get(sb.base_url + ADD_PATH).status_code == 405


def test_config_file(tmp_path):
    p = tmp_path / "sandbox.toml"
    p.write_text('[[accounts]]\nuser = "acme"\napi_key = "k"\n[[accounts.campaigns]]\n'
                 'name = "Leads"\ntype = "predictive"\nnumbers = ["1234567"]\n')
    with Sandbox(load_config(p), rate_limit=0) as sb:
        assert add(sb, {"campaignName": "Leads", "phoneNumber": "1234567", "checkDuplicate": "TRUE"},
                   user="acme", key="k").json()["message"] == "Number Already Exist"
    p.write_text("[[accounts]]\nuser = 'x'\n")
    with pytest.raises(ConfigError, match="every account needs user and api_key"):
        SandboxState(load_config(p))
    p.write_text("not toml [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_cli_sandbox_serves_and_stops_cleanly(stop_signal):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "leadpush", "sandbox", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()
        assert first.startswith("CloudAgent sandbox listening on http://127.0.0.1:")
        base = first.split()[-1]
        assert "demo-key" in proc.stdout.readline()
        r = requests.post(base + TOKEN_PATH, headers={"apiKey": "demo-key"}, json={"userName": "demo"})
        token = r.json()["token"]
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "generateToken userName=demo -> 200 {token issued}" in err
        assert token not in err and token not in out and "Sandbox stopped." in err
    finally:
        proc.kill()
