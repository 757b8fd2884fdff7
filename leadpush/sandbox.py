"""A faithful local CloudAgent: the token and Add Campaign Data APIs over HTTP, for trying leadpush and for tests.

Every answer below is one the vendor documents (docs/cloudagent.md); where the vendor is silent
or contradicts itself, the choice made is written in docs/sandbox.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import hmac
import html
import json
import math
import random
import re
import sys
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .outcomes import ConfigError
from .settings import load_toml

TOKEN_PATH = "/ca_apis/CAToken/generateToken"
ADD_PATH = "/ca_apis/AddCampaignData"
DELETE_PATH = "/ca_apis/deleteCampaignData"
DEMO_USER = "demo"
DEMO_KEY = "demo-key"
CAMPAIGN_TYPES = ("progressive", "predictive", "preview", "ivr", "agent-wise", "skill-wise", "inbound")
AUTH_MODES = ("TOKEN_AUTH", "BASIC_AUTH", "NONE")

DEMO_CONFIG: dict[str, Any] = {"accounts": [{
    "user": DEMO_USER, "api_key": DEMO_KEY, "auth_mode": "TOKEN_AUTH",
    "campaigns": [
        {"name": "demo_progressive", "type": "progressive", "started": True},
        {"name": "demo_ivr", "type": "ivr", "started": False},
        {"name": "demo_predictive", "type": "predictive", "started": True},
        {"name": "demo_agentwise", "type": "agent-wise", "started": True, "agents": ["agent_asha", "agent_ravi"]},
        {"name": "demo_skillwise", "type": "skill-wise", "started": True, "skills": ["sales", "support"]},
        {"name": "demo_inbound", "type": "inbound"},
    ],
}]}

# CloudAgent's rule as its message states it: numeric, 3 to 16 digits, an optional leading +.
# ASCII digits only and nothing after them (fullmatch: `$` would let a trailing line break
# through), so that the sandbox is never more lenient than CloudAgent.
_PHONE = re.compile(r"\+?[0-9]{3,16}")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?: \d{2}:\d{2}:\d{2})?$")

# The vendor's bodies, as documented. The brace-less ones are byte for byte as the vendor's page shows them.
def _false(message: str) -> dict[str, Any]:
    return {"status": "false", "message": message, "data": None}


TOKEN_EXPIRED = _false("Token Expired")
TOKEN_EMPTY = _false("Token Should Not be Null or Empty.")
INVALID_ACTION = _false("Invalid action.")
API_KEY_EMPTY = _false("Api Key Should Not be Null or Empty.")
INVALID_USER = _false("Invalid User Details")
USERNAME_EMPTY = _false("Username Should Not be Null or Empty.")
NO_CAMPAIGN = {"status": "Error", "message": "Please provide campaign details"}
UNKNOWN_CAMPAIGN = {"status": "FAIL", "message": "No User Found or Campaign Name is Invalid"}
NOT_OUTBOUND = {"status": "Fail", "message": "The selected campaign is not outbound"}
BAD_PHONE = {"status": "error",
             "message": "phone number should be numeric and must be between 3 to 16 digits and allows prefix +"}
BAD_PRIORITY = {"status": "Error", "message": "The priority value must be numeric and range from 0 to 99."}
BAD_DATE = {"status": "Error", "message": "Invalid date format. Please enter date in format yyyy-MM-dd"}
AGENT_MISSING = b'"status": "FAIL", "message": "Agent Is Empty!"'
AGENT_EMPTY = b'"status": "FAIL",\n"message": "Agent Is Empty!"'
AGENT_UNKNOWN = b'"status": "FAIL",\n"message": "Agent is not correctly mapped!"'
SKILL_INVALID = b'"status": "FAIL",\n"message": "Please provide valid skill"'
DND_NUMBER = {"status": "FAIL", "message": "PhoneNumber Added is a DND Number"}  # the legacy APIs' answer
NUMBER_EXISTS = {"status": "SUCCESS", "message": "Number Already Exist"}
NUMBER_EXISTED = {"status": "Success", "message": "Number Already Existed"}
# Delete Campaign Data: the messages are the vendor's; the status values are not documented (a choice).
DELETED = {"status": "Success", "message": "Deleted Successfully"}
DELETE_NO_CAMPAIGN = {"status": "Error", "message": "Campaign should not be null are empty"}
DELETE_BAD_CAMPAIGN = {"status": "Error", "message": "Passed campaign are invalid"}
DELETE_NO_PHONE = {"status": "Error", "message": "PhoneNumber should not be null are empty"}
DELETE_NO_RECORD = {"status": "Error", "message": "No Record Found"}
TOKEN_USER_NULL = _false("UserName is null")
TOKEN_BAD_LOGIN = _false("Invalid userName or apiKey")
# Not documented by the vendor (the cap is, its answer is not): the sandbox's choice.
TOKEN_CAP = _false("Token generation limit exceeded: at most {cap} tokens per hour.")
HTML_503 = (b"<html><head><title>503 Service Unavailable</title></head>"
            b"<body><h1>Service Unavailable</h1></body></html>")
HTML_429 = (b"<html><head><title>429 Too Many Requests</title></head>"
            b"<body><h1>Too Many Requests</h1></body></html>")
HTML_GATEWAY = b"<html><head><title>%d Gateway Error</title></head><body><h1>Gateway Error</h1></body></html>"
# Faults a config's [faults] table may set (the keyword arguments of SandboxState of the same names).
FAULTS: dict[str, type | tuple[type, ...]] = {
    "gateway_rate": (int, float), "gateway_status": int, "redirect_status": int, "redirect_to": str,
    "token_expired_status": int, "retry_after": str,
}
# Fields of one scripted answer ([[answers]] in a config, or `answers=` in Python).
ANSWER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "phone": str, "status": int, "body": str, "content_type": str, "headers": dict, "store": bool,
    "drop": bool, "trickle_ms": (int, float), "trickle_headers": bool, "pad_bytes": int, "length": bool,
    "times": int, "api": str, "content_encoding": str,
}
_CONTENT_ENCODINGS = ("gzip", "deflate", "br")  # br: the header only (the body as it is), for a client to refuse
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass
class Answer:
    """One HTTP answer; `drop` closes the connection without sending it (after storing)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    outcome: str = ""  # for stats and the log
    trickle_ms: float = 0.0  # the body goes out one byte at a time, this long apart
    trickle_headers: bool = False  # ... and the status line and headers too
    length: bool = True  # send Content-Length; without it the body ends when the connection closes

    @classmethod
    def json(cls, obj: dict[str, Any], outcome: str) -> Answer:
        return cls(body=json.dumps(obj).encode(), outcome=outcome)

    @classmethod
    def raw(cls, body: bytes, outcome: str) -> Answer:
        return cls(body=body, outcome=outcome)


@dataclass
class Campaign:
    name: str
    type: str
    started: bool = False
    agents: set[str] = field(default_factory=set)
    skills: set[str] = field(default_factory=set)
    leads: list[dict[str, Any]] = field(default_factory=list)
    numbers: Counter[str] = field(default_factory=Counter)
    deletions: Counter[str] = field(default_factory=Counter)  # per number: requests that removed leads

    def delete(self, phone: str) -> int:
        """Remove every lead with this number; how many there were."""
        kept = [lead for lead in self.leads if str(lead.get("phoneNumber")) != phone]
        removed = len(self.leads) - len(kept)
        if removed:
            self.leads = kept
            del self.numbers[phone]
            self.deletions[phone] += 1
        return removed

    def store(self, lead: dict[str, Any]) -> None:
        self.leads.append(lead)
        self.numbers[str(lead.get("phoneNumber"))] += 1


@dataclass
class Account:
    user: str
    api_key: str
    auth_mode: str
    campaigns: dict[str, Campaign]
    token_id: int | None = None  # the one live token; a newer one kills the older
    dnd: set[str] = field(default_factory=set)  # numbers answered "PhoneNumber Added is a DND Number"
    generations: deque[float] = field(default_factory=deque)


def load_config(path: str | Path | None) -> dict[str, Any]:
    return DEMO_CONFIG if path is None else load_toml(path)


def _accounts(config: dict[str, Any], source: str) -> dict[str, Account]:
    accounts: dict[str, Account] = {}
    entries = config.get("accounts")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: needs at least one [[accounts]] table")
    for i, a in enumerate(entries, start=1):
        try:
            _add_account(accounts, a, source)
        except (TypeError, AttributeError, ValueError) as e:
            # a list where a table belongs, a number where a list does: one line, not a traceback
            raise ConfigError(f"{source}: account {i}: a value has the wrong type ({e})") from None
    return accounts


def _add_account(accounts: dict[str, Account], a: Any, source: str) -> None:
    try:
        user, key = str(a["user"]), str(a["api_key"])
    except (KeyError, TypeError):
        raise ConfigError(f"{source}: every account needs user and api_key") from None
    mode = str(a.get("auth_mode", "TOKEN_AUTH")).upper()
    if mode not in AUTH_MODES:
        raise ConfigError(f"{source}: account {user!r}: auth_mode must be one of {', '.join(AUTH_MODES)}")
    campaigns: dict[str, Campaign] = {}
    for c in a.get("campaigns", []):
        kind = str(c.get("type", "progressive")).lower()
        if kind not in CAMPAIGN_TYPES or "name" not in c:
            raise ConfigError(f"{source}: account {user!r}: every campaign needs a name and a type, "
                              f"one of {', '.join(CAMPAIGN_TYPES)}")
        camp = Campaign(name=str(c["name"]), type=kind, started=bool(c.get("started", False)),
                        agents=set(map(str, c.get("agents", []))), skills=set(map(str, c.get("skills", []))))
        for number in c.get("numbers", []):
            camp.store({"phoneNumber": str(number), "preexisting": True})
        campaigns[camp.name] = camp
    dnd = a.get("dnd_numbers", [])
    if not isinstance(dnd, list):
        raise ConfigError(f"{source}: account {user!r}: dnd_numbers must be a list of numbers")
    accounts[user] = Account(user=user, api_key=key, auth_mode=mode, campaigns=campaigns,
                             dnd={str(n).strip() for n in dnd})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SandboxState:
    """CloudAgent's behaviour, without HTTP: accounts, tokens, campaigns, limits, faults and stats."""

    def __init__(self, config: dict[str, Any] | None = None, *, source: str = "built-in demo",
                 token_ttl: float = 3600.0, token_cap: int = 10, rate_limit: int = 100,
                 latency_ms: float = 0.0, jitter_ms: float = 0.0, fail_rate: float = 0.0,
                 drop_rate: float = 0.0, seed: int | None = None,
                 clock: Callable[[], float] = time.time, gateway_rate: float | None = None,
                 gateway_status: int | None = None, redirect_status: int | None = None,
                 redirect_to: str | None = None, token_expired_status: int | None = None,
                 retry_after: str | None = None, answers: list[dict[str, Any]] | None = None) -> None:
        self.config = config or DEMO_CONFIG
        faults = _faults(self.config, source)
        given = {"gateway_rate": gateway_rate, "gateway_status": gateway_status, "redirect_status": redirect_status,
                 "redirect_to": redirect_to, "token_expired_status": token_expired_status,
                 "retry_after": retry_after}
        faults.update({k: v for k, v in given.items() if v is not None})
        self.gateway_rate = float(faults.get("gateway_rate", 0.0))
        self.gateway_status = int(faults.get("gateway_status", 504))
        self.redirect_status = int(faults.get("redirect_status", 0)) or None
        self.redirect_to = faults.get("redirect_to")
        if self.redirect_status and not self.redirect_to:
            raise ConfigError(f"{source}: redirect_status needs redirect_to (the address to send clients to)")
        self.token_expired_status = int(faults.get("token_expired_status", 200))
        self.retry_after = faults.get("retry_after")  # None: seconds; "date": an HTTP-date; else sent as is
        self.answers = _answers(self.config.get("answers", []) if answers is None else answers, source)
        self.source = source
        self.token_ttl = token_ttl
        self.token_cap = token_cap
        self.rate_limit = rate_limit
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.fail_rate = fail_rate
        self.drop_rate = drop_rate
        self.seed = seed
        self.clock = clock
        self._secret = hashlib.sha512(f"leadpush-sandbox-{seed}-{id(self)}".encode()).digest()
        self.lock = threading.Lock()
        _accounts(self.config, source)  # fail early on a bad config
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.accounts = _accounts(self.config, self.source)
            self.rng = random.Random(self.seed)
            self.token_serial = 0
            self.windows: dict[str, deque[float]] = {}
            self.stats: dict[str, Counter[str]] = {"generateToken": Counter(), "AddCampaignData": Counter(),
                                                  "deleteCampaignData": Counter()}
            self.tokens_issued = 0
            self._arrivals_1s: deque[float] = deque()
            self._arrivals_60s: deque[float] = deque()
            self.busiest_1s = 0
            self.busiest_60s = 0
            self.scripts: dict[str, deque[dict[str, Any]]] = {}
            for a in self.answers:
                self.scripts.setdefault(a["phone"], deque()).append(dict(a, left=a.get("times", 1)))

    # ------------------------------------------------------------------ tokens

    def _issue(self, account: Account, now: float) -> str:
        self.token_serial += 1
        account.token_id = self.token_serial
        exp = now + self.token_ttl
        payload = {"sub": account.user, "iat": _numeric(now), "exp": _numeric(exp), "jti": self.token_serial}
        head = _b64(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
        body = _b64(json.dumps(payload).encode())
        sig = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha512).digest()
        return f"{head}.{body}.{_b64(sig)}"

    def _token_ok(self, token: str, account: Account, now: float) -> bool:
        try:
            head, body, sig = token.split(".")
            expected = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha512).digest()
            if not hmac.compare_digest(expected, _unb64(sig)):
                return False
            claims = json.loads(_unb64(body))
        except (ValueError, TypeError):
            return False
        return (claims.get("sub") == account.user and claims.get("jti") == account.token_id
                and float(claims.get("exp", 0)) > now)

    def generate_token(self, headers: dict[str, str], raw: bytes) -> Answer:
        with self.lock:
            answer = self._generate_token(headers, raw)
            self.stats["generateToken"][answer.outcome] += 1
            return answer

    def _generate_token(self, headers: dict[str, str], raw: bytes) -> Answer:
        body = _json_body(raw)
        if body is None:
            return Answer(status=400, body=json.dumps(_false("Invalid request body")).encode(), outcome="bad-body")
        user = body.get("userName")
        if user is None or str(user).strip() == "":
            return Answer.json(TOKEN_USER_NULL, "user-null")
        account = self.accounts.get(str(user))
        if account is None or headers.get("apikey", "") != account.api_key:
            return Answer.json(TOKEN_BAD_LOGIN, "bad-login")
        now = self.clock()
        while account.generations and account.generations[0] <= now - 3600:
            account.generations.popleft()
        if self.token_cap and len(account.generations) >= self.token_cap:
            cap = dict(TOKEN_CAP, message=TOKEN_CAP["message"].format(cap=self.token_cap))
            return Answer.json(cap, "cap")
        account.generations.append(now)
        self.tokens_issued += 1
        return Answer.json({"token": self._issue(account, now), "message": ""}, "token")

    # ------------------------------------------------------------------ campaign data

    def add_campaign_data(self, headers: dict[str, str], raw: bytes) -> tuple[Answer, float]:
        """The answer, and how long to wait before giving it (latency)."""
        with self.lock:
            now = self.clock()
            self._count_arrival(now)
            answer = self._add(headers, raw, now)
            self.stats["AddCampaignData"][answer.outcome] += 1
            delay = 0.0
            if self.latency_ms or self.jitter_ms:
                delay = max(0.0, self.latency_ms + self.rng.uniform(-self.jitter_ms, self.jitter_ms)) / 1000
            return answer, delay

    def _count_arrival(self, now: float) -> None:
        for window, arrivals, attr in ((1.0, self._arrivals_1s, "busiest_1s"),
                                       (60.0, self._arrivals_60s, "busiest_60s")):
            arrivals.append(now)
            while arrivals[0] <= now - window:
                arrivals.popleft()
            setattr(self, attr, max(getattr(self, attr), len(arrivals)))

    def _rate_limited(self, key: str, now: float) -> Answer | None:
        if not self.rate_limit:
            return None
        window = self.windows.setdefault(key, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= self.rate_limit:
            retry_after = max(1, math.ceil(window[0] + 60 - now))
            if self.retry_after == "date":  # an HTTP-date is wall time, whatever clock the sandbox runs on
                header = formatdate(time.time() + retry_after, usegmt=True)
            else:
                header = self.retry_after or str(retry_after)
            return Answer(status=429, body=HTML_429, content_type="text/html",
                          headers={"Retry-After": header}, outcome="http-429")
        window.append(now)
        return None

    def _add(self, headers: dict[str, str], raw: bytes, now: float) -> Answer:
        api_key = headers.get("apikey", "").strip()
        limited = self._rate_limited(api_key or "-", now)
        if limited:
            return limited
        if self.fail_rate and self.rng.random() < self.fail_rate:
            return Answer(status=503, body=HTML_503, content_type="text/html", outcome="http-503")
        drop = bool(self.drop_rate) and self.rng.random() < self.drop_rate
        gateway = bool(self.gateway_rate) and self.rng.random() < self.gateway_rate
        answer = self._decide(headers, raw, api_key, now)
        if gateway:
            # The backend did its work (stored the lead, perhaps); the gateway answers an error.
            answer = Answer(status=self.gateway_status, body=HTML_GATEWAY % self.gateway_status,
                            content_type="text/html", outcome=f"http-{self.gateway_status}-after-{answer.outcome}")
        answer.drop = answer.drop or drop
        return answer

    def delete_campaign_data(self, headers: dict[str, str], raw: bytes) -> tuple[Answer, float]:
        """Delete Campaign Data: the same auth, rate limit, faults and latency as Add Campaign Data."""
        with self.lock:
            now = self.clock()
            api_key = headers.get("apikey", "").strip()
            answer = self._rate_limited(f"delete:{api_key or '-'}", now)
            if answer is None and self.fail_rate and self.rng.random() < self.fail_rate:
                answer = Answer(status=503, body=HTML_503, content_type="text/html", outcome="http-503")
            if answer is None:
                drop = bool(self.drop_rate) and self.rng.random() < self.drop_rate
                answer = self._delete(headers, raw, api_key, now)
                answer.drop = drop
            self.stats["deleteCampaignData"][answer.outcome] += 1
            delay = 0.0
            if self.latency_ms or self.jitter_ms:
                delay = max(0.0, self.latency_ms + self.rng.uniform(-self.jitter_ms, self.jitter_ms)) / 1000
            return answer, delay

    def _delete(self, headers: dict[str, str], raw: bytes, api_key: str, now: float) -> Answer:
        body = _json_body(raw)
        refused = self._refuse_account(headers, body, api_key, now)
        if refused is not None:
            return refused
        assert body is not None
        account = self.accounts[str(body["userName"])]
        name = body.get("campaignName")
        if name is None or str(name).strip() == "":
            return Answer.json(DELETE_NO_CAMPAIGN, "no-campaign")
        campaign = account.campaigns.get(str(name))
        if campaign is None:
            return Answer.json(DELETE_BAD_CAMPAIGN, "unknown-campaign")
        phone = body.get("phoneNumber")
        if phone is None or str(phone).strip() == "":
            return Answer.json(DELETE_NO_PHONE, "no-phone")
        script = self.scripts.get(str(phone).strip())
        if script and script[0].get("api") == "delete":
            return self._scripted(script, body, account, api_key, _bearer(headers), now)
        if not campaign.delete(str(phone).strip()):
            return Answer.json(DELETE_NO_RECORD, "no-record")
        return Answer.json(DELETED, "deleted")

    def _refuse_account(self, headers: dict[str, str], body: dict[str, Any] | None, api_key: str,
                        now: float) -> Answer | None:
        """The checks every token-auth API makes before looking at the request itself."""
        if body is None:
            return Answer(status=400, body=json.dumps(_false("Invalid request body")).encode(), outcome="bad-body")
        # As documented: a missing apiKey header has its own answer; an empty or wrong one
        # is "Invalid User Details".
        if "apikey" not in headers:
            return Answer.json(API_KEY_EMPTY, "api-key-missing")
        user = body.get("userName")
        if user is None or str(user).strip() == "":
            return Answer.json(USERNAME_EMPTY, "username-empty")
        account = self.accounts.get(str(user))
        if account is None or not api_key or account.api_key != api_key:
            return Answer.json(INVALID_USER, "invalid-user")
        if account.auth_mode != "TOKEN_AUTH":
            return Answer.json(INVALID_ACTION, "invalid-action")
        token = _bearer(headers)
        if not token or token.lower() in ("null", "undefined"):
            return Answer.json(TOKEN_EMPTY, "token-empty")
        if not self._token_ok(token, account, now):
            expired = Answer.json(TOKEN_EXPIRED, "token-expired")
            expired.status = self.token_expired_status
            return expired
        return None

    def _decide(self, headers: dict[str, str], raw: bytes, api_key: str, now: float) -> Answer:
        body = _json_body(raw)
        refused = self._refuse_account(headers, body, api_key, now)
        if refused is not None:
            return refused
        assert body is not None
        account = self.accounts[str(body["userName"])]
        script = self.scripts.get(str(body.get("phoneNumber") or ""))  # "": requests without a phone
        if script and script[0].get("api", "add") == "add":
            return self._scripted(script, body, account, api_key, _bearer(headers), now)
        name = body.get("campaignName")
        if name is None or str(name).strip() == "":
            return Answer.json(NO_CAMPAIGN, "no-campaign")
        campaign = account.campaigns.get(str(name))
        if campaign is None:
            return Answer.json(UNKNOWN_CAMPAIGN, "unknown-campaign")
        if campaign.type == "inbound":
            return Answer.json(NOT_OUTBOUND, "not-outbound")
        phone = body.get("phoneNumber")
        if phone is None or isinstance(phone, bool) or not _PHONE.fullmatch(str(phone)):
            return Answer.json(BAD_PHONE, "bad-phone")
        phone = str(phone)
        # As documented: only a priority key with an empty value is refused; any other value is
        # accepted (and an invalid one ignored).
        if "priority" in body and (body["priority"] is None or str(body["priority"]).strip() == ""):
            return Answer.json(BAD_PRIORITY, "bad-priority")
        expiry = body.get("expiryDate")
        if expiry not in (None, "") and not _valid_date(str(expiry)):
            return Answer.json(BAD_DATE, "bad-date")
        if campaign.type == "agent-wise":
            if "agentId" not in body:
                return Answer.raw(AGENT_MISSING, "agent-missing")
            agent = str(body["agentId"] or "").strip()
            if not agent:
                return Answer.raw(AGENT_EMPTY, "agent-empty")
            if agent not in campaign.agents:
                return Answer.raw(AGENT_UNKNOWN, "agent-unknown")
        if campaign.type == "skill-wise" and str(body.get("skill") or "").strip() not in campaign.skills:
            return Answer.raw(SKILL_INVALID, "skill-invalid")
        if phone in account.dnd:
            return Answer.json(DND_NUMBER, "dnd")
        if str(body.get("checkDuplicate", "")).strip().upper() == "TRUE" and campaign.numbers[phone]:
            return Answer.json(NUMBER_EXISTED if campaign.type == "skill-wise" else NUMBER_EXISTS, "exists")

        lead = {k: v for k, v in body.items() if k != "userName"}
        lead["received_at"] = now
        campaign.store(lead)
        return Answer.json(self._stored_message(campaign, body), "added")

    def _scripted(self, script: deque[dict[str, Any]], body: dict[str, Any], account: Account, api_key: str,
                  token: str, now: float) -> Answer:
        """The next configured answer for this phone; stores the lead first if it says so."""
        entry = script[0]
        if entry["left"] > 0:
            entry["left"] -= 1
            if entry["left"] == 0:
                script.popleft()
        campaign = account.campaigns.get(str(body.get("campaignName")))
        if entry.get("store") and campaign is not None and entry.get("api") == "delete":
            campaign.delete(str(body.get("phoneNumber")).strip())  # a delete's `store`: delete first
        elif entry.get("store") and campaign is not None:
            lead = {k: v for k, v in body.items() if k != "userName"}
            lead["received_at"] = now
            campaign.store(lead)
        text = (entry.get("body", "").replace("{api_key}", api_key)
                .replace("{api_key_json}", json.dumps(api_key)[1:-1].replace("/", "\\/"))
                .replace("{api_key_url}", quote(api_key, safe=""))
                .replace("{api_key_html}", html.escape(api_key))
                .replace("{api_key_ncr}", "".join(c if c.isalnum() else f"&#{ord(c)};" for c in api_key))
                .replace("{token}", token))
        status = int(entry.get("status", 200))
        data = text.encode() + b" " * int(entry.get("pad_bytes", 0))
        headers = {str(k): str(v) for k, v in entry.get("headers", {}).items()}
        encoding = entry.get("content_encoding")
        if encoding:
            headers["Content-Encoding"] = encoding
            if encoding == "gzip":
                data = gzip.compress(data, mtime=0)
            elif encoding == "deflate":
                data = zlib.compress(data)
        return Answer(status=status, body=data,
                      content_type=entry.get("content_type", "application/json"),
                      headers=headers,
                      drop=bool(entry.get("drop")), outcome=f"scripted-{status}",
                      trickle_ms=float(entry.get("trickle_ms", 0)), length=bool(entry.get("length", True)),
                      trickle_headers=bool(entry.get("trickle_headers", False)))

    @staticmethod
    def _stored_message(campaign: Campaign, body: dict[str, Any]) -> dict[str, Any]:
        kind = campaign.type.replace("-", " ").title().replace(" ", "")
        if "action" not in body or body["action"] is None:
            if campaign.type in ("agent-wise", "skill-wise"):
                return {"status": "SUCCESS", "message": "SuccessFully Updated"}
            return {"status": "Success", "message": f"SuccessFully Updated {campaign.name} Campaign"}
        action = str(body["action"]).strip().upper()
        if action == "START":
            if campaign.started:
                return {"status": "Success", "message": f"Campaign {campaign.name} Is Already Started"}
            campaign.started = True
            return {"status": "SUCCESS", "message": f"SuccessFully Updated, {campaign.name} was started"}
        if action == "STOP":
            campaign.started = False
            return {"status": "Success", "message": f"SuccessFully Updated {kind} Campaign Stoped"}
        return {"status": "Success",
                "message": f"Please pass the valid Campaign action SuccessFully Updated {campaign.name} Campaign Data"}

    # ------------------------------------------------------------------ looking inside

    def leads_view(self) -> dict[str, Any]:
        with self.lock:
            return {"accounts": {a.user: {"campaigns": {c.name: {
                "type": c.type, "started": c.started, "leads": list(c.leads), "deletions": dict(c.deletions)}
                for c in a.campaigns.values()}} for a in self.accounts.values()}}

    def stats_view(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": {k: dict(v) for k, v in self.stats.items()},
                    "tokens_issued": self.tokens_issued,
                    "busiest_1s": self.busiest_1s, "busiest_60s": self.busiest_60s}


def _faults(config: dict[str, Any], source: str) -> dict[str, Any]:
    faults = config.get("faults", {})
    if not isinstance(faults, dict):
        raise ConfigError(f"{source}: [faults] must be a table")
    for key, value in faults.items():
        if key not in FAULTS:
            raise ConfigError(f"{source}: [faults]: unknown setting {key!r} (known: {', '.join(FAULTS)})")
        if not isinstance(value, FAULTS[key]) or isinstance(value, bool):
            raise ConfigError(f"{source}: [faults]: {key} has the wrong type ({type(value).__name__})")
        problem = _fault_range(key, value)
        if problem:
            raise ConfigError(f"{source}: [faults]: {key} = {value!r} {problem}")
    return dict(faults)


def _fault_range(key: str, value: Any) -> str:
    """Why a [faults] value of the right type cannot be used ('' when it can)."""
    if key == "gateway_rate" and not (math.isfinite(value) and 0 <= value <= 1):
        return "must be a share between 0 and 1"
    if key in ("gateway_status", "token_expired_status") and not 100 <= value <= 599:
        return "must be an HTTP status (100 to 599)"
    if key == "redirect_status" and not (value == 0 or 300 <= value <= 399):
        return "must be a redirect status (300 to 399)"
    if isinstance(value, str) and _unsendable(value):
        return "cannot go in an HTTP header (a line break or control character)"
    return ""


def _unsendable(text: str) -> bool:
    return any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in text)


def _answer_range(key: str, value: Any) -> str:
    """Why an [[answers]] value of the right type cannot be used ('' when it can)."""
    if key == "status" and not 100 <= value <= 599:
        return "must be an HTTP status (100 to 599)"
    if key == "trickle_ms" and not (math.isfinite(value) and 0 <= value <= 60_000):
        return "must be between 0 and 60000 (milliseconds)"
    if key == "pad_bytes" and not 0 <= value <= 1 << 30:
        return "must be between 0 and 1073741824 (bytes)"
    if key == "times" and value < 0:
        return "must be 0 (every request) or more"
    if key == "content_encoding" and value not in _CONTENT_ENCODINGS:
        return f"must be one of {', '.join(_CONTENT_ENCODINGS)}"
    if key == "content_type" and _unsendable(value):
        return "cannot go in an HTTP header (a line break or control character)"
    if key == "headers":
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(str(name)):
                return f"has a header name that cannot be sent ({name!r})"
            if not isinstance(text, (str, int, float)) or isinstance(text, bool) or _unsendable(str(text)):
                return f"has a value for {name} that cannot go in an HTTP header (text without line breaks)"
    return ""


def _answers(entries: Any, source: str) -> list[dict[str, Any]]:
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: answers must be a list of [[answers]] tables")
    for a in entries:
        if not isinstance(a, dict) or "phone" not in a:
            raise ConfigError(f"{source}: every [[answers]] table needs a phone")
        for key, value in a.items():
            if key not in ANSWER_FIELDS:
                raise ConfigError(f"{source}: [[answers]]: unknown field {key!r} (known: {', '.join(ANSWER_FIELDS)})")
            expected = ANSWER_FIELDS[key]
            if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
                raise ConfigError(f"{source}: [[answers]]: {key} has the wrong type ({type(value).__name__})")
            problem = _answer_range(key, value)
            if problem:
                raise ConfigError(f"{source}: [[answers]] for phone {a['phone']!r}: {key} {problem}")
        if a.get("api", "add") not in ("add", "delete"):
            raise ConfigError(f"{source}: [[answers]]: api must be 'add' (Add Campaign Data) or 'delete'")
    return [dict(a, phone=str(a["phone"])) for a in entries]


def _bearer(headers: dict[str, str]) -> str:
    token = headers.get("authorization", "").strip()
    return token[6:].strip() if token.lower().startswith("bearer") else token


def _numeric(t: float) -> int | float:
    return int(t) if float(t).is_integer() else round(t, 3)


def _json_body(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _valid_date(text: str) -> bool:
    m = _DATE.match(text.strip())
    if not m:
        return False
    try:
        dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------- HTTP

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "leadpush-sandbox"
    # Headers and body go out in two writes: without this, Nagle's algorithm and the client's
    # delayed ACK hold every answer back ~40 ms.
    disable_nagle_algorithm = True
    sandbox: Sandbox  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # the sandbox logs its own lines
        pass

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, answer: Answer) -> None:
        if answer.drop:
            # The lead is stored; the client hears nothing (the ambiguous case it must handle).
            self.close_connection = True
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        if answer.length:
            self.send_header("Content-Length", str(len(answer.body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        for k, v in answer.headers.items():
            self.send_header(k, v)
        if answer.trickle_ms and answer.trickle_headers:
            head: list[bytes] = getattr(self, "_headers_buffer", [])  # http.server's own, unsent yet
            body = memoryview(b"".join(head) + b"\r\n" + answer.body)  # sent below, a byte at a time
            head.clear()
        else:
            self.end_headers()
            body = memoryview(answer.body)
        step = 1 if answer.trickle_ms else 1 << 16
        try:
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.sandbox.written[answer.outcome] += len(body[i:i + step])
                if answer.trickle_ms:
                    self.wfile.flush()
                    self.sandbox.sleep(answer.trickle_ms / 1000)
        except OSError:
            self.close_connection = True  # the client stopped reading (a deadline, a size cap)

    def do_POST(self) -> None:
        raw = self._read()
        headers = {k.lower(): v for k, v in self.headers.items()}
        state = self.sandbox.state
        path = self.path.split("?")[0]
        if state.redirect_status and not path.startswith("/sandbox/"):
            answer, delay = Answer(status=state.redirect_status, content_type="text/html",
                                   headers={"Location": str(state.redirect_to).rstrip("/") + path},
                                   outcome=f"redirect-{state.redirect_status}"), 0.0
            with state.lock:
                state.stats["AddCampaignData" if path == ADD_PATH else "generateToken"][answer.outcome] += 1
        elif path == TOKEN_PATH:
            answer, delay = state.generate_token(headers, raw), 0.0
        elif path == ADD_PATH:
            answer, delay = state.add_campaign_data(headers, raw)
        elif path == "/sandbox/reset":
            state.reset()
            answer, delay = Answer.json({"status": "reset"}, "reset"), 0.0
        else:
            answer, delay = Answer(status=404, body=b'{"error": "not found"}', outcome="404"), 0.0
        if delay:
            self.sandbox.sleep(delay)
        self.sandbox.log_request(self.command, path, raw, answer)
        self._send(answer)

    def do_DELETE(self) -> None:
        raw = self._read()
        path = self.path.split("?")[0]
        state = self.sandbox.state
        if state.redirect_status and path == DELETE_PATH:
            answer, delay = Answer(status=state.redirect_status, content_type="text/html",
                                   headers={"Location": str(state.redirect_to).rstrip("/") + path},
                                   outcome=f"redirect-{state.redirect_status}"), 0.0
            with state.lock:
                state.stats["deleteCampaignData"][answer.outcome] += 1
        elif path == DELETE_PATH:
            answer, delay = self.sandbox.state.delete_campaign_data({k.lower(): v for k, v in self.headers.items()},
                                                                    raw)
        else:
            answer, delay = Answer(status=405, body=b"<html><body><h1>405 Method Not Allowed</h1></body></html>",
                                   content_type="text/html", headers={"Allow": "POST"}, outcome="405"), 0.0
        if delay:
            self.sandbox.sleep(delay)
        self.sandbox.log_request(self.command, path, raw, answer)
        self._send(answer)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        state = self.sandbox.state
        if path == "/sandbox/leads":
            answer = Answer(body=json.dumps(state.leads_view()).encode())
        elif path == "/sandbox/stats":
            answer = Answer(body=json.dumps(state.stats_view()).encode())
        elif path == DELETE_PATH:
            answer = Answer(status=405, body=b"<html><body><h1>405 Method Not Allowed</h1></body></html>",
                            content_type="text/html", headers={"Allow": "DELETE"})
        elif path in (TOKEN_PATH, ADD_PATH):
            answer = Answer(status=405, body=b"<html><body><h1>405 Method Not Allowed</h1></body></html>",
                            content_type="text/html", headers={"Allow": "POST"})
        else:
            answer = Answer(status=404, body=b'{"error": "not found"}')
        self._send(answer)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that hung up (a deadline, a size cap, a quit): nothing to report
        super().handle_error(request, client_address)


class Sandbox:
    """A sandbox server on a background thread: `with Sandbox() as sb: sb.base_url`."""

    def __init__(self, config: dict[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] | None = None,
                 tls: tuple[str, str] | None = None, **state_options: Any) -> None:
        """`tls=(certificate file, key file)` serves https (for a redirect from https to http, say)."""
        self.state = SandboxState(config, **state_options)
        self.sleep = sleep
        self.written: Counter[str] = Counter()  # body bytes written, by outcome (what a client made us send)
        self._log = log
        handler = type("Handler", (_Handler,), {"sandbox": self})
        try:
            self.server = _Server((host, port), handler)
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror})") from None
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls:
            import ssl  # noqa: PLC0415 — only for the rare https sandbox

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{self.scheme}://{host!s}:{port}"

    def log_request(self, method: str, path: str, raw: bytes, answer: Answer) -> None:
        if self._log is None:
            return
        body = _json_body(raw) or {}
        what = " ".join(f"{k}={body[k]}" for k in ("userName", "campaignName", "phoneNumber") if k in body)
        said = answer.body.decode("utf-8", "replace").replace("\n", " ")[:100]
        if answer.outcome == "token":
            said = "{token issued}"  # never the token itself
        tail = " (connection dropped)" if answer.drop else ""
        # Headers (apiKey, Authorization) are never logged.
        self._log(f"{time.strftime('%H:%M:%S')} {method} {path} {what} -> {answer.status} {said}{tail}")

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.02)

    def start(self) -> Sandbox:
        self.thread = threading.Thread(target=self.serve_forever, name="leadpush-sandbox", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop a sandbox started with `start()` (or `with`), and close its socket."""
        self.server.shutdown()
        self.close()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def close(self) -> None:
        """Close the listening socket (after `serve_forever` returned)."""
        self.server.server_close()

    def campaign_names(self, account: int = 0) -> list[str]:
        """The campaigns of an account, in the order the config lists them (the demo's by default)."""
        return [c["name"] for c in self.state.config["accounts"][account]["campaigns"]]

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
