"""Synthetic deliveries under export contract 1.0: the ``generate`` entry point.

Layout written (one delivery per concern, plus the public reference inputs)::

    <out>/<concern_id>/<export_date>/manifest.json, locations.csv, therapists.csv,
                                     episodes.csv, measurements.csv, item_responses.csv
    <out>/reference/annual_reports.csv, quality_indicators.csv

Everything is a function of the arguments: the same arguments give
byte-identical files. Episodes are streamed: each is drafted with its
measurements and items and written at once, so memory stays flat however many
episodes are asked for.
"""
from __future__ import annotations

import json
import os
import time
from datetime import date
from pathlib import Path
from random import Random
from typing import TextIO

from . import catalog
from .dates import exported_at, parse_export_date
from .defects import DefectInjector
from .episodes import EpisodeFactory, MeasurementDraft
from .items import ItemSampler, samplers
from .organisation import Concern, build_concern, split_episodes
from .reference import write_reference
from .sinks import CsvSink

CONTRACT_VERSION = "1.0"
DEFAULT_EXPORT_DATE = "2026-11-21"


def generate_deliveries(out_dir: str | os.PathLike, *, concerns: int = 3, episodes: int = 3000, seed: int = 42,
                        export_date: str = DEFAULT_EXPORT_DATE, defect_rate: float = 0.0,
                        total_only_share: float = 0.15, items: bool = True, extra_reference_concerns: int = 20,
                        include_seed_concern: bool = False, progress: TextIO | None = None,
                        truth: str | os.PathLike | None = None, only_concerns: frozenset[str] | None = None) -> dict:
    """Write ``concerns`` deliveries with ``episodes`` episodes in total, and the reference inputs.

    ``only_concerns``: write only these concerns' deliveries (e.g. ``{"C001"}``), byte for byte as
    the full set would have them; the bench makes one concern's next-night delivery this way.

    Returns a summary: per concern its delivery directory, manifest file entries
    and injected defect counts; the reference files' row counts; and the defect
    totals. ``progress``: a stream for progress lines (e.g. ``sys.stderr``), or None.
    ``truth``: a CSV file (outside the export root) to write every episode's SCL90 course by
    construction to: ``concern_id;episode_id;course;pre;target`` with course improving, unchanged or
    deteriorating (the ground truth of the not-on-track back-test, docs/feedback.md). Writing it
    draws no random numbers, so the deliveries are the same bytes with or without it.
    """
    _check_arguments(concerns, episodes, defect_rate, total_only_share, extra_reference_concerns)
    out = Path(out_dir)
    if truth is not None and Path(truth).resolve().is_relative_to(out.resolve()):
        raise ValueError(f"the ground-truth file {truth} must lie outside the export root {out}: the pipeline "
                         "reads everything under it")
    export = parse_export_date(export_date)
    plan_rng = Random(f"{seed}:concerns")
    counts = split_episodes(plan_rng, episodes, concerns)
    names = catalog.concern_names(plan_rng, concerns + extra_reference_concerns)
    built = [build_concern(seed, i, f"C{i + 1:03d}", names[i], counts[i]) for i in range(concerns)]
    if only_concerns is not None:
        unknown = set(only_concerns) - {c.concern_id for c in built}
        if unknown:
            raise ValueError(f"only_concerns: no such concern in this set: {', '.join(sorted(unknown))}")
    written = [(index, c) for index, c in enumerate(built) if only_concerns is None or c.concern_id in only_concerns]
    meter = Progress(sum(c.n_episodes for _, c in written), progress)
    item_samplers = samplers(seed) if items else None
    truth_rows: list[list[str]] | None = [] if truth is not None else None
    delivered = [_write_delivery(out, concern, index, export, seed, item_samplers, total_only_share,
                                 defect_rate, meter, truth_rows)
                 for index, concern in written]
    if truth is not None:
        _write_truth(Path(truth), truth_rows)
    meter.finish()
    extras = _extra_concerns(names[concerns:], concerns)
    reference = write_reference(out / "reference", seed=seed, export_year=export.year, rom_concerns=built,
                                extra_concerns=extras, include_seed_concern=include_seed_concern)
    return _summary(out, seed, export, delivered, reference)


def _check_arguments(concerns: int, episodes: int, defect_rate: float, total_only_share: float,
                     extra_reference_concerns: int) -> None:
    if not 1 <= concerns <= 799:
        raise ValueError("concerns must be 1..799 (C900 is kept for the seed concern)")
    if episodes < 0:
        raise ValueError("episodes must be >= 0")
    if not 0.0 <= defect_rate <= 1.0 or not 0.0 <= total_only_share <= 1.0:
        raise ValueError("defect rate and total-only share are shares in 0..1")
    if extra_reference_concerns < 0 or _first_extra_number(concerns) + extra_reference_concerns > 900:
        raise ValueError("too many extra reference concerns (ids would reach C900)")


def _first_extra_number(concerns: int) -> int:
    """Concerns without ROM data are numbered from the next hundred (C101, ...) to stand apart."""
    return (concerns // 100 + 1) * 100 + 1


def _extra_concerns(names: list[str], concerns: int) -> list[tuple[str, str]]:
    first = _first_extra_number(concerns)
    return [(f"C{first + i:03d}", name) for i, name in enumerate(names)]


# --- one delivery ---------------------------------------------------------------------------

def _write_delivery(out: Path, concern: Concern, index: int, export: date, seed: int,
                    item_samplers: dict[str, ItemSampler] | None, total_only_share: float,
                    defect_rate: float, meter: Progress, truth_rows: list | None = None) -> dict:
    directory = out / concern.concern_id / export.isoformat()
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / "manifest.json"
    manifest_path.unlink(missing_ok=True)  # a half-rewritten delivery must not look verified
    export_day = export.toordinal()
    factory = EpisodeFactory(concern, seed, export_day, item_samplers, total_only_share)
    injector = (DefectInjector(defect_rate, Random(f"{seed}:{concern.concern_id}:defects"), factory.days,
                               export_day, _unknown_ids(concern)) if defect_rate > 0 else None)
    names = [name for name in catalog.DATA_FILES if item_samplers or name != "item_responses.csv"]
    _remove_stale_files(directory, names)
    sinks = {name: CsvSink(directory / name, catalog.COLUMNS[name]) for name in names}
    try:
        _write_dimensions(sinks, concern, injector)
        _write_episodes(sinks, factory, injector, item_samplers, meter, truth_rows)
    finally:
        files = {name: sink.close() for name, sink in sinks.items()}
    manifest = {
        "contract_version": CONTRACT_VERSION,
        "export_id": f"{concern.concern_id}-{export.isoformat()}",
        "concern_id": concern.concern_id,
        "concern_name": concern.name,
        "source_system": concern.source_system,
        "exported_at": exported_at(export, minute_offset=3 * index),
        "files": files,
    }
    _write_json_atomically(manifest_path, manifest)
    return {"concern_id": concern.concern_id, "concern_name": concern.name, "episodes": concern.n_episodes,
            "directory": str(directory), "files": files,
            "defects": dict(sorted(injector.counts.items())) if injector else {}}


def _write_truth(path: Path, rows: list[list[str]]) -> None:
    """The ground truth of the SCL90 courses (not part of any delivery: keep it out of the export root)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["concern_id;episode_id;course;pre;target"] + [";".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _unknown_ids(concern: Concern) -> dict[str, str]:
    """Ids of each kind that this delivery certainly does not contain (for dangling references)."""
    n_therapists = len(concern.therapists)
    return {
        "location": f"L{len(concern.locations) + 1:02d}",
        "therapist": f"T{n_therapists + 1:03d}",
        "episode": f"E{concern.n_episodes + 1:06d}",
        "measurement": "M" + "9" * _measurement_id_width(concern),
    }


def _measurement_id_width(concern: Concern) -> int:
    # Wide enough for ~25 measurements per episode, so ids sort as numbers do.
    return max(7, len(str(concern.n_episodes * 25)))


def _remove_stale_files(directory: Path, keep: list[str]) -> None:
    for name in catalog.DATA_FILES:
        if name not in keep:
            (directory / name).unlink(missing_ok=True)


def _write_dimensions(sinks: dict[str, CsvSink], concern: Concern, injector: DefectInjector | None) -> None:
    locations = [loc.row() for loc in concern.locations]
    therapists = [t.row() for t in concern.therapists]
    if injector:
        locations, therapists = injector.locations(locations), injector.therapists(therapists)
    sinks["locations.csv"].add_rows(locations)
    sinks["therapists.csv"].add_rows(therapists)


def _write_episodes(sinks: dict[str, CsvSink], factory: EpisodeFactory, injector: DefectInjector | None,
                    item_samplers: dict[str, ItemSampler] | None, meter: Progress,
                    truth_rows: list | None = None) -> None:
    episodes, measurements = sinks["episodes.csv"], sinks["measurements.csv"]
    items = sinks.get("item_responses.csv")
    next_id = _MeasurementIds(_measurement_id_width(factory.concern))
    day = factory.days
    for number in range(1, factory.concern.n_episodes + 1):
        draft = factory.draft(number)
        episode_id = draft.row[0]
        if truth_rows is not None:
            truth_rows.append([factory.concern.concern_id, episode_id, draft.course.kind,
                               f"{draft.course.pre:.1f}", f"{draft.course.target:.1f}"])
        episodes.add_rows(injector.episode(draft.row) if injector else [draft.row])
        for m in draft.measurements:
            measurement_id = next_id()
            row = [measurement_id, episode_id, m.instrument, day(m.day),
                   "" if m.session is None else str(m.session), m.occasion or "", m.total]
            measurements.add_rows(injector.measurement(row) if injector else [row])
            if m.responses is not None:
                _write_items(items, item_samplers[m.instrument], injector, measurement_id, m)
        if number % 64 == 0:
            for sink in sinks.values():
                sink.flush_if_full()
            meter.advance(64)
    meter.advance(factory.concern.n_episodes % 64)


def _write_items(sink: CsvSink, sampler: ItemSampler, injector: DefectInjector | None, measurement_id: str,
                 m: MeasurementDraft) -> None:
    corrupted = injector.items(measurement_id, m.instrument, m.responses) if injector else None
    if corrupted is None:
        sink.add_text(sampler.rows_text(measurement_id, m.responses), len(m.responses))
    else:
        sink.add_rows(corrupted)


class _MeasurementIds:
    """M0000001, M0000002, ...: one sequence per delivery, in the order rows are written."""

    def __init__(self, width: int) -> None:
        self._format = f"M{{:0{width}d}}".format
        self._last = 0

    def __call__(self) -> str:
        self._last += 1
        return self._format(self._last)


def _write_json_atomically(path: Path, content: dict) -> None:
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.replace(path)


def _summary(out: Path, seed: int, export: date, delivered: list[dict], reference: dict) -> dict:
    defects: dict[str, int] = {}
    rows: dict[str, int] = {}
    for delivery in delivered:
        for key, count in delivery["defects"].items():
            defects[key] = defects.get(key, 0) + count
        for name, entry in delivery["files"].items():
            rows[name] = rows.get(name, 0) + entry["rows"]
    return {"out_dir": str(out), "seed": seed, "export_date": export.isoformat(), "concerns": delivered,
            "reference": reference, "rows": rows, "defects": dict(sorted(defects.items())),
            "defects_total": sum(defects.values())}


class Progress:
    """A line on a stream every ~5% of the episodes (at least every 100,000), with the rate."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total, self.stream = total, stream
        self.done = 0
        self.step = max(1000, min(100_000, total // 20))
        self._next = self.step
        self._started = time.perf_counter()

    def advance(self, count: int) -> None:
        self.done += count
        if self.stream is not None and self.done >= self._next:
            self._next += self.step
            self._report()

    def finish(self) -> None:
        if self.stream is not None and self.total and self._next - self.step < self.done:
            self._report()  # the last line, unless the last step already said 100%

    def _report(self) -> None:
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        print(f"generate: {self.done:,}/{self.total:,} episodes ({100 * self.done / self.total:.0f}%), "
              f"{self.done / elapsed:,.0f} episodes/s", file=self.stream, flush=True)
