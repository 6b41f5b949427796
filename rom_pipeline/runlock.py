"""One run at a time per data dir: an OS file lock on ``$ROM_DATA_DIR/.run.lock`` for the whole run.

``rom-pipeline run`` takes it before the job starts; a run launched by Dagster (schedule, sensor,
UI, ``dg launch``) takes it in its first step that opens the work database
(:meth:`rom_pipeline.resources.Workspace.connect`) and keeps it until the run ends: the
``run_lock`` resource (initialised when the run starts, torn down when it ends) owns it. The lock
is ``flock``: the kernel releases it when the process that holds it exits, however it exits
(SIGKILL included), so a dead run never leaves the data dir locked.

Within one process the lock is re-entrant for the same run: the command line holds it with the
Dagster run id it then gives the in-process job, so the job's own steps do not wait for their own
process. The file records who holds it (pid, start time, run id, what started it) for the
message a second run prints; it never holds a secret or a client id.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import dagster as dg

LOCK_NAME = ".run.lock"
# `rom-pipeline run` exits with this status when another run holds the data dir (EX_TEMPFAIL of
# sysexits.h: try again later). README "Interfaces" lists every exit status.
EXIT_BUSY = 75


class DataDirBusy(dg.Failure):
    """Another run holds the data dir. A ``dg.Failure``: a Dagster step fails with this message itself."""

    def __init__(self, message: str):
        super().__init__(description=message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass
class _Held:
    fd: int
    run_id: str
    count: int


_HELD: dict[Path, _Held] = {}
_GUARD = threading.Lock()


def lock_path(data_dir: Path) -> Path:
    return Path(data_dir) / LOCK_NAME


def holder(data_dir: Path) -> dict:
    """What the lock file says about the run that holds (or last held) the data dir."""
    try:
        return json.loads(lock_path(data_dir).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def busy_message(data_dir: Path, info: dict) -> str:
    who = (f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started {info.get('started_at', '?')}, "
           f"run id {info.get('run_id') or '?'}, {info.get('started_by', '?')}") if info else "holder unknown"
    return (f"another run holds the data dir {data_dir} ({who}): one run at a time per data dir. "
            f"Wait for it to finish (Dagster UI, or `ps -p {info.get('pid', '<pid>')}`), then run again; "
            f"the lock ({lock_path(data_dir)}) is released by the system when that process ends")


def acquire(data_dir: Path, run_id: str, started_by: str) -> None:
    """Take the data dir's lock for ``run_id`` (re-entrant for the same run in this process), or raise DataDirBusy."""
    data_dir = Path(data_dir).resolve()
    with _GUARD:
        held = _HELD.get(data_dir)
        if held is not None:
            if held.run_id != run_id:
                raise DataDirBusy(busy_message(data_dir, holder(data_dir)))
            held.count += 1
            return
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path(data_dir), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirBusy(busy_message(data_dir, holder(data_dir))) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id, "started_by": started_by,
                "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        _HELD[data_dir] = _Held(fd, run_id, 1)


def release(data_dir: Path, run_id: str) -> None:
    data_dir = Path(data_dir).resolve()
    with _GUARD:
        held = _HELD.get(data_dir)
        if held is None or held.run_id != run_id:
            return
        held.count -= 1
        if held.count == 0:
            del _HELD[data_dir]
            os.close(held.fd)  # closing the last descriptor releases the flock


@contextmanager
def hold(data_dir: Path, run_id: str, started_by: str) -> Iterator[None]:
    acquire(data_dir, run_id, started_by)
    try:
        yield
    finally:
        release(data_dir, run_id)


# --- inside a Dagster run ---------------------------------------------------------------------

_CURRENT: dict[str, object] = {}  # "run": the RunLock of the run executing in this process


class RunLock(dg.ConfigurableResource):
    """The data dir's lock for the length of a Dagster run.

    Every step of the nightly job needs this resource (the job's ``hold_data_dir`` hook asks for
    it), so it is set up when the run starts and torn down when it ends. The first step that opens
    the work database takes the lock (a second run fails there, with :class:`DataDirBusy`); the
    teardown releases it.
    """

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator["RunLock"]:
        run_id = context.run.run_id if context.run else "unknown"
        taken: list[Path] = []
        _CURRENT["run"] = (run_id, taken)
        try:
            yield self
        finally:
            _CURRENT.pop("run", None)
            for data_dir in taken:
                release(data_dir, run_id)


def hold_for_current_run(data_dir: Path) -> None:
    """Called before the work database is opened: in a Dagster run, take the data dir's lock for it."""
    current = _CURRENT.get("run")
    if current is None:
        return  # not inside a run of the job (a test's own connection, explain --db work)
    run_id, taken = current
    data_dir = Path(data_dir).resolve()
    if data_dir in taken:
        return
    acquire(data_dir, run_id, "dagster run")
    taken.append(data_dir)


@dg.failure_hook(required_resource_keys={"run_lock"})
def hold_data_dir(_context) -> None:
    """Does nothing when a step fails: it is here so that every step of the job needs ``run_lock``,
    which Dagster then sets up before the first step and tears down after the last."""
