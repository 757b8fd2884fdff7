"""Benchmark: memory and time to write a fix-it failures workbook of N rows (leadpush/fixit.py).

Run:  python bench/fixit_memory.py [--rows 20000 200000]
Each size runs in its own process, which writes N invalid rows (every one with a marked cell and
a comment, the worst case) through FixitWriter; the parent reports its wall time, the workbook's
size and the child's peak RSS (wait4 rusage), then the growth in bytes per row between sizes.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys
from collections import Counter
from pathlib import Path
from leadpush.causes import Problem
from leadpush.fixit import FixitWriter
from leadpush.outcomes import RowOutcome, Status

rows, path = int(sys.argv[1]), Path(sys.argv[2])
columns = ["id", "Phone Number", "Full Name", "Campaign", "Priority", "Expiry Date", "City"]
w = FixitWriter(path, columns=columns, keys=columns)
for i in range(rows):
    phone = f"9.8{i % 1000:03d}E+09"
    p = Problem("phone.scientific", f"phone number {phone!r} is in scientific notation, so the spreadsheet "
                                    f"has already lost its last digits; format the column as text and export the "
                                    f"file again")
    w.write(RowOutcome(i + 2, Status.INVALID, p, phone, "demo", source=[
        f"{i:07d}", phone, f"Name {i}", "demo", str(i % 100), "2030-12-25", "Pune"], cause=p.cause, problems=(p,)))
w.close(Counter({Status.INVALID: rows}))
"""


def measure(rows: int, folder: Path) -> tuple[float, int, int]:
    path = folder / f"failures-{rows}.xlsx"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(rows), str(path)])
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"the child for {rows} rows failed")
    size = path.stat().st_size
    path.unlink()
    return wall, usage.ru_maxrss * 1024, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 200_000])
    args = parser.parse_args()
    print(f"# {' '.join([Path(sys.executable).name] + sys.argv)}")
    print(f"# Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    peaks = {}
    with tempfile.TemporaryDirectory(prefix="leadpush-fixit-bench-") as folder:
        for rows in args.rows:
            wall, rss, size = measure(rows, Path(folder))
            peaks[rows] = rss
            print(f"{rows:>9,} rows: {wall:6.1f} s ({rows / wall:8,.0f} rows/s)  workbook {size / 1e6:6.1f} MB  "
                  f"peak RSS {rss / 1e6:6.1f} MB")
    if len(peaks) >= 2:
        (big, big_rss), (small, small_rss) = sorted(peaks.items(), reverse=True)[:2]
        print(f"memory growth {small:,} -> {big:,} rows: {(big_rss - small_rss) / (big - small):.0f} bytes/row")


if __name__ == "__main__":
    main()
