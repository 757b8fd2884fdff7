"""Heartbeats and webhooks: pinged and posted at the start and end of every run, never in its way."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from leadpush.notify import Heartbeat
from leadpush.sandbox import Sandbox

from .conftest import write_csv
from .listener import Listener
from .test_unattended import CONFIG, KEY, rows, stored


@pytest.fixture
def sb():
    with Sandbox(CONFIG, rate_limit=0) as server:
        yield server


@pytest.fixture
def run_env(sb, tmp_path):
    return {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops", "LEADPUSH_API_KEY": KEY,
            "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}


def test_heartbeat_start_then_success(cli, tmp_path, run_env):
    p = write_csv(tmp_path / "l.csv", rows(2))
    with Listener() as hb:
        r = cli("upload", p, "--heartbeat", hb.url + "/ping/abc", "--quiet", env=run_env)
    assert r.exit_code == 0, r.stderr
    assert hb.paths == ["GET /ping/abc/start", "GET /ping/abc"]


@pytest.mark.parametrize("extra, code", [((), 1), (("--username", ""), 2)])
def test_heartbeat_fail_on_any_other_exit(cli, tmp_path, run_env, extra, code):
    p = write_csv(tmp_path / "l.csv", rows(2) + [["12", "Nightly"]])
    with Listener() as hb:
        r = cli("upload", p, "--heartbeat", hb.url, "--quiet", *extra, env=run_env)
    assert r.exit_code == code, r.stderr
    assert hb.paths == ["GET /start", "GET /fail"]


def test_a_monitor_that_never_answers_does_not_hold_up_the_run():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    warnings: list[str] = []
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hb"
        beat = Heartbeat(url, requests.Session(), timeout=0.3, warn=warnings.append)
        started = time.monotonic()
        beat.start()
        assert time.monotonic() - started < 0.2  # the start ping does not wait at all
        beat.finish(0)
        assert time.monotonic() - started < 2.0
    finally:
        silent.close()
    assert any("heartbeat http://127.0.0.1:" in w and "not delivered: timed out" in w for w in warnings), warnings


def test_an_unreachable_monitor_is_a_warning_and_the_exit_code_stands(cli, tmp_path, run_env):
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    p = write_csv(tmp_path / "l.csv", rows(1))
    r = cli("upload", p, "--heartbeat", f"http://127.0.0.1:{port}/hb", "--quiet", env=run_env)
    assert r.exit_code == 0
    assert f"Warning: heartbeat http://127.0.0.1:{port}/… not delivered: cannot connect" in r.stderr


def test_webhook_gets_the_json_summary_and_a_text_line_without_secrets(cli, tmp_path, run_env, sb):
    p = write_csv(tmp_path / "l.csv", rows(2) + [["12", "Nightly"]])
    with Listener() as hook:
        r = cli("upload", p, "--notify", hook.url + "/hook", "--notify", hook.url + "/second", "--json",
                env=run_env)
    assert r.exit_code == 1
    assert [x.path for x in hook.requests] == ["/hook", "/second"]
    sent = json.loads(hook.requests[0].body)
    printed = json.loads(r.stdout)
    assert {k: v for k, v in sent.items() if k != "text"} == printed  # the --json object, exactly
    assert sent["text"] == f"leadpush upload {p}: 3 rows: 2 added, 1 invalid; failures file " \
                           f"{tmp_path / 'l.csv.failures.csv'}; exit 1"
    for seen in hook.requests:
        raw = seen.body.decode() + json.dumps(seen.headers)
        assert KEY not in raw and "apiKey" not in raw and "Authorization" not in raw


def test_a_webhook_that_answers_500_is_a_warning_on_stderr_and_in_the_log(cli, tmp_path, run_env, sb):
    p = write_csv(tmp_path / "l.csv", rows(2))
    log = tmp_path / "run.log"
    with Listener(status=500) as hook:
        r = cli("upload", p, "--notify", hook.url + "/T000/B000/secretpath", "--quiet", "--log-file", log,
                env=run_env)
    assert r.exit_code == 0  # the leads went in: a broken webhook does not change that
    line = f"Warning: notification to {hook.url}/… not delivered: the webhook answered 500"
    assert r.stderr.strip().splitlines() == [line]
    assert log.read_text().splitlines()[-1].endswith(line)
    assert "secretpath" not in r.stderr  # a webhook's path is its key: never printed
    assert len(stored(sb)) == 2


def test_the_profile_notify_list_and_a_flag_that_replaces_it(cli, tmp_path, run_env):
    p = write_csv(tmp_path / "l.csv", rows(1))
    with Listener() as a, Listener() as b:
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[profiles.n]\nnotify = ["{a.url}/from-profile"]\nheartbeat = "{a.url}/hb"\n')
        r = cli("upload", p, "--profile", "n", "--config", cfg, "--quiet", env=run_env)
        assert r.exit_code == 0, r.stderr
        assert a.paths == ["GET /hb/start", "GET /hb", "POST /from-profile"]
        r = cli("upload", p, "--profile", "n", "--config", cfg, "--quiet", "--notify", b.url + "/flag",
                "--restart", env=run_env)
        assert b.paths == ["POST /flag"] and "POST /from-profile" not in a.paths[3:]


@pytest.mark.parametrize("url, words", [
    ("ftp://example.com/x", "is not an https:// URL or mailto:ADDRESS"),
    ("http://example.com/hook", "plain http is refused except to this machine"),
    ("mailto:nobody", "is not an address such as mailto:ops@example.com"),
])
def test_a_bad_notify_url_is_one_line_before_anything_is_sent(cli, tmp_path, run_env, sb, url, words):
    p = write_csv(tmp_path / "l.csv", rows(1))
    r = cli("upload", p, "--notify", url, env=run_env)
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and words in r.stderr
    assert not stored(sb)


def test_the_inbox_notifies_once_with_every_file(cli, tmp_path, run_env):
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "a.csv", rows(1))
    write_csv(folder / "b.csv", rows(1, start=9300000050))
    with Listener() as hook:
        r = cli("inbox", folder, "--settle", "0", "--notify", hook.url, "--heartbeat", hook.url + "/hb",
                env=run_env)
    assert r.exit_code == 0, r.stderr
    assert hook.paths == ["GET /hb/start", "GET /hb", "POST /"]
    sent = json.loads(hook.requests[-1].body)
    assert sent["command"] == "inbox" and [f["file"] for f in sent["files"]] == ["a.csv", "b.csv"]
    assert sent["text"].startswith(f"leadpush inbox {folder}: 2 files (2 done); rows: 2 added; exit 0")


def test_notifications_wait_for_nothing_threads_are_daemons():
    # The heartbeat's threads never keep the process alive after the run.
    beat = Heartbeat("http://127.0.0.1:9/x", requests.Session(), timeout=0.1, warn=lambda m: None)
    beat.start()
    assert all(t.daemon for t in threading.enumerate() if t.name == "leadpush-heartbeat")
    beat.finish(1)


def test_no_secret_leaves_in_a_webhook_or_a_heartbeat():
    from leadpush.notify import RunReport, post_webhook

    with Listener() as hook:
        session = requests.Session()
        report = RunReport({"command": "upload", "file": "l.csv", "exit_code": 2,
                            "error": f"the server said: bad key {KEY}"}, f"leadpush upload l.csv: {KEY}; exit 2")
        post_webhook(hook.url + "/hook", report, session, timeout=2, secrets=(KEY,))
        sent = hook.requests[0].body.decode()
        assert KEY not in sent and json.loads(sent)["error"] == "the server said: bad key ***"
        with pytest.raises(Exception, match="would have carried a secret"):
            post_webhook(f"{hook.url}/{KEY}", report, session, timeout=2, secrets=(KEY,))
        warnings: list[str] = []
        beat = Heartbeat(f"{hook.url}/{KEY}", session, timeout=2, warn=warnings.append, secrets=(KEY,))
        beat.start()
        beat.finish(0)
    assert [r.path for r in hook.requests] == ["/hook"]  # neither the webhook nor the pings went out
    assert len(warnings) == 2 and all("would have carried a secret" in w for w in warnings)
    assert all(KEY not in w for w in warnings)


def test_an_inbox_that_is_not_a_folder_pings_fail(cli, tmp_path, run_env):
    with Listener() as hb:
        r = cli("inbox", tmp_path / "nope", "--heartbeat", hb.url, env=run_env)
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [f"Error: {tmp_path / 'nope'}: no such inbox folder"]
    assert hb.paths == ["GET /start", "GET /fail"]
