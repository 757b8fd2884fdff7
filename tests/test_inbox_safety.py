"""The inbox never loses a lead, never loads the same content twice, and one file never blocks the others
(the review of issue 14): real subprocesses, the real sandbox, real folders."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from leadpush.journal import RunLock, input_lock

from .listener import Listener
from .test_inbox import drop, layout
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


FAST = ("--rate", "6000/min", "--no-check-duplicate")  # without CloudAgent's own check a double send shows


def resent(sb):
    """Requests for numbers CloudAgent already had (checkDuplicate TRUE answers "exists"): a resend."""
    return sb.state.stats["AddCampaignData"]["exists"]


def state(folder):
    return folder / ".leadpush-inbox"


def remembered(folder):
    path = state(folder) / "loaded.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def age(path, seconds=120.0):
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_run_that_sent_nothing_leaves_the_file_for_the_next_run(sb, inbox, env):
    drop(inbox, "tonight.csv", rows(3))
    code, out, err = leadpush("inbox", inbox, "--base-url", f"http://127.0.0.1:{closed_port()}", "--retries", "0",
                              env=env)
    assert code == 1, err
    line = out.splitlines()[0]
    assert line.startswith("tonight.csv: 3 aborted; 3 rows not sent or without an answer; the next run resumes it")
    assert line.endswith("exit 1; left in the inbox")
    assert layout(inbox) == ["tonight.csv"] and remembered(inbox) == []
    # CloudAgent is back. (Rows that met a refused connection count as "maybe sent" in the journal:
    # the next run sends them again with checkDuplicate TRUE, the default.)
    code, out, err = leadpush("inbox", inbox, "--rate", "6000/min", env=env)
    assert code == 0, err
    assert out.splitlines()[0] == f"tonight.csv: 3 added; exit 0; moved to {inbox / 'done' / 'tonight.csv'}"
    assert len(stored(sb)) == 3


def test_a_file_rewritten_while_it_loads_is_not_filed_and_the_next_run_resumes_it(sb, inbox, env):
    path = drop(inbox, "grow.csv", rows(30))
    proc = leadpush("inbox", inbox, "--rate", "10/s", "--no-check-duplicate", env=env, wait=False)
    wait_for(lambda: sum(stored(sb).values()) >= 3)
    with open(path, "a", encoding="utf-8") as f:  # the sender appends tonight's late leads
        f.write("9300000900,Nightly\n9300000901,Nightly\n")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "the file changed while it was loaded; the next run resumes it" in out
    assert layout(inbox) == ["grow.csv"] and remembered(inbox) == []
    age(path)
    code, out, err = leadpush("inbox", inbox, "--rate", "6000/min", env=env)
    assert code == 0, err
    after = stored(sb)
    assert len(after) == 32 and set(after.values()) == {1}  # every lead once, the late ones too
    assert resent(sb) <= 4  # at most the rows in flight when the first run saw the change


def test_a_file_rewritten_before_its_turn_waits(sb, inbox, env):
    drop(inbox, "first.csv", rows(20), age=300)
    second = drop(inbox, "second.csv", rows(2, start=9300000500), age=200)
    proc = leadpush("inbox", inbox, "--rate", "10/s", "--settle", "30", env=env, wait=False)
    wait_for(lambda: sum(stored(sb).values()) >= 2)
    second.write_text("phone,campaign\n9300000500,Nightly\n", encoding="utf-8")  # being rewritten: half of it
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "second.csv" not in out.split("\n", 1)[0] and "1 still being written" in out.splitlines()[-1]
    assert (inbox / "second.csv").exists() and "9300000500" not in stored(sb)


def test_an_unreadable_file_after_rows_were_sent_keeps_its_journal(sb, inbox, env):
    path = inbox / "list.json"
    path.write_text(json.dumps([{"phone": str(9300000000 + i), "campaign": "Nightly"} for i in range(30)]))
    age(path)
    proc = leadpush("inbox", inbox, "--rate", "10/s", "--workers", "1", env=env, wait=False)
    wait_for(lambda: sum(stored(sb).values()) >= 4)
    proc.kill()
    proc.wait()
    path.write_text('[{"phone": "93000', encoding="utf-8")  # re-delivered cut short
    age(path)
    code, out, err = leadpush("inbox", inbox, *FAST, env=env)
    assert code == 2, err
    assert "rows were sent already: left in the inbox, the next run resumes it" in out
    assert layout(inbox) == ["list.json"]
    path.write_text(json.dumps([{"phone": str(9300000000 + i), "campaign": "Nightly"} for i in range(30)]))
    age(path)  # the whole list again
    code, out, err = leadpush("inbox", inbox, "--rate", "6000/min", env=env)
    assert code == 0, err
    after = stored(sb)
    assert len(after) == 30 and set(after.values()) == {1}
    assert resent(sb) <= 1  # at most the row in flight at the kill; the rest skipped by the journal


def test_a_file_re_delivered_changed_after_a_crash_resumes_by_campaign_and_phone(sb, inbox, env, tmp_path):
    path = drop(inbox, "big.csv", rows(40))
    proc = leadpush("inbox", inbox, "--rate", "20/s", "--workers", "1", env=env, wait=False)
    wait_for(lambda: sum(stored(sb).values()) >= 8)
    proc.kill()
    proc.wait()
    # the sender re-sends it with one more row, as a new file renamed over the old one (a new inode)
    os.replace(drop(tmp_path, "big.csv", rows(40) + [["9300000999", "Nightly"]]), path)
    code, out, err = leadpush("inbox", inbox, "--rate", "6000/min", env=env)
    assert code == 0, err
    after = stored(sb)
    assert len(after) == 41 and set(after.values()) == {1}
    assert resent(sb) <= 1  # at most the row in flight at the kill; the rest skipped by the journal
    assert not list((state(inbox) / "journals").glob("*.jsonl"))  # finished: its journal is gone
    assert path.parent.joinpath("done", "big.csv").exists()


CRASH_ON_FILING = textwrap.dedent("""
    import os, shutil, sys
    real = shutil.move
    def move(src, dst, *a, **k):
        if src.endswith("night.csv") and "done" in dst:
            os._exit(9)  # killed between remembering the content and filing the file
        return real(src, dst, *a, **k)
    shutil.move = move
    from leadpush.cli import app
    sys.argv = ["leadpush"] + sys.argv[1:]
    app()
""")


def test_a_crash_before_filing_is_finished_by_the_next_run_with_its_failures(sb, inbox, env, tmp_path):
    drop(inbox, "night.csv", rows(2) + [["12", "Nightly"]])
    script = tmp_path / "crash.py"
    script.write_text(CRASH_ON_FILING)
    crashed = subprocess.run([sys.executable, str(script), "inbox", str(inbox), *FAST], env=env,
                             capture_output=True, text=True, timeout=60)
    assert crashed.returncode == 9
    assert layout(inbox) == ["night.csv"]
    code, out, err = leadpush("inbox", inbox, *FAST, env=env)
    assert code == 1, out + err  # the file's own exit code, not 0 for "the same content"
    assert "night.csv: loaded at" in out and "(exit 1); filed now" in out
    assert layout(inbox) == ["done/night.csv", "done/night.csv.failures.csv", "done/night.csv.results.csv"]
    assert sum(stored(sb).values()) == 2
    drop(inbox, "again.csv", rows(2) + [["12", "Nightly"]])  # the same content: known, not loaded again
    code, out, err = leadpush("inbox", inbox, *FAST, env=env)
    assert code == 0 and "again.csv: not loaded: the same content as night.csv" in out
    assert sum(stored(sb).values()) == 2


def test_an_odd_name_or_a_done_folder_that_cannot_be_made_is_that_files_line(sb, inbox, env, tmp_path):
    odd = os.fsdecode(b"leads_\xe9t\xe9.csv")  # a Latin-1 name from a Windows share
    drop(inbox, odd, rows(1), age=300)
    drop(inbox, "good.csv", rows(1, start=9300000100), age=200)
    with Listener() as hook:
        code, out, err = leadpush("inbox", inbox, *FAST, "--notify", hook.url + "/hook", env=env)
    assert code == 2, err
    assert "Traceback" not in err
    assert out.splitlines()[0].startswith("leads_\ufffdt\ufffd.csv: its name is not UTF-8 text; rename it")
    assert out.splitlines()[1].startswith("good.csv: 1 added; exit 0; moved to")
    assert json.loads(hook.requests[0].body)["exit_code"] == code  # the notification says what the process does
    assert (inbox / "failed" / odd).exists()
    # done/ cannot be made (a file is in the way): each file says so, the others still run
    blocker = tmp_path / "archive"
    blocker.write_text("not a folder")
    drop(inbox, "a.csv", rows(1, start=9300000200), age=300)
    drop(inbox, "b.csv", rows(1, start=9300000300), age=200)
    code, out, err = leadpush("inbox", inbox, *FAST, "--done", blocker, env=env)
    assert code == 2 and "Traceback" not in err
    assert [line.split(":")[0] for line in out.splitlines()[:2]] == ["a.csv", "b.csv"]
    assert all("left in the inbox" in line for line in out.splitlines()[:2])
    assert (inbox / "a.csv").exists() and (inbox / "b.csv").exists()
    code, out, err = leadpush("inbox", inbox, *FAST, "--done", tmp_path / "done2", env=env)  # fixed
    assert code == 0, out + err
    assert "a.csv: loaded at" in out and "b.csv: loaded at" in out
    assert sorted(p.name for p in (tmp_path / "done2").iterdir()) == ["a.csv", "a.csv.results.csv", "b.csv",
                                                                     "b.csv.results.csv"]
    assert set(stored(sb).values()) == {1} and len(stored(sb)) == 3  # the odd name was never sent


def test_every_format_the_readers_take_is_a_lead_file_and_the_rest_is_listed(sb, inbox, env, tmp_path):
    for name in ("old.xls", "sheet.ods", "binary.xlsb"):
        (inbox / name).write_bytes(b"not really a workbook")
        age(inbox / name)
    drop(inbox, "notes.md", [["x"]])
    drop(inbox, "~$leads.xlsx", [["owner file"]])  # Excel's owner file while leads.xlsx is open
    drop(inbox, "copied.results.csv", rows(1))  # leadpush's own report, copied back by hand
    drop(inbox, "why.csv.error.txt", [["x"]])
    (inbox / "link.csv").symlink_to(drop(tmp_path, "elsewhere.csv", rows(1)))
    code, out, err = leadpush("inbox", inbox, *FAST, env=env)
    assert code == 2, err
    assert sorted(line.split(":")[0] for line in out.splitlines()[:-1]) == ["binary.xlsb", "old.xls", "sheet.ods"]
    assert out.splitlines()[-1].endswith(
        "not lead files, left alone: copied.results.csv, link.csv, notes.md, why.csv.error.txt, ~$leads.xlsx; "
        "exit 2")
    assert not stored(sb)


def test_done_or_failed_that_is_the_inbox_itself_is_refused(sb, inbox, env):
    drop(inbox, "a.csv", rows(1))
    for option in ("--done", "--failed"):
        code, out, err = leadpush("inbox", inbox, option, inbox, env=env)
        assert code == 2
        assert err.strip().splitlines() == [
            f"Error: {option} {inbox}: is the inbox itself; its files would be loaded again (use a folder "
            f"beside or inside it, such as {inbox / option[2:]})"]
    assert not stored(sb)


def test_a_file_uploaded_by_hand_right_now_is_busy_not_an_error(sb, inbox, env, tmp_path):
    path = drop(inbox, "mine.csv", rows(1))
    st = path.stat()
    with RunLock(input_lock(tmp_path / "cache", (st.st_dev, st.st_ino), "mine.csv").path, "mine.csv"):
        code, out, err = leadpush("inbox", inbox, env=env)
    assert code == 0, out + err
    assert out.splitlines()[0].startswith("mine.csv: busy, left for the next run: ")
    assert path.exists() and not stored(sb)


def test_a_busy_inbox_neither_pings_nor_notifies(sb, inbox, env):
    drop(inbox, "a.csv", rows(1))
    (state(inbox)).mkdir()
    with Listener() as hook, RunLock(state(inbox) / "inbox.lock", "the inbox"):
        code, out, err = leadpush("inbox", inbox, "--heartbeat", hook.url + "/hb", "--notify", hook.url + "/hook",
                                  env=env)
        assert code == 0 and "Nothing to do" in err
        assert hook.requests == []
    with Listener() as hook:  # the next run, not busy, reports as always
        code, out, err = leadpush("inbox", inbox, "--heartbeat", hook.url + "/hb", "--notify", hook.url + "/hook",
                                  env=env)
        assert code == 0
        assert [r.path for r in hook.requests] == ["/hb/start", "/hb", "/hook"]


def test_temporaries_of_a_killed_run_are_cleaned(sb, inbox, env):
    work = state(inbox) / "work"
    work.mkdir(parents=True)
    (work / ".big.results.csv.1234.tmp").write_text("half")
    code, out, err = leadpush("inbox", inbox, env=env)
    assert code == 0, err
    assert list(work.iterdir()) == []


def test_orphaned_journals_are_cleaned_after_a_week(sb, inbox, env):
    journals = state(inbox) / "journals"
    journals.mkdir(parents=True)
    old, recent = journals / ("0" * 32 + ".jsonl"), journals / ("1" * 32 + ".jsonl")
    for j in (old, recent):
        j.write_text('{"type": "start"}\n')
    age(old, 8 * 86400)
    age(recent, 86400)
    assert leadpush("inbox", inbox, env=env)[0] == 0
    assert not old.exists() and recent.exists()


def test_a_file_that_vanishes_before_its_turn_is_skipped(sb, inbox, env):
    drop(inbox, "first.csv", rows(20), age=300)
    second = drop(inbox, "second.csv", rows(1, start=9300000500), age=200)
    proc = leadpush("inbox", inbox, "--rate", "10/s", env=env, wait=False)
    wait_for(lambda: sum(stored(sb).values()) >= 2)
    second.unlink()  # someone took it back
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and out.splitlines()[-1].endswith("1 file (1 done); rows: 20 added; exit 0")


def test_a_file_that_cannot_be_read_goes_to_failed_and_the_inbox_goes_on(tmp_path, monkeypatch):
    # (root reads every file, so the refusal is injected where the inbox first opens the file)
    from leadpush import inbox as inbox_module
    from leadpush.jobs import InputOptions

    folder = tmp_path / "in"
    folder.mkdir()
    drop(folder, "locked.csv", rows(1), age=300)
    real = inbox_module.content_digest

    def digest(path):
        if path.name == "locked.csv":
            raise PermissionError(13, "Permission denied")
        return real(path)
    monkeypatch.setattr(inbox_module, "content_digest", digest)
    sent = []
    report = inbox_module.run_inbox(inbox_module.InboxSettings(folder), InputOptions(file=""),
                                    lambda opts, choice: sent.append(opts) or None, now=time.time)
    assert not sent
    assert [f.line() for f in report.files] == [f"locked.csv: locked.csv: cannot be read (Permission denied); "
                                                f"exit 2; moved to {folder / 'failed' / 'locked.csv'}"]
    error = (folder / "failed" / "locked.csv.error.txt").read_text()
    assert error == "locked.csv: cannot be read (Permission denied)\n"
