"""The ``generate`` subcommand: argument parsing and a readable report of what was written."""
from __future__ import annotations

import argparse
import sys
import time

from .deliveries import DEFAULT_EXPORT_DATE, generate_deliveries

DESCRIPTION = ("Write realistic synthetic deliveries (export contract 1.0) for several concerns, plus the "
               "reference inputs for the concern benchmark. Same arguments, same bytes.")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``generate`` to a ``rom-pipeline`` argument parser's subcommands."""
    parser = subparsers.add_parser("generate", help="write synthetic deliveries", description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="export root to write into")
    parser.add_argument("--concerns", type=int, default=3, metavar="N", help="concerns that deliver (default 3)")
    parser.add_argument("--episodes", type=int, default=3000, metavar="N",
                        help="episodes in total, split unevenly over the concerns (default 3000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--export-date", default=DEFAULT_EXPORT_DATE, metavar="YYYY-MM-DD",
                        help="date of the nightly export; episodes span the 3 years before "
                             f"(default {DEFAULT_EXPORT_DATE})")
    parser.add_argument("--defect-rate", type=float, default=0.0, metavar="SHARE",
                        help="share of rows given a realistic defect, e.g. 0.01 (default 0: clean)")
    parser.add_argument("--total-only-share", type=float, default=0.15, metavar="SHARE",
                        help="share of SCL90 measurements delivered as a total without items (default 0.15)")
    parser.add_argument("--no-items", action="store_true",
                        help="deliver totals only and no item_responses.csv (much smaller and faster)")
    parser.add_argument("--extra-reference-concerns", type=int, default=20, metavar="N",
                        help="concerns in the reference inputs that deliver no ROM data (default 20)")
    parser.add_argument("--include-seed-concern", action="store_true",
                        help="add seed 001's concern (C900, 2011-2013 and the comparative 2010) to the reference inputs")
    parser.add_argument("--truth", metavar="FILE",
                        help="also write every episode's SCL90 course by construction (improving, unchanged, "
                             "deteriorating) to FILE, outside the export root: the ground truth of the "
                             "not-on-track back-test (docs/feedback.md); the deliveries stay the same bytes")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        summary = generate_deliveries(
            args.out, concerns=args.concerns, episodes=args.episodes, seed=args.seed,
            export_date=args.export_date, defect_rate=args.defect_rate, total_only_share=args.total_only_share,
            items=not args.no_items, extra_reference_concerns=args.extra_reference_concerns,
            include_seed_concern=args.include_seed_concern, progress=None if args.quiet else sys.stderr,
            truth=args.truth)
    except ValueError as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary, time.perf_counter() - started))
    return 0


def format_summary(summary: dict, seconds: float) -> str:
    lines = []
    for delivery in summary["concerns"]:
        rows = ", ".join(f"{name.removesuffix('.csv')} {entry['rows']:,}" for name, entry in delivery["files"].items())
        lines.append(f"{delivery['concern_id']} {delivery['concern_name']}: {rows}  -> {delivery['directory']}")
    reference = ", ".join(f"{name} {entry['rows']:,}" for name, entry in summary["reference"].items())
    lines.append(f"reference: {reference}")
    if summary["defects"]:
        lines.append(f"defects injected ({summary['defects_total']:,}):")
        lines += [f"  {key}: {count:,}" for key, count in summary["defects"].items()]
    else:
        lines.append("defects injected: none")
    total_rows = sum(summary["rows"].values())
    lines.append(f"{total_rows:,} data rows in {seconds:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rom_pipeline.generate", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
