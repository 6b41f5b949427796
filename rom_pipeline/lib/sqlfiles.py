"""SQL models: one file per table under ``sql/<layer>/<table>.sql``, each a single SELECT.

The runner, not the file, decides where the result goes (``CREATE OR REPLACE
TABLE <schema>.<table> AS <select>``), so a model can be read, tested and run
on its own. Parameters come from DuckDB variables (``getvariable('norm_score')``)
and ``config.*`` tables set by :func:`rom_pipeline.config.apply_parameters`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

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

    @property
    def text(self) -> str:
        return self.path.read_text()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def build(self, con, schema: str | None = None) -> int:
        """(Re)create ``<schema>.<name>`` from the model in one statement; returns its row count."""
        target = f"{schema or self.layer}.{self.name}"
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema or self.layer}")
        con.execute(f"CREATE OR REPLACE TABLE {target} AS\n{self.text}")
        return con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
