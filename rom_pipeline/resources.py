"""Dagster resources, configured from the environment (ROM_EXPORT_DIR, ROM_DATA_DIR, ...)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dagster as dg
import duckdb

from rom_pipeline.config import Parameters, apply_parameters, load_parameters
from rom_pipeline.lib.warehouse_reader import encryption_key, open_read_only
from rom_pipeline.paths import DEFAULT_DATA_DIR, SAMPLE_EXPORT_DIR, data_dir_from_env

WORK_DB_NAME = "work.duckdb"
DEFAULT_MEMORY_LIMIT = "4GB"
# What bounds the pipeline's memory and spill (docs/operations.md, "Memory and disk").
MEMORY_LIMIT_ENV = "ROM_DUCKDB_MEMORY_LIMIT"
THREADS_ENV = "ROM_DUCKDB_THREADS"
MAX_TEMP_SIZE_ENV = "ROM_DUCKDB_MAX_TEMP_SIZE"
WAREHOUSE_DB_NAME = "warehouse.duckdb"


class Workspace(dg.ConfigurableResource):
    """The pipeline's private DuckDB work database and the paths around it.

    Only the pipeline opens ``work.duckdb``; analysts read ``warehouse.duckdb``,
    which publishing swaps in whole. ``memory_limit`` and ``threads`` bound DuckDB.
    """

    data_dir: str = str(DEFAULT_DATA_DIR)
    export_dir: str = str(SAMPLE_EXPORT_DIR)
    parameters_file: str = ""
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    threads: int = 0  # 0: DuckDB's default (all cores)
    max_temp_size: str = ""  # "": DuckDB's default (90% of the free space of the temp directory's disk)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def work_db_path(self) -> Path:
        return self.data_path / WORK_DB_NAME

    @property
    def warehouse_path(self) -> Path:
        return self.data_path / WAREHOUSE_DB_NAME

    def parameters(self) -> Parameters:
        return load_parameters(self.parameters_file or None)

    @contextmanager
    def open_warehouse(self, alias: str = "warehouse") -> Iterator[duckdb.DuckDBPyConnection]:
        """The published warehouse, read-only, with the encryption key of the environment if any."""
        con = open_read_only(self.warehouse_path, encryption_key(), alias)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the work database with the parameters applied.

        Inside a run of the nightly job, the first connection takes the data dir's run lock
        (:mod:`rom_pipeline.runlock`): a second run fails here, before DuckDB's own lock error.
        """
        from rom_pipeline.runlock import hold_for_current_run

        self.data_path.mkdir(parents=True, exist_ok=True)
        hold_for_current_run(self.data_path)
        spill = self.data_path / "duckdb_tmp"
        con = duckdb.connect(str(self.work_db_path), config={
            "memory_limit": self.memory_limit, "temp_directory": str(spill),
            **({"threads": self.threads} if self.threads else {}),
            **({"max_temp_directory_size": self.max_temp_size} if self.max_temp_size else {}),
        })
        try:
            apply_parameters(con, self.parameters())
            yield con
        finally:
            con.close()


def resolved_paths() -> tuple[Path, Path]:
    """(export root, data dir) as the environment sets them, for messages outside Dagster."""
    return Path(os.environ.get("ROM_EXPORT_DIR") or SAMPLE_EXPORT_DIR), data_dir_from_env()


def workspace_from_env() -> Workspace:
    return Workspace(
        data_dir=dg.EnvVar("ROM_DATA_DIR") if os.environ.get("ROM_DATA_DIR") else str(DEFAULT_DATA_DIR),
        export_dir=dg.EnvVar("ROM_EXPORT_DIR") if os.environ.get("ROM_EXPORT_DIR") else str(SAMPLE_EXPORT_DIR),
        parameters_file=dg.EnvVar("ROM_PARAMETERS") if os.environ.get("ROM_PARAMETERS") else "",
        memory_limit=os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT,
        threads=_threads_from_env(),
        max_temp_size=os.environ.get(MAX_TEMP_SIZE_ENV, ""),
    )


def _threads_from_env() -> int:
    value = os.environ.get(THREADS_ENV, "")
    if not value:
        return 0
    try:
        threads = int(value)
    except ValueError:
        raise ValueError(f"{THREADS_ENV}={value!r} is not a whole number of threads") from None
    if threads < 0:
        raise ValueError(f"{THREADS_ENV} must be 0 (all cores) or more, not {threads}")
    return threads


class PseudonymKey(dg.ConfigurableResource):
    """The secret for client-id pseudonyms (ROM_PSEUDONYM_KEY), or the public demo key in demo mode."""

    key: str = ""
    demo: bool = False

    def key_bytes(self, log=None) -> bytes:
        from rom_pipeline.lib.pseudonym import DEMO_KEY, check_key

        if self.key:
            return check_key(self.key)
        if self.demo:
            if log:
                log("DEMO MODE: client ids are pseudonymised with the PUBLIC demo key. "
                    "Never run real client data this way: set ROM_PSEUDONYM_KEY.")
            return DEMO_KEY.encode()
        return check_key(None)


def pseudonym_key_from_env() -> PseudonymKey:
    demo = os.environ.get("ROM_DEMO", "") not in ("", "0", "false")
    if os.environ.get("ROM_PSEUDONYM_KEY"):
        return PseudonymKey(key=dg.EnvVar("ROM_PSEUDONYM_KEY"), demo=demo)
    return PseudonymKey(key="", demo=demo)
