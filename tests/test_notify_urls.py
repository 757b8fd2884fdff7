"""Heartbeat and webhook URLs as monitors hand them out: query strings, fragments, malformed ones,
and config show never printing their keys."""

from __future__ import annotations

import pytest
import requests

from leadpush.notify import Heartbeat

from .conftest import write_csv
from .listener import Listener
from .test_unattended import rows


def test_the_suffix_goes_into_the_path_not_the_query():
    with Listener() as hb, requests.Session() as session:
        for code in (0, 1):
            beat = Heartbeat(hb.url + "/ping/abc?k=secret#frag", session, timeout=5, warn=print)
            beat.start()
            beat.finish(code)
    assert hb.paths == ["GET /ping/abc/start?k=secret", "GET /ping/abc?k=secret",
                        "GET /ping/abc/start?k=secret", "GET /ping/abc/fail?k=secret"]


@pytest.mark.parametrize("option", ["--heartbeat", "--notify"])
@pytest.mark.parametrize("url", ["https://[::1", "https://host:notaport/x"])
def test_a_malformed_url_is_one_line_and_exit_2(cli, tmp_path, option, url):
    p = write_csv(tmp_path / "l.csv", rows(1))
    r = cli("upload", p, "--sandbox", option, url)
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "is not a URL" in lines[0], r.stderr


def test_a_malformed_url_in_a_profile_is_one_line_and_exit_2(cli, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[profiles.n]\nheartbeat = "https://[::1"\n', encoding="utf-8")
    r = cli("config", "show", "--profile", "n", "--config", cfg)
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "is not a URL" in r.stderr, r.stderr


def test_config_show_masks_webhook_paths_and_heartbeat_queries(cli, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[profiles.n]\n'
                   'notify = ["https://hooks.slack.com/services/T0/B0/sekrit", "mailto:ops@example.com"]\n'
                   'heartbeat = "https://hc-ping.com/?k=sekrit2"\n', encoding="utf-8")
    r = cli("config", "show", "--profile", "n", "--config", cfg)
    assert r.exit_code == 0, r.stderr
    assert "sekrit" not in r.stdout
    lines = {line.split()[0]: line for line in r.stdout.splitlines()[2:]}
    assert "https://hooks.slack.com/…, mailto:ops@example.com" in lines["notify"]
    assert "https://hc-ping.com/…" in lines["heartbeat"]


def test_notify_help_shows_the_smtp_table_name(cli):
    r = cli("upload", "--help", env={"COLUMNS": "200"})
    assert "mailto:ADDRESS via [smtp]" in " ".join(r.stdout.split())
