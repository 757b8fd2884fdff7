"""CloudAgent's token and Add Campaign Data APIs: tokens kept and shared, one lead sent with safe retries."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from .outcomes import AccountRefusal, LeadpushError, Status, scrub
from .pacing import Pacer
from .settings import Connection, check_base_url, check_secret, default_cache_dir

__all__ = ["Connection", "check_base_url", "check_secret", "default_cache_dir"]  # their home is settings
TOKEN_PATH = "/ca_apis/CAToken/generateToken"
ADD_PATH = "/ca_apis/AddCampaignData"
TOKEN_CAP = 10  # generations per account per rolling hour (documented)
RETRY_AFTER_CAP = 120.0  # seconds: a longer Retry-After is honoured only up to this
TOKEN_RESENDS = 3  # a row resent this many times after "Token Expired" fails rather than loop


def make_session(workers: int, base_url: str | None = None) -> requests.Session:
    """One session, its pool sized to the workers; no transport retries (leadpush decides those)."""
    session = requests.Session()
    # requests re-reads the proxy variables of the whole environment on every request (a quarter
    # of its CPU per request here); read them, and the CA bundle, once instead, as requests would.
    session.trust_env = False
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    if base_url:
        session.proxies.update(requests.utils.get_environ_proxies(base_url))
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, workers), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# ---------------------------------------------------------------------------- answers

@dataclass
class Verdict:
    """What one HTTP exchange means for the row."""

    kind: str  # added | exists | rejected | token-expired | account | campaign | transient | ambiguous
    message: str
    http_status: int | None = None
    retry_after: float | None = None


_ACCOUNT = {
    "invalid user details": "CloudAgent does not accept this user name and API key (Invalid User Details); "
                            "check LEADPUSH_USERNAME and LEADPUSH_API_KEY",
    "invalid action": "the account's 'API Authentication' setting is not TOKEN_AUTH (CloudAgent answered "
                      "'Invalid action.'); ask a CloudAgent admin to set it to TOKEN_AUTH",
    "api key should not be null or empty": "CloudAgent received no API key (Api Key Should Not be Null or "
                                           "Empty.); set LEADPUSH_API_KEY",
    "username should not be null or empty": "CloudAgent received no user name (Username Should Not be Null or "
                                            "Empty.); set LEADPUSH_USERNAME",
    "token should not be null or empty": "CloudAgent received no token (Token Should Not be Null or Empty.)",
}
_CAMPAIGN = ("no user found or campaign name is invalid", "the selected campaign is not outbound")


def parse_answer(text: str) -> dict[str, Any] | None:
    """CloudAgent's body as a dict, including the documented brace-less form `"status": ..., "message": ...`."""
    text = text.strip()
    if not text:
        return None
    for candidate in (text, "{" + text + "}"):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return {str(k).lower(): v for k, v in value.items()}
        return None
    return None


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime  # noqa: PLC0415 — HTTP-date form, rare

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def classify(status: int, text: str, headers: Any) -> Verdict:
    """Every documented Add Campaign Data answer (and the undocumented ones) as a Verdict."""
    snippet = " ".join(text.split())[:200]
    if status == 429:
        return Verdict("transient", "HTTP 429 Too Many Requests", status, _retry_after(headers))
    if status in (502, 503, 504):
        return Verdict("transient", f"HTTP {status} from CloudAgent (nothing stored)", status, _retry_after(headers))
    if status >= 500:
        # The server may have stored the lead before failing.
        return Verdict("ambiguous", f"HTTP {status} from CloudAgent", status)
    if status in (401, 403):
        return Verdict("account", f"CloudAgent answered HTTP {status} ({snippet or 'no body'}); check the API key "
                                  f"and the account's API settings", status)
    if status in (404, 405):
        return Verdict("account", f"CloudAgent answered HTTP {status} for {ADD_PATH}; check the base URL", status)
    body = parse_answer(text)
    if body is None:
        return Verdict("rejected", f"unexpected answer (HTTP {status}): {snippet or 'empty body'}", status)
    outcome = str(body.get("status", "")).strip()
    message = str(body.get("message") or "").strip()
    key = message.lower().rstrip(".! ")
    if outcome.lower() == "success":
        if "number already exist" in key:
            return Verdict("exists", message, status)
        return Verdict("added", message, status)
    if key == "token expired":
        return Verdict("token-expired", message, status)
    if key in _ACCOUNT:
        return Verdict("account", _ACCOUNT[key], status)
    if key in _CAMPAIGN:
        return Verdict("campaign", message, status)
    return Verdict("rejected", message or f"unexpected answer: {snippet}", status)


# ---------------------------------------------------------------------------- tokens

def jwt_times(token: str) -> tuple[float | None, float | None]:
    """(iat, exp) read from a JWT's payload, unverified (no key to verify with, none needed)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        iat, exp = claims.get("iat"), claims.get("exp")
        return (float(iat) if iat is not None else None, float(exp) if exp is not None else None)
    except (IndexError, ValueError, TypeError, AttributeError):
        return None, None


class TokenStore:
    """The token and this account's recent generations, kept between runs in a 0600 file."""

    def __init__(self, cache_dir: Path, base_url: str, username: str) -> None:
        digest = hashlib.sha256(f"{base_url}\n{username}".encode()).hexdigest()[:24]
        self.path = cache_dir / "tokens" / f"{digest}.json"

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def save(self, data: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".token-")
            with os.fdopen(fd, "w") as f:  # mkstemp makes it 0600
                json.dump(data, f)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache that cannot be written costs generations, not correctness


class TokenKeeper:
    """One token for every worker and run; at most one generation in flight; never over the cap."""

    def __init__(self, session: requests.Session, conn: Connection, store: TokenStore, pacer: Pacer, *,
                 clock: Callable[[], float], timeout: float, cap: int = TOKEN_CAP) -> None:
        self.session = session
        self.conn = conn
        self.store = store
        self.pacer = pacer
        self.clock = clock
        self.timeout = timeout
        self.cap = cap
        self.generations = 0  # this run's
        self.requests = 0
        self._lock = threading.Lock()
        self._token: str | None = conn.given_token
        self._unused = conn.given_token is not None  # a token just received is used before replaced

    def current(self) -> str:
        with self._lock:
            if self._token and (self._unused or not self._stale(self._token)):
                return self._token
            cached = self.store.load().get("token")
            if cached and cached != self._token and not self._stale(cached):
                self._token, self._unused = cached, False
                return cached
            return self._generate()

    def used(self, token: str) -> None:
        """The server accepted (did not call expired) this token once."""
        if token == self._token:
            self._unused = False

    def expired(self, token: str) -> str:
        """The server said `Token Expired` to `token`: find or make a newer one."""
        with self._lock:
            if self._token and self._token != token:
                return self._token  # another worker already replaced it
            cached = self.store.load().get("token")
            if cached and cached != token and not self._stale(cached):
                self._token, self._unused = cached, False  # another run refreshed it
                return cached
            return self._generate()

    def _stale(self, token: str) -> bool:
        iat, exp = jwt_times(token)
        if exp is None:
            return False  # unknown lifetime: use it until the server says otherwise
        lifetime = exp - iat if iat is not None and exp > iat else 3600.0
        margin = min(300.0, lifetime * 0.1)  # scales with the lifetime (sandbox tokens may live seconds)
        return self.clock() >= exp - margin

    def _generate(self) -> str:
        data = self.store.load()
        now = self.clock()
        recent = [t for t in data.get("generations", []) if isinstance(t, (int, float)) and t > now - 3600]
        if len(recent) >= self.cap:
            wait_until = time.strftime("%H:%M", time.localtime(min(recent) + 3600))
            raise AccountRefusal(f"{len(recent)} tokens were generated for user {self.conn.username} in the last "
                                 f"hour, CloudAgent's cap; the next can be had after {wait_until}")
        self.pacer.wait()
        self.requests += 1
        try:
            r = self.session.post(self.conn.base_url + TOKEN_PATH, timeout=self.timeout,
                                  headers={"Content-Type": "application/json", "apiKey": self.conn.api_key},
                                  data=json.dumps({"userName": self.conn.username}))
        except requests.RequestException as e:
            raise TokenUnavailable(f"could not reach CloudAgent for a token ({_transport_reason(e)})") from None
        body = parse_answer(r.text) or {}
        token = body.get("token")
        if r.status_code == 200 and isinstance(token, str) and token:
            self.generations += 1
            recent.append(now)
            self.store.save({"token": token, "generations": recent})
            self._token, self._unused = token, True
            return token
        if r.status_code >= 500 or r.status_code == 429:
            raise TokenUnavailable(f"CloudAgent could not issue a token (HTTP {r.status_code})")
        message = str(body.get("message") or f"HTTP {r.status_code}")
        raise AccountRefusal(scrub(f"CloudAgent refused a token for user {self.conn.username}: {message}",
                                   self.conn.secrets))


class TokenUnavailable(LeadpushError):
    """No token could be had for reasons that may pass (network, server errors)."""


def _transport_reason(e: requests.RequestException) -> str:
    if isinstance(e, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(e, requests.ReadTimeout):
        return "no answer within the timeout"
    if isinstance(e, requests.exceptions.SSLError):
        return "TLS verification failed"
    if _never_reached(e):
        return "connection refused or host not found"
    return "connection dropped"


def _never_reached(e: requests.RequestException) -> bool:
    """True only where the request certainly never reached the server."""
    if isinstance(e, requests.ConnectTimeout):
        return True
    if isinstance(e, requests.ConnectionError) and e.args:
        reason = getattr(e.args[0], "reason", None)
        return isinstance(reason, NewConnectionError)
    return False


# ---------------------------------------------------------------------------- sending one lead

def post_lead(session: requests.Session, conn: Connection, payload: bytes, token: str,
              timeout: float) -> Verdict:
    """One Add Campaign Data request, its answer (or transport fault) as a Verdict."""
    headers = {"Content-Type": "application/json", "apiKey": conn.api_key, "Authorization": f"Bearer {token}"}
    try:
        r = session.post(conn.base_url + ADD_PATH, data=payload, headers=headers, timeout=timeout)
    except requests.exceptions.SSLError:
        return Verdict("account", "TLS verification of CloudAgent's certificate failed; check the base URL "
                                  "or REQUESTS_CA_BUNDLE")
    except requests.RequestException as e:
        return Verdict("transient" if _never_reached(e) else "ambiguous", _transport_reason(e))
    return classify(r.status_code, scrub(r.text, conn.secrets + (token,)), r.headers)


@dataclass
class Sent:
    """What became of one lead: a row status, and whether the run or the campaign must stop."""

    status: Status
    message: str
    attempts: int
    http_status: int | None = None
    stop: str | None = None  # None, "account" or "campaign"
    cause: str = ""  # a code of leadpush.causes, for rows that did not go through


class Sender:
    """Sends one lead, retrying only where it is safe to (see `send`)."""

    def __init__(self, session: requests.Session, conn: Connection, tokens: TokenKeeper, pacer: Pacer, *,
                 clock: Callable[[], float], sleep: Callable[[float], None], timeout: float, retries: int,
                 backoff: float = 1.0, backoff_cap: float = 30.0, rng: random.Random | None = None) -> None:
        self.session = session
        self.conn = conn
        self.tokens = tokens
        self.pacer = pacer
        self.clock = clock
        self.sleep = sleep
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.rng = rng or random.Random()
        self.requests = 0
        self._count_lock = threading.Lock()

    def send(self, body: dict[str, str], stop: Callable[[], bool]) -> Sent:
        """Send one lead.

        Retried: faults where the server certainly did nothing (refused, DNS, connect timeout, 429,
        502/503/504). Faults where the lead may be stored (read timeout, dropped connection, 500) are
        retried only with checkDuplicate TRUE, where a resend at worst answers `Number Already Exist`.
        A resend after `Token Expired` is not a retry.
        """
        payload = json.dumps({**body, "userName": self.conn.username}).encode()
        dedup = body.get("checkDuplicate", "TRUE") == "TRUE"
        attempts = retries = token_resends = 0
        last_status: int | None = None
        maybe_stored = False  # whether an earlier attempt may have reached the campaign
        while True:
            if stop():
                return self._not_sent(attempts, last_status, maybe_stored)
            token = self.tokens.current()
            if not self.pacer.wait(stop):
                return self._not_sent(attempts, last_status, maybe_stored)
            attempts += 1
            with self._count_lock:
                self.requests += 1
            verdict = self._exchange(payload, token)
            last_status = verdict.http_status
            if verdict.kind == "token-expired":
                token_resends += 1
                if token_resends > TOKEN_RESENDS:
                    return Sent(Status.FAILED, "CloudAgent kept answering 'Token Expired' to fresh tokens "
                                               "(is another program generating tokens for this account?)",
                                attempts, last_status, cause="send.token")
                self.tokens.expired(token)
                continue
            self.tokens.used(token)
            if verdict.kind == "added":
                return Sent(Status.ADDED, verdict.message, attempts, last_status)
            if verdict.kind == "exists":
                return Sent(Status.EXISTS, verdict.message, attempts, last_status)
            if verdict.kind == "rejected":
                return Sent(Status.REJECTED, verdict.message, attempts, last_status, cause="cloudagent.rejected")
            if verdict.kind in ("account", "campaign"):
                return Sent(Status.REJECTED, verdict.message, attempts, last_status, stop=verdict.kind,
                            cause=f"cloudagent.{verdict.kind}")
            maybe_stored = maybe_stored or verdict.kind == "ambiguous"
            if verdict.kind == "ambiguous" and not dedup:
                return Sent(Status.FAILED, f"outcome unknown: {verdict.message}; the lead may or may not have "
                                           f"been stored, and it was not resent because checkDuplicate is FALSE "
                                           f"(a resend could add it twice)", attempts, last_status,
                            cause="send.unknown")
            if retries >= self.retries:
                return Sent(Status.FAILED, f"{verdict.message}; gave up after {attempts} attempts",
                            attempts, last_status, cause="send.gave_up")
            retries += 1
            delay = self.rng.uniform(0, min(self.backoff_cap, self.backoff * 2 ** (retries - 1)))
            if verdict.retry_after is not None:
                delay = max(delay, min(verdict.retry_after, RETRY_AFTER_CAP))
                if verdict.http_status == 429:
                    self.pacer.pause_until(self.clock() + delay)  # every worker backs off, not just this one
            if not self._sleep(delay, stop):
                return self._not_sent(attempts, last_status, maybe_stored)

    def _exchange(self, payload: bytes, token: str) -> Verdict:
        return post_lead(self.session, self.conn, payload, token, self.timeout)

    @staticmethod
    def _not_sent(attempts: int, last_status: int | None, maybe_stored: bool) -> Sent:
        if maybe_stored:
            return Sent(Status.FAILED, "the run stopped before a retry; an earlier attempt may or may not have "
                                       "stored the lead", attempts, last_status, cause="send.unknown")
        after = f" (after {attempts} failed attempts)" if attempts else ""
        return Sent(Status.ABORTED, f"not sent: the run stopped{after}", attempts, last_status,
                    cause="not_sent.stopped")

    def _sleep(self, seconds: float, stop: Callable[[], bool]) -> bool:
        end = self.clock() + seconds
        while (left := end - self.clock()) > 0:
            if stop():
                return False
            self.sleep(min(left, 0.25))
        return True


def auth_check(session: requests.Session, conn: Connection, cache_dir: Path, *,
               clock: Callable[[], float]) -> str:
    """Check user, key, TOKEN_AUTH mode and token, storing nothing; say when the token expires.

    The probe is an Add Campaign Data request without a campaign: CloudAgent checks the key,
    the user, the auth mode and the token before it answers "Please provide campaign details"
    (so the sandbox does; the vendor does not document the order). A still-valid cached token
    is used, so the check costs no generation.
    """
    tokens = TokenKeeper(session, conn, TokenStore(cache_dir, conn.base_url, conn.username),
                         Pacer(None, clock=clock, sleep=time.sleep), clock=clock, timeout=30.0)
    payload = json.dumps({"userName": conn.username, "campaignName": ""}).encode()
    for _ in range(2):
        token = tokens.current()
        verdict = post_lead(session, conn, payload, token, 30.0)
        if verdict.kind != "token-expired":
            break
        tokens.expired(token)
    if verdict.kind == "account":
        raise AccountRefusal(verdict.message)
    if verdict.kind == "token-expired":
        raise AccountRefusal("CloudAgent answered 'Token Expired' to a fresh token")
    if verdict.kind in ("transient", "ambiguous"):
        raise TokenUnavailable(f"could not check: {verdict.message}")
    _, exp = jwt_times(token)
    until = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(exp)) if exp else "an unknown time"
    spent = ("a new token was generated for this check" if tokens.generations
             else "the cached token was used, no generation spent")
    return (f"OK: user {conn.username} at {conn.base_url}: API key accepted, account on TOKEN_AUTH; "
            f"token valid until {until} ({spent})")
