"""Indicators end to end: hand-built staging tables -> marts.indicators / marts.indicator_breakdowns.

The case (all SCL90 pre-scores on the start date 2025-02-03, post-scores on the end date):

Concern C1, location L1 (10 closed episodes, all ending 2025-07-15):
    therapist T1 (experienced)               therapist T2 (trainee)
    E01 198->158  50.00  improved            E06 150->200 -100 (capped)  deteriorated
    E02 200->118 100     recovered           E07 300->300    0           unchanged
    E03 250->119  99.24  recovered           E08 110->130 -100 (pre<=N)  unchanged
    E04 160->139  50.00  unchanged           E09 pre 220 only, dropout   incomplete
    E05 140->160 -90.91  unchanged           E10 no SCL90 at all, dropout incomplete
    (E13: T1, open: counts nowhere)
    CQI post: E01 8, E02 6.   WORK pre/post: E01 0/20 (works at end), E02 10/0 (not), E03 16/- (left out).
Concern C1, location L2 (2 closed episodes, ending 2025-07-15), therapist T3 (experienced):
    E11 200->150  60.98  improved (post 150 is not below cut-off 150)      CQI post 9
    E12 198->158  50.00  improved
Concern C2 (same ids as C1!), location L1, therapist T1:
    E01 200->150  60.98  improved, ends 2025-07-20
    E02 pre 180 only, ends 2025-10-05 (2025-Q4)

By hand (values in %, N = 118):
  L1: n_closed 10; pct_complete 8/10 = 80; mean_improvement over 8 complete
      = (50 + 100 + 99.2424 + 50 - 90.9091 - 100 + 0 - 100) / 8 = 8.3333 / 8 = 1.0417
      (99.2424 - 90.9091 = 13100/132 - 12000/132 = 8.3333); recovered 2/8 = 25,
      improved 1/8 = 12.5, unchanged 4/8 = 50, deteriorated 1/8 = 12.5;
      dropout 2/10 = 20; satisfaction (8 + 6)/2 = 7; working at end 1/2 = 50.
  L2: n_closed 2; pct_complete 100; mean_improvement (60.9756 + 50)/2 = 55.4878;
      improved 100; dropout 0; satisfaction 9 (n 1); working: n 0, no value.
  C1, aggregation 'episodes' (every episode weighs the same):
      n_closed 12; pct_complete 10/12 = 83.3333; mean_improvement
      (8.3333 + 110.9756)/10 = 11.9309; recovered 2/10 = 20; improved 3/10 = 30;
      unchanged 4/10 = 40; deteriorated 1/10 = 10; dropout 2/12 = 16.6667;
      satisfaction (8 + 6 + 9)/3 = 7.6667; working 50 (n 2).
  C1, aggregation 'mean_of_locations' (every location weighs the same):
      pct_complete (80 + 100)/2 = 90 (n = 10 + 2 = 12 episodes, 2 locations);
      mean_improvement (1.0417 + 55.4878)/2 = 28.2647 (n = 8 + 2 = 10);
      dropout (20 + 0)/2 = 10; satisfaction (7 + 9)/2 = 8;
      working: only L1 has a value -> 50 (n 2, 1 location).
      The two aggregations differ because L1 is five times the size of L2.
  all, year 2025: n_closed 14; pct_complete 11/14 = 78.5714; mean_improvement
      (119.3089 + 60.9756)/11 = 16.3895; mean_of_locations over the 3 locations
      C1/L1, C1/L2, C2/L1: pct_complete (80 + 100 + 50)/3 = 76.6667 (n 14),
      mean_improvement (1.0417 + 55.4878 + 60.9756)/3 = 39.1684 (n 11).
  all, 2025-Q3: n_closed 13, pct_complete 11/13 = 84.6154; 2025-Q4: n_closed 1, pct_complete 0.
  therapists: C1/T1 n 5, pct_complete 100, mean_improvement 208.3333/5 = 41.6667;
      C1/T2 n 5, pct_complete 60, mean_improvement -200/3 = -66.6667, dropout 40;
      C2/T1 (year) n 2, pct_complete 50.
  Targets: pct_complete >= 80, mean_improvement >= 85 (seed 000).
  Suppressed when n < 10: L1 pct_complete (n 10) is shown, L1 mean_improvement (n 8) is not.
"""
from __future__ import annotations

import math
import statistics

import dagster as dg
import duckdb
import pytest

from outcomes_fixtures import OUTCOME_MODELS, Staging, build_outcomes, connect, one, rows
from rom_pipeline.defs import models
from rom_pipeline.lib.sqlfiles import SqlModel
from rom_pipeline.resources import Workspace

START = "2025-02-03"
END = "2025-07-15"

L1_IMPROVEMENTS = [50, 100, 13100 / 132, 50, -2000 / 22, -100, 0, -100]
L2_IMPROVEMENTS = [5000 / 82, 50]
C2_IMPROVEMENTS = [5000 / 82]

MODELS = OUTCOME_MODELS
ASSETS, CHECKS = models.select([m.table for m in MODELS])
CHECK_SPECS = [s for s in models.CHECK_SPECS if s.table in {m.table for m in MODELS}]

INDICATOR_COLUMNS = ["concern_id", "level", "unit_id", "period_type", "period", "indicator", "aggregation",
                     "value", "n", "ci_low", "ci_high", "target", "target_met", "suppressed"]


def build_case(staging: Staging) -> None:
    s = staging
    s.location("C1", "L1", "Amsterdam")
    s.location("C1", "L2", "Breda")
    s.therapist("C1", "T1", "L1")
    s.therapist("C1", "T2", "L1", is_trainee=True)
    s.therapist("C1", "T3", "L2")
    l1 = [("E01", "T1", 198, 158), ("E02", "T1", 200, 118), ("E03", "T1", 250, 119), ("E04", "T1", 160, 139),
          ("E05", "T1", 140, 160), ("E06", "T2", 150, 200), ("E07", "T2", 300, 300), ("E08", "T2", 110, 130)]
    for episode_id, therapist, pre, post in l1:
        s.scored_episode("C1", episode_id, pre, post, start=START, end=END, location_id="L1", therapist_id=therapist)
    s.scored_episode("C1", "E09", 220, None, start=START, end=END, location_id="L1", therapist_id="T2",
                     end_reason="dropout")
    s.episode("C1", "E10", start=START, end=END, location_id="L1", therapist_id="T2", end_reason="dropout")
    s.scored_episode("C1", "E11", 200, 150, start=START, end=END, location_id="L2", therapist_id="T3")
    s.scored_episode("C1", "E12", 198, 158, start=START, end=END, location_id="L2", therapist_id="T3")
    s.scored_episode("C1", "E13", 210, None, start=START, end=None, location_id="L1", therapist_id="T1")
    for episode_id, score in [("E01", 8), ("E02", 6), ("E11", 9)]:
        s.measurement("C1", f"{episode_id}-cqi", episode_id, END, score, instrument="CQI")
    for episode_id, pre, post in [("E01", 0, 20), ("E02", 10, 0), ("E03", 16, None)]:
        s.measurement("C1", f"{episode_id}-work-pre", episode_id, START, pre, instrument="WORK")
        if post is not None:
            s.measurement("C1", f"{episode_id}-work-post", episode_id, END, post, instrument="WORK")
    s.location("C2", "L1", "Zwolle")
    s.therapist("C2", "T1", "L1")
    s.scored_episode("C2", "E01", 200, 150, start=START, end="2025-07-20")
    s.scored_episode("C2", "E02", 180, None, start=START, end="2025-10-05")


# The arithmetic is checked with suppression out of the way (every figure shown); suppression
# itself on the same case with the default parameters (min_n 10, counts below 5, 2 therapists).
WITHOUT_SUPPRESSION = {"min_n": 1, "min_count_published": 1, "min_therapists_per_category": 1}


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    connection = connect(tmp_path_factory.mktemp("indicators") / "work.duckdb")
    for name, setting in WITHOUT_SUPPRESSION.items():
        connection.execute(f"SET VARIABLE {name} = {setting}")
    build_case(Staging(connection))
    build_outcomes(connection)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def suppressed_con(tmp_path_factory):
    connection = connect(tmp_path_factory.mktemp("indicators_suppressed") / "work.duckdb")
    build_case(Staging(connection))
    build_outcomes(connection)
    yield connection
    connection.close()


def indicator(con, level, unit_id, indicator_name, *, concern="C1", period_type="year", period="2025",
              aggregation="episodes") -> dict:
    return one(con, """
        SELECT * FROM marts.indicators
        WHERE level = ? AND unit_id = ? AND indicator = ? AND period_type = ? AND period = ?
          AND aggregation = ? AND concern_id IS NOT DISTINCT FROM ?""",
               [level, unit_id, indicator_name, period_type, period, aggregation,
                None if level == "all" else concern])


def value(con, *args, **kwargs) -> float | None:
    found = indicator(con, *args, **kwargs)["value"]
    return None if found is None else round(found, 4)


def breakdown(con, level, unit_id, dimension, category, indicator_name, *, period_type="year",
              period="2025") -> dict:
    return one(con, """
        SELECT * FROM marts.indicator_breakdowns
        WHERE level = ? AND unit_id = ? AND dimension = ? AND category = ? AND indicator = ?
          AND period_type = ? AND period = ? AND concern_id = 'C1'""",
               [level, unit_id, dimension, category, indicator_name, period_type, period])


def wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval in %, written out independently of the SQL."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return 100 * (centre - half), 100 * (centre + half)


Z95 = statistics.NormalDist().inv_cdf(0.975)   # 1.959964
T95 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 5: 2.5706, 7: 2.3646, 9: 2.2622, 10: 2.2281, 30: 2.0423,
       120: 1.9799}                              # Student t table, two-sided 95%


# --- the published shape -------------------------------------------------------------------------

def test_published_columns(con):
    columns = [d[0] for d in con.execute("SELECT * FROM marts.indicators LIMIT 0").description]
    assert columns[:14] == INDICATOR_COLUMNS
    levels = {r[0] for r in con.execute("SELECT DISTINCT level FROM marts.indicators").fetchall()}
    assert levels == {"therapist", "location", "concern", "all"}
    indicators = {r[0] for r in con.execute("SELECT DISTINCT indicator FROM marts.indicators").fetchall()}
    secondary = {f"pct_{what}_{instrument}" for instrument in ("hdrs", "ubos", "wav", "sf36", "cqi")
                 for what in ("complete", "recovered", "improved", "unchanged", "deteriorated")}
    assert indicators == {"n_closed", "pct_complete", "mean_improvement", "pct_recovered", "pct_improved",
                          "pct_unchanged", "pct_deteriorated", "pct_dropout", "mean_satisfaction",
                          "pct_working_start", "pct_working_end", "pct_rom_adherent", "mean_rom_adherence",
                          *secondary}
    assert len(indicators) == 38  # 10 of seed 000 and the design, 28 of issue 12 (parts 3 and 4)
    by_level = dict(con.execute("""SELECT level, list(DISTINCT aggregation ORDER BY aggregation)
                                    FROM marts.indicators GROUP BY level""").fetchall())
    assert by_level == {"therapist": ["episodes"], "location": ["episodes"],
                        "concern": ["episodes", "mean_of_locations"], "all": ["episodes", "mean_of_locations"]}
    assert con.execute("SELECT count(*) FROM marts.indicators WHERE level = 'all' AND concern_id IS NOT NULL"
                       ).fetchone()[0] == 0


def test_periods_by_end_date(con):
    periods = {tuple(r) for r in con.execute(
        "SELECT DISTINCT period_type, period FROM marts.indicators WHERE level = 'all'").fetchall()}
    assert periods == {("month", "2025-07"), ("month", "2025-10"), ("quarter", "2025-Q3"),
                       ("quarter", "2025-Q4"), ("year", "2025")}
    assert value(con, "all", "all", "n_closed", period_type="quarter", period="2025-Q3") == 13
    assert round(value(con, "all", "all", "pct_complete", period_type="quarter", period="2025-Q3"), 2) == 84.62
    assert value(con, "all", "all", "n_closed", period_type="quarter", period="2025-Q4") == 1
    assert value(con, "all", "all", "pct_complete", period_type="quarter", period="2025-Q4") == 0
    assert value(con, "concern", "C2", "n_closed", concern="C2", period_type="month", period="2025-10") == 1


# --- values, by hand -----------------------------------------------------------------------------

def test_location_values(con):
    expected_l1 = {"n_closed": 10, "pct_complete": 80, "mean_improvement": 1.0417, "pct_recovered": 25,
                   "pct_improved": 12.5, "pct_unchanged": 50, "pct_deteriorated": 12.5, "pct_dropout": 20,
                   "mean_satisfaction": 7, "pct_working_end": 50}
    expected_l2 = {"n_closed": 2, "pct_complete": 100, "mean_improvement": 55.4878, "pct_recovered": 0,
                   "pct_improved": 100, "pct_unchanged": 0, "pct_deteriorated": 0, "pct_dropout": 0,
                   "mean_satisfaction": 9, "pct_working_end": None}
    for unit, expected in (("L1", expected_l1), ("L2", expected_l2)):
        got = {name: value(con, "location", unit, name) for name in expected}
        assert got == expected, unit


def test_location_denominators(con):
    n = {name: indicator(con, "location", "L1", name)["n"]
         for name in ("n_closed", "pct_complete", "mean_improvement", "pct_recovered", "pct_dropout",
                      "mean_satisfaction", "pct_working_end")}
    assert n == {"n_closed": 10, "pct_complete": 10, "mean_improvement": 8, "pct_recovered": 8,
                 "pct_dropout": 10, "mean_satisfaction": 2, "pct_working_end": 2}
    assert indicator(con, "location", "L2", "pct_working_end")["n"] == 0


def test_concern_episodes_vs_mean_of_locations(con):
    episodes = {name: value(con, "concern", "C1", name)
                for name in ("n_closed", "pct_complete", "mean_improvement", "pct_recovered", "pct_improved",
                             "pct_unchanged", "pct_deteriorated", "pct_dropout", "mean_satisfaction",
                             "pct_working_end")}
    assert episodes == {"n_closed": 12, "pct_complete": 83.3333, "mean_improvement": 11.9309,
                        "pct_recovered": 20, "pct_improved": 30, "pct_unchanged": 40, "pct_deteriorated": 10,
                        "pct_dropout": 16.6667, "mean_satisfaction": 7.6667, "pct_working_end": 50}
    def of_locations(name):
        return indicator(con, "concern", "C1", name, aggregation="mean_of_locations")

    assert round(of_locations("pct_complete")["value"], 4) == 90
    assert round(of_locations("mean_improvement")["value"], 4) == 28.2647
    assert round(of_locations("pct_dropout")["value"], 4) == 10
    assert round(of_locations("mean_satisfaction")["value"], 4) == 8
    assert round(of_locations("pct_working_end")["value"], 4) == 50
    # n = the episodes behind the locations' values; n_units = the locations.
    assert (of_locations("pct_complete")["n"], of_locations("pct_complete")["n_units"]) == (12, 2)
    assert (of_locations("mean_improvement")["n"], of_locations("mean_improvement")["n_units"]) == (10, 2)
    assert (of_locations("pct_working_end")["n"], of_locations("pct_working_end")["n_units"]) == (2, 1)
    # A count has no mean over locations.
    assert con.execute("""SELECT count(*) FROM marts.indicators
                          WHERE indicator = 'n_closed' AND aggregation = 'mean_of_locations'""").fetchone()[0] == 0


def test_all_concerns(con):
    assert value(con, "all", "all", "n_closed") == 14
    assert value(con, "all", "all", "pct_complete") == 78.5714
    assert value(con, "all", "all", "mean_improvement") == 16.3895
    means = indicator(con, "all", "all", "pct_complete", aggregation="mean_of_locations")
    assert (round(means["value"], 4), means["n"], means["n_units"]) == (76.6667, 14, 3)
    improvement = indicator(con, "all", "all", "mean_improvement", aggregation="mean_of_locations")
    assert (round(improvement["value"], 4), improvement["n"], improvement["n_units"]) == (39.1684, 11, 3)


def test_therapists_and_shared_ids(con):
    assert value(con, "therapist", "T1", "n_closed") == 5
    assert value(con, "therapist", "T1", "pct_complete") == 100
    assert value(con, "therapist", "T1", "mean_improvement") == 41.6667
    assert value(con, "therapist", "T2", "pct_complete") == 60
    assert value(con, "therapist", "T2", "mean_improvement") == -66.6667
    assert value(con, "therapist", "T2", "pct_dropout") == 40
    # C2's T1 and L1 are other units than C1's T1 and L1.
    assert value(con, "therapist", "T1", "n_closed", concern="C2") == 2
    assert value(con, "therapist", "T1", "pct_complete", concern="C2") == 50
    assert value(con, "location", "L1", "mean_improvement", concern="C2") == 60.9756


# --- confidence intervals ------------------------------------------------------------------------

def test_wilson_interval_by_hand(con):
    """L1 pct_complete, 8 of 10, z = 1.959964:
    centre = (0.8 + z²/20) / (1 + z²/10) = 0.99207 / 1.38415 = 0.71674
    half   = z / 1.38415 * sqrt(0.016 + z²/400) = 1.41601 * 0.16001 = 0.22658
    -> [49.02, 94.33] (the textbook Wilson interval for 8/10).
    """
    row = indicator(con, "location", "L1", "pct_complete")
    assert (round(row["ci_low"], 2), round(row["ci_high"], 2)) == (49.02, 94.33)
    low, high = wilson(8, 10, Z95)
    assert row["ci_low"] == pytest.approx(low, abs=1e-6) and row["ci_high"] == pytest.approx(high, abs=1e-6)
    # All-or-nothing proportions: the interval starts (ends) exactly at the value.
    l2 = indicator(con, "location", "L2", "pct_complete")
    assert l2["ci_high"] == 100 and l2["ci_low"] == pytest.approx(wilson(2, 2, Z95)[0], abs=1e-6)
    dropout = indicator(con, "location", "L2", "pct_dropout")
    assert dropout["ci_low"] == 0 and dropout["ci_high"] == pytest.approx(wilson(0, 2, Z95)[1], abs=1e-6)


def test_t_interval_for_a_mean(con):
    """L1 mean_improvement: n = 8, df = 7, t = 2.3646; CI = mean +- t * sd / sqrt(8)."""
    row = indicator(con, "location", "L1", "mean_improvement")
    mean, sd = statistics.mean(L1_IMPROVEMENTS), statistics.stdev(L1_IMPROVEMENTS)
    half = T95[7] * sd / math.sqrt(8)
    assert row["ci_low"] == pytest.approx(mean - half, abs=1e-3)
    assert row["ci_high"] == pytest.approx(mean + half, abs=1e-3)
    assert row["ci_method"] == "t"


def test_interval_is_clipped_to_the_indicator_range(con):
    """L2 mean_improvement: n = 2, t(1) = 12.706; 55.49 + 12.706 * 7.761 / sqrt(2) = 125.2 -> 100."""
    row = indicator(con, "location", "L2", "mean_improvement")
    sd = statistics.stdev(L2_IMPROVEMENTS)
    assert row["ci_high"] == 100
    assert row["ci_low"] == pytest.approx(statistics.mean(L2_IMPROVEMENTS) - T95[1] * sd / math.sqrt(2), abs=1e-3)


def test_interval_of_mean_of_locations(con):
    """The interval reflects the episodes behind the mean, not the spread of a few location values:
    C1/2025 mean_improvement = (m_L1 + m_L2) / 2 with se = sqrt(se_L1^2 + se_L2^2) / 2, se_i = sd_i / sqrt(n_i):
    L1 sd 87.1 / sqrt(8) = 30.80, L2 sd 7.7606 / sqrt(2) = 5.49 -> se sqrt(30.80^2 + 5.49^2) / 2 = 15.6398;
    28.2647 -+ 1.96 * 15.6398 = -2.39 .. 58.92 (a t over two location values would give -318 .. 375)."""
    row = indicator(con, "concern", "C1", "mean_improvement", aggregation="mean_of_locations")
    se = math.sqrt(statistics.stdev(L1_IMPROVEMENTS) ** 2 / 8 + statistics.stdev(L2_IMPROVEMENTS) ** 2 / 2) / 2
    assert se == pytest.approx(15.6398, abs=1e-4)
    assert row["ci_method"] == "normal_over_locations"
    assert row["ci_low"] == pytest.approx(28.2647 - Z95 * se, abs=1e-3)
    assert row["ci_high"] == pytest.approx(28.2647 + Z95 * se, abs=1e-3)
    # A location with one episode has no standard error: no interval rather than a wrong one.
    everyone = indicator(con, "all", "all", "mean_improvement", aggregation="mean_of_locations")
    assert (everyone["ci_low"], everyone["ci_high"], everyone["ci_method"]) == (None, None, None)


def test_interval_of_a_percentage_mean_of_locations(con):
    """pct_complete, C1/2025: L1 8/10 and L2 2/2; se_i = Wilson half-width / z (L1 12.3, L2 22.2 ...)."""
    row = indicator(con, "concern", "C1", "pct_complete", aggregation="mean_of_locations")
    l1_low, l1_high = wilson(8, 10, Z95)
    l2_low, l2_high = wilson(2, 2, Z95)
    se = math.sqrt(((l1_high - l1_low) / 2 / Z95) ** 2 + ((l2_high - l2_low) / 2 / Z95) ** 2) / 2
    assert row["ci_low"] == pytest.approx(90 - Z95 * se, abs=1e-6)
    assert row["ci_high"] == pytest.approx(min(90 + Z95 * se, 100), abs=1e-6)


def test_n_closed_has_no_interval(con):
    row = indicator(con, "location", "L1", "n_closed")
    assert (row["value"], row["n"], row["ci_low"], row["ci_high"], row["target"]) == (10, 10, None, None, None)


# --- targets and suppression ---------------------------------------------------------------------

def test_targets(con):
    assert indicator(con, "location", "L1", "pct_complete")["target"] == 80
    assert indicator(con, "location", "L1", "pct_complete")["target_met"] is True       # 80 >= 80
    assert indicator(con, "concern", "C1", "pct_complete")["target_met"] is True        # 83.3
    assert indicator(con, "location", "L1", "pct_complete", concern="C2")["target_met"] is False  # 50
    assert indicator(con, "concern", "C1", "mean_improvement")["target"] == 85
    assert indicator(con, "concern", "C1", "mean_improvement")["target_met"] is False   # 11.9
    assert indicator(con, "location", "L2", "pct_working_end")["target_met"] is None    # no target, no value


def test_suppression(suppressed_con):
    con = suppressed_con
    def reason(level, unit, name, **kw):
        row = indicator(con, level, unit, name, **kw)
        return row["suppressed"], row["suppression_reason"]

    assert reason("location", "L1", "n_closed") == (True, "complementary")            # see below
    assert reason("location", "L1", "mean_improvement") == (True, "n_below_min_n")    # n 8
    assert reason("location", "L2", "pct_complete") == (True, "n_below_min_n")        # n 2
    # C1 (n 10) would give C2 (n 1, hidden) back from 'all' (n 11): complementary.
    assert reason("concern", "C1", "mean_improvement") == (True, "complementary")
    assert reason("all", "all", "mean_improvement", concern=None) == (False, None)     # n 11
    # A percentage whose numerator or complement is a count from 1 to 4 gives that count back
    # (value x n): L1 pct_dropout 2 of 10, C1 pct_deteriorated 1 of 10.
    assert reason("location", "L1", "pct_dropout") == (True, "small_count")
    assert reason("concern", "C1", "pct_deteriorated") == (True, "small_count")
    # The value stays beside the flag (the manager's view may show it as unreliable).
    assert round(indicator(con, "location", "L1", "mean_improvement")["value"], 4) == 1.0417


def test_pct_complete_of_a_location_is_shown_when_no_small_count_is_revealed(suppressed_con):
    """L1 pct_complete: 8 of 10 complete, complement 2 incomplete: a count below 5 -> hidden."""
    row = indicator(suppressed_con, "location", "L1", "pct_complete")
    assert (row["suppressed"], row["suppression_reason"]) == (True, "small_count")


def test_complementary_suppression_of_a_location(suppressed_con):
    """C1/2025 n_closed: L2 (2 episodes) is hidden; C1 (12) is shown, so L2 = 12 - L1 would come back:
    L1, the only other location, is hidden too (complementary). One level up the same holds: C2
    (2 episodes) is hidden and 'all' (14) is shown, so C1 is hidden too; 'all' stays."""
    l1 = indicator(suppressed_con, "location", "L1", "n_closed")
    l2 = indicator(suppressed_con, "location", "L2", "n_closed")
    concern = indicator(suppressed_con, "concern", "C1", "n_closed")
    assert (l2["suppressed"], l2["suppression_reason"]) == (True, "n_below_min_n")
    assert (l1["suppressed"], l1["suppression_reason"]) == (True, "complementary")
    assert (concern["suppressed"], concern["suppression_reason"]) == (True, "complementary")
    everyone = indicator(suppressed_con, "all", "all", "n_closed")
    assert (everyone["suppressed"], everyone["value"]) == (False, 14)


def test_mean_of_locations_rests_on_shown_locations_only(suppressed_con):
    """No location of C1 is shown for mean_improvement (L1 n 8, L2 n 2): the organisation's mean of
    locations has nothing to average and is suppressed, so it cannot give a hidden location back."""
    row = indicator(suppressed_con, "concern", "C1", "mean_improvement", aggregation="mean_of_locations")
    assert (row["value"], row["n"], row["n_units"], row["suppressed"]) == (None, 0, 0, True)


def test_suppression_threshold_is_a_parameter(tmp_path):
    connection = connect(tmp_path / "work.duckdb")
    build_case(Staging(connection))
    connection.execute("SET VARIABLE min_n = 3")
    build_outcomes(connection)
    assert indicator(connection, "therapist", "T1", "mean_improvement")["suppressed"] is False  # n 5 >= 3
    assert indicator(connection, "location", "L2", "pct_complete")["suppressed"] is True       # n 2 < 3
    connection.close()


def test_therapist_figures_take_no_part_in_complementary_suppression(tmp_path):
    """docs/outcome-rules.md: therapist figures are not shared, so no therapist is hidden for
    another's sake. At min_n 2, month 2025-07 of n_closed has one hidden therapist figure (T1 in
    C2, 1 episode) beside three shown ones (T1 5, T2 5, T3 2); the smallest shown (T3) stays shown.
    Month figures of therapists: a deployment that publishes therapist level."""
    connection = connect(tmp_path / "work.duckdb")
    build_case(Staging(connection))
    connection.execute("SET VARIABLE min_n = 2")
    connection.execute("SET VARIABLE publish_therapist_level = true")
    build_outcomes(connection)
    month = connection.execute("""
        SELECT unit_id, n, suppression_reason FROM marts.indicators
        WHERE level = 'therapist' AND indicator = 'n_closed' AND period = '2025-07' ORDER BY n""").fetchall()
    assert month == [("T1", 1, "n_below_min_n"), ("T3", 2, None), ("T1", 5, None), ("T2", 5, None)]
    assert connection.execute("SELECT count(*) FROM marts.indicator_aggregates WHERE level = 'therapist' "
                              "AND suppression_reason = 'complementary'").fetchone()[0] == 0
    connection.close()


# --- case-mix breakdowns -------------------------------------------------------------------------

def test_breakdown_by_therapist_experience(con):
    trainee = breakdown(con, "location", "L1", "therapist_experience", "trainee", "pct_complete")
    experienced = breakdown(con, "location", "L1", "therapist_experience", "experienced", "pct_complete")
    assert (trainee["value"], trainee["n"]) == (60, 5)
    assert (experienced["value"], experienced["n"]) == (100, 5)
    assert breakdown(con, "location", "L1", "therapist_experience", "trainee", "pct_dropout")["value"] == 40


def test_breakdown_by_baseline_severity(con):
    """C1 by SCL90 pre-score band: 150-199 = E01 198, E04 160, E06 150, E12 198 -> (50+50-100+50)/4 = 12.5;
    <150 = E05 140, E08 110 -> (-90.91-100)/2 = -95.45; >=250 = E03 250, E07 300 -> (99.24+0)/2 = 49.62;
    200-249 = E02 200, E09 220 (no post), E11 200 -> complete 2/3, mean (100+60.98)/2 = 80.49;
    no_pre_score = E10 -> complete 0/1."""
    def got(category, name):
        row = breakdown(con, "concern", "C1", "baseline_severity", category, name)
        return round(row["value"], 2), row["n"]

    assert got("150-199", "mean_improvement") == (12.5, 4)
    assert got("<150", "mean_improvement") == (-95.45, 2)
    assert got(">=250", "mean_improvement") == (49.62, 2)
    assert got("200-249", "pct_complete") == (66.67, 3)
    assert got("200-249", "mean_improvement") == (80.49, 2)
    assert got("no_pre_score", "pct_complete") == (0, 1)


def test_breakdown_shape(con):
    levels = {tuple(r) for r in con.execute(
        "SELECT DISTINCT level, period_type FROM marts.indicator_breakdowns").fetchall()}
    assert levels == {("location", "quarter"), ("location", "year"), ("concern", "quarter"), ("concern", "year")}
    dimensions = {r[0] for r in con.execute("SELECT DISTINCT dimension FROM marts.indicator_breakdowns").fetchall()}
    assert dimensions == {"diagnosis_group", "referrer", "care_type", "therapist_experience", "baseline_severity"}
    assert breakdown(con, "concern", "C1", "care_type", "basic", "n_closed")["suppressed"] is False  # n 12


# --- t quantiles ---------------------------------------------------------------------------------

def _t_case(tmp_path, sizes):
    """Therapist T<k> has k closed episodes with CQI post-scores alternating 5.0 and 5.1."""
    connection = connect(tmp_path / "t.duckdb")
    s = Staging(connection)
    s.location("C1", "L1")
    scores = {}
    for k in sizes:
        s.therapist("C1", f"T{k}", "L1")
        scores[k] = [5.0 if i % 2 == 0 else 5.1 for i in range(k)]
        for i, score in enumerate(scores[k]):
            s.episode("C1", f"E{k}-{i}", therapist_id=f"T{k}", start=START, end=END)
            s.measurement("C1", f"Q{k}-{i}", f"E{k}-{i}", END, score, instrument="CQI")
    return connection, scores


def _implied_t(connection, scores, k):
    row = indicator(connection, "therapist", f"T{k}", "mean_satisfaction")
    se = statistics.stdev(scores[k]) / math.sqrt(k)
    return (row["value"] - row["ci_low"]) / se


def test_t_quantiles_against_the_table(tmp_path):
    dfs = [1, 2, 3, 5, 10, 30, 120]
    connection, scores = _t_case(tmp_path, [df + 1 for df in dfs])
    build_outcomes(connection)
    for df in dfs:
        tolerance = 0.005 if df == 3 else 0.0005  # Cornish-Fisher is 0.004 off at df = 3
        assert _implied_t(connection, scores, df + 1) == pytest.approx(T95[df], abs=tolerance), df
    # Other confidence levels: two-sided 99% and 90% tables.
    t99 = {1: 63.6567, 2: 9.9248, 5: 4.0321, 10: 3.1693, 30: 2.7500, 120: 2.6174}
    connection.execute("SET VARIABLE confidence_level = 0.99")
    build_outcomes(connection)
    for df, expected in t99.items():
        assert _implied_t(connection, scores, df + 1) == pytest.approx(expected, abs=0.005), df
    t90 = {1: 6.3138, 2: 2.9200, 10: 1.8125, 30: 1.6973}
    connection.execute("SET VARIABLE confidence_level = 0.90")
    build_outcomes(connection)
    for df, expected in t90.items():
        assert _implied_t(connection, scores, df + 1) == pytest.approx(expected, abs=0.0005), df
    connection.close()


def test_wilson_follows_the_confidence_level(tmp_path):
    connection = connect(tmp_path / "w.duckdb")
    build_case(Staging(connection))
    connection.execute("SET VARIABLE confidence_level = 0.99")
    build_outcomes(connection)
    row = indicator(connection, "location", "L1", "pct_complete")
    low, high = wilson(8, 10, statistics.NormalDist().inv_cdf(0.995))
    assert row["ci_low"] == pytest.approx(low, abs=1e-6) and row["ci_high"] == pytest.approx(high, abs=1e-6)
    connection.close()


# --- checks --------------------------------------------------------------------------------------

def test_checks_pass_on_the_case(con):
    assert {spec.name: spec.failing_rows(con) for spec in CHECK_SPECS} == {spec.name: 0 for spec in CHECK_SPECS}


@pytest.mark.parametrize("check, damage", [
    ("episodes_counted_once",
     "INSERT INTO marts.episode_outcomes SELECT * FROM marts.episode_outcomes WHERE episode_id = 'E01' AND concern_id = 'C1'"),
    ("improvement_in_range",
     "UPDATE marts.episode_outcomes SET pct_improvement = 120 WHERE episode_id = 'E01' AND concern_id = 'C1'"),
    ("improvement_in_range",
     "UPDATE marts.episode_outcomes SET pct_improvement = NULL WHERE episode_id = 'E01' AND concern_id = 'C1'"),
    ("adherence_counts_consistent",
     "UPDATE marts.episode_outcomes SET expected_administrations = NULL WHERE episode_id = 'E01' AND concern_id = 'C1'"),
    ("adherence_counts_consistent",
     "UPDATE marts.episode_outcomes SET scl90_administrations = -1 WHERE episode_id = 'E01' AND concern_id = 'C1'"),
    ("indicators_percentages_in_range",
     "UPDATE marts.indicators SET value = 101 WHERE indicator = 'pct_complete' AND level = 'all' AND period = '2025'"
     " AND aggregation = 'episodes'"),
    ("n_adds_up_between_levels",
     "UPDATE marts.indicators SET n = n + 1 WHERE indicator = 'n_closed' AND level = 'location' AND unit_id = 'L2'"
     " AND period = '2025'"),
    ("breakdowns_add_up",
     "DELETE FROM marts.indicator_breakdowns WHERE dimension = 'referrer' AND unit_id = 'L2' AND period = '2025'"),
    ("pre_post_within_windows",
     "UPDATE outcomes.instrument_outcomes SET pre_administered_on = DATE '2024-01-01'"
     " WHERE episode_id = 'E01' AND concern_id = 'C1' AND instrument = 'SCL90'"),
])
def test_checks_catch_damage(tmp_path, check, damage):
    connection = connect(tmp_path / "work.duckdb")
    build_case(Staging(connection))
    build_outcomes(connection)
    spec = next(s for s in CHECK_SPECS if s.name == check)
    assert spec.failing_rows(connection) == 0
    connection.execute(damage)
    assert spec.failing_rows(connection) > 0
    connection.close()


# --- the Dagster assets --------------------------------------------------------------------------

def test_assets_materialise_and_checks_pass(tmp_path):
    """The asset module end to end: a work database with staging tables, then dg.materialize."""
    connection = connect(tmp_path / "work.duckdb")
    build_case(Staging(connection))
    connection.close()
    result = dg.materialize([*ASSETS, *CHECKS], resources={"workspace": Workspace(data_dir=str(tmp_path))})
    assert result.success
    materialised = {tuple(e.asset_key.path) for e in result.get_asset_materialization_events()}
    assert materialised == {(m.layer, m.name) for m in MODELS}
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len(CHECK_SPECS) and all(e.passed for e in evaluations)
    connection = duckdb.connect(str(tmp_path / "work.duckdb"), read_only=True)
    assert connection.execute("SELECT count(*) FROM marts.episode_outcomes").fetchone()[0] == 15
    connection.close()


def test_a_therapist_month_figure_is_computed_only_where_therapist_level_is_published(tmp_path):
    """lib/audience.py: no output shows a therapist's month figure unless the deployment publishes
    therapist level, so the models leave it out; its sums stay in marts.indicator_cells (per
    concern), and the run with the setting on computes it: T1's July 2025 n_closed, 5 episodes in C1."""
    connection = connect(tmp_path / "work.duckdb")
    build_case(Staging(connection))
    benchmark = SqlModel("marts", "internal_benchmark")
    build_outcomes(connection)
    benchmark.build(connection)

    def therapist_rows(table, period_type):
        return connection.execute(f"SELECT count(*) FROM {table} WHERE level = 'therapist' "
                                  "AND period_type = ?", [period_type]).fetchone()[0]

    for table in ("marts.indicator_aggregates", "marts.indicators", "marts.internal_benchmark"):
        assert therapist_rows(table, "month") == 0, table
        assert therapist_rows(table, "quarter") > 0 and therapist_rows(table, "year") > 0, table
    assert therapist_rows("marts.indicator_cells", "month") > 0
    connection.execute("SET VARIABLE publish_therapist_level = true")
    build_outcomes(connection)
    benchmark.build(connection)
    assert therapist_rows("marts.internal_benchmark", "month") > 0
    assert connection.execute("""SELECT n FROM marts.indicators WHERE level = 'therapist' AND concern_id = 'C1'
        AND unit_id = 'T1' AND period = '2025-07' AND indicator = 'n_closed'""").fetchone()[0] == 5
    connection.close()
