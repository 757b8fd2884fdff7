"""Trust on the local side (issue 11): leadpush never harms the user's files, never loses a finished
row, and never resends what must not be resent."""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path

import pytest

from leadpush import journal as journal_module
from leadpush import records
from leadpush.journal import RunLocked, input_lock
from leadpush.sandbox import Campaign, Sandbox
from tests.conftest import leadpush, read_csv, read_jsonl, stored, wait_for, write_csv

KEY = "trust-key-51c0"
CONFIG = {"accounts": [
    {"user": "ops", "api_key": KEY, "auth_mode": "TOKEN_AUTH",
     "campaigns": [{"name": "Nightly", "type": "progressive", "started": True}]},
    {"user": "prod", "api_key": KEY, "auth_mode": "TOKEN_AUTH",
     "campaigns": [{"name": "Nightly", "type": "progressive", "started": True}]},
]}
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="making device nodes (os.mknod) needs root")





def rows(n, start=9400000000):
    return [["phone", "campaign"]] + [[str(start + i), "Nightly"] for i in range(n)]


@pytest.fixture
def up(cli, sb, tmp_path):
    """`leadpush upload` in-process against the sandbox, as user ops."""
    def invoke(*args, user="ops", env=None):
        rate = () if "--rate" in args else ("--rate", "60000/min")
        return cli("upload", *args, *rate, env={
            "LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": user, "LEADPUSH_API_KEY": KEY,
            "LEADPUSH_CACHE_DIR": str(tmp_path / "cache"), **(env or {})})
    return invoke


@pytest.fixture
def penv(sb, tmp_path, home):
    return {**os.environ, **home, "LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "ops",
            "LEADPUSH_API_KEY": KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "cache"), "NO_COLOR": "1",
            "COLUMNS": "250"}



def no_traceback(result):
    assert "Traceback" not in result.stderr and result.exception is None or isinstance(result.exception, SystemExit)


# ---------------------------------------------------------------------------- 1. an output that is the input

@pytest.mark.parametrize("flag", ["--journal", "--log-file", "--results", "--failures"])
def test_an_output_naming_the_input_stops_before_anything_is_written_or_sent(up, sb, tmp_path, flag):
    p = write_csv(tmp_path / "leads.csv", rows(3))
    before = p.read_bytes()
    r = up(p, flag, tmp_path / "." / "leads.csv")  # another spelling of the same file
    assert r.exit_code == 2, r.stderr
    assert "the input" in r.stderr and flag in r.stderr and "same file" in r.stderr
    assert p.read_bytes() == before and not stored(sb)


def test_outputs_are_compared_by_inode_hard_link_and_symlink(up, sb, tmp_path):
    p = write_csv(tmp_path / "leads.csv", rows(3))
    os.link(p, tmp_path / "hard.csv")
    os.symlink(p, tmp_path / "soft.csv")
    before = p.read_bytes()
    for other in ("hard.csv", "soft.csv"):
        r = up(p, "--journal", tmp_path / other)
        assert r.exit_code == 2 and "--journal" in r.stderr and "the input" in r.stderr
    assert p.read_bytes() == before and not stored(sb)


@pytest.mark.parametrize("a,b", [("--results", "--failures"), ("--journal", "--results"),
                                 ("--log-file", "--results"), ("--journal", "--failures")])
def test_two_outputs_on_one_file_are_refused_naming_both_flags(up, sb, tmp_path, a, b):
    p = write_csv(tmp_path / "leads.csv", rows(3))
    (tmp_path / "x.csv").write_text("keep me\n")
    r = up(p, a, tmp_path / "x.csv", b, tmp_path / "x.csv")
    assert r.exit_code == 2 and a in r.stderr and b in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "x.csv").read_text() == "keep me\n" and not stored(sb)
    assert not list(tmp_path.glob(".x.csv.*.tmp"))


# ---------------------------------------------------------------------------- 2. outputs that are not regular files

@root_only
@pytest.mark.parametrize("flag", ["--failures", "--results"])
def test_a_device_output_is_written_in_place_never_replaced(up, tmp_path, flag):
    dev = tmp_path / "null"
    os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    p = write_csv(tmp_path / "leads.csv", rows(2) + [["12", "Nightly"]])
    r = up(p, flag, dev)
    assert r.exit_code == 1, r.stderr
    assert stat.S_ISCHR(os.lstat(dev).st_mode)  # still the device
    # with no failures at all, a device given as --failures is not removed either
    write_csv(p, rows(2, start=9400000100))
    r = up(p, "--failures", dev)
    assert r.exit_code == 0 and stat.S_ISCHR(os.lstat(dev).st_mode)


@root_only
def test_a_device_journal_is_refused_and_the_device_stays(up, sb, tmp_path):
    dev = tmp_path / "null"
    os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    p = write_csv(tmp_path / "leads.csv", rows(2))
    r = up(p, "--journal", dev)
    assert r.exit_code == 2 and "not a regular file" in r.stderr
    assert stat.S_ISCHR(os.lstat(dev).st_mode) and not stored(sb)


def test_a_symlinked_results_file_keeps_its_link_and_replaces_the_target(up, tmp_path):
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link = tmp_path / "r.csv"
    os.symlink(target, link)
    p = write_csv(tmp_path / "leads.csv", rows(2))
    r = up(p, "--results", link)
    assert r.exit_code == 0, r.stderr
    assert link.is_symlink() and [x["status"] for x in read_csv(target)] == ["added", "added"]


def test_results_to_dev_stdout_redirected_to_a_file_keep_the_table_and_the_file(tmp_path, penv):
    # `> out.txt` makes /dev/stdout a regular file: it is written through our own stdout, never
    # renamed over (that replaced out.txt) nor reopened at its start (that overwrote the summary).
    p = write_csv(tmp_path / "leads.csv", rows(2) + [["12", "Nightly"]])
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "leadpush", "validate", str(p), "--results", "/dev/stdout",
                               "--no-failures", "--table", "none"], stdout=f, stderr=subprocess.PIPE, text=True,
                              env=penv, timeout=60)
    assert proc.returncode == 1, proc.stderr
    text = out.read_text()
    assert "row,status,message" in text and "3 rows: 2 valid, 1 invalid" in text
    assert not [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


@pytest.mark.parametrize("flag", ["--failures", "--results", "--log-file"])
def test_a_folder_as_an_output_is_one_line_exit_2(cli, tmp_path, flag):
    p = write_csv(tmp_path / "leads.csv", rows(2) + [["12", "Nightly"]])
    (tmp_path / "out").mkdir()
    r = cli("validate", p, flag, tmp_path / "out", "--results" if flag != "--results" else "--log-file",
            tmp_path / "other.txt")
    assert r.exit_code == 2 and "is a folder" in r.stderr and "Traceback" not in r.stderr
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


def test_stdin_upload_makes_no_journal_or_lock_beside_the_input(tmp_path, penv):
    # /dev/stdin is a pipe here: no journal is written into /dev (nor anywhere but --journal).
    before = set(os.listdir("/dev"))
    data = "\n".join(",".join(r) for r in rows(3)) + "\n"
    code, out, err = leadpush("upload", "/dev/stdin", "--format", "csv", "--json", env=penv, input=data,
                              cwd=tmp_path)
    assert code == 0, err
    assert json.loads(out)["counts"]["added"] == 3
    assert set(os.listdir("/dev")) == before
    assert not list(tmp_path.glob("*journal*"))
    code, out, err = leadpush("upload", "-", "--format", "csv", "--resume", env=penv, input=data, cwd=tmp_path)
    assert code == 2 and "--resume needs --journal" in err


# ---------------------------------------------------------------------------- 3. a full disk

class FullDisk:
    """records.open_output whose files (those named like `name`) take `room` bytes, then raise ENOSPC."""

    def __init__(self, room: int, name: str) -> None:
        self.room = room
        self.name = name

    def __call__(self, path: Path, flags: int):
        f = open(os.open(path, flags, 0o600), "wb")
        return _Filling(f, self.room) if self.name in path.name else f


class _Filling(io.RawIOBase):
    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = self.f.write(bytes(b[: self.room]))
        self.room -= n
        return n

    def close(self) -> None:
        self.f.close()
        super().close()


def test_a_dry_run_whose_results_file_fails_still_writes_every_row_to_the_failures_file(cli, tmp_path,
                                                                                          monkeypatch):
    lines = rows(3000)
    lines[1::2] = [["12-x", "Nightly"]] * len(lines[1::2])  # every other row invalid
    p = write_csv(tmp_path / "leads.csv", lines)
    monkeypatch.setattr(records, "open_output", FullDisk(20_000, "r.csv"))
    r = cli("validate", p, "--results", tmp_path / "r.csv")
    assert r.exit_code == 2 and "the results file cannot be written (No space left on device)" in r.stderr
    failures = read_csv(tmp_path / "leads.csv.failures.csv")
    assert len(failures) == 1500 and failures[-1]["leadpush_row"] == "3000"  # complete, not cut at the error
    assert not (tmp_path / "r.csv").exists()


def test_a_dry_run_whose_split_file_fails_mid_file_still_writes_every_row_elsewhere(cli, tmp_path, monkeypatch):
    from leadpush import split as split_module

    lines = rows(3000)
    lines[1::2] = [["12-x", "Nightly"]] * len(lines[1::2])  # every other row invalid
    p = write_csv(tmp_path / "leads.csv", lines)
    real, written = split_module.SplitWriter._write, Counter()

    def write(self, body):
        written["n"] += 1
        if written["n"] > 500:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self, body)

    monkeypatch.setattr(split_module.SplitWriter, "_write", write)
    r = cli("validate", p, "--split", "--results", tmp_path / "r.csv")
    assert r.exit_code == 2 and "leads.csv.valid.csv: the valid rows cannot be written (No space left" in r.stderr
    assert len(read_csv(tmp_path / "r.csv")) == 3000 and len(read_csv(tmp_path / "leads.csv.failures.csv")) == 1500
    assert not (tmp_path / "leads.csv.valid.csv").exists()


def test_a_full_disk_under_the_results_file_keeps_the_earlier_file_and_says_so(cli, tmp_path, monkeypatch):
    p = write_csv(tmp_path / "leads.csv", rows(3000))
    results = tmp_path / "r.csv"
    results.write_text("yesterday's results\n")
    monkeypatch.setattr(records, "open_output", FullDisk(20_000, "r.csv"))
    r = cli("validate", p, "--results", results)
    assert r.exit_code == 2, r.stderr
    assert "r.csv: the results file cannot be written (No space left on device)" in r.stderr
    assert "Traceback" not in r.stderr
    assert results.read_text() == "yesterday's results\n"  # never a truncated file moved into place
    assert not list(tmp_path.glob(".r.csv.*"))


@root_only
def test_dev_full_as_results_and_log_is_one_line_not_a_traceback(tmp_path, penv):
    full = tmp_path / "full"
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # /dev/full: every write ENOSPC
    p = write_csv(tmp_path / "leads.csv", rows(3))
    for flag in ("--results", "--log-file"):
        code, out, err = leadpush("validate", p, flag, full, env=penv)
        assert code == 2 and "No space left on device" in err and "Traceback" not in err, err


def test_a_full_disk_under_the_journal_mid_upload_loses_no_row_and_resume_doubles_none(up, sb, tmp_path,
                                                                                        monkeypatch):
    p = write_csv(tmp_path / "leads.csv", rows(40))
    journal = tmp_path / "leads.csv.leadpush-journal.jsonl"
    real = journal_module._write_all
    calls = Counter()

    def write_all(fd, data):
        calls["n"] += 1
        if calls["n"] > 30:  # start + about 15 rows (a send and a row line each), then the disk is full
            os.write(fd, data[: len(data) // 2])  # half a line reaches the disk first
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data)

    monkeypatch.setattr(journal_module, "_write_all", write_all)
    r = up(p, "--no-check-duplicate", "--results", tmp_path / "r.csv")
    assert r.exit_code == 1, r.stderr
    assert "the journal cannot be written (No space left on device)" in r.stderr
    results = read_csv(tmp_path / "r.csv")
    assert len(results) == 40  # every row is somewhere: added ones in results, the rest in failures
    added = {x["phoneNumber"] for x in results if x["status"] == "added"}
    assert added == set(stored(sb))
    failures = read_csv(tmp_path / "leads.csv.failures.csv")
    assert len(failures) == 40 - len(added)
    assert journal.read_bytes().endswith(b"\n")  # the half line was cut back
    monkeypatch.setattr(journal_module, "_write_all", real)

    r = up(p, "--no-check-duplicate", "--resume", "--results", tmp_path / "r2.csv")
    assert r.exit_code in (0, 1), r.stderr
    after = stored(sb)
    assert set(after.values()) == {1} and len(after) == 40  # nothing doubled, nothing lost
    left_alone = [x for x in read_csv(tmp_path / "r2.csv") if x["status"] == "failed"]
    # the rows whose verdict the full journal missed are held back (they were in fact stored)
    assert left_alone and {x["phoneNumber"] for x in left_alone} <= added
    assert all("--resend-unknown" in x["message"] for x in left_alone)


def test_a_results_file_that_fails_after_the_last_row_leaves_the_run_for_resume_not_a_resend(up, sb, tmp_path,
                                                                                           monkeypatch):
    p = write_csv(tmp_path / "leads.csv", rows(30))
    monkeypatch.setattr(records, "open_output", FullDisk(0, "r.csv"))  # fails when the file is flushed, at the end
    r = up(p, "--no-check-duplicate", "--results", tmp_path / "r.csv")
    assert r.exit_code == 1 and "the results file cannot be written (No space left on device)" in r.stderr, (
        r.exit_code, r.stderr)
    assert len(stored(sb)) == 30
    journal = read_jsonl(tmp_path / "leads.csv.leadpush-journal.jsonl")
    assert journal[-1]["type"] == "end" and journal[-1]["complete"] is False
    monkeypatch.undo()
    r = up(p, "--no-check-duplicate", "--resume", "--results", tmp_path / "r.csv")
    assert r.exit_code == 0, r.stderr
    assert set(stored(sb).values()) == {1}  # nothing sent twice, though checkDuplicate is FALSE
    assert {x["status"] for x in read_csv(tmp_path / "r.csv")} == {"skipped"}


def test_a_full_disk_under_the_log_leaves_whole_lines_and_stops(up, sb, tmp_path, monkeypatch):
    p = write_csv(tmp_path / "leads.csv", rows(20))
    log = tmp_path / "run.log"
    real_write = os.write
    room = {"left": 900}

    def write(fd, data):
        if log.exists() and os.fstat(fd).st_ino == os.stat(log).st_ino:
            if room["left"] <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            n = real_write(fd, bytes(data[: room["left"]]))
            room["left"] -= n
            return n
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    r = up(p, "--log-file", log, "--results", tmp_path / "r.csv")
    assert r.exit_code == 1 and "the log file cannot be written (No space left on device)" in r.stderr, r.stderr
    text = log.read_text()
    assert text.endswith("\n") and all(line[:4].isdigit() for line in text.splitlines())
    assert len(read_csv(tmp_path / "r.csv")) == 20  # every row recorded where it could be


def test_journal_lines_are_whole_or_not_at_all(tmp_path):
    from leadpush.outcomes import RowOutcome, Status
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"type": "start", "journal": 2, "input": "d", "identity": null, "base_url": "u", '
                     b'"user": "o", "resume": false}\n{"type": "row", "inp')  # a crash mid-line
    j = journal_module.Journal(path, "d", (None, "u", "o"), fresh=False)
    j.row(RowOutcome(2, Status.ADDED, phone="1234", campaign="c"))
    j.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)


# ---------------------------------------------------------------------------- 4. outcome unknown is not resent

def test_resume_leaves_outcome_unknown_rows_alone_unless_resend_unknown(cli, tmp_path):
    with Sandbox(CONFIG, rate_limit=0, drop_rate=0.3, seed=4) as dropping:
        env = {"LEADPUSH_BASE_URL": dropping.base_url, "LEADPUSH_USERNAME": "ops", "LEADPUSH_API_KEY": KEY,
               "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
        p = write_csv(tmp_path / "leads.csv", rows(40))
        r = cli("upload", p, "--no-check-duplicate", "--rate", "60000/min", "--timeout", "2", env=env)
        assert r.exit_code == 1
        unknown = [f for f in read_csv(tmp_path / "leads.csv.failures.csv") if "outcome unknown" in f["leadpush_error"]]
        assert unknown  # the sandbox stored them, and closed the connection unanswered
        dropping.state.drop_rate = 0.0
        first = stored(dropping)
        assert all(first[f["phone"]] == 1 for f in unknown)

        r = cli("upload", p, "--no-check-duplicate", "--resume", "--rate", "60000/min", env=env)
        assert r.exit_code == 1, r.stderr
        assert stored(dropping) == first  # nothing resent: no lead stored twice
        held = read_csv(tmp_path / "leads.csv.failures.csv")
        assert {f["phone"] for f in held} == {f["phone"] for f in unknown}
        assert {f["leadpush_error"] for f in held} == {
            "outcome unknown: not resent; check CloudAgent, then resend with --resend-unknown"}

        r = cli("upload", p, "--no-check-duplicate", "--resend-unknown", "--rate", "60000/min", env=env)
        assert r.exit_code == 0, r.stderr
        again = stored(dropping)
        assert {n for n, c in again.items() if c == 2} == {f["phone"] for f in unknown}  # sent, as asked


def test_rows_in_flight_at_a_crash_are_counted_and_not_resent_without_check_duplicate(up, sb, tmp_path):
    p = write_csv(tmp_path / "leads.csv", rows(4))
    journal = tmp_path / "leads.csv.leadpush-journal.jsonl"
    r = up(p, "--no-check-duplicate")
    assert r.exit_code == 0
    # as if killed while rows 4 and 5 were in flight: their send lines, no verdict, no end
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    kept = [x for x in lines if x["type"] == "start" or x.get("row") not in (4, 5) or x["type"] == "send"]
    journal.write_text("".join(json.dumps(x) + "\n" for x in kept if x["type"] != "end"))
    r = up(p, "--no-check-duplicate", "--resume", "--json")
    assert r.exit_code == 1
    summary = json.loads(r.stdout)
    assert summary["in_flight_earlier"] == 2 and summary["counts"]["skipped"] == 2
    assert "2 row(s) were in flight when the earlier run stopped" in r.stderr
    assert set(stored(sb).values()) == {1}
    r = up(p, "--no-check-duplicate", "--resume")
    assert "2 row(s) were in flight when the earlier run stopped" in r.stdout  # in the printed summary


@pytest.mark.parametrize("cached_token", [None, "eyJh.eyJi.c2ln"], ids=["no-token", "token-expired"])
def test_rows_a_token_stop_kept_from_going_out_are_sent_by_resume_not_held_back(up, sb, tmp_path, cached_token):
    """The hourly cap reached: the rows whose send line is written get no token (or only a 'Token
    Expired' answer, which stores nothing). Their lead is certainly not in CloudAgent, so the journal
    says so and --resume sends them, even with checkDuplicate FALSE."""
    from leadpush.cloudagent import TokenStore
    p = write_csv(tmp_path / "leads.csv", rows(6))
    now = __import__("time").time()
    cached = {"generations": [now - 60 - i for i in range(10)]}
    TokenStore(tmp_path / "cache", sb.base_url, "ops").save({**cached, "token": cached_token} if cached_token
                                                              else cached)
    r = up(p, "--no-check-duplicate", "--workers", "4")
    assert r.exit_code == 3 and "CloudAgent's cap" in r.stderr, r.stderr
    assert not stored(sb)
    expired = sb.state.stats_view()["requests"]["AddCampaignData"].get("token-expired", 0)
    assert (expired > 0) == bool(cached_token)
    lines = read_jsonl(tmp_path / "leads.csv.leadpush-journal.jsonl")
    sent = {x["row"] for x in lines if x["type"] == "send"}
    assert sent  # each worker's row had its send line written before the token was asked for
    assert {x["row"]: x["status"] for x in lines if x["type"] == "row"} == dict.fromkeys(sent, "aborted")
    assert not any(x.get("unknown") for x in lines if x["type"] == "row")

    r = up(p, "--no-check-duplicate", "--resume", "--json", env={"LEADPUSH_CACHE_DIR": str(tmp_path / "fresh")})
    assert r.exit_code == 0, r.stderr
    counts = json.loads(r.stdout)["counts"]
    assert counts["added"] == 6 and counts["failed"] == 0, counts
    assert "in flight" not in r.stderr
    assert set(stored(sb).values()) == {1} and len(stored(sb)) == 6


def test_a_row_the_stop_caught_after_its_send_line_is_sent_by_resume(up, sb, tmp_path, monkeypatch):
    """A stop (Ctrl-C, another worker's refusal) seen between a row's send line and its first request:
    the row is aborted unsent, and its verdict is in the journal, so --resume sends it."""
    from leadpush.cloudagent import Sender
    p = write_csv(tmp_path / "leads.csv", rows(3))
    real = Sender.send

    def send(self, body, stop):  # the stop comes for the second row just after its send line
        return real(self, body, (lambda: True) if body["phoneNumber"] == "9400000001" else stop)

    monkeypatch.setattr(Sender, "send", send)
    r = up(p, "--no-check-duplicate", "--workers", "1")
    assert r.exit_code == 1, r.stderr
    lines = read_jsonl(tmp_path / "leads.csv.leadpush-journal.jsonl")
    assert [(x["type"], x["row"]) for x in lines if x["type"] in ("send", "row")][2:4] == [("send", 3), ("row", 3)]
    monkeypatch.undo()
    r = up(p, "--no-check-duplicate", "--resume", "--results", tmp_path / "r.csv")
    assert r.exit_code == 0, r.stderr
    assert [x["status"] for x in read_csv(tmp_path / "r.csv")] == ["skipped", "added", "skipped"]
    assert set(stored(sb).values()) == {1} and len(stored(sb)) == 3


# ---------------------------------------------------------------------------- 5. one lock per file, not per name

def test_the_input_lock_is_by_device_and_inode(tmp_path):
    p = write_csv(tmp_path / "leads.csv", rows(1))
    os.link(p, tmp_path / "link.csv")
    from leadpush.files import identity
    a, b = identity(p), identity(tmp_path / "link.csv")
    assert a == b
    with input_lock(tmp_path / "cache", (a[1], a[2]), "leads.csv"):
        with pytest.raises(RunLocked):
            input_lock(tmp_path / "cache", (b[1], b[2]), "link.csv").acquire()


def test_a_hard_link_to_an_input_being_uploaded_is_refused(tmp_path, penv, sb):
    p = write_csv(tmp_path / "leads.csv", rows(30))
    os.link(p, tmp_path / "link.csv")
    first = subprocess.Popen([sys.executable, "-m", "leadpush", "upload", str(p), "--rate", "5/s"],
                             env=penv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import time
        deadline = time.monotonic() + 20
        while sum(stored(sb).values()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        code, out, err = leadpush("upload", tmp_path / "link.csv", "--rate", "6000/min", env=penv)
        assert code == 2 and f"is being uploaded by process {first.pid}" in err
    finally:
        first.kill()
        first.communicate()


def test_the_journal_follows_the_file_not_its_name(up, sb, tmp_path):
    p = write_csv(tmp_path / "leads.csv", rows(4))
    os.link(p, tmp_path / "link.csv")
    j = tmp_path / "leads.csv.leadpush-journal.jsonl"
    assert up(p, "--no-check-duplicate").exit_code == 0
    j.write_text("".join(line + "\n" for line in j.read_text().splitlines()[:-1]))  # as if it had crashed
    r = up(tmp_path / "link.csv", "--no-check-duplicate")
    assert r.exit_code == 2 and "an earlier run of this file stopped" in r.stderr
    r = up(tmp_path / "link.csv", "--no-check-duplicate", "--resume", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["counts"]["skipped"] == 4 and set(stored(sb).values()) == {1}
    assert "using that journal" in r.stderr and not (tmp_path / "link.csv.leadpush-journal.jsonl").exists()


# ---------------------------------------------------------------------------- 6. journals leadpush did not write

GARBAGE = [
    b"[1, 2, 3]\n", b'"just a string"\n', b"\x00\xff\xfe binary \x80\n",
    b'{"type": "row", "row": "seven"}\n', b'{"type": "row", "row": true}\n', b"null\n",
]


@pytest.mark.parametrize("junk", GARBAGE)
def test_a_journal_that_is_not_leadpush_s_is_refused_in_one_line(up, sb, tmp_path, junk):
    p = write_csv(tmp_path / "leads.csv", rows(2))
    j = tmp_path / "leads.csv.leadpush-journal.jsonl"
    j.write_bytes(junk)
    for extra in ((), ("--resume",)):
        r = up(p, *extra)
        assert r.exit_code == 2 and "not a leadpush journal" in r.stderr and "Traceback" not in r.stderr
    assert j.read_bytes() == junk and not stored(sb)


@pytest.mark.parametrize("junk", GARBAGE + [b'{"type": "start"}\n', b'{"type": "end", "complete": "yes"}\n'])
def test_unusable_lines_in_a_journal_are_skipped_and_counted(up, sb, tmp_path, junk):
    p = write_csv(tmp_path / "leads.csv", rows(3))
    r = up(p)
    assert r.exit_code == 0
    j = tmp_path / "leads.csv.leadpush-journal.jsonl"
    lines = j.read_bytes().splitlines(keepends=True)
    j.write_bytes(b"".join(lines[:2]) + junk + b"".join(lines[2:-1]))  # junk inside, and no end: unfinished
    r = up(p, "--resume", "--json")
    assert r.exit_code == 0, r.stderr
    assert "skipped 1 journal line(s)" in r.stderr
    assert json.loads(r.stdout)["counts"]["skipped"] == 3 and set(stored(sb).values()) == {1}


# ---------------------------------------------------------------------------- 7. input through a pipe

def test_a_jsonl_validate_from_dev_stdin_keeps_every_lead(tmp_path, penv):
    data = "".join(json.dumps({"phone": str(9400000000 + i), "campaign": "c", "pad": "x" * 80}) + "\n"
                   for i in range(200))  # far more than 4,096 bytes
    code, out, err = leadpush("validate", "/dev/stdin", "--format", "jsonl", "--json", "--no-failures",
                              env=penv, input=data)
    assert code == 0, err
    assert json.loads(out)["counts"]["valid"] == 200


def test_a_csv_through_dev_stdin_and_process_substitution_is_read(tmp_path, penv):
    data = "\n".join(",".join(r) for r in rows(5)) + "\n"
    code, out, err = leadpush("validate", "/dev/stdin", "--json", "--no-failures", env=penv, input=data)
    assert code == 0 and json.loads(out)["counts"]["valid"] == 5, err
    printf = data.replace("\n", "\\n")
    script = f"{sys.executable} -m leadpush validate <(printf '{printf}') --json --no-failures"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=penv, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout)["counts"]["valid"] == 5, proc.stderr


def test_a_fifo_input_is_read_once_and_uploaded(tmp_path, penv, sb):
    fifo = tmp_path / "leads.fifo"
    os.mkfifo(fifo)
    data = "".join(json.dumps({"phone": str(9400000000 + i), "campaign": "Nightly"}) + "\n" for i in range(30))

    def feed():
        with open(fifo, "w") as f:
            f.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    code, out, err = leadpush("upload", fifo, "--format", "jsonl", "--rate", "60000/min", "--json", env=penv,
                              cwd=tmp_path)
    writer.join(5)
    assert code == 0, err
    assert json.loads(out)["counts"]["added"] == 30 and len(stored(sb)) == 30
    assert sorted(f.name for f in tmp_path.iterdir() if f.name != "cache") == ["leads.fifo"]  # nothing beside it


# ---------------------------------------------------------------------------- 8. text that is not printable

def test_a_lone_surrogate_is_written_escaped_and_nothing_crashes(cli, tmp_path):
    p = tmp_path / "leads.json"
    p.write_text('[{"phone": "12", "campaign": "c", "name": "A\\ud800B"}]')
    r = cli("validate", p, "--results", tmp_path / "r.jsonl")
    assert r.exit_code == 1, r.stderr
    [row] = read_jsonl(tmp_path / "leads.json.failures.jsonl")
    assert row["name"] == "A\ud800B"  # the user's value exactly, through the JSON escape
    assert "Traceback" not in r.stderr
    r = cli("validate", p, "--json")
    assert json.loads(r.stdout)["rows"] == 1


def test_control_characters_are_escaped_on_the_terminal_and_in_the_log(up, tmp_path):
    p = write_csv(tmp_path / "leads.csv", [["phone", "campaign"], ["12\x1b[2J", "Nightly\nfake line"]])
    r = up(p, "--log-file", tmp_path / "run.log", "--table", "all")
    assert r.exit_code == 1
    assert "\x1b" not in r.stdout and "\\x1b[2J" in r.stdout
    log = (tmp_path / "run.log").read_text()
    assert "\x1b" not in log and len(log.splitlines()) == 3 and "Nightly\\nfake line" in log
    [failure] = read_csv(tmp_path / "leads.csv.failures.csv")
    assert failure["phone"] == "12\x1b[2J" and failure["campaign"] == "Nightly\nfake line"  # files keep values


# ---------------------------------------------------------------------------- 9. whose journal

def test_resume_does_not_use_a_run_of_another_base_url_or_user(up, sb, tmp_path):
    p = write_csv(tmp_path / "leads.csv", rows(3))
    j = tmp_path / "leads.csv.leadpush-journal.jsonl"
    r = up(p)
    assert r.exit_code == 0
    j.write_text("".join(line + "\n" for line in j.read_text().splitlines()[:-1]))  # as if it had crashed
    r = up(p, "--resume", "--json", user="prod")
    assert r.exit_code == 0, r.stderr
    assert "starting afresh" in r.stderr and json.loads(r.stdout)["counts"]["added"] == 3
    assert len(stored(sb, user="prod")) == 3


def test_resume_after_a_finished_run_starts_afresh_and_the_journal_does_not_grow(up, sb, tmp_path):
    p = write_csv(tmp_path / "leads.csv", rows(3))
    j = tmp_path / "leads.csv.leadpush-journal.jsonl"
    assert up(p).exit_code == 0
    sb.state.reset() if hasattr(sb.state, "reset") else None
    for _night in range(3):
        r = up(p, "--resume", "--json")
        assert r.exit_code == 0 and "finished; starting afresh" in r.stderr
        assert json.loads(r.stdout)["counts"]["skipped"] == 0
    assert sum(1 for line in j.read_text().splitlines() if '"start"' in line) == 1


# ---------------------------------------------------------------------------- 10. planted links

def test_a_symlink_planted_as_the_lock_or_journal_is_refused_and_not_followed(up, sb, tmp_path):
    p = write_csv(tmp_path / "leads.csv", rows(2))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for planted in ("leads.csv.leadpush-journal.jsonl.lock", "leads.csv.leadpush-journal.jsonl"):
        link = tmp_path / planted
        os.symlink(victim, link)
        r = up(p)
        assert r.exit_code == 2 and "symbolic link" in r.stderr
        link.unlink()
    assert victim.read_text() == "precious\n" and not stored(sb)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_journal_of_another_user_is_refused(up, sb, tmp_path):
    p = write_csv(tmp_path / "leads.csv", rows(2))
    j = tmp_path / "leads.csv.leadpush-journal.jsonl"
    j.write_text("")
    os.chown(j, 4321, -1)
    r = up(p)
    assert r.exit_code == 2 and "belongs to another user" in r.stderr and not stored(sb)


# ---------------------------------------------------------------------------- 11. default names

def test_inputs_with_one_stem_keep_their_own_outputs(cli, tmp_path):
    bad = [["phone", "campaign"], ["12", "c"]]
    write_csv(tmp_path / "leads.csv", bad)
    write_csv(tmp_path / "leads.tsv", bad, delimiter="\t")
    assert cli("validate", tmp_path / "leads.csv").exit_code == 1
    assert cli("validate", tmp_path / "leads.tsv").exit_code == 1
    assert (tmp_path / "leads.csv.failures.csv").exists() and (tmp_path / "leads.tsv.failures.csv").exists()
    write_csv(tmp_path / "leads.tsv", [["phone", "campaign"], ["9400000000", "c"]], delimiter="\t")
    assert cli("validate", tmp_path / "leads.tsv").exit_code == 0
    assert (tmp_path / "leads.csv.failures.csv").exists() and not (tmp_path / "leads.tsv.failures.csv").exists()


def test_a_failures_file_fed_back_writes_itself_again(cli, up, sb, tmp_path):
    write_csv(tmp_path / "leads.csv", [["phone", "campaign"], ["12", "Nightly"], ["34", "Nightly"]])
    cli("validate", tmp_path / "leads.csv")
    failures = tmp_path / "leads.csv.failures.csv"
    text = failures.read_text(encoding="utf-8-sig").replace("\n34,", "\n9400000000,")
    failures.write_text(text, encoding="utf-8-sig")
    r = cli("validate", failures)  # validate leaves a fed-back failures file as it is
    assert r.exit_code == 1 and failures.read_text(encoding="utf-8-sig") == text
    r = up(failures)
    assert r.exit_code == 1, r.stderr
    assert [f["phone"] for f in read_csv(failures)] == ["12"]  # upload: the rows still to do
    assert sorted(f.name for f in tmp_path.iterdir() if f.name != "cache") == [
        "leads.csv", "leads.csv.failures.csv", "leads.csv.failures.csv.leadpush-journal.jsonl",
        "leads.csv.failures.csv.leadpush-journal.jsonl.lock"]


# ---------------------------------------------------------------------------- 12. an input changed mid-upload

def test_rows_appended_during_the_upload_are_not_sent(up, sb, tmp_path, monkeypatch):
    from leadpush import checks
    p = write_csv(tmp_path / "leads.csv", rows(5))
    real = checks.Checker.check_file
    passes = Counter()

    def check_file(self, lead_file):
        passes["n"] += 1
        if passes["n"] == 2:  # between the check and the send, someone appends three rows
            with open(p, "a") as f:
                f.write("".join(f"{9400000100 + i},Nightly\n" for i in range(3)))
        yield from real(self, lead_file)

    monkeypatch.setattr(checks.Checker, "check_file", check_file)
    r = up(p, "--json")
    assert r.exit_code == 1, r.stderr
    assert "more than the 5 rows checked" in json.loads(r.stdout)["stop_reason"]
    assert not {str(9400000100 + i) for i in range(3)} & set(stored(sb))


def test_an_input_changed_during_the_upload_keeps_the_run_s_code_and_its_record(up, sb, tmp_path, monkeypatch):
    from leadpush import checks
    p = write_csv(tmp_path / "leads.csv", rows(10))
    real = checks.Checker.check_file
    passes = Counter()

    def check_file(self, lead_file):
        passes["n"] += 1
        for i, item in enumerate(real(self, lead_file)):
            if passes["n"] == 2 and i == 6:  # the second pass finds the file broken after 6 rows
                from leadpush.outcomes import InputError
                raise InputError(f"{lead_file.name}: line 8: not valid UTF-8")
            yield item

    monkeypatch.setattr(checks.Checker, "check_file", check_file)
    r = up(p, "--json")
    assert r.exit_code == 1, r.stderr
    summary = json.loads(r.stdout)
    counts = summary["counts"]
    assert counts["added"] + counts["aborted"] == 6
    assert "changed during the upload after 6 of 10 rows" in summary["stop_reason"]
    journal = read_jsonl(tmp_path / "leads.csv.leadpush-journal.jsonl")
    assert sum(1 for x in journal if x["type"] == "row" and x["status"] == "added") == counts["added"]
    assert len(stored(sb)) == counts["added"]


# ---------------------------------------------------------------------------- 13. every setting checked

@pytest.mark.parametrize("args,env,message", [
    (["--encoding", "rot13"], {}, "encoding (from flag): 'rot13' is not a text encoding"),
    (["--encoding", "nope"], {}, "unknown encoding 'nope'"),
    (["--rate", "99999999999/s"], {}, "at most 1,000,000/min"),
    ([], {"LEADPUSH_API_KEY": "ключ"}, "(from environment (LEADPUSH_API_KEY)) holds characters an HTTP header"),
])
def test_bad_settings_are_one_line_naming_their_source(up, tmp_path, args, env, message):
    p = write_csv(tmp_path / "leads.json", [])
    p.write_text('[{"phone": "9400000000", "campaign": "Nightly"}]')
    r = up(p, *args, env=env)
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("toml,message", [
    ('[[accounts]]\nuser = "a"\napi_key = "k"\ncampaigns = 5\n', "account 1: a value has the wrong type"),
    ('[[accounts]]\nuser = "a"\napi_key = "k"\ncampaigns = [5]\n', "account 1: a value has the wrong type"),
])
def test_bad_sandbox_configs_are_one_line(cli, tmp_path, toml, message):
    (tmp_path / "sb.toml").write_text(toml)
    r = cli("sandbox", "--config", tmp_path / "sb.toml", "--port", "0")
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------- 14. temporary files

def test_temporary_files_are_private_and_gone_after_an_error(cli, tmp_path, monkeypatch):
    p = write_csv(tmp_path / "leads.csv", rows(3) + [["12", "c"]])
    modes = []
    real = records.open_output

    def spy(path, flags):
        f = real(path, flags)
        modes.append(stat.S_IMODE(os.fstat(f.fileno()).st_mode))
        return f

    monkeypatch.setattr(records, "open_output", spy)
    (tmp_path / "out").mkdir()
    r = cli("validate", p, "--results", tmp_path / "r.csv", "--failures", tmp_path / "out")
    assert r.exit_code == 2 and "is a folder" in r.stderr
    r = cli("validate", p, "--results", tmp_path / "r.csv")
    assert r.exit_code == 1 and modes and set(modes) == {0o600}
    assert not [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


def test_sigterm_during_validate_leaves_no_temporary_file(tmp_path, penv):
    import signal
    import time
    p = write_csv(tmp_path / "leads.csv", rows(400_000))
    proc = subprocess.Popen([sys.executable, "-m", "leadpush", "validate", str(p), "--results", str(tmp_path / "r.csv"),
                             "--table", "none"], env=penv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".r.csv.*.tmp")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert not list(tmp_path.glob(".*.tmp")) and "Traceback" not in err


def _dead_pid() -> int:
    """The pid of a process that has come and gone (reaped): no process has it now."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("output", ["results", "failures", "fixit", "split", "split xlsx"])
def test_leftovers_of_killed_runs_are_removed_when_their_file_is_written_again(cli, tmp_path, output):
    """Only regular files named for this same target whose process is gone: a live run's
    temporary, another file's, a symlink (and what it points to), a FIFO or a folder stay."""
    if output in ("fixit", "split xlsx"):
        openpyxl = pytest.importorskip("openpyxl")
    if output == "split xlsx":
        wb = openpyxl.Workbook()
        for row in rows(3) + [["12", "Nightly"]]:
            wb.active.append(row)
        p = tmp_path / "leads.xlsx"
        wb.save(p)
    else:
        p = write_csv(tmp_path / "leads.csv", rows(3) + [["12", "Nightly"]])
    args, target = {"results": (["--results", tmp_path / "r.csv"], "r.csv"),
                    "failures": ([], "leads.csv.failures.csv"),
                    "fixit": (["--failures", tmp_path / "fix.xlsx"], "fix.xlsx"),
                    "split": (["--split"], "leads.csv.valid.csv"),
                    "split xlsx": (["--split"], "leads.xlsx.valid.xlsx")}[output]
    dead, dead_link, dead_other = _dead_pid(), _dead_pid(), _dead_pid()
    gone = [f".{target}.{dead}.tmp", f".{target}.{dead}.tmp.plain"]
    for name in gone:
        (tmp_path / name).write_text("half a file")
    stay = [f".{target}.{os.getppid()}.tmp", f".other.csv.{dead}.tmp", f".{target}.{dead}.tmp.old"]
    for name in stay:
        (tmp_path / name).write_text("not a leftover of a dead run")
    (tmp_path / "keep.txt").write_text("the user's")
    os.symlink(tmp_path / "keep.txt", tmp_path / f".{target}.{dead_link}.tmp")
    os.mkfifo(tmp_path / f".{target}.{dead_link}.tmp.plain")
    (tmp_path / f".{target}.{dead_other}.tmp").mkdir()
    stay += [f".{target}.{dead_link}.tmp", f".{target}.{dead_link}.tmp.plain", f".{target}.{dead_other}.tmp"]

    r = cli("validate", p, *args, "--table", "none")
    assert r.exit_code == 1, r.stderr
    left = {f.name for f in tmp_path.iterdir()}
    assert target in left and not set(gone) & left
    assert set(stay) <= left
    assert (tmp_path / f".{target}.{dead_link}.tmp").is_symlink() and (tmp_path / "keep.txt").read_text() == "the user's"


def test_a_temporary_left_by_kill_9_is_removed_by_the_next_run(cli, tmp_path, penv):
    big = write_csv(tmp_path / "big.csv", rows(400_000))
    proc = leadpush("validate", big, "--results", tmp_path / "r.csv", "--table", "none", env=penv, wait=False)
    try:
        wait_for(lambda: list(tmp_path.glob(".r.csv.*.tmp")) or proc.poll() is not None, seconds=30)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    assert proc.returncode == -9 and [f.name for f in tmp_path.glob(".r.csv.*.tmp")] == [f".r.csv.{proc.pid}.tmp"]

    r = cli("validate", write_csv(tmp_path / "leads.csv", rows(3)), "--results", tmp_path / "r.csv")
    assert r.exit_code == 0, r.stderr
    assert not list(tmp_path.glob(".r.csv.*"))  # (big.csv's failures file keeps its own until that is written)
    assert [x["phoneNumber"] for x in read_csv(tmp_path / "r.csv")] == ["9400000000", "9400000001", "9400000002"]


# ---------------------------------------------------------------------------- 15. leadpush's own bugs

def test_an_unexpected_exception_exits_70_with_one_line(up, tmp_path, monkeypatch):
    p = write_csv(tmp_path / "leads.csv", rows(5))

    def boom(self, o, failed):
        if o.row == 4:
            raise RuntimeError("a bug")

    monkeypatch.setattr(records.Recorder, "_table", boom)
    r = up(p, "--results", tmp_path / "r.csv")
    assert r.exit_code == 70
    [line] = r.stderr.strip().splitlines()[-1:]
    assert "Internal error: RuntimeError" in line and "LEADPUSH_DEBUG=1" in line and KEY not in r.stderr
    assert [x["row"] for x in read_csv(tmp_path / "r.csv")] == ["2", "3", "4"]  # what was recorded stays valid
    r = up(p, "--resume", "--results", tmp_path / "r.csv", env={"LEADPUSH_DEBUG": "1"})
    assert r.exit_code == 70 and "Traceback" in r.stderr and 'raise RuntimeError("a bug")' in r.stderr


def test_an_unexpected_exception_in_a_real_process_exits_70(tmp_path, penv):
    # --sheet on a file that is not XLSX is ignored; break the reader another way: a bug injected
    # through PYTHONSTARTUP is not run for -m, so use sitecustomize on PYTHONPATH.
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(
        "import leadpush.records as r\n"
        "def boom(*a, **k):\n    raise ZeroDivisionError('injected')\n"
        "r.Recorder.record = boom\n")
    p = write_csv(tmp_path / "leads.csv", rows(2))
    env = {**penv, "PYTHONPATH": str(tmp_path / "site") + os.pathsep + penv.get("PYTHONPATH", "")}
    code, out, err = leadpush("validate", p, env=env)
    assert code == 70 and "Internal error: ZeroDivisionError" in err and "LEADPUSH_DEBUG=1" in err
    assert "Traceback" not in err


def _file_size_capped(limit: int):
    """For a child process: every write past `limit` bytes of a file fails (EFBIG), as a full disk does."""
    def cap() -> None:
        import resource
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error from write(), not the default kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return cap


def _capped(*args, limit: int, env: dict, tmpdir: Path) -> subprocess.CompletedProcess:
    tmpdir.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "leadpush", *map(str, args)], env={**env, "TMPDIR": str(tmpdir)},
                          capture_output=True, text=True, timeout=120, preexec_fn=_file_size_capped(limit))


def _one_line_only(err: str) -> None:
    assert "Traceback" not in err and "Exception ignored" not in err and "Internal error" not in err, err


def test_a_full_disk_while_the_fixit_workbook_is_built_is_one_line_and_keeps_the_earlier_file(tmp_path, penv):
    pytest.importorskip("openpyxl")
    bad = [["phone", "campaign", "name"]] + [[f"12-x{i}", "Nightly", "n" * 40] for i in range(3000)]
    p = write_csv(tmp_path / "leads.csv", bad)
    earlier = tmp_path / "fix.xlsx"
    earlier.write_bytes(b"yesterday's workbook")
    r = _capped("validate", p, "--failures", earlier, "--table", "none", limit=150_000, env=penv,
                tmpdir=tmp_path / "tmp")
    assert r.returncode == 2, r.stderr
    assert f"{earlier}: the failures file cannot be written (File too large; its parts are built in" in r.stderr
    _one_line_only(r.stderr)
    assert earlier.read_bytes() == b"yesterday's workbook"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["fix.xlsx", "leads.csv", "tmp"]  # no temporaries
    assert not list((tmp_path / "tmp").iterdir())


FULL_ON_SAVE = textwrap.dedent("""
    import errno, io, os, sys
    real_open = io.open
    full_on = os.environ["FULL_ON"]  # the ending of the one file whose disk is full

    class Full:
        def __init__(self, f):
            self.f, self.room = f, 2048
        def write(self, b):
            if len(b) > self.room:
                self.room = 0  # and full it stays: the zip's finalizer cannot write its end either
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.room -= len(b)
            return self.f.write(b)
        def __getattr__(self, name):
            return getattr(self.f, name)

    def open_(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return Full(f) if str(file).endswith(full_on) and "w" in mode else f

    io.open = open_  # zipfile opens the workbook it writes with io.open
    from leadpush.cli import main
    sys.argv[0] = "leadpush"
    main()
""")


def test_a_full_disk_while_the_fixit_workbook_is_saved_is_one_line(tmp_path, penv):
    """The sheet is built; the save into the failures file's folder hits the full disk."""
    pytest.importorskip("openpyxl")
    script = tmp_path / "full_on_save.py"
    script.write_text(FULL_ON_SAVE)
    bad = [["phone", "campaign"]] + [[f"12-x{i}", "Nightly"] for i in range(500)]
    p = write_csv(tmp_path / "leads.csv", bad)
    earlier = tmp_path / "fix.xlsx"
    earlier.write_bytes(b"yesterday's workbook")
    r = subprocess.run([sys.executable, str(script), "validate", str(p), "--failures", str(earlier)],
                       env={**penv, "FULL_ON": ".plain"}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert f"{earlier}: the failures file cannot be written (No space left on device)" in r.stderr  # its folder's
    _one_line_only(r.stderr)
    assert earlier.read_bytes() == b"yesterday's workbook"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["fix.xlsx", "full_on_save.py", "leads.csv"]


def test_a_full_disk_while_the_split_workbook_is_saved_names_its_folder_not_the_temporary_one(tmp_path, penv):
    openpyxl = pytest.importorskip("openpyxl")
    script = tmp_path / "full_on_save.py"
    script.write_text(FULL_ON_SAVE)
    wb = openpyxl.Workbook()
    wb.active.append(["phone", "campaign"])
    for i in range(500):
        wb.active.append([str(9400000000 + i), "Nightly"])
    wb.save(tmp_path / "leads.xlsx")
    r = subprocess.run([sys.executable, str(script), "validate", str(tmp_path / "leads.xlsx"), "--split"],
                       env={**penv, "FULL_ON": ".tmp"}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "leads.xlsx.valid.xlsx: the valid rows cannot be written (No space left on device)" in r.stderr
    _one_line_only(r.stderr)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["full_on_save.py", "leads.xlsx"]


def test_a_full_disk_under_the_fixit_workbook_mid_upload_keeps_the_run_exit_code(sb, tmp_path, penv):
    pytest.importorskip("openpyxl")
    lines = [["phone", "campaign", "name"]] + [[str(9400000000 + i), "Nightly", "n"] for i in range(20)]
    lines += [[f"12-x{i}", "Nightly", "n" * 40] for i in range(3000)]
    p = write_csv(tmp_path / "leads.csv", lines)
    r = _capped("upload", p, "--rate", "60000/min", "--failures", tmp_path / "fix.xlsx", limit=150_000, env=penv,
                tmpdir=tmp_path / "tmp")
    assert r.returncode == 1, r.stderr  # the run's own code (rows invalid), not 2: rows were sent
    assert "the failures file cannot be written (File too large" in r.stderr
    _one_line_only(r.stderr)
    assert not (tmp_path / "fix.xlsx").exists()
    # A file that cannot be written stops dispatching; what was sent is in the journal, for --resume.
    journal = read_jsonl(tmp_path / "leads.csv.leadpush-journal.jsonl")
    assert Counter(x["phone"] for x in journal if x["type"] == "row" and x["status"] == "added") == stored(sb)
    assert journal[-1]["type"] == "end" and journal[-1]["complete"] is False


@pytest.mark.parametrize("ext", ["csv", "xlsx"])
def test_a_full_disk_under_the_valid_rows_file_is_one_line(tmp_path, penv, ext):
    if ext == "xlsx":
        openpyxl = pytest.importorskip("openpyxl")
        wb = openpyxl.Workbook()
        wb.active.append(["phone", "campaign", "name"])
        for i in range(3000):
            wb.active.append([str(9400000000 + i), "Nightly", "n" * 40])
        p = tmp_path / "leads.xlsx"
        wb.save(p)
    else:
        p = write_csv(tmp_path / "leads.csv", [["phone", "campaign", "name"]]
                      + [[str(9400000000 + i), "Nightly", "n" * 40] for i in range(3000)])
    earlier = tmp_path / f"{p.name}.valid.{ext}"
    earlier.write_text("yesterday's valid rows")
    r = _capped("validate", p, "--split", "--table", "none", limit=max(p.stat().st_size, 60_000) + 1, env=penv,
                tmpdir=tmp_path / "tmp")
    assert r.returncode == 2, r.stderr
    assert f"{p.name}.valid.{ext}: the valid rows cannot be written (File too large" in r.stderr
    _one_line_only(r.stderr)
    assert earlier.read_text() == "yesterday's valid rows"  # never replaced by a partial file, nor removed
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted([p.name, earlier.name, "tmp"])


def test_a_valid_rows_file_that_fails_at_its_last_write_is_one_line_and_logged(tmp_path, penv):
    # 55 rows of about 137 bytes: under one write buffer, so the file's only write is its last; the
    # log, a short line a row, stays under the limit.
    p = write_csv(tmp_path / "leads.csv", [["phone", "campaign", "name"]]
                  + [[str(9400000000 + i), "Nightly", "n" * 110] for i in range(55)])
    log = tmp_path / "run.log"
    r = _capped("validate", p, "--split", "--log-file", log, limit=6_000, env=penv, tmpdir=tmp_path / "tmp")
    assert r.returncode == 2, r.stderr
    assert "leads.csv.valid.csv: the valid rows cannot be written (File too large)" in r.stderr
    _one_line_only(r.stderr)
    lines = log.read_text().splitlines()
    assert "start leadpush validate" in lines[0] and "error leadpush validate" in lines[-1], lines
    assert not (tmp_path / "leads.csv.valid.csv").exists()


@pytest.mark.parametrize("check_duplicate", [True, False])
def test_a_send_line_is_on_disk_before_its_request_only_where_a_resend_could_double_the_lead(
        up, sb, tmp_path, monkeypatch, check_duplicate):
    """kill -9 loses nothing the kernel has; a power cut loses what is not fsynced. A row sent with
    checkDuplicate FALSE whose send line were lost would be resent after the cut, and added twice."""
    p = write_csv(tmp_path / "leads.csv", rows(6))
    events: list[str] = []
    real_write_all, real_fsync = journal_module._write_all, os.fsync

    def write_all(fd, data):
        events.append(json.loads(data)["type"])
        real_write_all(fd, data)

    def fsync(fd):
        events.append("fsync")
        real_fsync(fd)

    real_store = Campaign.store

    def store(campaign, lead):  # the sandbox stores a lead: noted among the journal's events
        events.append("stored")
        real_store(campaign, lead)

    monkeypatch.setattr(journal_module, "_write_all", write_all)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(Campaign, "store", store)
    r = up(p, "--workers", "1", *(() if check_duplicate else ("--no-check-duplicate",)))
    assert r.exit_code == 0, r.stderr
    sends = [i for i, e in enumerate(events) if e == "send"]
    assert len(sends) == 6 and events.count("stored") == 6
    after_send = {events[i + 1] for i in sends}
    assert after_send == ({"stored"} if check_duplicate else {"fsync"})
    assert all(events[i + 1] == "fsync" for i, e in enumerate(events) if e == "row")  # verdicts always
