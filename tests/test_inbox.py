"""`leadpush inbox`: every file dropped in a folder loaded once, filed under done/ or failed/, safe under cron."""

from __future__ import annotations

import json
import os
import time
from collections import Counter

import pytest

from .conftest import read_csv, write_csv
from .test_unattended import CONFIG as CONFIG  # the accounts the shared `sb` fixture serves
from .test_unattended import KEY, leadpush, rows, stored, wait_for


@pytest.fixture
def env(sb, tmp_path, home):
    return {**os.environ, **home, "LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops",
            "LEADPUSH_API_KEY": KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1", "LEADPUSH_PROFILE": "", "LEADPUSH_CONFIG": ""}


@pytest.fixture
def inbox(tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def drop(folder, name, table, *, age=120.0):
    """A file as a finished transfer leaves it: written, then untouched for `age` seconds."""
    path = write_csv(folder / name, table)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def layout(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".leadpush-inbox" not in p.parts
                  and p.is_file())


def test_files_are_loaded_oldest_first_and_filed_with_their_reports(sb, inbox, env):
    drop(inbox, "b.csv", rows(2, start=9300000100), age=100)
    drop(inbox, "a.csv", rows(2, start=9300000200) + [["12", "Nightly"]], age=200)
    (inbox / "broken.json").write_text("[{\"phone\": ", encoding="utf-8")
    os.utime(inbox / "broken.json", (time.time() - 300, time.time() - 300))
    drop(inbox, "notes.md", [["not a lead file"]], age=400)
    code, out, err = leadpush("inbox", inbox, "--rate", "6000/min", env=env)
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["broken.json", "a.csv", "b.csv"]  # oldest first
    assert lines[0].endswith("exit 2; moved to " + str(inbox / "failed" / "broken.json"))
    assert lines[1] == (f"a.csv: 2 added, 1 invalid; failures file {inbox / 'done' / 'a.csv.failures.csv'}; exit 1; "
                        f"moved to {inbox / 'done' / 'a.csv'}")
    assert lines[2] == f"b.csv: 2 added; exit 0; moved to {inbox / 'done' / 'b.csv'}"
    assert lines[3] == (f"inbox {inbox}: 3 files (2 done, 1 failed); rows: 4 added, 1 invalid; "
                        f"not lead files, left alone: notes.md; exit 2")
    assert code == 2  # the worst of its files
    assert layout(inbox) == ["done/a.csv", "done/a.csv.failures.csv", "done/a.csv.results.csv", "done/b.csv",
                             "done/b.csv.results.csv", "failed/broken.json", "failed/broken.json.error.txt",
                             "notes.md"]
    assert "broken.json" in (inbox / "failed" / "broken.json.error.txt").read_text()
    assert [r["status"] for r in read_csv(inbox / "done" / "a.csv.results.csv")] == ["added", "added", "invalid"]
    assert sum(stored(sb).values()) == 4


def test_pattern_and_other_folders(sb, inbox, tmp_path, env):
    drop(inbox, "leads_1.csv", rows(1))
    drop(inbox, "other.csv", rows(1, start=9300000500))
    code, out, err = leadpush("inbox", inbox, "--pattern", "leads_*.csv", "--done", tmp_path / "archive",
                              "--json", env=env)
    assert code == 0, err
    report = json.loads(out)
    assert [f["file"] for f in report["files"]] == ["leads_1.csv"]
    assert (tmp_path / "archive" / "leads_1.csv").exists() and (inbox / "other.csv").exists()


def test_a_file_still_being_written_is_left_alone(sb, inbox, env):
    drop(inbox, "done_early.csv", rows(1))
    slow = inbox / "slow.csv"
    slow.write_text("phone,campaign\n9300000001,Nightly\n", encoding="utf-8")  # just written: mtime is now
    (inbox / "big.csv.part").write_text("phone,campaign\n", encoding="utf-8")
    code, out, err = leadpush("inbox", inbox, "--settle", "30", env=env)
    assert code == 0, err
    assert out.splitlines()[-1].endswith("1 file (1 done); rows: 1 added; 2 still being written; exit 0")
    assert slow.exists() and (inbox / "big.csv.part").exists()
    # the writer finishes; once it has been quiet for the settle time, the next run takes it
    with open(slow, "a", encoding="utf-8") as f:
        f.write("9300000002,Nightly\n")
    then = time.time() - 60
    os.utime(slow, (then, then))
    code, out, err = leadpush("inbox", inbox, "--settle", "30", env=env)
    assert code == 0 and "slow.csv: 2 added" in out
    assert stored(sb)["9300000002"] == 1


def test_the_same_content_is_never_loaded_twice_even_renamed(sb, inbox, env):
    drop(inbox, "monday.csv", rows(3))
    assert leadpush("inbox", inbox, "--no-check-duplicate", env=env)[0] == 0
    drop(inbox, "tuesday.csv", rows(3))  # the same list, sent again under tonight's name
    drop(inbox, "monday.csv", rows(3))  # and under last night's name
    code, out, err = leadpush("inbox", inbox, "--no-check-duplicate", env=env)
    assert code == 0, err
    assert "tuesday.csv: not loaded: the same content as monday.csv" in out
    assert layout(inbox) == ["done/monday.2.csv", "done/monday.2.csv.duplicate.txt", "done/monday.csv",
                             "done/monday.csv.results.csv", "done/tuesday.csv", "done/tuesday.csv.duplicate.txt"]
    assert set(stored(sb).values()) == {1} and len(stored(sb)) == 3


def test_kill_9_mid_file_then_the_next_cron_run_resumes_it(sb, inbox, env):
    drop(inbox, "big.csv", rows(40))
    proc = leadpush("inbox", inbox, "--rate", "20/s", "--workers", "2", env=env, wait=False)
    wait_for(lambda: sum(stored(sb).values()) >= 8)
    proc.kill()
    proc.wait()
    assert (inbox / "big.csv").exists() and not (inbox / "done").exists()
    code, out, err = leadpush("inbox", inbox, "--rate", "6000/min", env=env)
    assert code == 0, err
    after = stored(sb)
    # Nothing lost; nothing sent twice but, at most, the 2 rows in flight when the process was killed
    # (their outcome unknown: sent again with checkDuplicate TRUE, which CloudAgent answers "exists").
    assert len(after) == 40 and set(after.values()) == {1}
    assert sb.state.stats["AddCampaignData"]["exists"] <= 2
    statuses = Counter(r["status"] for r in read_csv(inbox / "done" / "big.csv.results.csv"))
    assert statuses["skipped"] >= 8 - 2 and statuses["skipped"] + statuses["added"] + statuses["exists"] == 40


def test_two_inbox_runs_at_once_and_files_dropped_during_a_run(sb, inbox, env):
    drop(inbox, "first.csv", rows(40))
    proc = leadpush("inbox", inbox, "--rate", "10/s", env=env, wait=False)
    wait_for(lambda: sum(stored(sb).values()) >= 2)
    late = drop(inbox, "late.csv", rows(2, start=9300000900))
    code, out, err = leadpush("inbox", inbox, env=env)
    assert code == 0  # cron every few minutes: an overlap is normal, not an alert
    assert f"Nothing to do: the inbox {inbox} is being uploaded by process {proc.pid}" in err
    assert out.strip().endswith("0 files; exit 0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "first.csv: 40 added" in out and "late.csv" not in out  # taken on the next run, not this one
    assert late.exists()
    code, out, err = leadpush("inbox", inbox, env=env)
    assert code == 0 and "late.csv: 2 added" in out


def test_an_account_refusal_stops_the_inbox_and_leaves_the_files(sb, inbox, env):
    drop(inbox, "a.csv", rows(2), age=200)
    drop(inbox, "b.csv", rows(2, start=9300000300), age=100)
    code, out, err = leadpush("inbox", inbox, env={**env, "LEADPUSH_API_KEY": "wrong-key"})
    assert code == 3, err
    assert "stopped: a.csv: exit 3" in out.splitlines()[-1]
    assert layout(inbox) == ["a.csv", "b.csv"]
    assert leadpush("inbox", inbox, env=env)[0] == 0  # fixed: the next run loads both
    assert len(stored(sb)) == 4


def test_an_inbox_that_is_not_a_folder_is_one_line(cli, tmp_path):
    f = tmp_path / "file.csv"
    f.write_text("phone\n", encoding="utf-8")
    for target, words in ((f, "the inbox is not a folder"), (tmp_path / "nope", "no such inbox folder")):
        r = cli("inbox", target, "--sandbox")
        assert r.exit_code == 2
        assert r.stderr.strip().splitlines() == [f"Error: {target}: {words}"]
