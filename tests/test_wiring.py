"""The command line's wiring: every setting checked by one rule whatever its source, the journal rule,
and the Environment that lets a test say "stderr is a terminal"."""

from __future__ import annotations

import io

import pytest
from typer.testing import CliRunner

from leadpush.cli import app
from leadpush.environment import Environment
from leadpush.journal import JournalChoice, keeps_journal
from leadpush.outcomes import ConfigError
from leadpush.settings import Profile, resolve

from .conftest import ENV, write_csv


def _profile(**values):
    return Profile("nightly", None, values, [])


@pytest.mark.parametrize("name, value, words", [
    ("timeout", 0, "timeout (from profile nightly"),
    ("timeout", float("inf"), "between 0.1 and 3600"),
    ("workers", 0, "workers (from profile nightly"),
    ("workers", 65, "between 1 and 64"),
    ("retries", 21, "retries (from profile nightly"),
    ("phone_format", "E.164", "phone-format (from profile nightly"),
    ("campaign_type", "agentwise", "must be one of any, agent-wise, skill-wise"),
])
def test_profile_values_pass_the_same_checks_as_flags(name, value, words):
    with pytest.raises(ConfigError) as e:
        resolve({}, _profile(**{name: value}))
    assert words in str(e.value)


def test_resolution_order_and_sources():
    s = resolve({"workers": (8, "flag"), "retries": (3, "default")}, _profile(workers=2, retries=5, priority=7))
    assert (s.workers, s.source("workers")) == (8, "flag")
    assert (s.retries, s.source("retries")) == (5, "profile nightly (None)")
    assert s.priority == "7"  # a profile may give a number: it travels as text, as a cell would
    assert s.source("rate") == "default" and s.rate == "100/min"


def test_a_bad_profile_value_is_one_line_exit_2(cli, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[profiles.p]\ntimeout = 0\n')
    p = write_csv(tmp_path / "l.csv", [["phone", "campaign"], ["9876543210", "C"]])
    r = cli("upload", p, "--profile", "p", "--config", cfg, "--sandbox")
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        f"Error: timeout (from profile p ({cfg})) must be between 0.1 and 3600, not 0"]


@pytest.mark.parametrize("choice, sandbox, keeps", [
    (JournalChoice(), False, True),
    (JournalChoice(), True, False),  # a demo leaves no files behind
    (JournalChoice(path="j.jsonl"), True, True),  # unless --journal names one
    (JournalChoice(keep=False), False, False),
])
def test_the_journal_rule(choice, sandbox, keeps):
    assert keeps_journal(choice, sandbox=sandbox) is keeps


@pytest.mark.parametrize("choice, sandbox, words", [
    (JournalChoice(resume=True, restart=True), False, "exclude each other"),
    (JournalChoice(keep=False, resume=True), False, "--resume needs the journal"),
    (JournalChoice(resume=True), True, "--resume needs the journal"),
])
def test_the_journal_rule_refuses_contradictions(choice, sandbox, words):
    with pytest.raises(ConfigError, match=words):
        keeps_journal(choice, sandbox=sandbox)


def _env(tty: bool) -> Environment:
    return Environment(stdin=io.BytesIO(), stdout=io.StringIO(), stderr=io.StringIO(), stderr_isatty=tty)


@pytest.mark.parametrize("command", [["validate"], ["upload", "--sandbox", "--rate", "6000/min"]])
def test_the_progress_bar_shows_only_when_stderr_is_a_terminal(tmp_path, home, command):
    rows = [[f"98765432{i:02d}", "demo_progressive"] for i in range(5)]
    p = write_csv(tmp_path / "l.csv", [["phone", "campaign"], *rows])
    runner = CliRunner()
    outputs = {}
    for tty in (True, False):
        env = _env(tty)
        r = runner.invoke(app, [*command, str(p), "--no-failures"], obj=env, env={**ENV, **home})
        assert r.exit_code == 0, (r.output, env.stderr.getvalue())
        assert "Row" in env.stdout.getvalue()  # the table went to the environment's stdout
        outputs[tty] = env.stderr.getvalue()
    label = "Checking " if command[0] == "validate" else "Uploading "
    bar = "\u2501"  # the bar's line
    assert label in outputs[True] and bar in outputs[True] and "5/" in outputs[True]  # validate: "5/?"
    assert bar not in outputs[False] and "\x1b[" not in outputs[False]


def test_the_command_line_does_not_import_requests_until_it_sends():
    # validate never sends: the HTTP stack (about 0.1 s to import) loads only in cli._sending.
    import subprocess
    import sys

    code = "import sys, leadpush.cli; print('requests' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("value, text", [
    (True, "TRUE"), (False, "FALSE"), (None, ""), ({"a": "é"}, '{"a": "é"}'), ([1, 2], "[1, 2]"),
    (__import__("decimal").Decimal("9.87654E+9"), "9.87654E+9"), (__import__("datetime").date(2030, 1, 2), "2030-01-02"),
])
def test_one_rule_turns_a_value_into_text_for_checks_and_every_file(value, text):
    from leadpush.checks import _text
    from leadpush.records import cell_text

    assert cell_text(value) == text
    assert _text(value) == text.strip()  # the checks read the same text, trimmed


def test_counts_of_one_are_singular(cli, tmp_path):
    p = write_csv(tmp_path / "one.csv", [["phone", "campaign"], ["9876543210", "C"]])
    r = cli("validate", p, "--quiet", "--no-failures")
    assert r.exit_code == 0 and f"{p}: 1 row: 1 valid; exit 0" in r.stdout, r.stdout
