"""What `rom-pipeline run` tells its operator while it runs, and the full step log it keeps.

- ``progress`` logger: one line per stage when its last step is done, with counts (deliveries,
  rows, checks, figures, pages); a failed step or check at once, with its own error; and a
  live line while a step runs (updated in place on a terminal, every ``interval`` seconds as a
  plain line otherwise), so a long step (the reports) is never silence. ``verbose`` adds one
  line per finished step (``done   <step>``), as before.
- ``step_log`` logger: every Dagster log line of the run (DEBUG and up) into a file; run.py
  puts it at ``$ROM_DATA_DIR/logs/<UTC start>_<run id>.log``.

A stage is a Dagster asset group (the layers of docs/conventions.md); the labels are :data:`STAGES`.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field

import dagster as dg

# Dagster group -> what the operator reads, in the order a run goes through them.
STAGES = {"raw": "ingest", "staging": "validate", "outcomes": "outcomes", "marts": "indicators",
          "audit": "audit trail", "publish": "publish", "reports": "reports"}


def step_stages(job_def: dg.JobDefinition) -> dict[str, str]:
    """Step key -> stage label, from the asset groups of the job's assets and checks."""
    layer = job_def.asset_layer
    graph = layer.asset_graph
    groups: dict[str, set[str]] = {}
    keys = [*layer.executable_asset_keys, *graph.asset_check_keys]
    for key in keys:
        try:
            step = str(layer.get_op_output_handle(key).node_handle)
        except Exception:  # noqa: BLE001 - a check or asset not in this job
            continue
        asset_key = key.asset_key if isinstance(key, dg.AssetCheckKey) else key
        groups.setdefault(step, set()).add(graph.get(asset_key).group_name)
    order = list(STAGES)

    def first(names: set[str]) -> str:
        known = sorted((n for n in names if n in STAGES), key=order.index)
        return STAGES[known[0]] if known else sorted(names)[0]

    return {step: first(names) for step, names in groups.items()}


def _value(metadata, key, default=None):
    entry = (metadata or {}).get(key)
    return default if entry is None else getattr(entry, "value", entry)


@dataclass
class _Stage:
    label: str
    steps: set[str]
    done: set[str] = field(default_factory=set)
    tables: int = 0
    rows: int = 0
    checks_passed: int = 0
    checks_failed: int = 0
    checks_warned: int = 0  # severity WARN: the figures are published all the same
    meta: dict = field(default_factory=dict)   # metadata of the stage's materialisations, merged
    reported: bool = False


def root_error(error):
    """The innermost cause of a Dagster SerializableErrorInfo: what went wrong, not the wrapper."""
    while error is not None and error.cause is not None:
        error = error.cause
    return error


class Progress:
    """Turns the run's Dagster events into the operator's console lines."""

    def __init__(self, stages: dict[str, str], *, stream=None, verbose: bool = False, interval: float = 10.0,
                 live: bool | None = None):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.verbose, self.interval = verbose, interval
        self.started = time.monotonic()
        self.stage_of = stages
        self.stages: dict[str, _Stage] = {}
        for step, label in stages.items():
            self.stages.setdefault(label, _Stage(label, set())).steps.add(step)
        self.total = len(stages)
        self.finished: set[str] = set()
        self.running: dict[str, float] = {}
        self._lock = threading.Lock()
        self._last_tick = time.monotonic()
        self._live_shown = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="rom-progress", daemon=True)
        self._thread.start()

    # --- output ---------------------------------------------------------------------------
    def _stamp(self) -> str:
        return f"[{time.monotonic() - self.started:7.1f}s]"

    def _print(self, text: str) -> None:
        if self._live_shown:
            self.stream.write("\r\x1b[K")
            self._live_shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _running_text(self) -> str | None:
        if not self.running:
            return None
        step, since = min(self.running.items(), key=lambda item: item[1])
        stage = self.stage_of.get(step, "")
        return (f"{self._stamp()} {stage}: {step} running for {time.monotonic() - since:.0f} s "
                f"({len(self.finished)} of {self.total} steps done)")

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                text = self._running_text()
                if text is None:
                    continue
                if self.live:
                    self.stream.write("\r\x1b[K" + text)
                    self.stream.flush()
                    self._live_shown = True
                elif time.monotonic() - self._last_tick >= self.interval:
                    self._print(text)
                    self._last_tick = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            if self._live_shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._live_shown = False

    # --- events ---------------------------------------------------------------------------
    def handle(self, event, step_key: str | None) -> None:
        kind = event.event_type_value
        with self._lock:
            if kind == "STEP_START" and step_key:
                self.running[step_key] = time.monotonic()
                self._last_tick = time.monotonic()
            elif kind == "ASSET_MATERIALIZATION" and step_key in self.stage_of:
                stage = self.stages[self.stage_of[step_key]]
                metadata = event.event_specific_data.materialization.metadata
                stage.tables += 1
                rows = _value(metadata, "dagster/row_count")
                if isinstance(rows, int) and _value(metadata, "dagster/table_name", "").split(".")[0] == \
                        event.event_specific_data.materialization.asset_key.path[0]:
                    stage.rows += rows
                stage.meta.update({k: _value(metadata, k) for k in metadata})
            elif kind == "ASSET_CHECK_EVALUATION":
                data = event.event_specific_data
                stage = self.stages.get(self.stage_of.get(step_key or "", ""))
                warn = getattr(data.severity, "value", data.severity) == "WARN"
                if data.passed:
                    if stage:
                        stage.checks_passed += 1
                elif warn:
                    if stage:
                        stage.checks_warned += 1
                    self._print(f"{self._stamp()} CHECK WARN   {data.asset_key.to_user_string()}:{data.check_name} "
                                f"({_value(data.metadata, 'failing_rows')} rows; published all the same)")
                else:
                    if stage:
                        stage.checks_failed += 1
                    self._print(f"{self._stamp()} CHECK FAILED {data.asset_key.to_user_string()}:{data.check_name}")
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and step_key:
                self.running.pop(step_key, None)
                self.finished.add(step_key)
                if kind == "STEP_FAILURE":
                    error = root_error(event.step_failure_data.error)
                    message = (error.message.strip() if error else "").splitlines()[0:1]
                    self._print(f"{self._stamp()} FAILED {step_key}: {message[0][:300] if message else ''}")
                elif self.verbose:
                    self._print(f"{self._stamp()} done   {step_key}")
                stage = self.stages.get(self.stage_of.get(step_key, ""))
                if stage is not None:
                    stage.done.add(step_key)
                    if stage.done >= stage.steps and not stage.reported:
                        stage.reported = True
                        self._print(f"{self._stamp()} {stage.label:<12} {describe(stage)}")

    def stage_lines(self) -> dict[str, str]:
        return {label: describe(stage) for label, stage in self.stages.items()}


def _n(value) -> str:
    return f"{int(value):,}" if isinstance(value, (int, float)) else str(value)


def describe(stage: _Stage) -> str:
    """The counts of one finished stage, in words."""
    m = stage.meta
    checks = (f"; {stage.checks_passed} checks passed" if stage.checks_passed else "") + \
        (f", {stage.checks_warned} warned" if stage.checks_warned else "") + \
        (f", {stage.checks_failed} FAILED" if stage.checks_failed else "")
    if stage.label == "ingest" and "deliveries_loaded" in m:
        return (f"deliveries: {_n(m['deliveries_loaded'])} loaded, {_n(m.get('deliveries_unchanged', 0))} unchanged, "
                f"{_n(m.get('deliveries_rejected', 0))} rejected; {_n(stage.rows)} rows in raw; "
                f"{m.get('refresh', '?')} refresh, {_n(m.get('concerns_pending', 0))} concern(s) to recompute")
    if stage.label == "audit trail" and "figures_new" in m:
        return (f"figures: {_n(m['figures_new'])} new, {_n(m.get('figures_changed', 0))} changed, "
                f"{_n(m.get('figures_removed', 0))} removed{checks}")
    if stage.label == "publish" and "bytes" in m:
        csv = f"; {_n(m['files'])} CSV files ({_n(m.get('rows', 0))} rows)" if "files" in m else ""
        return f"warehouse {m['bytes'] / 2**20:.1f} MB, {_n(m.get('tables', 0))} tables{csv}"
    if stage.label == "reports" and "files" in m:
        return (f"{_n(m['files'])} pages and files: {_n(m.get('concern_reports', 0))} concern reports, "
                f"{_n(m.get('location_reports', 0))} location reports, "
                f"{_n(m.get('manager_packages', 0))} manager packages")
    return f"{stage.tables} tables, {_n(stage.rows)} rows{checks}"


class _ProgressHandler(logging.Handler):
    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", {}) or {}
        event = meta.get("dagster_event")
        if event is not None:
            self.progress.handle(event, meta.get("step_key") or event.step_key)
        if event is not None and event.event_type_value in ("RUN_SUCCESS", "RUN_FAILURE", "PIPELINE_SUCCESS",
                                                            "PIPELINE_FAILURE"):
            self.progress.close()


PROGRESS: dict[str, Progress] = {}  # "last": the Progress of the latest run in this process (run.py reads it)


@dg.logger(config_schema={"verbose": dg.Field(bool, default_value=False),
                          "interval": dg.Field(float, default_value=10.0)},
           description="Progress per stage with counts and a live line, for `rom-pipeline run`.")
def progress_logger(init_context) -> logging.Logger:
    stages = step_stages(init_context.job_def) if init_context.job_def is not None else {}
    progress = Progress(stages, verbose=init_context.logger_config["verbose"],
                        interval=init_context.logger_config["interval"])
    PROGRESS["last"] = progress
    logger = logging.Logger("rom_pipeline.progress", level=logging.DEBUG)
    logger.addHandler(_ProgressHandler(progress))
    return logger


@dg.logger(config_schema={"path": dg.Field(str)},
           description="Every Dagster log line of the run (DEBUG and up) into a file.")
def step_log_logger(init_context) -> logging.Logger:
    from pathlib import Path

    path = Path(init_context.logger_config["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    logger = logging.Logger("rom_pipeline.step_log", level=logging.DEBUG)
    logger.addHandler(handler)
    return logger
