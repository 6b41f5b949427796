"""Publish the analysts' warehouse: build a new DuckDB file beside the old one, then swap it in.

On an incremental night the new file starts as a byte copy of the published one (which is never
opened for writing) and only what changed is written into it: the pending concerns' rows of the
per-concern tables, this run's rows of the audit trail, and the small cross-concern tables whole
(:class:`Increment`). Everything else builds the file anew.

A reader holding ``warehouse.duckdb`` open keeps reading the file it opened (the
swap replaces the directory entry, not the bytes under an open handle); the
next connection sees the new warehouse whole. A run that dies before the swap
leaves the published file exactly as it was; a build that fails (a full disk)
removes its half-built file. The pipeline never opens ``warehouse.duckdb`` for
writing (docs/reliability.md: tests/test_faults.py, tests/test_readers.py).

Encryption at rest: with ``ROM_WAREHOUSE_ENCRYPTION_KEY`` the new file is written
with DuckDB's ``ENCRYPTION_KEY`` (AES-GCM-256). DuckDB 2.0 writes encrypted files
only with the OpenSSL crypto of its ``httpfs`` extension; without it publishing
fails with :class:`EncryptionUnavailable` (never an unencrypted file instead).
Reading an encrypted warehouse needs no extension.

Test hook: ``ROM_FAULT_INJECT`` = ``mid_build`` / ``before_swap`` / ``after_swap``
ends the process (``os._exit(137)``, like SIGKILL: nothing is cleaned up) at that
point of publishing. Only tests set it (tests/test_faults.py).

What is published, and how each column is described and masked, is
``schemas/warehouse.yaml``: the same file generates the data dictionary.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rom_pipeline.lib.concern_batches import batched, in_batch
from rom_pipeline.lib.sqltext import literal
from rom_pipeline.lib.warehouse_spec import PublishedTable

FAULT_ENV = "ROM_FAULT_INJECT"
FAULT_POINTS = ("mid_build", "before_swap", "after_swap")


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


def _select(table: PublishedTable, condition: str | None = None) -> str:
    """The published rows of ``table`` (masked, filtered, ordered), optionally only those meeting ``condition``."""
    select = ", ".join(f"{c.publish_as or c.name} AS {c.name}" for c in table.columns)
    conditions = [f"({c})" for c in (table.where, condition) if c]
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    order = f" ORDER BY {table.order_by}" if table.order_by else ""
    return f"SELECT {select} FROM {table.name}{where}{order}"


# A table ordered by concern first is copied a batch of whole concerns at a time, in concern order,
# once it holds more rows than this: the same order as one statement, but each sort holds one batch.
# At tier L (2 GB limit) sorting staging.item_responses' 280 million rows in one statement spilled
# 9.1 GiB, the largest spill of the night (issue 11).
PUBLISH_BATCH_ROWS = 20_000_000


def _concern_batches(con, table: PublishedTable) -> list[list[str | None]]:
    """The batches of concerns ``table`` is copied in; one batch of everything when small or not
    ordered by concern first."""
    if (table.order_by or "").split(",")[0].strip() != "concern_id":
        return []
    sizes = dict(con.execute(f"SELECT concern_id, count(*) FROM {table.name} GROUP BY ALL").fetchall())
    return batched(sizes, PUBLISH_BATCH_ROWS) if sum(sizes.values()) > PUBLISH_BATCH_ROWS else []


def _copy_table(con, table: PublishedTable, replace: bool = False) -> None:
    schema, _ = table.name.split(".")
    con.execute(f"CREATE SCHEMA IF NOT EXISTS pub.{schema}")
    if replace:
        con.execute(f"DROP TABLE IF EXISTS pub.{table.name}")
    batches = _concern_batches(con, table)
    if not batches:
        con.execute(f"CREATE TABLE pub.{table.name} AS {_select(table)}")
    else:
        con.execute(f"CREATE TABLE pub.{table.name} AS {_select(table, 'false')}")
        for batch in batches:
            con.execute(f"INSERT INTO pub.{table.name} {_select(table, in_batch('concern_id', batch))}")
    con.execute(f"COMMENT ON TABLE pub.{table.name} IS {literal(table.description)}")
    for c in table.columns:
        con.execute(f"COMMENT ON COLUMN pub.{table.name}.{c.name} IS {literal(c.description)}")


@dataclass(frozen=True)
class Increment:
    """Publish by patching a copy of the published file instead of building it anew.

    Valid only when the published file is the previous publish of this work database with the same
    code and publish settings (the caller checks: :func:`rom_pipeline.defs.publish.assets.increment_for`).
    ``per_concern`` tables get the rows of ``concerns`` replaced (the other concerns' rows are the
    same in the work database as in the published file); ``appended`` tables (the audit trail, which
    only grows) get this run's rows; every other table is copied whole, as in a full publish.
    """

    run_id: str
    concerns: tuple[str, ...]
    per_concern: frozenset[str]
    appended: frozenset[str]

    def how(self, table: str) -> str:
        if table in self.per_concern:
            return "concerns"
        if table in self.appended:
            return "appended"
        return "whole"


# A patched copy keeps the space of deleted rows and dropped tables for reuse; once more than this
# share of its blocks is free, the file is built anew instead (compact).
MAX_FREE_SHARE = 0.5


def _patch_table(con, table: PublishedTable, increment: Increment) -> None:
    how = increment.how(table.name)
    if how == "whole":
        _copy_table(con, table, replace=True)
    elif how == "concerns":
        if increment.concerns:
            concerns = ", ".join(literal(c) for c in increment.concerns)
            con.execute(f"DELETE FROM pub.{table.name} WHERE concern_id IN ({concerns})")
            con.execute(f"INSERT INTO pub.{table.name} {_select(table, f'concern_id IN ({concerns})')}")
    else:
        con.execute(f"DELETE FROM pub.{table.name} WHERE run_id = {literal(increment.run_id)}")  # an earlier attempt
        con.execute(f"INSERT INTO pub.{table.name} {_select(table, f'run_id = {literal(increment.run_id)}')}")


def _free_share(con) -> float:
    total, free = con.execute("SELECT total_blocks, free_blocks FROM pragma_database_size() "
                              "WHERE database_name = 'pub'").fetchone()
    return free / total if total else 0.0


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EncryptionUnavailable(RuntimeError):
    pass


ENCRYPTION_HELP = (
    "ROM_WAREHOUSE_ENCRYPTION_KEY is set, but this DuckDB cannot write encrypted files: DuckDB 2.0 encrypts "
    "only with the OpenSSL crypto of its httpfs extension, which is not installed here. Install it once "
    "(`python -c \"import duckdb; duckdb.sql('INSTALL httpfs')\"` on a machine that can reach DuckDB's "
    "extension repository, or copy httpfs.duckdb_extension into ~/.duckdb/extensions/<version>/<platform>/), "
    "or unset ROM_WAREHOUSE_ENCRYPTION_KEY and rely on disk encryption. Nothing was published.")


def _fault(point: str) -> None:
    """Test hook: die here, as a SIGKILL would, when ROM_FAULT_INJECT names this point."""
    if os.environ.get(FAULT_ENV) == point:
        os._exit(137)


def load_secure_crypto(con) -> bool:
    """Load httpfs (OpenSSL crypto) if it is installed; never downloads. True when loaded.

    Without this, DuckDB's ATTACH ... (ENCRYPTION_KEY) tries to download httpfs by itself
    (autoinstall): turned off here, the pipeline makes no network connection.
    """
    import duckdb

    con.execute("SET autoinstall_known_extensions = false")
    try:
        con.execute("LOAD httpfs")
        return True
    except duckdb.Error:
        return False


def can_write_encrypted() -> bool:
    """Whether this DuckDB can write an encrypted database (tried on a throw-away file with a dummy key)."""
    import tempfile

    import duckdb

    with tempfile.TemporaryDirectory() as folder:
        con = duckdb.connect()
        try:
            load_secure_crypto(con)
            con.execute(f"ATTACH {literal(str(Path(folder) / 'probe.duckdb'))} AS probe "
                        "(ENCRYPTION_KEY 'probe-key-not-a-secret')")
            con.execute("DETACH probe")
            return True
        except duckdb.Error:
            return False
        finally:
            con.close()


def _attach_building(con, building: Path, encryption_key: str | None) -> None:
    import duckdb

    if not encryption_key:
        con.execute(f"ATTACH {literal(str(building))} AS pub")
        return
    load_secure_crypto(con)
    try:
        con.execute(f"ATTACH {literal(str(building))} AS pub (ENCRYPTION_KEY {literal(encryption_key)})")
    except duckdb.Error as exc:
        message = str(exc).replace(encryption_key, "***")  # never let the key reach a log
        if "crypto module" in message:
            raise EncryptionUnavailable(ENCRYPTION_HELP) from None
        raise EncryptionUnavailable(f"cannot create the encrypted warehouse: {message}") from None


def _detach_quietly(con) -> None:
    """DETACH after a failure; its own error (e.g. the disk is still full) must not hide the first."""
    try:
        con.execute("DETACH pub")
    except Exception:  # noqa: BLE001
        pass


def _remove_building(building: Path) -> None:
    for leftover in (building, building.with_name(building.name + ".wal")):
        leftover.unlink(missing_ok=True)


def publish_warehouse(con, target: Path, tables: list[PublishedTable], encryption_key: str | None = None,
                      finalise: Callable[[object, str], None] | None = None,
                      increment: Increment | None = None, report: dict | None = None) -> Path:
    """Build ``target`` from the work database and swap it in atomically.

    Anew, or (``increment``) as a copy of the published file with only what changed replaced:
    either way the new file is complete before it is renamed over the old one.
    ``finalise(con, "pub")`` runs after the tables are copied, before the file is
    closed: the audit trail marks the run published in the copy (the work database
    says so only once the swap is done). ``report["mode"]`` says how the file was made.
    """
    report = {} if report is None else report
    check_against_work(con, tables)
    building = target.with_name(f".{target.name}.building")
    _remove_building(building)  # a run that died while building left it
    if increment is not None and not target.is_file():
        increment = None
    report["mode"] = "anew" if increment is None else "patched"
    try:
        if increment is not None:
            import shutil

            shutil.copyfile(target, building)  # the bytes of the published file; it is never opened for writing
        _attach_building(con, building, encryption_key)
        if increment is not None and _free_share(con) > MAX_FREE_SHARE:
            con.execute("DETACH pub")
            _remove_building(building)
            increment = None
            report["mode"] = f"anew (more than {MAX_FREE_SHARE:.0%} of the published file was free space)"
            _attach_building(con, building, encryption_key)
        try:
            for i, table in enumerate(tables):
                if increment is None:
                    _copy_table(con, table)
                else:
                    _patch_table(con, table, increment)
                if i == 0:
                    _fault("mid_build")
            if finalise is not None:
                finalise(con, "pub")
            con.execute("CHECKPOINT pub")
        except BaseException:
            _detach_quietly(con)
            raise
        con.execute("DETACH pub")
        _fsync(building)
    except BaseException:
        _remove_building(building)  # e.g. a full disk: leave no half-built file behind
        raise
    _fault("before_swap")
    os.replace(building, target)
    _fsync(target.parent)
    _fault("after_swap")
    return target
