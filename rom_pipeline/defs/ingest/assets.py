"""Ingest: discover and verify deliveries, load them as text (``raw``), keep ``audit.deliveries``."""

from pathlib import Path

import dagster as dg

from rom_pipeline.defs.ingest.loader import ALL_FILES, ingest_deliveries, ingest_reference
from rom_pipeline.defs.sql_asset import DUCKDB_POOL, OWNERS, table_metadata
from rom_pipeline.lib import fingerprint
from rom_pipeline.lib.concern_scope import force_full_rebuild, record_pending_concerns
from rom_pipeline.resources import PseudonymKey, Workspace

RAW_TABLES = [*ALL_FILES, "rejected_rows"]
AUDIT_TABLES = ["deliveries", "delivery_files", "pending_concerns"]

DESCRIPTIONS = {
    "rejected_rows": "Delivered rows that could not be read as rows (wrong field count, not UTF-8), with their text.",
    "deliveries": "Every delivery seen: current, superseded or rejected (with the reason).",
    "delivery_files": "Every file of every loaded delivery: checksum, rows in the manifest, rows read.",
    "pending_concerns": "Concerns whose current delivery changed since the last successful publish (or all, "
                        "for a full rebuild): what per-concern assets recompute tonight. Cleared by publish.",
}


def _spec(layer: str, table: str) -> dg.AssetSpec:
    description = DESCRIPTIONS.get(table, f"`{table}` of the current deliveries as delivered (text), "
                                          "with delivery id, file checksum and source row number.")
    return dg.AssetSpec(key=dg.AssetKey([layer, table]), group_name=layer, description=description,
                        owners=OWNERS, kinds={"duckdb", "python"}, deps=[dg.AssetKey(["audit", "runs"])],
                        code_version=CODE_VERSION,
                        metadata={"module": dg.MetadataValue.path("rom_pipeline/defs/ingest/loader.py")})


def _code_version() -> str:
    import hashlib

    from rom_pipeline.defs.ingest import loader
    from rom_pipeline.lib import delivered_files, manifest, pseudonym

    digest = hashlib.sha256()
    for module in (loader, delivered_files, manifest, pseudonym):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:12]


CODE_VERSION = _code_version()


@dg.multi_asset(
    name="ingest_deliveries",
    specs=[_spec("raw", t) for t in RAW_TABLES] + [_spec("audit", t) for t in AUDIT_TABLES],
    pool=DUCKDB_POOL,
)
def ingest(context: dg.AssetExecutionContext, workspace: Workspace, pseudonym_key: PseudonymKey):
    key = pseudonym_key.key_bytes(log=context.log.warning)
    export_root = Path(workspace.export_dir)
    with workspace.connect() as con:
        summary = ingest_deliveries(con, export_root, key, log=context.log.info)
        reference = ingest_reference(con, export_root, log=context.log.info)
        scope = record_pending_concerns(con, context.run.run_id, workspace.parameters().sha256,
                                        fingerprint.source_sha256(), force=force_full_rebuild(context.run.tags))
        context.log.info(f"tonight: {scope.describe()}")
        counts = {
            "deliveries_loaded": len(summary.loaded),
            "deliveries_rejected": len(summary.rejected),
            "deliveries_unchanged": len(summary.unchanged),
            "reference_files_loaded": len(reference),
            "refresh": "full" if scope.full else "incremental",
            "concerns_pending": len(scope.concerns),
        }
        for layer, tables in (("raw", RAW_TABLES), ("audit", AUDIT_TABLES)):
            for table in tables:
                yield dg.MaterializeResult(asset_key=dg.AssetKey([layer, table]),
                                           metadata={**table_metadata(con, f"{layer}.{table}"), **counts})
