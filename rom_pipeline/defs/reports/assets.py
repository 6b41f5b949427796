"""Reports: the benchmark report per concern and year, the quality report per location, and the
per-location manager packages, built from the published warehouse (and, for therapist pages only,
the work database) into ``$ROM_DATA_DIR/reports``. The body is thin: the rendering is
:mod:`rom_pipeline.reports`; what is produced and who may see it is docs/reports.md.
"""


import dagster as dg

from rom_pipeline.defs.sql_asset import DUCKDB_POOL, OWNERS
from rom_pipeline.lib.warehouse_reader import encryption_key as warehouse_encryption_key
from rom_pipeline.reports import build_reports
from rom_pipeline.reports.build import code_version, pdf_switched_on
from rom_pipeline.resources import Workspace



class ReportsConfig(dg.Config):
    pdf: bool = True  # also lay out each concern report as an A4 PDF (fpdf2)


def _pdf_wanted(config: ReportsConfig) -> bool:
    return config.pdf and pdf_switched_on()


@dg.asset(
    key=dg.AssetKey(["reports", "benchmark_reports"]),
    group_name="reports",
    deps=[dg.AssetKey(["publish", "warehouse"])],
    description="$ROM_DATA_DIR/reports: shared/ (benchmark report per concern and year as in seed 001, HTML and "
                "PDF; quality report per location; an index), read from the published warehouse only; "
                "managers/<concern>-<location>/ (the location report plus one page per therapist of that "
                "location, from the work database), one package per location manager. Swapped in whole.",
    owners=OWNERS,
    kinds={"html", "pdf"},
    code_version=code_version(),
    metadata={"module": dg.MetadataValue.path("rom_pipeline/reports"),
              "docs": dg.MetadataValue.path("docs/reports.md")},
    pool=DUCKDB_POOL,  # reads work.duckdb: never beside a writer (docs/operations.md)
)
def benchmark_reports(context: dg.AssetExecutionContext, config: ReportsConfig,
                      workspace: Workspace) -> dg.MaterializeResult:
    encryption_key = warehouse_encryption_key()
    if encryption_key:
        context.log.warning("the warehouse is encrypted at rest; the reports are plain HTML: keep "
                            f"{workspace.data_path / 'reports'} on storage with the same protection")
    result = build_reports(workspace.warehouse_path, workspace.work_db_path, workspace.data_path,
                           pdf=_pdf_wanted(config), encryption_key=encryption_key, log=context.log.info)
    # Counts and paths only: no therapist id (file names of therapist pages) in Dagster's metadata.
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(result.root)),
        "index": dg.MetadataValue.path(str(result.root / "shared" / "index.html")),
        "files": result.total_files,
        "shared_files": len(result.shared_files),
        "concern_reports": result.concern_reports,
        "location_reports": result.location_reports,
        "manager_packages": len(result.manager_packages),
        "manager_files": result.manager_files,
        "pdf_files": result.pdf_files,
        "pdf": result.pdf_note,
        "rendering_tasks_run": result.rendered_tasks,
        "rendering_tasks_unchanged": result.reused_tasks,
        "shared_paths": dg.MetadataValue.json(sorted(result.shared_files)),
        "manager_package_paths": dg.MetadataValue.json(sorted(result.manager_packages)),
    })


ASSETS = [benchmark_reports]
