"""The one factory that turns a SQL model file into a Dagster asset.

Asset key = ``[layer, table]`` = the DuckDB table it builds. The asset body is
thin by design: run the model, record metadata. Business rules live in the SQL.
"""

from typing import Sequence

import dagster as dg

from rom_pipeline.lib.sqlfiles import SqlModel
from rom_pipeline.resources import Workspace

OWNERS = ["team:rom-data-engineering"]


def table_schema(con, table: str) -> dg.TableSchema:
    schema, name = table.split(".")
    rows = con.execute(
        """SELECT column_name, data_type, comment FROM duckdb_columns()
           WHERE database_name = current_database() AND schema_name = ? AND table_name = ?
           ORDER BY column_index""", [schema, name]).fetchall()
    return dg.TableSchema(columns=[
        dg.TableColumn(name=col, type=typ, description=comment or None) for col, typ, comment in rows
    ])


def table_metadata(con, table: str) -> dict:
    """Row count and column schema of a built table, for its materialisation."""
    return {
        "dagster/row_count": con.execute(f"SELECT count(*) FROM {table}").fetchone()[0],
        "dagster/column_schema": table_schema(con, table),
        "dagster/table_name": table,
    }


def model_metadata(model: SqlModel) -> dict:
    return {
        "sql_file": dg.MetadataValue.path(model.relative_path),
        "sql_sha256": model.sha256,
    }


def sql_model_asset(
    model: SqlModel,
    *,
    deps: Sequence[dg.AssetKey | str | Sequence[str]],
    description: str,
    kinds: Sequence[str] = ("duckdb", "sql"),
    column_lineage: dg.TableColumnLineage | None = None,
) -> dg.AssetsDefinition:
    key = dg.AssetKey([model.layer, model.name])

    @dg.asset(
        key=key,
        deps=[d if isinstance(d, dg.AssetKey) else dg.AssetKey(d) for d in deps],
        group_name=model.layer,
        description=description,
        owners=OWNERS,
        kinds=set(kinds),
        code_version=model.sha256[:12],
        metadata=model_metadata(model),
    )
    def _build(context: dg.AssetExecutionContext, workspace: Workspace) -> dg.MaterializeResult:
        table = f"{model.layer}.{model.name}"
        with workspace.connect() as con:
            model.build(con)
            metadata = {**table_metadata(con, table), **model_metadata(model)}
        if column_lineage is not None:
            metadata["dagster/column_lineage"] = column_lineage
        return dg.MaterializeResult(metadata=metadata)

    return _build
