"""marts.concern_benchmark and marts.concern_summary on a hand-built case.

Concerns in 2024: A (revenue EUR 0.5 M, size_1), B (0.6 M, size_1), C (50 M, size_3),
D (no annual report: no size group), E (annual report, 2 M, but no indicators).
Every expected z below is worked out by hand in the comments (sample sd, n - 1).
The size groups here have one or two concerns, below the default minimum
(benchmarks.min_size_group_peers = 5): the fixture lowers the minimum to 2 to show
the arithmetic; test_size_group_below_the_minimum_has_no_z keeps the default.
"""
from __future__ import annotations

import math

import pytest

from benchmark_inputs import build, connect, load_indicators, load_staging, rows

R2 = math.sqrt(2)

ANNUAL_REPORTS = [
    dict(concern_id="A", year=2024, revenue_total=500_000.0),
    dict(concern_id="B", year=2024, revenue_total=600_000.0),
    dict(concern_id="C", year=2024, revenue_total=50_000_000.0),
    dict(concern_id="E", year=2024, revenue_total=2_000_000.0),
]


def _qi(concern, indicator_id, cluster, higher_is_better, value, year=2024):
    return dict(concern_id=concern, year=year, indicator_id=indicator_id,
                indicator_name=indicator_id, cluster=cluster,
                higher_is_better=higher_is_better, value=value, n=100)


QUALITY_INDICATORS = [
    # CQ, higher is better: 3.0, 3.5, 4.0, 3.5 -> mean 3.5,
    # sd sqrt((0.25 + 0 + 0.25 + 0) / 3) = 0.408248, z = -1.224745, 0, 1.224745, 0.
    _qi("A", "cq_bejegening", "CQ", True, 3.0),
    _qi("B", "cq_bejegening", "CQ", True, 3.5),
    _qi("C", "cq_bejegening", "CQ", True, 4.0),
    _qi("D", "cq_bejegening", "CQ", True, 3.5),
    # FP drop-out, lower is better: 10, 20, 30 -> mean 20, sd 10, z = -1, 0, 1.
    _qi("A", "fp_dropout", "FP", False, 10.0),
    _qi("B", "fp_dropout", "FP", False, 20.0),
    _qi("C", "fp_dropout", "FP", False, 30.0),
    # C has no value: the row keeps the peer mean (80 + 90) / 2 = 85 and has no z.
    _qi("A", "cq_informatie", "CQ", True, 80.0),
    _qi("B", "cq_informatie", "CQ", True, 90.0),
    _qi("C", "cq_informatie", "CQ", True, None),
]


def _ind(concern, indicator, value, *, aggregation="mean_of_locations", period_type="year",
         period="2024", suppressed=False):
    return dict(concern_id=concern, level="concern", unit_id=concern, period_type=period_type,
                period=period, indicator=indicator, aggregation=aggregation, value=value, n=40,
                suppressed=suppressed, is_complete_period=True)


ROM_INDICATORS = [
    # pct_dropout, lower is better: A 10, B 30 -> mean 20, sd sqrt(200 / 1) = 14.142, z -/+ 0.7071.
    _ind("A", "pct_dropout", 10.0),
    _ind("B", "pct_dropout", 30.0),
    # Left out: suppressed, not mean_of_locations, not a year, n_closed, not a concern row.
    _ind("C", "pct_dropout", 50.0, suppressed=True),
    _ind("C", "pct_dropout", 70.0, aggregation="episodes"),
    _ind("C", "pct_dropout", 90.0, period_type="quarter", period="2024-Q1"),
    _ind("A", "n_closed", 400.0),
    dict(concern_id=None, level="all", unit_id=None, period_type="year", period="2024",
         indicator="pct_dropout", aggregation="episodes", value=25.0, n=999, suppressed=False),
    # Only A has mean_improvement: one peer, no z.
    _ind("A", "mean_improvement", 60.0),
]


def _build(con) -> None:
    load_staging(con, "annual_reports", ANNUAL_REPORTS)
    load_staging(con, "quality_indicators", QUALITY_INDICATORS)
    load_indicators(con, ROM_INDICATORS)
    build(con, "concern_size_groups", "concern_benchmark", "concern_summary")


@pytest.fixture
def benchmark(tmp_path):
    con = connect(tmp_path)
    con.execute("SET VARIABLE min_size_group_peers = 2")
    load_staging(con, "annual_reports", ANNUAL_REPORTS)
    load_staging(con, "quality_indicators", QUALITY_INDICATORS)
    load_indicators(con, ROM_INDICATORS)
    build(con, "concern_size_groups", "concern_benchmark", "concern_summary")
    yield con
    con.close()


def _benchmark(con) -> dict[tuple[str, str, str], dict]:
    return {(r["concern_id"], r["indicator_id"], r["peer_group"]): r
            for r in rows(con, "SELECT * FROM marts.concern_benchmark WHERE year = 2024")}


def _summary(con) -> dict[tuple[str, str, str], dict]:
    return {(r["concern_id"], r["cluster"], r["peer_group"]): r
            for r in rows(con, "SELECT * FROM marts.concern_summary WHERE year = 2024")}


def test_columns_start_with_the_published_interface(benchmark):
    for table, first in [
        ("concern_benchmark", ["concern_id", "year", "indicator_id", "cluster", "value",
                               "peer_group", "peer_mean", "peer_sd", "z"]),
        ("concern_summary", ["concern_id", "year", "cluster", "summary_z", "n_indicators"]),
    ]:
        columns = [d[0] for d in benchmark.execute(f"SELECT * FROM marts.{table} LIMIT 0").description]
        assert columns[:len(first)] == first


def test_z_against_all_concerns(benchmark):
    b = _benchmark(benchmark)
    for concern, z in {"A": -1.224745, "B": 0.0, "C": 1.224745, "D": 0.0}.items():
        row = b[(concern, "cq_bejegening", "all")]
        assert row["z"] == pytest.approx(z, abs=1e-6)
        assert row["peer_mean"] == pytest.approx(3.5)
        assert row["peer_sd"] == pytest.approx(0.408248, abs=1e-6)
        assert row["z_oriented"] == pytest.approx(z, abs=1e-6)


def test_lower_is_better_is_sign_flipped_only_in_z_oriented(benchmark):
    b = _benchmark(benchmark)
    for concern, z in {"A": -1.0, "B": 0.0, "C": 1.0}.items():
        row = b[(concern, "fp_dropout", "all")]
        assert row["z"] == pytest.approx(z)
        assert row["z_oriented"] == pytest.approx(-z)
        assert row["higher_is_better"] is False


def test_size_group_peers(benchmark):
    b = _benchmark(benchmark)
    # size_1 = A, B: 3.0 and 3.5 -> mean 3.25, sd sqrt(2 * 0.0625 / 1) = 0.353553, z -/+ 0.7071.
    assert b[("A", "cq_bejegening", "size_group")]["z"] == pytest.approx(-1 / R2)
    assert b[("B", "cq_bejegening", "size_group")]["z"] == pytest.approx(1 / R2)
    assert b[("A", "cq_bejegening", "size_group")]["peer_mean"] == pytest.approx(3.25)
    assert b[("A", "cq_bejegening", "size_group")]["size_group"] == "size_1"
    # C is alone in size_3; D has no annual report, so no size-group row at all.
    assert b[("C", "cq_bejegening", "size_group")]["z"] is None
    assert ("D", "cq_bejegening", "size_group") not in b
    assert ("D", "cq_bejegening", "all") in b


def test_rom_indicators_join_from_marts_indicators(benchmark):
    b = _benchmark(benchmark)
    rom = {k: r for k, r in b.items() if r["indicator_id"].startswith("rom_")}
    # Only the mean-of-locations year rows of A and B, and A's mean_improvement.
    assert set(rom) == {("A", "rom_pct_dropout", "all"), ("B", "rom_pct_dropout", "all"),
                        ("A", "rom_pct_dropout", "size_group"), ("B", "rom_pct_dropout", "size_group"),
                        ("A", "rom_mean_improvement", "all"),
                        ("A", "rom_mean_improvement", "size_group")}
    a = rom[("A", "rom_pct_dropout", "all")]
    assert a["cluster"] == "kernset"
    assert a["higher_is_better"] is False
    assert a["z"] == pytest.approx(-1 / R2)
    assert a["z_oriented"] == pytest.approx(1 / R2)
    assert rom[("A", "rom_mean_improvement", "all")]["z"] is None  # one peer


def test_missing_value_keeps_peer_mean_without_z(benchmark):
    row = _benchmark(benchmark)[("C", "cq_informatie", "all")]
    assert row["value"] is None
    assert row["peer_mean"] == pytest.approx(85.0)
    assert row["z"] is None


def test_summary_is_the_mean_of_oriented_z(benchmark):
    s = _summary(benchmark)
    # A, all concerns: CQ bejegening -1.224745, CQ informatie (80 vs 80, 90: mean 85,
    # sd 7.0711) -0.707107, FP drop-out flipped +1, ROM drop-out flipped +0.707107.
    a_cq = (-1.224745 - 1 / R2) / 2
    assert s[("A", "CQ", "all")]["summary_z"] == pytest.approx(a_cq, abs=1e-6)
    assert s[("A", "CQ", "all")]["n_indicators"] == 2
    assert s[("A", "FP", "all")]["summary_z"] == pytest.approx(1.0)
    assert s[("A", "kernset", "all")]["summary_z"] == pytest.approx(1 / R2)
    assert s[("A", "kernset", "all")]["n_indicators"] == 1  # mean_improvement has no z
    overall = (-1.224745 - 1 / R2 + 1.0 + 1 / R2) / 4
    assert s[("A", "all", "all")]["summary_z"] == pytest.approx(overall, abs=1e-6)
    assert s[("A", "all", "all")]["n_indicators"] == 4
    # B: CQ 0 and +0.707107, FP 0, ROM drop-out flipped -0.707107: mean 0 over 4.
    assert s[("B", "all", "all")]["summary_z"] == pytest.approx(0.0, abs=1e-12)
    # A within size_1: CQ bejegening -0.7071, CQ informatie -0.7071 (80 vs 80, 90),
    # FP (10 vs 10, 20) flipped +0.7071, ROM drop-out (10 vs 10, 30) flipped +0.7071.
    assert s[("A", "all", "size_group")]["summary_z"] == pytest.approx(0.0, abs=1e-12)
    assert s[("A", "FP", "size_group")]["summary_z"] == pytest.approx(1 / R2)


def test_concern_without_scores_has_a_null_summary(benchmark):
    s = _summary(benchmark)
    # D: only the CQ indicator (z 0); no kernset or FP score.
    assert s[("D", "all", "all")]["summary_z"] == pytest.approx(0.0, abs=1e-12)
    assert s[("D", "all", "all")]["n_indicators"] == 1
    assert s[("D", "FP", "all")]["summary_z"] is None
    assert s[("D", "FP", "all")]["n_indicators"] == 0
    assert ("D", "all", "size_group") not in s
    # E: an annual report but no indicators: every cluster NULL on 0 indicators.
    for cluster in ("all", "CQ", "kernset", "FP"):
        for peer_group in ("all", "size_group"):
            assert s[("E", cluster, peer_group)]["summary_z"] is None
            assert s[("E", cluster, peer_group)]["n_indicators"] == 0


def test_one_row_per_key(benchmark):
    duplicates = benchmark.execute("""
        SELECT count(*) FROM (SELECT concern_id, year, indicator_id, peer_group, count(*) AS k
                              FROM marts.concern_benchmark GROUP BY ALL HAVING k > 1)""").fetchone()[0]
    assert duplicates == 0
    duplicates = benchmark.execute("""
        SELECT count(*) FROM (SELECT concern_id, year, cluster, peer_group, count(*) AS k
                              FROM marts.concern_summary GROUP BY ALL HAVING k > 1)""").fetchone()[0]
    assert duplicates == 0


def test_size_group_below_the_minimum_has_no_z(tmp_path):
    """Default minimum 5: the groups of two (A, B) give no z and no size-group summary."""
    con = connect(tmp_path)
    try:
        _build(con)
        b, s = _benchmark(con), _summary(con)
        row = b[("A", "cq_bejegening", "size_group")]
        assert row["n_peers"] == 2 and row["z"] is None and row["z_oriented"] is None
        assert row["peer_mean"] == pytest.approx(3.25)  # the group mean is still shown
        assert b[("A", "cq_bejegening", "all")]["z"] == pytest.approx(-1.224745, abs=1e-6)
        assert s[("A", "all", "size_group")]["summary_z"] is None
        assert s[("A", "all", "size_group")]["n_indicators"] == 0
        assert s[("A", "all", "all")]["n_indicators"] == 4
        groups = dict(con.execute("SELECT concern_id, n_group_concerns FROM marts.concern_size_groups").fetchall())
        assert groups == {"A": 2, "B": 2, "C": 1, "E": 1}
    finally:
        con.close()


def test_a_running_year_stays_out_unless_configured(tmp_path):
    """C's pct_dropout of a year still running (is_complete_period false) is not compared with
    whole years; with benchmark_running_year it is (A 10, B 30, C 80: mean 40)."""
    con = connect(tmp_path)
    running = [*ROM_INDICATORS, {**_ind("C", "pct_dropout", 80.0), "is_complete_period": False}]
    load_staging(con, "annual_reports", ANNUAL_REPORTS)
    load_staging(con, "quality_indicators", QUALITY_INDICATORS)
    load_indicators(con, running)
    build(con, "concern_size_groups", "concern_benchmark")
    peers = rows(con, "SELECT concern_id, peer_mean FROM marts.concern_benchmark WHERE year = 2024 "
                      "AND indicator_id = 'rom_pct_dropout' AND peer_group = 'all' ORDER BY concern_id")
    assert [(r["concern_id"], r["peer_mean"]) for r in peers] == [("A", 20.0), ("B", 20.0)]
    con.execute("SET VARIABLE benchmark_running_year = true")
    build(con, "concern_benchmark")
    peers = rows(con, "SELECT concern_id, peer_mean FROM marts.concern_benchmark WHERE year = 2024 "
                      "AND indicator_id = 'rom_pct_dropout' AND peer_group = 'all' ORDER BY concern_id")
    assert [(r["concern_id"], r["peer_mean"]) for r in peers] == [("A", 40.0), ("B", 40.0), ("C", 40.0)]
    con.close()
