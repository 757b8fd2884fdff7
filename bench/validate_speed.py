"""Benchmark: `leadpush validate` on a generated 1,000,000-row CSV against a bare csv.reader pass.

Run:  python bench/validate_speed.py [--rows 1000000 100000] [--keep DIR]
Prints rows/s, the ratio to the bare pass, peak memory (max RSS of each child process), and the
bytes per row that memory grows by between the two sizes (the in-file duplicate index). Each is
run --repeat times and the fastest run counts, for both sides alike.
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
    args = parser.parse_args()
    print(f"# {' '.join([Path(sys.executable).name] + sys.argv)}")
    print(f"# Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="leadpush-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
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
        ratios = sorted(r[0] / b[0] for r, b in zip(runs, bare_runs))
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


if __name__ == "__main__":
    main()
