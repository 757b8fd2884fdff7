"""Shared test helpers: the real CLI through Typer's runner, and files in tmp_path."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from typer.testing import CliRunner

from leadpush.cli import app
from leadpush.sandbox import Sandbox

# On CI the property tests draw the same examples every run (a red build always reproduces);
# elsewhere they explore anew each time.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

# Wide enough that rich never wraps a table cell the tests look for.
ENV = {"COLUMNS": "250", "NO_COLOR": "1", "LEADPUSH_API_KEY": None, "LEADPUSH_USERNAME": None,
       "LEADPUSH_BASE_URL": None, "LEADPUSH_TOKEN": None, "LEADPUSH_PROFILE": None, "LEADPUSH_CONFIG": None,
       "LEADPUSH_CACHE_DIR": None}


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory, monkeypatch):
    """Every test's run ledger lives in a folder of its own, never the user's data folder."""
    path = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("LEADPUSH_DATA_DIR", str(path))
    monkeypatch.setenv("XDG_DATA_HOME", str(path / "xdg"))
    return path


@pytest.fixture
def home(tmp_path_factory):
    """A config and cache home of the test's own: never the user's ~/.config/leadpush or cache."""
    root = tmp_path_factory.mktemp("home")
    return {"XDG_CONFIG_HOME": str(root / "config"), "XDG_CACHE_HOME": str(root / "cache")}


@pytest.fixture
def cli(home):
    runner = CliRunner()

    def invoke(*args: str, input: str | bytes | None = None, env: dict | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input, env={**ENV, **home, **(env or {})})

    return invoke


def write_config(path: Path, text: str, mode: int = 0o600) -> Path:
    """A config file with the permissions given (0600: readable by its owner only)."""
    path.write_text(text)
    path.chmod(mode)
    return path


def write_csv(path: Path, rows: list[list[str]], **kw) -> Path:
    buf = io.StringIO()
    csv.writer(buf, **kw).writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class FakeClock:
    """A clock tests move by hand, so nothing waits for real seconds."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sb(request):
    """A sandbox serving the test module's CONFIG (the demo account where it has none), unthrottled.

    A module that needs another sandbox (a fake clock, faults) defines its own `sb`.
    """
    with Sandbox(getattr(request.module, "CONFIG", None), rate_limit=0) as server:
        yield server


# ---------------------------------------------------------------------------- shared by the process tests

def stored(sb, campaign="Nightly", user="ops"):
    """How many times the sandbox holds each phone of one campaign."""
    leads = sb.state.leads_view()["accounts"][user]["campaigns"][campaign]["leads"]
    return Counter(lead["phoneNumber"] for lead in leads)


def rows(n, start=9300000000, campaign="Nightly"):
    """A lead file's rows: a header and n numbered leads of one campaign."""
    return [["phone", "campaign"]] + [[str(start + i), campaign] for i in range(n)]


def leadpush(*args, env, wait=True, input=None, cwd=None):
    """leadpush as a real process: (exit code, stdout, stderr), or the process when wait=False."""
    proc = subprocess.Popen([sys.executable, "-m", "leadpush", *map(str, args)],
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    if not wait:
        return proc
    out, err = proc.communicate(input, timeout=120)
    return proc.returncode, out, err


def wait_for(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)
