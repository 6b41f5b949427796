"""marts.financial_ratios against test vectors of seed 001 and hand-computed cases.

Seed figures are shown rounded (one decimal for percentages, two for plain
ratios, whole euro), so seed vectors compare the model's value after the same
rounding; the amounts below were chosen by hand to reproduce the shares the seed
prints. Every other expected value is worked out by hand in the comments.
"""
from __future__ import annotations

import math

import duckdb
import pytest

from benchmark_inputs import build, connect, create_tables, load_staging, rows
from rom_pipeline.config import apply_parameters, load_parameters

RATIO_CODES = {
    "revenue_growth", "net_result", "solvency", "resistance_capacity", "capital_intensity",
    "liquidity", "return_on_assets", "return_on_equity", "ebitda", "dscr1", "dscr2",
    "budget_per_client", "fte_per_client", "sick_leave", "average_wage", "external_staff_share",
    "part_time_ratio", "spending_personnel_costs", "spending_social_premiums",
    "spending_external_staff_costs", "spending_food_costs", "spending_general_costs",
    "spending_client_costs", "spending_maintenance_costs", "spending_depreciation",
    "spending_allocations", "spending_gross_result",
}

# Seed 001, "Stichting Samenwerkende Zorgboeren Zuid". Amounts the seed prints are
# used as printed; the others are chosen so that every ratio rounds to the seed.
SEED_2010 = dict(concern_id="SZZ", year=2010, revenue_total=133_340.0)  # 2011 growth 28.5%
SEED_2011 = dict(
    concern_id="SZZ", year=2011, revenue_total=171_342.0, revenue_ggz=38_605.0,
    clients_jan1=10, clients_new=3, clients_discharged=4, clients_dec31=9,
    personnel_costs=0.0, social_premiums=0.0, external_staff_costs=0.0, food_costs=0.0,
    general_costs=136_050.0, client_costs=33_517.0, maintenance_costs=0.0, depreciation=0.0,
    allocations=0.0, net_result=1_775.0, equity=24_620.0, total_assets=69_900.0,
    current_assets=15_440.0, current_liabilities=10_000.0,
)
# 2012: wages blank (the seed shows no figure), premiums 5.9%, external 2.5%,
# general costs 83.5%, gross result 8.2%, share of external staff 29.4%.
SEED_2012 = dict(
    concern_id="SZZ", year=2012, revenue_total=1_808_010.0, revenue_ggz=1_738_313.0,
    social_premiums=106_365.0, external_staff_costs=44_300.0, general_costs=1_509_326.0,
)
# 2013: premiums 6.8%, external 4.4%, share of external staff 39.2%.
SEED_2013 = dict(
    concern_id="SZZ", year=2013, revenue_total=2_916_805.0, revenue_ggz=2_855_208.0,
    social_premiums=197_760.0, external_staff_costs=127_760.0, general_costs=2_485_000.0,
)


@pytest.fixture
def con(tmp_path):
    con = connect(tmp_path)
    yield con
    con.close()


def _ratios(con, reports: list[dict]) -> dict[tuple[str, int, str], dict]:
    load_staging(con, "annual_reports", reports)
    build(con, "concern_size_groups", "financial_ratios")
    return {(r["concern_id"], r["year"], r["ratio"]): r
            for r in rows(con, "SELECT * FROM marts.financial_ratios")}


def _value(ratios, concern, year, ratio):
    return ratios[(concern, year, ratio)]["value"]


def test_every_ratio_of_the_design_once_per_concern_and_year(con):
    ratios = _ratios(con, [SEED_2011, SEED_2012])
    assert {ratio for (_, _, ratio) in ratios} == RATIO_CODES
    assert len(ratios) == 2 * len(RATIO_CODES)
    columns = [d[0] for d in con.execute("SELECT * FROM marts.financial_ratios LIMIT 0").description]
    assert columns[:5] == ["concern_id", "year", "ratio", "value", "z"]


def test_seed_revenue_growth_2013_divides_by_the_previous_year(con):
    ratios = _ratios(con, [SEED_2012, SEED_2013])
    # (2,916,805 - 1,808,010) / 1,808,010 = 1,108,795 / 1,808,010 = 0.613268 -> 61.33%
    assert _value(ratios, "SZZ", 2013, "revenue_growth") == pytest.approx(61.3268, abs=1e-4)
    assert ratios[("SZZ", 2013, "revenue_growth")]["unit"] == "percent"
    # No 2011 row: no growth for 2012, not 0.
    assert _value(ratios, "SZZ", 2012, "revenue_growth") is None


def test_seed_budget_per_client_2011(con):
    ratios = _ratios(con, [SEED_2011])
    # 38,605 GGZ revenue / (10 on 1 January + 3 new = 13 clients in care) = 2,969.62 -> EUR 2,970
    assert _value(ratios, "SZZ", 2011, "budget_per_client") == pytest.approx(2969.615, abs=1e-3)
    assert round(_value(ratios, "SZZ", 2011, "budget_per_client")) == 2970
    assert ratios[("SZZ", 2011, "budget_per_client")]["unit"] == "euro"


def test_seed_external_staff_share_2013(con):
    ratios = _ratios(con, [SEED_2013])
    # Premiums 197,760 / 2,916,805 = 6.78% (seed 6.8), external 127,760 / 2,916,805 = 4.38% (4.4);
    # wages blank. Share = 127,760 / (197,760 + 127,760) = 127,760 / 325,520 = 39.248% (seed 39.2).
    assert round(_value(ratios, "SZZ", 2013, "spending_social_premiums"), 1) == 6.8
    assert round(_value(ratios, "SZZ", 2013, "spending_external_staff_costs"), 1) == 4.4
    assert _value(ratios, "SZZ", 2013, "external_staff_share") == pytest.approx(39.2480, abs=1e-4)
    assert round(_value(ratios, "SZZ", 2013, "external_staff_share"), 1) == 39.2
    # The seed's own rounded shares give 4.4 / (6.8 + 4.4) = 39.29%: within rounding.
    assert abs(_value(ratios, "SZZ", 2013, "external_staff_share") - 4.4 / 11.2 * 100) < 0.1


def test_seed_2011_column_reproduces_every_printed_figure(con):
    ratios = _ratios(con, [SEED_2010, SEED_2011])
    printed = {  # seed 001, 2011 "waarde" columns
        "revenue_growth": 28.5, "net_result": 1.0, "solvency": 35.2, "resistance_capacity": 14.4,
        "liquidity": 154.4, "return_on_assets": 2.5, "return_on_equity": 7.2, "ebitda": 1.0,
        "spending_personnel_costs": 0.0, "spending_social_premiums": 0.0,
        "spending_external_staff_costs": 0.0, "spending_food_costs": 0.0,
        "spending_general_costs": 79.4, "spending_client_costs": 19.6,
        "spending_maintenance_costs": 0.0, "spending_depreciation": 0.0,
        "spending_allocations": 0.0, "spending_gross_result": 1.0,
    }
    for ratio, figure in printed.items():
        assert round(_value(ratios, "SZZ", 2011, ratio), 1) == figure, ratio
    assert round(_value(ratios, "SZZ", 2011, "capital_intensity"), 2) == 0.41
    # Gross result 171,342 - 136,050 - 33,517 = 1,775 = 1.04% of revenue.
    assert _value(ratios, "SZZ", 2011, "spending_gross_result") == pytest.approx(1775 / 171342 * 100)
    # All personnel cost lines are 0: the share of external staff is 0 / 0 -> NULL (seed: blank).
    assert _value(ratios, "SZZ", 2011, "external_staff_share") is None


def test_seed_2012_blank_wages_count_as_zero_in_the_spending_distribution(con):
    ratios = _ratios(con, [SEED_2012])
    # Gross result 1,808,010 - 106,365 - 44,300 - 1,509,326 = 148,019 = 8.187% (seed 8.2).
    assert _value(ratios, "SZZ", 2012, "spending_gross_result") == pytest.approx(148_019 / 1_808_010 * 100)
    assert round(_value(ratios, "SZZ", 2012, "spending_general_costs"), 1) == 83.5
    assert round(_value(ratios, "SZZ", 2012, "spending_social_premiums"), 1) == 5.9
    assert round(_value(ratios, "SZZ", 2012, "spending_external_staff_costs"), 1) == 2.5
    # 44,300 / (106,365 + 44,300) = 44,300 / 150,665 = 29.40% (seed 29.4).
    assert round(_value(ratios, "SZZ", 2012, "external_staff_share"), 1) == 29.4
    # The blank line itself stays blank: no 0.0% is invented for it.
    assert _value(ratios, "SZZ", 2012, "spending_personnel_costs") is None


def test_remaining_ratios_by_hand(con):
    report = dict(
        concern_id="H1", year=2024, revenue_total=10_000_000.0, revenue_ggz=8_000_000.0,
        personnel_costs=6_000_000.0, social_premiums=1_000_000.0, external_staff_costs=500_000.0,
        general_costs=1_500_000.0, depreciation=400_000.0, interest_income=50_000.0,
        interest_expense=200_000.0, clients_jan1=300, clients_new=100, fte=80.0, employees=100,
        sick_leave_pct=5.5,
    )
    ratios = _ratios(con, [report])
    v = lambda ratio: _value(ratios, "H1", 2024, ratio)  # noqa: E731
    # Costs 6.0 + 1.0 + 0.5 + 1.5 + 0.4 = 9.4 M: gross result 0.6 M.
    assert v("spending_gross_result") == pytest.approx(6.0)
    assert v("ebitda") == pytest.approx(10.0)            # (0.6 M + 0.4 M) / 10 M
    assert v("dscr1") == pytest.approx(3.25)             # (600,000 + 50,000) / 200,000
    assert v("dscr2") == pytest.approx(5.0)              # (600,000 + 400,000) / 200,000
    assert v("average_wage") == pytest.approx(60_000.0)  # 6 M * (8 M / 10 M) / 80 fte
    assert v("part_time_ratio") == pytest.approx(0.8)    # 80 fte / 100 employees
    assert v("fte_per_client") == pytest.approx(0.2)     # 80 / (300 + 100)
    assert v("budget_per_client") == pytest.approx(20_000.0)  # 8 M / 400
    assert v("external_staff_share") == pytest.approx(500_000 / 7_500_000 * 100)
    assert v("sick_leave") == pytest.approx(5.5)
    assert ratios[("H1", 2024, "dscr1")]["unit"] == "ratio"


def test_zero_denominators_and_missing_inputs_give_null(con):
    zeros = dict(
        concern_id="Z1", year=2024, revenue_total=0.0, revenue_ggz=0.0, general_costs=10.0,
        net_result=5.0, equity=0.0, total_assets=0.0, current_assets=5.0, current_liabilities=0.0,
        interest_income=1.0, interest_expense=0.0, clients_jan1=0, clients_new=0, fte=0.0,
        employees=0, personnel_costs=0.0, social_premiums=0.0, external_staff_costs=0.0,
    )
    previous_zero = dict(concern_id="Z1", year=2023, revenue_total=0.0)
    empty = dict(concern_id="E1", year=2024)
    ratios = _ratios(con, [zeros, previous_zero, empty])
    for (concern, year, ratio), row in ratios.items():
        if concern == "E1" or (concern, year) == ("Z1", 2024):
            assert row["value"] is None, (concern, year, ratio, row["value"])
            assert row["z"] is None
    inf_or_nan = con.execute("""SELECT count(*) FROM marts.financial_ratios
        WHERE NOT isfinite(value) OR NOT isfinite(z)""").fetchone()[0]
    assert inf_or_nan == 0


def test_z_scores_against_all_concerns_use_the_sample_sd(con):
    # Solvency 20%, 30%, 40%: mean 30, sample sd sqrt((100 + 0 + 100) / 2) = 10,
    # so z = -1, 0, +1. (The population sd, 8.165, would give -1.2247, 0, 1.2247.)
    reports = [
        dict(concern_id="A", year=2024, equity=20.0, total_assets=100.0, revenue_total=500_000.0,
             sick_leave_pct=4.0),
        dict(concern_id="B", year=2024, equity=30.0, total_assets=100.0, revenue_total=600_000.0,
             sick_leave_pct=4.0),
        dict(concern_id="C", year=2024, equity=40.0, total_assets=100.0, revenue_total=50_000_000.0,
             sick_leave_pct=4.0),
        # Another year is another peer group.
        dict(concern_id="A", year=2023, equity=90.0, total_assets=100.0),
    ]
    ratios = _ratios(con, reports)
    expected = {"A": -1.0, "B": 0.0, "C": 1.0}
    for concern, z in expected.items():
        row = ratios[(concern, 2024, "solvency")]
        assert row["z"] == pytest.approx(z, abs=1e-12)
        assert row["peer_mean"] == pytest.approx(30.0)
        assert row["peer_sd"] == pytest.approx(10.0)
        assert row["n_peers"] == 3
    # One concern in 2023: no z.
    assert ratios[("A", 2023, "solvency")]["z"] is None
    # Identical values (sick leave 4% everywhere): sd 0, no z.
    assert all(ratios[(c, 2024, "sick_leave")]["z"] is None for c in "ABC")
    # Size groups: A and B < EUR 1 M (size_1), C 10-100 M (size_3). Two peers are below
    # the minimum of 5 (benchmarks.min_size_group_peers): no size-group z, group mean kept.
    assert ratios[("A", 2024, "solvency")]["size_group"] == "size_1"
    assert ratios[("A", 2024, "solvency")]["n_size_peers"] == 2
    assert ratios[("A", 2024, "solvency")]["size_peer_mean"] == pytest.approx(25.0)
    assert ratios[("A", 2024, "solvency")]["z_size_group"] is None
    assert ratios[("C", 2024, "solvency")]["size_group"] == "size_3"
    assert ratios[("C", 2024, "solvency")]["z_size_group"] is None  # alone in its group
    # With the minimum lowered to 2: size_1 = 20 and 30, mean 25, sd sqrt((25 + 25) / 1)
    # = 7.0711, z = -/+ 0.7071 whatever the two values are: why the minimum exists.
    con.execute("SET VARIABLE min_size_group_peers = 2")
    build(con, "financial_ratios")
    lowered = {(r["concern_id"], r["year"], r["ratio"]): r for r in rows(con, "SELECT * FROM marts.financial_ratios")}
    assert lowered[("A", 2024, "solvency")]["z_size_group"] == pytest.approx(-1 / math.sqrt(2))
    assert lowered[("B", 2024, "solvency")]["z_size_group"] == pytest.approx(1 / math.sqrt(2))
    assert lowered[("C", 2024, "solvency")]["z_size_group"] is None


def test_size_group_z_from_the_minimum_group_size(con):
    # size_1 (< EUR 1 M): five concerns with solvency 10, 20, 30, 40, 50: mean 30, sample sd
    # sqrt((400 + 100 + 0 + 100 + 400) / 4) = sqrt(250) = 15.8114, z = -1.2649 ... +1.2649.
    # size_3: four concerns (one short of the minimum of 5): no size-group z.
    small = [dict(concern_id=f"S{i}", year=2024, revenue_total=500_000.0, equity=10.0 * i, total_assets=100.0)
             for i in range(1, 6)]
    large = [dict(concern_id=f"L{i}", year=2024, revenue_total=50_000_000.0, equity=10.0 * i,
                  total_assets=100.0) for i in range(1, 5)]
    ratios = _ratios(con, small + large)
    for i, z in zip(range(1, 6), (-1.264911, -0.632456, 0.0, 0.632456, 1.264911)):
        row = ratios[(f"S{i}", 2024, "solvency")]
        assert row["n_size_peers"] == 5
        assert row["z_size_group"] == pytest.approx(z, abs=1e-6)
    assert all(ratios[(f"L{i}", 2024, "solvency")]["z_size_group"] is None for i in range(1, 5))
    assert ratios[("L1", 2024, "solvency")]["n_size_peers"] == 4
    # All nine together: mean (150 + 100) / 9 = 27.78; z against all concerns is there for every one.
    assert all(ratios[(c, 2024, "solvency")]["z"] is not None for c in ["S1", "L1", "L4"])
    groups = dict(con.execute("SELECT concern_id, n_group_concerns FROM marts.concern_size_groups").fetchall())
    assert groups["S1"] == 5 and groups["L1"] == 4


def test_return_on_assets_is_the_net_result_as_the_seed_prints_it(con):
    # Seed 001, 2011: net result 1,775, gross result 171,342 - 136,046 - 33,583 = 1,713,
    # total assets 70,000. Net: 1,775 / 70,000 = 2.536% -> 2.5 (printed); gross would be
    # 1,713 / 70,000 = 2.447% -> 2.4. 2013: net result blank -> blank (printed blank),
    # though the gross result (3.5%) is there.
    y2011 = dict(concern_id="SZZ", year=2011, revenue_total=171_342.0, general_costs=136_046.0,
                 client_costs=33_583.0, net_result=1_775.0, total_assets=70_000.0)
    y2013 = dict(concern_id="SZZ", year=2013, revenue_total=2_916_805.0, social_premiums=198_926.0,
                 external_staff_costs=128_339.0, general_costs=2_486_284.0, total_assets=782_976.0)
    ratios = _ratios(con, [y2011, y2013])
    assert _value(ratios, "SZZ", 2011, "return_on_assets") == pytest.approx(1775 / 70000 * 100)
    assert round(_value(ratios, "SZZ", 2013, "spending_gross_result"), 1) == 3.5
    assert _value(ratios, "SZZ", 2013, "return_on_assets") is None


def test_size_group_bounds(con):
    # benchmarks.size_class_bounds_eur: 1, 10 and 100 million.
    reports = [dict(concern_id=c, year=2024, revenue_total=r) for c, r in
               [("S1", 999_999.0), ("S2", 1_000_000.0), ("S3", 10_000_000.0), ("S4", 100_000_000.0),
                ("S0", None)]]
    load_staging(con, "annual_reports", reports)
    build(con, "concern_size_groups")
    groups = dict(con.execute("SELECT concern_id, size_group FROM marts.concern_size_groups").fetchall())
    # A lower bound belongs to its class; no revenue, no group.
    assert groups == {"S1": "size_1", "S2": "size_2", "S3": "size_3", "S4": "size_4", "S0": None}


@pytest.mark.parametrize("bounds", ["[10000000, 1000000]", "[]", "[0, 1000000]"])
def test_bad_size_class_bounds_are_a_clear_error(con, bounds):
    load_staging(con, "annual_reports", [dict(concern_id="A", year=2024, revenue_total=1.0)])
    con.execute(f"SET VARIABLE size_class_bounds_eur = {bounds}")
    with pytest.raises(Exception, match="size_class_bounds_eur must be a non-empty list of positive"):
        build(con, "concern_size_groups")


def test_size_classes_and_minimum_come_from_the_parameters_file(tmp_path):
    """benchmarks.* in a ROM_PARAMETERS file reach the SQL: one bound at EUR 500,000 gives two classes."""
    override = tmp_path / "parameters.yaml"
    override.write_text("benchmarks:\n  size_class_bounds_eur:\n    value: [500000]\n"
                        "  min_size_group_peers:\n    value: 3\n")
    con = duckdb.connect(str(tmp_path / "override.duckdb"))
    try:
        params = load_parameters(override)
        assert params.scalars["size_class_bounds_eur"] == [500000]
        apply_parameters(con, params)
        create_tables(con)
        # Solvency 10, 20, 30 below EUR 500,000 (three peers, the minimum): mean 20, sd 10, z -1, 0, +1.
        reports = [dict(concern_id=f"S{i}", year=2024, revenue_total=499_999.0, equity=10.0 * i, total_assets=100.0)
                   for i in range(1, 4)]
        reports.append(dict(concern_id="L", year=2024, revenue_total=500_000.0, equity=50.0, total_assets=100.0))
        ratios = _ratios(con, reports)
        assert {c: ratios[(c, 2024, "solvency")]["size_group"] for c in ("S1", "L")} == {"S1": "size_1",
                                                                                         "L": "size_2"}
        assert [ratios[(f"S{i}", 2024, "solvency")]["z_size_group"] for i in range(1, 4)] == \
            pytest.approx([-1.0, 0.0, 1.0])
        assert ratios[("L", 2024, "solvency")]["z_size_group"] is None
        assert con.execute("SELECT value FROM config.parameters WHERE name = 'min_size_group_peers'").fetchone() == ("3",)
    finally:
        con.close()
