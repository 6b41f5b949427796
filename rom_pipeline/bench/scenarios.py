"""The bench's scenarios, run in one go on the same delivery set, each measured as a process tree.

| scenario     | what runs                                                      | data dir                 |
|--------------|----------------------------------------------------------------|--------------------------|
| baseline     | baseline.sql (plain DuckDB), best of 3                          | runs/baseline            |
| no-reports   | `rom-pipeline run --no-reports`, first night                    | runs/no_reports (empty)  |
| full         | `rom-pipeline run` (reports and PDFs), first night              | runs/nightly (empty)     |
| quiet        | `rom-pipeline run` again, nothing new                           | runs/nightly, after full |
| redelivery   | `rom-pipeline run` with C001's next delivery added to the root  | runs/nightly, after quiet|

quiet and redelivery need the state a full run leaves: asked for without `full`, the bench runs
it first as an unreported preparation. Every run reads the same export root,
``runs/exports``, hard links to the cached set (the re-delivery is linked in before its night).
Each pipeline run gets the environment of a cron job: ROM_EXPORT_DIR, ROM_DATA_DIR and a bench
pseudonym key, and the DuckDB bounds (ROM_DUCKDB_MEMORY_LIMIT, _THREADS, _MAX_TEMP_SIZE) if the bench's
own environment sets them: no other ROM_* setting (PDFs on) and no DAGSTER_HOME.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .sampling import Measurement, measure
from .tiers import REDELIVERED_CONCERN, DeliverySet, link_tree

ORDER = ("baseline", "no-reports", "full", "quiet", "redelivery")
NEEDS_FULL = {"quiet", "redelivery"}
BASELINE_REPEATS = 3
BENCH_KEY = "rom-bench-synthetic-deliveries-only"  # a pseudonym key for synthetic data, never for real data


@dataclass
class StageTiming:
    stage: str
    seconds: float               # the sum of its steps' durations (steps run one after another)
    count: int | None = None     # what the stage's progress line counts ...
    unit: str = "rows"           # ... and in what

    @property
    def rate(self) -> float | None:
        return self.count / self.seconds if self.count is not None and self.seconds > 0 else None


@dataclass
class ScenarioResult:
    name: str
    measurement: Measurement
    stages: list[StageTiming] = field(default_factory=list)
    runs: list[Measurement] = field(default_factory=list)   # baseline: every repeat
    data_dir: Path | None = None
    db_bytes: dict = field(default_factory=dict)            # final size of work.duckdb, warehouse.duckdb
    load_after: str = ""                                    # load average (1, 5, 15 min) as it ended
    note: str = ""                                          # e.g. the code changed while it ran

    @property
    def ok(self) -> bool:
        return self.measurement.returncode == 0


# --- progress lines of `rom-pipeline run --verbose` (rom_pipeline/progress.py) ------------------------

DONE = re.compile(r"^\[\s*([\d.]+)s\] done   (\S+)\s*$")
STAGE = re.compile(r"^\[\s*([\d.]+)s\] (.{12}) (.*)$")
_NUMBER = r"([\d,]+)"


def _count(stage: str, text: str) -> tuple[int | None, str]:
    """The figure a stage line gives for the stage's work, and its unit."""
    patterns = [
        ("ingest", rf"{_NUMBER} rows in raw", "rows"),
        ("audit trail", rf"figures: {_NUMBER} new, {_NUMBER} changed, {_NUMBER} removed", "figures"),
        ("publish", rf"\({_NUMBER} rows\)", "CSV rows"),
        ("reports", rf"{_NUMBER} pages and files", "files"),
        (None, rf"{_NUMBER} rows", "rows"),
    ]
    for label, pattern, unit in patterns:
        if label not in (None, stage):
            continue
        match = re.search(pattern, text)
        if match:
            return sum(int(g.replace(",", "")) for g in match.groups()), unit
    return None, ""


def stage_timings(output: str, step_stage: dict[str, str], labels: list[str]) -> list[StageTiming]:
    """Seconds per stage (each step's duration = its done time - the previous done time; the
    in-process executor runs one step at a time) and the count of the stage's progress line."""
    seconds: dict[str, float] = {}
    counts: dict[str, tuple[int | None, str]] = {}
    previous = 0.0
    for line in output.splitlines():
        done = DONE.match(line)
        if done:
            at, step = float(done.group(1)), done.group(2)
            stage = step_stage.get(step, "other")
            seconds[stage] = seconds.get(stage, 0.0) + (at - previous)
            previous = at
            continue
        staged = STAGE.match(line)
        if staged and staged.group(2).strip() in labels:
            stage = staged.group(2).strip()
            counts[stage] = _count(stage, staged.group(3))
    ordered = [s for s in labels if s in seconds] + sorted(s for s in seconds if s not in labels)
    return [StageTiming(s, seconds[s], *counts.get(s, (None, "rows"))) for s in ordered]


_STAGE_MAP: dict[str, str] = {}


def step_stage_map() -> dict[str, str]:
    """Step key -> stage label of the nightly job, from the code (rom_pipeline.progress.step_stages)."""
    if not _STAGE_MAP:
        from rom_pipeline.definitions import defs, nightly_job
        from rom_pipeline.progress import step_stages

        _STAGE_MAP.update(step_stages(defs.resolve_job_def(nightly_job.name)))
    return _STAGE_MAP


def stage_labels() -> list[str]:
    from rom_pipeline.progress import STAGES

    return list(STAGES.values())


# --- running -------------------------------------------------------------------------------------------

def source_hash() -> str:
    """The pipeline's source hash as a run would compute it now (a change makes the next night a full rebuild)."""
    from rom_pipeline.lib.fingerprint import source_sha256

    return source_sha256.__wrapped__()  # not the per-process cached value


def _cli() -> list[str]:
    cli = Path(sys.executable).with_name("rom-pipeline")
    return [str(cli)] if cli.exists() else [sys.executable, "-m", "rom_pipeline.cli"]


def duckdb_bounds() -> dict[str, str]:
    """The machine's DuckDB bounds as the bench's environment sets them: passed on to every run, and reported."""
    from rom_pipeline.resources import MAX_TEMP_SIZE_ENV, MEMORY_LIMIT_ENV, THREADS_ENV

    return {k: os.environ[k] for k in (MEMORY_LIMIT_ENV, THREADS_ENV, MAX_TEMP_SIZE_ENV) if os.environ.get(k)}


def run_env(export_dir: Path, data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROM_") and k != "DAGSTER_HOME"}
    env.update(duckdb_bounds())
    env.update(ROM_EXPORT_DIR=str(export_dir), ROM_DATA_DIR=str(data_dir), ROM_PSEUDONYM_KEY=BENCH_KEY,
               PYTHONUNBUFFERED="1")
    return env


def temp_paths(data_dir: Path) -> list[Path | str]:
    """What counts as temporary disk: DuckDB's spill folder and write-ahead logs in the data dir."""
    return [data_dir / "duckdb_tmp", str(data_dir / "*.wal"), str(data_dir / ".*.wal")]


def _db_bytes(data_dir: Path) -> dict:
    return {name: (data_dir / name).stat().st_size for name in ("work.duckdb", "warehouse.duckdb")
            if (data_dir / name).exists()}


class Bench:
    """Runs the chosen scenarios on one delivery set; ``log`` gets a line as each one ends."""

    def __init__(self, ds: DeliverySet, log=print, on_result=None):
        self.ds, self.log = ds, log
        self.on_result = on_result or (lambda results: None)  # called with the results so far after each one
        self.exports = ds.runs / "exports"
        self.nightly = ds.runs / "nightly"
        self.labels = stage_labels()

    def run(self, scenarios: list[str]) -> list[ScenarioResult]:
        link_tree(self.ds.exports, self.exports)
        source = source_hash()
        results: list[ScenarioResult] = []
        full_done = False
        for name in [s for s in ORDER if s in scenarios]:
            if name in NEEDS_FULL and not full_done:
                self.log("preparing: a full run (not reported), the state quiet and redelivery start from")
                prepared = self._pipeline("full (preparation)", self.nightly, reports=True)
                if not prepared.ok:
                    results.append(prepared)
                    break
                full_done = True
            result = getattr(self, "_" + name.replace("-", "_"))()
            result.load_after = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            if source_hash() != source:  # a later night would rebuild in full for the code change, not its data
                source = source_hash()
                result.note = "the pipeline's code changed while it ran: later nights are not comparable"
                self.log(f"WARNING: {result.note} (rom_pipeline/lib/fingerprint.py, source_sha256)")
            results.append(result)
            self.log(self.one_line(result))
            self.on_result(results)
            if name == "full":
                full_done = result.ok
            if not result.ok:
                self.log(f"{name} FAILED (exit {result.measurement.returncode}); output in "
                         f"{self.ds.runs / (name + '.out')}")
                if name == "full" or name in NEEDS_FULL:  # the nights after it would start from nothing
                    break
        return results

    @staticmethod
    def one_line(r: ScenarioResult) -> str:
        m = r.measurement
        return (f"  {r.name:<12} {m.wall_s:7.1f} s wall, {m.cpu_s:7.1f} CPU-s, peak RSS {m.peak_rss_bytes / 2**30:.2f} GiB"
                f" (PSS {m.peak_pss_bytes / 2**30:.2f}), temp {m.peak_temp_bytes / 2**30:.2f} GiB, exit {m.returncode}")

    def _baseline(self) -> ScenarioResult:
        folder = self.ds.runs / "baseline"
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "rom_pipeline.bench.baseline", str(self.exports),
                   "--database", str(folder / "baseline.duckdb")]
        runs = []
        for repeat in range(BASELINE_REPEATS):
            runs.append(measure(command, env=run_env(self.exports, folder), temp_paths=temp_paths(folder),
                                stdout_path=self.ds.runs / f"baseline-{repeat + 1}.out"))
            if runs[-1].returncode != 0:
                break
        failed = [m for m in runs if m.returncode != 0]
        best = failed[0] if failed else min(runs, key=lambda m: m.wall_s)
        return ScenarioResult("baseline", best, runs=runs, data_dir=folder)

    def _pipeline(self, name: str, data_dir: Path, reports: bool) -> ScenarioResult:
        command = _cli() + ["run", "--verbose"] + ([] if reports else ["--no-reports"])
        out = self.ds.runs / f"{name.split()[0]}.out"
        m = measure(command, env=run_env(self.exports, data_dir), temp_paths=temp_paths(data_dir), stdout_path=out)
        stages = stage_timings(m.stdout, step_stage_map(), self.labels)
        return ScenarioResult(name, m, stages, data_dir=data_dir, db_bytes=_db_bytes(data_dir))

    def _no_reports(self) -> ScenarioResult:
        return self._pipeline("no-reports", self.ds.runs / "no_reports", reports=False)

    def _full(self) -> ScenarioResult:
        return self._pipeline("full", self.nightly, reports=True)

    def _quiet(self) -> ScenarioResult:
        return self._pipeline("quiet", self.nightly, reports=True)

    def _redelivery(self) -> ScenarioResult:
        link_tree(self.ds.redelivery, self.exports)  # adds C001/<next day>/ beside C001/<day>/
        self.log(f"  re-delivery: {REDELIVERED_CONCERN}'s next delivery linked into {self.exports}")
        return self._pipeline("redelivery", self.nightly, reports=True)
