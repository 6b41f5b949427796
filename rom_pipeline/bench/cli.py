"""`rom-pipeline bench`: the benchmark of issue 11 (docs/benchmarks.md).

    rom-pipeline bench --tier M                        # every scenario on tier M (100,000 episodes)
    rom-pipeline bench --tier S --scenarios baseline,quiet
    rom-pipeline bench --episodes 20000 --seed 2       # a custom size

Deliveries are generated once per size and seed and reused, under --workdir (default
/tmp/rom_bench; `rm -rf /tmp/rom_bench` clears every cached set, `rm -rf /tmp/rom_bench/M-seed1`
one). The runs' data dirs are under <set>/runs/, emptied at the start of every bench. The results
are printed as Markdown tables and written beside them as <set>/results/<UTC time>.md and .json.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from . import report
from .scenarios import ORDER, Bench, duckdb_bounds
from .tiers import DEFAULT_WORKDIR, TIERS, delivery_set, ensure_deliveries, fresh_runs_dir


def _scenarios(text: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in ORDER]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"scenarios are {', '.join(ORDER)} (comma-separated); not {', '.join(unknown)}")
    return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--tier", choices=sorted(TIERS), default="S",
                      help="S: 5,000 episodes, M: 100,000, L: 1,000,000; 10 concerns, with item responses (default S)")
    size.add_argument("--episodes", type=int, metavar="N", help="a custom size instead of a tier")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--scenarios", type=_scenarios, default=list(ORDER), metavar="LIST",
                        help=f"comma-separated subset of {','.join(ORDER)} (default: all, in that order)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help=f"cached deliveries, data dirs and results (default {DEFAULT_WORKDIR})")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="write the JSON results here (default <set>/results/<UTC time>.json, beside the .md)")
    parser.add_argument("--generate-only", action="store_true", help="build (or find) the delivery set and stop")


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="benchmark: the pipeline's scenarios against a plain DuckDB baseline",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.episodes is not None and args.episodes < 10:
        print("rom-pipeline bench: --episodes must be at least 10", file=sys.stderr)
        return 2
    ds = delivery_set(None if args.episodes is not None else args.tier, args.episodes, args.seed, args.workdir)
    log = lambda text: print(text, flush=True)  # noqa: E731
    summary = ensure_deliveries(ds, log)
    log(f"deliveries: {ds.exports} ({summary['rows']:,} rows, {summary['bytes'] / 1e6:,.0f} MB); "
        f"re-delivery: {ds.redelivery}")
    if args.generate_only:
        return 0
    command = "rom-pipeline bench " + _describe(args)
    info = {"machine": report.machine(), "commit": report.git_commit(), "started": report.now(),
            "load_before": report.load(), "duckdb_bounds": duckdb_bounds()}
    fresh_runs_dir(ds)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = args.json.with_suffix("") if args.json else ds.root / "results" / stamp
    log(f"scenarios: {', '.join(s for s in ORDER if s in args.scenarios)} (runs in {ds.runs}; "
        f"results so far in {path.with_suffix('.md')})")

    def save(results, finished: bool = False) -> str:
        info.update(finished=report.now() if finished else "(still running)", load_after=report.load())
        text = report.render(ds, summary, results, command, info)
        report.write(path, text, report.as_json(ds, summary, results, command, info))
        return text

    results = Bench(ds, log, on_result=save).run(args.scenarios)
    print("\n" + save(results, finished=True))
    print(f"\nresults: {path.with_suffix('.md')} and {path.with_suffix('.json')}")
    return 0 if all(r.ok for r in results) else 1


def _describe(args: argparse.Namespace) -> str:
    size = f"--episodes {args.episodes}" if args.episodes is not None else f"--tier {args.tier}"
    return f"{size} --seed {args.seed} --scenarios {','.join(args.scenarios)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rom-pipeline bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
