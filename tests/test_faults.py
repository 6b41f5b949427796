"""Faults (issue 6): a run killed at any step, a full disk or an unreadable export root leaves the
published warehouse byte for byte as it was, and a later run publishes what an uninterrupted run does.

Every run is the real command line in its own process (tests/cli_runs.py). The first night is
published once (the shared baseline). Two chains each copy its data dir and start the second night
(a newer C001 delivery): the run is killed with SIGKILL when its progress output reaches a step (or
the test hook ROM_FAULT_INJECT ends it inside publishing, where no progress line marks the moment),
the warehouse's sha256 is checked, the next run is killed at a later point and checked the same way,
and the third run must complete and publish exactly what the uninterrupted second night (the reader
test's run) publishes, table by table. The chains, the reference and the full-disk case run two at a
time (the machine has two cores). Figures: docs/reliability.md.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from cli_runs import (Baseline, Killed, baseline, cli_env, connect_warehouse, differing_rows, published_tables,
                      reader_night, run_cli, run_until, sha256_file)

from rom_pipeline.defs.publish.warehouse import publish_warehouse
from rom_pipeline.lib.warehouse_spec import load_spec
from rom_pipeline.resources import Workspace

KILL_POINTS = {
    "after_ingest": {"kill_on": "done   ingest_deliveries"},
    "during_validation": {"kill_on": "done   validate_episodes"},  # other files' validation still to come
    "mid_build": {"fault": "mid_build"},          # new file half built (first table copied, no checkpoint)
    "before_swap": {"fault": "before_swap"},      # new file complete and fsynced, not yet renamed
}
# Each chain kills one run, then kills the next run later, then lets the third run finish: every kill is
# checked on its own (warehouse byte for byte, CSV exports), and the chain's last run must publish what
# the uninterrupted night publishes. (Two full runs fewer than a recovery after every kill.)
CHAINS = {"A": ["after_ingest", "mid_build"], "B": ["during_validation", "before_swap"]}
FULL_DISK = "full_disk"


@dataclass
class Outcome:
    name: str
    sha_before: str
    sha_after: str = ""
    killed: Killed | None = None
    failed: subprocess.CompletedProcess | None = None
    leftovers: list[str] = field(default_factory=list)
    recovery: subprocess.CompletedProcess | None = None
    recovery_seconds: float = 0.0
    tables: dict = field(default_factory=dict)
    run_statuses: dict = field(default_factory=dict)
    csv_before: dict = field(default_factory=dict)
    csv_after_kill: dict = field(default_factory=dict)
    skipped: str = ""


def _csv_hashes(data: Path) -> dict[str, str]:
    folder = data / "csv"
    return {p.name: sha256_file(p) for p in sorted(folder.glob("*.csv"))} if folder.is_dir() else {}


def _recover(base: Baseline, data: Path, outcome: Outcome) -> None:
    started = time.monotonic()
    outcome.recovery = run_cli(cli_env(base.second_root, data))
    outcome.recovery_seconds = time.monotonic() - started
    if outcome.recovery.returncode == 0:
        warehouse = data / "warehouse.duckdb"
        outcome.tables = published_tables(warehouse)
        con = connect_warehouse(warehouse)
        outcome.run_statuses = dict(con.execute("SELECT status, count(*) FROM audit.runs GROUP BY ALL").fetchall())
        con.close()


def _kill(base: Baseline, data: Path, name: str) -> Outcome:
    spec = KILL_POINTS[name]
    warehouse = data / "warehouse.duckdb"
    outcome = Outcome(name, sha256_file(warehouse), csv_before=_csv_hashes(data))
    extra = {"ROM_FAULT_INJECT": spec["fault"]} if "fault" in spec else {}
    outcome.killed = run_until(cli_env(base.second_root, data, **extra), kill_on=spec.get("kill_on"))
    outcome.sha_after = sha256_file(warehouse)
    outcome.csv_after_kill = _csv_hashes(data)
    outcome.leftovers = sorted(p.name for p in data.iterdir())
    return outcome


def _chain(base: Baseline, chain: str, workdir: Path) -> list[Outcome]:
    data = base.copy_data(workdir / f"chain_{chain}")
    outcomes = [_kill(base, data, name) for name in CHAINS[chain]]
    _recover(base, data, outcomes[-1])
    for outcome in outcomes[:-1]:  # the chain's recovery belongs to each of its kills
        last = outcomes[-1]
        outcome.recovery, outcome.recovery_seconds = last.recovery, last.recovery_seconds
        outcome.tables, outcome.run_statuses = last.tables, last.run_statuses
    return outcomes


def _fill(disk: Path) -> Path:
    """Write zeros until the disk is full."""
    filler = disk / "filler"
    chunk = b"\0" * (256 * 1024)
    with filler.open("wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def _full_disk_scenario(base: Baseline, workdir: Path) -> Outcome:
    """The data dir on a small tmpfs that is full when the second night starts.

    (Recovering from a killed run is shown by the kill scenarios; a run after a full disk is the same case.)
    """
    disk = workdir / "small_disk"
    disk.mkdir()
    size = sum(p.stat().st_size for p in base.data_dir.rglob("*") if p.is_file() and not p.is_symlink())
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size + 8 * 2**20}", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        return Outcome(FULL_DISK, "", skipped="cannot mount a tmpfs to simulate a full disk (needs root): "
                                              + (mounted.stderr or mounted.stdout).strip())
    try:
        data = base.copy_data(disk / "data")
        warehouse = data / "warehouse.duckdb"
        outcome = Outcome(FULL_DISK, sha256_file(warehouse), csv_before=_csv_hashes(data))
        _fill(disk)
        outcome.failed = run_cli(cli_env(base.second_root, data))
        outcome.sha_after = sha256_file(warehouse)
        outcome.csv_after_kill = _csv_hashes(data)
        outcome.leftovers = sorted(p.name for p in data.iterdir())
        return outcome
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Baseline:
    return baseline(tmp_path_factory)


@pytest.fixture(scope="module")
def outcomes(base: Baseline, tmp_path_factory) -> dict[str, Outcome]:
    """The uninterrupted second night (``reference``) and every fault scenario, side by side."""
    workdir = tmp_path_factory.mktemp("faults")

    def reference() -> Outcome:
        """The reader test's night (a reader only reads): the same second night, uninterrupted."""
        night = reader_night(tmp_path_factory)
        outcome = Outcome("reference", sha256_file(base.data_dir / "warehouse.duckdb"), recovery=night.result,
                          recovery_seconds=night.seconds)
        if night.result.returncode == 0:
            warehouse = night.data_dir / "warehouse.duckdb"
            outcome.tables = published_tables(warehouse)
            con = connect_warehouse(warehouse)
            outcome.run_statuses = dict(con.execute("SELECT status, count(*) FROM audit.runs GROUP BY ALL").fetchall())
            con.close()
        return outcome

    with ThreadPoolExecutor(max_workers=3) as pool:  # the chains are long: the reference runs beside them
        others = [pool.submit(reference), pool.submit(_full_disk_scenario, base, workdir)]
        chains = [pool.submit(_chain, base, chain, workdir) for chain in CHAINS]
        results = [o for f in chains for o in f.result()] + [f.result() for f in others]
    for o in results:
        if o.killed:
            print(f"\nfaults: {o.name}: exit {o.killed.returncode} after {o.killed.seconds:.1f} s; warehouse "
                  f"{'unchanged' if o.sha_after == o.sha_before else 'CHANGED'}; left {o.leftovers}; "
                  f"chain's last run exit {o.recovery.returncode} in {o.recovery_seconds:.1f} s; runs {o.run_statuses}")
    return {o.name: o for o in results}


def _assert_same_tables(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected), "the recovered warehouse has other tables"
    for table, rows in expected.items():
        differing = differing_rows(got[table], rows)
        if differing:
            expected_row, got_row = differing[0]
            detail = "" if expected_row is None else "; first differing row, (position, uninterrupted, recovered): " + \
                str([(i, str(e)[:80], str(g)[:80]) for i, (e, g) in enumerate(zip(expected_row, got_row)) if e != g][:4])
            pytest.fail(f"{table}: {len(got[table])} rows, uninterrupted run {len(rows)}, "
                        f"{len(differing)} differ{detail}")


def test_the_uninterrupted_second_night_changes_the_warehouse(outcomes, base):
    reference = outcomes["reference"]
    assert reference.recovery.returncode == 0, reference.recovery.stderr
    assert reference.run_statuses == {"published": 2}
    first = published_tables(base.data_dir / "warehouse.duckdb")
    assert first["audit.deliveries"] != reference.tables["audit.deliveries"]  # the scenarios test a real change
    assert first["marts.indicators"] != reference.tables["marts.indicators"]


@pytest.mark.parametrize("name", list(KILL_POINTS))
def test_a_killed_run_leaves_the_warehouse_as_it_was_and_a_later_run_recovers(outcomes, name):
    outcome, reference = outcomes[name], outcomes["reference"]
    killed = outcome.killed
    output = "\n".join(killed.lines)
    if "kill_on" in KILL_POINTS[name]:
        assert killed.killed_by_test and killed.returncode == -9, output
    else:
        assert killed.returncode == 137, output  # the ROM_FAULT_INJECT hook's os._exit(137)
    assert "done   publish__warehouse" not in output
    # The published file, byte for byte, and the CSV exports are untouched.
    assert outcome.sha_after == outcome.sha_before
    assert outcome.csv_after_kill == outcome.csv_before
    # The next run publishes what the uninterrupted night publishes.
    assert outcome.recovery.returncode == 0, outcome.recovery.stdout + outcome.recovery.stderr
    _assert_same_tables(outcome.tables, reference.tables)
    # The killed runs are on record as incomplete, never as published.
    assert outcome.run_statuses == {"published": 2, "incomplete": 2}


def test_a_half_built_warehouse_is_left_beside_it_and_cleared_by_the_next_run(outcomes):
    assert ".warehouse.duckdb.building" in outcomes["mid_build"].leftovers
    assert ".warehouse.duckdb.building" in outcomes["before_swap"].leftovers


def test_a_full_disk_fails_the_run_with_a_clear_message_and_publishes_nothing(outcomes):
    outcome = outcomes[FULL_DISK]
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    failed = outcome.failed
    print(f"\nfull disk: exit {failed.returncode}; stderr: {failed.stderr.strip()[-600:]}")
    assert failed.returncode != 0
    assert "No space left on device" in failed.stderr, failed.stderr
    assert "is full" in failed.stderr and "NOT published" in failed.stderr
    assert outcome.sha_after == outcome.sha_before
    assert outcome.csv_after_kill == outcome.csv_before
    assert ".warehouse.duckdb.building" not in outcome.leftovers


def test_the_disk_filling_up_while_the_new_warehouse_is_built_leaves_no_partial_file(base, tmp_path):
    """publish_warehouse itself: the building file hits a full disk; the published file stays, the half file goes."""
    disk = tmp_path / "small_disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs to simulate a full disk (needs root): " + mounted.stderr.strip())
    try:
        target = disk / "warehouse.duckdb"
        shutil.copy(base.data_dir / "warehouse.duckdb", target)
        before = sha256_file(target)
        work = base.copy_data(tmp_path / "data")
        # Leave 1 MB: the published warehouse is several MB, so the new one cannot be finished.
        filler = disk / "filler"
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        with filler.open("wb") as f:
            os.posix_fallocate(f.fileno(), 0, max(free - 1024 * 1024, 1))
        with Workspace(data_dir=str(work), export_dir=str(base.first_root)).connect() as con:
            with pytest.raises(duckdb.Error) as raised:
                publish_warehouse(con, target, load_spec())
        assert "No space left on device" in str(raised.value) or "space" in str(raised.value).lower()
        assert sha256_file(target) == before
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "warehouse.duckdb"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_large_table_is_copied_a_batch_of_concerns_at_a_time_in_the_same_order(base, tmp_path, monkeypatch):
    """publish_warehouse with batches of one concern (PUBLISH_BATCH_ROWS 1) writes every table with the
    same rows in the same order as one statement per table."""
    from rom_pipeline.defs.publish import warehouse

    work = base.copy_data(tmp_path / "data")
    built = {}
    for batch_rows in (1, warehouse.PUBLISH_BATCH_ROWS):
        monkeypatch.setattr(warehouse, "PUBLISH_BATCH_ROWS", batch_rows)
        target = tmp_path / f"warehouse-{batch_rows}.duckdb"
        with Workspace(data_dir=str(work), export_dir=str(base.first_root)).connect() as con:
            if batch_rows == 1:  # at least one table goes in several batches
                assert len(warehouse._concern_batches(con, next(t for t in load_spec() if t.name == "staging.episodes"))) > 1
            publish_warehouse(con, target, load_spec())
        with duckdb.connect(str(target), read_only=True) as con:
            built[batch_rows] = {t.name: con.execute(f"SELECT * FROM {t.name}").fetchall() for t in load_spec()}
    one_by_one, whole = built.values()
    assert one_by_one == whole and sum(len(rows) for rows in whole.values()) > 0


@pytest.mark.parametrize("problem", ["missing", "a_file"])
def test_an_unreadable_export_root_fails_the_run_and_publishes_nothing(base, tmp_path, problem):
    data = base.copy_data(tmp_path / "data")
    before = sha256_file(data / "warehouse.duckdb")
    root = tmp_path / "no-such-export-root"
    if problem == "a_file":  # root ignores permissions: chmod 000 would not stop it, a file does
        root = tmp_path / "exports.zip"
        root.write_bytes(b"not a folder")
    result = run_cli(cli_env(root, data))
    assert result.returncode != 0
    assert str(root) in result.stderr and "ROM_EXPORT_DIR" in result.stderr
    assert ("does not exist" if problem == "missing" else "is a file") in result.stderr
    assert sha256_file(data / "warehouse.duckdb") == before


def test_the_dagster_job_also_fails_on_a_missing_export_root(base, tmp_path):
    """The same through Dagster (as the UI or `dg launch` runs it): the step names the export root."""
    import dagster as dg

    from cli_runs import TEST_KEY
    from rom_pipeline.definitions import build_definitions
    from rom_pipeline.resources import PseudonymKey

    data = base.copy_data(tmp_path / "data")
    before = sha256_file(data / "warehouse.duckdb")
    missing = tmp_path / "gone"
    defs = build_definitions({"workspace": Workspace(data_dir=str(data), export_dir=str(missing)),
                              "pseudonym_key": PseudonymKey(key=TEST_KEY)})
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("nightly").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    messages = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            messages.append(error.message)
    assert any(str(missing) in m and "does not exist" in m for m in messages), messages
    assert sha256_file(data / "warehouse.duckdb") == before


def test_a_run_killed_right_after_the_swap_is_settled_as_published(base, tmp_path):
    """Between the rename and its own record a run can die: the warehouse it published names it, so the
    next run records it as published (not incomplete). Simulated on a copy of the first night."""
    from rom_pipeline.defs.audit.trail import settle_interrupted_publish
    from rom_pipeline.defs.triggers import last_publish

    data = base.copy_data(tmp_path / "data")
    published = last_publish(Workspace(data_dir=str(data), export_dir=str(base.first_root))).run_id
    con = duckdb.connect(str(data / "work.duckdb"))
    con.execute("UPDATE audit.runs SET status = 'running' WHERE run_id = ?", [published])  # its record, unwritten
    assert not settle_interrupted_publish(con, "a-run-the-warehouse-does-not-name")
    assert settle_interrupted_publish(con, published)
    assert con.execute("SELECT status FROM audit.runs WHERE run_id = ?", [published]).fetchone() == ("published",)
