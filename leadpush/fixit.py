"""The fix-it workbook: failed rows as an .xlsx that Excel cannot damage, bad cells marked with the reason."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape as xml_escape

from .causes import UNKNOWN_CAUSES, causes_of, describe
from .files import let_go, temporary_beside
from .mapping import IGNORED_PREFIX, build_column_map
from .outcomes import STATUS_ORDER, ConfigError, InputError, OutputError, RowOutcome, Status, counted
from .records import cell_text
from .workbook import CellProblem, ErrorCell, InexactNumber

UNKNOWN_NOTE = ("Outcome unknown: CloudAgent may already hold this lead. Check the campaign in CloudAgent before "
                "sending this row again (delete the row if the number is there); fed back as it is, leadpush "
                "skips it unless you clear leadpush_status or pass --resend-unknown.")
FIXIT_COLUMNS = ("leadpush_row", "leadpush_status", "leadpush_error", "leadpush_cause")
SUMMARY_TITLE = "Summary"
COMMENT_AUTHOR = "leadpush"
TEXT_FORMAT = "@"
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
TIME_FORMAT = "hh:mm:ss"
# Excel's own "Bad" and "Neutral" cell styles: red for data to fix, amber for rows only to run again.
BAD_FILL, BAD_FONT = "FFC7CE", "9C0006"
AGAIN_FILL, AGAIN_FONT = "FFEB9C", "9C5700"
HEADER_FILL = "D9D9D9"
_FIELD_WIDTHS = {"phoneNumber": 18, "Name": 22, "campaignName": 20, "priority": 9, "expiryDate": 12,
                 "action": 9, "checkDuplicate": 15, "agentId": 12, "skill": 14}
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Characters an .xlsx cannot hold (XML 1.0 forbids them); a cell is limited to 32,767 characters.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_CELL_MAX = 32767
# The error values an .xlsx cell can hold (openpyxl writes no others); any other error read (an
# ODS "Err:502", a "#GETTING_DATA") is written as #VALUE!, its comment naming what it was.
XLSX_ERRORS = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A")
# In place of a formula saved without its result: a formula without a result again (so it is refused
# again, cell.no_value), one that Excel or LibreOffice calculates to an error (so it is refused
# then too). Never the input's own formula: calculated here, its references would read this
# sheet's rows, another lead's cells, and a wrong value would go out once the workbook was saved.
NO_VALUE_FORMULA = "=NA()"
NO_VALUE_NOTE = ("This workbook holds =NA() in its place, not that formula (calculated here, it would read "
                 "this sheet's rows, not the input's): type the cell's value here.")


class Unstorable(ValueError):
    """A text that a workbook cell cannot hold exactly."""


def storable(value: Any) -> tuple[Any, str]:
    """(what a cell can hold, '' or why that is not exactly `value`): XML-illegal characters become
    U+FFFD, a text past 32,767 characters is cut there; never silently (the reason says so)."""
    if not isinstance(value, str):
        return value, ""
    why = []
    bad = _ILLEGAL.findall(value)
    if bad:
        value = _ILLEGAL.sub("\ufffd", value)
        shown = ", ".join(sorted({f"U+{ord(c):04X}" for c in bad}))
        why.append(f"this cell held {len(bad)} character{'' if len(bad) == 1 else 's'} a workbook cannot store "
                   f"({shown}), each shown here as \ufffd")
    if len(value) > _CELL_MAX:
        why.append(f"this cell held {len(value):,} characters, more than the {_CELL_MAX:,} a workbook cell can "
                   f"hold: only the first {_CELL_MAX:,} are here")
        value = value[:_CELL_MAX]
    if why:
        return value, "; ".join(why) + " (the input file has the original; fed back as it is, this row would " \
                                       "not be the row you gave)"
    return value, ""


def openpyxl_module() -> Any:
    try:
        import openpyxl  # noqa: PLC0415 — optional extra
    except ImportError:
        raise ConfigError("an .xlsx failures file needs the xlsx extra: pip install 'leadpush[xlsx]'; "
                          "or choose --failures-format csv") from None
    return openpyxl


class CellStyles:
    """The few cell styles of the workbook, made once (each cell then shares one)."""

    def __init__(self, ws: Any) -> None:
        from openpyxl.cell import WriteOnlyCell  # noqa: PLC0415
        from openpyxl.styles import Alignment, Font, PatternFill  # noqa: PLC0415

        self._cell = WriteOnlyCell
        self.ws = ws
        fills = {"plain": None, "bad": (BAD_FILL, BAD_FONT), "again": (AGAIN_FILL, AGAIN_FONT),
                 "header": (HEADER_FILL, None)}
        self.styles: dict[tuple[str, str], Any] = {}
        for mark, colours in fills.items():
            for fmt in (TEXT_FORMAT, DATE_FORMAT, DATETIME_FORMAT, TIME_FORMAT, "General"):
                cell = WriteOnlyCell(ws)
                cell.number_format = fmt
                if colours:
                    fill, font = colours
                    cell.fill = PatternFill("solid", start_color=fill, end_color=fill)
                    cell.font = Font(name="Calibri", size=11, bold=mark == "header", color=font)
                if mark == "header":
                    cell.alignment = Alignment(vertical="center")
                self.styles[mark, fmt] = cell._style

    def cell(self, value: Any, fmt: str, mark: str = "plain", *, exact: bool = False, data_type: str = "") -> Any:
        """A cell holding `value`; one it cannot hold exactly is made storable (see `storable`), or
        with `exact` refused (Unstorable). A text is always a text cell, unless `data_type` says it
        is an error value ("e": one of XLSX_ERRORS) or a formula ("f": leadpush's own, never a
        value read)."""
        c = self._cell(self.ws)
        c._style = self.styles[mark, fmt]
        if data_type:
            assert (data_type, value) in (("f", NO_VALUE_FORMULA), *(("e", e) for e in XLSX_ERRORS)), value
            c.value = value
            c.data_type = data_type
        elif isinstance(value, str):
            value, why = storable(value)
            if why and exact:
                raise Unstorable(why)
            c.value = value
            c.data_type = "s"  # text starting with '=' stays text, never a formula
        else:
            c.value = value
        return c


class StreamedComments:
    """Cell comments written to disk as they come, and put into the saved workbook at the end.

    openpyxl keeps every comment of a sheet in memory until it saves, and then builds the whole
    comments part and its VML drawing as two trees: about 6 KB per comment, so a 200,000-row
    failures file took over a gigabyte. The parts written here are the ones openpyxl writes (same
    XML, same relationship ids), one comment at a time.
    """

    RELS_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    COMMENTS_PART = "xl/comments/comment1.xml"
    VML_PART = "xl/drawings/commentsDrawing1.vml"

    def __init__(self) -> None:
        self.count = 0
        self._comments = tempfile.TemporaryFile("w+", encoding="utf-8", prefix="leadpush-comments-")
        self._shapes = tempfile.TemporaryFile("w+", encoding="utf-8", prefix="leadpush-shapes-")

    def add(self, row: int, col: int, text: str) -> None:
        """A comment on the cell at 0-based (row, col)."""
        from openpyxl.utils import get_column_letter  # noqa: PLC0415

        text = storable(text)[0]
        height = min(400, 15 * max(2, len(text) // 48 + 2))
        self._comments.write(f'<comment ref="{get_column_letter(col + 1)}{row + 1}" authorId="0" shapeId="0">'
                             f'<text><t xml:space="preserve">{xml_escape(text)}</t></text></comment>')
        self._shapes.write(
            f'<ns1:shape type="#_x0000_t202" style="position:absolute; margin-left:59.25pt;margin-top:1.5pt;'
            f'width:340px;height:{height}px;z-index:1;visibility:hidden" fillcolor="#ffffe1" ns0:insetmode="auto" '
            f'id="_x0000_s{1026 + self.count:04d}"><ns1:fill color2="#ffffe1" /><ns1:shadow color="black" '
            f'obscured="t" /><ns1:path ns0:connecttype="none" /><ns1:textbox style="mso-direction-alt:auto">'
            f'<div style="text-align:left" /></ns1:textbox><ns2:ClientData ObjectType="Note"><ns2:MoveWithCells />'
            f'<ns2:SizeWithCells /><ns2:AutoFill>False</ns2:AutoFill><ns2:Row>{row}</ns2:Row>'
            f'<ns2:Column>{col}</ns2:Column></ns2:ClientData></ns1:shape>')
        self.count += 1

    def put_into(self, saved: Path, out: Path, sheet_part: str) -> None:
        """Copy the workbook `saved` to `out` with the comments on the sheet `sheet_part`."""
        folder, name = sheet_part.rsplit("/", 1)
        rels_part = f"{folder}/_rels/{name}.rels"
        with zipfile.ZipFile(saved) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
            assert rels_part not in src.namelist(), "the sheet has relationships of its own"
            for item in src.infolist():
                if item.filename == sheet_part:
                    self._copy_sheet(src, dst, item)
                elif item.filename == "[Content_Types].xml":
                    types = src.read(item).decode()
                    types = types.replace("</Types>", (
                        '<Default Extension="vml" ContentType="application/vnd.openxmlformats-officedocument.'
                        'vmlDrawing" /><Override PartName="/' + self.COMMENTS_PART + '" ContentType="application/'
                        'vnd.openxmlformats-officedocument.spreadsheetml.comments+xml" /></Types>'))
                    dst.writestr(item, types)
                else:
                    with src.open(item) as f, dst.open(item.filename, "w", force_zip64=True) as g:
                        shutil.copyfileobj(f, g)
            dst.writestr(rels_part, (
                '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                '<Relationship Type="' + self.RELS_NS + '/comments" Target="/' + self.COMMENTS_PART + '" '
                'Id="comments" /><Relationship Type="' + self.RELS_NS + '/vmlDrawing" Target="/' + self.VML_PART
                + '" Id="anysvml" /></Relationships>'))
            self._part(dst, self.COMMENTS_PART, self._comments, (
                '<comments xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><authors><author>'
                + COMMENT_AUTHOR + '</author></authors><commentList>'), "</commentList></comments>")
            self._part(dst, self.VML_PART, self._shapes, (
                '<xml xmlns:ns0="urn:schemas-microsoft-com:office:office" xmlns:ns1="urn:schemas-microsoft-com:vml" '
                'xmlns:ns2="urn:schemas-microsoft-com:office:excel"><ns0:shapelayout ns1:ext="edit"><ns0:idmap '
                'ns1:ext="edit" data="1" /></ns0:shapelayout><ns1:shapetype id="_x0000_t202" coordsize="21600,21600" '
                'ns0:spt="202" path="m,l,21600r21600,l21600,xe"><ns1:stroke joinstyle="miter" /><ns1:path '
                'gradientshapeok="t" ns0:connecttype="rect" /></ns1:shapetype>'), "</xml>")

    def _copy_sheet(self, src: zipfile.ZipFile, dst: zipfile.ZipFile, item: zipfile.ZipInfo) -> None:
        """The sheet as saved, with the drawing that holds its comments named at its end."""
        tail = b""
        with src.open(item) as f, dst.open(item.filename, "w", force_zip64=True) as g:
            while chunk := f.read(1 << 20):
                tail += chunk
                if len(tail) > 1 << 16:
                    g.write(tail[:-(1 << 16)])
                    tail = tail[-(1 << 16):]
            end = tail.rindex(b"</worksheet>")
            g.write(tail[:end] + f'<legacyDrawing xmlns:r="{self.RELS_NS}" r:id="anysvml" />'.encode() + tail[end:])

    @staticmethod
    def _part(dst: zipfile.ZipFile, name: str, spool: IO[str], head: str, foot: str) -> None:
        spool.seek(0)
        with dst.open(name, "w", force_zip64=True) as g:
            g.write(head.encode())
            while chunk := spool.read(1 << 20):
                g.write(chunk.encode())
            g.write(foot.encode())

    def close(self) -> None:
        self._comments.close()
        self._shapes.close()


def unknown_outcome(status: Status | str, cause: str) -> bool:
    """A row that failed in a way that may have stored its lead: not one to simply run again."""
    return Status(status) is Status.FAILED and any(c in UNKNOWN_CAUSES for c in causes_of(cause))


def _problems(o: RowOutcome) -> list[tuple[str, str]]:
    """(cause, message) of each of an invalid row's problems."""
    return [(p.cause, str(p)) for p in o.problems]


def _unsendable(value: Any) -> tuple[Any, str, str] | None:
    """A cell read as one leadpush cannot send as written → (what the fix-it cell holds, its data
    type, what its comment adds), written so that reading the workbook back refuses it again with
    the same cause until it is fixed; None for any other value."""
    if isinstance(value, ErrorCell):  # cell.spreadsheet_error (phone.spreadsheet_error in the phone column)
        if value in XLSX_ERRORS:
            return str(value), "e", ""
        return "#VALUE!", "e", (f"The input's cell held {str(value)!r}, an error value an .xlsx cell cannot "
                                f"hold: #VALUE! here.")
    if isinstance(value, InexactNumber):  # cell.inexact_number (phone.scientific): the same number again
        return value.number, "n", ""
    if isinstance(value, CellProblem):  # cell.no_value
        return NO_VALUE_FORMULA, "f", NO_VALUE_NOTE
    return None


def _as_cell(value: Any, is_date_column: bool) -> tuple[Any, str]:
    """A value as read → (what the cell holds, its number format): text stays text, digit for digit."""
    if value is None or value == "":
        return None, DATE_FORMAT if is_date_column else TEXT_FORMAT
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.isoformat(), TEXT_FORMAT
        return (value, DATETIME_FORMAT) if value.time() != dt.time(0) else (value, DATE_FORMAT)
    if isinstance(value, dt.date):
        return value, DATE_FORMAT
    if isinstance(value, dt.time):
        return (value, TIME_FORMAT) if value.tzinfo is None else (value.isoformat(), TEXT_FORMAT)
    if isinstance(value, str):
        if is_date_column and _ISO_DAY.match(value.strip()):
            try:
                return dt.date.fromisoformat(value.strip()), DATE_FORMAT
            except ValueError:
                pass
        if "\r" in value:
            # XML turns a CR into a line feed on reading; say so here rather than leave it to the parser.
            value = value.replace("\r\n", "\n").replace("\r", "\n")
        return value, TEXT_FORMAT
    return cell_text(value), TEXT_FORMAT  # booleans TRUE/FALSE, a JSON number's exact literal


class FixitWriter:
    """The failures file as a workbook: the leads sheet (first, active) and a Summary sheet.

    Streams with openpyxl's write-only mode: each row goes to disk as it comes. Rows read as
    lists (CSV, XLSX) are written at once; JSON objects may each bring new keys, so they wait in a
    temporary file until the columns are known.
    """

    def __init__(self, path: Path, *, columns: list[str] | None, keys: list[str] | None,
                 user_map: dict[str, str | None] | None = None, sheet: str | None = None,
                 source_name: str = "") -> None:
        openpyxl_module()
        self.path = path
        self.count = 0
        self.user_map = user_map or {}
        self.sheet_title = (sheet or "Leads")[:31]
        self.source_name = source_name
        self.causes: Counter[str] = Counter()
        self.columns_marked: Counter[str] = Counter()
        self.unknown = 0  # rows whose lead CloudAgent may already hold
        self.again = 0  # amber rows: not sent, or certainly not acted on
        self.cells_altered = 0  # cells a workbook could not hold exactly (each says so in its comment)
        self._columns = columns
        self._keys = keys
        self._wb: Any = None
        self._ws: Any = None
        self._spool: IO[bytes] | None = None
        self._json_keys: dict[str, None] = {}
        self.keep_existing = False  # set for a failures workbook fed back in: never removed
        self._tmp = temporary_beside(path)
        try:  # fail now, before any row is read, if the place cannot be written
            self._tmp.touch()
        except OSError as e:
            raise ConfigError(f"{path}: cannot be written ({e.strerror})") from None

    # ------------------------------------------------------------------ rows

    def write(self, o: RowOutcome) -> None:
        self.count += 1
        try:
            self._write(o)
        except OSError as e:  # a full disk in the temporary folder the parts are built in
            raise self._failed(e, building=True) from None

    def _write(self, o: RowOutcome) -> None:
        source = o.source
        if isinstance(source, dict):
            if self._spool is None:
                self._spool = tempfile.TemporaryFile(prefix="leadpush-fixit-")
            for k in source:
                if not str(k).lower().startswith(IGNORED_PREFIX):
                    self._json_keys.setdefault(str(k))
            pickle.dump((o.row, o.status.value, str(o.message), o.cause, _problems(o), source), self._spool)
            return
        if self._wb is None:
            self._start(list(self._columns or []), list(self._keys or self._columns or []))
        self._row(o.row, o.status, str(o.message), o.cause, _problems(o), list(source or []))

    def _failed(self, e: OSError, *, building: bool) -> OutputError:
        """The one-line error for a workbook that cannot be written; everything begun is dropped.
        `building`: while its parts were being built in the temporary folder, not saved beside the path."""
        where = f"; its parts are built in {tempfile.gettempdir()} first" if building else ""
        error = OutputError(f"{self.path}: the failures file cannot be written ({e.strerror or e}{where})")
        self.discard(e)
        return error

    def discard(self, error: BaseException | None = None) -> None:
        """Drop the workbook begun: its temporaries go, whatever was at the path stays."""
        begun = (self._ws, self._spool, getattr(self, "_notes", None))
        self._wb = self._ws = self._spool = None
        let_go(error, *begun)
        self._tmp.unlink(missing_ok=True)
        self._tmp.with_name(self._tmp.name + ".plain").unlink(missing_ok=True)

    def _start(self, columns: list[str], keys: list[str]) -> None:
        from openpyxl.utils import get_column_letter  # noqa: PLC0415

        openpyxl = openpyxl_module()
        self._wb = openpyxl.Workbook(write_only=True)
        ws = self._ws = self._wb.create_sheet(self.sheet_title)
        self._st = CellStyles(ws)
        # An earlier run's leadpush_* columns are replaced, not repeated.
        self._keep = [i for i, c in enumerate(columns) if not c.strip().lower().startswith(IGNORED_PREFIX)]
        try:
            cmap = build_column_map([keys[i] for i in self._keep], self.user_map)
        except InputError:
            cmap = None  # two columns for one field: nothing is marked by field then, the row still is
        position = {keys[i]: n for n, i in enumerate(self._keep)}
        self._field_col = {f: position[k] for f, k in cmap.fields.items()} if cmap else {}
        self._date_col = self._field_col.get("expiryDate", -1)
        self._labels = [columns[i] for i in self._keep]
        self._width = len(self._labels) + len(FIXIT_COLUMNS)
        self._error_col = len(self._labels) + 2
        by_field = {col: _FIELD_WIDTHS.get(f, 0) for f, col in self._field_col.items()}
        widths = [max(by_field.get(n, 16), min(40, len(label.strip()) + 4)) for n, label in enumerate(self._labels)]
        widths += [13, 15, 90, 28]
        for n, width in enumerate(widths, start=1):
            dim = ws.column_dimensions[get_column_letter(n)]
            dim.width = width
            # New cells typed into the sheet take the column's format: text stays text.
            dim.number_format = DATE_FORMAT if n - 1 == self._date_col else TEXT_FORMAT
        ws.freeze_panes = "A2"
        # Printed (or saved as PDF), the sheet is as wide as the page, its header on every page.
        ws.page_setup.orientation = "landscape"
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
        ws.print_title_rows = "1:1"
        header = [self._st.cell(label, TEXT_FORMAT, "header") for label in self._labels + list(FIXIT_COLUMNS)]
        ws.append(header)
        self._rows_written = 1
        self._notes = StreamedComments()

    def _row(self, row: int, status: Status | str, message: str, cause: str,
             problems: list[tuple[str, str]], values: list[Any]) -> None:
        status = Status(status)
        st = self._st
        unknown = unknown_outcome(status, cause)
        whole = None if status is Status.INVALID else ("bad" if status is Status.REJECTED or unknown else "again")
        notes: dict[int, list[str]] = {}
        # The cells read as ones leadpush cannot send as written, by their problem's message.
        special = {n: s for n, i in enumerate(self._keep) if i < len(values)
                   and (s := _unsendable(values[i])) is not None}
        at_cell = {str(values[self._keep[n]].message): n for n in special}
        if whole is None:
            for code, text in problems or [(c, message) for c in causes_of(cause)]:
                col = self._field_col.get(describe(code).field or "", at_cell.get(text, self._error_col))
                notes.setdefault(col, []).append(text)
            if not notes:
                notes[self._error_col] = [message]
        else:
            notes[0] = [f"CloudAgent: {message}" if status is Status.REJECTED else message or status.value]
            if unknown:
                self.unknown += 1
                notes[0].insert(0, UNKNOWN_NOTE)
            elif whole == "again":
                self.again += 1
        cells = []
        for n, i in enumerate(self._keep):
            if n in special:
                value, data_type, said = special[n]
                if said and n in notes:
                    notes[n].append(said)
                mark = whole or ("bad" if n in notes else "plain")
                cells.append(st.cell(value, "General", mark, data_type=data_type if data_type != "n" else ""))
                continue
            value, fmt = _as_cell(values[i] if i < len(values) else None, n == self._date_col)
            _, altered = storable(value)
            if altered:
                self.cells_altered += 1
                notes.setdefault(n, []).append(altered)
            mark = whole or ("bad" if n in notes else "plain")
            cells.append(st.cell(value, fmt, mark))
        for n, value in enumerate((row, status.value, message, cause), start=len(self._keep)):
            mark = whole or ("bad" if n in notes else "plain")
            cells.append(st.cell(value, "General" if n == len(self._keep) else TEXT_FORMAT, mark))
        for col, texts in notes.items():
            self._notes.add(self._rows_written, col, "\n".join(texts))
            if col < len(self._keep) and whole is None:  # a whole-row mark is no column's
                self.columns_marked[self._labels[col].strip()] += 1
        self.causes.update(causes_of(cause))
        self._ws.append(cells)
        self._rows_written += 1

    # ------------------------------------------------------------------ closing

    def close(self, run_counts: Counter[Status] | None = None) -> None:
        try:
            if self._spool is not None:
                try:
                    self._write_spooled()
                except OSError as e:
                    raise self._failed(e, building=True) from None
            if self.count == 0 or self._wb is None:
                self._tmp.unlink(missing_ok=True)
                if not self.keep_existing:  # a failures workbook fed back in stays as it is
                    self.path.unlink(missing_ok=True)  # none left over from an earlier run either
                return
            from openpyxl.utils import get_column_letter  # noqa: PLC0415
            from openpyxl.worksheet.filters import AutoFilter  # noqa: PLC0415

            self._ws.auto_filter = AutoFilter(ref=f"A1:{get_column_letter(self._width)}{self.count + 1}")
            self._summary(run_counts or Counter())
            self._wb.active = 0
            saved = self._tmp.with_name(self._tmp.name + ".plain")
            self._wb.save(saved)
            self._notes.put_into(saved, self._tmp, self._ws.path[1:])
            saved.unlink()
            os.replace(self._tmp, self.path)
        except OSError as e:  # the file at the path, if any, stays as it was
            raise self._failed(e, building=False) from None
        finally:
            self._tmp.unlink(missing_ok=True)
            if self._spool is not None:
                self._spool.close()
            if self._wb is not None:
                self._notes.close()

    def _write_spooled(self) -> None:
        assert self._spool is not None
        keys = list(self._json_keys)
        self._start(keys, keys)
        self._spool.seek(0)
        while True:
            try:
                row, status, message, cause, problems, source = pickle.load(self._spool)
            except EOFError:
                break
            self._row(row, status, message, cause, list(problems), [source.get(k) for k in keys])

    def _summary(self, run_counts: Counter[Status]) -> None:
        ws = self._wb.create_sheet(SUMMARY_TITLE if self.sheet_title != SUMMARY_TITLE else "leadpush summary")
        st = CellStyles(ws)
        for letter, width in zip("ABCDE", (30, 8, 18, 50, 55), strict=False):
            ws.column_dimensions[letter].width = width
        ws.page_setup.orientation = "landscape"
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0

        def line(*values: Any, header: bool = False) -> None:
            ws.append([st.cell(v, "General" if isinstance(v, int) else TEXT_FORMAT,
                               "header" if header else "plain") for v in values])

        line("leadpush fix-it workbook", header=True)
        line(f"Input: {self.source_name}" if self.source_name else "Input: (not named)")
        line(f"Fix the red cells on the sheet '{self.sheet_title}': point at a cell for the reason.")
        if self.again:
            line(f"{counted(self.again, 'amber row')} {'was' if self.again == 1 else 'were'} not sent, or CloudAgent "
                 f"certainly did nothing with {'it' if self.again == 1 else 'them'}: "
                 f"{'it only needs' if self.again == 1 else 'they only need'} running again.")
        if self.unknown:
            line(f"{self.unknown} red row{'s' if self.unknown != 1 else ''} say 'outcome unknown': CloudAgent may "
                 f"already hold {'them' if self.unknown != 1 else 'it'}. Check the campaign in CloudAgent first and "
                 f"delete the rows it holds; leadpush skips such rows unless you clear their leadpush_status or "
                 f"pass --resend-unknown.")
        if self.cells_altered:
            line(f"{self.cells_altered} cell{'s' if self.cells_altered != 1 else ''} could not be written exactly "
                 f"as read (characters a workbook cannot store, or over 32,767 characters): each says so in its "
                 f"comment; take those rows from the input file instead.")
        line("Then save, and run leadpush on this workbook (the leadpush_* columns are not sent, and this sheet "
             "is not read).")
        line()
        line("Status (the whole run)", "Rows", header=True)
        for status in STATUS_ORDER:
            if run_counts.get(status):
                line(status.value, run_counts[status])
        line("total", sum(run_counts.values()))
        line()
        line("Cause (rows on this workbook)", "Rows", "Column", "What happened", "What to do", header=True)
        for code, n in sorted(self.causes.items(), key=lambda item: (-item[1], item[0])):
            cause = describe(code)
            column = self._column_label(cause.field)
            line(code, n, column, cause.label, cause.hint)
        line()
        line("Column (cells marked)", "Rows", header=True)
        for label, n in sorted(self.columns_marked.items(), key=lambda item: (-item[1], item[0])):
            line(label, n)

    def _column_label(self, field: str | None) -> str:
        if field is None:
            return "(whole row)"
        col = self._field_col.get(field)
        return self._labels[col].strip() if col is not None else f"{field} (no column)"

