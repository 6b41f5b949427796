"""schemas.reference: the reference inputs of the concern benchmark (design s4)."""
from __future__ import annotations

import ibis
import pandera.errors
import pytest

from benchmark_inputs import column_types, connect, load_staging
from schemas.reference import ANNUAL_REPORTS, QUALITY_INDICATORS, REFERENCE_FILES

# Design outcomes-and-benchmarks.md section 4, in order.
ANNUAL_REPORT_COLUMNS = (
    "concern_id, concern_name, city, year, n_locations, n_org_units, n_directors, n_supervisors, "
    "clients_jan1, clients_new, clients_discharged, clients_dec31, revenue_total, revenue_ggz, "
    "other_income_non_ggz, personnel_costs, social_premiums, external_staff_costs, food_costs, "
    "general_costs, client_costs, maintenance_costs, depreciation, allocations, interest_income, "
    "interest_expense, net_result, equity, total_assets, current_assets, current_liabilities, fte, "
    "employees, sick_leave_pct").split(", ")
QUALITY_INDICATOR_COLUMNS = ("concern_id, year, indicator_id, indicator_name, cluster, "
                             "higher_is_better, value, n").split(", ")


def test_columns_and_keys_are_the_design(tmp_path):
    assert list(REFERENCE_FILES) == ["annual_reports", "quality_indicators"]
    assert list(ANNUAL_REPORTS.columns) == ANNUAL_REPORT_COLUMNS
    assert list(QUALITY_INDICATORS.columns) == QUALITY_INDICATOR_COLUMNS
    assert ANNUAL_REPORTS.unique == ["concern_id", "year"]
    assert QUALITY_INDICATORS.unique == ["concern_id", "year", "indicator_id"]
    required = {n for n, c in ANNUAL_REPORTS.columns.items() if not c.nullable}
    assert required == {"concern_id", "year"}
    staged = column_types(connect(tmp_path), "staging.annual_reports")  # as the staging layer types them
    assert (staged["revenue_total"], staged["clients_new"]) == ("DOUBLE", "INTEGER")


def _validate(tmp_path, file, rows):
    con = connect(tmp_path)
    load_staging(con, file, rows)
    con.close()
    table = ibis.duckdb.connect(str(tmp_path / "bench.duckdb")).table(file, database="staging")
    columns = list(REFERENCE_FILES[file].columns)
    return REFERENCE_FILES[file].validate(table.select(columns), lazy=True)


def test_valid_rows_pass(tmp_path):
    _validate(tmp_path, "annual_reports", [
        dict(concern_id="C1", year=2013, revenue_total=2_916_805.0, sick_leave_pct=4.5, allocations=-10.0,
             net_result=-5.0),
        dict(concern_id="C1", year=2012, revenue_total=1_808_010.0)])


@pytest.mark.parametrize("row", [
    dict(concern_id="C1", year=1989),
    dict(concern_id="C1", year=2013, sick_leave_pct=100.5),
    dict(concern_id="C1", year=2013, clients_new=-1),
    dict(concern_id="C1", year=2013, general_costs=-1.0),
    dict(concern_id=None, year=2013),
])
def test_out_of_range_annual_report_fails(tmp_path, row):
    with pytest.raises(pandera.errors.SchemaErrors):
        _validate(tmp_path, "annual_reports", [row])


def test_duplicate_key_and_unknown_cluster_fail(tmp_path):
    good = dict(concern_id="C1", year=2013, indicator_id="x", cluster="CQ", higher_is_better=True, value=1.0)
    with pytest.raises(pandera.errors.SchemaErrors):
        _validate(tmp_path, "quality_indicators", [good, {**good, "value": 2.0}])
    with pytest.raises(pandera.errors.SchemaErrors):
        _validate(tmp_path, "quality_indicators", [{**good, "cluster": "ZI"}])
    _validate(tmp_path, "quality_indicators", [good, {**good, "indicator_id": "y"}])
