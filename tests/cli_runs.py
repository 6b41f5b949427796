"""Real `rom-pipeline` subprocesses and what they publish: helpers for the fault, reader, privacy and export tests.

A run here is the installed command line (`.venv/bin/rom-pipeline run`) in its own
process, configured only through the environment (ROM_EXPORT_DIR, ROM_DATA_DIR,
ROM_PSEUDONYM_KEY), as an operator or cron would start it.
"""
from __future__ import annotations

import csv
import ctypes
import hashlib
import io
import json
import math
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

TEST_KEY = "test-key-0123456789abcdef"
CLI = Path(sys.executable).with_name("rom-pipeline")
HYPERLINK_NAME = '=HYPERLINK("http://x","y")'

# Columns that name or time a run: they differ between any two runs, by design. code_version and
# git_commit name the checkout's HEAD, which moves when someone commits during a test in a shared
# checkout (source_sha256, the hash of the code that ran, is compared).
RUN_SPECIFIC_COLUMNS = {"run_id", "run_seq", "started_at", "finished_at", "code_version", "git_commit"}


def cli_command(*args: str) -> list[str]:
    return [str(CLI), *args] if CLI.exists() else [sys.executable, "-m", "rom_pipeline.cli", *args]


def cli_env(export_dir: Path | None, data_dir: Path | None, key: str | None = TEST_KEY, **extra: str) -> dict:
    """The environment of a run: the caller's, without any ROM_* or DAGSTER_HOME setting of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROM_") and k != "DAGSTER_HOME"}
    env["PYTHONUNBUFFERED"] = "1"
    env["ROM_REPORTS_PDF"] = "0"  # HTML reports only: the PDFs have tests of their own
    if export_dir is not None:
        env["ROM_EXPORT_DIR"] = str(export_dir)
    if data_dir is not None:
        env["ROM_DATA_DIR"] = str(data_dir)
    if key is not None:
        env["ROM_PSEUDONYM_KEY"] = key
    env.update(extra)
    return env


# The pipeline runs of these tests publish the warehouse and the CSV exports; the reports (the last
# step, after publishing; tested in tests/test_reports.py) would double every run's time.
RUN = ("run", "--no-reports")


def run_cli(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*(args or RUN)), env=env, capture_output=True, text=True, timeout=timeout)


@dataclass
class Killed:
    returncode: int
    lines: list[str]
    seconds: float                  # from start to the kill (or the process's own exit)
    killed_by_test: bool


def run_until(env: dict, kill_on: str | None = None, timeout: float = 300) -> Killed:
    """Start `rom-pipeline run`; SIGKILL it (its whole process group) once a progress line contains ``kill_on``.

    Without ``kill_on`` the run goes its own way (e.g. a ROM_FAULT_INJECT hook ends it).
    """
    started = time.monotonic()
    proc = subprocess.Popen(cli_command(*RUN, "--verbose"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines, killed = [], False
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if kill_on and kill_on in line:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"run did not reach {kill_on!r} in {timeout} s")
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return Killed(proc.returncode, lines, time.monotonic() - started, killed)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- deliveries -------------------------------------------------------------------------------------


def generate(out: Path, *, concerns: int = 2, episodes: int = 120, seed: int = 7, export_date: str = "2026-11-21",
             defect_rate: float = 0.0, extra_reference_concerns: int = 3) -> Path:
    """`rom-pipeline generate` (the real generator) into ``out``: totals only, so it is small and fast."""
    subprocess.run(cli_command("generate", "--out", str(out), "--concerns", str(concerns), "--episodes",
                               str(episodes), "--seed", str(seed), "--export-date", export_date, "--defect-rate",
                               str(defect_rate), "--no-items", "--extra-reference-concerns",
                               str(extra_reference_concerns), "--quiet"),
                   check=True, capture_output=True, timeout=120)
    return out


def rewrite_field(delivery: Path, file_name: str, key_column: str, key: str, column: str, value: str) -> None:
    """Change one field of a delivered CSV file and keep its manifest true (sha256)."""
    path = delivery / file_name
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    header = rows[0]
    for row in rows[1:]:
        if row[header.index(key_column)] == key:
            row[header.index(column)] = value
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\n").writerows(rows)
    path.write_bytes(out.getvalue().encode("utf-8"))
    manifest_path = delivery / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][file_name]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=2))


def client_ids(export_root: Path) -> set[str]:
    """Every raw client id of every delivery's episodes.csv under the export root."""
    ids = set()
    for path in export_root.rglob("episodes.csv"):
        with path.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter=";"):
                if row.get("client_id"):
                    ids.add(row["client_id"])
    return ids


# --- what a run published ---------------------------------------------------------------------------


def connect_warehouse(path: Path, encryption_key: str | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    options = "READ_ONLY" + (f", ENCRYPTION_KEY '{encryption_key}'" if encryption_key else "")
    con.execute(f"ATTACH '{path}' AS w ({options})")
    con.execute("USE w")
    return con


def table_names(con, database: str = "w") -> list[str]:
    return [f"{s}.{t}" for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY ALL",
        [database]).fetchall()]


def table_rows(con, table: str, where: str = "", database: str = "w") -> list[tuple]:
    """Every row of ``table`` without its run-specific columns, sorted by all columns.

    JSON text (e.g. ``figure_json``) is parsed; compare with :func:`same_rows`, which
    allows floating-point noise: parallel sums differ in the last bits between two runs
    of the same input (docs/reliability.md).
    """
    schema, name = table.split(".")
    columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? "
        "AND table_name = ? ORDER BY column_index", [database, schema, name]).fetchall()
    select = []
    for column, data_type in columns:
        if column in RUN_SPECIFIC_COLUMNS:
            continue
        quoted = f'"{column}"'
        if data_type.startswith(("MAP", "STRUCT")) or data_type.endswith("[]"):
            select.append(f"to_json({quoted})::VARCHAR")
        else:
            select.append(quoted)
    rows = con.execute(f"SELECT {', '.join(select)} FROM {database}.{schema}.{name} {where}").fetchall()
    return sorted((tuple(_parse_json(v) for v in row) for row in rows), key=_sort_key)


def _parse_json(value):
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _coarse(value):
    """A float at 6 significant digits, for ordering only (noise must not reorder rows)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)[:200]
    return str(value)


def _sort_key(row: tuple) -> tuple:
    return tuple((value is None, type(value).__name__, _coarse(value)) for value in row)


def same_value(a, b, rel: float = 1e-9) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k], rel) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y, rel) for x, y in zip(a, b))
    return a == b


def differing_rows(got: list[tuple], expected: list[tuple]) -> list[tuple[tuple | None, tuple | None]]:
    """Pairs (expected, got) that differ beyond floating-point noise (empty: the same rows)."""
    if len(got) != len(expected):
        return [(None, None)]
    return [(e, g) for e, g in zip(expected, got) if not same_value(e, g)]


def published_tables(path: Path, encryption_key: str | None = None) -> dict[str, list[tuple]]:
    """Every table of a published warehouse, rows as :func:`table_rows` gives them.

    ``audit.runs`` holds the published runs only: a run that was killed is there too
    (status incomplete) after a recovery, which an uninterrupted night does not have.
    """
    con = connect_warehouse(path, encryption_key)
    try:
        return {t: table_rows(con, t, "WHERE status = 'published'" if t == "audit.runs" else "")
                for t in table_names(con)}
    finally:
        con.close()


def counts(path: Path) -> tuple:
    con = connect_warehouse(path)
    try:
        return con.execute("SELECT (SELECT count(*) FROM audit.deliveries), (SELECT count(*) FROM marts.indicators), "
                           "(SELECT count(*) FROM audit.runs)").fetchone()
    finally:
        con.close()


# --- one published night shared by the fault, reader and export tests ------------------------------


@dataclass
class Baseline:
    """A first night published from deliveries A; ``second_root`` adds a newer C001 delivery (B)."""

    root: Path
    first_root: Path      # export root of the first night
    second_root: Path     # the same plus C001's next delivery
    data_dir: Path        # after the first night (copy it before running on it)
    first_run_seconds: float
    extra: dict = field(default_factory=dict)

    def copy_data(self, to: Path) -> Path:
        shutil.copytree(self.data_dir, to, symlinks=True)  # reports/ is a symlink into .reports/
        return to


_BASELINE: dict[str, Baseline] = {}


def baseline(tmp_path_factory) -> Baseline:
    """Built once per test session: two generated concerns, one location named like a formula."""
    if "baseline" in _BASELINE:
        return _BASELINE["baseline"]
    root = tmp_path_factory.mktemp("baseline")
    first = generate(root / "first")
    rewrite_field(first / "C001" / "2026-11-21", "locations.csv", "location_id", "L01", "location_name",
                  HYPERLINK_NAME)
    later = generate(root / "later", export_date="2026-12-19")
    second = root / "second"
    shutil.copytree(first, second)
    shutil.copytree(later / "C001" / "2026-12-19", second / "C001" / "2026-12-19")
    data = root / "data"
    started = time.monotonic()
    result = run_cli(cli_env(first, data))
    assert result.returncode == 0, result.stdout + result.stderr
    _BASELINE["baseline"] = Baseline(root, first, second, data, time.monotonic() - started)
    return _BASELINE["baseline"]


# --- the second night, with an analyst reading and inotify watching (test_readers; test_faults' reference) ---

READER = r"""
import json, os, sys, time
import duckdb

path, out, stop = sys.argv[1:4]
QUERY = ("SELECT (SELECT count(*) FROM audit.deliveries), (SELECT count(*) FROM marts.indicators), "
         "(SELECT count(*) FROM audit.runs)")


def read(mode, con, f):
    record = {"mode": mode, "t": time.time()}
    try:
        record["counts"] = list(con.execute(QUERY).fetchone())
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    f.write(json.dumps(record) + "\n")
    f.flush()


held = duckdb.connect(path, read_only=True)
with open(out, "a") as f:
    f.write(json.dumps({"mode": "ready", "t": time.time()}) + "\n")
    f.flush()
    while True:
        last = os.path.exists(stop)
        read("held", held, f)
        # A new connection while `held` is open: duckdb.connect(path) would hand back the cached
        # database of `held` (the old file); a fresh in-memory database attaching the file opens it anew.
        fresh = duckdb.connect()
        try:
            fresh.execute(f"ATTACH '{path}' AS w (READ_ONLY)")
            fresh.execute("USE w")
            read("fresh", fresh, f)
        except Exception as exc:
            f.write(json.dumps({"mode": "fresh", "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        fresh.close()
        if last:
            break
        time.sleep(0.1)
    held.close()  # reconnecting the usual way: close, then connect again
    read("reconnected", duckdb.connect(path, read_only=True), f)
"""

# inotify (Linux): <sys/inotify.h>
IN_ACCESS, IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE, IN_CLOSE_NOWRITE, IN_OPEN = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
WATCHED = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_OPEN | IN_MOVED_FROM | IN_MOVED_TO \
    | IN_CREATE | IN_DELETE
NAMES = {IN_MODIFY: "MODIFY", IN_ATTRIB: "ATTRIB", IN_CLOSE_WRITE: "CLOSE_WRITE", IN_CLOSE_NOWRITE: "CLOSE_NOWRITE",
         IN_OPEN: "OPEN", IN_MOVED_FROM: "MOVED_FROM", IN_MOVED_TO: "MOVED_TO", IN_CREATE: "CREATE",
         IN_DELETE: "DELETE"}


class DirectoryWatch:
    """Every inotify event in one directory, as (file name, event name, cookie), read by a thread."""

    def __init__(self, folder: Path):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, str(folder).encode(), WATCHED) < 0:
            raise OSError(ctypes.get_errno(), "inotify")
        self.events: list[tuple[str, str, int]] = []
        self.overflow = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.fd, 1 << 20)
                except BlockingIOError:
                    continue
                offset = 0
                while offset < len(data):
                    _, mask, cookie, length = struct.unpack_from("iIII", data, offset)
                    name = data[offset + 16: offset + 16 + length].rstrip(b"\0").decode()
                    offset += 16 + length
                    if mask & 0x4000:  # IN_Q_OVERFLOW
                        self.overflow = True
                    for bit, label in NAMES.items():
                        if mask & bit:
                            self.events.append((name, label, cookie))
            elif self._stop.is_set():
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self.fd)

    def of(self, name: str) -> list[str]:
        return [label for n, label, _ in self.events if n == name]



@dataclass
class ReaderNight:
    data_dir: Path
    result: subprocess.CompletedProcess
    seconds: float
    old: tuple
    new: tuple
    reads: list[dict]
    watch: DirectoryWatch
    reader_exit: int


_READER_NIGHT: dict[str, ReaderNight] = {}
_READER_LOCK = threading.Lock()


def reader_night(tmp_path_factory) -> ReaderNight:
    """The second night (``Baseline.second_root``) run by the command line, once per session, while a
    second process reads the warehouse and inotify watches the data dir. Nothing in it changes the
    run's result: test_faults uses it as the uninterrupted night."""
    with _READER_LOCK:
        if "night" not in _READER_NIGHT:
            _READER_NIGHT["night"] = _run_reader_night(baseline(tmp_path_factory), tmp_path_factory)
        return _READER_NIGHT["night"]


def _run_reader_night(base: Baseline, tmp_path_factory) -> ReaderNight:
    work = tmp_path_factory.mktemp("readers")
    data = base.copy_data(work / "data")
    warehouse = data / "warehouse.duckdb"
    old = counts(warehouse)
    out, stop = work / "reads.jsonl", work / "stop"
    watch = DirectoryWatch(data)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(warehouse), str(out), str(stop)])
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_text()):  # the reader holds its connection before the run starts
            assert reader.poll() is None and time.monotonic() < deadline, "reader did not start"
            time.sleep(0.05)
        started = time.monotonic()
        result = run_cli(cli_env(base.second_root, data))
        seconds = time.monotonic() - started
        time.sleep(0.3)  # a few reads after the run
        stop.touch()
        reader.wait(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
        watch.stop()
    reads = [json.loads(line) for line in out.read_text().splitlines()]
    return ReaderNight(data, result, seconds, tuple(old), tuple(counts(warehouse)),
                       [r for r in reads if r["mode"] != "ready"], watch, reader.returncode)
