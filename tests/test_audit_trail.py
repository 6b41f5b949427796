"""The audit tables: every run, its inputs, every published figure and the episodes behind it,
kept across runs in the work database and published."""
import hashlib
import json
import re

import duckdb
import pytest
from cli_runs import baseline, cli_env, connect_warehouse, run_cli
from nights import NIGHT1_L1_MEAN, NIGHT2_L1_MEAN

from rom_pipeline.config import apply_parameters, load_parameters
from rom_pipeline.defs.audit import trail
from rom_pipeline.defs.audit.trail import RunInfo, record_published_figures, start_run
from rom_pipeline.paths import PROJECT_DIR

L1_2025 = ("marts.indicators|C001|location|L1|year|2025|mean_improvement|episodes")


def test_audit_runs_records_code_parameters_and_sql_of_every_run(two_nights):
    with two_nights.run2.warehouse() as con:
        runs = con.execute("SELECT run_id, run_seq, status, trigger, code_version, git_commit, parameters_json, "
                           "parameters_sha256, sql_files_json, started_at, finished_at, refresh "
                           "FROM audit.runs ORDER BY run_seq").fetchall()
    assert [r[0] for r in runs] == [two_nights.run1.result.run_id, two_nights.run2.result.run_id]
    assert [(r[1], r[2], r[3], r[11]) for r in runs] == [(1, "published", "manual", "full"),
                                                           (2, "published", "manual", "incremental")]
    for (_, _, _, _, code, commit, params, params_sha, sql_files, started, finished, _) in runs:
        assert re.fullmatch(r"\d+\.\d+\.\d+\+(g[0-9a-f]{12}|unknown)", code)
        assert commit is None or code.endswith(commit[:12])
        assert hashlib.sha256(params.encode()).hexdigest() == params_sha
        assert json.loads(params)["parameters"]["indicators"]["min_n"]["value"] == 1
        files = json.loads(sql_files)
        model = PROJECT_DIR / "sql" / "marts" / "indicators.sql"
        assert files["sql/marts/indicators.sql"] == hashlib.sha256(model.read_bytes()).hexdigest()
        assert "validation:episodes" in files
        assert started <= finished


def test_published_figures_are_appended_never_overwritten(two_nights):
    with duckdb.connect(str(two_nights.night1_dir / "data" / "warehouse.duckdb"), read_only=True) as con:
        night1 = con.execute("SELECT * FROM audit.published_figures ORDER BY ALL").fetchall()
    with two_nights.run2.warehouse() as con:
        kept = con.execute("SELECT * FROM audit.published_figures WHERE run_id = ? ORDER BY ALL",
                           [two_nights.run_ids[0]]).fetchall()
        assert kept == night1  # night 1's rows are all still there, unchanged
        versions = con.execute("SELECT run_id, value, n, change FROM audit.published_figures "
                               "WHERE figure_key = ? ORDER BY run_id = ?", [L1_2025, two_nights.run_ids[1]]).fetchall()
        assert [(v[0], v[2], v[3]) for v in versions] == [(two_nights.run_ids[0], 3, "new"),
                                                          (two_nights.run_ids[1], 5, "changed")]
        assert versions[0][1] == pytest.approx(NIGHT1_L1_MEAN) and versions[1][1] == pytest.approx(NIGHT2_L1_MEAN)
        # C002 did not deliver again: none of its indicator figures got a new row
        assert con.execute("SELECT count(*) FROM audit.published_figures WHERE run_id = ? AND concern_id = 'C002' "
                           "AND table_name = 'marts.indicators'", [two_nights.run_ids[1]]).fetchone()[0] == 0
        # every figure published tonight is the latest version of its key
        current = con.execute("""
            SELECT count(*) FROM marts.indicators AS m
            WHERE m.level <> 'therapist' AND NOT EXISTS (
                SELECT 1 FROM audit.published_figures AS f
                WHERE f.table_name = 'marts.indicators' AND f.concern_id IS NOT DISTINCT FROM m.concern_id
                  AND f.level = m.level AND f.unit_id = m.unit_id AND f.period = m.period
                  AND f.period_type = m.period_type AND f.figure = m.indicator AND f.aggregation = m.aggregation)
            """).fetchone()[0]
        assert current == 0
        tables = {r[0] for r in con.execute("SELECT DISTINCT table_name FROM audit.published_figures").fetchall()}
        assert "marts.indicators" in tables and tables <= {s.table for s in trail.FIGURE_SOURCES}


@pytest.mark.parametrize("batch_rows", [1, 2_000_000])
def test_figures_are_compared_a_batch_of_concerns_at_a_time(tmp_path, monkeypatch, batch_rows):
    """Batches of one concern each (batch_rows 1) record what one batch of all does: a figure's key
    holds its concern, so new, changed and removed figures are found within its concern's batch."""
    monkeypatch.setattr(trail, "FIGURE_BATCH_ROWS", batch_rows)
    con = duckdb.connect(str(tmp_path / "work.duckdb"))
    trail.ensure_tables(con)
    con.execute("CREATE SCHEMA marts")
    con.execute("""CREATE TABLE marts.indicators AS SELECT * FROM (VALUES
        ('C1', 'location', 'L1', 'year', '2025', 'mean_improvement', 'episodes', 50.0, 12, false),
        ('C1', 'location', 'L2', 'year', '2025', 'mean_improvement', 'episodes', 60.0, 15, false),
        ('C2', 'location', 'L1', 'year', '2025', 'mean_improvement', 'episodes', 70.0, 11, false),
        (NULL, 'all', 'all', 'year', '2025', 'mean_improvement', 'episodes', 60.0, 38, false))
        AS t(concern_id, level, unit_id, period_type, period, indicator, aggregation, value, n, suppressed)""")

    def night(run_id: str) -> dict:
        start_run(con, RunInfo(run_id, "manual", "0", None, "s", "{}", "p", {}, "i", "m"))
        counts = record_published_figures(con, run_id)
        con.execute("UPDATE audit.runs SET status = 'published' WHERE run_id = ?", [run_id])
        return counts

    assert len(trail._concern_batches(con, trail._figures_select(con))) == (3 if batch_rows == 1 else 1)
    assert night("r1") == {"figures_new": 4, "figures_changed": 0, "figures_removed": 0, "figures_published": 4}
    con.execute("UPDATE marts.indicators SET value = 71.0 WHERE concern_id = 'C2'")
    con.execute("DELETE FROM marts.indicators WHERE concern_id = 'C1' AND unit_id = 'L2'")
    assert night("r2") == {"figures_new": 0, "figures_changed": 1, "figures_removed": 1, "figures_published": 3}
    con.execute("DELETE FROM marts.indicators WHERE concern_id = 'C2'")   # a concern gone: found in the history
    assert night("r3") == {"figures_new": 0, "figures_changed": 0, "figures_removed": 1, "figures_published": 2}
    assert con.execute("SELECT run_id, concern_id, unit_id, change FROM audit.published_figures "
                       "WHERE run_id <> 'r1' ORDER BY run_id, concern_id").fetchall() == [
        ("r2", "C1", "L2", "removed"), ("r2", "C2", "L1", "changed"), ("r3", "C2", "L1", "removed")]


def test_figure_versions_new_changed_removed_and_noise(tmp_path):
    """The append rule on a toy marts.indicators: a row per change, none for float noise."""
    con = duckdb.connect(str(tmp_path / "work.duckdb"))
    trail.ensure_tables(con)
    con.execute("CREATE SCHEMA marts")
    con.execute("""CREATE TABLE marts.indicators AS SELECT * FROM (VALUES
        ('C1', 'location', 'L1', 'year', '2025', 'mean_improvement', 'episodes', 50.0, 12, false),
        ('C1', 'location', 'L2', 'year', '2025', 'mean_improvement', 'episodes', 60.0, 15, false))
        AS t(concern_id, level, unit_id, period_type, period, indicator, aggregation, value, n, suppressed)""")
    con.execute("""CREATE TABLE marts.internal_benchmark AS SELECT * FROM (VALUES
        ('C1', 'location', 'L3', 'year', '2025', 'pct_complete', 80.0, 20, 1.42e-15, false),
        ('C1', 'location', 'L4', 'year', '2025', 'pct_complete', NULL, 4, NULL, true))
        AS t(concern_id, level, unit_id, period_type, period, indicator, value, n, z, suppressed)""")

    def night(run_id: str) -> dict:
        start_run(con, RunInfo(run_id, "manual", "0", None, "s", "{}", "p", {}, "i", "m"))
        counts = record_published_figures(con, run_id)
        con.execute("UPDATE audit.runs SET status = 'published' WHERE run_id = ?", [run_id])
        return {k: counts[k] for k in ("figures_new", "figures_changed", "figures_removed")}

    assert night("r1") == {"figures_new": 4, "figures_changed": 0, "figures_removed": 0}
    con.execute("UPDATE marts.indicators SET value = value * (1 + 1e-15)")  # last-bit noise of a parallel sum
    con.execute("UPDATE marts.internal_benchmark SET z = -9.6e-16 WHERE unit_id = 'L3'")  # noise around zero
    assert night("r2") == {"figures_new": 0, "figures_changed": 0, "figures_removed": 0}
    con.execute("DROP TABLE marts.internal_benchmark")  # its two figures are removed in r3
    con.execute("UPDATE marts.indicators SET value = 51.0 WHERE unit_id = 'L1'")
    assert night("r3") == {"figures_new": 0, "figures_changed": 1, "figures_removed": 2}
    con.execute("DELETE FROM marts.indicators WHERE unit_id = 'L2'")
    assert night("r4") == {"figures_new": 0, "figures_changed": 0, "figures_removed": 1}
    con.execute("INSERT INTO marts.indicators VALUES "
                "('C1', 'location', 'L2', 'year', '2025', 'mean_improvement', 'episodes', 60.0, 15, false)")
    assert night("r5") == {"figures_new": 1, "figures_changed": 0, "figures_removed": 0}
    history = con.execute("SELECT run_id, unit_id, value, change FROM audit.published_figures "
                          "WHERE table_name = 'marts.indicators' ORDER BY unit_id, run_id").fetchall()
    assert history == [("r1", "L1", 50.0, "new"), ("r3", "L1", 51.0, "changed"),
                       ("r1", "L2", 60.0, "new"), ("r4", "L2", None, "removed"), ("r5", "L2", 60.0, "new")]
    # a run that did not publish leaves no trail: the next run collects its rows
    start_run(con, RunInfo("r6", "manual", "0", None, "s", "{}", "p", {}, "i", "m"))
    con.execute("UPDATE marts.indicators SET value = 52.0 WHERE unit_id = 'L1'")
    record_published_figures(con, "r6")  # r6 stops here (status stays 'running')
    start_run(con, RunInfo("r7", "manual", "0", None, "s", "{}", "p", {}, "i", "m"))
    assert con.execute("SELECT status FROM audit.runs WHERE run_id = 'r6'").fetchone() == ("incomplete",)
    trail.collect_garbage(con, "r7")
    assert con.execute("SELECT count(*) FROM audit.published_figures WHERE run_id = 'r6'").fetchone() == (0,)


def test_figure_episodes_keep_each_version_of_a_unit_and_period(two_nights):
    key = "C001|location|L1|year|2025"
    with two_nights.run2.work() as con:
        versions = con.execute("""SELECT run_id, list(episode_id ORDER BY episode_id), list(delivery_id ORDER BY episode_id)
                                  FROM audit.figure_episodes WHERE unit_period_key = ? GROUP BY run_id""",
                               [key]).fetchall()
        assert sorted(versions, key=lambda v: two_nights.run_ids.index(v[0])) == [
            (two_nights.run_ids[0], ["E1", "E2", "E3", "E4"], ["C001/2025-06-30"] * 4),
            (two_nights.run_ids[1], ["E1", "E2", "E3", "E4", "E6"], ["C001/2025-07-31"] * 5)]
        e2 = con.execute("""SELECT run_id, pre_measurement_id, pre_score, post_measurement_id, post_score,
                                   improvement_rule, contributions['mean_improvement']
                            FROM audit.figure_episodes WHERE unit_period_key = ? AND episode_id = 'E2'
                            ORDER BY run_id = ?""", [key, two_nights.run_ids[1]]).fetchall()
        assert [r[1:6] for r in e2] == [("M3", 198.0, "M4", 158.0, "formula"), ("M3", 198.0, "M4", 130.0, "formula")]
        assert e2[0][6] == pytest.approx(50.0) and e2[1][6] == pytest.approx(85.0)
        # C002's units were recorded once, in night 1
        assert con.execute("SELECT DISTINCT run_id FROM audit.figure_episodes WHERE concern_id = 'C002'").fetchall() \
            == [(two_nights.run_ids[0],)]
        assert con.execute("SELECT count(*) FROM audit.figure_episodes WHERE level = 'therapist'").fetchone()[0] > 0
        # A therapist's month figure is published nowhere by default (lib/audience.py): not computed, not
        # recorded. Its years and quarters are (the manager packages show them).
        assert {r[0] for r in con.execute("SELECT DISTINCT period_type FROM marts.indicators "
                                          "WHERE level = 'therapist'").fetchall()} == {"quarter", "year"}
        assert con.execute("SELECT count(*) FROM marts.indicator_cells WHERE level = 'therapist' "
                           "AND period_type = 'month'").fetchone()[0] > 0  # its sums stay, per concern
        assert {r[0] for r in con.execute("SELECT DISTINCT period_type FROM audit.published_figures "
                                          "WHERE level = 'therapist'").fetchall()} == {"quarter", "year"}
        assert con.execute("SELECT count(*) FROM audit.published_figures WHERE level = 'location' "
                           "AND period_type = 'month'").fetchone()[0] > 0
    with two_nights.run2.warehouse() as con:  # the shared warehouse leaves therapist level out
        assert con.execute("SELECT count(*) FROM audit.figure_episodes WHERE level = 'therapist'").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM audit.published_figures WHERE level = 'therapist'").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM audit.figure_episodes WHERE therapist_id IS NOT NULL").fetchone()[0] == 0


def test_figure_episodes_are_compared_a_batch_of_concerns_at_a_time(two_nights, tmp_path, monkeypatch):
    """Batches of one concern each record what one batch of all does, on night 2's work database with
    its episode history emptied (every cell new) and a cell of a concern that is gone (marked removed)."""
    recorded = {}
    for batch_rows in (1, 10**9):
        monkeypatch.setattr(trail, "FIGURE_EPISODE_BATCH_ROWS", batch_rows)
        pipeline = two_nights.copy(tmp_path / str(batch_rows))
        con = duckdb.connect(str(pipeline.data_dir / "work.duckdb"))
        apply_parameters(con, load_parameters(pipeline.parameters_file))  # as every step's connection
        con.execute("DELETE FROM audit.figure_episodes WHERE concern_id = 'C002'")
        con.execute("INSERT INTO audit.figure_episodes BY NAME SELECT run_id, 'C999|concern|C999|year|2025' "
                    "AS unit_period_key, 'C999' AS concern_id, 'concern' AS level, 'C999' AS unit_id, "
                    "'year' AS period_type, '2025' AS period, 'x' AS cell_sha256 FROM audit.figure_episodes LIMIT 1")
        start_run(con, RunInfo("r3", "manual", "0", None, "s", "{}", "p", {}, "i", "m"))
        counts = trail.record_figure_episodes(con, "r3")
        rows = con.execute("SELECT * EXCLUDE (run_id) FROM audit.figure_episodes WHERE run_id = 'r3' "
                           "ORDER BY ALL").fetchall()
        recorded[batch_rows] = (counts, rows, {r[0] for r in rows})
        con.close()
    (counts, rows, keys), (counts_all, rows_all, _) = recorded[1], recorded[10**9]
    assert counts == counts_all and rows == rows_all
    # C002's cells recorded again (their history was emptied), C999's marked removed, C001's unchanged
    assert counts["cells_removed"] == 1 and "C999|concern|C999|year|2025" in keys
    assert {k.split("|")[0] for k in keys} == {"C002", "C999"}
    assert counts["episode_rows_appended"] > 0


def test_quarantine_and_inputs_of_a_superseded_delivery_stay_in_the_trail(two_nights):
    old = "C001/2025-06-30"
    with two_nights.run2.warehouse() as con:
        assert con.execute("SELECT count(*) FROM audit.quarantine WHERE delivery_id = ?", [old]).fetchone()[0] == 0
        logged = con.execute("SELECT run_id, file_name, source_row_number, reason, raw_row->>'measurement_id' "
                             "FROM audit.quarantine_log WHERE delivery_id = ? AND reason IS NOT NULL",
                             [old]).fetchall()
        assert logged == [(two_nights.run_ids[0], "measurements.csv", 8, "out_of_range", "M8")]
        # the new delivery has nothing quarantined: one marker row
        assert con.execute("SELECT reason FROM audit.quarantine_log WHERE delivery_id = 'C001/2025-07-31'").fetchall() \
            == [(None,)]
        inputs = con.execute("SELECT run_id, delivery_id, count(*) FROM audit.run_inputs WHERE kind = 'delivery' "
                             "GROUP BY ALL ORDER BY ALL").fetchall()
        first, second = two_nights.run_ids
        assert sorted(inputs) == sorted([(first, "C001/2025-06-30", 5), (first, "C002/2025-06-30", 5),
                                         (second, "C001/2025-07-31", 5), (second, "C002/2025-06-30", 5)])
        for file_name, sha in con.execute("SELECT file_name, sha256 FROM audit.run_inputs WHERE run_id = ? AND "
                                          "delivery_id = ?", [second, "C001/2025-07-31"]).fetchall():
            path = two_nights.pipeline.export_dir / "C001" / "2025-07-31" / file_name
            assert hashlib.sha256(path.read_bytes()).hexdigest() == sha


def test_audit_tables_survive_across_runs_in_the_work_database(two_nights):
    counts = "SELECT count(*) FROM audit.{} WHERE run_id = ?"
    with duckdb.connect(str(two_nights.night1_dir / "data" / "work.duckdb"), read_only=True) as one, \
            two_nights.run2.work() as two:
        for table in ("runs", "run_inputs", "published_figures", "figure_episodes", "quarantine_log"):
            n1 = one.execute(counts.format(table), [two_nights.run_ids[0]]).fetchone()[0]
            assert n1 > 0 and two.execute(counts.format(table), [two_nights.run_ids[0]]).fetchone()[0] == n1, table


def test_check_reproduces_every_figure_from_its_episodes(two_nights):
    checks = [e for e in two_nights.run2.result.get_asset_check_evaluations()
              if e.check_name == "reproduces_published_figures"]
    assert len(checks) == 1 and checks[0].passed
    assert checks[0].metadata["failing_rows"].value == 0


def test_a_full_rebuild_on_identical_input_records_no_change(tmp_path_factory, tmp_path):
    """Every figure recomputed from the same deliveries (parallel sums, z-scores near zero,
    suppressed figures) is the same published figure: the trail records no new version."""
    base = baseline(tmp_path_factory)
    data = base.copy_data(tmp_path / "data")
    result = run_cli(cli_env(base.first_root, data, ROM_FULL_REBUILD="1"), "run", "--no-reports")
    assert result.returncode == 0, result.stderr
    with connect_warehouse(data / "warehouse.duckdb") as con:
        last = con.execute("SELECT refresh, figures_new, figures_changed, figures_removed FROM w.audit.runs "
                           "ORDER BY run_seq DESC LIMIT 1").fetchone()
    assert last == ("full", 0, 0, 0)
