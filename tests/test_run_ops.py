"""What a run tells its operator and how runs share a data dir (issue 10, items 8, 13, 15, 16).

Real `rom-pipeline run` processes on the bundled sample: the first night (with reports) is the
"holder" while a second command-line run and a Dagster run (in their own processes) try the same
data dir; a second night on the same input (a full rebuild) must say that nothing changed, and a
third is a quiet night; the first two must be in the data dir's Dagster instance. `./dev` must hand its process over to the tool it starts.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from cli_runs import TEST_KEY, cli_command, cli_env, client_ids, connect_warehouse, run_cli
from deliveries import basic_delivery

from rom_pipeline.definitions import build_definitions
from rom_pipeline.paths import PROJECT_DIR, SAMPLE_EXPORT_DIR
from rom_pipeline.resources import PseudonymKey, Workspace
from rom_pipeline.runlock import EXIT_BUSY, LOCK_NAME, hold_data_dir

SAMPLE_MANIFESTS = sorted(SAMPLE_EXPORT_DIR.rglob("manifest.json"))
RUN_ID = re.compile(r"run ([0-9a-f-]{36}), step log (\S+)")

# A Dagster run of the nightly job in its own process, as a run worker executes it (the UI, the
# schedule, the sensor, `dg launch`): prints its step failures' messages and the run's failure message.
DAGSTER_RUN = textwrap.dedent("""
    import json, sys
    import dagster as dg
    from rom_pipeline.definitions import build_definitions
    from rom_pipeline.resources import PseudonymKey, Workspace
    data, export, key = sys.argv[1:4]
    defs = build_definitions({"workspace": Workspace(data_dir=data, export_dir=export),
                              "pseudonym_key": PseudonymKey(key=key)})
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("nightly").execute_in_process(instance=instance, raise_on_error=False)
        steps = [(e.step_key, e.step_failure_data.error.message) for e in result.all_events
                 if e.event_type_value == "STEP_FAILURE"]
        run_failure = [r.dagster_event.event_specific_data.error.message for r in instance.all_logs(result.run_id)
                       if r.dagster_event and r.dagster_event.event_type_value in ("RUN_FAILURE", "PIPELINE_FAILURE")]
        started = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    print(json.dumps({"success": result.success, "steps": steps, "run_failure": run_failure, "started": started}))
""")


@dataclass
class Nights:
    data: Path
    first: subprocess.CompletedProcess
    first_seconds: float
    second: subprocess.CompletedProcess
    holder: dict                               # the lock file while the first night ran
    busy_cli: subprocess.CompletedProcess      # a second `rom-pipeline run` during the first night
    busy_cli_seconds: float
    busy_dagster: dict                         # a Dagster run during the first night
    run_ids: list[str]
    step_logs: list[Path]
    third: subprocess.CompletedProcess         # the same input once more: a quiet night


def _run_ids(stdout: str) -> tuple[str, Path]:
    found = RUN_ID.search(stdout)
    assert found, stdout
    return found.group(1), Path(found.group(2))


@pytest.fixture(scope="module")
def nights(tmp_path_factory) -> Nights:
    data = tmp_path_factory.mktemp("run_ops") / "data"
    env = cli_env(SAMPLE_EXPORT_DIR, data, ROM_PROGRESS_INTERVAL_SECONDS="1")
    started = time.monotonic()
    first = subprocess.Popen(cli_command("run"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = data / LOCK_NAME
        deadline = time.monotonic() + 120
        holder: dict = {}
        while holder.get("pid") != first.pid:
            assert first.poll() is None and time.monotonic() < deadline, "the first night did not take the lock"
            time.sleep(0.2)
            try:
                holder = json.loads(lock.read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
        t = time.monotonic()
        busy_cli = run_cli(env, "run", "--no-reports", timeout=120)
        busy_cli_seconds = time.monotonic() - t
        dagster_run = subprocess.run([sys.executable, "-c", DAGSTER_RUN, str(data), str(SAMPLE_EXPORT_DIR), TEST_KEY],
                                     env=env, capture_output=True, text=True, timeout=300)
        assert dagster_run.returncode == 0, dagster_run.stderr[-2000:]
        busy_dagster = json.loads(dagster_run.stdout.strip().splitlines()[-1])
        assert first.poll() is None, "the first night ended before the second runs were tried: the test proves nothing"
        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    first_result = subprocess.CompletedProcess(first.args, first.returncode, out, err)
    first_seconds = time.monotonic() - started
    # The same input again: forced to work (a full rebuild), else it would be a quiet night, which the
    # third night is (tests/test_quiet_night.py has the rest of the quiet nights).
    second = run_cli(env, "run", "--no-reports", "--full-rebuild")
    third = run_cli(env, "run", "--no-reports")
    ids = [_run_ids(r.stdout) for r in (first_result, second)]
    return Nights(data, first_result, first_seconds, second, holder, busy_cli, busy_cli_seconds, busy_dagster,
                  [i for i, _ in ids], [p for _, p in ids], third)


# --- item 8: one run per data dir ------------------------------------------------------------------

def test_a_second_command_line_run_is_refused_while_a_run_holds_the_data_dir(nights):
    assert nights.first.returncode == 0, nights.first.stdout[-3000:] + nights.first.stderr[-3000:]
    assert nights.holder["started_by"] == "rom-pipeline run" and nights.holder["run_id"] == nights.run_ids[0]
    busy = nights.busy_cli
    assert busy.returncode == EXIT_BUSY == 75, busy.stdout + busy.stderr
    assert "NOT started: another run holds the data dir" in busy.stderr
    # it names the holder: pid, start time and run id
    assert f"pid {nights.holder['pid']}" in busy.stderr and nights.run_ids[0] in busy.stderr
    assert nights.holder["started_at"] in busy.stderr
    # the first night published once; the refused runs recorded nothing
    con = connect_warehouse(nights.data / "warehouse.duckdb")
    try:
        runs = con.execute("SELECT run_id, status FROM audit.runs ORDER BY run_seq").fetchall()
    finally:
        con.close()
    assert runs == [(nights.run_ids[0], "published"), (nights.run_ids[1], "published")]


def test_a_dagster_run_fails_its_first_step_with_the_holder_named_while_the_cli_runs(nights):
    run = nights.busy_dagster
    assert run["success"] is False
    assert run["started"] == ["audit__runs"]  # nothing after the first step ran
    [(step, message)] = run["steps"]
    assert step == "audit__runs"
    assert "another run holds the data dir" in message and f"pid {nights.holder['pid']}" in message
    assert nights.run_ids[0] in message
    # The run's own failure message carries the cause, not only "Error occurred while executing op".
    assert len(run["run_failure"]) == 1 and "another run holds the data dir" in run["run_failure"][0]
    assert "Error occurred while executing op" not in run["run_failure"][0]


def test_a_dagster_run_holds_the_data_dir_for_the_run_and_releases_it(tmp_path):
    """In-process (as a run worker runs it): the lock file names the Dagster run, and it is free afterwards."""
    basic_delivery(tmp_path / "exports", concern_id="C001")
    workspace = Workspace(data_dir=str(tmp_path / "data"), export_dir=str(tmp_path / "exports"), threads=2)
    job = dg.define_asset_job("nightly_locked_without_reports", executor_def=dg.in_process_executor,
                              selection=dg.AssetSelection.all() - dg.AssetSelection.groups("reports"),
                              hooks={hold_data_dir})
    defs = dg.Definitions.merge(build_definitions({"workspace": workspace, "pseudonym_key": PseudonymKey(key=TEST_KEY)}),
                                dg.Definitions(jobs=[job]))
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(job.name).execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    holder = json.loads((tmp_path / "data" / LOCK_NAME).read_text())
    assert holder["run_id"] == result.run_id and holder["started_by"] == "dagster run"
    assert holder["pid"] == os.getpid()
    with open(tmp_path / "data" / LOCK_NAME) as f:  # released at the end of the run
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    data = tmp_path / "data"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from rom_pipeline.runlock import acquire
        acquire({str(data)!r}, "a-run", "rom-pipeline run")
        print("holding", flush=True)
        time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = run_cli(cli_env(SAMPLE_EXPORT_DIR, data), "run", "--no-reports", timeout=120)
        assert result.returncode == 75 and f"pid {holder.pid}" in result.stderr and "a-run" in result.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with open(data / LOCK_NAME) as f:  # the kernel released it with the process
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


# --- item 13: what a run tells its operator -----------------------------------------------------------

def _progress_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("[")]


def test_progress_is_a_line_per_stage_with_counts_and_a_live_line_during_long_steps(nights):
    lines = _progress_lines(nights.first.stdout)
    print("\n".join(lines))
    assert not [line for line in lines if "done   " in line]  # no internal step names, one per step
    stages = [re.match(r"\[\s*[\d.]+s\] (\S+(?: trail)?)\s", line).group(1) for line in lines
              if "running for" not in line and "CHECK WARN" not in line]
    # The one warning of the sample: breakdown cells that complementary suppression could not protect
    # (docs/outcome-rules.md, known limits); published all the same.
    assert [line.split("CHECK WARN")[1].split()[0] for line in lines if "CHECK WARN" in line] == \
        ["marts/indicator_aggregates:no_single_hidden_part"]
    assert stages == ["ingest", "validate", "outcomes", "indicators", "audit trail", "publish", "reports"]
    ingest = next(line for line in lines if re.search(r"\] ingest +deliveries:", line))
    assert f"deliveries: {len(SAMPLE_MANIFESTS)} loaded, 0 unchanged, 0 rejected" in ingest
    assert "full refresh" in ingest
    assert re.search(r"\] validate +\d+ tables, [\d,]+ rows; \d+ checks passed$", "\n".join(lines), re.M)
    assert re.search(r"\] publish +warehouse [\d.]+ MB, \d+ tables; \d+ CSV files", "\n".join(lines))
    assert re.search(r"\] reports +\d+ pages and files: \d+ concern reports, \d+ location reports, "
                     r"\d+ manager packages", "\n".join(lines))
    # A step that runs longer than the interval (1 s here, 10 s by default; ingest takes about 2 s) is
    # said to be still running, on a plain line since this console is not a terminal.
    assert any(re.search(r"\] \w+: \S+ running for \d+ s \(\d+ of \d+ steps done\)", line) for line in lines)
    assert len([line for line in lines if "running for" not in line]) < 20, f"{len(lines)} progress lines"


def test_the_summary_names_every_output_and_what_changed(nights):
    data = nights.data
    out = nights.first.stdout
    assert f"  warehouse         {data / 'warehouse.duckdb'}\n" in out
    assert re.search(rf"  CSV folder        {re.escape(str(data / 'csv'))} \((\d+) files\)", out)
    csv_files = int(re.search(r"CSV folder .* \((\d+) files\)", out).group(1))
    assert csv_files == len(list((data / "csv").glob("*.csv"))) > 0
    assert f"  reports index     {data / 'reports' / 'shared' / 'index.html'} (" in out
    packages = int(re.search(r"  manager packages  \S+ \((\d+) packages", out).group(1))
    assert packages == len([p for p in (data / "reports" / "managers").iterdir() if p.is_dir()]) > 0
    assert f"  step log          {nights.step_logs[0]}" in out
    # first night: every sample delivery and the reference files are new, every figure is new
    assert f"  deliveries  {len(SAMPLE_MANIFESTS) + 1} new (" in out
    assert "0 superseded, 0 rejected" in out
    assert re.search(r"  figures     [\d,]+ new, 0 changed, 0 removed", out)
    # the second night, same input: nothing changed, and the reports were not rebuilt
    second = nights.second
    assert second.returncode == 0, second.stderr
    assert ("since the last run: nothing changed (no delivery new, superseded or rejected; "
            "no figure new, changed or removed)") in second.stdout
    assert "reports           not rebuilt by this run (--no-reports)" in second.stdout
    # the third night, same input, nothing asked for: quiet, and it says what it kept
    third = nights.third
    assert third.returncode == 0, third.stderr
    assert "QUIET NIGHT: nothing new since run " + nights.run_ids[1] in third.stdout
    assert "since the last run: nothing changed" in third.stdout
    assert f"  kept as is    warehouse {data / 'warehouse.duckdb'}" in third.stdout


def test_the_full_step_log_is_kept_under_the_data_dir_without_client_ids(nights):
    for path in nights.step_logs:
        assert path.parent == nights.data / "logs" and path.is_file()
    text = nights.step_logs[0].read_text()
    assert "STEP_SUCCESS - Finished execution of step \"publish__warehouse\"" in text
    assert "ASSET_CHECK_EVALUATION" in text and "STEP_START" in text
    leaked = [c for c in client_ids(SAMPLE_EXPORT_DIR) if c in text]
    assert leaked == []


# --- item 15: one Dagster instance for CLI runs and `dagster dev` ----------------------------------

def test_command_line_runs_are_in_the_data_dirs_dagster_instance(nights, monkeypatch):
    home = nights.data / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        for run_id in nights.run_ids:
            run = instance.get_run_by_id(run_id)
            assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        warehouse = instance.get_latest_materialization_event(dg.AssetKey(["publish", "warehouse"]))
        assert warehouse.run_id == nights.run_ids[1]
        reports = instance.get_latest_materialization_event(dg.AssetKey(["reports", "benchmark_reports"]))
        assert reports.run_id == nights.run_ids[0]  # the second night ran --no-reports
        assert reports.asset_materialization.metadata["manager_packages"].value > 0
        checks = [r.dagster_event.event_specific_data for r in instance.all_logs(nights.run_ids[0])
                  if r.dagster_event and r.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert any(c.check_name == "reproduces_published_figures" and c.passed for c in checks)
        # every blocking check passed (a WARN check may fail: its figures are published all the same)
        assert all(c.passed for c in checks if c.severity == dg.AssetCheckSeverity.ERROR)
        assert {c.check_name for c in checks if not c.passed} <= {"no_single_hidden_part"}


def test_dev_dagster_uses_the_data_dirs_dagster_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["ROM_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run([str(PROJECT_DIR / "dev"), "dagster", "instance", "info"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"$DAGSTER_HOME: {tmp_path / 'data' / 'dagster_home'}" in result.stdout


# --- item 16: ./dev hands the process over -----------------------------------------------------------

def _processes_with(marker: str, tool_only: bool = False) -> list[int]:
    """Pids whose command line holds ``marker`` (``tool_only``: only the venv's python running it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(marker.encode() in a for a in argv) and (
                    not tool_only or argv[0].endswith(b".venv/bin/python")):
                found.append(int(entry.name))
    return found


def test_sigterm_to_dev_stops_the_tool_itself_and_leaves_no_child(tmp_path):
    marker = f"rom-dev-exec-{uuid.uuid4().hex}"
    # The tool starts with SIGTERM's default action, as under cron or a shell: an ignored SIGTERM is
    # inherited through exec, and an earlier test in this worker may have left it ignored.
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        proc = subprocess.Popen([str(PROJECT_DIR / "dev"), "python", "-c",
                                 f"import time; time.sleep(30)  # {marker}"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    try:
        deadline = time.monotonic() + 60
        while not _processes_with(marker, tool_only=True):
            assert proc.poll() is None and time.monotonic() < deadline, "the tool did not start"
            time.sleep(0.1)
        assert _processes_with(marker) == [proc.pid]  # one process: the tool, under the pid we started
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
        time.sleep(0.5)
        assert _processes_with(marker) == []
    finally:
        for pid in _processes_with(marker):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
