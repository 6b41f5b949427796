"""The one factory that turns a SQL model file into a Dagster asset.

Asset key = ``[layer, table]`` = the DuckDB table it builds. Its upstream assets are
the tables its rendered SQL reads (:attr:`rom_pipeline.lib.sqlfiles.SqlModel.reads`);
its description, refresh mode and column lineage come from the sidecar
``sql/<layer>/<table>.yml``. The asset body is thin by design: run the model, record
metadata. Business rules live in the SQL.

``refresh: per_concern`` marks a table whose rows of one concern depend only on that
concern's delivery: on an incremental night it is refreshed for the pending
concerns only (:mod:`rom_pipeline.lib.concern_scope`), and a full rebuild builds it one
concern at a time (:meth:`SqlModel.build_by_concern`: memory bounded by the largest concern). Cross-concern tables
(``refresh: cross_concern``, the default) are always rebuilt whole. Every asset that
writes DuckDB runs in the ``duckdb_writer`` pool (one writer, docs/operations.md).
"""

from typing import Sequence

import dagster as dg

from rom_pipeline.lib.concern_scope import ConcernScope, delivered_concerns, read_scope
from rom_pipeline.lib.sqlfiles import ModelSpecError, SqlModel, default_context
from rom_pipeline.resources import Workspace

OWNERS = ["team:rom-data-engineering"]
# Concurrency pool of every asset that writes the work database: limit it to 1 (docs/operations.md).
DUCKDB_POOL = "duckdb_writer"


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


def refresh_mode(per_concern: bool) -> dict:
    """Definition metadata: how the asset refreshes its table."""
    return {"rom/refresh": "per_concern" if per_concern else "cross_concern"}


def refresh_metadata(con, table: str, scope: ConcernScope | None, rows: tuple[int, int] | None = None) -> dict:
    """Materialisation metadata saying what was recomputed: everything, or which concerns."""
    if scope is None:
        return {"refresh": "full (cross-concern table)"}
    if rows is None:  # rebuilt whole
        concerns = [r[0] for r in con.execute(
            f"SELECT DISTINCT concern_id FROM {table} WHERE concern_id IS NOT NULL ORDER BY 1").fetchall()]
        return {"refresh": "full", "refresh_reason": scope.reason or "full", "concerns_recomputed": len(concerns),
                "concerns_recomputed_list": dg.MetadataValue.json(concerns)}
    return {"refresh": "incremental", "refresh_reason": scope.reason,
            "concerns_recomputed": len(scope.concerns),
            "concerns_recomputed_list": dg.MetadataValue.json(list(scope.concerns)),
            "rows_deleted": rows[0], "rows_inserted": rows[1]}


def model_context(workspace: Workspace) -> dict:
    """What a model is rendered with in a run: the run's parameters (the workspace's override file)."""
    return default_context(workspace.parameters())


def build_model(con, model: SqlModel, per_concern: bool, context: dict | None = None) -> dict:
    """Build ``model``'s table (whole, or for the pending concerns only); returns refresh metadata."""
    table = model.table
    if not per_concern:
        model.build(con, context=context)
        return refresh_metadata(con, table, None)
    scope = read_scope(con)
    if scope.full or not model.exists(con):
        if not scope.full:
            scope = ConcernScope(full=True, reason=f"{table} did not exist yet")
        model.build_by_concern(con, delivered_concerns(con), context=context)
        return refresh_metadata(con, table, scope)
    return refresh_metadata(con, table, scope, model.refresh_concerns(con, scope.concerns, context=context))


def column_lineage(model: SqlModel) -> dg.TableColumnLineage | None:
    """The sidecar's ``column_lineage`` (column -> [schema.table.column, ...]) as Dagster's type."""
    declared = model.spec.get("column_lineage")
    if not declared:
        return None
    deps = {}
    for column, sources in declared.items():
        deps[column] = []
        for source in sources:
            schema, table, upstream_column = source.split(".")
            if (schema, table) not in model.reads:
                raise ModelSpecError(f"{model.spec_path.name}: column_lineage of {column} names {schema}.{table}, "
                                     "which the model does not read")
            deps[column].append(dg.TableColumnDep(asset_key=dg.AssetKey([schema, table]), column_name=upstream_column))
    return dg.TableColumnLineage(deps_by_column=deps)


def sql_model_asset(model: SqlModel, *, kinds: Sequence[str] = ("duckdb", "sql")) -> dg.AssetsDefinition:
    """The asset of ``model``: deps from its SQL, description, refresh mode and lineage from its sidecar."""
    if not model.spec:
        raise ModelSpecError(f"{model.relative_path} has no sidecar {model.spec_path.name} (docs/conventions.md)")
    per_concern = model.per_concern
    lineage = column_lineage(model)

    @dg.asset(
        key=dg.AssetKey([model.layer, model.name]),
        deps=[dg.AssetKey([schema, table]) for schema, table in model.reads],
        group_name=model.layer,
        description=" ".join(model.spec["description"].split()),
        owners=OWNERS,
        kinds=set(model.spec.get("kinds", kinds)),
        code_version=model.sha256[:12],
        metadata={**model_metadata(model), **refresh_mode(per_concern)},
        pool=DUCKDB_POOL,
    )
    def _build(context: dg.AssetExecutionContext, workspace: Workspace) -> dg.MaterializeResult:
        with workspace.connect() as con:
            refresh = build_model(con, model, per_concern, model_context(workspace))
            metadata = {**table_metadata(con, model.table), **model_metadata(model), **refresh}
        if lineage is not None:
            metadata["dagster/column_lineage"] = lineage
        return dg.MaterializeResult(metadata=metadata)

    return _build
