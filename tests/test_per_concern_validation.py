"""Issue 11, parts 4 and 5: a concern's rows are validated and checked without another concern's rows.

Two concerns deliver the same ids (ids are unique only within a concern). Validation works
one delivery at a time: duplicates, references and lookups are found within the delivery,
and re-validating one concern leaves the other's staging rows as they were, even when that
other concern's raw rows are gone. The pandera check reads the concerns written tonight.
"""
from __future__ import annotations

import duckdb
import pytest

from deliveries import LOCATIONS, THERAPISTS, episode, items, measurement, write_delivery
from rom_pipeline.config import apply_parameters, load_parameters
from rom_pipeline.defs.ingest.loader import ingest_deliveries
from rom_pipeline.defs.staging.checks import check_staging_table
from rom_pipeline.lib.concern_batches import batched, in_batch
from rom_pipeline.defs.staging.validate import validate_file
from rom_pipeline.lib.concern_scope import PENDING_DDL
from schemas.contract import EPISODES, FILES, ITEM_RESPONSES

KEY = b"per-concern-test-key-0123456789"


@pytest.fixture()
def work(tmp_path):
    root = tmp_path / "export"
    # C1: E1, E2; its items refer to M1 (its own) and M9 (a measurement only C2 has).
    write_delivery(root, "C1", "2025-06-30", {
        "locations": LOCATIONS, "therapists": THERAPISTS,
        "episodes": [episode("E1", "a"), episode("E2", "b")],
        "measurements": [measurement("M1", "E1", "2025-01-10", 200)],
        "item_responses": items("M1", [1, 2]) + items("M9", [3])})
    # C2: the same E1 twice (its row 2 is a duplicate within C2), and M9.
    write_delivery(root, "C2", "2025-06-30", {
        "locations": LOCATIONS, "therapists": THERAPISTS,
        "episodes": [episode("E1", "c"), episode("E1", "d")],
        "measurements": [measurement("M9", "E1", "2025-01-10", 200)],
        "item_responses": items("M9", [4, 5])})
    con = duckdb.connect(str(tmp_path / "work.duckdb"))
    apply_parameters(con, load_parameters())
    assert len(ingest_deliveries(con, root, KEY, log=lambda m: None).loaded) == 2
    for schema in FILES.values():
        validate_file(con, schema)
    yield con
    con.close()


def rows(con, sql):
    return sorted(con.execute(sql).fetchall())


def test_duplicates_and_references_are_found_within_each_concern(work):
    assert rows(work, "SELECT concern_id, episode_id, source_row_number FROM staging.episodes") == [
        ("C1", "E1", 1), ("C1", "E2", 2), ("C2", "E1", 1)]
    assert rows(work, "SELECT concern_id, source_row_number, reason FROM staging.episodes_rejects") == [
        ("C2", 2, "duplicate_key")]
    # C1's items of M9 refer to no measurement of C1's delivery: C2's M9 does not count
    assert rows(work, "SELECT concern_id, measurement_id, item FROM staging.item_responses") == [
        ("C1", "M1", 1), ("C1", "M1", 2), ("C2", "M9", 1), ("C2", "M9", 2)]
    assert rows(work, "SELECT concern_id, source_row_number, reason FROM staging.item_responses_rejects") == [
        ("C1", 3, "unknown_reference")]


def test_validating_one_concern_leaves_the_others_rows_untouched(work):
    before = {f: rows(work, f"SELECT * FROM staging.{f} WHERE concern_id = 'C2'") for f in FILES}
    rejects_before = rows(work, "SELECT * FROM staging.episodes_rejects WHERE concern_id = 'C2'")
    # C2's raw rows gone (nothing of C2 can be read), C1's E2 now too old to be a client (age 130)
    for f in FILES:
        work.execute(f"DELETE FROM raw.{f} WHERE concern_id = 'C2'")
    work.execute("UPDATE raw.episodes SET age_at_start = '130' WHERE concern_id = 'C1' AND episode_id = 'E2'")
    for schema in FILES.values():
        counts = validate_file(work, schema, concerns=["C1"])
        assert counts["rows_deleted"] == counts["rows_inserted"]
    assert {f: rows(work, f"SELECT * FROM staging.{f} WHERE concern_id = 'C2'") for f in FILES} == before
    assert rows(work, "SELECT * FROM staging.episodes_rejects WHERE concern_id = 'C2'") == rejects_before
    assert rows(work, "SELECT concern_id, episode_id FROM staging.episodes") == [("C1", "E1"), ("C2", "E1")]
    assert rows(work, "SELECT concern_id, source_row_number, reason, column_name FROM staging.episodes_rejects") == [
        ("C1", 2, "out_of_range", "age_at_start"), ("C2", 2, "duplicate_key", "episode_id")]


def test_the_pandera_check_reads_the_concerns_written_tonight(work):
    # a row no validation would write: C2's E1 twice in staging (its key is unique per concern)
    work.execute("INSERT INTO staging.episodes SELECT * FROM staging.episodes WHERE concern_id = 'C2'")
    failures, checked, scope = check_staging_table(work, EPISODES)  # no record of tonight: every row
    assert (checked, scope) == (4, "every row (full rebuild)")
    assert failures == ["episodes: columns ('concern_id', 'episode_id') not unique"]

    work.execute(PENDING_DDL)
    work.execute("INSERT INTO audit.pending_concerns VALUES ('C1', 'new delivery', false, NULL, NULL)")
    failures, checked, scope = check_staging_table(work, EPISODES)
    # only C1's 2 rows were written tonight; C2's were checked (and failed) when they were written
    assert (failures, checked) == ([], 2)
    assert scope.startswith("rows written tonight")
    failures, checked, _ = check_staging_table(work, ITEM_RESPONSES)
    assert (failures, checked) == ([], 2)


def test_concerns_are_checked_in_batches_of_whole_concerns():
    """Whole concerns in concern order, rows without a concern last (as DuckDB sorts), a batch of about
    the budget; a concern over it alone (lib/concern_batches.py: the pandera check, the audit trail, publish)."""
    assert batched({None: 1, "C1": 5, "C2": 6, "C3": 20, "C4": 1}, 10) == [["C1"], ["C2"], ["C3"], ["C4", None]]
    assert batched({}, 10) == []
    assert in_batch("c", ["C1", "C'2", None]) == "(c IN ('C1', 'C''2') OR c IS NULL)"
    assert in_batch("c", [None]) == "(c IS NULL)"
