"""Ingest: discover and verify deliveries, load them as text (``raw``), keep ``audit.deliveries``."""

import json
from pathlib import Path

import dagster as dg

from rom_pipeline.defs.ingest import keys
from rom_pipeline.defs.ingest.loader import ALL_FILES, ensure_tables, ingest_deliveries, ingest_reference
from rom_pipeline.defs.sql_asset import DUCKDB_POOL, OWNERS, table_metadata
from rom_pipeline.lib import fingerprint
from rom_pipeline.lib.concern_scope import force_full_rebuild, record_pending_concerns
from rom_pipeline.lib.manifest import export_root_problem
from rom_pipeline.lib.pseudonym import key_fingerprint
from rom_pipeline.resources import PseudonymKey, Workspace

RAW_TABLES = [*ALL_FILES, "rejected_rows"]
AUDIT_TABLES = ["deliveries", "delivery_files", "pending_concerns", "pseudonym_keys"]

DESCRIPTIONS = {
    "rejected_rows": "Delivered rows that could not be read as rows (wrong field count, not UTF-8), with their text.",
    "deliveries": "Every delivery seen: current, superseded or rejected (with the reason).",
    "delivery_files": "Every file of every loaded delivery: checksum, rows in the manifest, rows read.",
    "pending_concerns": "Concerns whose current delivery changed since the last successful publish (or all, "
                        "for a full rebuild): what per-concern assets recompute tonight. Cleared by publish.",
    "pseudonym_keys": "The pseudonym key's history by fingerprint (never the key): its first use, every "
                      "rotation (old and new fingerprint, run, deliveries read again) and data adopted from "
                      "before fingerprints were kept.",
}


def _spec(layer: str, table: str) -> dg.AssetSpec:
    description = DESCRIPTIONS.get(table, f"`{table}` of the current deliveries as delivered (text), "
                                          "with delivery id, file name and source row number (the file's checksum: "
                                          "audit.delivery_files).")
    return dg.AssetSpec(key=dg.AssetKey([layer, table]), group_name=layer, description=description,
                        owners=OWNERS, kinds={"duckdb", "python"}, deps=[dg.AssetKey(["audit", "runs"])],
                        code_version=CODE_VERSION,
                        metadata={"module": dg.MetadataValue.path("rom_pipeline/defs/ingest/loader.py")})


def _code_version() -> str:
    import hashlib

    from rom_pipeline.defs.ingest import loader
    from rom_pipeline.lib import delivered_files, manifest, pseudonym

    digest = hashlib.sha256()
    for module in (loader, keys, delivered_files, manifest, pseudonym):
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
    problem = export_root_problem(export_root)  # refused before anything is read (issue 10, item 7)
    if problem:
        raise dg.Failure(description=problem)
    run_id = context.run.run_id
    with workspace.connect() as con:
        ensure_tables(con)
        try:
            key_check = keys.check_key(con, export_root, key_fingerprint(key), keys.rekey_requested(context.run.tags),
                                       workspace.work_db_path)
        except keys.KeyProblem as exc:
            raise dg.Failure(description=str(exc)) from None
        published_key = keys.last_published_fingerprint(con)
        summary = ingest_deliveries(con, export_root, key, log=context.log.info, reread=key_check.reread)
        left = {f: ids for f, ids in keys.keys_in_data(con).items() if f != key_check.fingerprint}
        if left:  # cannot happen: every delivery holding rows was read again under this key
            raise dg.Failure(description=f"pseudonym key rotation incomplete: {left} still hold another key's rows")
        keys.record_key_use(con, run_id, key_check, log=context.log.warning)
        reference = ingest_reference(con, export_root, log=context.log.info)
        if summary.missing_concerns:
            context.log.warning(
                f"MISSING from the export root: {len(summary.missing_concerns)} concern(s) "
                f"{', '.join(summary.missing_concerns)} (no manifest.json of theirs any more); their last "
                "current delivery stays published")
        con.execute("UPDATE audit.runs SET missing_concerns = ?, key_fingerprint = ? WHERE run_id = ?",
                    [json.dumps(sorted(summary.missing_concerns)), key_check.fingerprint, run_id])
        force = force_full_rebuild(context.run.tags)
        if published_key is not None and published_key != key_check.fingerprint:
            force = "pseudonym key rotated since the last publish"
        scope = record_pending_concerns(con, run_id, workspace.parameters().sha256,
                                        fingerprint.source_sha256(), force=force)
        context.log.info(f"tonight: {scope.describe()}")
        counts = {
            "deliveries_loaded": len(summary.loaded),
            "deliveries_rejected": len(summary.rejected),
            "deliveries_unchanged": len(summary.unchanged),
            "reference_files_loaded": len(reference),
            "refresh": "full" if scope.full else "incremental",
            "concerns_pending": len(scope.concerns),
            "missing_concerns": ", ".join(summary.missing_concerns) or "none",
            "deliveries_rekeyed": len(key_check.reread),
            "key_fingerprint": key_check.fingerprint,
        }
        for layer, tables in (("raw", RAW_TABLES), ("audit", AUDIT_TABLES)):
            for table in tables:
                yield dg.MaterializeResult(asset_key=dg.AssetKey([layer, table]),
                                           metadata={**table_metadata(con, f"{layer}.{table}"), **counts})
