"""leadpush auth check: user, key and TOKEN_AUTH checked with the cached token, nothing stored."""

from __future__ import annotations

import json

from .test_unattended import CONFIG as CONFIG  # the accounts the shared `sb` fixture serves
from .test_unattended import KEY


def test_auth_check_uses_the_cached_token(cli, tmp_path, sb):
    env = {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops", "LEADPUSH_API_KEY": KEY,
           "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
    r = cli("auth", "check", env=env)
    assert r.exit_code == 0, r.output
    assert "OK: user ops" in r.stdout and "TOKEN_AUTH" in r.stdout and "a new token was generated" in r.stdout
    r = cli("auth", "check", env=env)
    assert "the cached token was used, no generation spent" in r.stdout
    assert sb.state.stats_view()["tokens_issued"] == 1
    assert sb.state.leads_view()["accounts"]["ops"]["campaigns"]["Nightly"]["leads"] == []
    token = json.loads(next((tmp_path / "cache" / "tokens").glob("*.json")).read_text())["token"]
    assert token not in r.stdout + r.stderr
    r = cli("auth", "check", env={**env, "LEADPUSH_USERNAME": "basic", "LEADPUSH_API_KEY": "basic-key"})
    assert r.exit_code == 3 and "not TOKEN_AUTH" in r.stderr
    r = cli("auth", "check", env={**env, "LEADPUSH_API_KEY": "wrong"})
    assert r.exit_code == 3 and "Invalid User Details" in r.stderr  # the cached token, the wrong key
