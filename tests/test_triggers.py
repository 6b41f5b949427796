"""The nightly schedule and the new-delivery sensor, and the one-writer rule."""
import json
import os
import subprocess
import sys
import textwrap

import dagster as dg
import duckdb
import pytest
from deliveries import basic_delivery
from nights import NightlyPipeline, night1

from rom_pipeline.definitions import defs
from rom_pipeline.defs.sql_asset import DUCKDB_POOL
from rom_pipeline.defs.triggers import new_delivery_sensor, nightly_job, nightly_schedule
from rom_pipeline.lib import fingerprint
from rom_pipeline.resources import Workspace


@pytest.fixture(autouse=True)
def no_settle_time(monkeypatch):
    """Test deliveries are written a moment before the sensor looks; do not wait for them to settle."""
    monkeypatch.setenv("ROM_DELIVERY_SETTLE_SECONDS", "0")


def tick(workspace: Workspace):
    return nightly_schedule.evaluate_tick(dg.build_schedule_context(resources={"workspace": workspace}))


def sense(workspace: Workspace, cursor: str | None = None):
    return new_delivery_sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor, resources={"workspace": workspace}))


# --- definitions -------------------------------------------------------------------------------

def test_schedule_and_sensor_are_defined_running_on_the_nightly_job():
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.execution_timezone == "Europe/Amsterdam" and schedule.cron_schedule == "30 2 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING and schedule.job_name == "nightly"
    sensor = defs.resolve_sensor_def("new_delivery_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 60 and sensor.job_name == "nightly"
    job = defs.resolve_job_def("nightly")
    assert job.executor_def is dg.in_process_executor and job.tags["rom/writer"] == "work_db"
    assert nightly_job.name == "nightly"


def test_the_sensor_interval_is_a_setting_with_a_clear_error():
    """A new delivery waits at most the interval plus the settle time (docs/operations.md): both are settings."""
    code = "from rom_pipeline.defs.triggers import new_delivery_sensor as s; print(s.minimum_interval_seconds)"
    env = {k: v for k, v in os.environ.items() if k != "ROM_SENSOR_INTERVAL_SECONDS"}
    assert subprocess.run([sys.executable, "-c", code], env={**env, "ROM_SENSOR_INTERVAL_SECONDS": "45"},
                          capture_output=True, text=True, check=True).stdout.strip() == "45"
    bad = subprocess.run([sys.executable, "-c", code], env={**env, "ROM_SENSOR_INTERVAL_SECONDS": "5"},
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "ROM_SENSOR_INTERVAL_SECONDS='5'" in bad.stderr and "at least 30" in bad.stderr


# --- schedule ----------------------------------------------------------------------------------

def test_schedule_runs_the_first_night(tmp_path):
    pipeline = NightlyPipeline(tmp_path / "exports", tmp_path / "data")
    night1(pipeline.export_dir)
    result = tick(pipeline.workspace)
    assert len(result.run_requests) == 1 and result.skip_message is None
    assert result.run_requests[0].tags["rom/reason"] == "first publish"


def test_schedule_skips_when_nothing_changed_since_the_last_publish(two_nights):
    result = tick(two_nights.pipeline.workspace)
    assert result.run_requests == []
    assert "nothing changed since the last publish" in result.skip_message
    assert two_nights.run_ids[-1] in result.skip_message


@pytest.mark.parametrize("change", ["delivery", "reference", "parameters"])
def test_schedule_runs_when_deliveries_reference_files_or_parameters_changed(two_nights, tmp_path, change):
    pipeline = two_nights.copy(tmp_path)
    assert tick(pipeline.workspace).run_requests == []
    if change == "delivery":
        basic_delivery(pipeline.export_dir, concern_id="C003")
    elif change == "reference":
        (pipeline.export_dir / "reference").mkdir(exist_ok=True)
        (pipeline.export_dir / "reference" / "quality_indicators.csv").write_text("concern_id;year\n")
    else:
        pipeline.parameters_file.write_text(pipeline.parameters_file.read_text()
                                            + "outcomes:\n  norm_score:\n    value: 117\n")
    result = tick(pipeline.workspace)
    assert len(result.run_requests) == 1 and result.run_requests[0].tags["rom/reason"] == "inputs changed"


# --- sensor ------------------------------------------------------------------------------------

def test_sensor_starts_a_run_for_new_or_changed_manifests_only(tmp_path):
    pipeline = NightlyPipeline(tmp_path / "exports", tmp_path / "data")
    empty = sense(pipeline.workspace)
    assert empty.run_requests == [] and "no deliveries" in empty.skip_message
    night1(pipeline.export_dir)
    first = sense(pipeline.workspace)
    expected = fingerprint.manifests_fingerprint(pipeline.export_dir)
    assert [r.run_key for r in first.run_requests] == [expected] and first.cursor == expected
    unchanged = sense(pipeline.workspace, cursor=first.cursor)
    assert unchanged.run_requests == [] and "no new or changed manifest.json" in unchanged.skip_message

    basic_delivery(pipeline.export_dir, concern_id="C003")
    new = sense(pipeline.workspace, cursor=first.cursor)
    assert len(new.run_requests) == 1 and new.run_requests[0].run_key == new.cursor != first.cursor

    # a changed manifest (same folder) is new too
    manifest = pipeline.export_dir / "C003" / "2025-06-30" / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["source_system"] = "re-exported"
    manifest.write_text(json.dumps(doc))
    changed = sense(pipeline.workspace, cursor=new.cursor)
    assert len(changed.run_requests) == 1 and changed.cursor not in (new.cursor, first.cursor)


def test_sensor_skips_what_is_already_published_and_deliveries_still_landing(two_nights, monkeypatch):
    # a fresh daemon (no cursor) does not re-run what the warehouse already has
    result = sense(two_nights.pipeline.workspace)
    assert result.run_requests == [] and "already published" in result.skip_message
    assert result.cursor == fingerprint.manifests_fingerprint(two_nights.pipeline.export_dir)
    # files changed within the settle time: wait, cursor unchanged
    monkeypatch.setenv("ROM_DELIVERY_SETTLE_SECONDS", "3600")
    landing = sense(two_nights.pipeline.workspace, cursor="older")
    assert landing.run_requests == [] and "still landing" in landing.skip_message and landing.cursor == "older"


# --- one writer --------------------------------------------------------------------------------

def test_every_duckdb_asset_writes_in_the_duckdb_writer_pool():
    """Kind duckdb = the asset writes the work database (others, e.g. CSV exports, only read the warehouse)."""
    graph = defs.resolve_asset_graph()
    outside = [key.to_user_string() for key in graph.get_all_asset_keys()
               if graph.get(key).is_executable and "duckdb" in graph.get(key).kinds
               and graph.get(key).pools != {DUCKDB_POOL}]
    assert outside == []


def test_a_second_writer_process_fails_clearly_while_one_holds_the_work_database(tmp_path):
    workspace = Workspace(data_dir=str(tmp_path / "data"), export_dir=str(tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from rom_pipeline.resources import Workspace
        with Workspace(data_dir={str(tmp_path / "data")!r}, export_dir={str(tmp_path)!r}).connect() as con:
            con.execute("CREATE TABLE held AS SELECT 1 AS x")
            print("holding", flush=True)
            sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(duckdb.IOException, match="(?i)lock"):
            with workspace.connect():
                pass
    finally:
        holder.stdin.write("done\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    with workspace.connect() as con:  # released: the next writer gets in
        assert con.execute("SELECT x FROM held").fetchone() == (1,)


def test_the_documented_dagster_yaml_limits_the_writer_pool_to_one_run(tmp_path):
    """docs/operations.md's dagster.yaml is valid for the installed Dagster (all but PostgreSQL storage)."""
    import re

    import yaml

    from rom_pipeline.paths import PROJECT_DIR

    doc = (PROJECT_DIR / "docs" / "operations.md").read_text()
    config = yaml.safe_load(re.search(r"<!-- dagster.yaml.*?-->\n```yaml\n(.*?)```", doc, re.S).group(1))
    assert "postgres" in config.pop("storage")  # needs dagster-postgres and a server: not checked here
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        concurrency = instance.get_concurrency_config()
    assert concurrency.pool_config.pool_granularity.value == "run"
    assert concurrency.pool_config.default_pool_limit == 1
    assert {"key": "rom/writer", "limit": 1} in concurrency.run_queue_config.tag_concurrency_limits


def test_with_the_documented_dagster_yaml_a_second_run_of_the_job_waits_in_the_queue(tmp_path):
    """The run queue of docs/operations.md's dagster.yaml (run coordinator and limits as written, SQLite storage):
    while a run of the nightly job is in progress, the daemon dequeues no other run of it; once it has
    finished, the next one. (The daemon's own selection step, without launching.)"""
    import re

    import yaml
    from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.test_utils import create_run_for_test
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    from rom_pipeline.defs.triggers import WRITER_TAG
    from rom_pipeline.paths import PROJECT_DIR

    doc = (PROJECT_DIR / "docs" / "operations.md").read_text()
    config = yaml.safe_load(re.search(r"<!-- dagster.yaml.*?-->\n```yaml\n(.*?)```", doc, re.S).group(1))
    config.pop("storage")
    config.pop("compute_logs")  # its base_dir is the deployment's, not the test's
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="rom_pipeline.definitions")), "__repository__"), "nightly")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        running = create_run_for_test(instance, job_name="nightly", status=dg.DagsterRunStatus.STARTED,
                                      tags=WRITER_TAG, remote_job_origin=origin)
        queued = [create_run_for_test(instance, job_name="nightly", status=dg.DagsterRunStatus.QUEUED,
                                      tags={**WRITER_TAG, "dagster/sensor_name": "new_delivery_sensor"},
                                      remote_job_origin=origin)
                  for _ in range(2)]
        concurrency = instance.get_concurrency_config()
        assert daemon._get_runs_to_dequeue(instance, concurrency, fixed_iteration_time=None) == []
        instance.report_run_failed(running)  # the first run ends (however it ends)
        dequeued = daemon._get_runs_to_dequeue(instance, concurrency, fixed_iteration_time=None)
        assert [r.run_id for r in dequeued] == [queued[0].run_id]  # one at a time, oldest first


def test_every_rule_file_under_sql_counts_in_the_code_fingerprint_and_the_runs_record():
    """A macro changes what is computed as much as a model does: a changed complementary-suppression
    macro (sql/macros/*.jinja) that left the code's hash alone would let a quiet night skip the night
    that must recompute, and audit.runs.sql_files_json would not name the rule that ran."""
    under_sql = {p for p in fingerprint.SQL_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert {p.suffix for p in under_sql} <= {".sql", ".yml", ".jinja"}  # a new kind of file: add it here and there
    assert set(fingerprint.sql_files()) == under_sql
    recorded = set(fingerprint.sql_file_hashes())
    assert {"sql/macros/complementary.jinja", "sql/macros/history.jinja", "sql/macros/rules.sql"} <= recorded
