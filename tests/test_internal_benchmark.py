"""marts.internal_benchmark: z among peers and funnel limits, on a small hand-built case.

Concern K, year 2024. Funnel limits (Spiegelhalter 2005) are centre +- z * sd / sqrt(n)
with z = 1.959964 (95%) and 3.090232 (99.8%); every expected number is worked out
by hand in the comments.
"""
from __future__ import annotations

import math

import pytest

from benchmark_inputs import build, connect, load_indicators, rows

Z95, Z998 = 1.959964, 3.090232


def _row(level, unit, indicator, value, n, *, aggregation="episodes", period_type="year",
         period="2024", suppressed=False, target=None, target_met=None, sd=None):
    return dict(concern_id="K", level=level, unit_id=unit, period_type=period_type, period=period,
                indicator=indicator, aggregation=aggregation, value=value, n=n, target=target,
                target_met=target_met, suppressed=suppressed, sd=sd)


INDICATORS = [
    # Locations, pct_complete (target >= 80). L4 has 4 episodes and is suppressed.
    _row("location", "L1", "pct_complete", 80.0, 20, target=80.0, target_met=True),
    _row("location", "L2", "pct_complete", 60.0, 40, target=80.0, target_met=False),
    _row("location", "L3", "pct_complete", 90.0, 10, target=80.0, target_met=True),
    _row("location", "L4", "pct_complete", 0.0, 4, suppressed=True),
    _row("location", "L1", "pct_complete", 10.0, 5, period_type="quarter", period="2024-Q1",
         suppressed=True),
    _row("location", "L1", "n_closed", 20.0, 20),
    # Therapists, pct_complete: a separate peer group.
    _row("therapist", "T1", "pct_complete", 50.0, 10),
    _row("therapist", "T2", "pct_complete", 90.0, 30),
    # Locations, mean_improvement.
    _row("location", "L1", "mean_improvement", 60.0, 25),
    _row("location", "L2", "mean_improvement", 40.0, 25),
    # The organisation: mean of locations (the reference for the deviation) and the
    # episode-weighted row with the episode-level sd of mean_improvement, 20.
    _row("concern", "K", "pct_complete", 75.0, 74, aggregation="mean_of_locations"),
    _row("concern", "K", "mean_improvement", 50.0, 50, aggregation="mean_of_locations", sd=14.1),
    _row("concern", "K", "mean_improvement", 50.0, 50, sd=20.0),
]


@pytest.fixture
def bench(tmp_path):
    con = connect(tmp_path)
    load_indicators(con, INDICATORS)
    build(con, "internal_benchmark")
    result = {(r["level"], r["unit_id"], r["period"], r["indicator"]): r
              for r in rows(con, "SELECT * FROM marts.internal_benchmark")}
    con.close()
    return result


def test_only_location_and_therapist_percentages_and_means(bench):
    assert {(level, indicator) for level, _, _, indicator in bench} == {
        ("location", "pct_complete"), ("therapist", "pct_complete"), ("location", "mean_improvement")}
    assert not any("rank" in column for column in next(iter(bench.values())))


def test_deviation_from_the_organisation_average(bench):
    l1 = bench[("location", "L1", "2024", "pct_complete")]
    assert l1["organisation_value"] == 75.0
    assert l1["deviation"] == pytest.approx(5.0)
    assert l1["target_met"] is True


def test_z_among_non_suppressed_peers(bench):
    # Peers L1..L3 (L4 suppressed): mean (80 + 60 + 90) / 3 = 76.6667;
    # sd sqrt((3.3333^2 + 16.6667^2 + 13.3333^2) / 2) = sqrt(466.667 / 2) = 15.275252;
    # L4 (0, suppressed, not a peer): -76.666667 / 15.275252 = -5.019011.
    for unit, z in {"L1": 0.218218, "L2": -1.091089, "L3": 0.872872, "L4": -5.019011}.items():
        row = bench[("location", unit, "2024", "pct_complete")]
        assert row["z"] == pytest.approx(z, abs=1e-6), unit
        assert row["n_peers"] == 3
        assert row["peer_mean"] == pytest.approx(76.666667, abs=1e-6)
    assert bench[("location", "L4", "2024", "pct_complete")]["suppressed"] is True
    # A quarter is its own peer group: L1 alone and suppressed, no z.
    assert bench[("location", "L1", "2024-Q1", "pct_complete")]["z"] is None
    # Therapists among therapists: 50 and 90, mean 70, sd 28.2843, z -/+ 0.7071.
    assert bench[("therapist", "T1", "2024", "pct_complete")]["z"] == pytest.approx(-1 / math.sqrt(2))


def test_funnel_for_a_percentage(bench):
    # Centre: pooled over all locations, the suppressed L4 included:
    # (80*20 + 60*40 + 90*10 + 0*4) / 74 = 4,900 / 74 = 66.216216%.
    p0 = 4900 / 74
    l1 = bench[("location", "L1", "2024", "pct_complete")]
    assert l1["funnel_centre"] == pytest.approx(p0)
    # L1, n 20: se sqrt(66.2162 * 33.7838 / 20) = sqrt(111.8517) = 10.576;
    # 95%: [45.49, 86.94]; 99.8%: [33.53, 98.90]. 80 is inside both.
    se = math.sqrt(p0 * (100 - p0) / 20)
    assert l1["funnel_95_low"] == pytest.approx(p0 - Z95 * se, abs=1e-9)
    assert l1["funnel_95_high"] == pytest.approx(p0 + Z95 * se, abs=1e-9)
    assert l1["funnel_998_low"] == pytest.approx(p0 - Z998 * se, abs=1e-9)
    assert l1["funnel_998_high"] == pytest.approx(p0 + Z998 * se, abs=1e-9)
    assert l1["funnel_95_low"] == pytest.approx(45.4876, abs=1e-3)
    assert l1["outside_funnel_95"] is False and l1["outside_funnel_998"] is False
    # L4 (0% of 4, suppressed): se sqrt(2237.03 / 4) = 23.6487;
    # 95%: 66.22 - 46.35 = 19.87 > 0 -> outside; 99.8%: 66.22 - 73.08 = -6.86 -> inside,
    # drawn at 0; the upper limits 112.6 and 139.3 are drawn at 100.
    l4 = bench[("location", "L4", "2024", "pct_complete")]
    se4 = math.sqrt(p0 * (100 - p0) / 4)
    assert l4["funnel_95_low"] == pytest.approx(p0 - Z95 * se4, abs=1e-9)
    assert l4["funnel_998_low"] == 0.0
    assert l4["funnel_95_high"] == 100.0 and l4["funnel_998_high"] == 100.0
    assert l4["outside_funnel_95"] is True and l4["outside_funnel_998"] is False
    # Therapists: centre (50*10 + 90*30) / 40 = 80; T1 n 10: se sqrt(80 * 20 / 10) = 12.649111,
    # 95% low 80 - 24.792 = 55.21 > 50 -> outside; 99.8% low 80 - 39.089 = 40.91 -> inside.
    t1 = bench[("therapist", "T1", "2024", "pct_complete")]
    assert t1["funnel_centre"] == pytest.approx(80.0)
    assert t1["funnel_95_low"] == pytest.approx(80 - Z95 * 12.649111, abs=1e-5)
    assert t1["outside_funnel_95"] is True and t1["outside_funnel_998"] is False


def test_all_units_suppressed_still_get_a_funnel(bench):
    # 2024-Q1: only L1 (10% of 5, suppressed): no peers for z, but a funnel around
    # its own value, 10%, with se sqrt(10 * 90 / 5) = 13.4164.
    q1 = bench[("location", "L1", "2024-Q1", "pct_complete")]
    assert q1["z"] is None and q1["n_peers"] is None
    assert q1["funnel_centre"] == pytest.approx(10.0)
    assert q1["funnel_95_high"] == pytest.approx(10 + Z95 * 13.416408, abs=1e-5)


def test_funnel_for_a_mean_uses_the_episode_level_sd(bench):
    # Centre (60*25 + 40*25) / 50 = 50; episode-level sd 20 (the concern's 'episodes'
    # row, not the 14.1 between locations); se 20 / sqrt(25) = 4.
    # 95%: 50 +- 7.839856 = [42.16, 57.84]; 99.8%: 50 +- 12.360928 = [37.64, 62.36].
    # L1 (60) and L2 (40) are outside 95% only.
    l1 = bench[("location", "L1", "2024", "mean_improvement")]
    assert l1["funnel_sd"] == 20.0
    assert l1["funnel_95_low"] == pytest.approx(42.160144, abs=1e-6)
    assert l1["funnel_95_high"] == pytest.approx(57.839856, abs=1e-6)
    assert l1["funnel_998_low"] == pytest.approx(37.639072, abs=1e-6)
    assert l1["funnel_998_high"] == pytest.approx(62.360928, abs=1e-6)
    assert l1["outside_funnel_95"] is True and l1["outside_funnel_998"] is False
    l2 = bench[("location", "L2", "2024", "mean_improvement")]
    assert l2["outside_funnel_95"] is True and l2["outside_funnel_998"] is False
    assert l2["organisation_value"] == 50.0 and l2["deviation"] == pytest.approx(-10.0)
