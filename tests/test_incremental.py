"""Incremental nights: only concerns with a new current delivery are recomputed, and the result
is the same as a full rebuild."""
import math
import shutil

import duckdb
import pytest
from nights import NIGHT1_L1_MEAN, NIGHT2_L1_MEAN, NightlyPipeline, materialization, night2

from rom_pipeline.lib.concern_scope import force_full_rebuild, record_pending_concerns

L1_MEAN_IMPROVEMENT = """
    SELECT value, n FROM marts.indicators WHERE concern_id = 'C001' AND level = 'location' AND unit_id = 'L1'
    AND period_type = 'year' AND period = '2025' AND indicator = 'mean_improvement' AND aggregation = 'episodes'"""
PER_CONCERN = [("staging", "episodes"), ("staging", "measurements"), ("staging", "measurement_scores"),
               ("outcomes", "instrument_outcomes"), ("marts", "episode_outcomes")]
# Published tables that describe runs rather than results (they grow by design).
RUN_TABLES = {"audit.runs", "audit.run_inputs", "audit.published_figures", "audit.figure_episodes",
              "audit.quarantine_log", "audit.pseudonym_keys", "config.parameters"}


def _rows(con, table: str, where: str = "true") -> list[tuple]:
    return con.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY ALL").fetchall()


def _close(a: list[tuple], b: list[tuple]) -> bool:
    """Equal, floats within 1e-9 relative (the last bits of parallel sums vary between runs)."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        for x, y in zip(ra, rb):
            if isinstance(x, float) and isinstance(y, float):
                if not (math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) or (math.isnan(x) and math.isnan(y))):
                    return False
            elif x != y:
                return False
    return True


def _published_tables(con) -> list[str]:
    return [f"{s}.{t}" for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall()]


def test_second_night_recomputes_only_the_concern_with_a_new_delivery(two_nights, tmp_path):
    first, second = two_nights.run1, two_nights.run2
    for key in PER_CONCERN:
        meta = materialization(first, *key)
        assert meta["refresh"] == "full" and meta["concerns_recomputed"] == 2, key
    with duckdb.connect(str(two_nights.night1_dir / "data" / "work.duckdb"), read_only=True) as con:
        before = {t: _rows(con, t) for t in ("staging.episodes", "marts.episode_outcomes", "marts.indicators")}

    assert materialization(second, "audit", "pending_concerns")["concerns_pending"] == 1
    for key in PER_CONCERN:
        meta = materialization(second, *key)
        assert meta["refresh"] == "incremental", key
        assert meta["concerns_recomputed"] == 1 and meta["concerns_recomputed_list"] == ["C001"], key
        assert meta["rows_inserted"] > 0, key
    assert materialization(second, "marts", "indicators")["refresh"] == "full (cross-concern table)"

    with second.work() as con:
        # C002's per-concern rows were not touched; its figures are the same
        for table in ("staging.episodes", "marts.episode_outcomes"):
            assert _rows(con, table, "concern_id = 'C002'") == [r for r in before[table] if r[0] == "C002"]
        c002 = _rows(con, "marts.indicators", "concern_id = 'C002'")
        assert _close(c002, [r for r in before["marts.indicators"] if r[0] == "C002"])
        # C001 was recomputed from its new delivery
        assert con.execute("SELECT count(*) FROM marts.episode_outcomes WHERE concern_id = 'C001'").fetchone()[0] == 6
        value, n = con.execute(L1_MEAN_IMPROVEMENT).fetchone()
        assert n == 5 and value == pytest.approx(NIGHT2_L1_MEAN)
        assert con.execute("SELECT count(*) FROM audit.pending_concerns").fetchone()[0] == 0  # cleared by publish

    # the incremental result is the full rebuild's: a fresh work database on the same deliveries
    fresh = NightlyPipeline(two_nights.pipeline.export_dir, tmp_path / "fresh_data")
    full = fresh.run()
    assert full.success
    assert materialization(full, "marts", "episode_outcomes")["refresh"] == "full"
    with second.warehouse() as inc, full.warehouse() as ref:
        tables = _published_tables(inc)
        assert tables == _published_tables(ref)
        for table in tables:
            if table not in RUN_TABLES:
                assert _close(_rows(inc, table), _rows(ref, table)), table


def test_a_night_without_a_new_delivery_recomputes_nothing(two_nights, tmp_path):
    again = two_nights.copy(tmp_path).run()
    assert again.success
    for key in PER_CONCERN:
        meta = materialization(again, *key)
        assert meta["refresh"] == "incremental" and meta["concerns_recomputed"] == 0, key
    with again.warehouse() as con:
        runs = con.execute("SELECT refresh, figures_new, figures_changed, figures_removed FROM audit.runs "
                           "ORDER BY run_seq").fetchall()
    assert runs[-1] == ("incremental", 0, 0, 0)


def test_parameters_code_or_a_request_mean_a_full_rebuild(two_nights, tmp_path, monkeypatch):
    nightly = two_nights.copy(tmp_path)
    # a changed parameter: every concern is pending
    nightly.parameters_file.write_text(nightly.parameters_file.read_text() + "outcomes:\n  norm_score:\n    value: 120\n")
    changed = nightly.run()
    assert changed.success
    meta = materialization(changed, "marts", "episode_outcomes")
    assert meta["refresh"] == "full" and meta["refresh_reason"] == "parameters changed since the last publish"
    # asked for by a run tag (the launchpad) or the environment
    tagged = nightly.run(tags={"rom/full_rebuild": "true"})
    assert materialization(tagged, "staging", "episodes")["refresh_reason"] == "full rebuild requested"
    assert not force_full_rebuild({})
    monkeypatch.setenv("ROM_FULL_REBUILD", "1")
    assert force_full_rebuild({})
    # a code change is a different source hash than the last publish recorded
    with nightly.workspace.connect() as con:
        published_params = con.execute("SELECT parameters_sha256 FROM audit.runs WHERE status = 'published' "
                                       "ORDER BY run_seq DESC LIMIT 1").fetchone()[0]
        scope = record_pending_concerns(con, "test", published_params, "another source hash")
        assert scope.full and scope.reason == "code changed since the last publish"


def test_a_failed_publish_leaves_its_concerns_pending_and_the_next_run_resumes(two_nights, tmp_path):
    nightly = two_nights.copy(tmp_path, after_night=1)
    night2(nightly.export_dir)
    # the swap fails: something (a directory) is in the warehouse's place
    nightly.workspace.warehouse_path.unlink()
    nightly.workspace.warehouse_path.mkdir()
    failed = nightly.run()
    assert not failed.success
    with failed.work() as con:
        assert con.execute("SELECT status FROM audit.runs ORDER BY run_seq").fetchall() == [("published",), ("failed",)]
        assert con.execute("SELECT concern_id FROM audit.pending_concerns").fetchall() == [("C001",)]
    shutil.rmtree(nightly.workspace.warehouse_path)
    resumed = nightly.run()
    assert resumed.success
    assert materialization(resumed, "marts", "episode_outcomes")["concerns_recomputed_list"] == ["C001"]
    with resumed.warehouse() as con:
        value = con.execute(L1_MEAN_IMPROVEMENT).fetchone()[0]
        assert value == pytest.approx(NIGHT2_L1_MEAN) != pytest.approx(NIGHT1_L1_MEAN)
        # the failed run's trail rows are gone; both published runs' figures are there
        statuses = con.execute("SELECT status FROM audit.runs ORDER BY run_seq").fetchall()
        assert statuses == [("published",), ("failed",), ("published",)]
        failed_id = con.execute("SELECT run_id FROM audit.runs WHERE status = 'failed'").fetchone()[0]
        assert con.execute("SELECT count(*) FROM audit.published_figures WHERE run_id = ?", [failed_id]).fetchone()[0] == 0
