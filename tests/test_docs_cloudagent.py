"""docs/cloudagent.md and the sandbox agree: every documented answer is one the sandbox sends, and back.

The answers are collected from a real sandbox over HTTP on 127.0.0.1, one request per documented
case, and compared with the tables of docs/cloudagent.md as parsed from the Markdown.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import requests

from leadpush import sandbox as sandbox_module
from leadpush.cloudagent import classify, parse_answer
from leadpush.sandbox import ADD_PATH, TOKEN_PATH, Sandbox
from tests.conftest import FakeClock

DOC = Path(__file__).resolve().parent.parent / "docs" / "cloudagent.md"
TEXT = DOC.read_text(encoding="utf-8")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table_after(heading: str) -> list[dict[str, str]]:
    """The first Markdown table after `heading`, as one dict per row keyed by the header cells."""
    lines = TEXT.splitlines()
    assert heading in lines, f"{DOC.name} has no heading {heading!r}"
    i = lines.index(heading) + 1
    while not lines[i].startswith("|"):
        i += 1
    header = _cells(lines[i])
    rows = []
    for line in lines[i + 2:]:  # past the |---| line
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, _cells(line), strict=True)))
    return rows


def code(cell: str) -> str | None:
    """The text of a cell that is one code span (`...`), else None."""
    m = re.fullmatch(r"`([^`]+)`", cell)
    return m[1] if m else None


def template(message: str) -> re.Pattern[str]:
    """A documented message as a pattern: `<campaign>` and the like stand for any text."""
    return re.compile(".+".join(re.escape(part) for part in re.split(r"<[^<>]+>", message)))


ADD_ANSWERS = table_after("### Add Campaign Data answers")
TOKEN_ANSWERS = [r for r in table_after("### Generate Token answers") if code(r["`status` as sent"])]
BRACELESS = table_after("### Bodies without braces")


# ---------------------------------------------------------------------------- what the sandbox sends

CONFIG = {"accounts": [
    {"user": "demo", "api_key": "demo-key", "auth_mode": "TOKEN_AUTH", "campaigns": [
        {"name": "Stopped", "type": "progressive", "started": False, "numbers": ["9999999999"]},
        {"name": "Running", "type": "progressive", "started": True},
        {"name": "Agents", "type": "agent-wise", "agents": ["a1"]},
        {"name": "Skills", "type": "skill-wise", "skills": ["sales"], "numbers": ["8888888888"]},
        {"name": "Inbound", "type": "inbound"},
    ]},
    {"user": "basic", "api_key": "basic-key", "auth_mode": "BASIC_AUTH", "campaigns": []},
]}
LEAD = {"campaignName": "Running", "phoneNumber": "9876543210"}

# One request per case of the vendor's table: (body, apiKey header, token, userName).
LIVE = "live"
CASES = [
    (LEAD, "demo-key", None, "demo"),
    (LEAD, "basic-key", LIVE, "basic"),
    (LEAD, None, LIVE, "demo"),
    (LEAD, "wrong", LIVE, "demo"),
    (LEAD, "demo-key", LIVE, None),
    ({"phoneNumber": "9876543210"}, "demo-key", LIVE, "demo"),
    ({**LEAD, "campaignName": "Nope"}, "demo-key", LIVE, "demo"),
    ({**LEAD, "campaignName": "Inbound"}, "demo-key", LIVE, "demo"),
    ({**LEAD, "phoneNumber": "98-76"}, "demo-key", LIVE, "demo"),
    ({**LEAD, "priority": ""}, "demo-key", LIVE, "demo"),
    ({**LEAD, "expiryDate": "25/12/2030"}, "demo-key", LIVE, "demo"),
    ({**LEAD, "campaignName": "Agents"}, "demo-key", LIVE, "demo"),
    ({**LEAD, "campaignName": "Agents", "agentId": ""}, "demo-key", LIVE, "demo"),
    ({**LEAD, "campaignName": "Agents", "agentId": "zz"}, "demo-key", LIVE, "demo"),
    ({**LEAD, "campaignName": "Agents", "agentId": "a1"}, "demo-key", LIVE, "demo"),
    ({**LEAD, "campaignName": "Skills"}, "demo-key", LIVE, "demo"),
    ({"campaignName": "Skills", "phoneNumber": "8888888888", "skill": "sales", "checkDuplicate": "TRUE"},
     "demo-key", LIVE, "demo"),
    ({"campaignName": "Stopped", "phoneNumber": "9999999999", "checkDuplicate": "TRUE"}, "demo-key", LIVE, "demo"),
    (LEAD, "demo-key", LIVE, "demo"),
    ({**LEAD, "action": "START"}, "demo-key", LIVE, "demo"),
    ({**LEAD, "campaignName": "Stopped", "action": "JUMP"}, "demo-key", LIVE, "demo"),
    ({**LEAD, "campaignName": "Stopped", "action": "STOP"}, "demo-key", LIVE, "demo"),
    ({**LEAD, "campaignName": "Stopped", "action": "START"}, "demo-key", LIVE, "demo"),
]


def _token(sb: Sandbox, user: str = "demo", key: str = "demo-key") -> requests.Response:
    return requests.post(sb.base_url + TOKEN_PATH, headers={"apiKey": key}, json={"userName": user}, timeout=10)


@pytest.fixture(scope="module")
def sent() -> dict[str, list[tuple[int, bytes]]]:
    """(HTTP status, body) of every answer the sandbox gave to the cases, by endpoint."""
    add: list[tuple[int, bytes]] = []
    token: list[tuple[int, bytes]] = []
    with Sandbox(CONFIG, clock=FakeClock(), rate_limit=0, token_cap=3) as sb:
        old = _token(sb).json()["token"]
        live = _token(sb).json()["token"]  # makes `old` invalid
        basic = _token(sb, "basic", "basic-key").json()["token"]
        headers = {"Content-Type": "application/json", "apiKey": "demo-key", "Authorization": f"Bearer {old}"}
        r = requests.post(sb.base_url + ADD_PATH, headers=headers, data=json.dumps({**LEAD, "userName": "demo"}),
                          timeout=10)
        add.append((r.status_code, r.content))
        for body, key, tok, user in CASES:
            headers = {"Content-Type": "application/json"}
            if key is not None:
                headers["apiKey"] = key
            if tok is not None:
                headers["Authorization"] = f"Bearer {basic if user == 'basic' else live}"
            payload = body if user is None else {**body, "userName": user}
            r = requests.post(sb.base_url + ADD_PATH, headers=headers, data=json.dumps(payload), timeout=10)
            add.append((r.status_code, r.content))
        # Last, as a third token makes `live` invalid; the fourth is over the cap of 3.
        for r in (_token(sb, "", "demo-key"), _token(sb, "demo", "wrong"), _token(sb), _token(sb)):
            token.append((r.status_code, r.content))
    return {"add": add, "token": token}


def _matching(answers: list[tuple[int, bytes]], http: int, status: str, message: str) -> list[bytes]:
    pattern = template(message)
    found = []
    for code_, raw in answers:
        body = parse_answer(raw.decode())
        if (code_ == http and body is not None and body.get("status") == status
                and pattern.fullmatch(str(body.get("message")))):
            found.append(raw)
    return found


# ---------------------------------------------------------------------------- the checks

def test_the_tables_are_found():
    assert len(ADD_ANSWERS) >= 20
    assert len(TOKEN_ANSWERS) == 2
    assert len(BRACELESS) == 4


@pytest.mark.parametrize("row", ADD_ANSWERS, ids=[r["`message` as sent"] for r in ADD_ANSWERS])
def test_every_documented_add_answer_is_sent_by_the_sandbox(sent, row):
    status, message, verdict = code(row["`status` as sent"]), code(row["`message` as sent"]), code(
        row["leadpush verdict"])
    assert status and message and verdict, row
    http = int(row["HTTP"])
    found = _matching(sent["add"], http, status, message)
    assert found, f"the sandbox never answered HTTP {http} status {status!r} message {message!r}"
    braceless = row["body"] == "no braces"
    assert all(not raw.lstrip().startswith(b"{") for raw in found) if braceless else all(
        json.loads(raw) for raw in found)
    # ... and leadpush reads it as the table says.
    example = re.sub(r"<[^<>]+>", "X", message)
    assert classify(http, json.dumps({"status": status, "message": example}), {}).kind == verdict
    for raw in found:
        assert classify(http, raw.decode(), {}).kind == verdict


def test_every_add_answer_the_sandbox_sends_is_documented(sent):
    for http, raw in sent["add"]:
        body = parse_answer(raw.decode())
        assert body is not None, raw
        assert any(http == int(r["HTTP"]) and body["status"] == code(r["`status` as sent"])
                   and template(code(r["`message` as sent"]) or "").fullmatch(body["message"])
                   for r in ADD_ANSWERS), f"undocumented answer: HTTP {http} {raw!r}"


@pytest.mark.parametrize("row", TOKEN_ANSWERS, ids=[r["`message` as sent"] for r in TOKEN_ANSWERS])
def test_every_documented_token_answer_is_sent_by_the_sandbox(sent, row):
    status, message = code(row["`status` as sent"]), code(row["`message` as sent"])
    assert status and message
    assert _matching(sent["token"], int(row["HTTP"]), status, message)


def test_brace_less_bodies_are_byte_for_byte_the_sandboxs():
    documented = {ast.literal_eval(code(r["body as sent"]) or "") for r in BRACELESS}
    constants = {v for v in vars(sandbox_module).values()
                 if isinstance(v, bytes) and parse_answer(v.decode()) is not None}
    assert documented == constants


def test_brace_less_bodies_are_the_ones_sent(sent):
    raw_sent = {raw for _, raw in sent["add"]}
    for r in BRACELESS:
        assert ast.literal_eval(code(r["body as sent"]) or "") in raw_sent


def test_every_answer_the_sandbox_can_give_is_in_the_doc():
    """Including the ones no case above reaches (the sandbox's own choices for undocumented answers)."""
    for name, value in vars(sandbox_module).items():
        body = value if isinstance(value, dict) else (
            parse_answer(value.decode()) if isinstance(value, bytes) else None)
        if not body or "message" not in body or not isinstance(body["message"], str):
            continue
        message = re.sub(r"\{(\w+)\}", r"<\1>", body["message"])
        assert message in TEXT, f"sandbox.{name} ({message!r}) is not in {DOC.name}"
