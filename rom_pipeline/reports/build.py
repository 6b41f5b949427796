"""Build every report into a new folder, then swap it in whole.

Layout (``$ROM_DATA_DIR/reports/``):

    shared/index.html                               the shared reports, listed
    shared/concerns/<concern_id>-<year>.html|.pdf   benchmark report per concern and year (seed 001)
    shared/locations/<concern_id>-<location_id>.html  quality report per location (seed 000)
    managers/<concern_id>-<location_id>/index.html  manager package: overview of the location's therapists
    managers/<concern_id>-<location_id>/vestiging.html          the shared location report, for convenience
    managers/<concern_id>-<location_id>/behandelaar-<id>.html   one page per therapist of that location

``shared/`` is read from the published warehouse only. ``managers/`` adds therapist-level
figures from the work database; each folder is meant for one location's manager and
nobody else (docs/reports.md).

Atomic: ``reports`` is a symlink to ``.reports/<version>``. A new version is built in
``.reports/<version>.building``, renamed, and the symlink is replaced in one
``os.replace``; a reader sees the old tree or the new one, never a mix, and a failed
build leaves the published reports as they were. The previous version is kept (a
reader may still be in it); older ones are removed.
"""
from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import shutil
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rom_pipeline.reports import views
from rom_pipeline.reports.data import ManagerSource, SharedSource
from rom_pipeline.reports.pdf import find_chromium, html_files_to_pdf
from rom_pipeline.reports.render import render

REPORTS_LINK = "reports"
VERSIONS_DIR = ".reports"
KEEP_VERSIONS = 2
STALE_BUILD_HOURS = 6


@dataclass
class BuildResult:
    root: Path                      # the published reports folder (the symlink)
    version_dir: Path               # what it points at
    shared_files: list[str] = field(default_factory=list)    # relative to root
    manager_packages: list[str] = field(default_factory=list)  # relative folder per (concern, location)
    manager_files: int = 0
    concern_reports: int = 0
    location_reports: int = 0
    pdf_files: int = 0
    pdf_note: str = ""

    @property
    def total_files(self) -> int:
        return len(self.shared_files) + self.manager_files


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _rules(src: SharedSource) -> views.Rules:
    params = src.parameters()
    return views.Rules(min_n=int(float(params.get("min_n", 10))),
                       min_count=int(float(params.get("min_count_published", 5))),
                       targets=src.targets())


def build_reports(warehouse: Path, work_db: Path, data_dir: Path, *, pdf: bool = True,
                  encryption_key: str | None = None, log: Callable[[str], None] = print) -> BuildResult:
    data_dir = Path(data_dir)
    versions = data_dir / VERSIONS_DIR
    versions.mkdir(parents=True, exist_ok=True)
    stamp = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%f}-{os.getpid()}"
    building = versions / f"{stamp}.building"
    building.mkdir()
    result = BuildResult(root=data_dir / REPORTS_LINK, version_dir=versions / stamp)
    try:
        src = SharedSource(warehouse, encryption_key)
        try:
            run_info = src.run_info()
            work = ManagerSource(work_db)
            try:
                work_run = work.latest_run_id()
            finally:
                work.close()
            # Therapist pages (work database) must describe the same run as the shared reports (warehouse):
            # after a run that failed before publishing, the work database has moved on.
            if run_info.run_id and work_run and run_info.run_id != work_run:
                raise RuntimeError(f"the work database was last written by run {work_run}, the warehouse was "
                                   f"published by run {run_info.run_id}: refusing to mix their figures; "
                                   "the reports stay as they were until a run publishes")
            _build_all(src, warehouse, work_db, encryption_key, building, result, views.as_run(run_info), log,
                       with_pdf=pdf and find_chromium() is not None)
        finally:
            src.close()
        _print_pdfs(building, result, pdf, log)
        os.chmod(building / "managers", 0o700)  # packages go to one manager each, not to every reader
        building.rename(result.version_dir)
        _swap_link(result.root, result.version_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    _prune(versions, keep=result.version_dir, current_target=result.root)
    return result


@dataclass(frozen=True)
class _Common:
    """What every rendering task needs, computed once by the parent (picklable: tasks may run in workers)."""
    warehouse: str
    work_db: str
    encryption_key: str | None
    out: str
    rules: views.Rules
    names: dict
    n_by_year: dict
    known_years: dict
    run: dict
    export_dates: dict
    locations: dict


_SOURCES: dict[tuple, tuple[SharedSource, ManagerSource]] = {}


def _sources(common: _Common) -> tuple[SharedSource, ManagerSource]:
    """Read-only connections, opened once per process (a worker keeps them for all its tasks)."""
    key = (common.warehouse, common.work_db)
    if key not in _SOURCES:
        _SOURCES[key] = (SharedSource(Path(common.warehouse), common.encryption_key),
                         ManagerSource(Path(common.work_db)))
    return _SOURCES[key]


def _close_sources() -> None:
    while _SOURCES:
        _, (src, work) = _SOURCES.popitem()
        src.close()
        work.close()


def _concern_task(common: _Common, concern_id: str, year: int) -> dict:
    """Benchmark report of one concern and year (seed 001)."""
    src, _ = _sources(common)
    context = views.concern_context(src, concern_id, year, common.known_years[concern_id], common.names,
                                    common.n_by_year, common.run)
    rel = f"shared/concerns/{views.safe_name(concern_id)}-{year}.html"
    _write(Path(common.out) / rel, render("concern.html", **context))
    return {"concern_id": concern_id, "name": common.names.get(concern_id, concern_id), "year": year, "rel": rel,
            "file": rel.removeprefix("shared/")}


def _concern_locations_task(common: _Common, concern_id: str) -> dict:
    """Location report of every location of one concern, and each location's manager package."""
    src, work = _sources(common)
    out, rules = Path(common.out), common.rules
    locations = sorted(common.locations[concern_id], key=lambda l: (l["location_name"].casefold(), l["location_id"]))
    units = views.ConcernUnits(concern_id, src.unit_indicators(concern_id))
    export_date = common.export_dates.get(concern_id)
    year = views.funnel_year(units.years, export_date)
    bench_rows = src.location_benchmark(concern_id, year) if year else []
    breakdown_rows = src.breakdowns(concern_id, year) if year else []
    therapist_counts = work.therapists_per_experience(concern_id, year) if year else {}
    concern = {"id": concern_id, "name": common.names.get(concern_id, concern_id)}

    therapists = work.therapists(concern_id)
    bench = {(r["unit_id"], r["period_type"], r["period"], r["indicator"]): r
             for r in work.therapist_benchmark(concern_id)}
    counts = {(r["unit_id"], r["period_type"], r["period"]): r["n"] for r in work.therapist_counts(concern_id)}

    entries, packages, manager_files = [], [], 0
    for loc in locations:
        context = views.location_context(therapist_counts, concern_id, concern["name"], loc, locations,
                                         units, rules, export_date, common.run, bench_rows, breakdown_rows, year)
        html = render("location.html", **context)
        base = f"{views.safe_name(concern_id)}-{views.safe_name(loc['location_id'])}"
        rel = f"shared/locations/{base}.html"
        _write(out / rel, html)
        entries.append({"concern_id": concern_id, "concern": concern["name"], "location_id": loc["location_id"],
                        "name": loc["location_name"], "rel": rel, "file": rel.removeprefix("shared/")})

        # The manager package: the shared report plus therapist pages, this location's therapists only.
        package = out / "managers" / base
        _write(package / "vestiging.html", html)
        own = [t for t in therapists if t["location_id"] == loc["location_id"]]
        location_view = {"id": loc["location_id"], "name": loc["location_name"]}
        for t in own:
            page = views.therapist_context(t, own, bench, counts, units, units.years, units.quarters, year,
                                           rules, location_view, concern, export_date, common.run)
            _write(package / f"behandelaar-{views.safe_name(t['therapist_id'])}.html", render("therapist.html", **page))
        _write(package / "index.html", render(
            "manager_index.html", title=f"Managerpakket vestiging: {loc['location_name']}",
            location=location_view, concern=concern, year=year, rules=context["rules"], run=common.run,
            therapists=views.manager_overview(own, bench, counts, year, rules)))
        packages.append(f"managers/{base}")
        manager_files += len(own) + 2
    return {"entries": entries, "packages": packages, "manager_files": manager_files}


def _print_pdfs(out: Path, result: BuildResult, pdf: bool, log) -> None:
    """Each concern report as PDF beside its HTML, when asked and a Chromium is found; else a note why not."""
    if not pdf:
        result.pdf_note = "PDFs switched off"
        return
    chromium = find_chromium()
    if chromium is None:
        result.pdf_note = "no Chromium binary found (set ROM_CHROMIUM or install chromium): PDFs skipped"
        log(result.pdf_note)
        return
    concern_html = sorted((out / "shared" / "concerns").glob("*.html"))
    html_files_to_pdf(chromium, concern_html)
    result.pdf_files = len(concern_html)
    result.shared_files += [f"shared/concerns/{f.with_suffix('.pdf').name}" for f in concern_html]
    result.pdf_note = f"{len(concern_html)} PDFs printed with {chromium}"
    log(result.pdf_note)


def _workers() -> int:
    """Worker processes for rendering: ``ROM_REPORTS_WORKERS``, else one per available core but one, at most
    4 (1 = in-process). Charts dominate the time (matplotlib, about 60 ms each)."""
    configured = os.environ.get("ROM_REPORTS_WORKERS")
    if configured:
        return max(1, int(configured))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores - 1))


def _run_tasks(tasks: list[tuple], workers: int) -> list:
    """Run (function, *args) tasks, in worker processes when there is more than one worker."""
    if workers <= 1 or len(tasks) <= 1:
        try:
            return [fn(*args) for fn, *args in tasks]
        finally:
            _close_sources()
    context = multiprocessing.get_context("spawn")  # no fork: the parent (Dagster) has threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(fn, *args) for fn, *args in tasks]
        return [f.result() for f in futures]


def _build_all(src: SharedSource, warehouse: Path, work_db: Path, encryption_key: str | None, out: Path,
               result: BuildResult, run: dict, log, with_pdf: bool = False) -> None:
    concern_years = src.concern_years()
    known = defaultdict(list)
    for concern_id, year in concern_years:
        known[concern_id].append(year)
    by_concern = defaultdict(list)
    for loc in src.locations():
        by_concern[loc["concern_id"]].append(loc)
    common = _Common(str(warehouse), str(work_db), encryption_key, str(out), _rules(src), src.concern_names(),
                     src.n_indicators_by_year(), dict(known), run, src.export_dates(), dict(by_concern))

    # Heaviest first (locations with their manager packages), then one task per concern report.
    tasks = [(_concern_locations_task, common, c) for c in sorted(by_concern)]
    tasks += [(_concern_task, common, c, y) for c, y in concern_years]
    workers = _workers()
    outcomes = _run_tasks(tasks, workers)
    location_results, concern_entries = outcomes[:len(by_concern)], outcomes[len(by_concern):]

    location_entries = [e for r in location_results for e in r["entries"]]
    result.shared_files += [e["rel"] for e in concern_entries] + [e["rel"] for e in location_entries]
    result.manager_packages += [p for r in location_results for p in r["packages"]]
    result.manager_files += sum(r["manager_files"] for r in location_results)
    result.concern_reports, result.location_reports = len(concern_entries), len(location_entries)
    log(f"{len(concern_entries)} concern benchmark reports, {len(location_entries)} location reports and "
        f"manager packages ({workers} worker{'s' if workers > 1 else ''})")

    _write(out / "shared" / "index.html", render(
        "index.html", title="Rapporten", concerns=concern_entries, locations=location_entries, run=run,
        with_pdf=with_pdf))
    result.shared_files.append("shared/index.html")
    (out / "managers").mkdir(exist_ok=True)


def _swap_link(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` in one atomic rename (a real folder in the way is moved aside first)."""
    if link.exists() and not link.is_symlink():
        link.rename(target.parent / f"{target.name}.previous-folder")
    tmp = link.with_name(f".{link.name}.{target.name}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)


def _prune(versions: Path, keep: Path, current_target: Path) -> None:
    """Keep the new version and the one before it (a reader may still be in it); remove older ones,
    and leftovers of builds that died (``*.building`` older than STALE_BUILD_HOURS)."""
    entries = sorted((p for p in versions.iterdir() if p.is_dir()), key=lambda p: p.name)
    finished = [p for p in entries if not p.name.endswith(".building")]
    keep_set = {keep.resolve(), current_target.resolve()} | {p.resolve() for p in finished[-KEEP_VERSIONS:]}
    now = dt.datetime.now().timestamp()
    for p in entries:
        if p.resolve() in keep_set:
            continue
        if p.name.endswith(".building") and now - p.stat().st_mtime < STALE_BUILD_HOURS * 3600:
            continue
        shutil.rmtree(p, ignore_errors=True)
