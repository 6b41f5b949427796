"""The bench's results: the machine, a table per scenario and per stage, the targets of issue 11, JSON."""
from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from .scenarios import ScenarioResult

GIB = 2**30


@dataclass
class Target:
    text: str
    tiers: tuple[str, ...]      # where the issue sets it
    value: float | None         # measured (None: a scenario it needs was not run or failed)
    limit: float
    unit: str
    cpu_value: float | None = None   # the same ratio in CPU seconds (steadier than wall on a loaded machine)

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value <= self.limit

    def line(self, tier: str) -> str:
        where = "" if tier in self.tiers else f" (set for tier {'/'.join(self.tiers)}; shown for reference)"
        if self.value is None:
            return f"  [ n/a  ] {self.text}: not measured{where}"
        verdict = "met" if self.met else "MISSED"
        cpu = f"; in CPU seconds {self.cpu_value:,.2f} {self.unit}" if self.cpu_value is not None else ""
        return f"  [{verdict:^6}] {self.text}: {self.value:,.2f} {self.unit} (limit {self.limit:,.2f}{cpu}){where}"


def machine() -> dict:
    import duckdb

    memory = 0
    try:
        with open("/proc/meminfo") as f:
            memory = int(next(line for line in f if line.startswith("MemTotal")).split()[1]) * 1024
    except (OSError, StopIteration):
        pass
    return {"machine": platform.machine(), "cores": os.cpu_count(), "memory_gib": round(memory / GIB, 1),
            "python": platform.python_version(), "duckdb": duckdb.__version__, "system": platform.platform()}


def git_commit() -> str | None:
    from rom_pipeline.paths import PROJECT_DIR

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_DIR, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_DIR,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _by_name(results: list[ScenarioResult]) -> dict[str, ScenarioResult]:
    return {r.name: r for r in results if r.ok}


def targets(results: list[ScenarioResult], input_bytes: int) -> list[Target]:
    """Issue 11's targets, measured on this run's scenarios (ratios of wall times in the same run)."""
    r = _by_name(results)
    base = r["baseline"].measurement.wall_s if "baseline" in r else None

    base_cpu = r["baseline"].measurement.cpu_s if "baseline" in r else None

    def ratio(name: str) -> float | None:
        return r[name].measurement.wall_s / base if name in r and base else None

    def cpu_ratio(name: str, over: float | None) -> float | None:
        return r[name].measurement.cpu_s / over if name in r and over else None

    def peak(attr: str) -> float | None:
        values = [getattr(x.measurement, attr) for n, x in r.items() if n != "baseline"]
        return max(values) if values else None

    full = r["full"].measurement.wall_s if "full" in r else None
    full_cpu = r["full"].measurement.cpu_s if "full" in r else None
    rss, temp = peak("peak_rss_bytes"), peak("peak_temp_bytes")
    return [
        Target("warehouse published (no-reports run) within 3x the baseline (goal 2x)", ("M", "L"),
               ratio("no-reports"), 3.0, "x", cpu_ratio("no-reports", base_cpu)),
        Target("full run with all reports and PDFs within 6x the baseline", ("M",), ratio("full"), 6.0, "x",
               cpu_ratio("full", base_cpu)),
        Target("a night with nothing new under 10 s", ("M",),
               r["quiet"].measurement.wall_s if "quiet" in r else None, 10.0, "s"),
        Target("one concern of ten re-delivering at most a quarter of a full run (reports included)", ("M", "L"),
               r["redelivery"].measurement.wall_s / full if "redelivery" in r and full else None, 0.25, "of full",
               cpu_ratio("redelivery", full_cpu)),
        Target("peak RSS of the process tree under 4 GiB (largest pipeline scenario)", ("L",),
               rss / GIB if rss is not None else None, 4.0, "GiB"),
        Target("temporary disk under twice the input's size (largest pipeline scenario)", ("L",),
               temp / input_bytes if temp is not None and input_bytes else None, 2.0, "x input"),
    ]


def _gib(n: int) -> str:
    return f"{n / GIB:.2f}"


def table(results: list[ScenarioResult]) -> str:
    r = _by_name(results)
    base = r.get("baseline")
    lines = ["| scenario | wall s | CPU s (user+sys) | peak RSS GiB | peak PSS GiB | peak temp GiB | wall / baseline"
             " | CPU / baseline | load avg at end (1, 5, 15 min) |", "|---|---|---|---|---|---|---|---|---|"]
    for x in results:
        m = x.measurement
        ratios = ("", "")
        if base and x.ok:
            ratios = (f"{m.wall_s / base.measurement.wall_s:.1f}x",
                      f"{m.cpu_s / base.measurement.cpu_s:.1f}x" if base.measurement.cpu_s else "")
        name = x.name + ("" if x.ok else f" (FAILED, exit {m.returncode})") + \
            (f" (best of {len(x.runs)})" if x.runs else "") + (f" ({x.note})" if x.note else "")
        lines.append(f"| {name} | {m.wall_s:.1f} | {m.cpu_s:.1f} ({m.user_s:.1f}+{m.system_s:.1f}) | "
                     f"{_gib(m.peak_rss_bytes)} | {_gib(m.peak_pss_bytes)} | {_gib(m.peak_temp_bytes)} | "
                     f"{ratios[0]} | {ratios[1]} | {x.load_after} |")
    return "\n".join(lines)


def stage_table(results: list[ScenarioResult]) -> str:
    pipeline = [x for x in results if x.stages]
    if not pipeline:
        return ""
    lines = ["| scenario | stage | s | count | per second |", "|---|---|---|---|---|"]
    for x in pipeline:
        accounted = 0.0
        for s in x.stages:
            accounted += s.seconds
            count = f"{s.count:,} {s.unit}" if s.count is not None else ""
            rate = f"{s.rate:,.0f} {s.unit}/s" if s.rate is not None else ""
            lines.append(f"| {x.name} | {s.stage} | {s.seconds:.1f} | {count} | {rate} |")
        lines.append(f"| {x.name} | start-up, summary (outside the steps) | "
                     f"{max(x.measurement.wall_s - accounted, 0):.1f} | | |")
    return "\n".join(lines)


def render(ds, summary: dict, results: list[ScenarioResult], command: str, info: dict) -> str:
    head = [
        f"rom-pipeline bench: tier {ds.name} ({ds.episodes:,} episodes, {summary['concerns']} concerns, seed {ds.seed}); "
        f"{summary['rows']:,} rows ({summary['item_rows']:,} item rows), {summary['bytes'] / 1e6:,.0f} MB of CSV",
        f"command: {command}",
        f"machine: {info['machine']['machine']}, {info['machine']['cores']} cores, {info['machine']['memory_gib']} GiB, "
        f"Python {info['machine']['python']}, DuckDB {info['machine']['duckdb']}; code {info['commit']}",
        f"DuckDB bounds: {info.get('duckdb_bounds') or 'the defaults'}",
        f"load average (1, 5, 15 min): before {info['load_before']}, after {info['load_after']}; "
        f"{info['started']} - {info['finished']}",
        "",
        table(results),
        "",
        stage_table(results),
        "",
        "targets (issue 11; judged on wall times in this run, the CPU-second ratio beside):",
        *[t.line(ds.name) for t in targets(results, summary["bytes"])],
    ]
    return "\n".join(head)


def as_json(ds, summary: dict, results: list[ScenarioResult], command: str, info: dict) -> dict:
    def scenario(x: ScenarioResult) -> dict:
        m = asdict(x.measurement)
        m.pop("stdout"), m.pop("stderr"), m.pop("extra")
        out = {"name": x.name, "ok": x.ok, "load_after": x.load_after, "note": x.note, **m, "stages": [{**asdict(s), "rate": s.rate} for s in x.stages],
               "db_bytes": x.db_bytes}
        if x.runs:
            out["repeats"] = [{"wall_s": r.wall_s, "cpu_s": r.cpu_s, "peak_rss_bytes": r.peak_rss_bytes,
                               "returncode": r.returncode} for r in x.runs]
        return out

    return {"tier": ds.name, "episodes": ds.episodes, "seed": ds.seed, "input": summary, "command": command,
            **info, "scenarios": [scenario(x) for x in results],
            "targets": [{"text": t.text, "tiers": list(t.tiers), "value": t.value, "cpu_value": t.cpu_value,
                         "limit": t.limit, "unit": t.unit, "met": t.met, "applies": ds.name in t.tiers} for t in targets(results, summary["bytes"])]}


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def write(path: Path, text: str, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
