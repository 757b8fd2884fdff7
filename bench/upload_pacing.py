"""Benchmark: upload pacing against the sandbox with 250 ms +/- 100 ms latency, beside a plain requests loop.

Run:  python bench/upload_pacing.py [--rates 100/min 600/min 3000/min] [--seconds 120]
For each rate a sandbox process is started with that rate as its limit, and `leadpush upload` (a
separate process) sends enough rows for `--seconds` of steady state with the workers the latency
needs. Printed: achieved / configured rate, the sandbox's busiest 1 s and 60 s windows, 429s seen,
and leadpush's CPU time per row. Then the same rows through a sequential `requests.post` loop
(what a user would otherwise write), for `--loop-seconds`, against a fresh sandbox.
Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leadpush.pacing import parse_rate


def start_sandbox(rate_per_min: float, latency: float, jitter: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadpush", "sandbox", "--port", "0", "--quiet", "--token-cap", "0",
         "--rate-limit", f"{rate_per_min:g}/min", "--latency-ms", str(latency), "--jitter-ms", str(jitter),
         "--seed", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base = proc.stdout.readline().split()[-1]
    return proc, base


def write_rows(path: Path, rows: int) -> None:
    with open(path, "w") as f:
        f.write("phone,campaign\n")
        for i in range(rows):
            f.write(f"{9100000000 + i},demo_progressive\n")


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out = proc.stdout.read()
    _, _, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, out.decode()


def plain_loop(base: str, rows: int, seconds: float) -> tuple[int, int, float, float]:
    """What a user would write: one token, then requests.post row after row."""
    token = requests.post(base + "/ca_apis/CAToken/generateToken", headers={"apiKey": "demo-key"},
                          json={"userName": "demo"}).json()["token"]
    headers = {"apiKey": "demo-key", "Authorization": f"Bearer {token}"}
    sent = refused = 0
    start = time.monotonic()
    cpu_start = time.process_time()
    for i in range(rows):
        if time.monotonic() - start > seconds:
            break
        r = requests.post(base + "/ca_apis/AddCampaignData", headers=headers,
                          json={"userName": "demo", "campaignName": "demo_progressive",
                                "phoneNumber": str(9200000000 + i)})
        sent += 1
        refused += r.status_code == 429
    return sent, refused, time.monotonic() - start, time.process_time() - cpu_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", nargs="+", default=["100/min", "600/min", "3000/min"])
    parser.add_argument("--seconds", type=float, default=120.0, help="steady state per rate")
    parser.add_argument("--latency-ms", type=float, default=250.0)
    parser.add_argument("--jitter-ms", type=float, default=100.0)
    parser.add_argument("--loop-seconds", type=float, default=60.0)
    args = parser.parse_args()
    print(f"# {' '.join([Path(sys.executable).name] + sys.argv)}")
    print(f"# Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
          f"sandbox latency {args.latency_ms:g} ms +/- {args.jitter_ms:g} ms")
    folder = Path(tempfile.mkdtemp(prefix="leadpush-pacing-"))
    for text in args.rates:
        rate = parse_rate(text)
        rows = math.ceil(rate.per_second * args.seconds)
        workers = math.ceil(rate.per_second * (args.latency_ms + args.jitter_ms) / 1000) + 2
        path = folder / f"rows-{rows}.csv"
        write_rows(path, rows)
        sandbox, base = start_sandbox(rate.per_minute, args.latency_ms, args.jitter_ms)
        try:
            env = {**os.environ, "LEADPUSH_BASE_URL": base, "LEADPUSH_USERNAME": "demo",
                   "LEADPUSH_API_KEY": "demo-key", "LEADPUSH_CACHE_DIR": str(folder / "cache")}
            cmd = [sys.executable, "-m", "leadpush", "upload", str(path), "--rate", text, "--workers", str(workers),
                   "--json", "--no-failures"]
            wall, cpu, out = measure(cmd, env)
            summary = json.loads(out)
            stats = requests.get(base + "/sandbox/stats").json()
            requests.post(base + "/sandbox/reset")
            # The same command for one row: what a run costs whatever its size (start, imports, token).
            one = folder / "one-row.csv"
            write_rows(one, 1)
            _, fixed_cpu, _ = measure([*cmd[:4], str(one), *cmd[5:]], env)
            requests.post(base + "/sandbox/reset")
            loop_sent, loop_429, loop_time, loop_cpu = plain_loop(base, rows, args.loop_seconds)
        finally:
            sandbox.terminate()
            sandbox.wait()
        achieved = summary["achieved_rate_per_min"]
        print(f"\nrate {text} ({rate.per_minute:g}/min): {rows} rows, {workers} workers: "
              f"leadpush {' '.join(cmd[3:5])} --rate {text} --workers {workers}")
        print(f"  achieved        : {achieved:.1f}/min = {achieved / rate.per_minute * 100:.1f}% of configured "
              f"({summary['requests']} requests in {summary['elapsed_seconds']:.1f} s; "
              f"{summary['counts']['added']} added, {summary['counts']['failed']} failed)")
        print(f"  sandbox windows : busiest 1 s = {stats['busiest_1s']}, busiest 60 s = {stats['busiest_60s']} "
              f"(limit {rate.per_minute:g} per 60 s)")
        print(f"  429s            : {stats['requests']['AddCampaignData'].get('http-429', 0)}")
        print(f"  CPU             : {cpu:.2f} s in all = {cpu / rows * 1000:.2f} ms/row; per row beyond a one-row "
              f"run ({fixed_cpu:.2f} s): {(cpu - fixed_cpu) / (rows - 1) * 1000:.2f} ms/row")
        print(f"  plain loop      : {loop_sent} requests in {loop_time:.1f} s = {loop_sent / loop_time * 60:.1f}/min, "
              f"{loop_429} answered 429, CPU {loop_cpu / max(1, loop_sent) * 1000:.2f} ms/request")


if __name__ == "__main__":
    main()
