"""Workbooks (XLSX, XLSM, XLSB, XLS, ODS) read with calamine: sheets, merges, cells, lying sizes, one parse."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from leadpush.outcomes import InputError
from leadpush.readers import open_lead_file
from leadpush.sandbox import Sandbox

openpyxl = pytest.importorskip("openpyxl")
pytest.importorskip("python_calamine")

FIXTURES = Path(__file__).parent / "fixtures"
PHONES = ["9278108254", "9735790163", "9700090115", "9715311299", "9933329636", "9688222514"]
CAMPAIGNS = ["camp_a"] * 3 + ["camp_b"] * 3
CONFIG = {"accounts": [{"user": "demo", "api_key": "demo-key-7f3a9c", "auth_mode": "TOKEN_AUTH", "campaigns": [
    {"name": "camp_a", "type": "progressive", "started": True},
    {"name": "camp_b", "type": "progressive", "started": True},
    {"name": "moved", "type": "progressive", "started": True}]}]}


def rows_of(path, **kw):
    with open_lead_file(path, **kw) as f:
        return f, [(row, dict(zip(f.keys or [], values, strict=True))) for row, values in f.rows()]


def workbook(tmp_path, rows, name="a.xlsx", **sheets):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Leads"
    for r in rows:
        ws.append(r)
    for title, other in sheets.items():
        extra = wb.create_sheet(title)
        for r in other:
            extra.append(r)
    p = tmp_path / name
    wb.save(p)
    return p


def rezip(src: Path, dst: Path, change) -> Path:
    """Copy an XLSX, passing each member through change(name, bytes) -> bytes | None (None drops it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info, data)  # as stored before (an .ods's mimetype stays uncompressed)
    return dst


# ---------------------------------------------------------------------------- every format

@pytest.mark.parametrize("ext", ["xlsx", "xls", "ods", "xlsb"])
def test_every_format_reads_the_same_leads(ext):
    f, rows = rows_of(FIXTURES / f"leads.{ext}")
    assert f.format == ext
    assert [r for r, _ in rows] == [2, 3, 4, 5, 6, 7]  # the sheet rows
    assert [v["Phone"] for _, v in rows] == PHONES  # numeric cells as their digits, no ".0"
    assert [v["Priority"] for _, v in rows] == ["5", "3", "4", "3", "4", "3"]
    if ext != "xlsb":  # the hand-written .xlsb has no styles, so no dates, and no merges
        assert [v["Campaign"] for _, v in rows] == CAMPAIGNS  # merged down: every covered row
        assert rows[0][1]["Expiry"] == dt.date(2031, 1, 10)


@pytest.mark.parametrize("ext", ["xlsx", "xls", "ods", "xlsb"])
def test_format_is_sniffed_from_the_bytes_whatever_the_name(tmp_path, ext):
    p = tmp_path / "export.dat"
    shutil.copy(FIXTURES / f"leads.{ext}", p)
    f, rows = rows_of(p)
    assert f.format == ext and [v["Phone"] for _, v in rows] == PHONES
    with open_lead_file("-", stdin=io.BytesIO((FIXTURES / f"leads.{ext}").read_bytes())) as f:
        assert f.format == ext and len(list(f.rows())) == 6


def test_merged_campaign_reaches_cloudagent_on_every_row(cli, tmp_path):
    """End to end: what the sandbox stores is what the merged cells meant, even with --campaign."""
    with Sandbox(CONFIG, rate_limit=0) as sb:
        env = {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "demo",
               "LEADPUSH_API_KEY": "demo-key-7f3a9c", "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
        shutil.copy(FIXTURES / "leads.xlsx", tmp_path)  # the journal is written beside the input
        r = cli("upload", tmp_path / "leads.xlsx", "--campaign", "moved", "--rate", "6000/min", "--json",
                "--failures", tmp_path / "f.csv", env=env)
        assert r.exit_code == 0, r.output
        campaigns = sb.state.leads_view()["accounts"]["demo"]["campaigns"]
    stored = {name: sorted(str(lead.get("phoneNumber")) for lead in c["leads"]) for name, c in campaigns.items()}
    assert stored == {"camp_a": sorted(PHONES[:3]), "camp_b": sorted(PHONES[3:]), "moved": []}


@pytest.mark.parametrize("ext", ["xls", "xlsb", "ods"])
def test_older_formats_get_xlsx_failures_and_split_files(cli, tmp_path, ext):
    # .xlsb rows 3, 4, 6 and 7 have no campaign (no merges there): they fail; the others are valid.
    shutil.copy(FIXTURES / f"leads.{ext}", tmp_path)
    r = cli("validate", tmp_path / f"leads.{ext}", "--split")
    assert r.exit_code == (1 if ext == "xlsb" else 0), r.output
    _, valid = rows_of(tmp_path / f"leads.{ext}.valid.xlsx")
    assert [v["phoneNumber"] for _, v in valid] == (PHONES if ext != "xlsb" else [PHONES[0], PHONES[3]])
    if ext == "xlsb":
        _, failed = rows_of(tmp_path / f"leads.{ext}.failures.xlsx")
        assert [v["Phone"] for _, v in failed] == [PHONES[1], PHONES[2], PHONES[4], PHONES[5]]


# ---------------------------------------------------------------------------- which sheet

def test_hidden_first_sheet_is_passed_over_and_sheets_are_listed_when_no_phone(cli, tmp_path):
    f, rows = rows_of(FIXTURES / "leads.xlsx")
    assert "sheet 'Leads'" in f.sheet_note and len(rows) == 6
    r = cli("validate", FIXTURES / "leads.xlsx", "--sheet", "notes", "--no-failures")
    assert r.exit_code == 2
    assert "no phone number column" in r.stderr
    assert "sheets: Summary (hidden), Leads, Notes" in r.stderr and "--sheet" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_active_sheet_is_read(tmp_path):
    f, rows = rows_of(FIXTURES / "active_third_sheet.xlsx")
    assert rows == [(2, {"Phone": "9876500001", "Campaign": "camp_a"})]


def test_sheet_name_is_matched_without_regard_to_case():
    _, rows = rows_of(FIXTURES / "leads.ods", sheet="LEADS")
    assert len(rows) == 6
    _, rows = rows_of(FIXTURES / "leads.xlsx", sheet="summary")  # asked for by name: hidden or not
    assert rows == []
    with pytest.raises(InputError, match=r"no sheet named 'Nope' \(sheets: Summary, Leads, Notes\)"):
        rows_of(FIXTURES / "leads.xlsx", sheet="Nope")


def test_header_row_other_than_the_first(tmp_path):
    p = workbook(tmp_path, [["Sales report"], ["Generated 2026-11-27"], ["Phone", "Name"], [9876543210, "Asha"]])
    f, rows = rows_of(p, header_row=3)
    assert f.columns == ["Phone", "Name"] and rows == [(4, {"Phone": "9876543210", "Name": "Asha"})]


# ---------------------------------------------------------------------------- cells

def test_numbers_keep_15_significant_digits_without_exponent(tmp_path):
    p = workbook(tmp_path, [["Phone", "Priority", "Score", "Tiny", "Big"],
                            [919876543210.0, 0.1 + 0.2, 123456789012345, 1.5e-7, 1e20],
                            [-0.0, 2.50, 7.0, 100.0, 12345678901234567890]])
    _, rows = rows_of(p)
    assert rows[0][1] == {"Phone": "919876543210", "Priority": "0.3", "Score": "123456789012345",
                          "Tiny": "0.00000015", "Big": "1e+20"}
    # Beyond 2**53 a float has lost digits: it stays in scientific notation, so a phone
    # check says so instead of sending invented digits.
    assert rows[1][1] == {"Phone": "0", "Priority": "2.5", "Score": "7", "Tiny": "100",
                          "Big": "1.234567890123457e+19"}


def test_formula_without_a_saved_result_is_named_not_empty(cli, tmp_path):
    # openpyxl writes formulas without calculating them: exactly the case.
    p = workbook(tmp_path, [["Phone", "Campaign"], ["=9876543210", "camp_a"], [9876543211, "=\"camp\"&\"_b\""],
                            [9876543212, "camp_a"]])
    r = cli("validate", p, "--campaign", "moved", "--failures", tmp_path / "f.csv")
    assert r.exit_code == 1, r.output
    failures = (tmp_path / "f.csv").read_text(encoding="utf-8")
    assert "cell A2 holds a formula (=9876543210) saved without its result" in failures
    assert "cell B3 holds a formula (=\"\"camp\"\"&\"\"_b\"\") saved without its result" in failures
    assert "phone number is empty" not in failures
    assert failures.count("saved without its result") == 2  # the third row is valid
    r = cli("validate", p, "--no-failures", "--json")  # without --campaign: B3 alone is named
    causes = {c["cause"]: c["rows"] for c in json.loads(r.stdout)["causes"]}
    assert causes == {"cell.no_value": 2}


def test_error_cells_read_as_their_error_text(tmp_path):
    p = workbook(tmp_path, [["Phone", "Name"], ["#N/A", "Asha"], [9876543210, "#REF!"]])
    _, rows = rows_of(p)
    assert [v for _, v in rows] == [{"Phone": "#N/A", "Name": "Asha"}, {"Phone": "9876543210", "Name": "#REF!"}]


def _make_xlsb(path, **kw):
    sys.path.insert(0, str(FIXTURES))
    try:
        from make_workbooks import make_xlsb
    finally:
        sys.path.remove(str(FIXTURES))
    make_xlsb(path, **kw)
    return path


def test_error_cells_of_an_xlsb_are_never_sent(cli, tmp_path):
    # calamine reads an error cell as empty: a #DIV/0! priority would go out as no priority.
    p = _make_xlsb(tmp_path / "errors.xlsb", errors={(1, 3): (0x07, True), (2, 1): (0x2A, False),
                                                     (3, 0): (0x17, False)})
    r = cli("validate", p, "--json", "--no-failures", "--campaign", "camp_a")
    assert r.exit_code == 1, r.output
    rows = {x["row"]: (x["cause"], x["message"]) for x in json.loads(r.stdout)["problem_rows"]}
    assert rows[2][0] == "cell.spreadsheet_error" and rows[2][1].startswith("cell D2 holds #DIV/0!")
    assert rows[3][0] == "cell.spreadsheet_error" and rows[3][1].startswith("cell B3 holds #N/A")
    assert rows[4][0] == "phone.spreadsheet_error" and "'#REF!'" in rows[4][1]
    assert json.loads(r.stdout)["counts"]["valid"] == 3


def test_merged_cells_of_an_xlsb_give_their_value_to_every_cell_they_cover(cli, tmp_path):
    # calamine reports no merges for .xlsb: leadpush reads the BrtMergeCell records itself.
    p = _make_xlsb(tmp_path / "merged.xlsb", merges=[(1, 3, 2, 2), (4, 6, 2, 2)])  # C2:C4, C5:C7
    _, rows = rows_of(p)
    assert [v["Campaign"] for _, v in rows] == CAMPAIGNS
    r = cli("validate", p, "--json", "--no-failures")
    assert r.exit_code == 0, r.output  # no row without its campaign


@pytest.mark.parametrize("biff5", [False, True])
def test_error_cells_of_an_xls_are_never_sent_biff8_and_biff5(cli, tmp_path, biff5):
    # A BOOLERR error (as Excel writes a typed #DIV/0!) and a FORMULA whose cached result is #N/A;
    # BIFF5 (Excel 95, a "Book" stream) keeps its sheets' names without BIFF8's flag byte.
    sys.path.insert(0, str(FIXTURES))
    try:
        from make_biff import build
    finally:
        sys.path.remove(str(FIXTURES))
    p = tmp_path / "old.xls"
    p.write_bytes(build(biff5=biff5))
    r = cli("validate", p, "--json", "--no-failures")
    assert r.exit_code == 1, r.output
    rows = {x["row"]: x["message"] for x in json.loads(r.stdout)["problem_rows"]}
    assert sorted(rows) == [3, 4]
    assert rows[3].startswith("cell C3 holds #DIV/0!") and rows[4].startswith("cell D4 holds #N/A")


def _ods(path: Path, rows: list[str], calcext: bool = False) -> Path:
    """A minimal ODS (mimetype, manifest, content) with these table rows, as other writers save it
    (`calcext`: with LibreOffice's calcext namespace declared)."""
    ns = ('xmlns:calcext="urn:org:documentfoundation:names:experimental:calc:xmlns:calcext:1.0" '
          if calcext else "")
    content = ('<?xml version="1.0" encoding="UTF-8"?><office:document-content ' + ns +
               'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
               'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
               'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body>'
               '<office:spreadsheet><table:table table:name="Leads">' + "".join(rows)
               + '</table:table></office:spreadsheet></office:body></office:document-content>')
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:'
                'opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path='
                '"/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry '
                'manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>')
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", content)
        z.writestr("META-INF/manifest.xml", manifest)
    return path


def test_error_cells_of_an_ods_without_libreoffices_marks_are_found_through_repeats(cli, tmp_path):
    def text(v, formula=False, repeat=1):
        attrs = (' table:formula="of:=1/0" office:string-value=""' if formula else "") + (
            f' table:number-columns-repeated="{repeat}"' if repeat > 1 else "")
        return f'<table:table-cell office:value-type="string"{attrs}><text:p>{v}</text:p></table:table-cell>'

    p = _ods(tmp_path / "other.ods", [
        "<table:table-row>" + text("Phone") + text("Campaign") + text("Name") + text("Ref") + "</table:table-row>",
        "<table:table-row>" + text("9876543210") + text("Main") + text("#VALUE!", True, 2) + "</table:table-row>",
        '<table:table-row table:number-rows-repeated="2">' + text("9876543211") + text("Main") + text("Ok")
        + text("Err:502", True) + "</table:table-row>",
        "<table:table-row>" + text("9876543212") + text("Main") + text("Fine") + text("#N/A") + "</table:table-row>"])
    r = cli("validate", p, "--json", "--no-failures")
    assert r.exit_code == 1, r.output
    rows = {x["row"]: x["message"] for x in json.loads(r.stdout)["problem_rows"]}
    assert sorted(rows) == [2, 3, 4]
    assert "cell C2 holds #VALUE!" in rows[2] and "cell D2 holds #VALUE!" in rows[2]
    assert rows[3].startswith("cell D3 holds Err:502") and rows[4].startswith("cell D4 holds Err:502")
    assert json.loads(r.stdout)["counts"]["valid"] == 1  # "#N/A" typed as text is text


def _problem_rows(cli, p, *args):
    r = cli("validate", p, "--json", "--no-failures", *args)
    summary = json.loads(r.stdout)
    return r.exit_code, {x["row"]: x["message"] for x in summary["problem_rows"]}, summary["counts"]["valid"]


def test_a_merged_range_whose_value_cannot_be_sent_refuses_every_row_it_covers(cli, tmp_path):
    # Name C2:C4 merged, its value an error; Ref D5:D6 merged, an 18-digit number (inexact).
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in (["Phone", "Campaign", "Name", "Ref"], [9876543210, "Main", "#DIV/0!", 1],
                [9876543211, "Main", None, 2], [9876543212, "Main", None, 3],
                [9876543213, "Main", "Anu", 123456789012345678], [9876543214, "Main", "Bob", None],
                [9876543215, "Main", "Cara", 4]):
        ws.append(row)
    ws.merge_cells("C2:C4")
    ws.merge_cells("D5:D6")
    wb.save(tmp_path / "merged.xlsx")
    code, rows, valid = _problem_rows(cli, tmp_path / "merged.xlsx")
    assert code == 1 and sorted(rows) == [2, 3, 4, 5, 6] and valid == 1
    assert all(rows[n].startswith("cell C2 holds #DIV/0!") for n in (2, 3, 4))
    assert all(rows[n].startswith("cell D5 holds the number") for n in (5, 6))


def test_a_merged_error_cell_of_an_xlsb_or_ods_refuses_every_row_it_covers(cli, tmp_path):
    # Campaign C2:C4 merged (C3 and C4 empty, as a merge leaves them), its value #N/A.
    xlsb = _make_xlsb(tmp_path / "m.xlsb", errors={(1, 2): (0x2A, True)}, merges=[(1, 3, 2, 2)])
    code, rows, _ = _problem_rows(cli, xlsb, "--campaign", "camp_a")
    assert code == 1 and sorted(rows) == [2, 3, 4] and all(m.startswith("cell C2 holds #N/A") for m in rows.values())

    def text(v, attrs=""):
        return f'<table:table-cell office:value-type="string"{attrs}><text:p>{v}</text:p></table:table-cell>'

    spanned = ' table:formula="of:=1/0" office:string-value="" table:number-rows-spanned="2"'
    ods = _ods(tmp_path / "m.ods", [
        "<table:table-row>" + text("Phone") + text("Campaign") + text("Name") + "</table:table-row>",
        "<table:table-row>" + text("9876543210") + text("Main") + text("#DIV/0!", spanned) + "</table:table-row>",
        "<table:table-row>" + text("9876543211") + text("Main") + "<table:covered-table-cell/></table:table-row>",
        "<table:table-row>" + text("9876543212") + text("Main") + text("Ok") + "</table:table-row>"])
    code, rows, valid = _problem_rows(cli, ods)
    assert code == 1 and sorted(rows) == [2, 3] and valid == 1
    assert all(m.startswith("cell C2 holds #DIV/0!") for m in rows.values())


def test_error_cells_in_first_and_last_name_columns_are_never_sent_inside_name(cli, tmp_path):
    p = workbook(tmp_path, [["Phone", "Campaign", "First Name", "Last Name"], [9876543210, "Main", "#N/A", "Kumar"],
                            [9876543211, "Main", "Meera", "#DIV/0!"], [9876543212, "Main", "Asha", "Rao"]])
    code, rows, valid = _problem_rows(cli, p)
    assert code == 1 and valid == 1
    assert rows[2].startswith("cell C2 holds #N/A") and rows[3].startswith("cell D3 holds #DIV/0!")


def test_error_cells_on_a_sheet_that_does_not_start_at_a1(cli, tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    for r, row in enumerate([["Phone", "Campaign", "Name"], [9876543210, "Main", "#REF!"], [9876543211, "Main", "Ok"]]):
        for c, value in enumerate(row):
            ws.cell(row=3 + r, column=3 + c, value=value)  # from C3
    wb.save(tmp_path / "offset.xlsx")
    xls = _biff(tmp_path)  # the BIFF8 file's errors are at C3 and D4, its sheet from A1
    for p, expected in ((tmp_path / "offset.xlsx", {4: "cell E4 holds #REF!"}),
                        (xls, {3: "cell C3 holds #DIV/0!", 4: "cell D4 holds #N/A"})):
        code, rows, _ = _problem_rows(cli, p)
        assert code == 1 and sorted(rows) == sorted(expected), rows
        assert all(rows[n].startswith(text) for n, text in expected.items())


def _biff(tmp_path, biff5=False):
    sys.path.insert(0, str(FIXTURES))
    try:
        from make_biff import build
    finally:
        sys.path.remove(str(FIXTURES))
    p = tmp_path / ("old5.xls" if biff5 else "old.xls")
    p.write_bytes(build(biff5=biff5))
    return p


def test_an_ods_error_row_repeated_over_a_thousand_times_is_refused_on_every_copy(cli, tmp_path):
    def text(v, attrs=""):
        return f'<table:table-cell office:value-type="string"{attrs}><text:p>{v}</text:p></table:table-cell>'

    p = _ods(tmp_path / "rep.ods", [
        "<table:table-row>" + text("Phone") + text("Campaign") + text("Name") + "</table:table-row>",
        '<table:table-row table:number-rows-repeated="1100">' + text("9876543210") + text("Main")
        + text("#N/A", ' table:formula="of:=NA()" office:string-value=""') + "</table:table-row>"])
    code, rows, valid = _problem_rows(cli, p, "--keep-duplicates")
    assert code == 1 and valid == 0 and len(rows) >= 1  # the table lists some; the counts say all
    summary = json.loads(cli("validate", p, "--json", "--no-failures", "--keep-duplicates").stdout)
    assert summary["counts"]["invalid"] == 1100


def test_an_ods_whose_only_error_mark_straddles_a_read_boundary_is_still_seen(cli, tmp_path):
    from leadpush.workbook import _CHUNK

    def text(v, attrs=""):
        return f'<table:table-cell office:value-type="string"{attrs}><text:p>{v}</text:p></table:table-cell>'

    head = "<table:table-row>" + text("Phone") + text("Campaign") + text("Name") + "</table:table-row>"
    error = text("#N/A", ' table:formula="of:=NA()" calcext:value-type="error"')  # its one mark

    def build(pad: int) -> Path:
        filler = "<table:table-row>" + text("9876543211") + text("Main") + text("x" * pad) + "</table:table-row>"
        row = "<table:table-row>" + text("9876543210") + text("Main") + error + "</table:table-row>"
        return _ods(tmp_path / "straddle.ods", [head, filler, row], calcext=True)

    with zipfile.ZipFile(build(0)) as z:
        at = z.read("content.xml").find(b'value-type="error"')
    p = build(_CHUNK - 8 - at)  # the mark now starts 8 bytes before the first read ends
    with zipfile.ZipFile(p) as z:
        content = z.read("content.xml")
    mark = content.find(b'value-type="error"')
    assert mark < _CHUNK < mark + len(b'value-type="error"') and b'string-value=""' not in content
    code, rows, _ = _problem_rows(cli, p)
    assert code == 1 and rows[3].startswith("cell C3 holds #N/A")


def test_no_library_warning_reaches_the_user(tmp_path):
    # A stylesheet without named styles (as some exporters write it) made openpyxl print a
    # UserWarning with its site-packages path.
    src = workbook(tmp_path, [["Phone", "Campaign"], [9876543210, "camp_a"]])
    bare = (b'<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><fonts count="1">'
            b'<font/></fonts><fills count="1"><fill/></fills><borders count="1"><border/></borders>'
            b'<cellXfs count="1"><xf numFmtId="0"/></cellXfs></styleSheet>')
    p = rezip(src, tmp_path / "plain.xlsx", lambda n, b: bare if n == "xl/styles.xml" else b)
    r = subprocess.run([sys.executable, "-W", "always", "-m", "leadpush", "validate", str(p), "--no-failures"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "site-packages" not in r.stderr and "Warning" not in r.stderr


def test_a_web_page_named_xls_says_what_it_is(tmp_path):
    p = tmp_path / "report.xls"
    p.write_text("<html><table><tr><td>Phone</td></tr></table></html>")
    with pytest.raises(InputError, match=r"report\.xls: this is a web page .* save it as \.xlsx or CSV"):
        open_lead_file(p)


def _damaged(tmp_path, changes):
    data = bytearray((FIXTURES / "leads.xls").read_bytes())
    for at, byte in changes:
        data[at] = byte
    p = tmp_path / "damaged.xls"
    p.write_bytes(bytes(data))
    return subprocess.run([sys.executable, "-m", "leadpush", "validate", str(p), "--no-failures"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "RUST_BACKTRACE": "1"})


def test_a_damaged_workbook_that_makes_calamine_panic_is_one_line(tmp_path):
    # Five bytes changed (found by fuzzing): calamine panics; its message and backtrace stay hidden.
    r = _damaged(tmp_path, [(4333, 100), (1469, 147), (1632, 103), (1842, 178), (6181, 226)])
    assert r.returncode == 2, r.stderr
    assert "damaged.xls: not a readable .xls workbook" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "panicked" not in r.stderr and ".cargo" not in r.stderr


def test_a_damaged_workbook_that_makes_calamine_abort_is_one_line_and_exit_2(tmp_path):
    # One byte changed: calamine asks for 275 GB and aborts the process it runs in (a calamine bug;
    # nothing in Python can catch it). leadpush tries an .xls in a forked child first.
    r = _damaged(tmp_path, [(3718, 205)])
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (f"Error: {tmp_path / 'damaged.xls'}: not a readable .xls workbook (the workbook "
                                f"reader stopped on a damaged file: memory allocation of 275146342480 bytes "
                                f"failed); open it in a spreadsheet and save it again, or save it as CSV")


def test_an_xls_is_read_without_the_probe_when_no_process_can_be_forked(cli, monkeypatch):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    r = cli("validate", FIXTURES / "leads.xls", "--no-failures", "--json")
    assert r.exit_code == 0, r.output  # an ordinary fault: not "a bug in leadpush" (exit 70)
    assert json.loads(r.stdout)["counts"]["valid"] == 6


def test_an_upload_of_a_workbook_that_makes_calamine_abort_sends_nothing(tmp_path):
    data = bytearray((FIXTURES / "leads.xls").read_bytes())
    data[3718] = 205
    p = tmp_path / "damaged.xls"
    p.write_bytes(bytes(data))
    with Sandbox(CONFIG, rate_limit=0) as sb:
        env = {**os.environ, "LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "demo",
               "LEADPUSH_API_KEY": "demo-key-7f3a9c", "LEADPUSH_CACHE_DIR": str(tmp_path / "cache"),
               "LEADPUSH_DATA_DIR": str(tmp_path / "data")}
        r = subprocess.run([sys.executable, "-m", "leadpush", "upload", str(p), "--campaign", "camp_a"],
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 2 and "not a readable .xls workbook" in r.stderr, r.stderr
        assert sb.state.leads_view()["accounts"]["demo"]["campaigns"]["camp_a"]["leads"] == []


# ---------------------------------------------------------------------------- workbooks that lie

def _sheet_xml(src: Path, dst: Path, edit) -> Path:
    return rezip(src, dst, lambda n, b: edit(b) if n == "xl/worksheets/sheet1.xml" else b)


def test_a_stray_cell_at_xfd1048576_is_refused_in_one_line_at_once(tmp_path):
    src = workbook(tmp_path, [["Phone"], [9876543210]])
    wb = openpyxl.load_workbook(src)
    wb.active["XFD1048576"] = "x"
    wb.save(src)
    assert src.stat().st_size < 10_000
    start = time.perf_counter()
    with pytest.raises(InputError) as e:
        open_lead_file(src)
    assert time.perf_counter() - start < 2
    message = str(e.value)
    assert "A1:XFD1048576" in message and "XFD1048576 a stray value" in message and "CSV" in message
    assert "\n" not in message


def test_an_xlsb_with_a_stray_cell_far_away_is_refused_too(tmp_path):
    _make_xlsb(tmp_path / "far.xlsb", far=(1048575, 16383))
    _make_xlsb(tmp_path / "near.xlsb", far=(99, 30))  # a real, if odd, value: read
    # In a child process: were the check missing, calamine would abort the process allocating.
    r = subprocess.run([sys.executable, "-m", "leadpush", "validate", str(tmp_path / "far.xlsb"), "--no-failures"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "A1:XFD1048576" in r.stderr and "XFD1048576 a stray value" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(InputError, match=r"column 5: a value outside the header's columns \('x'\)"):
        rows_of(tmp_path / "near.xlsb")


def test_an_ods_whose_repeats_reach_far_away_is_refused_before_calamine_expands_them(tmp_path):
    # 90,000 empty rows 1,000 wide, then one value: a 16 KB file that calamine alone expanded into
    # a 90-million-cell grid (35 s and 5.7 GB measured), refused here at once.
    far = (b'<table:table-row table:number-rows-repeated="90000"><table:table-cell table:number-columns-repeated='
           b'"1000"/></table:table-row><table:table-row><table:table-cell table:number-columns-repeated="999"/>'
           b'<table:table-cell office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row>')

    def edit(name, data):
        if name != "content.xml":
            return data
        at = data.index(b'table:name="Leads"')
        for _ in range(7):  # after the header and the six leads
            at = data.index(b"</table:table-row>", at) + len(b"</table:table-row>")
        return data[:at] + far + data[at:]

    p = rezip(FIXTURES / "leads.ods", tmp_path / "far.ods", edit)
    assert p.stat().st_size < 20_000
    r = subprocess.run([sys.executable, "-m", "leadpush", "validate", str(p), "--no-failures"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "sheet 'Leads'" in r.stderr and "A1:ALL90008" in r.stderr and "is ALL90008 a stray value" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_an_xls_whose_sheets_together_are_too_big_is_refused_before_calamine_opens_it():
    # 7.5 KB: three sheets with a note at A1 and a value at IV65536. calamine builds every sheet
    # of an .xls as it opens the file: 50 million cells, 1.6 GB measured; refused here at once.
    p = FIXTURES / "far_sheets.xls"
    assert p.stat().st_size < 10_000
    r = subprocess.run([sys.executable, "-m", "leadpush", "validate", str(p), "--no-failures"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "50,331,6" in r.stderr and "is IV65536 on sheet 'Stray 1' a stray value" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_row_number_beyond_any_sheet_is_refused(tmp_path):
    src = workbook(tmp_path, [["Phone"], [9876543210]])
    p = _sheet_xml(src, tmp_path / "far.xlsx",
                   lambda b: b.replace(b"</sheetData>", b'<row r="99999999"><c r="B99999999" t="n"><v>1</v></c>'
                                                        b"</row></sheetData>"))
    with pytest.raises(InputError, match=r"A1:Z99999999 .* is B99999999 a stray value"):
        open_lead_file(p)


def test_a_big_dimension_tag_over_few_cells_reads_at_once(tmp_path):
    src = workbook(tmp_path, [["Phone", "Name"], [9876543210, "Asha"]])
    p = _sheet_xml(src, tmp_path / "dim.xlsx",
                   lambda b: re.sub(rb'<dimension ref="A1:B2" ?/>', b'<dimension ref="A1:XFD1048576"/>', b))
    assert b"A1:XFD1048576" in zipfile.ZipFile(p).read("xl/worksheets/sheet1.xml")
    start = time.perf_counter()
    _, rows = rows_of(p)
    assert rows == [(2, {"Phone": "9876543210", "Name": "Asha"})]
    assert time.perf_counter() - start < 2


def test_styled_empty_cells_far_away_cost_nothing(tmp_path):
    # Formatting a whole row writes empty cells to the last column: no values, no grid.
    src = workbook(tmp_path, [["Phone", "Name"], [9876543210, "Asha"]])
    p = _sheet_xml(src, tmp_path / "styled.xlsx",
                   lambda b: b.replace(b"</sheetData>", b'<row r="1048576"><c r="XFD1048576" s="0"/></row>'
                                                        b"</sheetData>"))
    _, rows = rows_of(p)
    assert rows == [(2, {"Phone": "9876543210", "Name": "Asha"})]


# ---------------------------------------------------------------------------- one parse per run

def test_upload_parses_the_workbook_once(cli, tmp_path, monkeypatch):
    import python_calamine

    calls = []
    real = python_calamine.CalamineWorkbook.from_filelike

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(python_calamine.CalamineWorkbook, "from_filelike", counting)
    with Sandbox(CONFIG, rate_limit=0) as sb:
        env = {"LEADPUSH_BASE_URL": sb.base_url, "LEADPUSH_USERNAME": "demo",
               "LEADPUSH_API_KEY": "demo-key-7f3a9c", "LEADPUSH_CACHE_DIR": str(tmp_path / "cache")}
        shutil.copy(FIXTURES / "leads.xls", tmp_path)  # the journal is written beside the input
        r = cli("upload", tmp_path / "leads.xls", "--rate", "6000/min", "--json", "--no-failures", env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"]["added"] == 6
    assert len(calls) == 1  # header, check pass and send pass all read the one parsed sheet
