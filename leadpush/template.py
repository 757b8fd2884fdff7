"""An empty lead file with the headers a profile expects and one example row, to hand to whoever prepares lists."""

from __future__ import annotations

import csv
import datetime as dt
from enum import StrEnum
from pathlib import Path

from .checks import CampaignType
from .mapping import field_name
from .outcomes import ConfigError
from .settings import RunSettings

TEXT = "@"  # Excel's Text number format: what is typed stays as typed (no 9.87654E+09)
TEXT_ROWS = 10_000  # rows below the header formatted as Text, for the lists pasted in later


class TemplateFormat(StrEnum):
    XLSX = "xlsx"
    CSV = "csv"


def template_columns(s: RunSettings) -> list[tuple[str, str]]:
    """(header, CloudAgent field or custom field) for each column the profile expects, in order.

    The profile's map comes first, as written; then each field a row needs and no default gives.
    """
    columns = [(header, field_name(target)) for header, target in s.map_options.items() if target]
    have = {field for _, field in columns}
    dropped = {header for header, target in s.map_options.items() if not target}
    # Name is only a nicety: not added when the profile's map drops a column of that name.
    needed = ["phoneNumber"] + ([] if "Name" in dropped else ["Name"])
    if not s.campaign:
        needed.append("campaignName")
    if s.campaign_type == CampaignType.AGENT_WISE and not s.agent_id:
        needed.append("agentId")
    if s.campaign_type == CampaignType.SKILL_WISE and not s.skill:
        needed.append("skill")
    for field in needed:
        if field not in have:
            columns.insert(0, (field, field)) if field == "phoneNumber" else columns.append((field, field))
    return columns


def example_value(field: str, s: RunSettings, today: dt.date) -> str:
    if field == "phoneNumber":
        return example_phone(s.region)
    examples = {
        "Name": "Asha Rao", "campaignName": "Your campaign", "agentId": "agent1", "skill": "sales",
        "priority": "1", "action": "START", "checkDuplicate": "TRUE",
        "expiryDate": (today + dt.timedelta(days=30)).isoformat(),
    }
    return examples.get(field, "")


def example_phone(region: str | None) -> str:
    if not region:
        return "9876543210"
    from .checks import _phonenumbers  # noqa: PLC0415

    pn = _phonenumbers()
    number = pn.example_number_for_type(region.upper(), pn.PhoneNumberType.MOBILE)
    return str(number.national_number) if number is not None else "9876543210"


def template_format(path: Path, fmt: TemplateFormat | None) -> TemplateFormat:
    if fmt is not None:
        return fmt
    return TemplateFormat.CSV if path.suffix.lower() in (".csv", ".txt") else TemplateFormat.XLSX


def write_template(path: Path, fmt: TemplateFormat, s: RunSettings, *, today: dt.date) -> list[str]:
    """Write the template (never over an existing file); the headers written."""
    columns = template_columns(s)
    headers = [h for h, _ in columns]
    example = [example_value(field, s, today) for _, field in columns]
    if path.exists():
        raise ConfigError(f"{path}: already exists; choose another with -o")
    above: list[list[str]] = [[] for _ in range((s.header_row or 1) - 1)]  # blank rows above the header
    try:
        if fmt is TemplateFormat.CSV:
            # The profile's encoding and delimiter, so the file passes the profile it was made from;
            # otherwise utf-8-sig: Excel opens non-ASCII headers correctly; leadpush's reader strips the BOM.
            delimiter = {"tab": "\t", "\\t": "\t"}.get((s.delimiter or ",").lower(), s.delimiter or ",")
            try:
                text = _csv_text(above + [headers, example], delimiter)
                data = text.encode(s.encoding or "utf-8-sig")
            except UnicodeEncodeError:
                raise ConfigError(f"{path}: the headers cannot be written in the profile's encoding "
                                  f"{s.encoding}") from None
            except LookupError:
                raise ConfigError(f"{path}: unknown encoding {s.encoding!r}") from None
            with open(path, "xb") as f:
                f.write(data)
        else:
            _write_xlsx(path, headers, example, [i for i, (_, fl) in enumerate(columns) if fl == "phoneNumber"],
                        sheet=s.sheet, above=len(above))
    except OSError as e:
        raise ConfigError(f"{path}: cannot be written ({e.strerror})") from None
    return headers


def _csv_text(rows: list[list[str]], delimiter: str) -> str:
    import io  # noqa: PLC0415

    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    return out.getvalue()


def _write_xlsx(path: Path, headers: list[str], example: list[str], text_columns: list[int], *,
                sheet: str | None = None, above: int = 0) -> None:
    try:
        import openpyxl  # noqa: PLC0415 — optional extra
        from openpyxl.styles import Font  # noqa: PLC0415
        from openpyxl.utils import get_column_letter  # noqa: PLC0415
    except ImportError:
        raise ConfigError(f"{path}: writing .xlsx needs the xlsx extra: pip install 'leadpush[xlsx]' "
                          f"(or use --format csv)") from None
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet or "Leads"  # the profile's sheet, so the template is read from where the profile looks
    for _ in range(above):
        ws.append([])
    ws.append(headers)
    ws.append(example)
    for cell in ws[above + 1]:
        cell.font = Font(bold=True)
    for i in text_columns:
        letter = get_column_letter(i + 1)
        ws.column_dimensions[letter].number_format = TEXT  # cells typed in later, beyond the rows below
        ws.column_dimensions[letter].width = 18
        for row in range(above + 2, above + TEXT_ROWS + 2):
            ws.cell(row=row, column=i + 1).number_format = TEXT
    ws.freeze_panes = f"A{above + 2}"
    with open(path, "xb") as f:  # never over a file that appeared meanwhile
        wb.save(f)
