"""E-mail notifications through a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import socket

import pytest

from leadpush.sandbox import Sandbox

from .conftest import write_csv
from .test_unattended import CONFIG, KEY, rows, stored

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.smtp import AuthResult  # noqa: E402

SMTP_PASSWORD = "smtp-pass-94c1"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Inbox:
    """The SMTP server's mailbox: every message it accepted, as bytes, with who logged in."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.raw: list[bytes] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.raw.append(envelope.content)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password.decode() == SMTP_PASSWORD)


@pytest.fixture
def smtp():
    mailbox = Inbox()
    controller = aiosmtpd_controller.Controller(
        mailbox, hostname="127.0.0.1", port=free_port(), authenticator=mailbox.authenticate,
        auth_require_tls=False)
    controller.start()
    try:
        yield controller.port, mailbox
    finally:
        controller.stop()


@pytest.fixture
def sb():
    with Sandbox(CONFIG, rate_limit=0) as server:
        yield server


@pytest.fixture
def run_env(sb, tmp_path):
    return {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops", "LEADPUSH_API_KEY": KEY,
            "LEADPUSH_CACHE_DIR": str(tmp_path / "cache"), "SMTP_PASSWORD": SMTP_PASSWORD}


def config(tmp_path, port, extra=""):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'''
[smtp]
host = "127.0.0.1"
port = {port}
starttls = false
username = "leadpush"
password_env = "SMTP_PASSWORD"
from = "leadpush@example.com"
{extra}

[profiles.nightly]
notify = ["mailto:ops@example.com"]
''', encoding="utf-8")
    cfg.chmod(0o600)
    return cfg


def test_the_mail_that_arrives(cli, tmp_path, run_env, smtp):
    port, mailbox = smtp
    p = write_csv(tmp_path / "tonight.csv", rows(3) + [["12", "Nightly"], ["34", "Nightly"], ["5a", "Nightly"]])
    r = cli("upload", p, "--profile", "nightly", "--config", config(tmp_path, port), "--quiet", env=run_env)
    assert r.exit_code == 1, r.stderr
    assert r.stderr == ""
    assert mailbox.logins == [("leadpush", SMTP_PASSWORD)]
    (msg,) = mailbox.messages
    assert msg["To"] == "ops@example.com" and msg["From"] == "leadpush@example.com"
    assert msg["Subject"] == "leadpush upload tonight.csv: 3 added, 3 invalid; exit 1"
    body = msg.get_body(("plain",)).get_content()
    assert "Top causes of failure:" in body
    assert "\n       1  phone number '12' has 2 digits" in body
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "tonight.csv.failures.csv"
    assert attachment.get_payload(decode=True) == (tmp_path / "tonight.csv.failures.csv").read_bytes()
    raw = mailbox.raw[0].decode("utf-8", "replace")
    assert KEY not in raw and SMTP_PASSWORD not in raw


def test_a_failures_file_over_the_limit_is_named_not_attached(cli, tmp_path, run_env, smtp):
    port, mailbox = smtp
    p = write_csv(tmp_path / "big.csv", rows(1) + [[f"x{i}", "Nightly"] for i in range(3000)])
    cfg = config(tmp_path, port, extra="attach_limit_kb = 1")
    r = cli("upload", p, "--profile", "nightly", "--config", cfg, "--quiet", env=run_env)
    assert r.exit_code == 1
    (msg,) = mailbox.messages
    assert not list(msg.iter_attachments())
    assert f"Not attached (over 1 KB): {tmp_path / 'big.csv.failures.csv'}" in msg.get_body(("plain",)).get_content()


def test_an_smtp_host_that_refuses_is_a_warning_and_nothing_is_lost(cli, tmp_path, run_env, sb):
    p = write_csv(tmp_path / "l.csv", rows(2))
    port = free_port()  # nothing listens there
    r = cli("upload", p, "--profile", "nightly", "--config", config(tmp_path, port), "--quiet", env=run_env)
    assert r.exit_code == 0
    assert r.stderr.strip().splitlines() == [
        "Warning: notification to mailto:ops@example.com not delivered: connection refused"]
    assert len(stored(sb)) == 2


def test_a_wrong_smtp_password_is_a_warning_without_the_password(cli, tmp_path, run_env, smtp):
    port, mailbox = smtp
    p = write_csv(tmp_path / "l.csv", rows(1))
    r = cli("upload", p, "--profile", "nightly", "--config", config(tmp_path, port, extra="timeout = 1"), "--quiet",
            env={**run_env, "SMTP_PASSWORD": "wrong-pass-1"})
    assert r.exit_code == 0
    assert r.stderr.strip() in (
        "Warning: notification to mailto:ops@example.com not delivered: the server answered 535",
        # smtplib tries the next login mechanism; aiosmtpd hangs up after the failures
        "Warning: notification to mailto:ops@example.com not delivered: the server closed the connection")
    assert "wrong-pass-1" not in r.stderr
    assert not mailbox.messages


@pytest.mark.parametrize("smtp_table, env_extra, words", [
    ("", {}, "a mailto: notification needs an [smtp] table with host and from"),
    ('[smtp]\nhost = "127.0.0.1"\nfrom = "a@b"\npassword = "x"\n', {}, "write password_env"),
    ('[smtp]\nhost = "127.0.0.1"\nfrom = "a@b"\npassword_env = "NOPE_PW"\n', {}, "names NOPE_PW, which is not set"),
    ('[smtp]\nhost = "mail.example.com"\nfrom = "a@b"\nstarttls = false\nusername = "u"\npassword_env = "PW"\n',
     {"PW": "pw-1"}, "refuses to send a password to mail.example.com without starttls = true"),
])
def test_bad_smtp_settings_are_one_line_before_anything_is_sent(cli, tmp_path, run_env, sb, smtp_table,
                                                                env_extra, words):
    cfg = tmp_path / "c.toml"
    cfg.write_text(smtp_table + '\n[profiles.n]\nnotify = ["mailto:ops@example.com"]\n', encoding="utf-8")
    p = write_csv(tmp_path / "l.csv", rows(1))
    r = cli("upload", p, "--profile", "n", "--config", cfg, env={**run_env, **env_extra})
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and words in r.stderr, r.stderr
    assert not stored(sb)


def test_config_show_lists_the_smtp_table(cli, tmp_path):
    cfg = config(tmp_path, 2525)
    r = cli("config", "show", "--profile", "nightly", "--config", cfg, env={"SMTP_PASSWORD": SMTP_PASSWORD})
    assert r.exit_code == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines()[2:]}
    assert lines["smtp.host"].split()[1] == "127.0.0.1" and f"[smtp] ({cfg})" in lines["smtp.host"]
    assert lines["smtp.password_env"].split()[1] == "SMTP_PASSWORD"
    assert "mailto:ops@example.com" in lines["notify"] and "profile nightly" in lines["notify"]
    assert SMTP_PASSWORD not in r.stdout
