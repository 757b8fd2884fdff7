"""CloudAgent's token and Add Campaign Data APIs: tokens kept and shared, one lead sent with safe retries."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import math
import os
import random
import re
import socket
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError

from .outcomes import AccountRefusal, LeadpushError, Status, clip, scrub
from .pacing import Pacer
from .settings import Connection, check_base_url, check_secret, default_cache_dir, is_loopback

__all__ = ["Connection", "check_base_url", "check_secret", "default_cache_dir"]  # their home is settings
TOKEN_PATH = "/ca_apis/CAToken/generateToken"
ADD_PATH = "/ca_apis/AddCampaignData"
TOKEN_CAP = 10  # generations per account per rolling hour (documented)
RETRY_AFTER_CAP = 120.0  # seconds: a longer Retry-After is honoured only up to this
TOKEN_RESENDS = 3  # a row resent this many times after "Token Expired" fails rather than loop
BODY_CAP = 1 << 20  # bytes: a longer answer is not read (no documented answer is near this)


def make_session(workers: int, base_url: str | None = None) -> requests.Session:
    """One session, its pool sized to the workers; no transport retries (leadpush decides those)."""
    session = requests.Session()
    # requests re-reads the proxy variables of the whole environment on every request (a quarter
    # of its CPU per request here); read them, and the CA bundle, once instead, as requests would.
    session.trust_env = False
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    # Never a proxy for this machine: the key would travel to the proxy (in clear over http).
    if base_url and not is_loopback(urlsplit(base_url).hostname or ""):
        session.proxies.update(requests.utils.get_environ_proxies(base_url))
    adapter = _WatchedAdapter(pool_connections=1, pool_maxsize=max(1, workers), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# The connection each request goes out on, so that a timer can cut it off at the request's
# deadline: requests' own timeout bounds each socket read, so an answer trickled a byte at a
# time (headers included) would otherwise never end.
_in_flight = threading.local()


class _Watched:
    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        connections = getattr(_in_flight, "connections", None)
        if connections is not None:
            connections.append(conn)
        return super()._make_request(conn, *args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPPool(_Watched, HTTPConnectionPool):
    pass


class _WatchedHTTPSPool(_Watched, HTTPSConnectionPool):
    pass


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose pools say which connection a request uses (see `exchange`)."""

    _pools = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = self._pools
        return manager


# ---------------------------------------------------------------------------- answers

class VerdictKind(StrEnum):
    """What kind of answer one HTTP exchange was (Delete Campaign Data adds its own two)."""

    ADDED = "added"
    EXISTS = "exists"
    REJECTED = "rejected"  # the row refused, with CloudAgent's words
    TOKEN_EXPIRED = "token-expired"
    ACCOUNT = "account"  # the account refused: nothing more can be sent
    CAMPAIGN = "campaign"  # the campaign refused: none of its rows can be sent
    TRANSIENT = "transient"  # certainly nothing done (429, 503, never connected): resend
    AMBIGUOUS = "ambiguous"  # perhaps stored (read timeout, 502, 504): resend only with checkDuplicate
    UNRECOGNISED = "unrecognised"  # never added, never resent
    DELETED = "deleted"
    NO_RECORD = "no-record"


@dataclass
class Verdict:
    """What one HTTP exchange means for the row."""

    kind: VerdictKind
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
# The documented refusals of one row (and the older APIs' DND answer): CloudAgent's words, at any HTTP status.
_ROW_REFUSALS = (
    "please provide campaign details",
    "phone number should be numeric and must be between 3 to 16 digits and allows prefix +",
    "the priority value must be numeric and range from 0 to 99",
    "invalid date format. please enter date in format yyyy-mm-dd",
    "agent is empty", "agent is not correctly mapped", "please provide valid skill",
    "phonenumber added is a dnd number",
)
_EXISTS = ("number already exist", "number already existed")
# The documented texts that say a lead was stored, exactly: `c` is where CloudAgent names the
# campaign (or, in the Stoped answer, the campaign type). Nothing else counts as stored.
_STORED = tuple(re.compile(p, re.S) for p in (
    r"successfully updated",
    r"successfully updated, (?P<c>.+?) was started",
    r"successfully updated (?P<c>.+?) campaign",
    r"campaign (?P<c>.+?) is already started",
    r"please pass the valid campaign action successfully updated (?P<c>.+?) campaign data",
    r"successfully updated (?P<t>\w+) campaign stoped",  # one word: the type, as "Progressive"
))
# Words that take back a success: a success-worded answer holding one (and no success text) is
# a refusal in CloudAgent's words; where the campaign's name is not known, a name holding one (or
# a word that doubts the lead was stored) is not trusted.
_NEGATION = re.compile(r"\b(?:not|no|never|fail\w*|error\w*|invalid|duplicate\w*|exist\w*|dnd|block\w*|"
                       r"blacklist\w*|reject\w*|denied|unable|cannot|can't|limit\w*|skipped)\b")
_DOUBT = re.compile(r"\b(?:ignored|discarded|queued|review|pending|zero|0|but)\b")
_FAIL_WORDS = ("error", "fail", "failed", "failure")


def stored(key: str, campaign: str = "") -> bool:
    """Whether a success message (lower-cased) is one of the documented texts that say a lead was stored.

    The whole message must be one of them; where one names the campaign, the name must be the
    row's campaign (compared whole, so a campaign called "not" cannot make "…, not added" pass).
    Without a campaign to compare with, the named part may hold no word that takes the success back.
    """
    name = " ".join(campaign.split()).lower()
    for pattern in _STORED:
        m = pattern.fullmatch(key)
        if m is None:
            continue
        said = m.groupdict()
        if said.get("c") is not None:
            if name:
                return said["c"] == name
            return not (_NEGATION.search(said["c"]) or _DOUBT.search(said["c"]))
        if said.get("t") is not None:
            return not (_NEGATION.search(said["t"]) or _DOUBT.search(said["t"]))
        return True
    return False


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


def retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a `Retry-After` value, either documented form; None for garbage.

    A date in the past means now (0); a negative, non-finite or unreadable value is ignored;
    anything longer than RETRY_AFTER_CAP is cut to it.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime  # noqa: PLC0415 — HTTP-date form, rare

        try:
            when = parsedate_to_datetime(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            seconds = max(0.0, when.timestamp() - now())
        except (TypeError, ValueError, OverflowError, IndexError, OSError):
            return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_CAP)


def _redirect(status: int, headers: Any) -> str:
    target = headers.get("Location") or "an address it did not give"
    return (f"the base URL redirects to {target} (HTTP {status}); nothing was sent there and no lead counted: "
            f"set the base URL to that address if you trust it")


def common_verdict(key: str, message: str, status: int,
                   campaign_refusals: tuple[str, ...] = _CAMPAIGN) -> Verdict | None:
    """The answers the token-auth APIs share (Add and Delete Campaign Data alike): a dead token, an
    account refusal, a campaign refusal (each API words its own). `key` is the message lowercased,
    end punctuation off."""
    if key == "token expired":
        return Verdict(VerdictKind.TOKEN_EXPIRED, message, status)
    if key in _ACCOUNT:
        return Verdict(VerdictKind.ACCOUNT, _ACCOUNT[key], status)
    if key in campaign_refusals:
        return Verdict(VerdictKind.CAMPAIGN, message, status)
    return None


def classify(status: int, text: str, headers: Any, campaign: str = "") -> Verdict:
    """Every documented Add Campaign Data answer (and the undocumented ones) as a Verdict.

    The body is read first: a documented refusal means what it says at any HTTP status. A lead
    counts `added` only on HTTP 200 with a documented success text that nothing in it takes
    back. Otherwise the status code decides; what is neither is `unrecognised`.
    """
    snippet = clip(text)  # callers pass text already scrubbed: cut only after
    if 300 <= status < 400:
        return Verdict(VerdictKind.ACCOUNT, _redirect(status, headers), status)
    body = parse_answer(text)
    outcome = str(body.get("status", "")).strip().lower() if body else ""
    message = " ".join(str(body.get("message") or "").split()) if body else ""
    key = message.lower().rstrip(".! ")
    if body is not None:
        common = common_verdict(key, message, status)
        if common:
            return common
        if key in _ROW_REFUSALS:
            return Verdict(VerdictKind.REJECTED, message, status)
    if status == 429:
        return Verdict(VerdictKind.TRANSIENT, "HTTP 429 Too Many Requests", status,
                       retry_after(headers.get("Retry-After")))
    if status == 503:
        return Verdict(VerdictKind.TRANSIENT, "HTTP 503 from CloudAgent (nothing stored)", status,
                       retry_after(headers.get("Retry-After")))
    if status >= 500:
        # A gateway (502, 504) or the server (500) may have failed after the lead was stored.
        return Verdict(VerdictKind.AMBIGUOUS, f"HTTP {status} from CloudAgent", status,
                       retry_after(headers.get("Retry-After")))
    if status in (401, 403):
        return Verdict(VerdictKind.ACCOUNT, f"CloudAgent answered HTTP {status} ({snippet or 'no body'}); "
                                            f"check the API key and the account's API settings", status)
    if status in (404, 405):
        return Verdict(VerdictKind.ACCOUNT, f"CloudAgent answered HTTP {status} for {ADD_PATH}; check the base URL",
                       status)
    unrecognised = Verdict(VerdictKind.UNRECOGNISED,
                           f"unrecognised answer (HTTP {status}): {snippet or 'empty body'}", status)
    if body is None or status != 200:
        if status < 400 or body is None or outcome == "success" or "success" in key:
            return unrecognised  # a 4xx that says success says two things: neither is trusted
        return Verdict(VerdictKind.REJECTED, message or snippet, status)
    if outcome == "success":
        if key in _EXISTS:
            return Verdict(VerdictKind.EXISTS, message, status)
        if stored(key, campaign):
            return Verdict(VerdictKind.ADDED, message, status)
        if "success" not in key and _NEGATION.search(key):
            return Verdict(VerdictKind.REJECTED, message, status)  # "Number is in DND list, not added"
        return unrecognised  # a success text with more to it says two things: neither is trusted
    if outcome == "false":
        # Every documented "false" answer is about the account or the token: so is an unknown one.
        return Verdict(VerdictKind.ACCOUNT, f"CloudAgent refused the request: {message or snippet} (an undocumented "
                                  f"answer with status false; every documented one concerns the account)", status)
    if outcome in _FAIL_WORDS and message:
        return Verdict(VerdictKind.REJECTED, message, status)
    return unrecognised


# ---------------------------------------------------------------------------- one exchange

@dataclass
class Reply:
    """An answer read within the deadline; `oversized` when its body passed BODY_CAP and was not kept."""

    status: int
    text: str
    headers: Any
    oversized: bool = False
    undecodable: str = ""  # why a compressed body could not be read (never counted `added`)


class DeadlinePassed(requests.ReadTimeout):
    """The whole answer did not arrive within the request's total deadline."""


def exchange(session: requests.Session, url: str, payload: bytes, headers: dict[str, str], timeout: float,
             method: str = "POST") -> Reply:
    """One POST (or `method`: undo's DELETE), never following a redirect, its whole answer read within
    `timeout` and BODY_CAP.

    `timeout` is a total deadline (connect, send, the whole answer): when it passes, a timer
    shuts the request's socket down, and keeps doing so for a socket that appears later (one
    still connecting at the deadline); the read loop checks the deadline as well. The answer is
    asked for uncompressed; one compressed anyway (gzip, deflate) is decoded here, its size cap
    applying to what it decodes to.
    """
    connections: list[Any] = []
    cut = threading.Event()
    finished = threading.Event()
    over = threading.Lock()  # held by whichever comes first: the answer's end or the deadline

    def cut_off() -> None:
        if not over.acquire(blocking=False):
            return  # the answer is complete; its connection may already serve another request
        cut.set()
        while True:
            for conn in list(connections):
                sock = getattr(conn, "sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            if finished.wait(0.05):
                return

    timer = threading.Timer(timeout, cut_off)
    timer.daemon = True
    _in_flight.connections = connections
    timer.start()
    try:
        return _read_answer(session, url, payload, {"Accept-Encoding": "identity", **headers}, timeout, cut, over,
                            method)
    except requests.RequestException:
        if cut.is_set():
            raise DeadlinePassed("no complete answer within the timeout") from None
        raise
    finally:
        finished.set()
        timer.cancel()
        _in_flight.connections = None


class _Undecodable(Exception):
    pass


class _Decoder:
    """The body as sent → the body as meant, for the encodings a server might use though asked not to.

    Never yields more than `limit` + 1 bytes in all, however small the compressed input (a
    gzip bomb stops at the cap).
    """

    def __init__(self, encoding: str, limit: int) -> None:
        self.encoding = encoding.strip().lower()
        self.limit = limit
        self.size = 0
        if self.encoding in ("", "identity"):
            self._z = None
        elif self.encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.encoding == "deflate":
            self._z = zlib.decompressobj()  # zlib-wrapped, as the standard says (a raw stream is tried below)
        else:
            raise _Undecodable(f"compressed as {encoding!r}, which leadpush does not read")
        self._raw_tried = False

    def feed(self, chunk: bytes) -> bytes:
        if self._z is None:
            self.size += len(chunk)
            return chunk
        room = self.limit + 1 - self.size
        try:
            out = self._z.decompress(self._z.unconsumed_tail + chunk if self._z.unconsumed_tail else chunk, room)
        except zlib.error:
            if self.encoding != "deflate" or self._raw_tried or self.size:
                raise _Undecodable(f"a {self.encoding} body that does not decode") from None
            self._raw_tried = True
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.feed(chunk)
        self.size += len(out)
        return out

    def over(self) -> bool:
        return self.size > self.limit or bool(self._z is not None and self._z.unconsumed_tail)

    def finish(self) -> bytes:
        if self._z is None:
            return b""
        room = self.limit + 1 - self.size
        if room <= 0:
            return b""
        out = self._z.flush(room) if room > 0 else b""
        self.size += len(out)
        if not self._z.eof and not self.over():
            raise _Undecodable(f"a {self.encoding} body that ends early")
        return out


def _read_answer(session: requests.Session, url: str, payload: bytes, headers: dict[str, str], timeout: float,
                 cut: threading.Event, over: threading.Lock, method: str = "POST") -> Reply:
    r = session.request(method, url, data=payload, headers=headers, timeout=(timeout, timeout),
                        allow_redirects=False, stream=True)
    with r:
        length = r.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > BODY_CAP:
            return Reply(r.status_code, "", r.headers, oversized=True)
        try:
            decoder = _Decoder(r.headers.get("Content-Encoding", ""), BODY_CAP)
        except _Undecodable as e:
            return Reply(r.status_code, "", r.headers, undecodable=str(e))
        chunks: list[bytes] = []
        while True:
            if cut.is_set():
                raise DeadlinePassed("no complete answer within the timeout")
            try:
                chunk = r.raw.read1(65536, decode_content=False)
            except ReadTimeoutError:
                raise requests.ReadTimeout("no answer within the timeout") from None
            except (ProtocolError, OSError) as e:
                raise requests.ConnectionError(e) from None
            try:
                chunks.append(decoder.feed(chunk) if chunk else decoder.finish())
            except _Undecodable as e:
                return Reply(r.status_code, "", r.headers, undecodable=str(e))
            if decoder.over():
                return Reply(r.status_code, "", r.headers, oversized=True)
            if not chunk:
                break
        # No cut from now on: the connection may serve another request next. (A cut in the instant
        # before this line can only make another request see a dropped connection: ambiguous,
        # handled as such, never a wrong count.)
        over.acquire(blocking=False)
    if cut.is_set():  # the socket was shut down mid-answer: what arrived is not the whole answer
        raise DeadlinePassed("no complete answer within the timeout")
    return Reply(r.status_code, b"".join(chunks).decode(r.encoding or "utf-8", "replace"), r.headers)


# ---------------------------------------------------------------------------- tokens

_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def sendable_token(token: Any) -> bool:
    """A token that can go back in a header: a JWT's shape, base64url characters only."""
    return isinstance(token, str) and len(token) <= 16384 and _TOKEN_SHAPE.fullmatch(token) is not None


def jwt_times(token: str) -> tuple[float | None, float | None]:
    """(iat, exp) read from a JWT's payload, unverified (no key to verify with, none needed)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        iat, exp = claims.get("iat"), claims.get("exp")
        times = (float(iat) if iat is not None else None, float(exp) if exp is not None else None)
    except (IndexError, ValueError, TypeError, AttributeError, OverflowError):
        return None, None
    if any(t is not None and not math.isfinite(t) for t in times):
        return None, None
    return times


class TokenStore:
    """The token and this account's recent generations, kept between runs in a 0600 file.

    What is read back is trusted only as far as it is exactly what leadpush writes: a token
    that could not be sent is absent; a generation time that cannot be read counts as one made
    just now (the cap is assumed near, never passed).
    """

    def __init__(self, cache_dir: Path, base_url: str, username: str) -> None:
        digest = hashlib.sha256(f"{base_url}\n{username}".encode()).hexdigest()[:24]
        self.path = cache_dir / "tokens" / f"{digest}.json"

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {"generations": None}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {"generations": None}  # there is a cache, but it cannot be read: assume the cap near

    @staticmethod
    def token(data: dict[str, Any]) -> str | None:
        token = data.get("token")
        return token if sendable_token(token) else None

    @staticmethod
    def generations(data: dict[str, Any], now: float, cap: int) -> list[float]:
        """Generation times of the last hour; each unreadable or future one counts as made now."""
        if "generations" not in data:
            return []
        times = data["generations"]
        if not isinstance(times, list):
            return [now] * max(0, cap - 1)
        recent = []
        for t in times:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t > now:
                recent.append(now)
            elif t > now - 3600:
                recent.append(float(t))
        return recent

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Held while generations are counted and a token fetched: one run at a time, across processes."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield  # no cache directory: nothing to count in, nothing to race over
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

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
                 clock: Callable[[], float], timeout: float, cap: int = TOKEN_CAP, retries: int = 0,
                 sleep: Callable[[float], None] = time.sleep, stop: Callable[[], bool] = lambda: False,
                 backoff: float = 1.0, backoff_cap: float = 30.0, rng: random.Random | None = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        self.session = session
        self.conn = conn
        self.store = store
        self.pacer = pacer
        self.clock = clock
        self.monotonic = monotonic or clock  # for deadlines and waits; `clock` is wall time (a JWT's exp)
        self.timeout = timeout
        self.cap = cap
        self.retries = retries
        self.sleep = sleep
        self.stop = stop
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.rng = rng or random.Random()
        self.generations = 0  # this run's
        self.requests = 0
        self._lock = threading.Lock()
        self._token: str | None = conn.given_token
        self._unused = conn.given_token is not None  # a token just received is used before replaced

    def current(self) -> str:
        with self._lock:
            if self._token and (self._unused or not self._stale(self._token)):
                return self._token
            return self._newer_or_generated(self._token)

    def used(self, token: str) -> None:
        """The server accepted (did not call expired) this token once."""
        if token == self._token:
            self._unused = False

    def expired(self, token: str) -> str:
        """The server said `Token Expired` to `token`: find or make a newer one."""
        with self._lock:
            if self._token and self._token != token:
                return self._token  # another worker already replaced it
            return self._newer_or_generated(token)

    def _stale(self, token: str) -> bool:
        iat, exp = jwt_times(token)
        if exp is None:
            return False  # unknown lifetime: use it until the server says otherwise
        lifetime = exp - iat if iat is not None and exp > iat else 3600.0
        margin = min(300.0, lifetime * 0.1)  # scales with the lifetime (sandbox tokens may live seconds)
        return self.clock() >= exp - margin

    def _newer_or_generated(self, dead: str | None) -> str:
        """The cached token if another run or worker left a good one, else a new one.

        The cache file's lock is held from reading the count to writing it back, so two runs
        of one account can neither both generate nor lose each other's generations.
        """
        with self.store.locked():
            data = self.store.load()
            cached = self.store.token(data)
            if cached and cached != dead and not self._stale(cached):
                self._token, self._unused = cached, False
                return cached
            return self._generate(data)

    def _generate(self, data: dict[str, Any]) -> str:
        now = self.clock()
        recent = self.store.generations(data, now, self.cap)
        if len(recent) >= self.cap:
            wait_until = time.strftime("%H:%M", time.localtime(min(recent) + 3600))
            raise AccountRefusal(f"{len(recent)} tokens were generated for user {self.conn.username} in the last "
                                 f"hour, CloudAgent's cap; the next can be had after {wait_until}")
        kept = self.store.token(data)
        attempts = 0
        while True:
            attempts += 1
            kind, reason, wait, token = self._ask()
            if token is not None:
                self.generations += 1
                recent.append(now)
                self.store.save({"token": token, "generations": recent})
                self._token, self._unused = token, True
                return token
            if kind is VerdictKind.AMBIGUOUS:
                # The server may have issued (and counted) a token whose answer was lost.
                recent.append(now)
                self.store.save({"token": kept, "generations": recent} if kept else {"generations": recent})
                if len(recent) >= self.cap:
                    raise TokenUnavailable(f"could not get a token ({reason}), and the hourly cap may now be "
                                           f"reached")
            if attempts > self.retries:
                tail = f" after {attempts} attempts" if attempts > 1 else ""
                raise TokenUnavailable(f"could not reach CloudAgent for a token ({reason}){tail}")
            delay = self.rng.uniform(0, min(self.backoff_cap, self.backoff * 2 ** (attempts - 1)))
            if wait is not None:
                delay = max(delay, wait)
            end = self.monotonic() + delay
            while (left := end - self.monotonic()) > 0:
                if self.stop():
                    raise TokenUnavailable(f"could not reach CloudAgent for a token ({reason}); the run stopped "
                                           f"before a retry")
                self.sleep(min(left, 0.25))

    def _ask(self) -> tuple[VerdictKind | None, str, float | None, str | None]:
        """One Generate Token request: (fault kind, reason, Retry-After, token or None)."""
        self.pacer.wait()
        self.requests += 1
        try:
            reply = exchange(self.session, self.conn.base_url + TOKEN_PATH,
                             json.dumps({"userName": self.conn.username}).encode(),
                             {"Content-Type": "application/json", "apiKey": self.conn.api_key}, self.timeout)
        except requests.exceptions.SSLError:
            raise AccountRefusal("TLS verification of CloudAgent's certificate failed; check the base URL "
                                 "or REQUESTS_CA_BUNDLE") from None
        except requests.RequestException as e:
            kind = VerdictKind.TRANSIENT if _never_reached(e) else VerdictKind.AMBIGUOUS
            return kind, _transport_reason(e), None, None
        status = reply.status
        if 300 <= status < 400:
            raise AccountRefusal(scrub(_redirect(status, reply.headers), self.conn.secrets))
        body = parse_answer(reply.text) or {}
        token = body.get("token")
        if status == 200 and isinstance(token, str) and token:
            if not sendable_token(token):
                raise AccountRefusal("CloudAgent sent a token that cannot be sent back in an HTTP header (not a "
                                     "JWT of plain ASCII characters); it was neither used nor kept")
            return None, "", None, token
        wait = retry_after(reply.headers.get("Retry-After"))
        if status in (429, 503):
            return VerdictKind.TRANSIENT, f"HTTP {status}", wait, None
        if status >= 500:
            return VerdictKind.AMBIGUOUS, f"HTTP {status}", wait, None
        # Scrubbed before anything is cut: a key straddling the cut would otherwise leave its start.
        text = scrub(reply.text, self.conn.secrets)
        message = scrub(str(body.get("message") or "").strip(), self.conn.secrets) or (
            f"HTTP {status}: " + (reply.undecodable or clip(text) or "empty body"))
        raise AccountRefusal(scrub(f"CloudAgent refused a token for user {self.conn.username}: {message}",
                                   self.conn.secrets))


class TokenUnavailable(LeadpushError):
    """No token could be had for reasons that may pass (network, server errors)."""


class NoToken(LeadpushError):
    """No token could be had for a lead's next request: `refusal` (an AccountRefusal or a
    TokenUnavailable) says why. `maybe_stored`: an earlier attempt of this lead may have stored it;
    False where none could have (no request went out, or each one was answered without storing:
    never reached, 429, 503, Token Expired)."""

    def __init__(self, refusal: AccountRefusal | TokenUnavailable, *, maybe_stored: bool) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal
        self.maybe_stored = maybe_stored


def _transport_reason(e: requests.RequestException) -> str:
    if isinstance(e, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(e, requests.ReadTimeout):
        return "no complete answer within the timeout"
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
              timeout: float, *, campaign: str = "") -> Verdict:
    """One Add Campaign Data request, its answer (or transport fault) as a Verdict."""
    headers = {"Content-Type": "application/json", "apiKey": conn.api_key, "Authorization": f"Bearer {token}"}
    secrets = conn.secrets + (token,)
    try:
        reply = exchange(session, conn.base_url + ADD_PATH, payload, headers, timeout)
    except requests.exceptions.SSLError:
        return Verdict(VerdictKind.ACCOUNT, "TLS verification of CloudAgent's certificate failed; check the base URL "
                                  "or REQUESTS_CA_BUNDLE")
    except requests.RequestException as e:
        return Verdict(VerdictKind.TRANSIENT if _never_reached(e) else VerdictKind.AMBIGUOUS, _transport_reason(e))
    if reply.oversized or reply.undecodable:
        verdict = classify(reply.status, "", reply.headers)
        if verdict.kind in (VerdictKind.UNRECOGNISED, VerdictKind.REJECTED):
            why = reply.undecodable or f"longer than {BODY_CAP} bytes, not read"
            verdict = Verdict(VerdictKind.UNRECOGNISED, f"unrecognised answer (HTTP {reply.status}): {why}",
                              reply.status)
        return verdict
    verdict = classify(reply.status, scrub(reply.text, secrets), reply.headers, campaign)
    verdict.message = scrub(verdict.message, secrets)  # a secret JSON-escaped in the raw text is plain here
    return verdict


@dataclass
class Sent:
    """What became of one lead: a row status, and whether the run or the campaign must stop."""

    status: Status
    message: str
    attempts: int
    http_status: int | None = None
    stop: VerdictKind | None = None  # None, ACCOUNT or CAMPAIGN
    cause: str = ""  # a code of leadpush.causes, for rows that did not go through
    probably_ours: bool = False  # `exists` after an attempt of this run whose answer was lost
    maybe_stored: bool = False  # an attempt may have stored the lead (no verdict came back)


class Sender:
    """Sends one lead, retrying only where it is safe to (see `send`)."""

    def __init__(self, session: requests.Session, conn: Connection, tokens: TokenKeeper, pacer: Pacer, *,
                 clock: Callable[[], float], sleep: Callable[[float], None], timeout: float, retries: int,
                 backoff: float = 1.0, backoff_cap: float = 30.0, rng: random.Random | None = None,
                 on_wait: Callable[[float, str], None] | None = None) -> None:
        self.session = session
        self.conn = conn
        self.tokens = tokens
        self.on_wait = on_wait
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

        Resent always: faults where the server certainly did nothing (connection refused, DNS,
        connect timeout, 429, 503). Faults where the lead may be stored (read timeout, the total
        deadline passed, dropped connection, 500, 502, 504) are resent only with checkDuplicate
        TRUE, where a resend at worst answers `Number Already Exist`. An answer leadpush cannot
        recognise is never resent. A resend after `Token Expired` is not a retry. No token to be
        had raises NoToken.
        """
        payload = json.dumps({**body, "userName": self.conn.username}).encode()
        campaign = body.get("campaignName", "")
        dedup = body.get("checkDuplicate", "TRUE") == "TRUE"
        attempts = retries = token_resends = 0
        last_status: int | None = None
        maybe_stored = False  # whether an earlier attempt may have reached the campaign
        while True:
            if stop():
                return self._not_sent(attempts, last_status, maybe_stored)
            try:
                token = self.tokens.current()
            except (AccountRefusal, TokenUnavailable) as e:
                raise NoToken(e, maybe_stored=maybe_stored) from e
            if not self.pacer.wait(stop):
                return self._not_sent(attempts, last_status, maybe_stored)
            attempts += 1
            with self._count_lock:
                self.requests += 1
            verdict = self._exchange(payload, token, campaign)
            last_status = verdict.http_status
            if verdict.kind is VerdictKind.TOKEN_EXPIRED:
                token_resends += 1
                if token_resends > TOKEN_RESENDS:
                    return Sent(Status.FAILED, "CloudAgent kept answering 'Token Expired' to fresh tokens "
                                               "(is another program generating tokens for this account?)",
                                attempts, last_status, cause="send.token")
                try:
                    self.tokens.expired(token)
                except (AccountRefusal, TokenUnavailable) as e:
                    raise NoToken(e, maybe_stored=maybe_stored) from e
                continue
            self.tokens.used(token)
            if verdict.kind is VerdictKind.ADDED:
                return Sent(Status.ADDED, verdict.message, attempts, last_status)
            if verdict.kind is VerdictKind.EXISTS:
                if maybe_stored:
                    return Sent(Status.EXISTS, f"stored; an earlier attempt of this run probably added it "
                                               f"(CloudAgent: {verdict.message})", attempts, last_status,
                                probably_ours=True)
                return Sent(Status.EXISTS, verdict.message, attempts, last_status)
            if verdict.kind is VerdictKind.REJECTED:
                return Sent(Status.REJECTED, verdict.message, attempts, last_status, cause="cloudagent.rejected")
            if verdict.kind in (VerdictKind.ACCOUNT, VerdictKind.CAMPAIGN):
                return Sent(Status.REJECTED, verdict.message, attempts, last_status, stop=verdict.kind,
                            cause=f"cloudagent.{verdict.kind}")
            if verdict.kind is VerdictKind.UNRECOGNISED:
                return Sent(Status.FAILED, f"{verdict.message}; not counted as added, and not resent (the lead "
                                           f"may or may not have been stored)", attempts, last_status,
                            cause="cloudagent.unrecognised")
            maybe_stored = maybe_stored or verdict.kind is VerdictKind.AMBIGUOUS
            if verdict.kind is VerdictKind.AMBIGUOUS and not dedup:
                return Sent(Status.FAILED, f"outcome unknown: {verdict.message}; the lead may or may not have "
                                           f"been stored, and it was not resent because checkDuplicate is FALSE "
                                           f"(a resend could add it twice)", attempts, last_status,
                            cause="send.unknown", maybe_stored=True)
            if retries >= self.retries:
                unknown = " (an earlier attempt may have stored the lead)" if maybe_stored else ""
                return Sent(Status.FAILED, f"{verdict.message}; gave up after {attempts} attempts{unknown}",
                            attempts, last_status, cause="send.unknown" if maybe_stored else "send.gave_up",
                            maybe_stored=maybe_stored)
            retries += 1
            delay = self.rng.uniform(0, min(self.backoff_cap, self.backoff * 2 ** (retries - 1)))
            if verdict.retry_after is not None:
                delay = max(delay, verdict.retry_after)
                if verdict.http_status == 429:
                    self.pacer.pause_until(self.clock() + delay)  # every worker backs off, not just this one
                    if self.on_wait:
                        self.on_wait(delay, "CloudAgent asked to slow down (429)")
            if not self._sleep(delay, stop):
                return self._not_sent(attempts, last_status, maybe_stored)

    def _exchange(self, payload: bytes, token: str, campaign: str = "") -> Verdict:
        # The deadline is real time whatever clock paces the run: it bounds real sockets.
        return post_lead(self.session, self.conn, payload, token, self.timeout, campaign=campaign)

    @staticmethod
    def _not_sent(attempts: int, last_status: int | None, maybe_stored: bool) -> Sent:
        if maybe_stored:
            return Sent(Status.FAILED, "the run stopped before a retry; an earlier attempt may or may not have "
                                       "stored the lead", attempts, last_status, cause="send.unknown",
                        maybe_stored=True)
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
    (so the sandbox does; the vendor does not document the order). Only that answer confirms
    the account; anything else is "could not confirm", with what came back. A still-valid
    cached token is used, so the check costs no generation.
    """
    tokens = TokenKeeper(session, conn, TokenStore(cache_dir, conn.base_url, conn.username),
                         Pacer(None, clock=clock, sleep=time.sleep), clock=clock, timeout=30.0,
                         monotonic=time.monotonic)
    payload = json.dumps({"userName": conn.username, "campaignName": ""}).encode()
    try:
        for _ in range(2):
            token = tokens.current()
            verdict = post_lead(session, conn, payload, token, 30.0)
            if verdict.kind is not VerdictKind.TOKEN_EXPIRED:
                break
            tokens.expired(token)
    except TokenUnavailable as e:
        raise AccountRefusal(f"could not confirm the account: {e}") from None
    if verdict.kind is VerdictKind.ACCOUNT:
        raise AccountRefusal(verdict.message)
    if verdict.kind is VerdictKind.TOKEN_EXPIRED:
        raise AccountRefusal("could not confirm the account: CloudAgent answered 'Token Expired' to a fresh token")
    expected = verdict.message.lower().rstrip(". ") == "please provide campaign details"
    if not (verdict.kind is VerdictKind.REJECTED and expected):
        raise AccountRefusal(f"could not confirm the account: CloudAgent did not give the expected answer "
                             f"('Please provide campaign details') but (HTTP {verdict.http_status}): {verdict.message}")
    _, exp = jwt_times(token)
    until = "an unknown time"
    if exp:
        try:
            until = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(exp))
        except (OverflowError, OSError, ValueError):  # an exp past what the platform's clock can show
            until = f"an expiry time that cannot be shown as a date (exp = {exp:g})"
    spent = ("a new token was generated for this check" if tokens.generations
             else "the cached token was used, no generation spent")
    return (f"OK: user {conn.username} at {conn.base_url}: API key accepted, account on TOKEN_AUTH; "
            f"token valid until {until} ({spent})")
