"""Issue 2, row validation: each kind of defect lands in audit.quarantine with its reason; the valid rows load.

One delivery holds every defect, each on a row of its own (some rows on purpose
break several rules), so one pipeline run proves them all. Row numbers count
data rows from 1 after the header.
"""
from __future__ import annotations

import json

import ibis.expr.datatypes as dt
import pandera.ibis as pai
import pytest

from conftest import Pipeline
from deliveries import episode, items, measurement, scl90_items, write_delivery
from rom_pipeline.lib.validation_sql import check_condition, checked_rows_sql

LOCATIONS = [
    {"location_id": "L1", "location_name": "Utrecht", "region": "midden"},         # 1
    {"location_id": "L2", "location_name": "Nijmegen", "region": "oost"},          # 2
    {"location_id": "L1", "location_name": "Dubbel", "region": ""},                # 3 duplicate
    {"location_id": "", "location_name": "Zonder id", "region": ""},               # 4 no id
    {"location_id": "L3", "location_name": "", "region": "zuid"},                  # 5 no name
]


def therapist(tid, location, profession="psychologist", trainee="0"):
    return {"therapist_id": tid, "location_id": location, "profession": profession, "is_trainee": trainee}


THERAPISTS = [
    therapist("T1", "L1"),                                   # 1
    therapist("T2", "L2", "psychotherapist", "1"),           # 2
    therapist("T3", "L9"),                                   # 3 unknown location
    therapist("T4", "L1", "wizard"),                         # 4
    therapist("T5", "L1", "nurse_specialist", "yes"),        # 5
    therapist("T6", "L3", "wizard", "2"),                    # 6 three problems; L3 was quarantined
    therapist("T7", "L1", "other", ""),                      # 7
]

EPISODES = [
    episode("E1", "cl-1"),                                                                     # 1
    episode("E2", "cl-2", location_id="L2", therapist_id="T2", start="2025-02-01", end=None, end_reason=None),
    episode("E3", "cl-3", start="2025-13-45"),                                                 # 3
    episode("E4", "cl-4", start="21-03-2025"),                                                 # 4
    episode("E5", "cl-5", start="2025-03-01", end="2025-02-01"),                               # 5
    episode("E6", "cl-6", end=None, end_reason="dropout"),                                     # 6
    episode("E7", "cl-7", end="2025-04-10", end_reason=None),                                  # 7
    episode("E8", "cl-8", end="2025-07-15"),                                                   # 8 export 2025-06-30
    episode("E9", "cl-9", therapist_id="T3"),                                                  # 9 T3 quarantined
    episode("E10", "cl-10", location_id="L3"),                                                 # 10 L3 quarantined
    episode("E1", "cl-11", start="2025-01-05"),                                                # 11 duplicate
    episode("E12", "cl-12", age_at_start="130"),                                               # 12
    episode("E13", "cl-13", care_type="intensive"),                                            # 13
    episode("E14", ""),                                                                        # 14
    episode("E15", "cl-15", sessions_attended="-1"),                                           # 15
    episode("E16", "cl-16", age_at_start="forty"),                                             # 16
    episode("E17", "cl-17", sex="", diagnosis_group="burnout", referrer="friend"),             # 17
    episode("E18", "cl-18", start=""),                                                         # 18
    episode("E19", "cl-19", end="2025-04-31"),                                                 # 19 impossible end
]

MEASUREMENTS = [
    measurement("M1", "E1", "2025-01-10", 200),                              # 1
    measurement("M2", "E1", "2025-04-10", 150),                              # 2
    measurement("M3", "E2", "2025-02-01", 460),                              # 3 SCL90 total 90..450
    measurement("M4", "E2", "2025-02-01", 53, instrument="HDRS"),            # 4 HDRS 0..52
    measurement("M5", "E2", "2025-07-01", 120),                              # 5 after the export date
    measurement("M6", "E3", "2025-02-01", 120),                              # 6 E3 quarantined
    measurement("M7", "E99", "2025-02-01", 120),                             # 7
    measurement("M8", "E2", "2025-02-01", 20, instrument="BDI"),             # 8
    measurement("M1", "E2", "2025-02-01", 130),                              # 9 duplicate
    measurement("M10", "E2", "", 130),                                       # 10
    measurement("M11", "E2", "2025-02-01", 130, occasion="weekly"),          # 11
    measurement("M12", "E2", "2025-02-01", "12,5"),                          # 12
    measurement("M13", "E2", "2025-02-01", 130, session="-1"),               # 13
    measurement("M14", "E2", "2025-02-01", None),                            # 14 total from items: 180
    measurement("M15", "E2", "2025-02-01", 60, instrument="SF36"),           # 15 SF36 has no items
    measurement("M16", "E99", "2025-13-01", "x", instrument="BDI"),          # 16 four problems
]


def item(mid, number, response):
    return {"measurement_id": mid, "item": str(number), "response": str(response)}


ITEMS = items("M14", scl90_items(180)) + [   # rows 1..90
    item("M14", 91, 3),     # 91 SCL90 has 90 items
    item("M14", 5, 2),      # 92 (M14, 5) again
    item("M99", 1, 3),      # 93
    item("M14", "x", 1),    # 94
    item("M15", 1, 3),      # 95 SF36 is delivered as a total
    item("M14", 0, 3),      # 96 items start at 1
    item("M1", 1, 7),       # 97 SCL90 responses 1..5
    item("M6", 1, 3),       # 98 M6 quarantined
]

EXPECTED = {
    ("locations.csv", 3, "duplicate_key", "location_id"),
    ("locations.csv", 4, "missing_value", "location_id"),
    ("locations.csv", 5, "missing_value", "location_name"),
    ("therapists.csv", 3, "unknown_reference", "location_id"),
    ("therapists.csv", 4, "invalid_value", "profession"),
    ("therapists.csv", 5, "invalid_type", "is_trainee"),
    ("therapists.csv", 6, "parent_quarantined", "location_id"),
    ("therapists.csv", 6, "invalid_value", "profession"),
    ("therapists.csv", 6, "invalid_type", "is_trainee"),
    ("therapists.csv", 7, "missing_value", "is_trainee"),
    ("episodes.csv", 3, "invalid_type", "start_date"),
    ("episodes.csv", 4, "invalid_type", "start_date"),
    ("episodes.csv", 5, "end_before_start", "end_date"),
    ("episodes.csv", 6, "end_reason_without_end_date", "end_reason"),
    ("episodes.csv", 7, "end_date_without_end_reason", "end_reason"),
    ("episodes.csv", 8, "end_after_export", "end_date"),
    ("episodes.csv", 9, "parent_quarantined", "therapist_id"),
    ("episodes.csv", 10, "parent_quarantined", "location_id"),
    ("episodes.csv", 11, "duplicate_key", "episode_id"),
    ("episodes.csv", 12, "out_of_range", "age_at_start"),
    ("episodes.csv", 13, "invalid_value", "care_type"),
    ("episodes.csv", 14, "missing_value", "client_id"),
    ("episodes.csv", 15, "out_of_range", "sessions_attended"),
    ("episodes.csv", 16, "invalid_type", "age_at_start"),
    ("episodes.csv", 17, "missing_value", "sex"),
    ("episodes.csv", 17, "invalid_value", "diagnosis_group"),
    ("episodes.csv", 17, "invalid_value", "referrer"),
    ("episodes.csv", 18, "missing_value", "start_date"),
    ("episodes.csv", 19, "invalid_type", "end_date"),
    ("measurements.csv", 3, "out_of_range", "total_score"),
    ("measurements.csv", 4, "out_of_range", "total_score"),
    ("measurements.csv", 5, "administered_after_export", "administered_on"),
    ("measurements.csv", 6, "parent_quarantined", "episode_id"),
    ("measurements.csv", 7, "unknown_reference", "episode_id"),
    ("measurements.csv", 8, "invalid_value", "instrument"),
    ("measurements.csv", 9, "duplicate_key", "measurement_id"),
    ("measurements.csv", 10, "missing_value", "administered_on"),
    ("measurements.csv", 11, "invalid_value", "occasion"),
    ("measurements.csv", 12, "invalid_type", "total_score"),
    ("measurements.csv", 13, "out_of_range", "session_number"),
    ("measurements.csv", 16, "unknown_reference", "episode_id"),
    ("measurements.csv", 16, "invalid_value", "instrument"),
    ("measurements.csv", 16, "invalid_type", "administered_on"),
    ("measurements.csv", 16, "invalid_type", "total_score"),
    ("item_responses.csv", 91, "item_not_in_instrument", "item"),
    ("item_responses.csv", 92, "duplicate_key", "measurement_id, item"),
    ("item_responses.csv", 93, "unknown_reference", "measurement_id"),
    ("item_responses.csv", 94, "invalid_type", "item"),
    ("item_responses.csv", 95, "item_not_in_instrument", "item"),
    ("item_responses.csv", 96, "out_of_range", "item"),
    ("item_responses.csv", 97, "out_of_range", "response"),
    ("item_responses.csv", 98, "parent_quarantined", "measurement_id"),
}


@pytest.fixture(scope="module")
def defects(tmp_path_factory):
    root = tmp_path_factory.mktemp("defects")
    pipeline = Pipeline(root / "exports", root / "data")
    write_delivery(pipeline.export_dir, "C001", "2025-06-30", {
        "locations": LOCATIONS, "therapists": THERAPISTS, "episodes": EPISODES,
        "measurements": MEASUREMENTS, "item_responses": ITEMS})
    run = pipeline.run()
    assert run.success     # bad rows never fail the run
    with run.warehouse() as con:
        yield con


def rows(con, sql, *params):
    return con.execute(sql, list(params)).fetchall()


def test_every_defect_is_quarantined_with_its_reason_and_column(defects):
    found = rows(defects, "SELECT file_name, source_row_number, reason, column_name FROM audit.quarantine")
    assert len(found) == len(set(found))    # once per reason, never twice
    assert set(found) == EXPECTED


def test_the_valid_rows_of_the_same_delivery_load(defects):
    assert rows(defects, "SELECT location_id, location_name, source_row_number FROM staging.locations") == [
        ("L1", "Utrecht", 1), ("L2", "Nijmegen", 2)]                       # the first L1 stays
    assert rows(defects, "SELECT therapist_id FROM staging.therapists") == [("T1",), ("T2",)]
    assert rows(defects, "SELECT episode_id, source_row_number FROM staging.episodes") == [
        ("E1", 1), ("E2", 2)]                                              # the first E1 stays
    assert rows(defects, "SELECT measurement_id, source_row_number, total_score, score_source "
                         "FROM staging.measurement_scores") == [
        ("M1", 1, 200, "delivered"), ("M14", 14, 180, "items"), ("M15", 15, 60, "delivered"),
        ("M2", 2, 150, "delivered")]
    assert rows(defects, "SELECT count(*), min(source_row_number), max(source_row_number), sum(response) "
                         "FROM staging.item_responses") == [(90, 1, 90, 180)]  # (M14, 5) first value kept


def test_counts_reconcile_per_file(defects):
    assert rows(defects, "SELECT file_name, rows_read, rows_loaded, rows_quarantined, reconciled "
                         "FROM audit.reconciliation ORDER BY file_name") == [
        ("episodes.csv", 19, 2, 17, True), ("item_responses.csv", 98, 90, 8, True),
        ("locations.csv", 5, 2, 3, True), ("measurements.csv", 16, 4, 12, True),
        ("therapists.csv", 7, 2, 5, True)]


def test_a_row_with_several_problems_keeps_its_raw_row_on_each_reason(defects):
    found = rows(defects, "SELECT stage, reason, detail, raw_row FROM audit.quarantine "
                          "WHERE file_name = 'therapists.csv' AND source_row_number = 6 ORDER BY reason")
    assert [(stage, reason) for stage, reason, _, _ in found] == [
        ("validation", "invalid_type"), ("validation", "invalid_value"), ("validation", "parent_quarantined")]
    assert [json.loads(raw) for *_, raw in found] == [
        {"therapist_id": "T6", "location_id": "L3", "profession": "wizard", "is_trainee": "2"}] * 3
    assert [detail for _, _, detail, _ in found] == [
        "expected 0 or 1",
        "not one of 'psychologist', 'psychotherapist', 'psychiatrist', 'nurse_specialist', 'other'",
        "locations.csv row 5 quarantined: missing_value"]


def test_a_reference_to_a_quarantined_row_names_the_parents_reason(defects):
    """Issue 10, item 14: a cascade is `parent_quarantined` with the parent's row and reason (and, for a
    parent that is a cascade itself, its cause); `unknown_reference` is left for values no row has."""
    found = rows(defects, "SELECT file_name, source_row_number, reason, detail FROM audit.quarantine "
                          "WHERE reason IN ('parent_quarantined', 'unknown_reference') "
                          "ORDER BY file_name, source_row_number")
    assert found == [
        ("episodes.csv", 9, "parent_quarantined", "therapists.csv row 3 quarantined: unknown_reference"),
        ("episodes.csv", 10, "parent_quarantined", "locations.csv row 5 quarantined: missing_value"),
        ("item_responses.csv", 93, "unknown_reference", "not a valid measurement_id of measurements in this delivery"),
        ("item_responses.csv", 98, "parent_quarantined", "measurements.csv row 6 quarantined: parent_quarantined "
                                                         "(episodes.csv row 3 quarantined: invalid_type)"),
        ("measurements.csv", 6, "parent_quarantined", "episodes.csv row 3 quarantined: invalid_type"),
        ("measurements.csv", 7, "unknown_reference", "not a valid episode_id of episodes in this delivery"),
        ("measurements.csv", 16, "unknown_reference", "not a valid episode_id of episodes in this delivery"),
        ("therapists.csv", 3, "unknown_reference", "not a valid location_id of locations in this delivery"),
        ("therapists.csv", 6, "parent_quarantined", "locations.csv row 5 quarantined: missing_value"),
    ]


def test_quarantined_episode_rows_show_the_pseudonym_not_the_client_id(defects):
    raw, = rows(defects, "SELECT raw_row FROM audit.quarantine WHERE file_name = 'episodes.csv' "
                         "AND source_row_number = 12")[0]
    assert json.loads(raw)["client_id"] != "cl-12"
    assert len(json.loads(raw)["client_id"]) == 64
    assert rows(defects, "SELECT count(*) FROM audit.quarantine WHERE contains(raw_row, 'cl-')") == [(0,)]


# --- the translation of pandera checks (pure) ---------------------------------------------------

def test_a_pandera_check_without_sql_translation_is_an_error_not_skipped():
    schema = pai.DataFrameSchema(name="locations", columns={
        "location_id": pai.Column(dt.String(), pai.Check.str_matches(r"L[0-9]+"), nullable=False)})
    with pytest.raises(NotImplementedError, match="no SQL translation for pandera check 'str_matches' on location_id"):
        checked_rows_sql(schema)


@pytest.mark.parametrize("check, expected", [
    (pai.Check.in_range(4, 120), ("out_of_range", '(t."c" < 4 OR t."c" > 120)', "outside 4..120")),
    (pai.Check.in_range(0, 1, include_min=False, include_max=False),
     ("out_of_range", '(t."c" <= 0 OR t."c" >= 1)', "outside 0..1")),
    (pai.Check.ge(0), ("out_of_range", 't."c" < 0', "below 0")),
    (pai.Check.le(80), ("out_of_range", 't."c" > 80', "above 80")),
    (pai.Check.gt(0), ("out_of_range", 't."c" <= 0', "not above 0")),
    (pai.Check.lt(10), ("out_of_range", 't."c" >= 10', "not below 10")),
    (pai.Check.isin(["a", "o'b"]), ("invalid_value", "t.\"c\" NOT IN ('a', 'o''b')", "not one of 'a', 'o''b'")),
])
def test_check_translations(check, expected):
    reason, condition, detail = check_condition("c", check)
    assert (reason, condition, detail) == expected
