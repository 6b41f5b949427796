"""`rom-pipeline`: run the pipeline, explain a figure, generate synthetic deliveries, benchmark."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    if args.demo:
        os.environ["ROM_DEMO"] = "1"
        if not os.environ.get("ROM_PSEUDONYM_KEY"):
            print("!" * 78 + "\n! DEMO MODE: client ids are pseudonymised with the PUBLIC demo key.\n"
                  "! Use it only on synthetic data. For real deliveries set ROM_PSEUDONYM_KEY.\n" + "!" * 78,
                  flush=True)
    if args.export_dir:
        os.environ["ROM_EXPORT_DIR"] = str(Path(args.export_dir).resolve())
    if args.data_dir:
        os.environ["ROM_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if getattr(args, "full_rebuild", False):
        os.environ["ROM_FULL_REBUILD"] = "1"  # rom_pipeline.lib.concern_scope.FULL_REBUILD_ENV: this process's run
    from rom_pipeline.run import run_pipeline  # imports Dagster: keep `--help` fast

    return run_pipeline(quiet=args.quiet, reports=not args.no_reports, verbose=args.verbose)


def _rekey(args: argparse.Namespace) -> int:
    """A full run that reads every delivery made with another pseudonym key again under ROM_PSEUDONYM_KEY."""
    if not os.environ.get("ROM_PSEUDONYM_KEY"):
        print("rom-pipeline rekey: NOT started: set ROM_PSEUDONYM_KEY to the new key (the demo key is not "
              "rotated to)", file=sys.stderr)
        return 2
    os.environ["ROM_REKEY"] = "1"  # this process's run only (rom_pipeline.defs.ingest.keys.REKEY_ENV)
    args.demo = False
    return _run(args)


def _dictionary(args: argparse.Namespace) -> int:
    from rom_pipeline import dictionary

    if args.check:
        if dictionary.is_current():
            return 0
        print(f"{dictionary.DICTIONARY_PATH} is stale: run `rom-pipeline dictionary`", file=sys.stderr)
        return 1
    dictionary.write()
    print(f"wrote {dictionary.DICTIONARY_PATH}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rom-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="one full pipeline run, in-process; exit 0 only if it published, 75 if another run holds "
                    "the data dir, 2 if it refused to start, 1 if it failed")
    run.add_argument("--demo", action="store_true",
                     help="demo mode: pseudonymise with the PUBLIC demo key when ROM_PSEUDONYM_KEY is unset")
    run.add_argument("--export-dir", help="root of the deliveries (default: $ROM_EXPORT_DIR or the bundled sample)")
    run.add_argument("--data-dir", help="work and publish folder (default: $ROM_DATA_DIR or ./data)")
    run.add_argument("--quiet", action="store_true", help="only the summary")
    run.add_argument("--verbose", action="store_true", help="also a line per finished step (`done   <step>`)")
    run.add_argument("--no-reports", action="store_true",
                     help="publish the warehouse and CSV exports, leave $ROM_DATA_DIR/reports as it was (faster)")
    run.add_argument("--full-rebuild", action="store_true",
                     help="recompute every concern and publish, even when nothing changed since the last publish "
                          "(as ROM_FULL_REBUILD=1)")
    run.set_defaults(func=_run)

    rekey = commands.add_parser(
        "rekey", help="rotate the pseudonym key: one full run that reads every delivery made with another key "
                      "again from the export root under ROM_PSEUDONYM_KEY (recorded in audit.pseudonym_keys)")
    rekey.add_argument("--export-dir", help="root of the deliveries (default: $ROM_EXPORT_DIR or the bundled sample)")
    rekey.add_argument("--data-dir", help="work and publish folder (default: $ROM_DATA_DIR or ./data)")
    rekey.add_argument("--quiet", action="store_true", help="only the summary")
    rekey.add_argument("--verbose", action="store_true", help="as for run")
    rekey.add_argument("--no-reports", action="store_true", help="as for run")
    rekey.set_defaults(func=_rekey)

    dictionary = commands.add_parser("dictionary", help="regenerate docs/data-dictionary.md from schemas/")
    dictionary.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    dictionary.set_defaults(func=_dictionary)

    from rom_pipeline.bench.cli import register as register_bench
    from rom_pipeline.explain import register as register_explain

    register_bench(commands)

    register_explain(commands)

    try:
        from rom_pipeline.generate.cli import register as register_generate
    except ImportError:  # the generator is optional for running the pipeline
        register_generate = None
    if register_generate:
        register_generate(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    code = args.func(args)
    if args.command in ("run", "rekey"):
        print(f"rom-pipeline {args.command}: finished in {time.monotonic() - started:.1f} s (exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
