"""Publish: the analysts' warehouse file, swapped in whole."""

import dagster as dg

from rom_pipeline.defs.audit.assets import ensure_run_recorded
from rom_pipeline.defs.audit.trail import publishing
from rom_pipeline.defs.publish.exports import csv_exports
from rom_pipeline.defs.publish.warehouse import load_spec, publish_warehouse
from rom_pipeline.defs.sql_asset import DUCKDB_POOL, OWNERS, model_context
from rom_pipeline.lib.concern_scope import read_scope
from rom_pipeline.lib.warehouse_reader import encryption_key
from rom_pipeline.resources import Workspace

PUBLISHED = load_spec()


def _code_version() -> str:
    import hashlib

    from rom_pipeline.defs.publish import warehouse as module
    from rom_pipeline.defs.publish.warehouse import WAREHOUSE_SPEC

    return hashlib.sha256(open(module.__file__, "rb").read() + WAREHOUSE_SPEC.read_bytes()).hexdigest()[:12]


@dg.asset(
    key=dg.AssetKey(["publish", "warehouse"]),
    group_name="publish",
    deps=[dg.AssetKey(t.name.split(".")) for t in PUBLISHED],
    description="$ROM_DATA_DIR/warehouse.duckdb: the published tables of schemas/warehouse.yaml, "
                "with table and column comments, small numbers suppressed; built anew and swapped in atomically.",
    owners=OWNERS,
    kinds={"duckdb"},
    code_version=_code_version(),
    metadata={"spec": dg.MetadataValue.path("schemas/warehouse.yaml"),
              "module": dg.MetadataValue.path("rom_pipeline/defs/publish/warehouse.py")},
    pool=DUCKDB_POOL,
)
def warehouse(context: dg.AssetExecutionContext, workspace: Workspace) -> dg.MaterializeResult:
    with workspace.connect() as con:
        ensure_run_recorded(con, context, workspace)
        scope = read_scope(con)
        # audit.runs says 'published' in the copy, and in work.duckdb once swapped in; 'failed' if it fails.
        with publishing(con, context.run.run_id, refresh="full" if scope.full else "incremental",
                        concerns=list(scope.concerns), sql_context=model_context(workspace)) as mark_published:
            path = publish_warehouse(con, workspace.warehouse_path, PUBLISHED,
                                     encryption_key=encryption_key(),
                                     finalise=mark_published)
    context.log.info(f"published {path}")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)),
        "tables": len(PUBLISHED),
        "bytes": path.stat().st_size,
        "refresh": "full" if scope.full else "incremental",
        "concerns_recomputed": len(scope.concerns),
    })


ASSETS = [warehouse, csv_exports]
