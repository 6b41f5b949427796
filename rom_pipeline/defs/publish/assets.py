"""Publish: the analysts' warehouse file, built beside the published one (anew, or as a patched copy) and
swapped in whole."""

from pathlib import Path

import dagster as dg

from rom_pipeline.defs.audit.assets import TRAIL_TABLES, ensure_run_recorded
from rom_pipeline.defs.audit.trail import publishing
from rom_pipeline.defs.publish.exports import csv_exports
from rom_pipeline.defs.publish.warehouse import Increment, publish_warehouse
from rom_pipeline.defs.sql_asset import DUCKDB_POOL, OWNERS, model_context
from rom_pipeline.lib.concern_scope import read_scope
from rom_pipeline.lib.warehouse_reader import encryption_key
from rom_pipeline.lib.warehouse_spec import load_spec
from rom_pipeline.resources import Workspace

PUBLISHED = load_spec()


def _code_version() -> str:
    import hashlib

    from rom_pipeline.defs.publish import warehouse as module
    from rom_pipeline.lib import warehouse_spec

    sources = (Path(module.__file__), Path(warehouse_spec.__file__), warehouse_spec.WAREHOUSE_SPEC)
    return hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]


def per_concern_tables() -> frozenset[str]:
    """Published tables whose rows of one concern depend on that concern's delivery only: the staging
    tables of delivered files and the SQL models declared ``refresh: per_concern``."""
    from rom_pipeline.lib.sqlfiles import discover_models
    from schemas.contract import FILES

    return frozenset({f"staging.{f}" for f in FILES} | {m.table for m in discover_models() if m.per_concern})


def increment_for(con, workspace: Workspace, run_id: str, scope) -> tuple[Increment | None, str]:
    """How to publish: patch a copy of the published file (an Increment) or build it anew (None), and why.

    Patching needs an incremental night whose published file is this work database's previous
    publish, made by the same code with the same publish settings; anything else builds anew.
    """
    import json

    from rom_pipeline.lib import fingerprint

    if scope.full:
        return None, f"built anew: {scope.reason}"
    previous = con.execute("SELECT run_id FROM audit.runs WHERE status = 'published' AND run_id <> ? "
                           "ORDER BY run_seq DESC LIMIT 1", [run_id]).fetchone()
    if previous is None or not workspace.warehouse_path.is_file():
        return None, "built anew: nothing published before"
    try:
        with workspace.open_warehouse(alias="wh") as wh:
            published = wh.execute("SELECT run_id, source_sha256, publish_settings FROM audit.runs "
                                   "WHERE status = 'published' ORDER BY run_seq DESC LIMIT 1").fetchone()
    except Exception as exc:  # noqa: BLE001 - an unreadable or older file is simply built anew
        return None, f"built anew: the published file cannot be patched ({exc.__class__.__name__})"
    settings = json.dumps(fingerprint.publish_settings(), sort_keys=True)
    if published is None or published[0] != previous[0]:
        return None, "built anew: the published file is not this work database's last publish"
    if published[1] != fingerprint.source_sha256() or published[2] != settings:
        return None, "built anew: code or publish settings differ from the published file's"
    appended = frozenset(f"audit.{t}" for t in TRAIL_TABLES)
    return Increment(run_id, tuple(scope.concerns), per_concern_tables(), appended), \
        f"patched: {len(scope.concerns)} concern(s) replaced, this run's audit trail appended, other tables copied"


@dg.asset(
    key=dg.AssetKey(["publish", "warehouse"]),
    group_name="publish",
    deps=[dg.AssetKey(t.name.split(".")) for t in PUBLISHED],
    description="$ROM_DATA_DIR/warehouse.duckdb: the published tables of schemas/warehouse.yaml, "
                "with table and column comments, small numbers suppressed; built beside the published file (anew, or "
                "on an incremental night as a copy with the pending concerns' rows replaced) and swapped in atomically.",
    owners=OWNERS,
    kinds={"duckdb"},
    code_version=_code_version(),
    metadata={"spec": dg.MetadataValue.path("schemas/warehouse.yaml"),
              "module": dg.MetadataValue.path("rom_pipeline/defs/publish/warehouse.py")},
    pool=DUCKDB_POOL,
)
def warehouse(context: dg.AssetExecutionContext, workspace: Workspace) -> dg.MaterializeResult:
    run_id = context.run.run_id
    with workspace.connect() as con:
        ensure_run_recorded(con, context, workspace)
        scope = read_scope(con)
        increment, how = increment_for(con, workspace, run_id, scope)
        report: dict = {}
        # audit.runs says 'published' in the copy, and in work.duckdb once swapped in; 'failed' if it fails.
        with publishing(con, run_id, refresh="full" if scope.full else "incremental",
                        concerns=list(scope.concerns), sql_context=model_context(workspace)) as mark_published:
            path = publish_warehouse(con, workspace.warehouse_path, PUBLISHED,
                                     encryption_key=encryption_key(),
                                     finalise=mark_published, increment=increment, report=report)
    if increment is not None and report.get("mode") != "patched":
        how = f"built anew: {report.get('mode')}"
    context.log.info(f"published {path} ({how})")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)),
        "tables": len(PUBLISHED),
        "bytes": path.stat().st_size,
        "refresh": "full" if scope.full else "incremental",
        "concerns_recomputed": len(scope.concerns),
        "publish": how,
    })


ASSETS = [warehouse, csv_exports]
