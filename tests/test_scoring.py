"""Issue 2, scoring: totals from item responses (SCL90 prorating), and the measurements that cannot be scored.

Contract: with at most 9 of the SCL90's 90 items blank the total is
round(sum * 90 / answered); with more the measurement is quarantined
(too_many_missing_items); a delivered total that differs from the item total
by more than 0.5 is quarantined (total_items_mismatch); no total and no items
is missing_total. Every expected total below is computed by hand.
"""
from __future__ import annotations

import pytest

from conftest import Pipeline
from deliveries import episode, items, measurement, scl90_items, write_delivery

ON = "2025-02-01"

# scl90_items(300, 9): items 1..52 are 5 (208), item 53 is 3 (2 above 1), items 54..81 are 1: the
# 81 answered items sum to 300 - 9 = 291 -> round(291 * 90 / 81) = round(323.33) = 323.
# scl90_items(200, 9): items 1..27 are 5, item 28 is 3, 29..81 are 1: sum 191 -> round(212.22) = 212.
# 88 answered, sum 110 (22 twos, 66 ones): 110 * 90 / 88 = 112.5 -> 113 (half away from zero).
CASES = [
    # id, instrument, delivered total, item responses (None: no item rows at all)
    ("S01", "SCL90", None, scl90_items(180)),
    ("S02", "SCL90", None, scl90_items(300, blanks=9)),
    ("S03", "SCL90", None, scl90_items(300, blanks=10)),
    ("S04", "SCL90", 181, scl90_items(180)),
    ("S05", "SCL90", 180.5, scl90_items(180)),
    ("S06", "SCL90", 179.5, scl90_items(180)),
    ("S07", "SCL90", None, None),
    ("S08", "UBOS", 1.8, [1, 2, 2, 2, 2]),
    ("S09", "UBOS", 4, [3, 3, 3, 3, 4]),
    ("S10", "SCL90", None, [2] * 22 + [1] * 66 + [None] * 2),
    ("S11", "SCL90", None, [None] * 90),
    ("S12", "HDRS", 20, None),
    ("S13", "SCL90", 200, scl90_items(200, blanks=9)),
    ("S14", "SCL90", None, scl90_items(180)[:80]),        # rows for items 81..90 not delivered at all
    ("S15", "WAV", None, [4] * 12),
]

SCORED = [   # measurement_id, source_row_number, total_score, score_source, items_answered
    ("S01", 1, 180.0, "items", 90),
    ("S02", 2, 323.0, "items_prorated", 81),
    ("S05", 5, 180.0, "items", 90),
    ("S06", 6, 180.0, "items", 90),
    ("S08", 8, 1.8, "items", 5),
    ("S10", 10, 113.0, "items_prorated", 88),
    ("S12", 12, 20.0, "delivered", None),
    ("S15", 15, 48.0, "items", 12),
]

NOT_SCORED = [   # source_row_number, reason, detail
    (3, "too_many_missing_items", "10 of 90 items blank (at most 9 allowed)"),
    (4, "total_items_mismatch", "delivered total 181.0, items give 180.0"),
    (7, "missing_total", "no total_score and no item responses"),
    (9, "total_items_mismatch", "delivered total 4.0, items give 3.2"),
    (11, "too_many_missing_items", "90 of 90 items blank (at most 9 allowed)"),
    (13, "total_items_mismatch", "delivered total 200.0, items give 212.0"),
    (14, "too_many_missing_items", "10 of 90 items blank (at most 9 allowed)"),
]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    pipeline = Pipeline(root / "exports", root / "data")
    measurements = [measurement(mid, "E1", ON, total, instrument=instrument) for mid, instrument, total, _ in CASES]
    responses = [row for mid, _, _, answers in CASES if answers is not None for row in items(mid, answers)]
    write_delivery(pipeline.export_dir, "C001", "2025-06-30", {
        "locations": [{"location_id": "L1", "location_name": "Utrecht", "region": ""}],
        "therapists": [{"therapist_id": "T1", "location_id": "L1", "profession": "other", "is_trainee": "0"}],
        "episodes": [episode("E1", "c1", start="2025-01-20", end=None, end_reason=None)],
        "measurements": measurements, "item_responses": responses})
    run = pipeline.run()
    assert run.success
    with run.warehouse() as con:
        yield con


def test_the_hand_computed_inputs():
    assert sum(r for r in scl90_items(300, blanks=9) if r) == 291
    assert sum(r for r in scl90_items(200, blanks=9) if r) == 191
    assert round(291 * 90 / 81) == 323 and round(191 * 90 / 81) == 212
    assert 110 * 90 / 88 == 112.5


def test_scores_from_items_and_as_delivered(scored):
    assert scored.execute("SELECT measurement_id, source_row_number, total_score, score_source, items_answered "
                          "FROM staging.measurement_scores ORDER BY measurement_id").fetchall() == SCORED


def test_measurements_that_cannot_be_scored_are_quarantined(scored):
    assert scored.execute(
        "SELECT source_row_number, reason, detail FROM audit.quarantine ORDER BY source_row_number").fetchall() == \
        NOT_SCORED
    assert scored.execute("SELECT DISTINCT file_name, stage, column_name FROM audit.quarantine").fetchall() == [
        ("measurements.csv", "scoring", "total_score")]


def test_a_measurement_is_scored_or_quarantined_never_both_and_counts_reconcile(scored):
    assert scored.execute("SELECT file_name, rows_read, rows_loaded, rows_quarantined, reconciled "
                          "FROM audit.reconciliation ORDER BY file_name").fetchall() == [
        ("episodes.csv", 1, 1, 0, True),
        # every item row is valid, also those of measurements that cannot be scored:
        # 9 x 90 (S01-S06, S10, S11, S13) + 5 + 5 + 80 + 12
        ("item_responses.csv", 912, 912, 0, True),
        ("locations.csv", 1, 1, 0, True),
        ("measurements.csv", 15, 8, 7, True),
        ("therapists.csv", 1, 1, 0, True)]


def test_the_quarantined_row_is_the_delivered_row(scored):
    raw, = scored.execute("SELECT raw_row FROM audit.quarantine WHERE source_row_number = 4").fetchone()
    assert raw == ('{"measurement_id":"S04","episode_id":"E1","instrument":"SCL90","administered_on":"2025-02-01",'
                   '"session_number":null,"occasion":null,"total_score":"181"}')
