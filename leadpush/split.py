"""validate --split: the rows that would be sent, exactly as they would be sent, for another channel."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .files import let_go, sibling_path, temporary_beside
from .mapping import FIELDS, ColumnMap
from .outcomes import ConfigError, OutputError
from .records import _AtomicFile

# Every request carries these; the other fields only where a column or a default gives them.
_ALWAYS = ("campaignName", "phoneNumber", "checkDuplicate")
_BODY_ORDER = ("campaignName", "phoneNumber") + tuple(f for f in FIELDS if f not in ("campaignName", "phoneNumber"))
# leadpush writes one kind of workbook: the valid rows of an .xls, .xlsb or .ods go to an .xlsx.
_EXT = {"csv": "csv", "xlsx": "xlsx", "json": "json", "jsonl": "jsonl", "xls": "xlsx", "xlsb": "xlsx", "ods": "xlsx"}


def split_path(input_name: str, input_format: str, *, stream: bool = False) -> Path:
    """<input name>.valid.<ext> beside the input, in the input's format (a CSV is written comma-separated)."""
    return sibling_path(input_name, "valid", _EXT[input_format], stream=stream)


def body_columns(cmap: ColumnMap, defaults: dict[str, Any]) -> list[str]:
    """The columns of a request body for this column map, in the order the body has them."""
    fields = [f for f in _BODY_ORDER if f in _ALWAYS or f in cmap.fields or defaults.get(f)
              or (f == "Name" and cmap.name_parts)]
    return fields + [sent for _, sent in cmap.passthrough]


class SplitWriter:
    """Writes request bodies as rows (CSV, XLSX) or objects (JSON, JSON Lines); moved into place on close."""

    def __init__(self, path: Path, fmt: str, columns: Callable[[], list[str]]) -> None:
        self.path = path
        self.fmt = fmt = _EXT.get(fmt, fmt)
        self.count = 0
        self._columns_of = columns
        self._columns: list[str] = []
        self._wb: Any = None
        self._ws: Any = None
        self._discarded = False
        if fmt == "xlsx":
            from .fixit import openpyxl_module  # noqa: PLC0415

            openpyxl_module()
            self._tmp = temporary_beside(path)
        else:
            self._out = _AtomicFile(path, "the valid rows")

    def write(self, body: dict[str, str]) -> None:
        try:
            self._write(body)
        except OSError as e:  # a full disk: here, or in the temporary folder a workbook's sheet is built in
            raise self._failed(e, building=True) from None

    def _failed(self, e: OSError, *, building: bool = False) -> OutputError:
        """The one-line error for a file that cannot be written; everything begun is dropped.
        `building`: while a workbook's sheet was being built in the temporary folder."""
        where = f"; a workbook's sheet is built in {tempfile.gettempdir()} first" if building and self.fmt == "xlsx" \
            else ""
        error = OutputError(f"{self.path}: the valid rows cannot be written ({e.strerror or e}{where})")
        self.discard(e)
        return error

    def discard(self, error: BaseException | None = None) -> None:
        """Drop the file begun: its temporary goes."""
        if self.fmt == "xlsx":
            ws, self._wb, self._ws = self._ws, None, None
            let_go(error, ws)
            self._tmp.unlink(missing_ok=True)
        else:
            self._out.discard()
            let_go(error)
        self._discarded = True

    def _write(self, body: dict[str, str]) -> None:
        if self.count == 0:
            self._start()
        self.count += 1
        if self.fmt == "jsonl":
            self._out.file.write(json.dumps(body, ensure_ascii=False) + "\n")
        elif self.fmt == "json":
            self._out.file.write(("[\n" if self.count == 1 else ",\n") + json.dumps(body, ensure_ascii=False))
        else:
            extra = body.keys() - set(self._columns)
            if extra:  # a body field the header lacks would be lost: never write such a file
                raise AssertionError(f"request fields {sorted(extra)} are not among the columns {self._columns}")
            values = [body.get(c, "") for c in self._columns]
            if self.fmt == "xlsx":
                from .fixit import Unstorable  # noqa: PLC0415 — with the workbook writer, an optional extra

                try:
                    self._ws.append([self._styles.cell(v or None, "@", exact=True) for v in values])
                except Unstorable as e:  # the valid rows exactly as sent, or no file: never an altered copy
                    raise ConfigError(f"{self.path}: the valid rows cannot be written as a workbook exactly as they "
                                      f"would be sent ({str(e).split(' (the input')[0]}); save the input as CSV to "
                                      f"get them as CSV") from None
            else:
                self._csv.writerow(values)

    def _start(self) -> None:
        if self.fmt in ("json", "jsonl"):
            return
        self._columns = self._columns_of()
        if self.fmt == "xlsx":
            from .fixit import CellStyles, openpyxl_module  # noqa: PLC0415

            self._wb = openpyxl_module().Workbook(write_only=True)
            self._ws = self._wb.create_sheet("Leads")
            self._styles = CellStyles(self._ws)
            self._ws.append([self._styles.cell(c, "@", "header") for c in self._columns])
        else:
            self._csv = csv.writer(self._out.file)
            self._csv.writerow(self._columns)

    def close(self, keep: bool = True) -> None:
        """Move the file into place; with no rows (or keep False) there is none, nor one left from before."""
        if self._discarded:
            return  # a write error dropped what was begun; the earlier file, if any, stays
        if not (keep and self.count > 0):
            self.discard()
            self.path.unlink(missing_ok=True)  # no rows, or a run that stopped: none left from before
            return
        try:
            if self.fmt == "xlsx":
                self._wb.save(self._tmp)
                os.replace(self._tmp, self.path)
                return
            if self.fmt == "json":
                self._out.file.write("\n]\n")
        except OSError as e:
            raise self._failed(e) from None
        self._out.commit()
