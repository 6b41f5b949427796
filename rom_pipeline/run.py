"""One full in-process run of the nightly job, with progress and a summary a person can read.

Dagster is imported only when the job runs: a quiet night (rom_pipeline.quiet) does not need it.
The run holds the data dir's lock (rom_pipeline/runlock.py) from before the job starts to after the
summary, and executes on the persistent Dagster instance of the data dir (``$DAGSTER_HOME``, default
``$ROM_DATA_DIR/dagster_home``), so `dagster dev` on the same home shows it with its materialisations
and checks. Dagster's full step log goes to ``$ROM_DATA_DIR/logs/``.
"""
from __future__ import annotations

import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import duckdb


def demo_key_in_use() -> bool:
    return (not os.environ.get("ROM_PSEUDONYM_KEY")
            and os.environ.get("ROM_DEMO", "") not in ("", "0", "false"))


def preflight(parameters: bool = True) -> str | None:
    """Why the run must not start (a message naming the problem), or None. Writes nothing.

    No ROM_PSEUDONYM_KEY outside demo mode (or one that is too short); an encryption
    key for a DuckDB that cannot write encrypted files; (``parameters``) an indicator catalogue
    that does not bind (a quiet night skips that check: its parameters and code are those of
    the last publish, which passed it).
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
    return _parameters_problem() if parameters else None


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


def _disk_full(data_dir) -> bool:
    """Less than 1 MiB free where the data dir is (SQLite and DuckDB then fail with other words)."""
    import shutil

    try:
        return shutil.disk_usage(data_dir).free < 2**20
    except OSError:
        return False


def _problem_hint(message: str, data_dir) -> str | None:
    """A plain sentence for failures whose cause is the machine, not the data."""
    if "No space left on device" in message or "Errno 28" in message or _disk_full(data_dir):
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


def _file_identity(path: Path):
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _attach_published(warehouse_path):
    from rom_pipeline.lib.warehouse_reader import encryption_key, open_read_only

    return open_read_only(warehouse_path, encryption_key())


def summarise(warehouse_path) -> str:
    con = _attach_published(warehouse_path)
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


def delivery_statuses(warehouse_path) -> dict[str, str]:
    """delivery id -> status in the published warehouse ({} when there is none yet or it cannot be read)."""
    if not Path(warehouse_path).is_file():
        return {}
    try:
        con = _attach_published(warehouse_path)
    except duckdb.Error:
        return {}
    try:
        return dict(con.execute("SELECT delivery_id, status FROM audit.deliveries").fetchall())
    except duckdb.Error:
        return {}
    finally:
        con.close()


def changes(before: dict[str, str], warehouse_path, run_id: str) -> str:
    """What this run changed since the last publish: deliveries (new, superseded, rejected) and figures
    (new, changed, removed, from audit.runs, i.e. audit.published_figures of this run)."""
    after = delivery_statuses(warehouse_path)
    new = sorted(d for d, s in after.items() if d not in before and s != "rejected")
    superseded = sorted(d for d, s in after.items() if s == "superseded" and before.get(d) != "superseded")
    rejected = sorted(d for d, s in after.items() if s == "rejected" and before.get(d) != "rejected")
    con = _attach_published(warehouse_path)
    try:
        row = con.execute("SELECT figures_new, figures_changed, figures_removed FROM audit.runs WHERE run_id = ?",
                          [run_id]).fetchone()
    finally:
        con.close()
    figures = [int(v or 0) for v in row] if row else [0, 0, 0]

    def named(ids: list[str]) -> str:
        return f" ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})" if ids else ""

    if not (new or superseded or rejected or any(figures)):
        return ("since the last run: nothing changed (no delivery new, superseded or rejected; "
                "no figure new, changed or removed)")
    return "\n".join([
        "since the last run:",
        f"  deliveries  {len(new)} new{named(new)}, {len(superseded)} superseded{named(superseded)}, "
        f"{len(rejected)} rejected{named(rejected)}",
        f"  figures     {figures[0]:,} new, {figures[1]:,} changed, {figures[2]:,} removed "
        f"(audit.published_figures)"])


def _materialised(result) -> dict[tuple, dict]:
    """asset key path -> metadata values of its materialisation in this run."""
    found = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            found[tuple(materialization.asset_key.path)] = {
                k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    return found


def outputs(result, warehouse_path, data_dir, log_path, home) -> str:
    """Where every output of the run is, from the materialisations of this run."""
    done = _materialised(result)
    lines = ["outputs:", f"  warehouse         {warehouse_path}"]
    csv = done.get(("publish", "csv_exports"))
    if csv is None:
        lines.append("  CSV folder        not written by this run")
    elif csv.get("skipped"):
        lines.append(f"  CSV folder        not written: {csv['skipped']}")
    else:
        lines.append(f"  CSV folder        {csv['folder']} ({csv['files']} files)")
    reports = done.get(("reports", "benchmark_reports"))
    if reports is None:
        lines.append(f"  reports           not rebuilt by this run (--no-reports): {data_dir / 'reports'} is as it was")
    else:
        lines.append(f"  reports index     {reports['index']} ({reports['files']} files)")
        lines.append(f"  manager packages  {Path(reports['path']) / 'managers'} "
                     f"({reports['manager_packages']} packages, one per location manager)")
    lines.append(f"  step log          {log_path}")
    lines.append(f"  Dagster home      {home} (`./dev dagster dev -w workspace.yaml` shows this run)")
    return "\n".join(lines)


LOGS_DIR_NAME = "logs"
LOGS_KEPT = 30


def _step_log_path(data_dir: Path, run_id: str) -> Path:
    """$ROM_DATA_DIR/logs/<UTC start>_<run id>.log; the newest LOGS_KEPT are kept."""
    folder = data_dir / LOGS_DIR_NAME
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(folder.glob("*.log"))[:-(LOGS_KEPT - 1)]:
        old.unlink(missing_ok=True)
    return folder / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}_{run_id}.log"


def _instance_home() -> Path:
    """The persistent Dagster home of this data dir (created, telemetry off, when new)."""
    from rom_pipeline.paths import dagster_home

    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("# made by rom-pipeline run (docs/operations.md): a persistent home for CLI runs and "
                          "`dagster dev`\ntelemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _job(reports: bool, only=()):
    """The nightly job, or (``reports=False``) the same job without the reports group, or (``only``) the
    catch-up of a quiet night: the outputs made from the published warehouse that lag behind it."""
    import dagster as dg

    from rom_pipeline.definitions import defs, nightly_job

    if only:
        catch_up = dg.define_asset_job(f"{nightly_job.name}_catch_up", tags=nightly_job.tags,
                                       selection=dg.AssetSelection.assets(*[CATCH_UP_ASSETS[o] for o in only]),
                                       executor_def=dg.in_process_executor, hooks=nightly_job.hooks)
        return dg.Definitions.merge(defs, dg.Definitions(jobs=[catch_up])).resolve_job_def(catch_up.name)
    if reports:
        return defs.resolve_job_def(nightly_job.name)
    without = dg.define_asset_job(f"{nightly_job.name}_without_reports", tags=nightly_job.tags,
                                  selection=dg.AssetSelection.all() - dg.AssetSelection.groups("reports"),
                                  executor_def=dg.in_process_executor, hooks=nightly_job.hooks)
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[without])).resolve_job_def(without.name)


def _failures(result) -> list[tuple[str, str]]:
    """(where, root cause) of every failed step; the run's own failure when no step failed (e.g. a resource)."""
    from rom_pipeline.progress import root_error

    found = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = root_error(event.step_failure_data.error)
            found.append((event.step_key, error.message.strip() if error else ""))
    if not found:
        for event in result.all_events:
            data = event.event_specific_data
            error = getattr(data, "error", None)
            if event.event_type_value in ("RESOURCE_INIT_FAILURE", "PIPELINE_FAILURE", "RUN_FAILURE") and error:
                found.append(("run", root_error(error).message.strip()))
                break
    return found


def run_pipeline(quiet: bool = False, reports: bool = True, verbose: bool = False) -> int:
    from rom_pipeline.resources import resolved_paths
    from rom_pipeline.runlock import EXIT_BUSY, DataDirBusy, hold

    logging.getLogger("dagster").setLevel(logging.CRITICAL)
    export_dir, data_dir = resolved_paths()
    # The catalogue check (1-2 s) runs inside the lock, after the quiet-night verdict, which may skip it; a
    # data dir without a work database cannot have a quiet night, so there it runs first and a bad
    # catalogue leaves the data dir as it was (not even a lock file).
    first_run = not (data_dir / "work.duckdb").exists()
    problem = preflight(parameters=first_run) or _export_root_problem(export_dir)
    if problem:
        print(f"rom-pipeline run: NOT started: {problem}", file=sys.stderr)
        return 2
    import uuid

    run_id = str(uuid.uuid4())  # a Dagster run id, known before the run: the lock file names it
    warehouse = _file_identity(data_dir / "warehouse.duckdb")
    try:
        with hold(data_dir, run_id, "rom-pipeline run"):
            return _run_holding_the_data_dir(export_dir, data_dir, run_id, quiet, reports, verbose)
    except DataDirBusy as exc:
        print(f"rom-pipeline run: NOT started: {exc} (exit {EXIT_BUSY})", file=sys.stderr)
        return EXIT_BUSY
    except Exception as exc:  # noqa: BLE001 - outside any step: the Dagster instance, the lock file, the disk
        message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        print(f"FAILED run: {message[:800]}", file=sys.stderr)
        hint = _problem_hint(str(exc), data_dir)
        if hint:
            print(f"rom-pipeline run: {hint}", file=sys.stderr)
        if _file_identity(data_dir / "warehouse.duckdb") != warehouse:
            print(f"rom-pipeline run: the warehouse WAS published ({data_dir / 'warehouse.duckdb'}); "
                  "the run failed after that.", file=sys.stderr)
        else:
            print("rom-pipeline run: NOT published; the previous warehouse (if any) is unchanged.", file=sys.stderr)
        return 1


def _run_holding_the_data_dir(export_dir, data_dir, run_id, quiet, reports, verbose) -> int:
    # Inside the lock: the key check reads the work database, which no other run may be writing.
    problem = _key_problem(export_dir, data_dir)
    if problem:
        from rom_pipeline.defs.ingest.keys import KEY_EXIT_STATUS

        print(f"rom-pipeline run: NOT started: {problem}", file=sys.stderr)
        return KEY_EXIT_STATUS
    verdict = _quiet_verdict(export_dir, data_dir, reports)
    if verdict.quiet:
        return _quiet_night(verdict, export_dir, data_dir, run_id, quiet, reports, verbose)
    problem = _parameters_problem()
    if problem:
        print(f"rom-pipeline run: NOT started: {problem}", file=sys.stderr)
        return 2
    if not quiet:
        print(f"rom-pipeline run: {verdict.reason}: running the nightly job", flush=True)
    return _run_job(export_dir, data_dir, run_id, quiet, reports, verbose)


def _quiet_verdict(export_dir, data_dir, reports: bool):
    """rom_pipeline.quiet.verdict for this run (parameters that do not load: not quiet, the run says why)."""
    from rom_pipeline.config import load_parameters
    from rom_pipeline.defs.ingest.keys import rekey_requested
    from rom_pipeline.lib.concern_scope import force_full_rebuild
    from rom_pipeline.quiet import Verdict, pdf_wanted, verdict

    try:
        parameters_sha = load_parameters().sha256
    except Exception as exc:  # noqa: BLE001 - _parameters_problem names it
        return Verdict(False, f"the parameters do not load ({exc.__class__.__name__})")
    return verdict(Path(export_dir), Path(data_dir), parameters_sha, full_rebuild=force_full_rebuild(),
                   rekey=rekey_requested(), reports=reports, pdf=pdf_wanted())


def _quiet_night(verdict, export_dir, data_dir, run_id, quiet, reports, verbose) -> int:
    """Nothing new: record the run, keep the warehouse (and CSV exports and reports unless they lag behind it)."""
    from rom_pipeline.quiet import record_quiet_run

    warehouse_path = data_dir / "warehouse.duckdb"
    log_path = _step_log_path(data_dir, run_id)
    seq = record_quiet_run(data_dir / "work.duckdb", run_id, verdict.published_run_id)
    lines = [f"rom-pipeline run: deliveries from {export_dir}",
             f"                  work and results in {data_dir}",
             f"                  run {run_id}, step log {log_path}",
             f"QUIET NIGHT: {verdict.reason}: the same deliveries (manifest.json), reference files, parameters, "
             "code and publish settings; no rejected delivery to look at again, no concern missing.",
             f"  recorded      audit.runs of work.duckdb: run {seq} ({run_id}), status 'unchanged'; the published "
             "warehouse's audit.runs lists it from the next publish",
             f"  kept as is    warehouse {warehouse_path} (run {verdict.published_run_id}), CSV exports"
             + (", reports" if reports and "reports" not in verdict.catch_up else "")]
    log_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines), flush=True)
    if verdict.catch_up:
        # The warehouse is current but an output made from it lags (the publishing run failed in it, or ran
        # --no-reports): make only that again, from the published warehouse, as a Dagster run of those assets.
        print(f"  catching up   {', '.join(verdict.catch_up)} (behind the published warehouse)", flush=True)
        return _run_job(export_dir, data_dir, run_id, quiet, reports, verbose, only=verdict.catch_up,
                        log_path=log_path)
    print(changes(delivery_statuses(warehouse_path), warehouse_path, run_id))
    print(f"\nPublished (unchanged): {warehouse_path}")
    return 0


CATCH_UP_ASSETS = {"csv_exports": ("publish", "csv_exports"), "reports": ("reports", "benchmark_reports")}


def _run_job(export_dir, data_dir, run_id, quiet, reports, verbose, only=(), log_path=None) -> int:
    import dagster as dg

    from rom_pipeline.progress import PROGRESS

    warehouse_path = data_dir / "warehouse.duckdb"
    demo = demo_key_in_use()  # cli.py prints the demo banner before the run; run.py repeats it at the end
    home = _instance_home()
    if log_path is None:
        log_path = _step_log_path(data_dir, run_id)
        print(f"rom-pipeline run: deliveries from {export_dir}\n"
              f"                  work and results in {data_dir}\n"
              f"                  run {run_id}, step log {log_path}", flush=True)
    before = delivery_statuses(warehouse_path)
    loggers = {"console": {"config": {"log_level": "CRITICAL"}}, "step_log": {"config": {"path": str(log_path)}}}
    if not quiet:
        # How often a plain (non-terminal) console says a long step is still running.
        interval = float(os.environ.get("ROM_PROGRESS_INTERVAL_SECONDS") or 10)
        loggers["progress"] = {"config": {"verbose": verbose, "interval": interval}}
    with dg.DagsterInstance.get() as instance:
        job = _job(reports, only)
        try:
            result = job.execute_in_process(instance=instance, raise_on_error=False, run_id=run_id,
                                            run_config={"loggers": loggers})
        finally:
            progress = PROGRESS.pop("last", None)
            if progress is not None:
                progress.close()
    if not result.success:
        for where, message in _failures(result):
            print(f"FAILED {where}: {message[:800]}", file=sys.stderr)
            hint = _problem_hint(message, data_dir)
            if hint:
                print(f"rom-pipeline run: {hint}", file=sys.stderr)
        published = any(e.event_type_value == "STEP_SUCCESS" and e.step_key == "publish__warehouse"
                        for e in result.all_events)
        if published:  # a later step (CSV exports, reports) failed
            print(f"rom-pipeline run: the warehouse WAS published ({warehouse_path}); a later step failed.",
                  file=sys.stderr)
        else:
            print("rom-pipeline run: NOT published; the previous warehouse (if any) is unchanged.", file=sys.stderr)
        print(f"rom-pipeline run: the full step log is {log_path}", file=sys.stderr)
        return 1
    print(summarise(warehouse_path))
    print(changes(before, warehouse_path, run_id))
    print(outputs(result, warehouse_path, data_dir, log_path, home))
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
