"""Staging: validated, typed, pseudonymised rows of every delivered file, and their rejects.

One multi-asset per contract file builds ``staging.<file>`` and
``staging.<file>_rejects`` from the pandera schema; the scoring models
(``sql/staging``) and the quarantine/reconciliation tables (``sql/audit``) are SQL
models, wired by :mod:`rom_pipeline.defs.models`. The pandera schemas run again
as blocking checks on the staging rows written tonight (pushed down into DuckDB by ibis;
:mod:`rom_pipeline.defs.staging.checks`).
"""

import dagster as dg
import pandera.ibis as pa

from rom_pipeline.defs.checks import asset_check
from rom_pipeline.defs.sql_asset import DUCKDB_POOL, OWNERS, refresh_metadata, refresh_mode, table_metadata
from rom_pipeline.defs.staging.checks import pandera_schema_check
from rom_pipeline.defs.staging.validate import validate_file, validation_sql_sha256
from rom_pipeline.lib.concern_scope import read_scope
from rom_pipeline.lib.model_checks import CheckSpec
from rom_pipeline.resources import Workspace
from schemas.contract import FILES
from schemas.reference import REFERENCE_FILES


def _upstream(schema: pa.DataFrameSchema) -> list[dg.AssetKey]:
    parents = {ref[0] for col in schema.columns.values() if (ref := (col.metadata or {}).get("references"))}
    parents |= {"measurements"} if any("staging.measurements" in j for j in (schema.metadata or {}).get("lookups", [])) else set()
    return [dg.AssetKey(["raw", schema.name]), dg.AssetKey(["raw", "rejected_rows"]),
            dg.AssetKey(["audit", "deliveries"])] + [dg.AssetKey(["staging", p]) for p in sorted(parents)]


def staging_asset(schema: pa.DataFrameSchema) -> dg.AssetsDefinition:
    file = schema.name
    code_version = validation_sql_sha256(schema)[:12]
    # Delivery files hold one concern's rows per delivery; reference files hold every concern's.
    per_concern = file in FILES
    definition_metadata = {"schema_file": dg.MetadataValue.path("schemas/contract.py" if per_concern
                                                                else "schemas/reference.py"),
                           **refresh_mode(per_concern)}

    @dg.multi_asset(
        name=f"validate_{file}",
        specs=[
            dg.AssetSpec(dg.AssetKey(["staging", file]), group_name="staging", owners=OWNERS,
                         kinds={"duckdb", "pandera"}, code_version=code_version, deps=_upstream(schema),
                         metadata=definition_metadata,
                         description=f"Valid rows of {file} (current deliveries), typed; rules: schemas/"),
            dg.AssetSpec(dg.AssetKey(["staging", f"{file}_rejects"]), group_name="staging", owners=OWNERS,
                         kinds={"duckdb", "pandera"}, code_version=code_version, deps=_upstream(schema),
                         metadata=definition_metadata,
                         description=f"Rows of {file} that broke a rule, once per reason, with the raw row."),
        ],
        pool=DUCKDB_POOL,
    )
    def _validate(context: dg.AssetExecutionContext, workspace: Workspace):
        with workspace.connect() as con:
            scope = read_scope(con) if per_concern else None
            incremental = scope is not None and not scope.full
            counts = validate_file(con, schema, concerns=scope.concerns if incremental else None)
            rows = (counts.pop("rows_deleted"), counts.pop("rows_inserted")) if "rows_deleted" in counts else None
            context.log.info(f"{file}: {counts['rows_loaded']} rows loaded, {counts['rows_quarantined']} quarantined"
                             + (f" ({scope.describe()})" if scope else ""))
            for table in (file, f"{file}_rejects"):
                yield dg.MaterializeResult(
                    asset_key=dg.AssetKey(["staging", table]),
                    metadata={**table_metadata(con, f"staging.{table}"), **counts,
                              **refresh_metadata(con, f"staging.{table}", scope, rows),
                              "validation_sql_sha256": validation_sql_sha256(schema)})

    return _validate


ALL_SCHEMAS = {**FILES, **REFERENCE_FILES}
VALIDATION_ASSETS = [staging_asset(schema) for schema in ALL_SCHEMAS.values()]

ASSETS = VALIDATION_ASSETS

CHECKS = [
    *[pandera_schema_check(schema) for schema in ALL_SCHEMAS.values()],
    asset_check(CheckSpec(
        table="staging.episodes", name="client_ids_are_pseudonyms", severity="ERROR",
        description="Blocking: every stored client id is a 64-hex HMAC-SHA256 pseudonym.",
        sql="SELECT delivery_id, source_row_number FROM staging.episodes "
            "WHERE NOT regexp_full_match(client_pseudonym, '[0-9a-f]{64}')")),
]
