"""Publish: CSV copies of the publishable tables (aggregates), safe to open in a spreadsheet.

``$ROM_DATA_DIR/csv/<schema>.<table>.csv`` (e.g. ``csv/marts.indicators.csv``), one per
table of ``schemas/warehouse.yaml`` whose audience is ``public`` (aggregates only: no
episode rows, no audit detail), read from the *published* warehouse, so they carry
exactly its suppression (small numbers blank, no therapist-level rows unless
ROM_PUBLISH_THERAPIST_LEVEL). Comma-separated, UTF-8, a header row, ``.`` as
decimal point, NULL as an empty cell, rows in the table's ``order_by`` of the spec (a COPY
without it wrote the same rows in another order from one export to the next).

Every text cell that a spreadsheet would run as a formula gets a leading apostrophe
(:func:`rom_pipeline.lib.spreadsheet.neutralise_sql`, applied to every VARCHAR column in the
COPY's SELECT); numeric columns are written as numbers and never changed.

Each file is written beside its final place and renamed over it, so a reader never
opens half a file; the files of one run replace those of the previous run one by one.
While the warehouse is encrypted at rest (ROM_WAREHOUSE_ENCRYPTION_KEY) no CSV is
written, and earlier ones are removed: a plain-text copy would undo the encryption.
"""

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from rom_pipeline.defs.sql_asset import OWNERS
from rom_pipeline.lib.spreadsheet import neutralise_sql
from rom_pipeline.lib.sqltext import literal
from rom_pipeline.lib.warehouse_spec import PublishedTable, load_spec
from rom_pipeline.lib.warehouse_reader import encryption_key as warehouse_encryption_key
from rom_pipeline.lib.warehouse_reader import open_read_only
from rom_pipeline.resources import Workspace

from rom_pipeline.paths import CSV_DIR_NAME  # noqa: E402 - re-exported: tests and run.py name it here


@dataclass
class CsvExport:
    folder: Path
    rows: dict[str, int] = field(default_factory=dict)       # file name -> data rows
    neutralised: dict[str, int] = field(default_factory=dict)  # file name -> cells given a leading '
    removed: list[str] = field(default_factory=list)
    skipped_reason: str | None = None

    @property
    def files(self) -> list[Path]:
        return [self.folder / name for name in self.rows]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def exported_tables(tables: list[PublishedTable]) -> list[PublishedTable]:
    """The publishable tables (audience public): aggregates, suppressed; never episode rows."""
    return [t for t in tables if t.audience == "public"]


def _remove_csv(folder: Path, keep: set[str]) -> list[str]:
    removed = []
    if folder.is_dir():
        for path in sorted(folder.glob("*.csv")):
            if path.name not in keep:
                path.unlink()
                removed.append(path.name)
    return removed


def write_csv_exports(warehouse: Path, folder: Path, tables: list[PublishedTable],
                      encryption_key: str | None = None) -> CsvExport:
    """Write one CSV per exported table of the published ``warehouse`` into ``folder``."""
    result = CsvExport(folder)
    if encryption_key:
        result.removed = _remove_csv(folder, keep=set())
        result.skipped_reason = ("the warehouse is encrypted at rest (ROM_WAREHOUSE_ENCRYPTION_KEY): "
                                 "no plain-text CSV copy is written")
        return result
    folder.mkdir(parents=True, exist_ok=True)
    building = folder / f".building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    con = None
    try:
        con = open_read_only(warehouse, alias="wh")
        for table in exported_tables(tables):
            schema, name = table.name.split(".")
            columns = con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'wh' "
                "AND schema_name = ? AND table_name = ? ORDER BY column_index", [schema, name]).fetchall()
            text = [c for c, t in columns if t == "VARCHAR"]
            select = ", ".join(f"{neutralise_sql(_quote(c))} AS {_quote(c)}" if t == "VARCHAR" else _quote(c)
                               for c, t in columns)
            file_name = f"{table.name}.csv"
            target = building / file_name
            order = f" ORDER BY {table.order_by}" if table.order_by else ""
            con.execute(f"COPY (SELECT {select} FROM wh.{schema}.{name}{order}) TO {literal(str(target))} "
                        "(FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"')")
            counted = con.execute(
                f"SELECT count(*){''.join(f', count(*) FILTER ({neutralise_sql(_quote(c))} <> {_quote(c)})' for c in text)} "
                f"FROM wh.{schema}.{name}").fetchone()
            result.rows[file_name] = counted[0]
            result.neutralised[file_name] = sum(counted[1:])
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    finally:
        if con is not None:
            con.close()
    for file_name in result.rows:
        os.replace(building / file_name, folder / file_name)
    building.rmdir()
    result.removed = _remove_csv(folder, keep=set(result.rows))
    return result


def _code_version() -> str:
    import hashlib

    from rom_pipeline.lib import spreadsheet

    return hashlib.sha256(Path(__file__).read_bytes() + Path(spreadsheet.__file__).read_bytes()).hexdigest()[:12]


@dg.asset(
    key=dg.AssetKey(["publish", "csv_exports"]),
    group_name="publish",
    deps=[dg.AssetKey(["publish", "warehouse"])],
    description="$ROM_DATA_DIR/csv/<schema>.<table>.csv: the publishable tables (audience public: aggregates, "
                "no episode rows) for spreadsheet users and publication, "
                "read from the published warehouse (same suppression); text cells that a spreadsheet would run "
                "as a formula get a leading apostrophe. Not written while the warehouse is encrypted.",
    owners=OWNERS,
    kinds={"csv"},
    code_version=_code_version(),
    metadata={"module": dg.MetadataValue.path("rom_pipeline/defs/publish/exports.py"),
              "rule": dg.MetadataValue.path("rom_pipeline/lib/spreadsheet.py")},
)
def csv_exports(context: dg.AssetExecutionContext, workspace: Workspace) -> dg.MaterializeResult:
    result = write_csv_exports(workspace.warehouse_path, workspace.data_path / CSV_DIR_NAME, load_spec(),
                               encryption_key=warehouse_encryption_key())
    if result.skipped_reason:
        context.log.warning(f"CSV exports not written: {result.skipped_reason}"
                            + (f"; removed {len(result.removed)} earlier file(s)" if result.removed else ""))
    else:
        context.log.info(f"wrote {len(result.rows)} CSV file(s) to {result.folder}")
    return dg.MaterializeResult(metadata={
        "folder": dg.MetadataValue.path(str(result.folder)),
        "files": len(result.rows),
        "rows": sum(result.rows.values()),
        "cells_neutralised": sum(result.neutralised.values()),
        "files_removed": len(result.removed),
        "skipped": result.skipped_reason or "",
    })
