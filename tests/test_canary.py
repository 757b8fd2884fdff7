"""`upload --limit N`: a canary run sends only the first N valid rows; `--resume` sends the rest."""

from __future__ import annotations

from leadpush.sandbox import Sandbox

from .conftest import read_csv, write_csv
from .test_upload import CONFIG, KEY, leads_in


def test_limit_sends_the_first_valid_rows_and_resume_sends_the_rest(cli, tmp_path):
    rows = [["phone", "campaign"], ["9100000001", "Main"], ["12", "Main"], ["9100000002", "Main"],
            ["9100000003", "Main"], ["9100000004", "Main"]]
    p = write_csv(tmp_path / "leads.csv", rows)
    with Sandbox(CONFIG, rate_limit=0) as sb:
        env = {"LEADPUSH_API_KEY": KEY, "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
        common = ("--base-url", sb.base_url, "--username", "demo", "--quiet")
        first = cli("upload", p, *common, "--limit", "2", "--results", tmp_path / "r1.csv", env=env)
        assert first.exit_code == 1, first.stderr  # rows were left unsent: not a clean 0
        assert leads_in(sb, "Main") == ["9100000001", "9100000002"]
        got = [(r["row"], r["status"], r["message"]) for r in read_csv(tmp_path / "r1.csv")]
        assert got[2:] == [("4", "added", got[2][2]), ("5", "aborted", "not sent: --limit"),
                           ("6", "aborted", "not sent: --limit")]
        assert got[1][1] == "invalid"  # an invalid row does not count toward the limit
        assert "Stopped: --limit 2: sent the first 2 valid rows; --resume sends the rest" in first.stderr

        # The journal knows the run did not finish: a plain re-run is refused, --resume sends the rest.
        again = cli("upload", p, *common, env=env)
        assert again.exit_code == 2 and "use --resume" in again.stderr
        rest = cli("upload", p, *common, "--resume", "--results", tmp_path / "r2.csv", env=env)
        assert rest.exit_code == 1, rest.stderr  # row 3 is still invalid
        assert leads_in(sb, "Main") == ["9100000001", "9100000002", "9100000003", "9100000004"]
        statuses = [r["status"] for r in read_csv(tmp_path / "r2.csv")]
        assert statuses == ["skipped", "invalid", "skipped", "added", "added"]


def test_limit_must_be_positive(cli, tmp_path):
    p = write_csv(tmp_path / "leads.csv", [["phone", "campaign"], ["9100000001", "Main"]])
    r = cli("upload", p, "--sandbox", "--limit", "0")
    assert r.exit_code == 2 and "--limit" in r.stderr
