"""Benchmark: `leadpush validate` on a generated 1,000,000-row CSV against a bare csv.reader pass.

Run:  python bench/validate_speed.py [--rows 1000000 100000] [--keep DIR]
Prints rows/s, the ratio to the bare pass, peak memory (max RSS of each child process), and the
bytes per row that memory grows by between the two sizes (the in-file duplicate index). Each is
run --repeat times and the fastest run counts, for both sides alike.

Workbooks:  python bench/validate_speed.py --workbook [--workbook-rows 100000 1000000] [--old-rows 10000]
The same leads as CSV and as XLSX (written as Excel writes it: shared strings, dates as styled
serial numbers), both validated end to end, interleaved, best of --repeat; the XLSX's peak memory
for each size; and .xls and .ods copies of --old-rows leads (converted by LibreOffice, if
installed) validated, timed and compared with the CSV's counts.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE = """
import csv, sys
n = 0
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    for row in csv.reader(f):
        n += 1
print(n)
"""


def generate(path: Path, rows: int, seed: int = 7, *, filled: bool = False) -> None:
    """A realistic export: ids, names, phones in several styles, priorities, dates, a few bad rows."""
    rng = random.Random(seed)
    first = ["Asha", "Ravi", "Meera", "Arjun", "Fatima", "Kiran", "Neha", "Vikram", "José", "Zoë"]
    last = ["Rao", "Kumar", "Iyer", "Mehta", "Shaikh", "Das", "Singh", "Nair", "Fernandes", "Müller"]
    cities = ["Pune", "Bengaluru", "Delhi", "Mumbai", "Kolkata", "Chennai", "Kochi"]
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("id,Full Name,Phone Number,Campaign,Priority,Expiry Date,City"
                + (",Action,checkDuplicate,Skill,Agent ID\n" if filled else "\n"))
        for i in range(rows):
            n = 9000000000 + rng.randrange(999_999_999)
            style = i % 10
            phone = (f"+91 {str(n)[:5]} {str(n)[5:]}" if style == 0 else f"{str(n)[:3]}-{str(n)[3:6]}-{str(n)[6:]}"
                     if style == 1 else str(n))
            if i % 997 == 0:
                phone = "9.87654E+09"  # a bad row now and then
            priority = "" if i % 3 and not filled else str(rng.randrange(1, 100))
            expiry = ("" if i % 4 and not filled else
                      f"20{rng.randrange(27, 35)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}")
            campaign = "demo_progressive" if i % 5 else "demo_ivr"
            extra = (f",{rng.choice(('START', 'STOP'))},{rng.choice(('TRUE', 'FALSE'))},sales,agent{i % 20}"
                     if filled else "")
            f.write(f"{i},{rng.choice(first)} {rng.choice(last)},{phone},{campaign},{priority},{expiry},"
                    f"{rng.choice(cities)}{extra}\n")


def write_xlsx(csv_path: Path, path: Path) -> None:
    """The CSV's rows as an XLSX the way Excel writes one: text in sharedStrings.xml, whole numbers
    as numbers, ISO dates as date-formatted serial numbers."""
    import csv
    import datetime as dt
    import zipfile
    from xml.sax.saxutils import escape

    strings: dict[str, int] = {}
    epoch = dt.date(1899, 12, 30)

    def col(i: int) -> str:
        return chr(65 + i)

    def cells(r: int, values: list[str]) -> str:
        out = []
        for i, v in enumerate(values):
            if v == "":
                continue
            ref = f"{col(i)}{r}"
            if v.isdigit() and len(v) < 16 and r > 1:
                out.append(f'<c r="{ref}"><v>{v}</v></c>')
            elif r > 1 and len(v) == 10 and v[4] == "-" and v[7] == "-":
                out.append(f'<c r="{ref}" s="1"><v>{(dt.date.fromisoformat(v) - epoch).days}</v></c>')
            else:
                out.append(f'<c r="{ref}" t="s"><v>{strings.setdefault(v, len(strings))}</v></c>')
        return f'<row r="{r}">{"".join(out)}</row>'

    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("xl/worksheets/sheet1.xml", "w") as sheet, open(csv_path, newline="", encoding="utf-8") as f:
            sheet.write(f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet {ns}><sheetData>'.encode())
            batch = []
            for r, values in enumerate(csv.reader(f), start=1):
                batch.append(cells(r, values))
                if len(batch) == 10_000:
                    sheet.write("".join(batch).encode())
                    batch = []
            sheet.write(("".join(batch) + "</sheetData></worksheet>").encode())
        z.writestr("xl/sharedStrings.xml", f'<sst {ns} count="{len(strings)}" uniqueCount="{len(strings)}">' +
                   "".join(f"<si><t>{escape(s)}</t></si>" for s in strings) + "</sst>")
        z.writestr("xl/styles.xml", f'<styleSheet {ns}><fonts count="1"><font/></fonts><fills count="1"><fill/>'
                   '</fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf/></cellStyleXfs>'
                   '<cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="14" applyNumberFormat="1"/></cellXfs>'
                   '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
                   '</styleSheet>')
        z.writestr("xl/workbook.xml", f'<workbook {ns} xmlns:r="{rel}"><sheets><sheet name="Leads" sheetId="1" '
                   'r:id="rId1"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels", '<Relationships xmlns="http://schemas.openxmlformats.org/package/'
                   f'2006/relationships"><Relationship Id="rId1" Type="{rel}/worksheet" '
                   f'Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{rel}/sharedStrings" '
                   f'Target="sharedStrings.xml"/><Relationship Id="rId3" Type="{rel}/styles" '
                   'Target="styles.xml"/></Relationships>')
        z.writestr("[Content_Types].xml", '<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                   'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
                   'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
                   '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
                   'officedocument.spreadsheetml.sheet.main+xml"/></Types>')
        z.writestr("_rels/.rels", '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
                   f'relationships"><Relationship Id="rId1" Type="{rel}/officeDocument" '
                   'Target="xl/workbook.xml"/></Relationships>')


def measure(argv: list[str]) -> tuple[float, float, int, str]:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, out.decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 100_000])
    parser.add_argument("--keep", type=Path, help="folder to keep the generated files in")
    parser.add_argument("--filled", action="store_true",
                        help="every optional field filled on every row (priority, expiry, action, "
                             "checkDuplicate, skill, agent)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each; the fastest counts (the VM is noisy)")
    parser.add_argument("--workbook", action="store_true", help="the workbook rows instead of the CSV ones")
    parser.add_argument("--workbook-rows", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="XLSX sizes: the first is timed against its CSV, each gets its peak memory")
    parser.add_argument("--old-rows", type=int, default=10_000, help="rows of the .xls and .ods copies")
    args = parser.parse_args()
    print(f"# {' '.join([Path(sys.executable).name] + sys.argv)}")
    print(f"# Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="leadpush-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.workbook:
        workbooks(folder, args)
        args.rows = []
    peaks = {}
    for rows in args.rows:
        path = folder / f"leads-{rows}{'-filled' if args.filled else ''}.csv"
        if not path.exists():
            generate(path, rows, filled=args.filled)
        size = path.stat().st_size
        cmd = [sys.executable, "-m", "leadpush", "validate", str(path), "--table", "none", "--no-failures",
               "--json"]
        bare_runs, runs = [], []
        for _ in range(args.repeat):  # interleaved, so that both sides meet the same machine
            bare_runs.append(measure([sys.executable, "-c", BARE, str(path)]))
            runs.append(measure(cmd))
        bare_wall, bare_cpu, bare_rss, _ = min(bare_runs)
        wall, cpu, rss, out = min(runs)
        ratios = sorted(r[0] / b[0] for r, b in zip(runs, bare_runs, strict=True))
        peaks[rows] = rss
        print(f"\n{rows:,} rows ({size / 1e6:.1f} MB): {' '.join(cmd[1:])}")
        print(f"  bare csv.reader pass : {bare_wall:6.2f} s  {rows / bare_wall:12,.0f} rows/s  peak {bare_rss / 1e6:6.1f} MB")
        print(f"  leadpush validate    : {wall:6.2f} s  {rows / wall:12,.0f} rows/s  peak {rss / 1e6:6.1f} MB"
              f"  cpu {cpu:.2f} s")
        print(f"  ratio to bare pass   : {wall / bare_wall:.2f}x (fastest over fastest; run by run: "
              f"{', '.join(f'{r:.2f}' for r in ratios)})")
        print(f"  summary              : {out.strip()[:160]}")
    if len(peaks) >= 2:
        (big, big_rss), (small, small_rss) = sorted(peaks.items(), reverse=True)[:2]
        print(f"\nmemory growth {small:,} -> {big:,} rows: {(big_rss - small_rss) / (big - small):.0f} bytes/row")
    if not args.keep:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


def workbooks(folder: Path, args: argparse.Namespace) -> None:
    import json
    import shutil

    def validate(path: Path) -> list[str]:
        return [sys.executable, "-m", "leadpush", "validate", str(path), "--table", "none", "--no-failures", "--json"]

    def counts(out: str) -> dict[str, int]:
        return {k: v for k, v in json.loads(out)["counts"].items() if v}

    for i, rows in enumerate(args.workbook_rows):
        csv_path, xlsx = folder / f"leads-{rows}.csv", folder / f"leads-{rows}.xlsx"
        if not csv_path.exists():
            generate(csv_path, rows)
        if not xlsx.exists():
            write_xlsx(csv_path, xlsx)
        repeat = args.repeat if i == 0 else 1
        csv_runs, xlsx_runs = [], []
        for _ in range(repeat):  # interleaved
            csv_runs.append(measure(validate(csv_path)))
            xlsx_runs.append(measure(validate(xlsx)))
        c, x = min(csv_runs), min(xlsx_runs)
        same = counts(c[3]) == counts(x[3])
        print(f"\n{rows:,} rows: CSV {csv_path.stat().st_size / 1e6:.1f} MB, XLSX {xlsx.stat().st_size / 1e6:.1f} MB "
              f"(best of {repeat}, interleaved)")
        print(f"  validate CSV  : {c[0]:6.2f} s  {rows / c[0]:10,.0f} rows/s  peak {c[2] / 1e6:7.1f} MB")
        print(f"  validate XLSX : {x[0]:6.2f} s  {rows / x[0]:10,.0f} rows/s  peak {x[2] / 1e6:7.1f} MB")
        print(f"  XLSX / CSV    : {x[0] / c[0]:.2f}x (run by run: "
              f"{', '.join(f'{b[0] / a[0]:.2f}' for a, b in zip(csv_runs, xlsx_runs, strict=True))}); "
              f"same counts: {same} {counts(x[3])}")
    rows = args.old_rows
    csv_path, xlsx = folder / f"leads-{rows}.csv", folder / f"leads-{rows}.xlsx"
    if not csv_path.exists():
        generate(csv_path, rows)
    if not xlsx.exists():
        write_xlsx(csv_path, xlsx)
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if not soffice:
        print("\n.xls/.ods: skipped (LibreOffice is not installed)")
        return
    expected = counts(measure(validate(csv_path))[3])
    for fmt in ("xls", "ods"):
        target = folder / f"leads-{rows}.{fmt}"
        if not target.exists():
            with tempfile.TemporaryDirectory() as profile:
                subprocess.run([soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to",
                                fmt, "--outdir", str(folder), str(xlsx)], check=True, capture_output=True)
        runs = [measure(validate(target)) for _ in range(3)]
        wall, _, rss, out = min(runs)
        print(f"\n{rows:,} rows as .{fmt} ({target.stat().st_size / 1e6:.1f} MB): validate {wall:.2f} s "
              f"({rows / wall:,.0f} rows/s), peak {rss / 1e6:.1f} MB; same counts as the CSV: "
              f"{counts(out) == expected} {counts(out)}")


if __name__ == "__main__":
    main()
