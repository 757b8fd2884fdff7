"""Read lead files (CSV/TSV, JSON, JSON Lines, workbooks, stdin) as a stream of (row, columns) pairs."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from .files import is_stream
from .outcomes import InputError

# A row as read: its position as the user would find it (CSV line, sheet row, JSONL line,
# JSON array index, all 1-based) and its values: for CSV and XLSX a list in column order (as
# long as the header; LeadFile.keys names them), for JSON the object itself.
SourceRow = tuple[int, "list[Any] | dict[str, Any]"]



class InputFormat(StrEnum):
    """The lead file formats leadpush reads."""

    CSV = "csv"
    JSON = "json"
    JSONL = "jsonl"
    XLSX = "xlsx"  # and .xlsm
    XLS = "xls"
    XLSB = "xlsb"
    ODS = "ods"


FORMATS = tuple(f.value for f in InputFormat)
_EXTENSIONS = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".xlsx": "xlsx", ".xlsm": "xlsx",
    ".xls": "xls", ".xlsb": "xlsb", ".ods": "ods",
}
LEAD_EXTENSIONS = tuple(_EXTENSIONS)  # the suffixes leadpush reads by itself (the inbox takes these)
_DELIMITERS = (",", ";", "\t", "|")
_QUOTED = re.compile(r'"[^"]*"')
_CHUNK = 1 << 20
_MAX_ITEM = 8 << 20  # bytes of JSON one lead may take before we call it broken

# Column keys for header cells that are empty: they cannot be mapped or sent, but the
# failures file still writes them back in place.
UNNAMED_PREFIX = "\x00"


@dataclass
class LeadFile:
    """An opened lead file. `rows()` can be called again to read it once more from the start."""

    name: str  # as the user named it, for messages
    format: str
    encoding: str | None = None
    encoding_note: str | None = None  # said to the user when the file was not UTF-8
    notes: list[str] = field(default_factory=list)  # how the file was read, where it was not plain
    # Rows that are not leads and were not read as such: (line, "title" or "footer", text). Footers
    # are known once rows() has run to the end.
    not_lead_rows: list[tuple[int, str, str]] = field(default_factory=list)
    delimiter: str | None = None
    columns: list[str] | None = None  # header cells as read (CSV, XLSX); None for JSON
    keys: list[str] | None = None  # the row dicts' keys for those columns (unnamed ones made unique)
    sheet_note: str | None = None  # workbooks: which sheet was read, and the others, for errors
    # workbooks: cells that read as empty but hold no value to take (row -> column index -> why)
    cell_problems: dict[int, dict[int, str]] | None = None
    _rows: Callable[[], Iterator[SourceRow]] = field(default=None, repr=False)  # type: ignore[assignment]
    _cleanup: Callable[[], None] | None = field(default=None, repr=False)
    _opener: Callable[[], IO[bytes]] | None = field(default=None, repr=False)
    spooled: bool = False  # read once from stdin, a pipe or a device into a private temporary file

    def rows(self) -> Iterator[SourceRow]:
        return self._rows()

    def digest(self) -> str:
        """sha256 of the file's bytes (what a journal is tied to, rather than its name)."""
        h = hashlib.sha256()
        assert self._opener is not None
        with self._opener() as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        return h.hexdigest()

    def close(self) -> None:
        if self._cleanup:
            self._cleanup()
            self._cleanup = None

    def __enter__(self) -> LeadFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_lead_file(path: str | Path, *, fmt: str | None = None, encoding: str | None = None,
                   delimiter: str | None = None, sheet: str | None = None,
                   stdin: IO[bytes] | None = None, header_row: int | None = None,
                   header_test: Callable[[list[str]], bool] | None = None) -> LeadFile:
    """Open a lead file for reading; `-` means standard input. Raises InputError for the user.

    header_row: the line (sheet row) of the header; by default the first row, or, below a title
    block, the first row for which header_test (does it name a phone column?) holds."""
    path = str(path)
    cleanup = None
    spooled = is_stream(path)
    if spooled:
        # stdin, a pipe, <(...), a FIFO or /dev/stdin: read exactly once into a spool (0600,
        # unlinked at once), then read from there as often as a file, whatever its name.
        name = "<stdin>" if path == "-" else path
        if path == "-":
            source: IO[bytes] = _NoClose(stdin if stdin is not None else sys.stdin.buffer)  # type: ignore[assignment]
        else:
            try:
                source = open(path, "rb")
            except OSError as e:
                raise InputError(f"{name}: cannot be read ({e.strerror})") from None
        spool = tempfile.TemporaryFile()
        try:
            with source:
                shutil.copyfileobj(source, spool)
        except OSError as e:
            spool.close()
            raise InputError(f"{name}: cannot be read ({e.strerror})") from None
        cleanup = spool.close

        def opener() -> IO[bytes]:
            spool.seek(0)
            return _NoClose(spool)  # type: ignore[return-value]  # a raw stream standing in for the file
    else:
        name = path
        p = Path(path)
        if not p.exists():
            raise InputError(f"{name}: no such file")
        if p.is_dir():
            raise InputError(f"{name}: is a folder, not a lead file")

        def opener() -> IO[bytes]:
            try:
                return open(p, "rb")
            except OSError as e:
                raise InputError(f"{name}: cannot be read ({e.strerror})") from None

    try:
        with opener() as f:
            head = f.read(4096)
        if not head.strip():
            raise InputError(f"{name}: the file is empty")
        if header_row is not None and header_row < 1:
            raise InputError(f"{name}: --header-row counts from 1, not {header_row}")
        if fmt is None:
            fmt = _guess_format(path, head)
        if fmt in ("csv", "json", "jsonl"):
            _refuse_binary(name, head, fmt)
        if fmt not in FORMATS:
            raise InputError(f"{name}: unknown format {fmt!r} (choose one of {', '.join(FORMATS)})")
        if fmt == "csv":
            lead_file = _open_csv(name, opener, head, encoding, delimiter, path, header_row, header_test)
        elif fmt in ("json", "jsonl"):
            lead_file = _open_json(name, opener, fmt, encoding, head)
        else:
            from .workbook import open_workbook  # noqa: PLC0415 — it imports this module

            lead_file = open_workbook(name, opener, fmt, sheet=sheet, header_row=header_row,
                                      header_test=header_test)
    except BaseException:
        if cleanup:
            cleanup()
        raise
    lead_file._cleanup = cleanup
    lead_file._opener = opener
    lead_file.spooled = spooled
    return lead_file


class _NoClose(io.RawIOBase):
    """Lets `with opener() as f` read a spooled stdin without closing it."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._inner.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._inner.seek(pos, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def close(self) -> None:  # the spool stays open for the next pass
        super().close()


_MAGIC = ((b"\x1f\x8b", "gzip-compressed: decompress it first (gunzip, or open it with an archive tool)"),
          (b"%PDF", "a PDF document, not a table: export the data as CSV or .xlsx"),
          (b"7z\xbc\xaf", "a 7-Zip archive: extract the lead file from it first"),
          (b"Rar!", "a RAR archive: extract the lead file from it first"))


def _refuse_binary(name: str, head: bytes, fmt: str) -> None:
    """A workbook, archive or other binary file given as text says what it is."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise InputError(f"{name}: is {what}")
    # (Read without --format, such bytes are read as the workbook they are: see _guess_format.)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        raise InputError(f"{name}: is an Excel 97-2003 workbook (.xls), not {fmt.upper()}: leave out --format "
                         f"or pass --format xls")
    if head.startswith(b"PK\x03\x04"):
        if b"[Content_Types].xml" in head or b"xl/" in head or b"opendocument" in head:
            raise InputError(f"{name}: is a workbook, not {fmt.upper()}: leave out --format (or pass "
                             f"--format xlsx/ods)")
        raise InputError(f"{name}: is a ZIP archive: extract the lead file from it first")


def _guess_format(path: str, head: bytes) -> str:
    suffix = Path(path).suffix.lower()
    if head.startswith((b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"PK\x03\x04")):
        # The bytes say workbook, whatever the name: which kind is told when it is opened.
        if _EXTENSIONS.get(suffix) in ("xlsx", "xls", "xlsb", "ods"):
            return _EXTENSIONS[suffix]
        from .workbook import sniff_workbook  # noqa: PLC0415

        return sniff_workbook(head) or "xlsx"
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first == b"[":
        return "json"
    if first == b"{":
        return "jsonl"
    return "csv"


# ---------------------------------------------------------------------------- CSV

def _detect_encoding(name: str, opener: Callable[[], IO[bytes]], head: bytes) -> tuple[str, str | None]:
    """The encoding of a text file: UTF-8 (BOM or not), UTF-16 by BOM, else a Windows/Latin one."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", None
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "UTF-16"
    if b"\x00" in head:
        # UTF-16 without a BOM puts a zero in every other byte of ASCII text.
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if odd > len(head) // 4 and even == 0:
            return "utf-16-le", "UTF-16 (little-endian, no BOM)"
        if even > len(head) // 4 and odd == 0:
            return "utf-16-be", "UTF-16 (big-endian, no BOM)"
        raise InputError(f"{name}: does not look like a text file (it holds NUL bytes)")
    if _decodes(opener, "utf-8"):
        return "utf-8", None
    bad, utf8_line = _utf8_scan(opener)
    if bad is not None and utf8_line is not None:
        raise InputError(_mixed_message(name, bad, utf8_line))
    if _decodes(opener, "cp1252"):
        return "cp1252", "Windows-1252"
    return "latin-1", "Latin-1 (ISO-8859-1)"


def _decodes(opener: Callable[[], IO[bytes]], encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    with opener() as f:
        try:
            while chunk := f.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # surrogateescape's stand-ins for bytes that are not UTF-8
_WIDE_UTF8 = re.compile("[^\x00-\x7f\udc80-\udcff\ufeff]")  # a character UTF-8 needed several bytes for


def _utf8_scan(opener: Callable[[], IO[bytes]]) -> tuple[tuple[int, bytes, str] | None, int | None]:
    """Where a file stops being UTF-8: (line, the byte, that line as Windows-1252) of the first byte
    that is not UTF-8, and the first line that holds a multi-byte UTF-8 character (None: none)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    line, bad, wide, tail = 1, None, None, ""
    with opener() as f:
        while True:
            chunk = f.read(_CHUNK)
            text = decoder.decode(chunk, final=not chunk)
            if bad is None and (m := _NOT_UTF8.search(text)):
                start = text.rfind("\n", 0, m.start()) + 1
                end = text.find("\n", m.start())
                # The line began in the chunk before only if no line break precedes the byte here.
                raw = ((tail if start == 0 else "") + text[start:end if end >= 0 else len(text)]
                       ).encode("utf-8", "surrogateescape")
                bad = (line + text.count("\n", 0, m.start()),
                       m.group().encode("utf-8", "surrogateescape"), raw.decode("cp1252", "replace").strip())
            if wide is None and (m := _WIDE_UTF8.search(text)):
                wide = line + text.count("\n", 0, m.start())
            line += text.count("\n")
            tail = text[text.rfind("\n") + 1:]
            if not chunk or (bad is not None and wide is not None):
                return bad, wide


def _mixed_message(name: str, bad: tuple[int, bytes, str], utf8_line: int) -> str:
    line, byte, as_1252 = bad
    return (f"{name}: line {line}: byte 0x{byte.hex().upper()} is not UTF-8, but line {utf8_line} is UTF-8: "
            f"the file mixes two encodings (appended from two sources?), so no one encoding reads it "
            f"right; re-save line {line} as UTF-8 (as Windows-1252 it would read {as_1252[:60]!r})")


def _utf8_error(name: str, opener: Callable[[], IO[bytes]], encoding: str, near: int) -> str:
    """The message for a file declared UTF-8 (by a BOM or --encoding) that is not."""
    bad, utf8_line = _utf8_scan(opener)
    if bad is not None and utf8_line is not None:
        return _mixed_message(name, bad, utf8_line)
    if bad is not None:
        return (f"{name}: line {bad[0]}: byte 0x{bad[1].hex().upper()} is not valid UTF-8; choose the "
                f"file's encoding with --encoding")
    return (f"{name}: near line {near}: not valid {_encoding_label(encoding)}; choose the file's encoding "
            f"with --encoding")


def _mark_bad(e: UnicodeError) -> tuple[str, int]:
    if not isinstance(e, UnicodeDecodeError):
        raise e
    return _BAD_MARK, e.end


_BAD_MARK = "\ufdd0"  # a noncharacter: no text file holds it
codecs.register_error("leadpush-mark-bad", _mark_bad)


def _bad_line(opener: Callable[[], IO[bytes]], encoding: str) -> int | None:
    """The line of the first bytes the encoding cannot decode (None: it decodes): the text reader
    decodes ahead of the rows, so the row it was at is only near the place."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="leadpush-mark-bad")
    line = 1
    with opener() as f:
        while True:
            chunk = f.read(_CHUNK)
            text = decoder.decode(chunk, final=not chunk)
            at = text.find(_BAD_MARK)
            if at >= 0:
                return line + text.count("\n", 0, at)
            line += text.count("\n")
            if not chunk:
                return None


def _decode_error(name: str, opener: Callable[[], IO[bytes]], encoding: str, near: int) -> str:
    """The message for text that its encoding cannot decode: for UTF-8, the exact line and byte."""
    if codecs.lookup(encoding).name.startswith("utf-8"):
        return _utf8_error(name, opener, encoding, near)
    try:
        line = _bad_line(opener, encoding)
    except (UnicodeError, LookupError, OSError):
        line = None
    where = f"line {line}" if line is not None else f"near line {near}"
    return (f"{name}: {where}: not valid {_encoding_label(encoding)}; choose the file's encoding "
            f"with --encoding")


def _encoding_label(encoding: str) -> str:
    """An encoding as the user knows it (Python's utf-8-sig is UTF-8 that may start with a BOM)."""
    e = codecs.lookup(encoding).name
    return {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "cp1252": "Windows-1252", "utf-16": "UTF-16",
            "utf-16-le": "UTF-16", "utf-16-be": "UTF-16", "latin-1": "Latin-1", "iso8859-1": "Latin-1"
            }.get(e, encoding)


def _text(opener: Callable[[], IO[bytes]], encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(opener(), encoding=encoding, newline="")


# Fed to csv.reader after the file's last line. Outside quotes it is a record of blank cells (which
# are no row); a quoted value still open at the end of the file swallows it, which is how an
# unclosed quote is told from a value that merely spans lines.
_END = "\x0b\x1c\u3000\u2029\x1d\x0c\n"
_SEP_LINE = re.compile(r"sep=(.)\r?\n?")  # Excel's delimiter directive, alone on the first line
_HEADER_SCAN = 30  # records looked at for a header below a title block
_TITLE_CELLS = 2  # non-empty cells a title row may have
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PHONE_RUN = re.compile(r"\d{7,}")
_PHONE_CELL = re.compile(r"\+?\d{7,}")  # a cell holding a phone number and nothing else
_PHONE_SEPARATORS = re.compile(r"[\s\-.()/]")
_LONG_NUMBER = re.compile(r"\d(?:[ \-.]?\d){9,}")  # ten digits or more, perhaps grouped: a phone number


def _open_csv(name: str, opener: Callable[[], IO[bytes]], head: bytes, encoding: str | None,
              delimiter: str | None, path: str, header_row: int | None,
              header_test: Callable[[list[str]], bool] | None) -> LeadFile:
    note = None
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputError(f"{name}: unknown encoding {encoding!r}") from None
    else:
        encoding, note = _detect_encoding(name, opener, head)
    if delimiter is not None:
        delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter.lower(), delimiter)
        if len(delimiter) != 1:
            raise InputError(f"{name}: --delimiter must be one character (or 'tab'), not {delimiter!r}")

    first_line, first_no = "", 0
    with _text(opener, encoding) as text:
        try:
            for number, line in enumerate(text, start=1):
                if line.strip():
                    first_line, first_no = line, number
                    break
        except UnicodeDecodeError:
            raise InputError(_decode_error(name, opener, encoding, 1)) from None
    if not first_line:
        raise InputError(f"{name}: the file is empty")
    notes = []
    skip_to = 0  # records starting on or before this line are not the header
    sep = _SEP_LINE.fullmatch(first_line.lstrip("\ufeff"))
    if sep:
        skip_to = first_no
        if delimiter is None:
            delimiter = sep[1]
            notes.append(f"the first line {first_line.strip()!r} sets the delimiter ({_show_delimiter(delimiter)})")
    if delimiter is None:
        delimiter = _sniff_delimiter(first_line, path)

    def records(text: IO[str]) -> Iterator[tuple[list[str], int]]:
        return _records(name, csv.reader(itertools.chain(text, (_END,)), delimiter=delimiter), encoding,
                        opener, delimiter)

    with _text(opener, encoding) as text:
        header_line, header, titles = _find_header(name, records(text), header_row, header_test, skip_to)
    keys = _column_keys(name, header_line, header)
    not_lead_rows = title_rows(titles, ABOVE_HEADER if header_row is not None else "title")
    notes += title_note(titles, header_line, "on line", chosen=header_row is not None)

    def fit(cells: list[str], line: int) -> list[str]:
        """A row as wide as the header: short ones padded, empty extra cells dropped."""
        n = len(keys)
        if len(cells) > n:
            extra = [c for c in cells[n:] if c.strip()]
            if extra:
                raise InputError(
                    f"{name}: line {line}, column {n + 1}: the row has {len(cells)} cells but "
                    f"the header has {n} (extra value {extra[0][:40]!r}); quote values that "
                    f"contain {_show_delimiter(delimiter)} or fix the header")
            return cells[:n]
        return cells + [""] * (n - len(cells))

    def rows() -> Iterator[SourceRow]:
        n = len(keys)
        wide = n if n > 1 else -1  # the fast way below needs a second cell
        del not_lead_rows[len(titles):]  # footers are found again on each pass
        footers: list[tuple[list[str], int]] = []  # rows that may be a report's footer, held back
        with _text(opener, encoding) as text:
            it = records(text)
            for _cells, line in it:
                if line == header_line:
                    break
            for cells, line in it:  # the first row is a lead row whatever it holds
                yield line, cells if len(cells) == n else fit(cells, line)
                break
            for cells, line in it:
                # The common row first: as wide as the header, its second cell filled (no footer).
                if len(cells) == wide and cells[1] and not footers:
                    yield line, cells
                    continue
                if len(cells) != n:
                    cells = fit(cells, line)
                # A report footer ("Grand Totals (30 records)", "Generated By: ...") has text in the
                # first cell only, and only rows of that kind follow it; its first row reads as a
                # footer, not a name ("Sita Devi,," is a lead missing its phone: a row to fix).
                if (n == 1 or not cells[1]) and _footer_like(cells) and (footers or _footer_shaped(cells[0])):
                    footers.append((cells, line))
                    continue
                if footers:
                    yield from ((f_line, f_cells) for f_cells, f_line in footers)
                    footers.clear()
                yield line, cells
        not_lead_rows.extend((line, "footer", cells[0].strip()) for cells, line in footers)

    return LeadFile(name=name, format="csv", encoding=encoding, encoding_note=note,
                    delimiter=delimiter, columns=list(header), keys=keys, _rows=rows,
                    notes=notes, not_lead_rows=not_lead_rows)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _row_text(cells: list[Any]) -> str:
    return " | ".join(str(c).strip() for c in cells if str(c).strip())[:80]


# What a report's footer says, as opposed to a person's name: totals and counts, a notice, who or
# what generated it and when, a page number, a link, a date or time stamp.
_FOOTER_SHAPE = re.compile(
    r"(?:grand\s*|sub\s*-?)?totals?\b|\bcount\b|\d+\s+(?:records?|rows?|leads?|items?|results?)\b"
    r"|\brecords?\b|confidential|generated\b|prepared\s+(?:by|on|for)|printed\s+(?:by|on|at)"
    r"|created\s+(?:by|on|at)|exported\s+(?:by|on|at|from)|\breport\b|copyright|\u00a9|\(c\)"
    r"|all rights reserved|\bpage\s+\d+|https?://|www\.|\.(?:com|in|org|net)\b"
    r"|\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}|\d{1,2}:\d{2}|:", re.IGNORECASE)
_FOOTER_LONG = 40  # a first cell longer than this is no person's name


def _footer_shaped(text: str) -> bool:
    """Whether a text reads as a report's footer rather than a lead's name (a lead missing its
    phone must stay a row to fix, not vanish as a footer)."""
    return len(text.strip()) > _FOOTER_LONG or _FOOTER_SHAPE.search(text) is not None


def _footer_like(cells: list[Any]) -> bool:
    """Text in the first cell only, with a letter in it and nothing like a phone number (a year
    range such as 2000-2026 is not one). A cell leadpush could not read (a workbook formula saved
    without its result: it reads as empty) is a value: such a row is never a footer."""
    first = cells[0]
    if not isinstance(first, str) or not any(ch.isalpha() for ch in first) or _LONG_NUMBER.search(first):
        return False
    return not any((c != "" and not (isinstance(c, str) and c.isspace())) or hasattr(c, "message")
                   for c in cells[1:])


def without_footers(rows: Iterator[tuple[int, list[Any]]], not_lead_rows: list[tuple[int, str, str]],
                    spread: list[int] | None = None) -> Iterator[tuple[int, list[Any]]]:
    """The rows, less a report's trailing footer rows (added to not_lead_rows): the CSV reader's
    rule, for sheets (the CSV reader has it inline, on its hot path). A footer block opens with a
    row shaped like a footer (_footer_shaped); text-only rows below it belong to it. `spread`
    holds the columns of the row last read that a merged range filled (the footer test sees the
    row as the sheet holds it: a footer merged across the table is one value)."""
    footers: list[tuple[int, list[Any]]] = []
    first = True
    for number, values in rows:
        written = values
        if spread:  # the row as written: a merged range's value once, in its first cell
            written = list(values)
            for c in spread:
                written[c] = ""
        if not first and _footer_like(written) and (footers or _footer_shaped(written[0])):
            footers.append((number, values))
            continue
        first = False
        yield from footers
        footers.clear()
        yield number, values
    not_lead_rows.extend((number, "footer", str(values[0]).strip()) for number, values in footers)


def find_header(name: str, records: Iterator[tuple[list[str], int]], header_test: Callable[[list[str]], bool] | None
                ) -> tuple[int, list[str], list[tuple[list[str], int]]]:
    """(line, cells) of the header found below any title block, and the title rows (for sheets)."""
    return _find_header(name, records, None, header_test, 0)


def title_rows(titles: list[tuple[list[str], int]], kind: str = "title") -> list[tuple[int, str, str]]:
    return [(line, kind, _row_text(cells)) for cells, line in titles]


ABOVE_HEADER = "above the header row"  # the kind of not-lead row above --header-row


def above_header_row(name: str, rows: list[tuple[list[Any], int]], header_row: int, unit: str) -> None:
    """Stop when a row above --header-row looks like a lead (a cell holding a phone number and
    nothing else): it would not be sent, and nothing else would say so."""
    for cells, line in rows:
        for column, cell in enumerate(cells, start=1):
            text = _PHONE_SEPARATORS.sub("", str(cell).strip())
            if text.lower().startswith("p:"):
                text = text[2:]
            if _PHONE_CELL.fullmatch(text):
                raise InputError(
                    f"{name}: {unit} {line}, column {column}: the row is above --header-row {header_row} but "
                    f"looks like a lead ({_row_text(cells)[:60]!r}), which would not be sent; give the "
                    f"header's real {unit} with --header-row, or remove the rows above it that are not a title")


def title_note(titles: list[tuple[list[str], int]], header_at: int, where: str, chosen: bool = False) -> list[str]:
    if not titles:
        return []
    if chosen:
        return [f"--header-row {header_at}: {_count(len(titles), 'row')} above it "
                f"{'is' if len(titles) == 1 else 'are'} not read as leads (listed as not lead rows)"]
    return [f"the header is {where} {header_at}; {_count(len(titles), 'row')} above it (a title block) "
            f"{'is' if len(titles) == 1 else 'are'} not read as leads"]


def _find_header(name: str, records: Iterator[tuple[list[str], int]], header_row: int | None,
                 header_test: Callable[[list[str]], bool] | None, skip_to: int
                 ) -> tuple[int, list[str], list[tuple[list[str], int]]]:
    """(line, cells) of the header and the title rows above it.

    --header-row names the line. Otherwise the first record is the header if it maps a phone
    column (or nothing can tell); if not, the first of the next records that does is, and the
    records above it are a title block (a formatted report's name, date, filters)."""
    if header_row is not None:
        titles: list[tuple[list[str], int]] = []
        for cells, line in records:
            if line == header_row:
                above_header_row(name, titles, header_row, "line")
                return line, cells, titles
            if line > header_row:
                raise InputError(f"{name}: --header-row {header_row}: no row starts on line {header_row} "
                                 f"(it is blank, or inside the row of line {titles[-1][1] if titles else line})")
            titles.append((cells, line))
        raise InputError(f"{name}: --header-row {header_row}: the file has no row on line {header_row} or below")
    seen: list[tuple[list[str], int]] = []
    for cells, line in records:
        if line <= skip_to:
            continue
        if header_test is None or header_test(cells):
            return line, cells, seen
        seen.append((cells, line))
        # A title row holds a value or two; a row with more is a table's (the header, with a phone
        # column under a name not known): then a "Phone" value further down is no header.
        if len(seen) >= _HEADER_SCAN or sum(1 for c in cells if c.strip()) > _TITLE_CELLS:
            break
    if not seen:
        raise InputError(f"{name}: the file is empty")
    cells, line = seen[0]
    return line, cells, []


def _records(name: str, reader: Any, encoding: str, opener: Callable[[], IO[bytes]],
             delimiter: str) -> Iterator[tuple[list[str], int]]:
    """Non-blank CSV records with the line each starts on (the hot loop of every CSV command)."""
    end = 0
    last: list[str] = []  # the last record: a "whole record" has as many cells
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            if end != start:  # the record spans lines: a quoted value holds line breaks
                _check_open_quote(name, cells, start, end, delimiter, len(last or cells))
            for c in cells:
                if c and not c.isspace():
                    last = cells
                    yield cells, start
                    break
    except csv.Error as e:
        raise InputError(f"{name}: line {reader.line_num}: {e}") from None
    except UnicodeDecodeError:
        raise InputError(_decode_error(name, opener, encoding, end + 1)) from None


def _check_open_quote(name: str, cells: list[str], start: int, end: int, delimiter: str, width: int) -> None:
    """Stop at a quoted value that never closes, or that swallowed lines which are whole rows.

    csv.reader lets a quote run on over line breaks, to the end of the file if need be: the
    following leads would vanish into one cell and be sent as its text."""
    line = start
    for column, cell in enumerate(cells, start=1):
        breaks = _LINE_BREAK.split(cell)
        if len(breaks) == 1:
            continue
        if cell.endswith(_END):
            taken = end - line - 1
            raise InputError(
                f"{name}: line {line}, column {column}: a quote opens here and is never closed"
                + (f": it runs to the end of the file, taking {_count(taken, 'more line')} with it" if taken
                   else " (this is the file's last line)")
                + "; close the quote (or remove it)")
        # A line of the value that holds a whole row's delimiters and a phone number is a row
        # the quote swallowed (the line it opened on included: the rest of that row is in it); so
        # is a short row (trailing empty cells left off, as the reader accepts everywhere else):
        # a delimiter and a cell that is a phone number and nothing else.
        rows = [i for i, text in enumerate(breaks) if width > 1 and _swallowed_row(text, delimiter, width)]
        if rows:
            raise InputError(
                f"{name}: line {line}, column {column}: a quote opens here and runs on over "
                f"{_count(len(breaks) - 1, 'line break')}, taking in what looks like a whole row (line "
                f"{line + rows[0]}: {breaks[rows[0]][:50]!r}); close the quote where the value ends")
        line += len(breaks) - 1


def _has_phone_like(text: str, delimiter: str) -> bool:
    return any(_PHONE_RUN.search(_PHONE_SEPARATORS.sub("", part)) for part in text.split(delimiter))


def _swallowed_row(text: str, delimiter: str, width: int) -> bool:
    """Whether a line inside a quoted value looks like a lead row: as many delimiters as a whole
    row and a phone-like number, or (a short row) a delimiter and a cell that is only a phone."""
    delimiters = text.count(delimiter)
    if delimiters >= width - 1:
        return _has_phone_like(text, delimiter)
    return delimiters >= 1 and any(_PHONE_CELL.fullmatch(_PHONE_SEPARATORS.sub("", part.strip()))
                                   for part in text.split(delimiter))


def _column_keys(name: str, line: int, header: list[str]) -> list[str]:
    keys: list[str] = []
    seen: dict[str, int] = {}
    for i, cell in enumerate(header, start=1):
        label = cell.strip()
        if not label:
            keys.append(f"{UNNAMED_PREFIX}{i}")
            continue
        if label in seen:
            raise InputError(f"{name}: line {line}, column {i}: column {label!r} appears twice in the "
                             f"header (columns {seen[label]} and {i}); rename one")
        seen[label] = i
        keys.append(cell)
    return keys


def column_label(key: str) -> str:
    """A column key as the user reads it: its header, or "column 2 (no header)"."""
    if key.startswith(UNNAMED_PREFIX):
        return f"column {key[len(UNNAMED_PREFIX):]} (no header)"
    return key.strip()


def _sniff_delimiter(line: str, path: str) -> str:
    bare = _QUOTED.sub("", line)
    counts = {d: bare.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])  # ties: earliest in _DELIMITERS
    if counts[best]:
        return best
    return "\t" if path.lower().endswith(".tsv") else ","


def _show_delimiter(d: str) -> str:
    return {"\t": "a tab", ",": "a comma", ";": "a semicolon", "|": "a pipe"}.get(d, repr(d))


# ---------------------------------------------------------------------------- JSON

class _NotJSON(ValueError):
    """NaN, Infinity and -Infinity: Python's json reads them, but they are not JSON."""


def _refuse_constant(text: str) -> Any:
    raise _NotJSON(text)


def _exact_int(text: str) -> int | Decimal:
    try:
        return int(text)
    except ValueError:  # more digits than int() converts (4,300): no phone, but a row to refuse
        return Decimal(text)


def _json_problem(e: BaseException) -> str:
    """What is wrong with a JSON text that json could not read, in the user's words."""
    if isinstance(e, _NotJSON):
        return f"{e} is not JSON (write null, or the value in quotes)"
    if isinstance(e, RecursionError):
        return "nested too deeply (arrays or objects inside each other hundreds of levels down)"
    if isinstance(e, json.JSONDecodeError):
        return f"not valid JSON ({e.msg})"
    return f"not valid JSON ({type(e).__name__})"


_MAX_DEPTH = 100  # levels of arrays/objects inside a lead: far more than any export has, far less than
# the depth at which writing the row back out (failures file, messages) would exhaust Python's stack


def _too_deep(value: dict[str, Any]) -> bool:
    """Whether a lead object nests arrays or objects more than _MAX_DEPTH levels down."""
    stack = [(v, 2) for v in value.values() if v.__class__ is list or v.__class__ is dict]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return True
        children = item.values() if item.__class__ is dict else item
        stack.extend((c, depth + 1) for c in children if c.__class__ is list or c.__class__ is dict)
    return False


_TOO_DEEP = f"nested too deeply (arrays or objects more than {_MAX_DEPTH} levels down)"


# json's own errors, and what its number and constant hooks raise (NaN, a 10**999999999 exponent).
_JSON_ERRORS = (ValueError, ArithmeticError, RecursionError)


def _open_json(name: str, opener: Callable[[], IO[bytes]], fmt: str, encoding: str | None,
               head: bytes = b"") -> LeadFile:
    encoding = encoding or "utf-8-sig"
    # Decimal keeps a number's exact digits (a phone number 9876543210.0 is not a float).
    decoder = json.JSONDecoder(parse_float=Decimal, parse_int=_exact_int, parse_constant=_refuse_constant)
    notes: list[str] = []
    wrapped: list[Any] | None = None
    if fmt == "json" and head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
        key, wrapped = _unwrap(name, _whole_json(name, opener, encoding, decoder))
        notes.append(f"the leads are the array in member {key!r} of the file's top-level object "
                     f"({_count(len(wrapped), 'item')})")

    def rows() -> Iterator[SourceRow]:
        if wrapped is not None:
            yield from _json_items(name, wrapped, lambda i: f"item {i} of {key!r}")
            return
        with io.TextIOWrapper(opener(), encoding=encoding) as text:
            try:
                if fmt == "jsonl":
                    yield from _jsonl_rows(name, text, decoder)
                else:
                    yield from _json_array_rows(name, text, decoder)
            except UnicodeDecodeError:
                raise InputError(_json_encoding_error(name, opener, encoding)) from None

    return LeadFile(name=name, format=fmt, encoding=encoding, _rows=rows, notes=notes)


def _json_encoding_error(name: str, opener: Callable[[], IO[bytes]], encoding: str) -> str:
    if codecs.lookup(encoding).name.startswith("utf-8"):
        return _utf8_error(name, opener, encoding, 1) + " (JSON files are UTF-8)"
    return f"{name}: not valid {_encoding_label(encoding)}; JSON files must be UTF-8"


def _whole_json(name: str, opener: Callable[[], IO[bytes]], encoding: str, decoder: json.JSONDecoder) -> Any:
    with io.TextIOWrapper(opener(), encoding=encoding) as text:
        try:
            doc = text.read()
        except UnicodeDecodeError:
            raise InputError(_json_encoding_error(name, opener, encoding)) from None
    start = len(doc) - len(doc.lstrip())
    try:
        value, end = decoder.raw_decode(doc, start)
    except _JSON_ERRORS as e:
        at = getattr(e, "pos", None)
        where = f"line {doc.count(chr(10), 0, at) + 1}: " if isinstance(at, int) else ""
        raise InputError(f"{name}: {where}{_json_problem(e)}") from None
    if doc[end:].strip():
        raise InputError(f"{name}: line {doc.count(chr(10), 0, end) + 1}: unexpected text after the "
                         f"top-level object")
    return value


def _unwrap(name: str, value: dict[str, Any]) -> tuple[str, list[Any]]:
    """The one array of a wrapper object such as IndiaMART's {"CODE": 200, "RESPONSE": [...]}."""
    arrays = [k for k, v in value.items() if isinstance(v, list)]
    if len(arrays) == 1:
        return arrays[0], value[arrays[0]]
    if arrays:
        raise InputError(f"{name}: the top-level JSON object holds {len(arrays)} arrays "
                         f"({', '.join(repr(k) for k in arrays[:5])}), so which holds the leads is not "
                         f"clear; save that one alone (for example: jq '.{arrays[0]}' {name})")
    said = [f"{k} {v!r}" for k, v in value.items() if isinstance(v, (str, int, Decimal)) and len(str(v)) < 80][:4]
    raise InputError(f"{name}: a JSON lead file must be an array of objects ([{{...}}, ...]) or an object "
                     f"holding one; this object holds none" + (f" ({'; '.join(said)})" if said else "")
                     + "; for one object per line name it .jsonl")


def _json_items(name: str, items: list[Any], where: Callable[[int], str]) -> Iterator[SourceRow]:
    for index, value in enumerate(items, start=1):
        if not isinstance(value, dict):
            raise InputError(f"{name}: {where(index)}: each item must be a JSON object, not {_json_kind(value)}")
        if _too_deep(value):
            raise InputError(f"{name}: {where(index)}: {_TOO_DEEP}")
        yield index, value


def _jsonl_rows(name: str, text: IO[str], decoder: json.JSONDecoder) -> Iterator[SourceRow]:
    for line_no, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            value = decoder.decode(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{name}: line {line_no}, column {e.colno}: not valid JSON ({e.msg})") from None
        except _JSON_ERRORS as e:
            raise InputError(f"{name}: line {line_no}: {_json_problem(e)}") from None
        if isinstance(value, dict) and _too_deep(value):
            raise InputError(f"{name}: line {line_no}: {_TOO_DEEP}")
        if not isinstance(value, dict):
            raise InputError(f"{name}: line {line_no}: each line must be a JSON object, "
                             f"not {_json_kind(value)}")
        yield line_no, value


def _json_array_rows(name: str, text: IO[str], decoder: json.JSONDecoder) -> Iterator[SourceRow]:
    """Stream the objects of a top-level JSON array without holding the whole file."""
    buf, pos, lines_before, eof = "", 0, 0, False

    def where(at: int) -> str:
        line = lines_before + buf.count("\n", 0, at) + 1
        return f"line {line}"

    def fill() -> bool:
        nonlocal buf, pos, lines_before, eof
        chunk = text.read(1 << 16)
        if not chunk:
            eof = True
            return False
        lines_before += buf.count("\n", 0, pos)
        buf = buf[pos:] + chunk
        pos = 0
        return True

    def skip_ws() -> str:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf):
                return buf[pos]
            if not fill():
                return ""

    fill()
    if skip_ws() != "[":
        raise InputError(f"{name}: {where(pos)}: a JSON lead file must be an array of objects "
                         f"([{{...}}, ...]); for one object per line name it .jsonl")
    pos += 1
    index = 0
    if skip_ws() == "]":
        pos += 1
        if skip_ws():
            raise InputError(f"{name}: {where(pos)}: unexpected text after the closing ']'")
        return
    while True:
        ch = skip_ws()
        if not ch:
            raise InputError(f"{name}: {where(pos)}: the file ends inside the array (missing ']')")
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                # A number can end exactly where the buffer does while more digits follow.
                if end == len(buf) and not eof and fill():
                    continue
                break
            except json.JSONDecodeError as e:
                # An item cut off by the buffer's end: read on, up to a sane size for one lead.
                if len(buf) - pos < _MAX_ITEM and not eof and fill():
                    continue
                raise InputError(f"{name}: {where(e.pos)}: not valid JSON ({e.msg})") from None
            except _JSON_ERRORS as e:
                raise InputError(f"{name}: item {index + 1} ({where(pos)}): {_json_problem(e)}") from None
        index += 1
        if not isinstance(value, dict):
            raise InputError(f"{name}: item {index} ({where(pos)}): each item must be a JSON object, "
                             f"not {_json_kind(value)}")
        if _too_deep(value):
            raise InputError(f"{name}: item {index} ({where(pos)}): {_TOO_DEEP}")
        pos = end
        yield index, value
        ch = skip_ws()
        if ch == ",":
            pos += 1
            continue
        if ch == "]":
            pos += 1
            if skip_ws():
                raise InputError(f"{name}: {where(pos)}: unexpected text after the closing ']'")
            return
        if not ch:
            raise InputError(f"{name}: {where(pos)}: the file ends inside the array (missing ']')")
        raise InputError(f"{name}: {where(pos)}: expected ',' or ']' after item {index}")


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")
