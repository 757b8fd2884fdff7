"""Benchmark: loading a do-not-call list of 5,000,000 numbers, its memory, and the check per row.

Run:  python bench/suppress_speed.py [--numbers 5000000] [--region IN --region-numbers 200000]
Each measurement runs in a fresh child process: load time (wall), the list's bytes per number
(its hash table of 8-byte keys), the child's peak RSS over that of a child that only imports leadpush, and
the CPU time `Suppression.screen` adds per row (half the rows on the list, half not). CPU time
(process time) is printed beside wall time because the machine is shared: wall time grows with
the load of other processes, CPU time much less. --repeat N keeps the fastest of N.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import datetime as dt, json, sys, time
from leadpush.outcomes import RowOutcome, Status
from leadpush.suppress import load_suppression
def hwm():  # peak RSS of this process image (ru_maxrss would include the parent's, kept across exec)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
    return int(line.split()[1]) * 1024
path, region, probe = sys.argv[1], sys.argv[2] or None, sys.argv[3]
if path == "-":
    print(json.dumps({"rss": hwm()})); sys.exit()
t, c = time.perf_counter(), time.process_time()
sup = load_suppression([path], region=region, today=dt.date(2026, 11, 27))
load, load_cpu = time.perf_counter() - t, time.process_time() - c
lst = sup.lists[0]
phones = [line.strip() for line in open(probe)]
rows = [RowOutcome(i, Status.VALID, "", p, "c") for i, p in enumerate(phones)]
t = time.process_time()
for o in rows:
    pass
empty = time.process_time() - t
t = time.process_time()
screen = sup.screen
for o in rows:
    screen(o)
per_row = (time.process_time() - t - empty) / len(rows)
hits = sum(o.status is Status.SUPPRESSED for o in rows)
print(json.dumps({"load": load, "load_cpu": load_cpu, "entries": lst.entries, "bytes": lst.table.nbytes,
                  "rss": hwm(),
                  "per_row_us": per_row * 1e6, "hits": hits, "probes": len(rows)}))
"""


def generate(path: Path, probe: Path, n: int, probes: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    numbers = rng.sample(range(6_000_000_000, 9_999_999_999), n)
    with open(path, "w") as f:
        f.write("phone\n")
        f.writelines(f"{x}\n" for x in numbers)
    with open(probe, "w") as f:
        for i in range(probes):
            f.write(f"{numbers[rng.randrange(n)] if i % 2 else rng.randrange(1_000_000_000, 5_999_999_999)}\n")


def child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--numbers", type=int, default=5_000_000)
    ap.add_argument("--probes", type=int, default=200_000)
    ap.add_argument("--region", default="IN")
    ap.add_argument("--region-numbers", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    print(f"command: python bench/suppress_speed.py --numbers {a.numbers} --probes {a.probes} "
          f"--region {a.region} --region-numbers {a.region_numbers} --repeat {a.repeat}")
    base = child("-", "", "")["rss"]
    with tempfile.TemporaryDirectory() as tmp:
        for n, region in ((a.numbers, ""), (a.region_numbers, a.region)):
            path, probe = Path(tmp) / "dnc.csv", Path(tmp) / "probe.txt"
            generate(path, probe, n, a.probes if not region else min(a.probes, 20_000))
            runs = [child(str(path), region, str(probe)) for _ in range(a.repeat)]
            r = min(runs, key=lambda x: x["load"])
            r["per_row_us"] = min(x["per_row_us"] for x in runs)
            extra = r["rss"] - base
            print(f"{'--region ' + region if region else 'no region'}: {r['entries']:,} numbers "
                  f"({path.stat().st_size / 1e6:.1f} MB) loaded in {r['load']:.2f} s wall, {r['load_cpu']:.2f} s CPU "
                  f"({r['load'] / r['entries'] * 1e6:.2f} us/number); list {r['bytes'] / r['entries']:.1f} "
                  f"bytes/number; peak RSS over a bare import {extra / 1e6:.0f} MB "
                  f"({extra / r['entries']:.0f} bytes/number, while building); "
                  f"check {r['per_row_us']:.3f} us/row (CPU) ({r['hits']}/{r['probes']} on the list)")


if __name__ == "__main__":
    main()
