"""Measure one command as a process tree: wall time, CPU seconds, peak memory, peak temporary disk.

- CPU: user + system seconds of the process and every descendant it waited for
  (``getrusage(RUSAGE_CHILDREN)`` of this process, before and after; the report workers of
  ``rom-pipeline run`` are reaped by their parent, so they count).
- Memory: every ``interval`` seconds (default 0.2) the process and all its descendants are found
  in /proc (by parent pid) and their resident memory summed; the peak of that sum is reported
  (``peak_rss``). The same poll sums their proportional set size (``peak_pss``, from
  /proc/<pid>/smaps_rollup): pages shared by forked workers counted once, so it is the tree's
  real footprint; RSS counts a shared page in every process that maps it.
- Temporary disk: the same poll adds up the files under each ``temp_paths`` entry (a folder, e.g.
  DuckDB's spill folder ``duckdb_tmp``, or a glob such as ``<data dir>/*.wal``); the peak of that sum.

Linux only (/proc); elsewhere memory and disk read as 0.
"""
from __future__ import annotations

import glob
import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class Measurement:
    returncode: int
    wall_s: float
    cpu_s: float
    user_s: float
    system_s: float
    peak_rss_bytes: int
    peak_pss_bytes: int
    peak_temp_bytes: int
    peak_processes: int
    samples: int
    stdout: str = ""
    stderr: str = ""
    extra: dict = field(default_factory=dict)


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
        ppid = int(stat[stat.rindex(b")") + 2:].split(b" ", 2)[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant of it."""
    children = _children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def tree_memory(root: int) -> tuple[int, int, int]:
    """(sum of RSS, sum of PSS, number of processes) of ``root``'s process tree now."""
    pids = process_tree(root)
    return sum(_rss_bytes(p) for p in pids), sum(_pss_bytes(p) for p in pids), len(pids)


def disk_bytes(paths: list[str | Path]) -> int:
    """Bytes in the files under each path (a folder is walked; a pattern with * is globbed)."""
    total = 0
    for path in paths:
        path = str(path)
        for match in glob.glob(path) if "*" in path else [path]:
            if os.path.isdir(match):
                for folder, _dirs, files in os.walk(match):
                    for name in files:
                        try:
                            total += os.lstat(os.path.join(folder, name)).st_size
                        except OSError:
                            pass
            else:
                try:
                    total += os.lstat(match).st_size
                except OSError:
                    pass
    return total


class TreeSampler:
    """Polls a running process tree until stopped; keeps the peaks."""

    def __init__(self, pid: int, temp_paths: list[str | Path] = (), interval: float = 0.2):
        self.pid, self.temp_paths, self.interval = pid, list(temp_paths), interval
        self.peak_rss = self.peak_pss = self.peak_temp = self.peak_processes = self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def sample(self) -> None:
        rss, pss, processes = tree_memory(self.pid)
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        self.peak_processes = max(self.peak_processes, processes)
        if self.temp_paths:
            self.peak_temp = max(self.peak_temp, disk_bytes(self.temp_paths))
        self.samples += 1

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def start(self) -> "TreeSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def measure(command: list[str], env: dict | None = None, cwd: str | Path | None = None,
            temp_paths: list[str | Path] = (), interval: float = 0.2, stdout_path: Path | None = None) -> Measurement:
    """Run ``command`` to its end and measure its process tree. Output is captured (and, with
    ``stdout_path``, also written there)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid, temp_paths, interval).start()
    try:
        out, err = proc.communicate()
    finally:
        sampler.stop()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    if stdout_path is not None:
        stdout_path.write_text(out + ("\n--- stderr ---\n" + err if err else ""), encoding="utf-8")
    return Measurement(proc.returncode, wall, user + system, user, system, sampler.peak_rss, sampler.peak_pss,
                       sampler.peak_temp, sampler.peak_processes, sampler.samples, out, err)
