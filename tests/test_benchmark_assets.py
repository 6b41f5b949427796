"""The benchmark assets materialise through Dagster and their blocking checks pass."""
from __future__ import annotations

import dagster as dg

from benchmark_inputs import connect, load_indicators, load_staging
from rom_pipeline.defs import models
from rom_pipeline.resources import WORK_DB_NAME, Workspace

ASSETS, CHECKS = models.select(["marts.concern_size_groups", "marts.financial_ratios", "marts.concern_benchmark",
                                "marts.concern_summary", "marts.internal_benchmark"])


def _inputs(tmp_path) -> None:
    con = connect(tmp_path, WORK_DB_NAME)
    load_staging(con, "annual_reports", [
        dict(concern_id=c, year=2024, revenue_total=r, equity=e, total_assets=100.0)
        for c, r, e in [("A", 5e5, 20.0), ("B", 6e5, 30.0), ("C", 5e7, 40.0)]])
    load_staging(con, "quality_indicators", [
        dict(concern_id=c, year=2024, indicator_id="cq1", cluster="CQ", higher_is_better=True, value=v)
        for c, v in [("A", 1.0), ("B", 2.0), ("C", 4.0)]])
    load_indicators(con, [
        dict(concern_id="A", level=level, unit_id=unit, period_type="year", period="2024",
             indicator="pct_dropout", aggregation=aggregation, value=v, n=20, suppressed=False,
             is_complete_period=True)
        for level, unit, aggregation, v in [("concern", "A", "mean_of_locations", 10.0),
                                            ("location", "L1", "episodes", 5.0),
                                            ("location", "L2", "episodes", 15.0)]])
    con.close()


def test_assets_materialise_and_blocking_checks_pass(tmp_path):
    _inputs(tmp_path)
    result = dg.materialize([*ASSETS, *CHECKS], resources={"workspace": Workspace(data_dir=str(tmp_path))})
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len(CHECKS)
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]
    assert all(spec.blocking for check in CHECKS for spec in check.check_specs)


def test_a_failing_check_blocks(tmp_path):
    _inputs(tmp_path)
    con = connect(tmp_path, WORK_DB_NAME)
    # The same concern and year twice: the validator should have quarantined the second.
    con.execute("INSERT INTO staging.annual_reports (concern_id, year, revenue_total, delivery_id,"
                " source_row_number) VALUES ('A', 2024, 1.0, 'x', 99)")
    con.close()
    result = dg.materialize([*ASSETS, *CHECKS], resources={"workspace": Workspace(data_dir=str(tmp_path))},
                            raise_on_error=False)
    assert not result.success
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert "one_row_per_concern_year" in failed
