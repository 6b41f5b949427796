"""Opening a published DuckDB file read-only: the one place that knows how, and where the key comes from.

The published warehouse may be encrypted at rest (``ROM_WAREHOUSE_ENCRYPTION_KEY``,
README "Encryption at rest"); DuckDB then opens it only through ``ATTACH ... (ENCRYPTION_KEY
..., READ_ONLY)``. Every reader (the triggers, the CSV exports, the reports, ``explain``,
the run summary) opens it with :func:`open_read_only`; :func:`encryption_key` is the only
code that reads the variable (publishing uses it too, to write the file encrypted).
Reading an encrypted file needs no extension; the key never reaches a log or an error here.
"""
from __future__ import annotations

import os
from pathlib import Path

import duckdb

from rom_pipeline.lib.sqltext import literal

ENCRYPTION_KEY_ENV = "ROM_WAREHOUSE_ENCRYPTION_KEY"


def encryption_key() -> str | None:
    """The warehouse's encryption key from the environment, or None (an unencrypted warehouse)."""
    return os.environ.get(ENCRYPTION_KEY_ENV) or None


def attach_options(encryption_key: str | None, read_only: bool = True) -> str:
    """The options of ``ATTACH '<file>' AS ... (<options>)``."""
    options = ["READ_ONLY"] if read_only else []
    if encryption_key:
        options.append(f"ENCRYPTION_KEY {literal(encryption_key)}")
    return ", ".join(options)


def open_read_only(path: Path | str, encryption_key: str | None = None,
                   alias: str = "warehouse") -> duckdb.DuckDBPyConnection:
    """A new in-memory connection with ``path`` attached read-only as ``alias`` and in use.

    Attached rather than opened, so that an encrypted file opens too and the pipeline never
    holds a lock that blocks the swap of a new warehouse. The caller closes the connection.
    """
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {literal(str(path))} AS {alias} ({attach_options(encryption_key)})")
        con.execute(f"USE {alias}")
    except BaseException:
        con.close()
        raise
    return con
