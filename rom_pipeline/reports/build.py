"""Build every report into a new folder, then swap it in whole.

Layout (``$ROM_DATA_DIR/reports/``):

    shared/index.html                               the shared reports, listed
    shared/concerns/<concern_id>-<year>.html|.pdf   benchmark report per concern and year (seed 001)
    shared/locations/<concern_id>-<location_id>.html  quality report per location (seed 000)
    managers/<concern_id>-<location_id>/index.html  manager package: overview of the location's therapists
    managers/<concern_id>-<location_id>/vestiging.html          the shared location report, for convenience
    managers/<concern_id>-<location_id>/behandelaar-<id>.html   one page per therapist of that location
    managers/<concern_id>-<location_id>/niet-op-koers.html      its open episodes not on track, per therapist

``shared/`` is read from the published warehouse only. ``managers/`` adds therapist-level
figures from the work database; each folder is meant for one location's manager and
nobody else (docs/reports.md).

Atomic: ``reports`` is a symlink to ``.reports/<version>``. A new version is built in
``.reports/<version>.building``, renamed, and the symlink is replaced in one
``os.replace``; a reader sees the old tree or the new one, never a mix, and a failed
build leaves the published reports as they were. The previous version is kept (a
reader may still be in it); older ones are removed.

Incremental: each rendering task (one concern report with its PDF; one concern's location
reports and manager packages) records the queries it made and a digest of their results (with
the rendering code's version) in ``.pages.json`` of its version. The next build replays those
queries; when the digest is the same, the task's files are hard-linked from the previous version
instead of rendered again (a concern with no new delivery keeps its pages). The new version is
still complete on its own and swapped in whole. Tasks run in a process pool sized by the cores.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing
import os
import shutil
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rom_pipeline.reports import labels, views
from rom_pipeline.reports.data import ManagerSource, SharedSource, recording_reads
from rom_pipeline.reports.render import render

PACKAGE_DIR = Path(__file__).resolve().parent

REPORTS_LINK = "reports"
VERSIONS_DIR = ".reports"
KEEP_VERSIONS = 2
STALE_BUILD_HOURS = 6
PAGES_MANIFEST = ".pages.json"
BUILT_FROM = ".built_from.json"  # the published run, rendering code and PDF setting of a version


PDF_ENV = "ROM_REPORTS_PDF"  # "0" / "false" / "no" / "off" switch the PDFs off (e.g. in test runs)


def pdf_switched_on() -> bool:
    """The deployment's PDF switch (ROM_REPORTS_PDF), read by the reports asset and by a quiet night."""
    return os.environ.get(PDF_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def code_version() -> str:
    """Hash of the rendering code, templates and stylesheet: a change to any of them renders every page again."""
    digest = hashlib.sha256()
    for path in sorted(p for p in PACKAGE_DIR.rglob("*") if p.is_file() and p.suffix in {".py", ".html", ".css"}):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


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
    rendered_tasks: int = 0         # rendering tasks run (a concern report; one concern's location pages)
    reused_tasks: int = 0           # tasks whose inputs were unchanged: files linked from the previous version

    @property
    def total_files(self) -> int:
        return len(self.shared_files) + self.manager_files


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _rules(src: SharedSource) -> views.Rules:
    """The parameters the warehouse was made with (config.parameters): for the reports' texts and the
    "<5" of counts; suppression itself is the published ``suppressed`` flag."""
    params = src.parameters()
    missing = [p for p in ("min_n", "min_count_published") if p not in params]
    if missing:
        raise RuntimeError(f"the warehouse's config.parameters lacks {', '.join(missing)}: publish it again")
    return views.Rules(min_n=int(float(params["min_n"])), min_count=int(float(params["min_count_published"])),
                       targets=src.targets(),
                       indicators=labels.IndicatorCatalogue.from_rows(src.indicator_catalogue()))


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
                       with_pdf=pdf, previous=_current_version(result.root))
        finally:
            src.close()
        result.pdf_note = f"{result.pdf_files} PDFs (fpdf2)" if pdf else "PDFs switched off"
        # What these reports show: a quiet night keeps them when the warehouse is still this run's (rom_pipeline.quiet).
        (building / BUILT_FROM).write_text(json.dumps(
            {"run_id": run_info.run_id, "code_version": code_version(), "pdf": pdf}), encoding="utf-8")
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
    with_pdf: bool = True
    previous: str | None = None     # the published version folder, whose unchanged pages are reused
    manifest: dict = field(default_factory=dict)  # its .pages.json: task key -> queries, digest, files, result
    code_version: str = ""


class _Memo:
    """A data source whose query results are kept for the build: the reports of one concern's years, and
    every concern's reports of one year, ask the same questions (results are read, never changed). With each
    result, the fingerprints of the query results it was made from (:func:`data.recording_reads`)."""

    def __init__(self, source):
        self._source, self._cache = source, {}

    def __getattr__(self, method: str):
        fn = getattr(self._source, method)

        def call(*args):
            return self.read(method, args)[0]
        return call

    def read(self, method: str, args: tuple) -> tuple:
        """(result, fingerprints of what it read) of ``method(*args)``."""
        key = (method, args)
        if key not in self._cache:
            with recording_reads() as found:
                value = getattr(self._source, method)(*args)
            self._cache[key] = (value, tuple(found))
        return self._cache[key]

    def close(self) -> None:
        self._cache.clear()
        self._source.close()


_SOURCES: dict[tuple, tuple[_Memo, _Memo]] = {}


def _sources(common: _Common) -> tuple[_Memo, _Memo]:
    """Read-only connections, opened once per process and build (a worker keeps them for all its tasks)."""
    key = (common.warehouse, common.work_db, common.out)
    if key not in _SOURCES:
        _close_sources()  # a previous build's, in this process
        _SOURCES[key] = (_Memo(SharedSource(Path(common.warehouse), common.encryption_key)),
                         _Memo(ManagerSource(Path(common.work_db))))
    return _SOURCES[key]


def _close_sources() -> None:
    while _SOURCES:
        _, (src, work) = _SOURCES.popitem()
        src.close()
        work.close()


class _Recorder:
    """A data source (a :class:`_Memo`) whose calls are remembered (method, arguments) with the fingerprints
    of the query results each read, for the digest."""

    def __init__(self, name: str, source: _Memo, calls: list):
        self._name, self._source, self._calls = name, source, calls

    def __getattr__(self, method: str):
        getattr(self._source, method)  # an unknown method fails here, as on the source

        def call(*args):
            value, found = self._source.read(method, args)
            self._calls.append(([self._name, method, list(args)], found))
            return value
        return call


def _leaf(value):
    """A value as a stable, hashable structure: floats to 9 significant digits (a summation-order wobble in
    the last bits is not a change), rows (dicts) as their values in column order."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return tuple((k, _leaf(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_leaf(v) for v in value)
    return value


def _digest(common: _Common, key: str, extra, results: list) -> str:
    """The task's inputs: code version, PDF switch, task, the run-wide values it uses (``extra``) and each call
    it made with the fingerprints of the query results that call read (computed by DuckDB, data.py)."""
    digest = hashlib.sha256()
    digest.update(repr((common.code_version, common.with_pdf, key, _leaf(extra))).encode())
    for call, found in results:
        digest.update(repr((call, found)).encode())
    return digest.hexdigest()


def _reuse(common: _Common, key: str, extra) -> dict | None:
    """The previous build's outcome of this task when its inputs are unchanged: files linked into the new
    version. None: render it."""
    prev = common.manifest.get(key)
    if not prev or not common.previous:
        return None
    src, work = _sources(common)
    sources = {"shared": src, "work": work}
    try:
        results = [(call, sources[call[0]].read(call[1], tuple(call[2]))[1]) for call in prev["calls"]]
    except Exception:  # a query of an older code version: render again
        return None
    if _digest(common, key, extra, results) != prev["digest"]:
        return None
    old, new = Path(common.previous), Path(common.out)
    if not all((old / f).is_file() for f in prev["files"]):
        return None
    for f in prev["files"]:
        (new / f).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(old / f, new / f)
        except OSError:
            shutil.copy2(old / f, new / f)
    return {**prev["result"], "manifest": {key: prev}, "reused": True}


def _task(common: _Common, key: str, fn, extra, *args) -> dict:
    """Run one rendering task, or reuse its previous pages when nothing it read has changed."""
    reused = _reuse(common, key, extra)
    if reused is not None:
        return reused
    src, work = _sources(common)
    calls: list = []
    result, files = fn(common, _Recorder("shared", src, calls), _Recorder("work", work, calls), *args)
    entry = {"calls": [c for c, _ in calls], "digest": _digest(common, key, extra, calls), "files": files,
             "result": result}
    return {**result, "manifest": {key: entry}, "reused": False}


def _concern_task(common: _Common, src, work, concern_id: str, year: int) -> tuple[dict, list[str]]:
    """Benchmark report of one concern and year (seed 001), and its PDF."""
    context = views.concern_context(src, concern_id, year, common.known_years[concern_id], common.names,
                                    common.n_by_year, common.run, rules=common.rules,
                                    casemix_rows=src.casemix(concern_id, str(year)),
                                    location_names={l["location_id"]: l["location_name"]
                                                    for l in common.locations.get(concern_id, [])})
    rel = f"shared/concerns/{views.safe_name(concern_id)}-{year}.html"
    html = render("concern.html", **context)
    _write(Path(common.out) / rel, html)
    files = [rel]
    if common.with_pdf:
        from rom_pipeline.reports.pdf import render_pdf  # fpdf2 (and Pillow) only in a process that writes PDFs

        render_pdf(html, Path(common.out) / rel.replace(".html", ".pdf"))
        files.append(rel.replace(".html", ".pdf"))
    return ({"concern_id": concern_id, "name": common.names.get(concern_id, concern_id), "year": year, "rel": rel,
             "file": rel.removeprefix("shared/"), "pdf": len(files) > 1}, files)


def _concern_locations_task(common: _Common, src, work, concern_id: str) -> tuple[dict, list[str]]:
    """Location report of every location of one concern, and each location's manager package."""
    out, rules = Path(common.out), common.rules
    files: list[str] = []
    locations = sorted(common.locations[concern_id], key=lambda l: (l["location_name"].casefold(), l["location_id"]))
    units = views.ConcernUnits(concern_id, src.unit_indicators(concern_id))
    export_date = common.export_dates.get(concern_id)
    year = views.funnel_year(units.years, export_date)
    bench_rows = src.location_benchmark(concern_id, year) if year else []
    breakdown_rows = src.breakdowns(concern_id, year) if year else []
    casemix_rows = src.casemix(concern_id, year) if year else []
    concern = {"id": concern_id, "name": common.names.get(concern_id, concern_id)}

    therapists = work.therapists(concern_id)
    flagged = work.flagged_episodes(concern_id)
    courses = work.flagged_courses(concern_id) if flagged else []
    course_rows = work.expected_course() if flagged else []
    not_on_track = src.not_on_track_counts(concern_id)
    bench = {(r["unit_id"], r["period_type"], r["period"], r["indicator"]): r
             for r in work.therapist_benchmark(concern_id, *views.therapist_trend_indicators(rules))}
    counts = {(r["unit_id"], r["period_type"], r["period"]): r["n"] for r in work.therapist_counts(concern_id)}
    # The caseload review (manager packages only), indexed once for every therapist page of the concern.
    review_rows = views.CaseloadRows(work.caseload_review(concern_id))
    therapist_casemix = views.casemix_by_unit(work.therapist_casemix(concern_id, year) if year else [])

    entries, packages, manager_files = [], [], 0
    for loc in locations:
        context = views.location_context(concern_id, concern["name"], loc, locations,
                                         units, rules, export_date, common.run, bench_rows, breakdown_rows, year,
                                         not_on_track, casemix_rows)
        html = render("location.html", **context)
        base = f"{views.safe_name(concern_id)}-{views.safe_name(loc['location_id'])}"
        rel = f"shared/locations/{base}.html"
        _write(out / rel, html)
        files += [rel, f"managers/{base}/vestiging.html", f"managers/{base}/index.html"]
        entries.append({"concern_id": concern_id, "concern": concern["name"], "location_id": loc["location_id"],
                        "name": loc["location_name"], "rel": rel, "file": rel.removeprefix("shared/")})

        # The manager package: the shared report plus therapist pages, this location's therapists only.
        package = out / "managers" / base
        _write(package / "vestiging.html", html)
        own = [t for t in therapists if t["location_id"] == loc["location_id"]]
        location_view = {"id": loc["location_id"], "name": loc["location_name"]}
        # An episode belongs to the manager of its therapist's location (seed 000), else of its own location.
        home = {t["therapist_id"]: t["location_id"] for t in therapists}
        own_flagged = [e for e in flagged if home.get(e["therapist_id"], e["location_id"]) == loc["location_id"]]
        review_flags = {}
        for t in own:
            page = views.therapist_context(t, own, bench, counts, units, units.years, units.quarters, year,
                                           rules, location_view, concern, export_date, common.run)
            page["review"] = views.caseload_review(
                t, review_rows, therapist_casemix, bench, year, rules,
                sum(1 for e in own_flagged if e["therapist_id"] == t["therapist_id"]))
            review_flags[t["therapist_id"]] = views.caseload_flags(page["review"])
            _write(package / f"behandelaar-{views.safe_name(t['therapist_id'])}.html", render("therapist.html", **page))
            files.append(f"managers/{base}/behandelaar-{views.safe_name(t['therapist_id'])}.html")
        # Open episodes not on track (docs/feedback.md): this location's, per therapist, episode ids only.
        own_ids = {e["episode_id"] for e in own_flagged}
        _write(package / "niet-op-koers.html", render("not_on_track.html", **views.not_on_track_context(
            own_flagged, [c for c in courses if c["episode_id"] in own_ids], course_rows, therapists,
            location_view, concern, rules, common.run)))
        files.append(f"managers/{base}/niet-op-koers.html")
        _write(package / "index.html", render(
            "manager_index.html", title=f"Managerpakket vestiging: {loc['location_name']}",
            location=location_view, concern=concern, year=year, rules=context["rules"], run=common.run,
            therapists=views.manager_overview(own, bench, counts, year, rules, own_flagged, review_flags),
            n_flagged=len(own_flagged)))
        packages.append(f"managers/{base}")
        manager_files += len(own) + 3
    return {"entries": entries, "packages": packages, "manager_files": manager_files}, files


def _workers() -> int:
    """Worker processes for rendering: ``ROM_REPORTS_WORKERS``, else one per available core, at most 8
    (1 = in the calling process)."""
    configured = os.environ.get("ROM_REPORTS_WORKERS")
    if configured:
        return max(1, int(configured))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores))


def _run_tasks(tasks: list[tuple], workers: int) -> list:
    """Run (function, *args) tasks, in worker processes when there is more than one worker."""
    if workers <= 1 or len(tasks) <= 1:
        try:
            return [fn(*args) for fn, *args in tasks]
        finally:
            _close_sources()
    context = multiprocessing.get_context("spawn")  # no fork: the parent (Dagster) has threads
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
        futures = [pool.submit(fn, *args) for fn, *args in tasks]
        return [f.result() for f in futures]


def _current_version(link: Path) -> Path | None:
    """The version folder the reports link points at now (its pages may be reused), if any."""
    if link.is_symlink() and link.resolve().is_dir():
        return link.resolve()
    return None


def _load_manifest(version: Path | None) -> dict:
    if version is None or not (version / PAGES_MANIFEST).is_file():
        return {}
    try:
        return json.loads((version / PAGES_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # unreadable: render everything


def _build_all(src: SharedSource, warehouse: Path, work_db: Path, encryption_key: str | None, out: Path,
               result: BuildResult, run: dict, log, with_pdf: bool = False, previous: Path | None = None) -> None:
    concern_years = src.concern_years()
    known = defaultdict(list)
    for concern_id, year in concern_years:
        known[concern_id].append(year)
    by_concern = defaultdict(list)
    for loc in src.locations():
        by_concern[loc["concern_id"]].append(loc)
    names, n_by_year, export_dates, rules = src.concern_names(), src.n_indicators_by_year(), src.export_dates(), _rules(src)
    common = _Common(str(warehouse), str(work_db), encryption_key, str(out), rules, names, n_by_year, dict(known), run,
                     export_dates, dict(by_concern), with_pdf=with_pdf, previous=str(previous) if previous else None,
                     manifest=_load_manifest(previous), code_version=code_version())

    # Heaviest first (locations with their manager packages), then one task per concern report. ``extra``: what
    # a task uses from the run-wide values besides its own queries (part of its digest; the footer's run is not).
    rule_values = (rules.min_n, rules.min_count, sorted(rules.targets.items()))
    tasks = [(_task, common, f"locations:{c}", _concern_locations_task,
              (names.get(c), rule_values, export_dates.get(c), by_concern[c]), c) for c in sorted(by_concern)]
    tasks += [(_task, common, f"concern:{c}:{y}", _concern_task,
               (names.get(c), rule_values, sorted(known[c]), sorted(n_by_year.items())), c, y)
              for c, y in concern_years]
    workers = _workers()
    outcomes = _run_tasks(tasks, workers)
    manifest = {k: v for o in outcomes for k, v in o.pop("manifest").items()}
    result.reused_tasks = sum(1 for o in outcomes if o.pop("reused"))
    result.rendered_tasks = len(outcomes) - result.reused_tasks
    (out / PAGES_MANIFEST).write_text(json.dumps(manifest, default=str), encoding="utf-8")
    os.chmod(out / PAGES_MANIFEST, 0o600)  # names the manager pages' files
    location_results, concern_entries = outcomes[:len(by_concern)], outcomes[len(by_concern):]
    result.pdf_files = sum(1 for e in concern_entries if e["pdf"])
    result.shared_files += [e["rel"].replace(".html", ".pdf") for e in concern_entries if e["pdf"]]

    location_entries = [e for r in location_results for e in r["entries"]]
    result.shared_files += [e["rel"] for e in concern_entries] + [e["rel"] for e in location_entries]
    result.manager_packages += [p for r in location_results for p in r["packages"]]
    result.manager_files += sum(r["manager_files"] for r in location_results)
    result.concern_reports, result.location_reports = len(concern_entries), len(location_entries)
    log(f"{len(concern_entries)} concern benchmark reports, {len(location_entries)} location reports and "
        f"manager packages ({workers} worker{'s' if workers > 1 else ''}); {result.rendered_tasks} rendering tasks "
        f"run, {result.reused_tasks} unchanged (pages kept from the previous version)")

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
