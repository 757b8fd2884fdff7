"""The client's parts: every documented answer's verdict, URLs, JWT times, the token keeper."""

from __future__ import annotations

import contextlib
import os
import stat

import pytest

from leadpush.cloudagent import (
    Connection,
    NoToken,
    Sender,
    TokenKeeper,
    TokenStore,
    TokenUnavailable,
    Verdict,
    VerdictKind,
    check_base_url,
    check_secret,
    classify,
    jwt_times,
    make_session,
    parse_answer,
)
from leadpush.outcomes import AccountRefusal, ConfigError
from leadpush.pacing import Pacer
from leadpush.sandbox import Sandbox
from tests.conftest import FakeClock

# Every body in docs/cloudagent.md's answer tables, exactly as CloudAgent sends it, and its verdict.
ANSWERS = [
    ('{"status": "false", "message": "Token Expired", "data": null}', "token-expired"),
    ('{"status": "false", "message": "Token Should Not be Null or Empty.", "data": null}', "account"),
    ('{"status": "false", "message": "Invalid action.", "data": null}', "account"),
    ('{"status": "false", "message": "Api Key Should Not be Null or Empty.", "data": null}', "account"),
    ('{"status": "false", "message": "Invalid User Details", "data": null}', "account"),
    ('{"status": "false", "message": "Username Should Not be Null or Empty.", "data": null}', "account"),
    ('{"status": "Error", "message": "Please provide campaign details"}', "rejected"),
    ('{"status": "FAIL",\n"message": "No User Found or Campaign Name is Invalid"}', "campaign"),
    ('{"status": "Fail", "message": "The selected campaign is not outbound"}', "campaign"),
    ('{"status": "error",\n"message": "phone number should be numeric and must be between 3 to 16 digits and '
     'allows prefix +"}', "rejected"),
    ('{"status": "Error", "message": "The priority value must be numeric and range from 0 to 99."}', "rejected"),
    ('{"status": "Error", "message": "Invalid date format. Please enter date in format yyyy-MM-dd"}', "rejected"),
    ('"status": "FAIL", "message": "Agent Is Empty!"', "rejected"),
    ('"status": "FAIL",\n"message": "Agent Is Empty!"', "rejected"),
    ('"status": "FAIL",\n"message": "Agent is not correctly mapped!"', "rejected"),
    ('"status": "FAIL",\n"message": "Please provide valid skill"', "rejected"),
    ('{"status": "SUCCESS", "message": "Number Already Exist"}', "exists"),
    ('{\n"status": "Success",\n"message": "Number Already Existed"\n}', "exists"),
    ('{"status": "SUCCESS", "message": "SuccessFully Updated"}', "added"),
    ('{"status": "SUCCESS", "message": "SuccessFully Updated, IVR was started"}', "added"),
    ('{"status": "Success", "message": "SuccessFully Updated xxxx Campaign"}', "added"),
    ('{"status": "Success", "message": "Campaign xxxxx Is Already Started"}', "added"),
    ('{"status": "Success", "message": "Please pass the valid Campaign action SuccessFully Updated x Campaign Data"}',
     "added"),
    ('{"status": "Success", "message": "SuccessFully Updated Progressive Campaign Stoped"}', "added"),
    ('{"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}', "added"),
]


@pytest.mark.parametrize("body,kind", ANSWERS)
def test_every_documented_answer(body, kind):
    verdict = classify(200, body, {})
    assert verdict.kind == kind
    if kind == "rejected":
        assert verdict.message == parse_answer(body)["message"]  # the server's words, verbatim


def test_invalid_action_says_what_to_fix():
    v = classify(200, '{"status": "false", "message": "Invalid action.", "data": null}', {})
    assert "not TOKEN_AUTH" in v.message


@pytest.mark.parametrize("status,body,kind", [
    (429, "<html>Too Many</html>", "transient"),
    (503, "<html><h1>Service Unavailable</h1></html>", "transient"),
    (502, "", "ambiguous"),
    (504, "", "ambiguous"),
    (500, "<html>oops</html>", "ambiguous"),
    (401, "", "account"),
    (404, "<html>Not Found</html>", "account"),
    (200, "<html>a proxy login page</html>", "unrecognised"),
    (200, "", "unrecognised"),
    (200, '{"status": "weird", "message": "Queued maybe"}', "unrecognised"),
    (200, '{"Status": "SUCCESS", "Message": "SuccessFully Updated"}', "added"),
])
def test_undocumented_answers(status, body, kind):
    assert classify(status, body, {"Retry-After": "7"}).kind == kind


def test_undocumented_answer_is_never_success_and_keeps_its_text():
    v = classify(200, '{"status": "weird", "message": "Queued maybe"}', {})
    assert v.kind == "unrecognised" and "Queued maybe" in v.message
    v = classify(200, "<html>portal</html>", {})
    assert v.message == "unrecognised answer (HTTP 200): <html>portal</html>"


def test_retry_after_is_read():
    assert classify(429, "", {"Retry-After": "12"}).retry_after == 12.0
    assert classify(503, "", {}).retry_after is None


@pytest.mark.parametrize("url,ok", [
    ("https://in1-ccaas-api.ozonetel.com", True), ("https://api.ccaas.ozonetel.com/", True),
    ("http://127.0.0.1:8765", True), ("http://localhost:1", True), ("http://[::1]:8765", True),
    ("http://in1-ccaas-api.ozonetel.com", False), ("http://10.0.0.5", False), ("ftp://x", False), ("nope", False),
])
def test_base_url_rules(url, ok):
    if ok:
        assert check_base_url(url) == url.rstrip("/")
    else:
        with pytest.raises(ConfigError):
            check_base_url(url)


def test_secret_with_control_characters_is_refused_without_echo():
    with pytest.raises(ConfigError) as e:
        check_secret("abc\ndef", "the API key")
    assert "abc" not in str(e.value)


def test_jwt_times_from_the_vendors_shape():
    assert jwt_times("x.eyJpYXQiOjEwMCwiZXhwIjozNzAwfQ.sig") == (100.0, 3700.0)
    assert jwt_times("not-a-jwt") == (None, None)


@contextlib.contextmanager
def clocked_sandbox(**options):
    """A sandbox and a session that share one fake clock (sb.clock)."""
    clock = FakeClock()
    with Sandbox(clock=clock, rate_limit=0, **options) as server, make_session(1) as session:
        server.clock = clock
        yield server, session


@pytest.fixture
def sb():
    with clocked_sandbox() as (server, _):
        yield server


def keeper(sb, tmp_path, session, **kw):
    conn = Connection(sb.base_url, "demo", "demo-key")
    clock = sb.clock
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    store = TokenStore(tmp_path, sb.base_url, "demo")
    return TokenKeeper(session, conn, store, pacer, clock=clock, timeout=5, **kw), store


def test_token_is_cached_0600_and_reused_across_keepers(sb, tmp_path):
    with make_session(1) as s:
        k1, store = keeper(sb, tmp_path, s)
        token = k1.current()
        assert k1.current() == token and k1.generations == 1
        assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
        k2, _ = keeper(sb, tmp_path, s)
        assert k2.current() == token and k2.generations == 0  # a second run costs no generation
    assert sb.state.stats_view()["tokens_issued"] == 1


def test_token_refreshed_shortly_before_exp_with_a_margin_scaled_to_its_lifetime(tmp_path):
    with clocked_sandbox(token_ttl=10) as (server, s):
        clock = server.clock
        k, _ = keeper(server, tmp_path, s)
        first = k.current()
        clock.advance(8.5)  # 1.5 s left of 10: outside the 1 s margin (10% of the lifetime)
        k.used(first)
        assert k.current() == first
        clock.advance(0.6)
        assert k.current() != first and k.generations == 2


def test_fresh_token_is_used_before_it_is_replaced(tmp_path):
    with clocked_sandbox(token_ttl=10) as (server, s):
        k, _ = keeper(server, tmp_path, s)
        first = k.current()
        server.clock.advance(9.5)  # inside the refresh margin (the last second of ten)...
        assert k.current() == first  # ...but never used yet: not regenerated
        k.used(first)
        assert k.current() != first and k.generations == 2  # used once: now it is replaced


def test_expired_rereads_the_cache_before_generating(sb, tmp_path):
    with make_session(1) as s:
        k1, _ = keeper(sb, tmp_path, s)
        k2, _ = keeper(sb, tmp_path, s)
        old = k1.current()
        assert k2.current() == old
        new = k2.expired(old)  # another run saw 'Token Expired' first and refreshed
        assert new != old
        before = k1.generations
        assert k1.expired(old) == new and k1.generations == before  # found in the cache, not generated again
    assert sb.state.stats_view()["tokens_issued"] == 2


def test_cap_is_kept_across_runs(sb, tmp_path):
    store = TokenStore(tmp_path, sb.base_url, "demo")
    store.save({"generations": [sb.clock() - 60 * i for i in range(10)]})
    with make_session(1) as s:
        k, _ = keeper(sb, tmp_path, s)
        with pytest.raises(AccountRefusal, match="10 tokens were generated for user demo in the last hour"):
            k.current()
    assert sb.state.stats_view()["tokens_issued"] == 0


def test_wrong_key_is_an_account_refusal_without_the_key(sb, tmp_path):
    with make_session(1) as s:
        conn = Connection(sb.base_url, "demo", "wrong-key-XYZ")
        k = TokenKeeper(s, conn, TokenStore(tmp_path, sb.base_url, "demo"),
                        Pacer(None, clock=sb.clock, sleep=sb.clock.sleep), clock=sb.clock, timeout=5)
        with pytest.raises(AccountRefusal) as e:
            k.current()
        assert "Invalid userName or apiKey" in str(e.value) and "wrong-key-XYZ" not in str(e.value)


class _NoSecondToken:
    """A token keeper whose first token is the last one to be had."""

    def __init__(self, refusal):
        self.refusal, self.given = refusal, 0

    def current(self):
        self.given += 1
        if self.given > 1:
            raise self.refusal
        return "eyJh.eyJi.c2ln"

    def expired(self, token):
        raise self.refusal

    def used(self, token):
        pass


@pytest.mark.parametrize(("answers", "check_duplicate", "maybe_stored"), [
    ([], "FALSE", False),  # no request went out
    ([VerdictKind.TOKEN_EXPIRED], "FALSE", False),  # refused unread: nothing stored
    ([VerdictKind.TRANSIENT], "FALSE", False),  # never reached (or 429, 503): nothing stored
    ([VerdictKind.AMBIGUOUS], "TRUE", True),  # perhaps stored; resent, but no token for the resend
])
@pytest.mark.parametrize("refusal", [AccountRefusal("the cap"), TokenUnavailable("no answer")])
def test_no_token_says_whether_an_earlier_attempt_may_have_stored_the_lead(answers, check_duplicate,
                                                                           maybe_stored, refusal):
    clock = FakeClock()
    tokens = _NoSecondToken(refusal)
    if not answers:
        tokens.given = 1
    sender = Sender(None, Connection("http://127.0.0.1:9", "demo", "k"), tokens,
                    Pacer(None, clock=clock, sleep=clock.sleep), clock=clock, sleep=clock.sleep, timeout=5,
                    retries=3)
    script = iter(answers)
    sender._exchange = lambda payload, token, campaign="": Verdict(next(script), "said")
    with pytest.raises(NoToken) as e:
        sender.send({"phoneNumber": "9100000001", "campaignName": "Main", "checkDuplicate": check_duplicate},
                    lambda: False)
    assert e.value.refusal is refusal and e.value.maybe_stored is maybe_stored and str(e.value) == str(refusal)


def test_session_pool_is_sized_to_the_workers():
    with make_session(8) as s:
        adapter = s.get_adapter("https://x")
        assert adapter._pool_maxsize == 8 and adapter.max_retries.total == 0


def test_parse_answer_brace_less_and_keys_any_case():
    assert parse_answer('"status": "FAIL", "message": "Agent Is Empty!"') == {"status": "FAIL",
                                                                            "message": "Agent Is Empty!"}
    assert parse_answer('{"STATUS": "x"}') == {"status": "x"}
    assert parse_answer("[1]") is None and parse_answer("<html>") is None


def test_session_reads_the_environment_once(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/custom.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "")
    with make_session(2, "https://in1-ccaas-api.ozonetel.com") as s:
        assert s.trust_env is False and s.verify == "/etc/ssl/custom.pem"
        assert s.proxies.get("https") == "http://proxy.invalid:3128"
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with make_session(2, "http://127.0.0.1:8765") as s:
        assert "https" not in s.proxies and "http" not in s.proxies

