"""Per-episode outcome rules (design outcomes-and-benchmarks.md s1), through the real SQL models.

Every expected value below is worked out by hand from the design, not read
back from the code. Parameters are the defaults of rom_pipeline/parameters.yaml:
norm N = 118, improvement cap 100, pre window [start - 90, start + 28], post
window [end - 28, end + 28], SCL90 reliable change with s_pre = 60,
r_xx = 0.97, cut-off 150, z = 1.96.
"""
from __future__ import annotations

import datetime as dt
import math

import pytest

from outcomes_fixtures import Staging, build_outcomes, connect, one, rows

START = dt.date(2025, 3, 3)
END = dt.date(2025, 9, 1)


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


@pytest.fixture
def con(tmp_path):
    connection = connect(tmp_path / "work.duckdb")
    yield connection
    connection.close()


@pytest.fixture
def staging(con):
    s = Staging(con)
    for concern in ("C1", "C2"):
        s.location(concern, "L1")
        s.therapist(concern, "T1", "L1")
    return s


def episode_outcome(con, episode_id: str, concern: str = "C1") -> dict:
    return one(con, "SELECT * FROM marts.episode_outcomes WHERE concern_id = ? AND episode_id = ?",
               [concern, episode_id])


def instrument_outcome(con, episode_id: str, instrument: str, concern: str = "C1") -> dict:
    return one(con, """SELECT * FROM outcomes.instrument_outcomes
                       WHERE concern_id = ? AND episode_id = ? AND instrument = ?""",
               [concern, episode_id, instrument])


# --- percentage improvement: the design's test vectors ----------------------------------------

# (pre, post, expected % improvement to 2 decimals, rule code), worked by hand with N = 118:
DESIGN_VECTORS = [
    (198, 158, 50.00, "formula"),                # (198-158)/(198-118) = 40/80 (the seed's own example)
    (200, 150, 60.98, "formula"),                # 50/82 = 0.60976
    (250, 119, 99.24, "formula"),                # 131/132 = 0.99242
    (160, 139, 50.00, "formula"),                # 21/42
    (140, 160, -90.91, "formula"),               # -20/22 = -0.90909
    (150, 200, -100.00, "capped_deterioration"), # -50/32 = -1.5625 -> capped at -100
    (300, 300, 0.00, "formula"),                 # 0/182
    (200, 118, 100.00, "post_at_or_below_norm"), # post = N
    (110, 130, -100.00, "pre_at_or_below_norm"), # pre < N, post > N: maximum deterioration
]

# Further branches and edges of the rule:
EDGE_VECTORS = [
    (110, 100, 100.00, "post_at_or_below_norm"),  # both at/below norm: post decides, whatever the pre
    (118, 130, -100.00, "pre_at_or_below_norm"),  # pre exactly N: denominator 0, never divided
    (118, 118, 100.00, "post_at_or_below_norm"),  # both exactly N
    (150, 182, -100.00, "formula"),               # -32/32 = exactly -100: not below the cap, formula
    (150, 183, -100.00, "capped_deterioration"),  # -33/32 = -103.1 -> capped
    (119, 450, -100.00, "capped_deterioration"),  # denominator 1: -331/1 -> capped
    (450, 119, 99.70, "formula"),                 # 331/332 = 0.99699
    (119, 119, 0.00, "formula"),                  # smallest positive denominator, no change
]


@pytest.mark.parametrize("pre, post, expected, rule", DESIGN_VECTORS + EDGE_VECTORS)
def test_percentage_improvement(con, staging, pre, post, expected, rule):
    staging.scored_episode("C1", "E1", pre, post, start=str(START), end=str(END))
    build_outcomes(con, upto="episode_outcomes")
    out = episode_outcome(con, "E1")
    assert out["has_complete_scores"] is True
    assert out["pre_score"] == pre and out["post_score"] == post
    assert round(out["pct_improvement"], 2) == expected
    assert out["improvement_rule"] == rule


def test_all_design_vectors_in_one_run(con, staging):
    """The same vectors side by side in one build: no episode's rule leaks into another's."""
    for i, (pre, post, _, _) in enumerate(DESIGN_VECTORS):
        staging.scored_episode("C1", f"E{i:02d}", pre, post, start=str(START), end=str(END))
    build_outcomes(con, upto="episode_outcomes")
    got = {r["episode_id"]: (round(r["pct_improvement"], 2), r["improvement_rule"])
           for r in rows(con, "SELECT * FROM marts.episode_outcomes")}
    assert got == {f"E{i:02d}": (exp, rule) for i, (_, _, exp, rule) in enumerate(DESIGN_VECTORS)}


def test_incomplete_episodes_have_no_improvement_and_no_rule(con, staging):
    staging.scored_episode("C1", "pre_only", 200, None, start=str(START), end=str(END))
    staging.scored_episode("C1", "post_only", None, 150, start=str(START), end=str(END))
    staging.episode("C1", "open", start=str(START), end=None)
    staging.measurement("C1", "M1", "open", START, 200)
    staging.episode("C1", "nothing", start=str(START), end=str(END))
    build_outcomes(con, upto="episode_outcomes")
    for episode_id in ("pre_only", "post_only", "open", "nothing"):
        out = episode_outcome(con, episode_id)
        assert out["has_complete_scores"] is False
        assert out["pct_improvement"] is None and out["improvement_rule"] is None
        assert out["reliable_change"] is None
    assert episode_outcome(con, "post_only")["post_score"] == 150  # a post without a pre is still shown
    assert episode_outcome(con, "open")["is_closed"] is False


def test_norm_comes_from_the_parameters(con, staging):
    """With N = 100 instead of 118: 198 -> 158 is 40/98 = 40.82%."""
    staging.scored_episode("C1", "E1", 198, 158, start=str(START), end=str(END))
    con.execute("SET VARIABLE norm_score = 100")
    build_outcomes(con, upto="episode_outcomes")
    out = episode_outcome(con, "E1")
    assert round(out["pct_improvement"], 2) == 40.82
    assert out["norm_score"] == 100


# --- pre/post selection by date windows ------------------------------------------------------

def _episode_with(staging, episode_id: str, measurements: list[tuple[str, dt.date, float]], *,
                  start: dt.date = START, end: dt.date | None = END) -> None:
    staging.episode("C1", episode_id, start=str(start), end=str(end) if end else None)
    for measurement_id, on, score in measurements:
        staging.measurement("C1", measurement_id, episode_id, on, score)


def test_window_edges(con, staging):
    """Windows include both ends; one day outside is out.

    pre window  = [START - 90, START + 28] = [2024-12-03, 2025-03-31]
    post window = [END - 28, END + 28]     = [2025-08-04, 2025-09-29]
    """
    assert START - days(90) == dt.date(2024, 12, 3) and START + days(28) == dt.date(2025, 3, 31)
    assert END - days(28) == dt.date(2025, 8, 4) and END + days(28) == dt.date(2025, 9, 29)
    _episode_with(staging, "pre_at_first_day", [("M1", START - days(90), 200)])
    _episode_with(staging, "pre_day_before_window", [("M1", START - days(91), 200)])
    _episode_with(staging, "pre_at_last_day", [("M1", START + days(28), 200)])
    _episode_with(staging, "pre_day_after_window", [("M1", START + days(29), 200)])
    _episode_with(staging, "post_at_first_day", [("M0", START, 200), ("M1", END - days(28), 150)])
    _episode_with(staging, "post_day_before_window", [("M0", START, 200), ("M1", END - days(29), 150)])
    _episode_with(staging, "post_at_last_day", [("M0", START, 200), ("M1", END + days(28), 150)])
    _episode_with(staging, "post_day_after_window", [("M0", START, 200), ("M1", END + days(29), 150)])
    build_outcomes(con, upto="episode_outcomes")

    assert episode_outcome(con, "pre_at_first_day")["pre_measurement_id"] == "M1"
    assert episode_outcome(con, "pre_day_before_window")["pre_measurement_id"] is None
    assert episode_outcome(con, "pre_at_last_day")["pre_measurement_id"] == "M1"
    assert episode_outcome(con, "pre_day_after_window")["pre_measurement_id"] is None
    for episode_id in ("post_at_first_day", "post_at_last_day"):
        out = episode_outcome(con, episode_id)
        assert (out["pre_measurement_id"], out["post_measurement_id"]) == ("M0", "M1")
        assert out["has_complete_scores"] is True
        assert round(out["pct_improvement"], 2) == 60.98  # 50/82
    for episode_id in ("post_day_before_window", "post_day_after_window"):
        out = episode_outcome(con, episode_id)
        assert (out["pre_measurement_id"], out["post_measurement_id"]) == ("M0", None)
        assert out["has_complete_scores"] is False


def test_window_sizes_come_from_the_parameters(con, staging):
    """A pre window of 30 days before the start leaves out a measurement 60 days before it."""
    _episode_with(staging, "E1", [("M1", START - days(60), 200)])
    con.execute("SET VARIABLE pre_window_days_before_start = 30")
    build_outcomes(con, upto="episode_outcomes")
    assert episode_outcome(con, "E1")["pre_measurement_id"] is None


def test_two_candidates_earliest_is_pre_latest_is_post(con, staging):
    _episode_with(staging, "E1", [
        ("M_pre_late", START + days(5), 210),
        ("M_pre_early", START - days(10), 220),
        ("M_post_early", END - days(5), 170),
        ("M_post_late", END + days(3), 160),
    ])
    build_outcomes(con, upto="episode_outcomes")
    out = episode_outcome(con, "E1")
    assert (out["pre_measurement_id"], out["pre_score"]) == ("M_pre_early", 220)
    assert (out["post_measurement_id"], out["post_score"]) == ("M_post_late", 160)
    assert round(out["pct_improvement"], 2) == 58.82  # (220-160)/(220-118) = 60/102 = 0.58824

def test_same_date_candidates_smaller_id_is_pre_larger_is_post(con, staging):
    _episode_with(staging, "E1", [
        ("M2", START, 210), ("M1", START, 220),   # same day: M1 (smaller id) is the pre-score
        ("M8", END, 160), ("M9", END, 170),       # same day: M9 (larger id) is the post-score
    ])
    build_outcomes(con, upto="episode_outcomes")
    out = episode_outcome(con, "E1")
    assert (out["pre_measurement_id"], out["pre_score"]) == ("M1", 220)
    assert (out["post_measurement_id"], out["post_score"]) == ("M9", 170)


def test_pre_and_post_on_the_same_date_do_not_pair(con, staging):
    """A one-day episode with two measurements that day: both lie in both windows.

    The smaller id is the pre-score; the post-score must lie on a later date than
    the pre-score, so the other one is not a post-score: the episode is incomplete.
    """
    _episode_with(staging, "one_day", [("M1", START, 200), ("M2", START, 150)], start=START, end=START)
    build_outcomes(con, upto="episode_outcomes")
    out = episode_outcome(con, "one_day")
    assert out["pre_measurement_id"] == "M1"
    assert out["post_measurement_id"] is None
    assert out["has_complete_scores"] is False and out["pct_improvement"] is None


def test_short_episode_measurement_in_both_windows_is_not_reused(con, staging):
    """Start 2025-03-03, end 2025-03-17: the windows overlap.

    M1 on the start date is the pre-score; it lies in the post window too but
    cannot also be the post-score. M2, a week later, is the post-score.
    """
    end = START + days(14)
    _episode_with(staging, "short", [("M1", START, 200), ("M2", START + days(7), 180)], end=end)
    _episode_with(staging, "short_single", [("M1", START, 200)], end=end)
    build_outcomes(con, upto="episode_outcomes")
    out = episode_outcome(con, "short")
    assert (out["pre_measurement_id"], out["post_measurement_id"]) == ("M1", "M2")
    single = episode_outcome(con, "short_single")
    assert (single["pre_measurement_id"], single["post_measurement_id"]) == ("M1", None)


def test_open_episodes_have_no_post(con, staging):
    _episode_with(staging, "open", [("M1", START, 200), ("M2", START + days(100), 150)], end=None)
    build_outcomes(con, upto="episode_outcomes")
    out = episode_outcome(con, "open")
    assert out["is_closed"] is False and out["post_measurement_id"] is None
    assert out["end_date"] is None


def test_other_instruments_do_not_count_as_scl90(con, staging):
    staging.episode("C1", "E1", start=str(START), end=str(END))
    staging.measurement("C1", "M1", "E1", START, 20, instrument="HDRS")
    staging.measurement("C1", "M2", "E1", END, 10, instrument="HDRS")
    build_outcomes(con, upto="episode_outcomes")
    assert episode_outcome(con, "E1")["pre_measurement_id"] is None
    hdrs = instrument_outcome(con, "E1", "HDRS")
    assert (hdrs["pre_measurement_id"], hdrs["post_measurement_id"]) == ("M1", "M2")
    assert hdrs["raw_change"] == -10


def test_every_episode_once_and_every_instrument_per_episode(con, staging):
    staging.scored_episode("C1", "E1", 200, 150)
    staging.episode("C1", "E2")                     # no measurements at all
    staging.episode("C1", "E3", end=None)           # open
    build_outcomes(con, upto="episode_outcomes")
    assert con.execute("SELECT count(*) FROM marts.episode_outcomes").fetchone()[0] == 3
    per_episode = dict(con.execute(
        "SELECT episode_id, count(*) FROM outcomes.instrument_outcomes GROUP BY ALL").fetchall())
    assert per_episode == {"E1": 7, "E2": 7, "E3": 7}  # SCL90 HDRS UBOS WAV CQI SF36 WORK
    assert instrument_outcome(con, "E2", "SCL90")["n_valid_measurements"] == 0


def test_published_columns_come_first_with_exact_names(con, staging):
    staging.scored_episode("C1", "E1", 200, 150)
    build_outcomes(con, upto="episode_outcomes")
    columns = [d[0] for d in con.execute("SELECT * FROM marts.episode_outcomes LIMIT 0").description]
    assert columns[:15] == [
        "concern_id", "episode_id", "location_id", "therapist_id", "start_date", "end_date", "is_closed",
        "pre_measurement_id", "pre_score", "post_measurement_id", "post_score", "has_complete_scores",
        "pct_improvement", "improvement_rule", "reliable_change"]


# --- two concerns with the same ids ----------------------------------------------------------

def test_two_concerns_sharing_ids_are_kept_apart(con, staging):
    """C1 and C2 both have location L1, therapist T1, episode E1 and measurements E1-pre/E1-post."""
    staging.scored_episode("C1", "E1", 198, 158, start=str(START), end=str(END))   # 50%
    staging.scored_episode("C2", "E1", 250, 119, start=str(START), end=str(END))   # 99.24%
    staging.measurement("C2", "E1-early", "E1", START - days(30), 300)  # C2 only: earlier pre for C2's E1
    build_outcomes(con, upto="episode_outcomes")
    c1 = episode_outcome(con, "E1", "C1")
    c2 = episode_outcome(con, "E1", "C2")
    assert (c1["pre_score"], c1["post_score"], round(c1["pct_improvement"], 2)) == (198, 158, 50.00)
    # C2: pre = 300 (earliest), post = 119: (300-119)/(300-118) = 181/182 = 99.45%
    assert (c2["pre_measurement_id"], c2["pre_score"], c2["post_score"]) == ("E1-early", 300, 119)
    assert round(c2["pct_improvement"], 2) == 99.45
    assert con.execute("SELECT count(*) FROM marts.episode_outcomes").fetchone()[0] == 2
    assert con.execute("SELECT count(*) FROM outcomes.instrument_outcomes").fetchone()[0] == 14


# --- reliable change ----------------------------------------------------------------------------

SCL90_THRESHOLD = 1.96 * math.sqrt(2) * 60 * math.sqrt(1 - 0.97)  # = 28.806, by hand: 1.96 * 14.697
WAV_THRESHOLD = 1.96 * math.sqrt(2) * 7 * math.sqrt(1 - 0.90)     # = 6.136, by hand: 1.96 * 3.1305


def test_thresholds_by_hand():
    assert round(SCL90_THRESHOLD, 3) == 28.806
    assert round(WAV_THRESHOLD, 3) == 6.136


@pytest.mark.parametrize("pre, post, category", [
    (200, 171, "improved"),      # 29 > 28.806, post 171 not below cut-off 150
    (200, 172, "unchanged"),     # 28 < 28.806
    (180, 149, "recovered"),     # 31 > 28.806 and post 149 < 150
    (180, 150, "improved"),      # 30 reliable, but post 150 is not below the cut-off
    (140, 100, "recovered"),     # reliable and below the cut-off (design: no condition on the pre)
    (150, 180, "deteriorated"),  # worse by 30
    (150, 178, "unchanged"),     # worse by 28
])
def test_reliable_change_scl90(con, staging, pre, post, category):
    staging.scored_episode("C1", "E1", pre, post, start=str(START), end=str(END))
    build_outcomes(con, upto="episode_outcomes")
    assert episode_outcome(con, "E1")["reliable_change"] == category
    io = instrument_outcome(con, "E1", "SCL90")
    assert round(io["rc_threshold"], 3) == 28.806
    assert io["improvement"] == pre - post and io["raw_change"] == post - pre


@pytest.mark.parametrize("pre, post, category", [
    (40, 47, "recovered"),     # higher is better: +7 > 6.136 and post 47 > cut-off 45
    (30, 37, "improved"),      # +7, post 37 not above 45
    (40, 34, "unchanged"),     # -6
    (40, 33, "deteriorated"),  # -7
])
def test_reliable_change_higher_is_better(con, staging, pre, post, category):
    staging.episode("C1", "E1", start=str(START), end=str(END))
    staging.measurement("C1", "W1", "E1", START, pre, instrument="WAV")
    staging.measurement("C1", "W2", "E1", END, post, instrument="WAV")
    build_outcomes(con, upto="instrument_outcomes")
    io = instrument_outcome(con, "E1", "WAV")
    assert io["reliable_change"] == category
    assert io["improvement"] == post - pre


def test_work_and_satisfaction(con, staging):
    """WORK: working = hours > 0 at the pre- and the post-measurement; CQI: the post-score."""
    staging.episode("C1", "E1", start=str(START), end=str(END))
    staging.measurement("C1", "W1", "E1", START, 0, instrument="WORK")
    staging.measurement("C1", "W2", "E1", END, 24, instrument="WORK")
    staging.measurement("C1", "Q1", "E1", END - days(3), 8, instrument="CQI")
    staging.episode("C1", "E2", start=str(START), end=str(END))
    staging.measurement("C1", "W1", "E2", START, 32, instrument="WORK")
    staging.measurement("C1", "W2", "E2", END, 0, instrument="WORK")
    staging.episode("C1", "E3", start=str(START), end=str(END))
    staging.measurement("C1", "W1", "E3", START, 16, instrument="WORK")   # no post: at end unknown
    build_outcomes(con, upto="episode_outcomes")
    e1, e2, e3 = (episode_outcome(con, e) for e in ("E1", "E2", "E3"))
    assert (e1["working_at_start"], e1["working_at_end"]) == (False, True)
    assert (e2["working_at_start"], e2["working_at_end"]) == (True, False)
    assert (e3["working_at_start"], e3["working_at_end"]) == (True, None)
    assert (e1["satisfaction_post"], e1["satisfaction_measurement_id"]) == (8, "Q1")
    assert e2["satisfaction_post"] is None


# --- ongoing treatment ----------------------------------------------------------------------------

def test_latest_score_of_open_episodes(con, staging):
    """Open episodes, pre 200 at intake: the latest valid SCL90 after the pre (the not-on-track flag itself is
    marts.not_on_track, tested in tests/test_feedback.py)."""
    def open_episode(episode_id, latest, session, sessions_attended=12):
        staging.episode("C1", episode_id, start=str(START), end=None, sessions=sessions_attended)
        staging.measurement("C1", "M0", episode_id, START, 200, session=1)
        if latest is not None:
            staging.measurement("C1", "M1", episode_id, START + days(60), latest, session=session)

    open_episode("worse", 240, 5)
    open_episode("better", 160, 12)
    open_episode("no_latest", None, None)         # only the intake measurement
    staging.scored_episode("C1", "closed", 200, 240, start=str(START), end=str(END))
    build_outcomes(con, upto="episode_outcomes")

    expected = {"worse": ("M1", 240), "better": ("M1", 160), "no_latest": (None, None), "closed": (None, None)}
    for episode_id, (measurement, latest) in expected.items():
        out = episode_outcome(con, episode_id)
        assert (out["latest_measurement_id"], out["latest_score"]) == (measurement, latest), episode_id
    assert "not_on_track" not in episode_outcome(con, "worse")


def test_latest_measurement_is_the_last_one(con, staging):
    staging.episode("C1", "E1", start=str(START), end=None)
    staging.measurement("C1", "M0", "E1", START, 200, session=1)
    staging.measurement("C1", "M1", "E1", START + days(35), 250, session=5)
    staging.measurement("C1", "M2", "E1", START + days(70), 180, session=10)
    build_outcomes(con, upto="episode_outcomes")
    out = episode_outcome(con, "E1")
    assert (out["latest_measurement_id"], out["latest_score"]) == ("M2", 180)


# --- case-mix attributes ------------------------------------------------------------------------

@pytest.mark.parametrize("pre, band", [
    (149, "<150"), (150, "150-199"), (199, "150-199"), (200, "200-249"), (249.5, "200-249"), (250, ">=250"),
    (None, "no_pre_score"),
])
def test_baseline_severity_bands(con, staging, pre, band):
    staging.scored_episode("C1", "E1", pre, 150, start=str(START), end=str(END))
    build_outcomes(con, upto="episode_outcomes")
    assert episode_outcome(con, "E1")["baseline_severity_band"] == band


def test_therapist_experience(con, staging):
    staging.therapist("C1", "T2", "L1", is_trainee=True)
    staging.episode("C1", "E1", therapist_id="T1")
    staging.episode("C1", "E2", therapist_id="T2")
    build_outcomes(con, upto="episode_outcomes")
    assert episode_outcome(con, "E1")["therapist_experience"] == "experienced"
    assert episode_outcome(con, "E2")["therapist_experience"] == "trainee"
    assert episode_outcome(con, "E2")["is_trainee"] is True
