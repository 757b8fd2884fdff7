"""Read a workbook sheet (XLSX, XLSM, XLSB, XLS, ODS) with calamine, once per run, as lead rows."""

from __future__ import annotations

import datetime as dt
import html
import io
import os
import re
import signal
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from itertools import islice
from typing import IO, Any
from xml.etree import ElementTree

from .causes import Problem
from .outcomes import InputError
from .readers import (
    ABOVE_HEADER,
    LeadFile,
    SourceRow,
    _column_keys,
    above_header_row,
    find_header,
    title_note,
    title_rows,
    without_footers,
)

_CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the container of .xls (and of password-protected .xlsx)

# The most cells (rows x columns, counted from A1) a sheet's values may span. calamine builds a
# sheet as one dense grid of about 32 bytes a cell, so this bounds a sheet at about 1 GB; a real
# sheet of 1,048,576 rows x 26 columns (27 M) fits. Beyond it is almost always a stray value far
# away (a workbook saying it ends at XFD1048576): refused in one line, before calamine allocates.
MAX_CELLS = 32_000_000
_CHUNK = 1 << 20
# What a damaged archive or stream raises while leadpush looks into it: the look is skipped and
# calamine, which reads it next, says what is wrong.
_BROKEN = (KeyError, IndexError, ValueError, EOFError, OSError, NotImplementedError, struct.error, zlib.error,
           zipfile.BadZipFile, ElementTree.ParseError)
_EXACT_ROWS_ABOVE = MAX_CELLS // 999_999  # with wider sheets, rows are counted cell by cell

# Cell references that make a sheet wide (column AA and beyond) or tall (row 1,000,000 and
# beyond), and tall row tags; other cells lie within A1:Z999999, inside MAX_CELLS by construction.
# One pattern with a literal start ('r="'), so the scan runs at the regex engine's best speed.
_SUSPECT = re.compile(rb'r="(?:[A-Z](?:[A-Z]|[0-9]{7})|[0-9]{7})')
_FAR = re.compile(rb'r="(?:([A-Z]{2,3})([0-9]+)|([A-Z])([0-9]{7,})|([0-9]{7,}))"')
_ANY_ROW = re.compile(rb'<c r="[A-Z]+([0-9]+)"|<row r="([0-9]+)"')
_CELL = re.compile(rb'<c r="([A-Z]+)([0-9]+)"([^>]*?)(?:/>|>(.*?)</c>)', re.S)
_VALUE = re.compile(rb"<v>([^<]+)</v>")
_FORMULA = re.compile(rb"<f(?:\s[^>]*)?(?:/>|>([^<]*)</f>)")


def sniff_workbook(head: bytes) -> str | None:
    """The workbook format the first bytes show, if they show one."""
    if head.startswith(_CFB):
        return "xls"
    if head.startswith(b"PK\x03\x04"):
        if b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet" in head[:200]:
            return "ods"
        return "xlsx"  # xlsx, xlsm or xlsb: told apart from the archive's contents when opened
    return None


def open_workbook(name: str, opener: Callable[[], IO[bytes]], fmt: str, *, sheet: str | None = None,
                  header_row: int | None = None,
                  header_test: Callable[[list[str]], bool] | None = None) -> LeadFile:
    """Parse one sheet of a workbook once; every later pass over the rows reads that parsed sheet."""
    try:
        from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum  # noqa: PLC0415
    except ImportError:
        raise InputError(f"{name}: reading workbooks needs the xlsx extra: pip install 'leadpush[xlsx]'") from None
    with opener() as f:
        data = f.read()
    if data.startswith(b"PK\x03\x04") and fmt != "ods":
        fmt = _zip_kind(data, fmt)
    elif data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<":
        raise InputError(f"{name}: this is a web page (HTML/XML) saved with a spreadsheet's name, not a "
                         f"workbook; open it in a spreadsheet and save it as .xlsx or CSV")
    kind = {"xlsx": ".xlsx", "xls": ".xls", "xlsb": ".xlsb", "ods": ".ods"}[fmt]
    if fmt == "ods":
        _scan_ods(name, data)  # calamine builds every ODS sheet as it opens the file
    elif fmt == "xls" and data.startswith(_CFB):
        _scan_xls(name, data)  # and every XLS sheet
        aborted = _aborts_calamine(data)
        if aborted is not None:
            raise InputError(f"{name}: not a readable .xls workbook (the workbook reader stopped on a damaged file: "
                             f"{aborted[:200]}); open it in a spreadsheet and save it again, or save it as CSV")
    try:
        with _rust_quiet(name):
            wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except BaseException as e:  # calamine raises its own kinds (and a Rust panic) for a broken file
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise InputError(f"{name}: not a readable {kind} workbook ({_reason(e, data)})") from None
    try:
        metas = list(wb.sheets_metadata)
        names = [m.name for m in metas]
        hidden = [m.visible != SheetVisibleEnum.Visible for m in metas]
        worksheet = [m.typ == SheetTypeEnum.WorkSheet for m in metas]
        index = _choose_sheet(name, data, fmt, names, hidden, worksheet, sheet)
        chosen = names[index]
        special: dict[int, dict[int, Any]] = {}
        if fmt == "xlsx":
            special = _scan_xlsx_sheet(name, data, index, chosen)
        elif fmt == "xlsb":
            special, xlsb_merges = _scan_xlsb_sheet(name, data, index, chosen)
        elif fmt == "xls" and data.startswith(_CFB):
            special = _xls_errors(data, index)  # calamine reads an error cell as empty
        try:
            with _rust_quiet(name):
                ws = wb.get_sheet_by_index(index)
        except BaseException as e:
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            raise InputError(f"{name}: sheet {chosen!r} cannot be read ({_reason(e, data)})") from None
        merges = ws.merged_cell_ranges or []
        if fmt == "xlsb":
            merges = xlsb_merges  # calamine does not give them for XLSB
        elif fmt == "ods":
            merges, special = _ods_extras(data, chosen)  # calamine gives neither for ODS
    finally:
        wb.close()
    del data

    def listing() -> str:
        return ", ".join(n + (" (hidden)" if h else "") for n, h in zip(names, hidden, strict=True))

    which, others = f"sheet {chosen!r}", f"(sheets: {listing()}); choose another with --sheet"
    sheet_note = f"{which} {others}"
    if ws.start is None:
        raise InputError(f"{name}: {which} is empty {others}")
    top, left = ws.start
    width = ws.width
    # Cells leadpush cannot take a value from as written, by sheet row and column (0 = the first
    # column read): a formula without its result and an error cell (from the scan above), and a
    # number beyond a float's exact integers (found as rows are read). A row that sends one is
    # refused with the message (checks.Checker._check_cell_problems).
    problems: dict[int, dict[int, str]] = {}
    for number, cols in special.items():
        for col, v in cols.items():
            if isinstance(v, (CellProblem, ErrorCell)):
                problems.setdefault(number, {})[col - left] = v.message

    def grid() -> Iterator[tuple[int, list[Any]]]:
        """(sheet row, cells) for rows with a value, from the first row of the sheet's values."""
        number, exact = top, _EXACT
        for cells in islice(ws.iter_rows(), top, None):  # iter_rows starts at row 1 with empties
            number += 1
            if cells.count("") == width:
                if number not in special:
                    continue
            for i, v in enumerate(cells):
                if v.__class__ is not str:
                    cells[i] = _cell(v)
                    if v.__class__ is float and not -exact < v < exact:
                        inexact = cells[i] = InexactNumber(_number(v), v, f"{_col_letters(left + i + 1)}{number}")
                        problems.setdefault(number, {})[i] = inexact.message
            extra = special.get(number)
            if extra:
                for col, value in extra.items():
                    if 0 <= col - left < width and cells[col - left] == "":
                        cells[col - left] = value
            yield number, cells

    header_number, header = 0, None
    titles: list[tuple[list[str], int]] = []
    if header_row is None and header_test is not None:
        # Below a title block (a formatted report's name, date, filters): the first row naming a phone.
        texts = (([v if v.__class__ is str else _header_text(v) for v in cells], number) for number, cells in grid())
        try:
            header_number, header, titles = find_header(name, texts, header_test)
        except InputError:
            header = None
    else:
        for number, cells in grid():
            if header_row is not None and number < header_row:
                titles.append(([v if v.__class__ is str else _header_text(v) for v in cells], number))
                continue
            if header_row is not None and number > header_row:
                raise InputError(f"{name}: row {header_row} of {which} is empty; it cannot be the header")
            header_number, header = number, [v if v.__class__ is str else _header_text(v) for v in cells]
            break
    if header is None:
        raise InputError(f"{name}: {which} has no header row {others}")
    if header_row is not None:
        above_header_row(name, titles, header_row, "row")
    while header and header[-1] == "":
        header.pop()
    keys = _column_keys(name, header_number, header)
    n = len(keys)
    # A merged range's value belongs to every cell it covers (below the header).
    fills = sorted((r0 + 1, r1 + 1, c0 - left, c1 - left) for (r0, c0), (r1, c1) in merges
                   if r0 + 1 > header_number and c0 - left < n)

    not_lead_rows = title_rows(titles, ABOVE_HEADER if header_row is not None else "title")

    spread: list[int] = []  # the columns of the row last read that a merged range filled

    def rows() -> Iterator[SourceRow]:
        del not_lead_rows[len(titles):]  # footers are found again on each pass
        yield from without_footers(sheet_rows(), not_lead_rows, spread)

    def sheet_rows() -> Iterator[tuple[int, list[Any]]]:
        pending = list(fills)  # by first row
        # (last row, first col, last col, value, what is wrong with the value: an error cell, an
        # inexact number, a formula without its result — every cell the range covers has it too)
        active: list[tuple[int, int, int, Any, Any]] = []
        for number, cells in grid():
            if number <= header_number:
                continue
            if pending or active:
                spread.clear()
                active = [a for a in active if a[0] >= number]
                while pending and pending[0][0] <= number:
                    r0, r1, c0, c1 = pending.pop(0)
                    if r0 == number and 0 <= c0:
                        active.append((r1, c0, min(c1, n - 1), cells[c0], problems.get(number, {}).get(c0)))
                for _last, c0, c1, value, problem in active:
                    for c in range(c0, c1 + 1):
                        if cells[c] == "":
                            cells[c] = value
                            spread.append(c)
                            if problem is not None:
                                problems.setdefault(number, {})[c] = problem
            if len(cells) > n:
                extra = [v for v in cells[n:] if v != ""]
                if extra:
                    raise InputError(f"{name}: row {number}, column {n + 1}: a value outside the "
                                     f"header's columns ({str(extra[0])[:40]!r}); give the column a header")
                del cells[n:]
            elif len(cells) < n:
                cells += [""] * (n - len(cells))
            yield number, cells

    return LeadFile(name=name, format=fmt, columns=header, keys=keys, _rows=rows,
                    sheet_note=sheet_note, cell_problems=problems,
                    notes=title_note(titles, header_number, "row", chosen=header_row is not None),
                    not_lead_rows=not_lead_rows)


def _aborts_calamine(data: bytes) -> str | None:
    """Whether calamine kills the process opening this .xls (on some damaged ones it asks for
    hundreds of GB and aborts: no Python code can catch that), tried first in a forked child that
    opens the workbook, builds every sheet and exits; what calamine printed as it died, or None.
    An .xls holds at most 65,536 rows a sheet: the extra parse costs a fraction of a second."""
    forked = _fork_with_pipe()
    if forked is None:
        return None  # no probe: the read itself will say what it can
    pid, read_end, write_end = forked
    if pid == 0:  # the child: its stderr (Rust's last words) to the pipe, nothing to the terminal
        try:
            os.close(read_end)
            os.dup2(write_end, 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            from python_calamine import CalamineWorkbook  # noqa: PLC0415

            wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
            for i in range(len(wb.sheet_names)):
                wb.get_sheet_by_index(i)
        except BaseException:  # an error is the parent's to report, when it opens the file
            pass
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        said = _last_words(read_end)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)  # after Ctrl-C too: no child left behind
    if not os.WIFSIGNALED(status) or os.WTERMSIG(status) == signal.SIGKILL:
        return None  # SIGKILL: the OOM killer, or a user; not what a damaged file does
    return _first_line(said)


def _fork_with_pipe() -> tuple[int, int, int] | None:
    """fork() with a fresh pipe both sides hold: (pid, read end, write end); None without fork, or
    with no descriptor or process to spare (EAGAIN, ENOMEM): the caller then does without."""
    if not hasattr(os, "fork"):
        return None
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None
    try:
        return os.fork(), read_end, write_end
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None


def _last_words(fd: int) -> bytes:
    """What a pipe carries until it closes, its last 64 KB."""
    said = b""
    while chunk := os.read(fd, 1 << 16):
        said = (said + chunk)[-(1 << 16):]
    return said


def _first_line(said: bytes) -> str:
    return (said.decode("utf-8", "replace").strip().splitlines() or ["no reason given"])[0]


_DONE = b"\x00leadpush: calamine returned\x00"


@contextmanager
def _rust_quiet(name: str) -> Iterator[None]:
    """Keep what calamine's Rust code prints on a damaged file (a panic's message, and with
    RUST_BACKTRACE set a backtrace) off the user's terminal: the panic reaches Python as an
    exception, which becomes one line. What it prints goes to a pipe read by a forked watcher,
    which drops it when calamine returns; if calamine instead aborts the process (it does on some
    damaged .xls files, asking for hundreds of GB), the watcher says so in one line."""
    forked = _fork_with_pipe()
    if forked is None:  # calamine's words, if any, reach stderr as they are
        yield
        return
    pid, read_end, write_end = forked
    if pid == 0:  # the watcher: it owns nothing but the pipe and the real stderr
        os.close(write_end)
        said = _last_words(read_end)
        if not said.endswith(_DONE):
            os.write(2, f"{name}: the workbook reader stopped on a damaged file ({_first_line(said)[:200]}); open "
                        f"it in a spreadsheet and save it again, or save it as CSV\n".encode())
        os._exit(0)
    os.close(read_end)
    saved = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        os.write(2, _DONE)
        os.dup2(saved, 2)  # the pipe's last write end closes: the watcher sees the marker and ends
        os.close(saved)
        os.waitpid(pid, 0)


class CellProblem(str):
    """A cell leadpush cannot take a value from (a formula nobody calculated): reads as empty text,
    and the checks refuse a row that uses it, with `message`."""

    message: str

    def __new__(cls, message: str) -> CellProblem:
        self = super().__new__(cls, "")
        self.message = message
        return self


class ErrorCell(str):
    """A cell holding a spreadsheet's error value (#DIV/0!, #N/A ...): reads as that text, so the
    phone check names it; a row that sends it from another column is refused with `message`."""

    message: str

    def __new__(cls, text: str, ref: str) -> ErrorCell:
        self = super().__new__(cls, text)
        self.message = Problem("cell.spreadsheet_error",
                               f"cell {ref} holds {text}, a spreadsheet's error value (a formula that failed), "
                               f"not a value: fix the formula or paste the values, and save the file again")
        return self


_EXACT = 2.0 ** 53  # a float holds every whole number below this, and not all above


class InexactNumber(str):
    """A number cell beyond a float's exact whole numbers: reads as its digits as calamine gave
    them (scientific notation, so a phone check says digits were lost), and keeps the `number`, so
    the fix-it workbook writes it back as that number; a row that sends it is refused with `message`."""

    number: float
    message: Problem

    def __new__(cls, text: str, number: float, ref: str) -> InexactNumber:
        self = super().__new__(cls, text)
        self.number = number
        self.message = _inexact(number, ref)
        return self


def _inexact(v: float, ref: str) -> Problem:
    return Problem("cell.inexact_number",
                   f"cell {ref} holds the number {v!r}, beyond the digits a spreadsheet keeps exactly (its last "
                   f"digits are already lost), so it cannot be sent as written: format the column as text, "
                   f"type the number again and save the file")


def _zip_kind(data: bytes, fmt: str) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = set(z.namelist())
    except _BROKEN:
        return fmt
    if "xl/workbook.bin" in names:
        return "xlsb"
    if "content.xml" in names and "xl/workbook.xml" not in names:
        return "ods"
    return "xlsx"


def _reason(e: BaseException, data: bytes) -> str:
    if type(e).__name__ == "PasswordError" or (data.startswith(_CFB) and "password" in str(e).lower()):
        return "it is password-protected; save an unprotected copy"
    text = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _choose_sheet(name: str, data: bytes, fmt: str, names: list[str], hidden: list[bool],
                  worksheet: list[bool], sheet: str | None) -> int:
    if sheet is not None:
        if sheet in names:
            return names.index(sheet)
        folded = [i for i, n in enumerate(names) if n.casefold() == sheet.strip().casefold()]
        if len(folded) == 1:
            return folded[0]
        raise InputError(f"{name}: no sheet named {sheet!r} (sheets: {', '.join(names)})")
    if not names:
        raise InputError(f"{name}: the workbook has no sheets")

    def readable(i: int) -> bool:
        return worksheet[i] and not hidden[i]

    active = _active_sheet(data, fmt, names)
    if active is not None and readable(active):
        return active
    return next((i for i in range(len(names)) if readable(i)), 0)


def _active_sheet(data: bytes, fmt: str, names: list[str]) -> int | None:
    """The sheet the workbook opens on (XLSX: workbookView activeTab; ODS: ActiveTable), if it says."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if fmt == "xlsx":
                with z.open("xl/workbook.xml") as f:
                    head = f.read(1 << 16)
                m = re.search(rb'<(?:\w+:)?workbookView\b[^>]*?\sactiveTab="([0-9]+)"', head)
                return int(m.group(1)) if m and int(m.group(1)) < len(names) else None
            if fmt == "ods" and "settings.xml" in z.namelist():
                with z.open("settings.xml") as f:
                    text = f.read(1 << 20)
                m = re.search(rb'config:name="ActiveTable"[^>]*>([^<]*)<', text)
                if m:
                    active = html.unescape(m.group(1).decode("utf-8", "replace"))
                    return names.index(active) if active in names else None
    except _BROKEN:
        return None
    return None


def _sheet_part(z: zipfile.ZipFile, index: int) -> str | None:
    """The archive path of the index-th sheet of an XLSX workbook."""
    ns_r = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
    try:
        with z.open("xl/workbook.xml") as f:
            book = ElementTree.fromstring(f.read(16 << 20))
        with z.open("xl/_rels/workbook.xml.rels") as f:
            rels = ElementTree.fromstring(f.read(16 << 20))
    except _BROKEN:
        return None
    sheets = [e for e in book.iter() if e.tag.rsplit("}", 1)[-1] == "sheet"]
    if index >= len(sheets):
        return None
    rid = sheets[index].get(ns_r)
    for rel in rels:
        if rel.get("Id") == rid:
            target = rel.get("Target") or ""
            return target.lstrip("/") if target.startswith("/") else "xl/" + target
    return None


def _col_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


def _col_letters(n: int) -> str:
    s = ""
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


def _chunks(z: zipfile.ZipFile, part: str, row_end: bytes = b"</row>") -> Iterator[bytes]:
    """The sheet's XML in pieces that end at a row's end, so no cell is cut in two."""
    with z.open(part) as f:
        tail = b""
        while chunk := f.read(_CHUNK):
            data = tail + chunk
            cut = data.rfind(row_end)
            if cut < 0:
                tail = data
                continue
            cut += len(row_end)
            yield data[:cut]
            tail = data[cut:]
        if tail:
            yield tail


def _scan_xlsx_sheet(name: str, data: bytes, index: int, sheet: str) -> dict[int, dict[int, Any]]:
    """One streamed look at the sheet's XML before calamine builds it: refuse a sheet whose values
    span more than MAX_CELLS, and find what calamine reads as empty but is not (error values, and
    formulas saved without their result). Cost: about 0.1 s per 100,000 rows of 7 columns."""
    special: dict[int, dict[int, Any]] = {}
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except _BROKEN:
        return special  # calamine says what is wrong with it
    with z:
        part = _sheet_part(z, index)
        if part is None or part not in z.namelist():
            return special
        max_row = max_col = 0
        far = ""
        try:
            for chunk in _chunks(z, part):
                for found in _SUSPECT.finditer(chunk):
                    m = _FAR.match(chunk, found.start())
                    if m is None:
                        continue
                    letters, digits, letter, tall, tall_row = m.groups()
                    at = m.start()
                    if chunk[at - 3:at] != b"<c " if not tall_row else chunk[at - 5:at] != b"<row ":
                        continue  # another attribute whose name ends in r
                    if not (_has_value(chunk, m.end()) if not tall_row else _has_refless_cell(chunk, m.end())):
                        continue  # an empty (formatted) cell or row: calamine keeps no cell for it
                    row = int(digits or tall or tall_row)
                    col = _col_number(letters) if letters else 0  # 0: within A–Z
                    if row > max_row or col > max_col or (row == max_row and not tall_row):
                        far = f"row {row}" if tall_row else (letters or letter).decode() + str(row)
                        max_row, max_col = max(max_row, row), max(max_col, col)
                max_row = max(max_row, _last_row(chunk))
                # (a formula is <f>…</f>, or <f … si="n"/> where it shares another cell's formula)
                if b"</f>" in chunk or b'si="' in chunk or b't="e"' in chunk:
                    _special_cells(chunk, special)
            if max_col > _EXACT_ROWS_ABOVE:
                # Wide sheets: a row below the last row tag (cells out of order) would widen the
                # grid unseen, so every cell's row is counted.
                for chunk in _chunks(z, part):
                    for m in _ANY_ROW.finditer(chunk):
                        max_row = max(max_row, int(m.group(1) or m.group(2)))
        except _BROKEN:
            return special  # a damaged archive: calamine gives the reason
    # Without a cell beyond column Z the width is at most 26: counted as 26 (an upper bound).
    _too_big(name, sheet, max_row, max_col or 26, far)
    return special


def _too_big(name: str, sheet: str, max_row: int, max_col: int, far: str) -> None:
    cells = max_row * max_col
    if cells > MAX_CELLS:
        raise InputError(
            f"{name}: sheet {sheet!r}: its values span A1:{_col_letters(max_col)}{max_row} ({cells:,} cells, "
            f"more than the {MAX_CELLS:,} leadpush reads){f' — is {far} a stray value?' if far else ''}; "
            f"delete what lies beyond the leads, or save the sheet as CSV")


def _records(stream: bytes) -> Iterator[tuple[int, int, int]]:
    """(type, start, end) of each record of an XLSB part (MS-XLSB 2.1.4: 7-bit varint type and size)."""
    pos, n = 0, len(stream)
    while pos < n:
        typ = stream[pos]
        pos += 1
        if typ & 0x80:
            typ = (typ & 0x7F) | ((stream[pos] & 0x7F) << 7) if pos < n else typ
            pos += 1
        size = shift = 0
        for _ in range(4):
            if pos >= n:
                return
            b = stream[pos]
            pos += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        yield typ, pos, pos + size
        pos += size


Merges = list[tuple[tuple[int, int], tuple[int, int]]]  # ((first row, first col), (last row, last col)), 0-based


def _scan_xlsb_sheet(name: str, data: bytes, index: int, sheet: str) -> tuple[dict[int, dict[int, Any]], Merges]:
    """The size check of _scan_xlsx_sheet for an XLSB sheet, its rows and cells record by record;
    and what calamine does not give for one: its error cells (it reads them as empty) and its
    merged ranges (BrtMergeCell, after the sheet's data)."""
    special: dict[int, dict[int, Any]] = {}
    merges: Merges = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            with z.open("xl/_rels/workbook.bin.rels") as f:
                rels = {r.get("Id"): r.get("Target") or "" for r in ElementTree.fromstring(f.read(16 << 20))}
            book = z.read("xl/workbook.bin")
            parts = []
            for typ, start, end in _records(book):
                if typ == 0x009C and end - start >= 12:  # BrtBundleSh: state, id, relId, name
                    length = int.from_bytes(book[start + 8:start + 12], "little")
                    if length != 0xFFFFFFFF:
                        parts.append(book[start + 12:start + 12 + 2 * length].decode("utf-16-le", "replace"))
            if index >= len(parts) or rels.get(parts[index]) is None:
                return special, merges
            stream = z.read("xl/" + rels[parts[index]].lstrip("/").removeprefix("xl/"))
    except _BROKEN:
        return special, merges  # calamine says what is wrong
    row = max_row = max_col = 0
    far = ""
    in_data = True
    for typ, start, end in _records(stream):
        if typ == 0x0092:  # BrtEndSheetData: merged ranges follow
            in_data = False
        elif not in_data:
            if typ == 0x00B0 and end - start >= 16:  # BrtMergeCell: rwFirst, rwLast, colFirst, colLast
                r0, r1, c0, c1 = struct.unpack_from("<IIII", stream, start)
                if r0 <= r1 and c0 <= c1:
                    merges.append(((r0, c0), (r1, c1)))
        elif typ == 0x0000:  # BrtRowHdr
            row = int.from_bytes(stream[start:start + 4], "little") + 1
        elif 2 <= typ <= 11:  # a cell with a value (1, BrtCellBlank, is kept by no one)
            col = int.from_bytes(stream[start:start + 4], "little") + 1
            if row > max_row or col > max_col:
                far = f"{_col_letters(col)}{row}"
                max_row, max_col = max(max_row, row), max(max_col, col)
            if typ in (0x0003, 0x000B) and end - start >= 9:  # BrtCellError, BrtFmlaError: bErr after the cell
                _error_cell(special, row, col, stream[start + 8])
    _too_big(name, sheet, max_row, max_col, far)
    return special, merges


# An error cell's code in BIFF8 and XLSB (MS-XLS and MS-XLSB, BErr): the text a spreadsheet shows.
_ERROR_CODES = {0x00: "#NULL!", 0x07: "#DIV/0!", 0x0F: "#VALUE!", 0x17: "#REF!", 0x1D: "#NAME?", 0x24: "#NUM!",
                0x2A: "#N/A", 0x2B: "#GETTING_DATA"}


def _error_cell(special: dict[int, dict[int, Any]], row: int, col: int, code: int) -> None:
    """Note the error cell at 1-based (row, col)."""
    text = _ERROR_CODES.get(code, "an error value")
    special.setdefault(row, {})[col - 1] = ErrorCell(text, f"{_col_letters(col)}{row}")


_ODS_TABLE_NAME = re.compile(rb'<table:table\s[^>]*?table:name="([^"]*)"')
_ODS_ROWS = re.compile(rb'number-rows-repeated="([0-9]+)"')
_ODS_COLS = re.compile(rb'number-columns-repeated="([0-9]+)"')
_ODS_TRAILING = re.compile(rb'<table:table-cell [^>]*number-columns-repeated="[0-9]+"[^>]*/>\s*$')


def _scan_ods(name: str, data: bytes) -> None:
    """The size check of _scan_xlsx_sheet for every sheet of an ODS file (calamine builds them all
    when it opens one): rows and cells counted through their repeat attributes, before calamine
    expands them. Rows are cut apart with bytes.split and their cells counted, not parsed."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        if "content.xml" not in z.namelist():
            return
    except _BROKEN:
        return
    sheet, row, max_row, max_col, far = "", 0, 0, 0, ""
    try:
        with z:
            for chunk in _chunks(z, "content.xml", b"</table:table-row>"):
                for i, piece in enumerate(chunk.split(b"<table:table-row")):
                    end = len(piece)
                    if i:  # a row: its tag, its cells, and what follows it up to the next row
                        tag_end = piece.find(b">")
                        closed = piece.find(b"</table:table-row>")
                        end = tag_end + 1 if tag_end > 0 and piece[tag_end - 1] == 0x2F else \
                            (closed if closed >= 0 else len(piece))
                        m_rep = _ODS_ROWS.search(piece, 0, tag_end)
                        repeat = int(m_rep.group(1)) if m_rep else 1
                        body = piece[tag_end + 1:end]
                        if b"value-type" in body or b"<text:" in body:
                            last = _ods_last_col(body)
                            if last:
                                if row + repeat > max_row or last > max_col:
                                    far = f"{_col_letters(last)}{row + repeat}"
                                max_row, max_col = max(max_row, row + repeat), max(max_col, last)
                        row += repeat
                    start = piece.find(b"<table:table ", end)
                    if start >= 0:  # a new sheet begins after this row
                        _too_big(name, sheet, max_row, max_col, far)
                        m = _ODS_TABLE_NAME.search(piece, start)
                        sheet = html.unescape(m.group(1).decode("utf-8", "replace")) if m else "?"
                        row, max_row, max_col, far = 0, 0, 0, ""
            _too_big(name, sheet, max_row, max_col, far)
    except _BROKEN:
        return


def _ods_last_col(body: bytes) -> int:
    """At most the column (1-based) of a row's last cell with a value: every cell counted with its
    repeats, but the empty ones that fill the row to the sheet's edge."""
    body = _ODS_TRAILING.sub(b"", body)
    cells = body.count(b"<table:table-cell") + body.count(b"<table:covered-table-cell")
    return cells + sum(int(n) - 1 for n in _ODS_COLS.findall(body))


def _cfb_stream(data: bytes, wanted: tuple[str, ...]) -> bytes | None:
    """A stream of a Compound File (MS-CFB: the container of .xls) by name, or None."""
    u16 = lambda at: int.from_bytes(data[at:at + 2], "little")  # noqa: E731
    u32 = lambda at: int.from_bytes(data[at:at + 4], "little")  # noqa: E731
    size = 1 << u16(0x1E)
    mini_size, cutoff = 1 << u16(0x20), u32(0x38)
    if size not in (512, 4096) or mini_size != 64:
        return None
    sectors = (len(data) - size) // size

    def sector(i: int) -> bytes:
        return data[(i + 1) * size:(i + 2) * size]

    def words(block: bytes) -> list[int]:
        return [int.from_bytes(block[i:i + 4], "little") for i in range(0, len(block) - 3, 4)]

    difat = words(data[0x4C:0x200])
    nxt, seen = u32(0x44), 0
    while nxt < sectors and seen <= sectors:  # further DIFAT sectors: entries, then the next one
        block = words(sector(nxt))
        difat += block[:-1]
        nxt, seen = block[-1], seen + 1
    fat: list[int] = []
    for i in difat:
        if i < sectors:
            fat += words(sector(i))

    def chain(start: int, table: list[int]) -> list[int]:
        out: list[int] = []
        while start < len(table) and len(out) <= len(table):
            out.append(start)
            start = table[start]
        return out

    directory = b"".join(sector(i) for i in chain(u32(0x30), fat) if i < sectors)
    entries = [directory[i:i + 128] for i in range(0, len(directory) - 127, 128)]
    if not entries:
        return None
    root = entries[0]

    def rank(e: bytes) -> int:  # the first of `wanted` that the file has, as calamine chooses
        length = int.from_bytes(e[64:66], "little")
        named = e[:max(length - 2, 0)].decode("utf-16-le", "replace")
        return wanted.index(named) if e[66] == 2 and named in wanted else len(wanted)

    for e in sorted(entries, key=rank):
        if rank(e) == len(wanted):
            break
        start, length = int.from_bytes(e[116:120], "little"), int.from_bytes(e[120:124], "little")
        if length >= cutoff:
            return b"".join(sector(i) for i in chain(start, fat) if i < sectors)[:length]
        mini = b"".join(sector(i) for i in chain(int.from_bytes(root[116:120], "little"), fat) if i < sectors)
        minifat = words(b"".join(sector(i) for i in chain(u32(0x3C), fat) if i < sectors))
        return b"".join(mini[i * mini_size:(i + 1) * mini_size] for i in chain(start, minifat))[:length]
    return None


# BIFF8 records that hold a cell's value (row, then column, first): LABELSST, NUMBER, RK, FORMULA,
# BOOLERR, LABEL, RSTRING; MULRK holds several, its last column at its end.
_XLS_CELLS = frozenset({0x00FD, 0x0203, 0x027E, 0x0006, 0x0205, 0x0204, 0x00D6})


def _scan_xls(name: str, data: bytes) -> None:
    """The size check for an .xls: calamine builds every sheet when it opens the file, each as one
    grid, so the grids of all worksheets together must stay within MAX_CELLS."""
    try:
        total, biggest = _xls_grids(data)
    except _BROKEN:
        return  # calamine says what is wrong
    if total > MAX_CELLS:
        raise InputError(
            f"{name}: its sheets' values span {total:,} cells together, more than the {MAX_CELLS:,} leadpush "
            f"reads (calamine reads every sheet of an .xls) — is {biggest} a stray value?; delete what "
            f"lies beyond the leads, or save the sheet as CSV")


def _xls_grids(data: bytes) -> tuple[int, str]:
    """The cells of all worksheet grids of an .xls together, and the far corner of the largest."""
    stream = _cfb_stream(data, ("Workbook", "Book"))
    if stream is None:
        return 0, ""
    header = struct.Struct("<HH").unpack_from
    names: list[str] = []
    total, depth, sheet, biggest = 0, 0, -1, (0, "")
    top = left = 1 << 20
    max_row = max_col = 0
    pos, n = 0, len(stream)
    while pos + 4 <= n:
        typ, size = header(stream, pos)
        at, pos = pos + 4, pos + 4 + size
        if depth == 1 and (typ in _XLS_CELLS or typ == 0x00BD) and size >= 4:
            row, col = header(stream, at)
            first_col = col
            if typ == 0x00BD:  # MULRK: the last column is at its end
                col = header(stream, pos - 4)[1]
            if row >= max_row:
                max_row = row + 1
            if row < top:
                top = row
            if col >= max_col:
                max_col = col + 1
            if first_col < left:
                left = first_col
        elif typ == 0x0809:  # BOF: a substream begins (the globals, a sheet, or a chart inside one)
            depth += 1
            if depth == 1:
                sheet += 1
                max_row = max_col = 0
                top = left = 1 << 20
        elif typ == 0x000A:  # EOF
            if depth == 1 and max_row:
                box = (max_row - top) * (max_col - left)  # calamine's grid: first to last value
                total += box
                if box > biggest[0]:
                    title = names[sheet - 1] if 0 < sheet <= len(names) else f"#{sheet}"
                    biggest = (box, f"{_col_letters(max_col)}{max_row} on sheet {title!r}")
            depth = max(depth - 1, 0)
        elif typ == 0x0085 and size >= 8:  # BoundSheet8: the sheets' names, in order
            cch, high = stream[at + 6], stream[at + 7] & 1
            raw = stream[at + 8:at + 8 + cch * (2 if high else 1)]
            names.append(raw.decode("utf-16-le" if high else "latin-1", "replace"))
    return total, biggest[1]


def _xls_errors(data: bytes, index: int) -> dict[int, dict[int, Any]]:
    """The error cells of the .xls sheet at `index` (in BoundSheet order, calamine's): BOOLERR
    records that hold an error, and FORMULA records whose cached result is one (MS-XLS 2.4.24,
    2.4.127; the same places in BIFF5), found through the sheet's BoundSheet record."""
    special: dict[int, dict[int, Any]] = {}
    try:
        stream = _cfb_stream(data, ("Workbook", "Book"))
        if stream is None:
            return special
        header = struct.Struct("<HH").unpack_from
        pos, n, start, seen = 0, len(stream), -1, 0
        while pos + 4 <= n and start < 0:  # the globals: where the sheet's substream begins
            typ, size = header(stream, pos)
            at, pos = pos + 4, pos + 4 + size
            if typ == 0x0085 and size >= 6:  # BoundSheet: lbPlyPos first (BIFF5 and BIFF8 alike)
                if seen == index:
                    start = int.from_bytes(stream[at:at + 4], "little")
                seen += 1
            elif typ == 0x000A:  # EOF of the globals: no such sheet
                break
        pos, depth = max(start, 0), 0
        while start >= 0 and pos + 4 <= n:
            typ, size = header(stream, pos)
            at, pos = pos + 4, pos + 4 + size
            if typ == 0x0809:  # BOF: the sheet, or a chart inside it
                depth += 1
            elif typ == 0x000A:  # EOF
                depth -= 1
                if depth <= 0:
                    break
            elif depth == 1 and typ == 0x0205 and size >= 8 and stream[at + 7] == 1:  # BOOLERR, fError
                row, col = header(stream, at)
                _error_cell(special, row + 1, col + 1, stream[at + 6])
            elif depth == 1 and typ == 0x0006 and size >= 14 and stream[at + 6] == 2 \
                    and stream[at + 12:at + 14] == b"\xff\xff":  # FORMULA whose cached result is an error
                row, col = header(stream, at)
                _error_cell(special, row + 1, col + 1, stream[at + 8])
    except _BROKEN:
        return special  # calamine says what is wrong
    return special


def _has_value(chunk: bytes, at: int) -> bool:
    """Whether the cell whose start tag is open at `at` holds something (not `<c .../>`, `<c ...></c>`)."""
    end = chunk.find(b">", at)
    return end > 0 and chunk[end - 1] != 0x2F and not chunk.startswith(b"</c>", end + 1)


_REFLESS = re.compile(rb"<c(?:>|\s(?![^>]*\br=)[^>]*[^/]>)(?!</c>)")


def _has_refless_cell(chunk: bytes, at: int) -> bool:
    """Whether the row whose tag is open at `at` has a cell without a reference (placed by count)."""
    end = chunk.find(b"</row>", at)
    return bool(_REFLESS.search(chunk, at, end if end > 0 else len(chunk)))


def _last_row(chunk: bytes) -> int:
    """The row of the chunk's last cell that holds something (cells come in row order)."""
    end = len(chunk)
    for _ in range(64):
        at = chunk.rfind(b'<c r="', 0, end)
        if at < 0:
            return 0
        m = _ANY_ROW.match(chunk, at)
        if m and _has_value(chunk, m.end()):
            return int(m.group(1))
        end = at
    return 0


def _special_cells(chunk: bytes, special: dict[int, dict[int, Any]]) -> None:
    for m in _CELL.finditer(chunk):
        letters, digits, attrs, body = m.groups()
        body = body or b""
        if b't="e"' in attrs:
            v = _VALUE.search(body)
            if v:
                special.setdefault(int(digits), {})[_col_number(letters) - 1] = ErrorCell(
                    html.unescape(v.group(1).decode("utf-8", "replace")), letters.decode() + digits.decode())
            continue
        f = _FORMULA.search(body)
        if f is None or _VALUE.search(body) or b't="str"' in attrs:
            continue
        formula = html.unescape((f.group(1) or b"").decode("utf-8", "replace"))
        shown = f" (={formula[:40]})" if formula else ""
        ref = letters.decode() + digits.decode()
        special.setdefault(int(digits), {})[_col_number(letters) - 1] = CellProblem(Problem(
            "cell.no_value", f"cell {ref} holds a formula{shown} saved without its result (the program that wrote "
            f"the file did not calculate it); open the file in a spreadsheet and save it again, or "
            f"paste the values"))


_ODS_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"


_ODS_CALCEXT = "{urn:org:documentfoundation:names:experimental:calc:xmlns:calcext:1.0}"
_ODS_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_ODS_ERROR_TEXT = re.compile(r"#(?:NULL!|DIV/0!|VALUE!|REF!|NAME\?|NUM!|N/A)|Err:[0-9]{3}")
_ODS_MARKS = (b"-spanned=", b'value-type="error"', b'string-value=""')  # what makes _ods_extras look closer


def _ods_extras(data: bytes, sheet: str) -> tuple[list[tuple[tuple[int, int], tuple[int, int]]],
                                                   dict[int, dict[int, Any]]]:
    """What calamine does not give for an ODS sheet: its merged ranges ((first row, first col),
    (last row, last col)), 0-based as calamine counts, from number-rows/columns-spanned; and its
    error cells (calamine reads them as empty), by 1-based row and 0-based column as
    _scan_xlsx_sheet gives them. Positions are counted through the repeat attributes.

    An error cell is one LibreOffice marks calcext:value-type="error", or a formula whose string
    result is empty but which shows an error's text (#DIV/0!, Err:502) as other writers save it."""
    merges: list[tuple[tuple[int, int], tuple[int, int]]] = []
    special: dict[int, dict[int, Any]] = {}
    t = _ODS_TABLE
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            with z.open("content.xml") as f:
                tail, marked = b"", False
                while not marked and (chunk := f.read(_CHUNK)):
                    seen, tail = tail + chunk, chunk[-32:]  # a mark may straddle two reads
                    marked = any(mark in seen for mark in _ODS_MARKS)
                if not marked:
                    return merges, special
            with z.open("content.xml") as f:
                inside, row, col, cell_col = False, -1, 0, 0
                row_errors: dict[int, str] = {}  # column -> the error's text, in the row being read
                for event, e in ElementTree.iterparse(f, events=("start", "end")):
                    tag = e.tag
                    if tag == t + "table":
                        inside = event == "start" and e.get(t + "name") == sheet
                        if event == "end":
                            e.clear()
                            if e.get(t + "name") == sheet:
                                break
                    elif not inside:
                        continue
                    elif tag == t + "table-row":
                        if event == "start":
                            row, col, row_errors = row + 1, 0, {}
                        else:
                            repeats = int(e.get(t + "number-rows-repeated") or 1)
                            # Every copy: the sheet's size was checked before (_scan_ods), and
                            # calamine builds each of these rows as well.
                            for r in range(row + 1, row + 1 + repeats if row_errors else row + 1):
                                for c, shown in row_errors.items():
                                    special.setdefault(r, {})[c] = ErrorCell(shown, f"{_col_letters(c + 1)}{r}")
                            row += repeats - 1
                            e.clear()
                    elif tag in (t + "table-cell", t + "covered-table-cell"):
                        if event == "start":
                            rows = int(e.get(t + "number-rows-spanned") or 1)
                            cols = int(e.get(t + "number-columns-spanned") or 1)
                            if rows > 1 or cols > 1:
                                merges.append(((row, col), (row + rows - 1, col + cols - 1)))
                            cell_col = col
                            col += int(e.get(t + "number-columns-repeated") or 1)
                            continue
                        text = "".join(e.itertext()).strip() if tag == t + "table-cell" else ""
                        if e.get(_ODS_CALCEXT + "value-type") == "error" or (
                                e.get(t + "formula") and e.get(_ODS_OFFICE + "string-value") == ""
                                and _ODS_ERROR_TEXT.fullmatch(text)):
                            shown = text if _ODS_ERROR_TEXT.fullmatch(text) else "an error value"
                            for c in range(cell_col, col):
                                row_errors[c] = shown
    except _BROKEN:
        return merges, special
    return merges, special


def _number(v: float) -> str:
    """A spreadsheet number as its digits: a spreadsheet keeps 15 significant digits."""
    if v.is_integer():
        if -2**53 < v < 2**53:
            return str(int(v))
        return repr(v)  # beyond what a float holds exactly: left in scientific notation, so a
        # phone check says the digits were lost rather than sending invented ones
    s = format(v, ".15g")
    if "e" in s:
        s = format(Decimal(s), "f")
    return s


def _cell(value: Any) -> Any:
    """A non-text cell as leadpush sees it: exact digits for numbers, dates as dates."""
    cls = value.__class__
    if cls is float:
        return _number(value)
    if cls is bool:
        return "TRUE" if value else "FALSE"
    if cls is int:
        return str(value)
    if cls is dt.datetime:
        return value.date() if value.time() == dt.time(0, 0) else value
    if cls is dt.date or cls is dt.time:
        return value
    return str(value)


def _header_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value)
