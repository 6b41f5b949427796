"""The Dagster entry point: every asset, check, job, schedule and sensor of rom_pipeline."""
from __future__ import annotations

import dagster as dg

from rom_pipeline.defs.benchmarks import assets as benchmarks
from rom_pipeline.defs.ingest import assets as ingest
from rom_pipeline.defs.outcomes import assets as outcomes
from rom_pipeline.defs.publish import assets as publish
from rom_pipeline.defs.staging import assets as staging
from rom_pipeline.progress import progress_logger
from rom_pipeline.resources import pseudonym_key_from_env, workspace_from_env

ASSETS = [ingest.ingest, *staging.ASSETS, *outcomes.ASSETS, *benchmarks.ASSETS,
          *publish.ASSETS]
CHECKS = [*staging.CHECKS, *outcomes.CHECKS, *benchmarks.CHECKS]

# DuckDB has one writer: the whole graph runs in one process, one step at a time.
nightly_job = dg.define_asset_job(
    name="nightly",
    selection=dg.AssetSelection.all(),
    description="Ingest every delivery, validate, score, compute outcomes and benchmarks, publish.",
    executor_def=dg.in_process_executor,
)

nightly_schedule = dg.ScheduleDefinition(
    name="nightly_schedule",
    job=nightly_job,
    cron_schedule="30 2 * * *",
    execution_timezone="Europe/Amsterdam",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 02:30 Amsterdam time, after the deliveries of the evening have landed.",
)


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """The project's Definitions; tests pass their own resources (a temp data dir, a test key)."""
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        jobs=[nightly_job],
        schedules=[nightly_schedule],
        resources=resources or {"workspace": workspace_from_env(), "pseudonym_key": pseudonym_key_from_env()},
        executor=dg.in_process_executor,
        loggers={"console": dg.colored_console_logger, "progress": progress_logger},
    )


defs = build_definitions()
