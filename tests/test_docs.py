"""The README documents every command and every option the command line has."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from leadpush.cli import app

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def _commands(command, path=()):
    """(command path, click command) for every command under the app, groups included."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = [(" ".join(p), c) for p, c in _commands(typer.main.get_command(app)) if p]
OPTIONS = sorted({(name, opt) for name, c in COMMANDS for param in c.params
                  for opt in (*param.opts, *param.secondary_opts) if opt.startswith("--") and opt != "--help"})


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
def test_every_command_is_in_the_readme(name):
    assert f"leadpush {name}" in README


@pytest.mark.parametrize("command, option", OPTIONS)
def test_every_option_is_in_the_readme(command, option):
    assert f"`{option}" in README or f"{option}`" in README or f" {option} " in README, \
        f"leadpush {command} {option} is not in the README"


def test_the_registry_is_walked():
    # The parametrization above is only as good as the walk: it must see the nested commands.
    assert {"validate", "upload", "sandbox", "config show", "auth check"} <= {n for n, _ in COMMANDS}
    assert ("upload", "--dry-run") in OPTIONS and ("validate", "--map") in OPTIONS
