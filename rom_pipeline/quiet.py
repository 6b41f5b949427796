"""A quiet night: nothing that a published figure depends on changed since the last publish.

``rom-pipeline run`` asks :func:`verdict` after it holds the data dir and has checked the key.
When nothing changed, the run records itself in ``audit.runs`` of the work database (status
``unchanged``, no figures, nothing recomputed), keeps the published warehouse, CSV exports and
reports as they are, and says so; the published warehouse's ``audit.runs`` gets the row at the
next publish (it is copied whole then). Everything else is a real run.

Nothing changed means all of these (each a reason for a real run when it does not hold):

- no full rebuild and no key rotation was asked for;
- the published warehouse exists and names the run that published it, and the work
  database's newest run is that run or a quiet night after it (a run that failed, was killed
  or did not publish since then is done again);
- the inputs fingerprint is the one that publish recorded: the same ``manifest.json`` files
  (path and sha256), reference files, parameters, source code and publish settings
  (:func:`rom_pipeline.lib.fingerprint.inputs_fingerprint`);
- no rejected delivery of the last publish is still under the export root (ingest reads a
  rejected delivery again every night: its files may have been completed since);
- no concern was missing from the export root at the last publish (a real run says so loudly).

Outputs made after the warehouse (the CSV exports, the reports) can lag behind it when the run
that published failed in them or ran ``--no-reports``: :attr:`Verdict.catch_up` names what must be
made again from the published warehouse, which the run does without recomputing anything.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path



@dataclass(frozen=True)
class Verdict:
    quiet: bool
    reason: str                          # why the run must work, or what it found (quiet)
    published_run_id: str | None = None
    published_at: object = None
    catch_up: tuple[str, ...] = ()       # "csv_exports", "reports": outputs behind the published warehouse
    detail: dict = field(default_factory=dict)


def _work(reason: str, **detail) -> Verdict:
    return Verdict(False, reason, detail=detail)


def _published(warehouse: Path):
    """(run row of the last publish, rejected deliveries) from the published warehouse, or None."""
    import duckdb

    from rom_pipeline.lib.warehouse_reader import encryption_key, open_read_only

    if not warehouse.is_file():
        return None
    try:
        con = open_read_only(warehouse, encryption_key(), alias="wh")
    except duckdb.Error:
        return None
    try:
        row = con.execute("""SELECT run_id, finished_at, inputs_fingerprint, manifests_fingerprint,
                                    parameters_sha256, source_sha256, missing_concerns
                             FROM audit.runs WHERE status = 'published' ORDER BY run_seq DESC LIMIT 1""").fetchone()
        rejected = con.execute("SELECT delivery_id, concern_id FROM audit.deliveries "
                               "WHERE status = 'rejected'").fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return (row, rejected) if row else None


def _work_runs(work_db: Path) -> list[tuple]:
    """(run_id, status) of the work database's runs, newest first (read-only; the caller holds the data dir)."""
    import duckdb

    if not work_db.is_file():
        return []
    con = duckdb.connect(str(work_db), read_only=True)
    try:
        return con.execute("SELECT run_id, status FROM audit.runs ORDER BY run_seq DESC").fetchall()
    except duckdb.CatalogException:
        return []
    finally:
        con.close()


def _rejected_still_there(export_root: Path, rejected: list[tuple]) -> list[str]:
    """Rejected deliveries whose folder (delivery id = its path under the export root) still has a manifest."""
    from rom_pipeline.lib.manifest import discover_manifests

    if not rejected:
        return []
    folders = {p.parent.relative_to(export_root).as_posix() for p in discover_manifests(export_root)}
    return sorted(d for d, _ in rejected if d in folders)


def _outstanding(export_root: Path, rejected: list[tuple], missing: str | None) -> str | None:
    still = _rejected_still_there(export_root, rejected)
    if still:
        return (f"rejected deliver{'ies' if len(still) > 1 else 'y'} {', '.join(still[:5])} still under the "
                "export root: ingest checks them again")
    missing = json.loads(missing) if missing else []
    if missing:
        return f"concern(s) {', '.join(missing)} missing from the export root at the last publish"
    return None


def outstanding(export_root: Path, warehouse: Path) -> str | None:
    """What the last publish left to look at again although the inputs are the same (for the schedule):
    a rejected delivery still under the export root, a concern missing from it. None: nothing."""
    published = _published(warehouse)
    if published is None:
        return None
    (*_, missing), rejected = published
    return _outstanding(export_root, rejected, missing)


def csv_exports_current(data_dir: Path, warehouse: Path) -> bool:
    """The CSV exports were written from the published warehouse: there are some, and none is older than it.

    The exports step writes every file beside its place and renames them after the warehouse is swapped
    in, and removes files of tables no longer exported; a step that failed leaves older files (or none).
    """
    from rom_pipeline.paths import CSV_DIR_NAME
    from rom_pipeline.lib.warehouse_reader import encryption_key

    if encryption_key():  # no CSV is written while the warehouse is encrypted
        return True
    published = warehouse.stat().st_mtime_ns
    files = list((data_dir / CSV_DIR_NAME).glob("*.csv"))
    return bool(files) and all(p.stat().st_mtime_ns >= published for p in files)


def reports_built_from(data_dir: Path) -> dict:
    """What the published reports were built from (their version folder's marker), or {}."""
    from rom_pipeline.reports.build import BUILT_FROM, REPORTS_LINK

    marker = data_dir / REPORTS_LINK / BUILT_FROM
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def reports_current(data_dir: Path, run_id: str, pdf: bool) -> bool:
    from rom_pipeline.reports.build import code_version

    built = reports_built_from(data_dir)
    return (built.get("run_id") == run_id and built.get("code_version") == code_version()
            and bool(built.get("pdf")) == pdf)


def verdict(export_root: Path, data_dir: Path, parameters_sha256: str, *, full_rebuild: bool = False,
            rekey: bool = False, reports: bool = True, pdf: bool = True) -> Verdict:
    """Whether tonight is quiet (nothing a published figure depends on changed), and why not."""
    from rom_pipeline.lib import fingerprint

    if full_rebuild:
        return _work("a full rebuild was asked for")
    if rekey:
        return _work("the pseudonym key is being rotated")
    warehouse = data_dir / "warehouse.duckdb"
    published = _published(warehouse)
    if published is None:
        return _work("nothing published yet")
    (run_id, finished_at, inputs_fp, manifests_fp, params_sha, source_sha, missing), rejected = published
    runs = _work_runs(data_dir / "work.duckdb")
    since = []
    for rid, status in runs:
        if rid == run_id:
            break
        since.append((rid, status))
    if not runs or runs[len(since):][:1] != [(run_id, "published")]:
        return _work(f"the work database does not hold the published run {run_id} as published")
    not_quiet = [(rid, status) for rid, status in since if status != "unchanged"]
    if not_quiet:
        rid, status = not_quiet[0]
        return _work(f"run {rid} after the last publish did not finish ({status}): its work is done again")
    if fingerprint.inputs_fingerprint(export_root, parameters_sha256) != inputs_fp:
        if fingerprint.manifests_fingerprint(export_root) != manifests_fp:
            return _work("a manifest.json was added, changed or removed since the last publish")
        if parameters_sha256 != params_sha:
            return _work("the parameters changed since the last publish")
        if fingerprint.source_sha256() != source_sha:
            return _work("the code changed since the last publish")
        return _work("the reference files or the publish settings changed since the last publish")
    left = _outstanding(export_root, rejected, missing)
    if left:
        return _work(left)
    catch_up = []
    if not csv_exports_current(data_dir, warehouse):
        catch_up.append("csv_exports")
    if reports and not reports_current(data_dir, run_id, pdf):
        catch_up.append("reports")
    return Verdict(True, f"nothing new since run {run_id} published ({finished_at})", run_id, finished_at,
                   tuple(catch_up))


def pdf_wanted() -> bool:
    """As the reports asset decides, without importing the Dagster definitions."""
    from rom_pipeline.reports.build import pdf_switched_on

    return pdf_switched_on()


def record_quiet_run(work_db: Path, run_id: str, published_run_id: str, trigger: str = "manual") -> int:
    """The quiet night in ``audit.runs`` of the work database: status ``unchanged``, nothing recomputed.

    Code version, parameters, SQL file hashes, fingerprints and key are the published run's (the
    verdict established they are the same); started and finished are now. Returns its run_seq.
    """
    import duckdb

    from rom_pipeline.lib import fingerprint

    con = duckdb.connect(str(work_db))
    try:
        con.begin()
        seq = con.execute("SELECT coalesce(max(run_seq), 0) + 1 FROM audit.runs").fetchone()[0]
        con.execute("""
            INSERT INTO audit.runs (run_id, run_seq, started_at, finished_at, status, trigger, code_version,
                   git_commit, source_sha256, parameters_json, parameters_sha256, sql_files_json,
                   inputs_fingerprint, manifests_fingerprint, refresh, concerns_recomputed,
                   figures_new, figures_changed, figures_removed, missing_concerns, key_fingerprint,
                   publish_settings)
            SELECT ?, ?, now(), now(), 'unchanged', ?, ?, ?, source_sha256, parameters_json, parameters_sha256,
                   sql_files_json, inputs_fingerprint, manifests_fingerprint, 'none', '[]', 0, 0, 0,
                   missing_concerns, key_fingerprint, publish_settings
            FROM audit.runs WHERE run_id = ?""",
                    [run_id, seq, trigger, fingerprint.code_version(), fingerprint.git_commit(), published_run_id])
        con.commit()
    finally:
        con.close()
    return seq
