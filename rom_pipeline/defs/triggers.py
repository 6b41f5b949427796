"""What starts the nightly job: the schedule at 02:30 Amsterdam time and the new-delivery sensor.

Both compare fingerprints of files on disk (:mod:`rom_pipeline.lib.fingerprint`)
with what the last successful publish recorded. They read that record from the
*published* warehouse (``audit.runs``, a copy of the work database's, swapped in
whole by the publish that made it), never from ``work.duckdb``: the daemon must not
take a lock on the file the pipeline writes (one writer, docs/operations.md), and the
published copy is readable at any moment.

- ``nightly_schedule``: runs the job unless nothing changed since the last publish
  (manifests, reference files, parameters, code): then it skips, and a night without
  a new delivery publishes nothing new.
- ``new_delivery_sensor``: starts the job when a ``manifest.json`` under the export
  root is added or changes (cursor and run key = fingerprint of every manifest's
  relative path and sha256), once the delivery has stopped changing for
  ``ROM_DELIVERY_SETTLE_SECONDS`` (default 60). It looks every
  ``ROM_SENSOR_INTERVAL_SECONDS`` (default 60, read when the code location loads), so a
  delivery waits at most the interval plus the settle time (2 minutes by default) before its
  run is launched (docs/operations.md, "How long a new delivery waits").
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from rom_pipeline.lib import fingerprint
from rom_pipeline.lib.manifest import discover_manifests
from rom_pipeline.resources import Workspace
from rom_pipeline.runlock import hold_data_dir

JOB_NAME = "nightly"
SETTLE_ENV = "ROM_DELIVERY_SETTLE_SECONDS"
DEFAULT_SETTLE_SECONDS = 60
SENSOR_INTERVAL_ENV = "ROM_SENSOR_INTERVAL_SECONDS"
DEFAULT_SENSOR_INTERVAL_SECONDS = 60
MIN_SENSOR_INTERVAL_SECONDS = 30  # the daemon's sensor loop itself wakes about every 30 s at most


def sensor_interval_seconds() -> int:
    """How often the new-delivery sensor looks (ROM_SENSOR_INTERVAL_SECONDS), checked when the code loads."""
    raw = os.environ.get(SENSOR_INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_SENSOR_INTERVAL_SECONDS
    if not raw.isdigit() or int(raw) < MIN_SENSOR_INTERVAL_SECONDS:
        raise ValueError(f"{SENSOR_INTERVAL_ENV}={raw!r}: give a whole number of seconds, at least "
                         f"{MIN_SENSOR_INTERVAL_SECONDS} (default {DEFAULT_SENSOR_INTERVAL_SECONDS})")
    return int(raw)
WRITER_TAG = {"rom/writer": "work_db"}

# DuckDB has one writer: the whole graph runs in one process, one step at a time; every
# asset that writes is in the `duckdb_writer` pool and every run carries the rom/writer tag,
# so the instance can keep runs of this job (schedule, sensor, backfill) from overlapping. Runs
# started outside the queue (rom-pipeline run, a second webserver) meet the data dir's run lock:
# the hook makes every step need the `run_lock` resource, which holds it for the whole run.
nightly_job = dg.define_asset_job(
    name=JOB_NAME,
    selection=dg.AssetSelection.all(),
    description="Ingest every delivery, validate, score, compute outcomes and benchmarks, publish. "
                "Incremental: only concerns with a new current delivery are recomputed.",
    executor_def=dg.in_process_executor,
    tags=WRITER_TAG,
    hooks={hold_data_dir},
)


@dataclass(frozen=True)
class LastPublish:
    run_id: str
    finished_at: object
    inputs_fingerprint: str
    manifests_fingerprint: str


def last_publish(workspace: Workspace) -> LastPublish | None:
    """What the published warehouse says about the run that published it (None: nothing published)."""
    path = workspace.warehouse_path
    if not path.is_file():
        return None
    with workspace.open_warehouse(alias="wh") as con:
        if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'wh' "
                           "AND schema_name = 'audit' AND table_name = 'runs'").fetchone()[0]:
            return None
        row = con.execute("""SELECT run_id, finished_at, inputs_fingerprint, manifests_fingerprint
                             FROM wh.audit.runs WHERE status = 'published'
                             ORDER BY run_seq DESC LIMIT 1""").fetchone()
    return LastPublish(*row) if row else None


def _still_landing(export_root: Path, settle_seconds: float) -> list[str]:
    """Deliveries whose folder changed within the settle time (files may still be copying)."""
    if settle_seconds <= 0:
        return []
    now = time.time()
    busy = []
    for manifest in discover_manifests(export_root):
        newest = max(p.stat().st_mtime for p in manifest.parent.iterdir() if p.is_file())
        if now - newest < settle_seconds:
            busy.append(manifest.parent.relative_to(export_root).as_posix())
    return busy


@dg.schedule(
    name="nightly_schedule",
    job=nightly_job,
    cron_schedule="30 2 * * *",
    execution_timezone="Europe/Amsterdam",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 02:30 Amsterdam time, after the deliveries of the evening have landed; "
                "skips when nothing changed since the last publish.",
)
def nightly_schedule(context: dg.ScheduleEvaluationContext, workspace: Workspace):
    export_root = Path(workspace.export_dir)
    if not export_root.is_dir():
        return dg.SkipReason(f"export root {export_root} does not exist")
    params_sha = workspace.parameters().sha256
    current = fingerprint.inputs_fingerprint(export_root, params_sha)
    last = last_publish(workspace)
    reason = "first publish" if last is None else "inputs changed"
    if last is not None and last.inputs_fingerprint == current:
        from rom_pipeline.quiet import outstanding

        reason = outstanding(export_root, workspace.warehouse_path)
        if reason is None:
            return dg.SkipReason(f"nothing changed since the last publish (run {last.run_id}, {last.finished_at}): "
                                 "same deliveries, reference files, parameters, code and publish settings")
    return dg.RunRequest(tags={"rom/inputs_fingerprint": current[:16], "rom/reason": reason[:200]})


@dg.sensor(
    name="new_delivery_sensor",
    job=nightly_job,
    minimum_interval_seconds=sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the nightly job when a manifest.json under the export root is new or changed "
                "(and its delivery has stopped changing).",
)
def new_delivery_sensor(context: dg.SensorEvaluationContext, workspace: Workspace):
    export_root = Path(workspace.export_dir)
    if not export_root.is_dir():
        return dg.SkipReason(f"export root {export_root} does not exist")
    if not discover_manifests(export_root):
        return dg.SkipReason(f"no deliveries (manifest.json) under {export_root}")
    current = fingerprint.manifests_fingerprint(export_root)
    if context.cursor == current:
        return dg.SkipReason("no new or changed manifest.json since the last check")
    landing = _still_landing(export_root, float(os.environ.get(SETTLE_ENV) or DEFAULT_SETTLE_SECONDS))
    if landing:  # cursor not advanced: the next tick looks again
        return dg.SkipReason(f"delivery still landing: {', '.join(landing[:5])}")
    last = last_publish(workspace)
    if last is not None and last.manifests_fingerprint == current:
        return dg.SensorResult(skip_reason=dg.SkipReason(
            f"the current manifests are already published (run {last.run_id})"), cursor=current)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=current, tags={"rom/manifests_fingerprint": current[:16]})],
        cursor=current)


SCHEDULES = [nightly_schedule]
SENSORS = [new_delivery_sensor]
