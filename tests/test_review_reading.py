"""Findings of the independent review of the reading side (issue 9's readers, issue 13's
workbooks), each end to end: what reaches the sandbox's /sandbox/leads is exactly the file's lead,
or the file stops (exit 2) and nothing is sent, or the row is refused with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_exports import KEY, sandbox, sent  # noqa: F401  (sandbox is a fixture)


def upload(cli, sb, tmp_path, path, *args):
    env = {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "demo", "LEADPUSH_API_KEY": KEY,
           "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
    return cli("upload", path, "--rate", "60000/min", "--no-journal", "--json", "--campaign", "Main", *args,
               env=env)


def by_phone(sb) -> dict[str, dict[str, str]]:
    return {lead["phoneNumber"]: lead for lead in sent(sb)}


# 1. An unclosed quote that swallows short rows (trailing empty cells left off) stops the file.

def test_unclosed_quote_swallowing_short_rows_stops_the_file(cli, tmp_path, sandbox):
    p = tmp_path / "uq.csv"
    p.write_text('Name,Phone,City,Email\nRavi,9876543211,"Pune\nAnu,9876543212\nBob,9876543213\n'
                 'Cara,9876543214,Goa",c@x.in\nEve,9876543216,Goa,e@x.in\n', encoding="utf-8")
    r = upload(cli, sandbox, tmp_path, p)
    assert r.exit_code == 2, r.output
    assert "uq.csv: line 2, column 3: a quote opens here" in r.stderr
    assert "line 3: 'Anu,9876543212'" in r.stderr and "Traceback" not in r.output
    assert sent(sandbox) == []


def test_multi_line_address_still_reads(cli, tmp_path, sandbox):
    p = tmp_path / "address.csv"
    p.write_text('Name,Phone,Address\nRavi,9876543211,"12 MG Road,\nFlat 4, Block B,\nPune 411001"\n'
                 'Anu,9876543212,Delhi\n', encoding="utf-8")
    r = upload(cli, sandbox, tmp_path, p)
    assert r.exit_code == 0, r.output
    assert by_phone(sandbox)["9876543211"]["Address"] == "12 MG Road,\nFlat 4, Block B,\nPune 411001"
