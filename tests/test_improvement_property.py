"""Property: for any SCL90 pre/post totals in the instrument's range (90..450), the real
percentage-improvement SQL gives a value in [-100, 100] with a rule code, never an
error, NULL, infinity or NaN (the formula must never divide by pre - N = 0 or less).

Runs sql/outcomes/instrument_outcomes.sql and sql/marts/episode_outcomes.sql as
the pipeline does, on staging tables filled with the drawn pairs.
"""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outcomes_fixtures import STAGING_TABLES, build_outcomes, connect

NORM = 118
CAP = 100
RULES = {"post_at_or_below_norm", "pre_at_or_below_norm", "capped_deterioration", "formula"}
SCL90_TOTAL = st.integers(min_value=90, max_value=450)


def design_rule(pre: int, post: int) -> tuple[float, str]:
    """The rule of design s1, written out independently of the SQL (the oracle)."""
    if post <= NORM:
        return 100.0, "post_at_or_below_norm"
    if pre <= NORM:
        return -CAP, "pre_at_or_below_norm"
    v = (pre - post) / (pre - NORM) * 100
    if v < -CAP:
        return -CAP, "capped_deterioration"
    return v, "formula"


@pytest.fixture(scope="module")
def con():
    connection = connect()  # in memory: hundreds of small builds
    yield connection
    connection.close()


def load_pairs(con, pairs: list[tuple[int, int]]) -> None:
    """Episode E<i>: closed, pre-score on its start date, post-score on its end date."""
    for table in STAGING_TABLES:
        con.execute(f"DELETE FROM staging.{table}")
    con.execute("""
        INSERT INTO staging.episodes
        SELECT 'C1', 'C1-D1', i, 'E' || i, 'p' || i, 'L1', 'T1', 'basic', 'depression', 'gp',
               DATE '2025-01-06', DATE '2025-07-01', 'completed', 18, 40, 'female'
        FROM range(?) AS r(i)""", [len(pairs)])
    con.executemany("""
        INSERT INTO staging.measurement_scores VALUES
            ('C1', 'C1-D1', ?, ?, ?, 'SCL90', ?, NULL, NULL, ?, 'delivered', NULL)""",
                    [row for i, (pre, post) in enumerate(pairs) for row in (
                        (2 * i, f"M{i}-pre", f"E{i}", "2025-01-06", pre),
                        (2 * i + 1, f"M{i}-post", f"E{i}", "2025-07-01", post))])


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(SCL90_TOTAL, SCL90_TOTAL), min_size=1, max_size=25))
def test_improvement_is_bounded_and_matches_the_design(con, pairs):
    load_pairs(con, pairs)
    build_outcomes(con, upto="episode_outcomes")
    got = {episode_id: (value, rule) for episode_id, value, rule in con.execute(
        "SELECT episode_id, pct_improvement, improvement_rule FROM marts.episode_outcomes").fetchall()}
    assert len(got) == len(pairs)
    for i, (pre, post) in enumerate(pairs):
        value, rule = got[f"E{i}"]
        value = float(value)
        assert math.isfinite(value) and -CAP <= value <= 100, (pre, post, value)
        assert rule in RULES
        expected_value, expected_rule = design_rule(pre, post)
        assert rule == expected_rule, (pre, post)
        assert value == pytest.approx(expected_value, abs=1e-9), (pre, post)


def test_every_integer_pair_at_once(con):
    """All 361 x 361 = 130,321 pairs in one build. Counts of each rule, by hand:
    post <= 118: 29 post values (90..118) x 361 pre values = 10,469;
    pre <= 118 and post > 118: 29 x 332 = 9,628; the rest (332 x 332 = 110,224)
    splits into capped (post > 2 pre - 118) and formula, counted by the oracle."""
    for table in STAGING_TABLES:
        con.execute(f"DELETE FROM staging.{table}")
    con.execute("""
        INSERT INTO staging.episodes
        SELECT 'C1', 'C1-D1', pre * 1000 + post, pre || '-' || post, 'p', 'L1', 'T1', 'basic', 'depression', 'gp',
               DATE '2025-01-06', DATE '2025-07-01', 'completed', 18, 40, 'female'
        FROM range(90, 451) AS a(pre), range(90, 451) AS b(post)""")
    con.execute("""
        INSERT INTO staging.measurement_scores
        SELECT 'C1', 'C1-D1', 0, pre || '-' || post || s.suffix, pre || '-' || post, 'SCL90', s.on_date, NULL, NULL,
               CASE s.suffix WHEN '-pre' THEN pre ELSE post END, 'delivered', NULL
        FROM range(90, 451) AS a(pre), range(90, 451) AS b(post),
             (VALUES ('-pre', DATE '2025-01-06'), ('-post', DATE '2025-07-01')) AS s(suffix, on_date)""")
    build_outcomes(con, upto="episode_outcomes")
    summary = con.execute("""
        SELECT count(*), count(pct_improvement), min(pct_improvement), max(pct_improvement),
               count(*) FILTER (WHERE isnan(pct_improvement) OR isinf(pct_improvement))
        FROM marts.episode_outcomes""").fetchone()
    assert summary == (130_321, 130_321, -100.0, 100.0, 0)
    by_rule = dict(con.execute(
        "SELECT improvement_rule, count(*) FROM marts.episode_outcomes GROUP BY ALL").fetchall())
    expected = {}
    for pre in range(90, 451):
        for post in range(90, 451):
            rule = design_rule(pre, post)[1]
            expected[rule] = expected.get(rule, 0) + 1
    assert expected["post_at_or_below_norm"] == 10_469 and expected["pre_at_or_below_norm"] == 9_628
    assert by_rule == expected
