"""One full in-process run of the nightly job, with progress and a summary a person can read."""
from __future__ import annotations

import logging
import os
import sys

import dagster as dg


def demo_key_in_use() -> bool:
    return (not os.environ.get("ROM_PSEUDONYM_KEY")
            and os.environ.get("ROM_DEMO", "") not in ("", "0", "false"))


def preflight() -> str | None:
    """Why the run must not start (a message naming the problem), or None. Writes nothing.

    No ROM_PSEUDONYM_KEY outside demo mode (or one that is too short); an encryption
    key for a DuckDB that cannot write encrypted files.
    """
    from rom_pipeline.defs.publish.warehouse import ENCRYPTION_HELP, can_write_encrypted
    from rom_pipeline.lib.pseudonym import MissingKey, check_key
    from rom_pipeline.lib.warehouse_reader import encryption_key

    if not demo_key_in_use():
        try:
            check_key(os.environ.get("ROM_PSEUDONYM_KEY"))
        except MissingKey as exc:
            return str(exc)
    if encryption_key() and not can_write_encrypted():
        return ENCRYPTION_HELP
    return _parameters_problem()


def _parameters_problem() -> str | None:
    """A ROM_PARAMETERS file that cannot be used (a bad indicator catalogue entry names itself)."""
    from rom_pipeline.config import load_parameters
    from rom_pipeline.indicators import CatalogueError, check_against_outcomes

    try:
        check_against_outcomes(load_parameters())
    except (CatalogueError, FileNotFoundError, ValueError) as exc:
        return f"the rule parameters cannot be used: {exc}"
    return None


def _export_root_problem(export_dir) -> str | None:
    """Missing, not a folder, or no manifest.json anywhere below it (the ingest asset refuses the same way)."""
    from rom_pipeline.lib.manifest import export_root_problem

    return export_root_problem(export_dir)


def _key_problem(export_dir, data_dir) -> str | None:
    """The pseudonym key differs from the one the data dir's rows were made with (issue 10, item 6).

    Read-only; `rom-pipeline rekey` (ROM_REKEY) may rotate it instead. The ingest step refuses the same way.
    """
    from rom_pipeline.defs.ingest.keys import preflight_key_problem, rekey_requested
    from rom_pipeline.lib.pseudonym import DEMO_KEY

    key = os.environ.get("ROM_PSEUDONYM_KEY") or DEMO_KEY
    return preflight_key_problem(data_dir / "work.duckdb", export_dir, key.encode("utf-8"), rekey_requested())


def _problem_hint(message: str, data_dir) -> str | None:
    """A plain sentence for failures whose cause is the machine, not the data."""
    if "No space left on device" in message or "Errno 28" in message:
        return f"the disk holding {data_dir} is full (No space left on device): free space, then run again"
    return None


def _missing_concerns_lines(con) -> list[str]:
    """Concerns whose deliveries all disappeared from the export root (issue 10, item 7), loudly."""
    import json

    row = con.execute("SELECT missing_concerns FROM audit.runs ORDER BY run_seq DESC LIMIT 1").fetchone()
    missing = json.loads(row[0]) if row and row[0] else []
    if not missing:
        return []
    return [f"!! MISSING from the export root: {len(missing)} concern(s) {', '.join(missing)}: no manifest.json "
            "of theirs any more (moved folder? unmounted share?); their last current delivery stays published "
            "(audit.runs.missing_concerns)"]


def summarise(warehouse_path) -> str:
    from rom_pipeline.lib.warehouse_reader import encryption_key, open_read_only

    con = open_read_only(warehouse_path, encryption_key())
    try:
        lines = ["deliveries:"]
        for status, n in con.execute(
                "SELECT status, count(*) FROM audit.deliveries GROUP BY status ORDER BY status").fetchall():
            lines.append(f"  {status:<11} {n}")
        loaded, read = con.execute(
            "SELECT sum(rows_loaded), sum(rows_read) FROM audit.reconciliation").fetchone()
        lines += _missing_concerns_lines(con)
        lines.append(f"rows read {read or 0}, loaded {loaded or 0}")
        lines.append("rows quarantined by reason:")
        for reason, n in con.execute(
                "SELECT reason, count(DISTINCT (delivery_id, file_name, source_row_number)) FROM audit.quarantine "
                "GROUP BY reason ORDER BY count(*) DESC, reason").fetchall():
            lines.append(f"  {reason:<28} {n}")
        return "\n".join(lines)
    finally:
        con.close()


def _job(reports: bool):
    """The nightly job, or (``reports=False``) the same job without the reports group."""
    from rom_pipeline.definitions import defs, nightly_job

    if reports:
        return defs.resolve_job_def(nightly_job.name)
    without = dg.define_asset_job(f"{nightly_job.name}_without_reports", tags=nightly_job.tags,
                                  selection=dg.AssetSelection.all() - dg.AssetSelection.groups("reports"),
                                  executor_def=dg.in_process_executor)
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[without])).resolve_job_def(without.name)


def run_pipeline(quiet: bool = False, reports: bool = True) -> int:
    from rom_pipeline.resources import resolved_paths

    logging.getLogger("dagster").setLevel(logging.CRITICAL)
    export_dir, data_dir = resolved_paths()
    warehouse_path = data_dir / "warehouse.duckdb"
    problem = preflight() or _export_root_problem(export_dir)
    if problem:
        print(f"rom-pipeline run: NOT started: {problem}", file=sys.stderr)
        return 2
    problem = _key_problem(export_dir, data_dir)
    if problem:
        from rom_pipeline.defs.ingest.keys import KEY_EXIT_STATUS

        print(f"rom-pipeline run: NOT started: {problem}", file=sys.stderr)
        return KEY_EXIT_STATUS
    demo = demo_key_in_use()  # cli.py prints the demo banner before the run; run.py repeats it at the end
    print(f"rom-pipeline run: deliveries from {export_dir}\n"
          f"                  work and results in {data_dir}", flush=True)
    with dg.DagsterInstance.ephemeral() as instance:
        job = _job(reports)
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
                hint = _problem_hint(error.message, data_dir)
                if hint:
                    print(f"rom-pipeline run: {hint}", file=sys.stderr)
        published = any(e.event_type_value == "STEP_SUCCESS" and e.step_key == "publish__warehouse"
                        for e in result.all_events)
        if published:  # a later step (CSV exports, reports) failed
            print(f"rom-pipeline run: the warehouse WAS published ({warehouse_path}); a later step failed.",
                  file=sys.stderr)
        else:
            print("rom-pipeline run: NOT published; the previous warehouse (if any) is unchanged.", file=sys.stderr)
        return 1
    print(summarise(warehouse_path))
    if demo:
        print("DEMO MODE: published with the PUBLIC demo key: the pseudonyms protect nothing "
              "(set ROM_PSEUDONYM_KEY for real data).", file=sys.stderr)
    from rom_pipeline.lib.warehouse_reader import encryption_key

    if encryption_key():
        print(f"\nPublished: {warehouse_path} (encrypted at rest: attach it read-only with its key, "
              f"see README, 'Encryption at rest')")
        return 0
    print(f"\nPublished: {warehouse_path}\n"
          f"Query it read-only, e.g.:\n"
          f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{warehouse_path}', read_only=True)"
          f".sql('SELECT * FROM audit.deliveries'))\"")
    return 0
