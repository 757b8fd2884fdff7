"""A faithful local CloudAgent: the token and Add Campaign Data APIs over HTTP, for trying leadpush and for tests.

Every answer below is one the vendor documents (docs/cloudagent.md); where the vendor is silent
or contradicts itself, the choice made is written in docs/sandbox.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import math
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .outcomes import ConfigError
from .settings import load_toml

TOKEN_PATH = "/ca_apis/CAToken/generateToken"
ADD_PATH = "/ca_apis/AddCampaignData"
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
NUMBER_EXISTS = {"status": "SUCCESS", "message": "Number Already Exist"}
NUMBER_EXISTED = {"status": "Success", "message": "Number Already Existed"}
TOKEN_USER_NULL = _false("UserName is null")
TOKEN_BAD_LOGIN = _false("Invalid userName or apiKey")
# Not documented by the vendor (the cap is, its answer is not): the sandbox's choice.
TOKEN_CAP = _false("Token generation limit exceeded: at most {cap} tokens per hour.")
HTML_503 = (b"<html><head><title>503 Service Unavailable</title></head>"
            b"<body><h1>Service Unavailable</h1></body></html>")
HTML_429 = (b"<html><head><title>429 Too Many Requests</title></head>"
            b"<body><h1>Too Many Requests</h1></body></html>")


@dataclass
class Answer:
    """One HTTP answer; `drop` closes the connection without sending it (after storing)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    outcome: str = ""  # for stats and the log

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
    generations: deque[float] = field(default_factory=deque)


def load_config(path: str | Path | None) -> dict[str, Any]:
    return DEMO_CONFIG if path is None else load_toml(path)


def _accounts(config: dict[str, Any], source: str) -> dict[str, Account]:
    accounts: dict[str, Account] = {}
    entries = config.get("accounts")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: needs at least one [[accounts]] table")
    for a in entries:
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
        accounts[user] = Account(user=user, api_key=key, auth_mode=mode, campaigns=campaigns)
    return accounts


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
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config or DEMO_CONFIG
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
            self.stats: dict[str, Counter[str]] = {"generateToken": Counter(), "AddCampaignData": Counter()}
            self.tokens_issued = 0
            self._arrivals_1s: deque[float] = deque()
            self._arrivals_60s: deque[float] = deque()
            self.busiest_1s = 0
            self.busiest_60s = 0

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
            return Answer(status=429, body=HTML_429, content_type="text/html",
                          headers={"Retry-After": str(retry_after)}, outcome="http-429")
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
        answer = self._decide(headers, raw, api_key, now)
        answer.drop = drop
        return answer

    def _decide(self, headers: dict[str, str], raw: bytes, api_key: str, now: float) -> Answer:
        body = _json_body(raw)
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
        token = headers.get("authorization", "").strip()
        if token.lower().startswith("bearer"):
            token = token[6:].strip()
        if not token or token.lower() in ("null", "undefined"):
            return Answer.json(TOKEN_EMPTY, "token-empty")
        if not self._token_ok(token, account, now):
            return Answer.json(TOKEN_EXPIRED, "token-expired")

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
        if str(body.get("checkDuplicate", "")).strip().upper() == "TRUE" and campaign.numbers[phone]:
            return Answer.json(NUMBER_EXISTED if campaign.type == "skill-wise" else NUMBER_EXISTS, "exists")

        lead = {k: v for k, v in body.items() if k != "userName"}
        lead["received_at"] = now
        campaign.store(lead)
        return Answer.json(self._stored_message(campaign, body), "added")

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
                "type": c.type, "started": c.started, "leads": list(c.leads)}
                for c in a.campaigns.values()}} for a in self.accounts.values()}}

    def stats_view(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": {k: dict(v) for k, v in self.stats.items()},
                    "tokens_issued": self.tokens_issued,
                    "busiest_1s": self.busiest_1s, "busiest_60s": self.busiest_60s}


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
        self.send_header("Content-Length", str(len(answer.body)))
        for k, v in answer.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(answer.body)

    def do_POST(self) -> None:  # noqa: N802 — http.server's naming
        raw = self._read()
        headers = {k.lower(): v for k, v in self.headers.items()}
        state = self.sandbox.state
        path = self.path.split("?")[0]
        if path == TOKEN_PATH:
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

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        state = self.sandbox.state
        if path == "/sandbox/leads":
            answer = Answer(body=json.dumps(state.leads_view()).encode())
        elif path == "/sandbox/stats":
            answer = Answer(body=json.dumps(state.stats_view()).encode())
        elif path in (TOKEN_PATH, ADD_PATH):
            answer = Answer(status=405, body=b"<html><body><h1>405 Method Not Allowed</h1></body></html>",
                            content_type="text/html", headers={"Allow": "POST"})
        else:
            answer = Answer(status=404, body=b'{"error": "not found"}')
        self._send(answer)


class Sandbox:
    """A sandbox server on a background thread: `with Sandbox() as sb: sb.base_url`."""

    def __init__(self, config: dict[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] | None = None,
                 **state_options: Any) -> None:
        self.state = SandboxState(config, **state_options)
        self.sleep = sleep
        self._log = log
        handler = type("Handler", (_Handler,), {"sandbox": self})
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror})") from None
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

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
