"""Audit assets: the run record at the start of every run, the trail recorded before publishing.

- ``audit/runs`` (first step, upstream of ingest): one row per run with its code
  version, parameters (JSON + sha256), SQL file hashes, and the fingerprints the
  schedule and sensor compare; ``publish/warehouse`` finalises it.
- ``audit/run_inputs``, ``audit/published_figures``, ``audit/figure_episodes``,
  ``audit/quarantine_log`` (after the marts, before publish): appended, never rebuilt
  (:mod:`rom_pipeline.defs.audit.trail`).
- A blocking check proves the recorded episodes give every published figure back
  (``sql/audit/figure_episodes.yml``).
"""

from pathlib import Path

import dagster as dg

from rom_pipeline.defs.audit.trail import (FIGURE_SOURCES, RunInfo, record_trail, settle_interrupted_publish,
                                           start_run)
from rom_pipeline.defs.sql_asset import DUCKDB_POOL, OWNERS, model_context, model_metadata, table_metadata
from rom_pipeline.indicators import check_against_outcomes
from rom_pipeline.lib import concern_scope, fingerprint
from rom_pipeline.lib.sqlfiles import SqlModel
from rom_pipeline.resources import Workspace

RUNS = dg.AssetKey(["audit", "runs"])
TRAIL_TABLES = ["run_inputs", "published_figures", "figure_episodes", "quarantine_log"]
FIGURE_EPISODES = SqlModel("audit", "figure_episodes")
CODE_MODULES = [Path(__file__).with_name("trail.py"), Path(concern_scope.__file__),
                Path(fingerprint.__file__), Path(__file__)]


def _code_version(*extra: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in [*CODE_MODULES, *extra]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def trigger_of(tags: dict) -> str:
    """What started the run, from Dagster's own run tags."""
    if tags.get("dagster/backfill"):
        return f"backfill:{tags['dagster/backfill']}"
    if tags.get("dagster/schedule_name"):
        return f"schedule:{tags['dagster/schedule_name']}"
    if tags.get("dagster/sensor_name"):
        return f"sensor:{tags['dagster/sensor_name']}"
    return "manual"


def sql_files_with_validation() -> dict[str, str]:
    """sha256 of every SQL file, plus the validation SQL that each pandera schema generates."""
    from rom_pipeline.defs.staging.assets import ALL_SCHEMAS
    from rom_pipeline.defs.staging.validate import validation_sql_sha256

    return {**fingerprint.sql_file_hashes(),
            **{f"validation:{name}": validation_sql_sha256(schema) for name, schema in ALL_SCHEMAS.items()}}


def run_info(run_id: str, tags: dict, workspace: Workspace) -> RunInfo:
    params = workspace.parameters()
    export_root = Path(workspace.export_dir)
    return RunInfo(
        run_id=run_id, trigger=trigger_of(tags), code_version=fingerprint.code_version(),
        git_commit=fingerprint.git_commit(), source_sha256=fingerprint.source_sha256(),
        parameters_json=params.as_json(), parameters_sha256=params.sha256, sql_files=sql_files_with_validation(),
        inputs_fingerprint=fingerprint.inputs_fingerprint(export_root, params.sha256),
        manifests_fingerprint=fingerprint.manifests_fingerprint(export_root))


def _published_run_id(workspace: Workspace, log) -> str | None:
    """The run the published warehouse says published it (None if there is none or it cannot be read)."""
    from rom_pipeline.defs.triggers import last_publish

    try:
        last = last_publish(workspace)
    except Exception as exc:  # noqa: BLE001 - only a hint for settling an interrupted run
        log.warning(f"could not read the published warehouse's audit.runs ({exc.__class__.__name__})")
        return None
    return last.run_id if last else None


def ensure_run_recorded(con, context: dg.AssetExecutionContext, workspace: Workspace) -> int:
    """The run's row in audit.runs (created here when a partial run skipped audit/runs)."""
    return start_run(con, run_info(context.run.run_id, context.run.tags, workspace))


@dg.asset(
    key=RUNS,
    group_name="audit",
    description="One row per pipeline run: Dagster run id, code version (package + git commit), parameter "
                "values (JSON + sha256), SQL file hashes, input fingerprints, started/finished, status "
                "(running, published, failed, incomplete). Written first; finalised by publish.",
    owners=OWNERS,
    kinds={"duckdb", "python"},
    code_version=_code_version(),
    metadata={"module": dg.MetadataValue.path("rom_pipeline/defs/audit/trail.py")},
    pool=DUCKDB_POOL,
)
def runs(context: dg.AssetExecutionContext, workspace: Workspace) -> dg.MaterializeResult:
    # A bad indicator catalogue entry (ROM_PARAMETERS) stops the run here, before its first write.
    check_against_outcomes(workspace.parameters())
    info = run_info(context.run.run_id, context.run.tags, workspace)
    published = _published_run_id(workspace, context.log)
    with workspace.connect() as con:
        if settle_interrupted_publish(con, published):
            context.log.warning(f"run {published} was stopped right after it swapped the warehouse in: "
                                "recorded as published")
        seq = start_run(con, info)
        metadata = table_metadata(con, "audit.runs")
    context.log.info(f"run {seq}: code {info.code_version}, parameters {info.parameters_sha256[:12]}, "
                     f"trigger {info.trigger}")
    return dg.MaterializeResult(metadata={
        **metadata, "run_seq": seq, "code_version": info.code_version, "trigger": info.trigger,
        "parameters_sha256": info.parameters_sha256, "source_sha256": info.source_sha256,
        "inputs_fingerprint": info.inputs_fingerprint, "manifests_fingerprint": info.manifests_fingerprint})


TRAIL_DESCRIPTIONS = {
    "run_inputs": "Per run: every file of every current delivery and the reference files it computed from, "
                  "with checksums (what explain cites).",
    "published_figures": "Every published indicator and benchmark figure, kept across runs: a row when a figure "
                          "is new, changed or removed (never overwritten; unchanged figures are not repeated).",
    "figure_episodes": " ".join(FIGURE_EPISODES.spec["description"].split()),
    "quarantine_log": "Per delivery: its quarantined rows and why, kept across runs (versioned when they change).",
}
_FIGURE_TABLE_KEYS = [dg.AssetKey(s.table.split(".")) for s in FIGURE_SOURCES]


@dg.multi_asset(
    name="record_audit_trail",
    specs=[dg.AssetSpec(
        dg.AssetKey(["audit", t]), group_name="audit", description=TRAIL_DESCRIPTIONS[t], owners=OWNERS,
        kinds={"duckdb", "sql" if t == "figure_episodes" else "python"},
        code_version=_code_version(FIGURE_EPISODES.path),
        deps=[RUNS, dg.AssetKey(["audit", "deliveries"]), dg.AssetKey(["audit", "delivery_files"]),
              dg.AssetKey(["audit", "quarantine"]), dg.AssetKey(["marts", "episode_outcomes"]),
              dg.AssetKey(["outcomes", "indicator_contributions"]), *_FIGURE_TABLE_KEYS],
        metadata={**(model_metadata(FIGURE_EPISODES) if t == "figure_episodes" else {}),
                  "rom/refresh": "append"},
    ) for t in TRAIL_TABLES],
    pool=DUCKDB_POOL,
)
def record_audit_trail(context: dg.AssetExecutionContext, workspace: Workspace):
    with workspace.connect() as con:
        ensure_run_recorded(con, context, workspace)
        counts = record_trail(con, context.run.run_id, model_context(workspace))
        context.log.info(f"audit trail: {counts['figures_new']} new, {counts['figures_changed']} changed, "
                         f"{counts['figures_removed']} removed figures; {counts['cells_changed']} units x periods "
                         f"with new episode provenance")
        for table in TRAIL_TABLES:
            yield dg.MaterializeResult(asset_key=dg.AssetKey(["audit", table]),
                                       metadata={**table_metadata(con, f"audit.{table}"), **counts})


# The check that the trail reproduces every published figure is declared beside the model
# (sql/audit/figure_episodes.yml) and wired with the other model checks (rom_pipeline.defs.models).
ASSETS = [runs, record_audit_trail]
