"""The ledger with real processes: a lock held by another process before a run (found before the
journal starts), a ledger that fails mid-run (sending stops, the journal keeps every sent row,
--resume finishes), and a kill -9 whose in-flight rows are `exists_after_attempt` in the resumed run."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter

import pytest

from leadpush.ledger import LEDGER_NAME
from leadpush.sandbox import Sandbox
from tests.conftest import leadpush, read_jsonl, rows, stored, wait_for, write_csv

KEY = "ledger-proc-3c8"
CONFIG = {"accounts": [{"user": "ops", "api_key": KEY, "auth_mode": "TOKEN_AUTH", "campaigns": [
    {"name": "Nightly", "type": "progressive", "started": True}]}]}
HOLD = ("import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "print('held', flush=True)\n"
        "sys.stdin.readline()\n"  # held until the test says so (or closes stdin)
        "db.execute('ROLLBACK')\n")




@pytest.fixture
def env(tmp_path, home, data_dir):
    return {**os.environ, **home, "LEADPUSH_USERNAME": "ops", "LEADPUSH_API_KEY": KEY,
            "LEADPUSH_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1", "NO_COLOR": "1",
            "COLUMNS": "250", "LEADPUSH_DATA_DIR": str(data_dir), "LEADPUSH_LEDGER_WAIT": "0.3"}




class Holder:
    """Another process holding the ledger's write lock until released."""

    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=10)



def journal_rows(path, status="added"):
    return Counter(r["phone"] for r in read_jsonl(path) if r.get("type") == "row" and r["status"] == status)


def ledger_statuses(data_dir):
    db = sqlite3.connect(data_dir / LEDGER_NAME)
    found = db.execute("SELECT phone, status FROM leads").fetchall()
    db.close()
    return found


@pytest.mark.parametrize("command", ["upload", "undo"])
def test_a_locked_ledger_stops_the_run_before_its_journal_starts(tmp_path, env, data_dir, command):
    with Sandbox(CONFIG, rate_limit=0) as sb:
        env["LEADPUSH_BASE_URL"] = sb.base_url
        p = write_csv(tmp_path / "leads.csv", rows(5))
        if command == "undo":
            assert leadpush("upload", p, "--rate", "6000/min", env=env)[0] == 0
        else:
            assert leadpush("history", env=env)[0] == 0  # the ledger exists, in WAL mode, as after any run
        args = ("upload", p, "--rate", "6000/min") if command == "upload" else ("undo", "1", "--yes")
        before = dict(sb.state.stats_view()["requests"])
        holder = Holder(data_dir / LEDGER_NAME)
        try:
            code, out, err = leadpush(*args, env=env)
        finally:
            holder.release()
        assert code == 2 and len(err.strip().splitlines()) == 1 and "locked by another process" in err, err
        assert "Traceback" not in err
        after = sb.state.stats_view()["requests"]
        assert after["AddCampaignData"] == before["AddCampaignData"]
        assert after["deleteCampaignData"] == before["deleteCampaignData"]
        # The lock gone, the same command runs: no "stopped at row 0 ... use --resume".
        code, out, err = leadpush(*args, env=env)
        assert code == 0, err
        assert stored(sb) == (Counter() if command == "undo" else Counter(str(9300000000 + i) for i in range(5)))


def test_a_ledger_that_fails_mid_run_stops_sending_and_the_journal_keeps_every_sent_row(tmp_path, env, data_dir):
    with Sandbox(CONFIG, rate_limit=0, latency_ms=100) as sb:
        env["LEADPUSH_BASE_URL"] = sb.base_url
        p = write_csv(tmp_path / "leads.csv", rows(20))
        proc = leadpush("upload", p, "--rate", "6000/min", "--workers", "1", env=env, wait=False)
        wait_for(lambda: sum(stored(sb).values()) >= 3)
        holder = Holder(data_dir / LEDGER_NAME)
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            holder.release()
        assert proc.returncode == 1, err  # rows not sent: the run's own exit code, not "nothing sent" (2)
        assert "Traceback" not in err
        assert "Stopped: the run ledger could not be written" in err and "leadpush undo" in err
        journal = tmp_path / "leads.csv.leadpush-journal.jsonl"
        sent = stored(sb)
        assert 3 <= sum(sent.values()) < 20
        assert journal_rows(journal) == sent  # every lead that reached CloudAgent is in the journal
        # Every one of them is in the ledger too, but for the rows finished after the failure.
        in_ledger = Counter(phone for phone, status in ledger_statuses(data_dir) if status == "added")
        assert in_ledger <= sent and sum(in_ledger.values()) >= sum(sent.values()) - 2
        code, out, err = leadpush("upload", p, "--rate", "6000/min", "--resume", env=env)
        assert code == 0, err
        assert stored(sb) == Counter(str(9300000000 + i) for i in range(20))  # each once


def test_rows_a_killed_run_had_in_flight_are_exists_after_attempt_when_resumed(tmp_path, env, data_dir):
    with Sandbox(CONFIG, rate_limit=0, latency_ms=300) as sb:
        env["LEADPUSH_BASE_URL"] = sb.base_url
        p = write_csv(tmp_path / "leads.csv", rows(40))
        proc = leadpush("upload", p, "--rate", "6000/min", "--workers", "4", env=env, wait=False)
        wait_for(lambda: sum(stored(sb).values()) >= 10)
        proc.kill()  # kill -9: requests in flight were stored, their answers never read
        proc.wait()
        journal = tmp_path / "leads.csv.leadpush-journal.jsonl"
        in_flight = set(stored(sb)) - set(journal_rows(journal))
        assert in_flight  # stored but never recorded: four workers, 300 ms each
        code, out, err = leadpush("upload", p, "--rate", "6000/min", "--resume", env=env)
        assert code == 0, err
        statuses = dict(ledger_statuses(data_dir))
        assert {phone: statuses[phone] for phone in in_flight} == dict.fromkeys(in_flight, "exists_after_attempt")
        assert "exists" not in statuses.values()  # none claimed to have been there before
        # Undo of the resumed run leaves them unless asked; with --include-probable every lead goes.
        code, out, err = leadpush("undo", "2", "--yes", "--rate", "6000/min", env=env)
        assert code == 0 and "found already there after the run's own attempt" in err
        assert set(stored(sb)) >= in_flight
        code, out, err = leadpush("undo", "2", "--yes", "--include-probable", "--rate", "6000/min", env=env)
        assert code == 0, err
        code, out, err = leadpush("undo", "1", "--yes", "--rate", "6000/min", env=env)
        assert code == 0, err
        assert stored(sb) == Counter()
