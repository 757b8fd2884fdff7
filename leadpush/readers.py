"""Read lead files (CSV/TSV, JSON, JSON Lines, XLSX, stdin) as a stream of (row, columns) pairs."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
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
    XLSX = "xlsx"


FORMATS = tuple(f.value for f in InputFormat)
_EXTENSIONS = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".xlsx": "xlsx", ".xlsm": "xlsx",
}
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
    delimiter: str | None = None
    columns: list[str] | None = None  # header cells as read (CSV, XLSX); None for JSON
    keys: list[str] | None = None  # the row dicts' keys for those columns (unnamed ones made unique)
    _rows: Callable[[], Iterator[SourceRow]] = field(default=None, repr=False)  # type: ignore[assignment]
    _cleanup: Callable[[], None] | None = field(default=None, repr=False)
    _opener: Callable[[], IO[bytes]] | None = field(default=None, repr=False)

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
                   stdin: IO[bytes] | None = None) -> LeadFile:
    """Open a lead file for reading; `-` means standard input. Raises InputError for the user."""
    path = str(path)
    cleanup = None
    if path == "-":
        name = "<stdin>"
        spool = tempfile.TemporaryFile()
        shutil.copyfileobj(stdin if stdin is not None else sys.stdin.buffer, spool)
        cleanup = spool.close

        def opener() -> IO[bytes]:
            spool.seek(0)
            return _NoClose(spool)
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
        if fmt is None:
            fmt = _guess_format(path, head)
        if fmt not in FORMATS:
            raise InputError(f"{name}: unknown format {fmt!r} (choose one of {', '.join(FORMATS)})")
        if fmt == "csv":
            lead_file = _open_csv(name, opener, head, encoding, delimiter, path)
        elif fmt in ("json", "jsonl"):
            lead_file = _open_json(name, opener, fmt, encoding)
        else:
            lead_file = _open_xlsx(name, opener, sheet)
    except BaseException:
        if cleanup:
            cleanup()
        raise
    lead_file._cleanup = cleanup
    lead_file._opener = opener
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


def _guess_format(path: str, head: bytes) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".xls":
        raise InputError(f"{path}: old-style .xls workbooks are not supported; save it as .xlsx or CSV")
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
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


def _text(opener: Callable[[], IO[bytes]], encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(opener(), encoding=encoding, newline="")


def _open_csv(name: str, opener: Callable[[], IO[bytes]], head: bytes, encoding: str | None,
              delimiter: str | None, path: str) -> LeadFile:
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

    first_line = ""
    with _text(opener, encoding) as text:
        try:
            for line in text:
                if line.strip():
                    first_line = line
                    break
        except UnicodeDecodeError as e:
            raise InputError(f"{name}: line 1: not valid {encoding} ({e.reason}); try --encoding") from None
    if not first_line:
        raise InputError(f"{name}: the file is empty")
    if delimiter is None:
        delimiter = _sniff_delimiter(first_line, path)

    header_line, header = 0, None
    with _text(opener, encoding) as text:
        for cells, line in _records(name, csv.reader(text, delimiter=delimiter), encoding):
            header_line, header = line, cells
            break
    if header is None:
        raise InputError(f"{name}: the file is empty")
    keys = _column_keys(name, header_line, header)

    def rows() -> Iterator[SourceRow]:
        n = len(keys)
        with _text(opener, encoding) as text:
            records = _records(name, csv.reader(text, delimiter=delimiter), encoding)
            next(records, None)  # the header
            for cells, line in records:
                if len(cells) == n:
                    yield line, cells
                    continue
                if len(cells) > n:
                    extra = [c for c in cells[n:] if c.strip()]
                    if extra:
                        raise InputError(
                            f"{name}: line {line}, column {n + 1}: the row has {len(cells)} cells but "
                            f"the header has {n} (extra value {extra[0][:40]!r}); quote values that "
                            f"contain {_show_delimiter(delimiter)} or fix the header")
                    cells = cells[:n]
                else:
                    cells = cells + [""] * (n - len(cells))
                yield line, cells

    return LeadFile(name=name, format="csv", encoding=encoding, encoding_note=note,
                    delimiter=delimiter, columns=list(header), keys=keys, _rows=rows)


def _records(name: str, reader: Any, encoding: str) -> Iterator[tuple[list[str], int]]:
    """Non-blank CSV records with the line each starts on (the hot loop of every CSV command)."""
    end = 0
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            for c in cells:
                if c and not c.isspace():
                    yield cells, start
                    break
    except csv.Error as e:
        raise InputError(f"{name}: line {reader.line_num}: {e}") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{name}: near line {end + 1}: not valid {encoding} ({e.reason}); "
                         f"choose the file's encoding with --encoding") from None


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

def _open_json(name: str, opener: Callable[[], IO[bytes]], fmt: str, encoding: str | None) -> LeadFile:
    encoding = encoding or "utf-8-sig"
    # Decimal keeps a number's exact digits (a phone number 9876543210.0 is not a float).
    decoder = json.JSONDecoder(parse_float=Decimal)

    def rows() -> Iterator[SourceRow]:
        with io.TextIOWrapper(opener(), encoding=encoding) as text:
            try:
                if fmt == "jsonl":
                    yield from _jsonl_rows(name, text, decoder)
                else:
                    yield from _json_array_rows(name, text, decoder)
            except UnicodeDecodeError as e:
                raise InputError(f"{name}: not valid {encoding} ({e.reason}); JSON files must be UTF-8") from None

    return LeadFile(name=name, format=fmt, encoding=encoding, _rows=rows)


def _jsonl_rows(name: str, text: IO[str], decoder: json.JSONDecoder) -> Iterator[SourceRow]:
    for line_no, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            value = decoder.decode(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{name}: line {line_no}, column {e.colno}: not valid JSON ({e.msg})") from None
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
        index += 1
        if not isinstance(value, dict):
            raise InputError(f"{name}: item {index} ({where(pos)}): each item must be a JSON object, "
                             f"not {_json_kind(value)}")
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


# ---------------------------------------------------------------------------- XLSX

def _open_xlsx(name: str, opener: Callable[[], IO[bytes]], sheet: str | None) -> LeadFile:
    try:
        import openpyxl  # noqa: PLC0415 — optional extra
    except ImportError:
        raise InputError(f"{name}: reading .xlsx needs the xlsx extra: pip install 'leadpush[xlsx]'") from None

    def load() -> Any:
        f = opener()
        try:
            wb = openpyxl.load_workbook(f, read_only=True, data_only=True)
        except Exception as e:  # openpyxl raises many kinds for a broken workbook
            f.close()
            raise InputError(f"{name}: not a readable .xlsx workbook ({type(e).__name__}: {e})") from None
        if sheet is None:
            ws = wb.worksheets[0]
        elif sheet in wb.sheetnames:
            ws = wb[sheet]
        else:
            wb.close()
            f.close()
            raise InputError(f"{name}: no sheet named {sheet!r} (sheets: {', '.join(wb.sheetnames)})")
        return f, wb, ws

    def sheet_rows() -> Iterator[tuple[int, list[Any]]]:
        f, wb, ws = load()
        try:
            for number, cells in enumerate(ws.iter_rows(values_only=True), start=1):
                values = [_cell(v) for v in cells]
                if any(v != "" for v in values):
                    yield number, values
        finally:
            wb.close()
            f.close()

    header_row, header = 0, None
    for number, values in sheet_rows():
        header_row, header = number, [str(v) for v in values]
        break
    if header is None:
        raise InputError(f"{name}: the sheet is empty")
    while header and header[-1] == "":
        header.pop()
    keys = _column_keys(name, header_row, header)

    def rows() -> Iterator[SourceRow]:
        n = len(keys)
        first = True
        for number, values in sheet_rows():
            if first:
                first = False
                continue
            if len(values) > n:
                extra = [v for v in values[n:] if v != ""]
                if extra:
                    raise InputError(f"{name}: row {number}, column {n + 1}: a value outside the "
                                     f"header's columns ({str(extra[0])[:40]!r}); give the column a header")
            values = values[:n] + [""] * (n - len(values))
            yield number, values

    return LeadFile(name=name, format="xlsx", columns=header, keys=keys, _rows=rows)


def _cell(value: Any) -> Any:
    """A spreadsheet cell as leadpush sees it: exact digits for whole numbers, dates as dates."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date()
        return value
    if isinstance(value, (dt.date, dt.time)):
        return value
    return str(value)
