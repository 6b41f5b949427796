"""One full in-process run of the nightly job, with progress and a summary a person can read."""
from __future__ import annotations

import logging
import sys

import dagster as dg
import duckdb

def summarise(warehouse_path) -> str:
    con = duckdb.connect(str(warehouse_path), read_only=True)
    try:
        lines = ["deliveries:"]
        for status, n in con.execute(
                "SELECT status, count(*) FROM audit.deliveries GROUP BY status ORDER BY status").fetchall():
            lines.append(f"  {status:<11} {n}")
        loaded, read = con.execute(
            "SELECT sum(rows_loaded), sum(rows_read) FROM audit.reconciliation").fetchone()
        lines.append(f"rows read {read or 0}, loaded {loaded or 0}")
        lines.append("rows quarantined by reason:")
        for reason, n in con.execute(
                "SELECT reason, count(DISTINCT (delivery_id, file_name, source_row_number)) FROM audit.quarantine "
                "GROUP BY reason ORDER BY count(*) DESC, reason").fetchall():
            lines.append(f"  {reason:<28} {n}")
        return "\n".join(lines)
    finally:
        con.close()


def run_pipeline(quiet: bool = False) -> int:
    from rom_pipeline.definitions import defs, nightly_job
    from rom_pipeline.resources import resolved_paths

    logging.getLogger("dagster").setLevel(logging.WARNING)
    export_dir, data_dir = resolved_paths()
    warehouse_path = data_dir / "warehouse.duckdb"
    print(f"rom-pipeline run: deliveries from {export_dir}\n"
          f"                  work and results in {data_dir}", flush=True)
    with dg.DagsterInstance.ephemeral() as instance:
        job = defs.resolve_job_def(nightly_job.name)
        result = job.execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}},
                                    **({} if quiet else {"progress": {}})}})
    if not result.success:
        for event in result.all_events:
            if event.event_type_value == "STEP_FAILURE":
                error = event.step_failure_data.error
                while error.cause is not None:  # the root cause says what went wrong, not the wrapper
                    error = error.cause
                print(f"FAILED {event.step_key}: {error.message.strip()[:800]}", file=sys.stderr)
        print("rom-pipeline run: NOT published; the previous warehouse (if any) is unchanged.", file=sys.stderr)
        return 1
    print(summarise(warehouse_path))
    print(f"\nPublished: {warehouse_path}\n"
          f"Query it read-only, e.g.:\n"
          f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{warehouse_path}', read_only=True)"
          f".sql('SELECT * FROM audit.deliveries'))\"")
    return 0
