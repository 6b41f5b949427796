"""Publish: the analysts' warehouse file, swapped in whole."""

import os

import dagster as dg

from rom_pipeline.defs.publish.warehouse import load_spec, publish_warehouse
from rom_pipeline.defs.sql_asset import OWNERS
from rom_pipeline.resources import Workspace

PUBLISHED = load_spec()


@dg.asset(
    key=dg.AssetKey(["publish", "warehouse"]),
    group_name="publish",
    deps=[dg.AssetKey(t.name.split(".")) for t in PUBLISHED],
    description="$ROM_DATA_DIR/warehouse.duckdb: the published tables of schemas/warehouse.yaml, "
                "with table and column comments, small numbers suppressed; built anew and swapped in atomically.",
    owners=OWNERS,
    kinds={"duckdb"},
)
def warehouse(context: dg.AssetExecutionContext, workspace: Workspace) -> dg.MaterializeResult:
    with workspace.connect() as con:
        path = publish_warehouse(con, workspace.warehouse_path, PUBLISHED,
                                 encryption_key=os.environ.get("ROM_WAREHOUSE_ENCRYPTION_KEY") or None)
    context.log.info(f"published {path}")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)),
        "tables": len(PUBLISHED),
        "bytes": path.stat().st_size,
    })


ASSETS = [warehouse]
