"""leadpush config show: the effective settings, where each came from, secrets masked; profile errors."""

from __future__ import annotations

from .conftest import write_config
from .test_unattended import CONFIG as CONFIG  # the accounts the shared `sb` fixture serves
from .test_unattended import KEY


def test_config_precedence_and_masking(cli, tmp_path, sb):
    cfg = write_config(tmp_path / "config.toml", f"""
[profiles.nightly]
base_url = "{sb.base_url}"
username = "from-profile"
api_key_env = "NIGHTLY_KEY"
rate = "50/min"
workers = 2
campaign = "Nightly"
[profiles.nightly.map]
"Mobile No" = "phoneNumber"
""")
    env = {"NIGHTLY_KEY": KEY, "LEADPUSH_USERNAME": "from-env"}
    r = cli("config", "show", "--profile", "nightly", "--config", cfg, env=env)
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line for line in r.stdout.splitlines()[2:]}
    assert "from-env" in lines["username"] and "environment (LEADPUSH_USERNAME)" in lines["username"]
    assert "50/min" in lines["rate"] and "profile nightly" in lines["rate"]
    assert lines["workers"].split()[1] == "2" and "profile nightly" in lines["workers"]
    assert "default" in lines["retries"]
    # By the name the profile gives it, as written there.
    assert '"Mobile No=phoneNumber"' in lines["map"] and "profile nightly" in lines["map"]
    assert "map_options" not in r.stdout
    assert "(set, hidden)" in lines["api_key"] and "NIGHTLY_KEY" in lines["api_key"]
    assert KEY not in r.stdout
    r = cli("config", "show", "--profile", "nightly", "--config", cfg, "--username", "from-flag", env=env)
    assert "from-flag" in r.stdout and "flag" in r.stdout


def test_profile_errors(cli, tmp_path):
    cfg = write_config(tmp_path / "config.toml", "[profiles.a]\nworkers = 'many'\n")
    r = cli("config", "show", "--profile", "a", "--config", cfg)
    assert r.exit_code == 2 and "workers has the wrong type" in r.stderr
    r = cli("config", "show", "--profile", "nope", "--config", cfg)
    assert r.exit_code == 2 and "no profile 'nope' (profiles: a)" in r.stderr
    r = cli("config", "show", "--config", tmp_path / "missing.toml")
    assert r.exit_code == 2 and "no such config file" in r.stderr


def test_key_in_a_config_file_readable_by_others_is_warned_about(cli, tmp_path):
    text = '[profiles.p]\napi_key = "secret-in-file-123"\nusername = "ops"\n'
    cfg = write_config(tmp_path / "config.toml", text, mode=0o644)
    r = cli("config", "show", "--profile", "p", "--config", cfg)
    assert f"Warning: {cfg} holds an API key and other users can read it; fix with: chmod 600 {cfg}" in r.stderr
    assert "secret-in-file-123" not in r.stdout + r.stderr
    cfg.chmod(0o600)
    assert "Warning" not in cli("config", "show", "--profile", "p", "--config", cfg).stderr


def test_an_unset_api_key_env_is_shown_not_refused_while_upload_and_auth_check_still_refuse(cli, tmp_path, sb):
    cfg = write_config(tmp_path / "config.toml", f"""
[profiles.nightly]
base_url = "{sb.base_url}"
username = "ops"
api_key_env = "ACME_CLOUDAGENT_KEY"
rate = "100/min"
campaign = "Nightly"
""")
    env = {"LEADPUSH_API_KEY": None, "ACME_CLOUDAGENT_KEY": None}  # unset
    r = cli("config", "show", "--config", cfg, "--profile", "nightly", env=env)
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line for line in r.stdout.splitlines()[2:]}
    assert lines["api_key"].split(None, 1)[1].startswith("(not set)")
    assert "api_key_env ACME_CLOUDAGENT_KEY is not set" in lines["api_key"] and "profile nightly" in lines["api_key"]
    assert "100/min" in lines["rate"] and "Nightly" in lines["campaign"]  # every other setting listed
    assert "Error" not in r.stderr
    leads = tmp_path / "leads.csv"
    leads.write_text("phone\n9100000001\n")
    for args in (("upload", leads), ("auth", "check")):
        r = cli(*args, "--config", cfg, "--profile", "nightly", env=env)
        assert r.exit_code == 2 and "api_key_env names ACME_CLOUDAGENT_KEY, which is not set" in r.stderr, r.output
