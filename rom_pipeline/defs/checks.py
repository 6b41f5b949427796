"""The one factory for SQL asset checks, with one metadata vocabulary.

A check (:class:`rom_pipeline.lib.model_checks.CheckSpec`, declared in a model's sidecar
or, for a Python asset, in its module) is a query for the rows that break a rule; it
passes when there are none. Its severity decides what a failure does:

- ``ERROR``: blocking; nothing downstream of the asset runs, nothing is published.
- ``WARN``: recorded in Dagster (and shown as a warning); the figures are published anyway.

Metadata of every evaluation: ``failing_rows`` (the count), ``severity``, ``sql`` (the
query, as run), ``sql_file`` when the query is a file, and ``sample`` (up to
``SAMPLE_ROWS`` failing rows) only for tables without person-level rows: never a client's
or a therapist's row in Dagster's metadata.
"""
import dagster as dg

from rom_pipeline.lib.model_checks import CheckSpec
from rom_pipeline.resources import Workspace

SAMPLE_ROWS = 5
SEVERITY = {"ERROR": dg.AssetCheckSeverity.ERROR, "WARN": dg.AssetCheckSeverity.WARN}


def _table_exists(con, table: str) -> bool:
    schema, name = table.split(".")
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                       "AND schema_name = ? AND table_name = ?", [schema, name]).fetchone()[0] > 0


def _markdown_table(cursor) -> str:
    header = [d[0] for d in cursor.description]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in cursor.fetchall()]
    return "\n".join(lines)


def evaluate(con, spec: CheckSpec) -> tuple[int, dict]:
    """(failing rows, metadata) of ``spec`` on an open work-database connection."""
    metadata: dict = {"severity": spec.severity, "sql": dg.MetadataValue.md(f"```sql\n{spec.sql.strip()}\n```")}
    if spec.sql_file:
        metadata["sql_file"] = dg.MetadataValue.path(spec.sql_file)
    missing = [t for t in spec.requires if not _table_exists(con, t)]
    if missing:
        return 0, {"failing_rows": 0, **metadata, "note": f"not evaluated: no {', '.join(missing)}"}
    failing = spec.failing_rows(con)
    metadata = {"failing_rows": failing, **metadata}
    if failing and spec.sample:
        metadata["sample"] = dg.MetadataValue.md(_markdown_table(con.execute(
            f"SELECT * FROM (\n{spec.sql.strip().rstrip(';')}\n) AS failing LIMIT {SAMPLE_ROWS}")))
    return failing, metadata


def asset_check(spec: CheckSpec) -> dg.AssetChecksDefinition:
    """A Dagster asset check running ``spec`` on the work database (``run_id`` set as a DuckDB variable)."""

    @dg.asset_check(asset=dg.AssetKey(spec.table.split(".")), name=spec.name, description=spec.description,
                    blocking=spec.blocking)
    def _check(context: dg.AssetCheckExecutionContext, workspace: Workspace) -> dg.AssetCheckResult:
        with workspace.connect() as con:
            con.execute("SET VARIABLE run_id = ?", [context.run.run_id])
            failing, metadata = evaluate(con, spec)
        return dg.AssetCheckResult(passed=failing == 0, severity=SEVERITY[spec.severity], metadata=metadata)

    return _check
