"""SQL models: one file per table under ``sql/<layer>/<table>.sql``, each a single SELECT.

The runner, not the file, decides where the result goes (``CREATE OR REPLACE
TABLE <schema>.<table> AS <select>``), so a model can be read, tested and run
on its own. Parameters come from DuckDB variables (``getvariable('norm_score')``)
and ``config.*`` tables set by :func:`rom_pipeline.config.apply_parameters`.

Incremental nights (``refresh_concerns``): a per-concern table is refreshed for
some concerns only, from the same file, filtered on ``concern_id``
(``DELETE`` + ``INSERT BY NAME``, in one transaction); see
:mod:`rom_pipeline.defs.audit.pending`.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rom_pipeline.paths import PROJECT_DIR, SQL_DIR


@dataclass(frozen=True)
class SqlModel:
    layer: str
    name: str

    @property
    def path(self) -> Path:
        return SQL_DIR / self.layer / f"{self.name}.sql"

    @property
    def relative_path(self) -> str:
        return str(self.path.relative_to(PROJECT_DIR))

    def render(self, context: dict | None = None) -> str:
        """The model's SQL: the file rendered by Jinja with ``context`` (a file without Jinja
        syntax renders to itself). ``params`` in the context is the run's Parameters; models
        generated from the indicator catalogue read ``params.catalogue``."""
        return _jinja().from_string(self.path.read_text()).render(**(context or default_context()))

    @property
    def text(self) -> str:
        return self.render()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def build(self, con, schema: str | None = None, context: dict | None = None) -> int:
        """(Re)create ``<schema>.<name>`` from the model in one statement; returns its row count.
        ``context``: what the SQL is rendered with (default: the default parameters)."""
        target = f"{schema or self.layer}.{self.name}"
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema or self.layer}")
        con.execute(f"CREATE OR REPLACE TABLE {target} AS\n{self.render(context)}")
        return con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]

    def exists(self, con, schema: str | None = None) -> bool:
        return con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ?", [schema or self.layer, self.name]).fetchone()[0] > 0

    def refresh_concerns(self, con, concerns: Sequence[str], schema: str | None = None,
                         context: dict | None = None) -> tuple[int, int]:
        """Replace the rows of ``concerns`` only, from this model filtered on ``concern_id``.

        One transaction: a reader (or a crash) sees the old rows or the new ones, never
        neither. The table must exist (else use :meth:`build`). Returns (deleted, inserted).
        """
        if not concerns:
            return 0, 0
        target = f"{schema or self.layer}.{self.name}"
        in_list = ", ".join(_sql_text(c) for c in concerns)
        con.begin()
        try:
            deleted = con.execute(f"DELETE FROM {target} WHERE concern_id IN ({in_list})").fetchone()[0]
            inserted = con.execute(
                f"INSERT INTO {target} BY NAME\nSELECT * FROM (\n{self.render(context).strip().rstrip(';')}\n) AS model\n"
                f"WHERE model.concern_id IN ({in_list})").fetchone()[0]
            con.commit()
        except BaseException:
            con.rollback()
            raise
        return deleted, inserted


def default_context() -> dict:
    from rom_pipeline.config import load_parameters

    return {"params": load_parameters()}


@lru_cache(maxsize=1)
def _jinja():
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _sql_text(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"
