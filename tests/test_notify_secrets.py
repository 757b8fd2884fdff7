"""Notifications carry no secret even when CloudAgent echoes one back (the sandbox is told to echo
the API key in a rejection, so these tests can fail)."""

from __future__ import annotations

import json

from leadpush.sandbox import Sandbox

from .conftest import read_csv, write_csv
from .listener import Listener
from .test_unattended import CONFIG, KEY, rows

ECHO = [{"phone": "9300000001", "times": 0,
         "body": '{"status": "FAIL", "message": "bad request from key {api_key} (apiKey={api_key_url})"}'}]


def test_a_key_echoed_by_cloudagent_reaches_neither_the_webhook_nor_the_failures_file(cli, tmp_path):
    p = write_csv(tmp_path / "l.csv", rows(3))
    with Sandbox(CONFIG, rate_limit=0, answers=ECHO) as sb, Listener() as hook:
        env = {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops", "LEADPUSH_API_KEY": KEY,
               "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
        r = cli("upload", p, "--notify", hook.url + "/hook", "--json", env=env)
    assert r.exit_code == 1, r.stderr
    failures = read_csv(tmp_path / "l.csv.failures.csv")
    assert [f["phone"] for f in failures] == ["9300000001"]
    assert "bad request from key ***" in failures[0]["leadpush_error"]  # it was echoed, and scrubbed
    sent = hook.requests[0].body.decode()
    assert json.loads(sent)["exit_code"] == 1
    assert KEY not in sent and KEY not in r.stdout + r.stderr
