"""The Dagster entry point: every asset, check, job, schedule and sensor of rom_pipeline."""
from __future__ import annotations

import dagster as dg

from rom_pipeline.defs import models
from rom_pipeline.defs.audit import assets as audit
from rom_pipeline.defs.ingest import assets as ingest
from rom_pipeline.defs.outcomes import assets as outcomes
from rom_pipeline.defs.publish import assets as publish
from rom_pipeline.defs.reports import assets as reports
from rom_pipeline.defs.staging import assets as staging
from rom_pipeline.defs.triggers import SCHEDULES, SENSORS, nightly_job, nightly_schedule  # noqa: F401
from rom_pipeline.progress import progress_logger, step_log_logger
from rom_pipeline.resources import pseudonym_key_from_env, workspace_from_env
from rom_pipeline.runlock import RunLock

# The SQL models (sql/<layer>/<table>.sql + .yml) and their checks: rom_pipeline/defs/models.py.
ASSETS = [*audit.ASSETS, ingest.ingest, *staging.ASSETS, *models.ASSETS, *outcomes.ASSETS, *publish.ASSETS, *reports.ASSETS]
CHECKS = [*staging.CHECKS, *models.CHECKS]

# The nightly job (in-process: DuckDB has one writer), its schedule and the delivery sensor
# live in rom_pipeline/defs/triggers.py.


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """The project's Definitions; tests pass their own resources (a temp data dir, a test key)."""
    resources = resources or {"workspace": workspace_from_env(), "pseudonym_key": pseudonym_key_from_env()}
    resources = {"run_lock": RunLock(), **resources}  # one run per data dir (rom_pipeline/runlock.py)
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        jobs=[nightly_job],
        schedules=SCHEDULES,
        sensors=SENSORS,
        resources=resources,
        executor=dg.in_process_executor,
        loggers={"console": dg.colored_console_logger, "progress": progress_logger, "step_log": step_log_logger},
    )


defs = build_definitions()
