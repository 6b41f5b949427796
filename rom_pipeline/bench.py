"""Benchmark: generate a delivery set, run the whole pipeline on it, print time and peak memory.

    ./dev bench --episodes 100000            # generate (once, cached) and run
    ./dev bench --episodes 100000 --runs 2   # the second run shows an unchanged night

Each pipeline run is a separate `rom-pipeline run` process, so its peak RSS is its own
(resource.getrusage of the children). Figures go into docs/benchmarks.md by hand, with the
command and the machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _peak_rss_mb_children() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: kB


def _timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"benchmark: {' '.join(cmd[:3])} failed with exit {proc.returncode}")
    return elapsed, _peak_rss_mb_children(), proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--concerns", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default="/tmp/rom_bench", help="where deliveries and results go")
    parser.add_argument("--runs", type=int, default=1, help="pipeline runs on the same deliveries")
    parser.add_argument("--fresh", action="store_true", help="drop earlier results before the first run")
    parser.add_argument("--no-reports", action="store_true", help="time the warehouse without the reports")
    args = parser.parse_args(argv)

    bin_dir = Path(sys.executable).parent
    workdir = Path(args.workdir) / f"{args.episodes}-{args.concerns}-{args.seed}"
    exports, data = workdir / "exports", workdir / "data"
    env = {**os.environ, "ROM_EXPORT_DIR": str(exports), "ROM_DATA_DIR": str(data), "ROM_DEMO": "1"}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    if not (exports / "reference").exists():
        elapsed, _, _ = _timed([str(bin_dir / "rom-pipeline"), "generate", "--out", str(exports), "--episodes",
                                str(args.episodes), "--concerns", str(args.concerns), "--seed", str(args.seed),
                                "--quiet"], env)
        print(f"generate: {args.episodes} episodes in {elapsed:.1f} s")
    size = sum(p.stat().st_size for p in exports.rglob("*") if p.is_file())
    print(f"deliveries: {size / 1e6:.0f} MB under {exports}")
    if args.fresh and data.exists():
        shutil.rmtree(data)
    for run in range(1, args.runs + 1):
        command = [str(bin_dir / "rom-pipeline"), "run", "--verbose"] + (["--no-reports"] if args.no_reports else [])
        elapsed, peak, out = _timed(command, env)
        steps = [line for line in out.splitlines() if line.startswith("[") and "done" in line]
        print(f"run {run}: {elapsed:.1f} s wall, peak RSS {peak:.0f} MB (max over the runs so far)")
        previous = 0.0
        for line in steps:  # per-step durations from the progress lines "[  12.3s] done   step"
            at = float(line[1:line.index("s]")])
            if at - previous >= 1.0:
                print(f"    {at - previous:6.1f} s  {line.split()[-1]}")
            previous = at
        summary = out[out.find("deliveries:"):out.find("Published:")].strip()
        print("    " + summary.replace("\n", "\n    "))
    warehouse = data / "warehouse.duckdb"
    print(f"warehouse: {warehouse.stat().st_size / 1e6:.0f} MB, work db: "
          f"{(data / 'work.duckdb').stat().st_size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
