"""A Dagster logger that prints one short line per step: the progress of `rom-pipeline run`."""
from __future__ import annotations

import logging
import sys
import time

import dagster as dg

_SHOWN_EVENTS = {"STEP_SUCCESS": "done  ", "STEP_FAILURE": "FAILED", "ASSET_CHECK_EVALUATION": "check "}


class _ProgressHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", {}) or {}
        event = meta.get("dagster_event")
        if event is None or event.event_type_value not in _SHOWN_EVENTS:
            return
        label = _SHOWN_EVENTS[event.event_type_value]
        what = meta.get("step_key") or ""
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            label = "check " if data.passed else "CHECK FAILED"
            what = f"{data.asset_key.to_user_string()}:{data.check_name}"
        print(f"[{time.monotonic() - self.started:7.1f}s] {label} {what}", file=sys.stdout, flush=True)


@dg.logger(description="One line per finished step and check, for `rom-pipeline run`.")
def progress_logger(_init_context) -> logging.Logger:
    logger = logging.Logger("rom_pipeline.progress", level=logging.DEBUG)
    logger.addHandler(_ProgressHandler())
    return logger
