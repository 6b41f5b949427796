"""Publish the analysts' warehouse: build a new DuckDB file beside the old one, then swap it in.

A reader holding ``warehouse.duckdb`` open keeps reading the file it opened (the
swap replaces the directory entry, not the bytes under an open handle); the
next connection sees the new warehouse whole. A run that dies before the swap
leaves the published file exactly as it was.

What is published, and how each column is described and masked, is
``schemas/warehouse.yaml``: the same file generates the data dictionary.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from rom_pipeline.paths import SCHEMAS_DIR

WAREHOUSE_SPEC = SCHEMAS_DIR / "warehouse.yaml"


@dataclass(frozen=True)
class PublishedColumn:
    name: str
    description: str
    publish_as: str | None = None


@dataclass(frozen=True)
class PublishedTable:
    name: str                 # schema.table
    description: str
    columns: tuple[PublishedColumn, ...]
    where: str | None = None
    order_by: str | None = None


def load_spec(path: Path = WAREHOUSE_SPEC) -> list[PublishedTable]:
    doc = yaml.safe_load(path.read_text())
    tables = []
    for name, spec in doc["tables"].items():
        columns = []
        for col, entry in spec["columns"].items():
            if isinstance(entry, str):
                columns.append(PublishedColumn(col, entry))
            else:
                columns.append(PublishedColumn(col, entry["description"], entry.get("publish_as")))
        tables.append(PublishedTable(name, spec["description"].strip(), tuple(columns),
                                     spec.get("where"), spec.get("order_by")))
    return tables


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class SpecMismatch(Exception):
    pass


def check_against_work(con, tables: list[PublishedTable]) -> None:
    """The spec must list exactly the columns each work table has, in order: the dictionary stays true."""
    problems = []
    for table in tables:
        schema, name = table.name.split(".")
        actual = [r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ? ORDER BY column_index", [schema, name]).fetchall()]
        documented = [c.name for c in table.columns]
        if not actual:
            problems.append(f"{table.name}: table does not exist in the work database")
        elif actual != documented:
            problems.append(f"{table.name}: columns {actual} but schemas/warehouse.yaml documents {documented}")
    if problems:
        raise SpecMismatch("; ".join(problems))


def _copy_table(con, table: PublishedTable) -> None:
    schema, _ = table.name.split(".")
    con.execute(f"CREATE SCHEMA IF NOT EXISTS pub.{schema}")
    select = ", ".join(f"{c.publish_as or c.name} AS {c.name}" for c in table.columns)
    where = f" WHERE {table.where}" if table.where else ""
    order = f" ORDER BY {table.order_by}" if table.order_by else ""
    con.execute(f"CREATE TABLE pub.{table.name} AS SELECT {select} FROM {table.name}{where}{order}")
    con.execute(f"COMMENT ON TABLE pub.{table.name} IS {_sql_text(table.description)}")
    for c in table.columns:
        con.execute(f"COMMENT ON COLUMN pub.{table.name}.{c.name} IS {_sql_text(c.description)}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_warehouse(con, target: Path, tables: list[PublishedTable], encryption_key: str | None = None) -> Path:
    """Build ``target`` anew from the work database and swap it in atomically."""
    check_against_work(con, tables)
    building = target.with_name(f".{target.name}.building")
    for leftover in (building, building.with_name(building.name + ".wal")):
        leftover.unlink(missing_ok=True)
    options = f" (ENCRYPTION_KEY {_sql_text(encryption_key)})" if encryption_key else ""
    con.execute(f"ATTACH {_sql_text(str(building))} AS pub{options}")
    try:
        for table in tables:
            _copy_table(con, table)
        con.execute("CHECKPOINT pub")
    finally:
        con.execute("DETACH pub")
    _fsync(building)
    os.replace(building, target)
    _fsync(target.parent)
    return target
