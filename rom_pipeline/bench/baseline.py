"""Run the bench's baseline, ``baseline.sql``: the pipeline's computation as one plain DuckDB script.

    python -m rom_pipeline.bench.baseline EXPORT_ROOT [--database FILE] [--memory-limit 4GB]

It finds each concern's newest delivery (``manifest.json``: concern_id, exported_at), hands the
script the CSV files of those deliveries and the rule parameters (``apply_parameters``, as the
pipeline does), runs it and prints one line of counts. The result (``episode_outcomes``,
``indicators``) is written to ``--database`` (default: in memory). Same DuckDB settings as the
pipeline's workspace (memory limit, all cores), spilling under the database's folder.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb

SQL = Path(__file__).with_name("baseline.sql")
FILES = ("locations", "therapists", "episodes", "measurements", "item_responses")


def current_deliveries(export_root: Path) -> dict[str, Path]:
    """concern_id -> folder of its newest delivery (by exported_at, then folder, as the pipeline settles)."""
    newest: dict[str, tuple[str, str, Path]] = {}
    for manifest_path in export_root.rglob("manifest.json"):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        key = (manifest["exported_at"], str(manifest_path.parent.relative_to(export_root)), manifest_path.parent)
        concern = manifest["concern_id"]
        if concern not in newest or key[:2] > newest[concern][:2]:
            newest[concern] = key
    return {concern: entry[2] for concern, entry in sorted(newest.items())}


def run_baseline(export_root: Path, database: str = ":memory:", memory_limit: str = "4GB",
                 temp_directory: Path | None = None) -> duckdb.DuckDBPyConnection:
    """Run baseline.sql on the current deliveries under ``export_root``; the open connection holds the result."""
    from rom_pipeline.config import apply_parameters, load_parameters

    deliveries = current_deliveries(Path(export_root))
    if not deliveries:
        raise SystemExit(f"baseline: no manifest.json under {export_root}")
    con = duckdb.connect(database)
    con.execute(f"SET memory_limit = '{memory_limit}'")
    if temp_directory is not None:
        con.execute("SET temp_directory = ?", [str(temp_directory)])
    con.execute("SET preserve_insertion_order = false")
    apply_parameters(con, load_parameters())
    con.execute("CREATE OR REPLACE TEMP TABLE deliveries (concern_id VARCHAR, directory VARCHAR)")
    con.executemany("INSERT INTO deliveries VALUES (?, ?)", [(c, str(d)) for c, d in deliveries.items()])
    for name in FILES:
        con.execute(f"SET VARIABLE files_{name} = ?", [[str(d / f"{name}.csv") for d in deliveries.values()]])
    for table in ("episode_outcomes", "indicators"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(SQL.read_text(encoding="utf-8"))
    return con


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rom_pipeline.bench.baseline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export_root", type=Path)
    parser.add_argument("--database", default=":memory:", help="DuckDB file for the result (default: in memory)")
    parser.add_argument("--memory-limit", default="4GB")
    args = parser.parse_args(argv)
    temp = Path(args.database).parent / "duckdb_tmp" if args.database != ":memory:" else None
    if args.database != ":memory:":
        Path(args.database).unlink(missing_ok=True)
    con = run_baseline(args.export_root, args.database, args.memory_limit, temp)
    episodes, closed = con.execute("SELECT count(*), count(*) FILTER (WHERE is_closed) FROM episode_outcomes").fetchone()
    figures = con.execute("SELECT count(*) FROM indicators").fetchone()[0]
    con.close()
    print(f"baseline: {episodes:,} episodes ({closed:,} closed), {figures:,} indicator figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
