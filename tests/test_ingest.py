"""Issue 2, from delivery to validated warehouse: what is loaded, superseded, rejected, and how often.

Every test runs the real nightly job on its own DuckDB files (tests/conftest.py)
and reads the published warehouse. Expected values are worked out by hand from
the rows written here.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bad_input.dbscan import find_text, snapshot
from rom_pipeline.defs.ingest.loader import ingest_deliveries
from conftest import TEST_KEY, Pipeline
from deliveries import (LOCATIONS, THERAPISTS, episode, items, measurement, scl90_items, write_delivery)
from schemas.contract import FILES

D = dt.date


def pseudonym(client_id: str) -> str:
    return hmac.new(TEST_KEY.encode(), client_id.encode(), hashlib.sha256).hexdigest()


def _rows(con, sql: str, *params) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


# --- a clean delivery, every row checked -------------------------------------------------------

CLEAN_EPISODES = [
    episode("E1", "7700123401"),                                                     # closed, completed
    episode("E2", "7700123402", location_id="L2", therapist_id="T2", start="2025-02-01", end=None,
            end_reason=None, sessions_attended="", age_at_start="4", sex="unknown"),  # open; bounds
    episode("E3", "7700123401", start="2025-05-01", end="2025-06-30", end_reason="dropout",
            care_type="specialised", diagnosis_group="stress_burnout", referrer="occupational_physician",
            sessions_attended="500", age_at_start="120", sex="other"),               # ends on the export date
]
CLEAN_MEASUREMENTS = [
    measurement("M1", "E1", "2025-01-10", 200, occasion="intake", session="0"),
    measurement("M2", "E1", "2025-04-10", 150.5, occasion="discharge", session="12"),
    measurement("M3", "E2", "2025-02-01", None),                         # total from its 90 items: 180
    measurement("M4", "E3", "2025-06-30", 0, instrument="HDRS"),         # on the export date; lower bound
    measurement("M5", "E3", "2025-05-02", 2.4, instrument="UBOS", occasion="followup"),
]


def write_clean(root: Path, concern_id: str = "C001") -> Path:
    return write_delivery(root, concern_id, "2025-06-30", {
        "locations": LOCATIONS, "therapists": THERAPISTS, "episodes": CLEAN_EPISODES,
        "measurements": CLEAN_MEASUREMENTS, "item_responses": items("M3", scl90_items(180))})


PRIVATE_IDS = ["7700123401", "7700123402", "7700555503", "7700555504", "7700555505", "7700666601", "7700666602"]


def write_privacy_cases(root: Path) -> None:
    """Client ids in an invalid row, an unreadable row and a header-less file (concerns C002, C003)."""
    episodes = (b"episode_id;client_id;location_id;therapist_id;care_type;diagnosis_group;referrer;start_date;"
                b"end_date;end_reason;sessions_attended;age_at_start;sex\n"
                b"E1;7700555503;L1;T1;basic;depression;gp;2025-01-10;;;;40;female\n"
                b"E2;7700555504;L1;T1;basic;depression;gp;2025-13-10;;;;40;female\n"      # invalid date
                b"E3;7700555505;L1;T1;basic;depression;gp;2025-01-10;;;;40;female;x\n")   # malformed
    write_delivery(root, "C002", "2025-06-30", {
        "locations": LOCATIONS, "therapists": THERAPISTS, "episodes": episodes, "measurements": []})
    headerless = (b"E1;7700666601;L1;T1;basic;depression;gp;2025-01-10;;;;40;female\n"
                  b"E2;7700666602;L1;T1;basic;depression;gp;2025-01-10;;;;40;female\n")
    write_delivery(root, "C003", "2025-06-30", {
        "locations": LOCATIONS, "therapists": THERAPISTS, "episodes": headerless, "measurements": []})


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """One run: the clean delivery C001, plus C002 and C003 for the privacy scan (never mixed in C001)."""
    root = tmp_path_factory.mktemp("clean")
    pipeline = Pipeline(root / "exports", root / "data")
    folder = write_clean(pipeline.export_dir)
    write_privacy_cases(pipeline.export_dir)
    run = pipeline.run()
    assert run.success
    with run.warehouse() as con:
        yield run, con, folder


def test_clean_delivery_is_current_with_its_manifest(clean):
    _, con, folder = clean
    assert _rows(con, "SELECT delivery_id, concern_id, export_id, export_date, status, reason, contract_version, "
                      "concern_name, source_system, rows_read, manifest_sha256 FROM audit.deliveries "
                      "WHERE concern_id = 'C001'") == [
        ("C001/2025-06-30", "C001", "C001-2025-06-30", D(2025, 6, 30), "current", None, "1.0", "Concern C001",
         "tests", 2 + 2 + 3 + 5 + 90, hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest())]
    files = _rows(con, "SELECT file_name, logical_file, format, sha256, rows_in_manifest, rows_read, "
                       "rows_rejected_at_read, read_path FROM audit.delivery_files "
                       "WHERE delivery_id = 'C001/2025-06-30' ORDER BY file_name")
    expected_rows = {"episodes": 3, "item_responses": 90, "locations": 2, "measurements": 5, "therapists": 2}
    assert files == [(f"{name}.csv", name, "csv", hashlib.sha256((folder / f"{name}.csv").read_bytes()).hexdigest(),
                      n, n, 0, "pyarrow") for name, n in sorted(expected_rows.items())]


def test_clean_delivery_loads_every_row_typed(clean):
    _, con, _ = clean
    delivery = "C001/2025-06-30"
    assert _rows(con, "SELECT * FROM staging.locations WHERE concern_id = 'C001'") == [
        ("C001", delivery, 1, "L1", "Utrecht", "midden"), ("C001", delivery, 2, "L2", "Nijmegen", "oost")]
    assert _rows(con, "SELECT * FROM staging.therapists WHERE concern_id = 'C001'") == [
        ("C001", delivery, 1, "T1", "L1", "psychologist", False),
        ("C001", delivery, 2, "T2", "L2", "psychotherapist", True)]
    a, b = pseudonym("7700123401"), pseudonym("7700123402")
    # therapist_id is NULL in the shared warehouse: beside the measurements it would give therapist results
    assert _rows(con, "SELECT * FROM staging.episodes WHERE concern_id = 'C001'") == [
        ("C001", delivery, 1, "E1", a, "L1", None, "basic", "depression", "gp", D(2025, 1, 10), D(2025, 4, 10),
         "completed", 12, 40, "female"),
        ("C001", delivery, 2, "E2", b, "L2", None, "basic", "depression", "gp", D(2025, 2, 1), None, None,
         None, 4, "unknown"),
        ("C001", delivery, 3, "E3", a, "L1", None, "specialised", "stress_burnout", "occupational_physician",
         D(2025, 5, 1), D(2025, 6, 30), "dropout", 500, 120, "other")]
    assert _rows(con, "SELECT * FROM staging.measurement_scores WHERE concern_id = 'C001'") == [
        ("C001", delivery, 1, "M1", "E1", "SCL90", D(2025, 1, 10), 0, "intake", 200.0, "delivered", None),
        ("C001", delivery, 2, "M2", "E1", "SCL90", D(2025, 4, 10), 12, "discharge", 150.5, "delivered", None),
        ("C001", delivery, 3, "M3", "E2", "SCL90", D(2025, 2, 1), None, None, 180.0, "items", 90),
        ("C001", delivery, 4, "M4", "E3", "HDRS", D(2025, 6, 30), None, None, 0.0, "delivered", None),
        ("C001", delivery, 5, "M5", "E3", "UBOS", D(2025, 5, 2), None, "followup", 2.4, "delivered", None)]
    responses = scl90_items(180)
    assert _rows(con, "SELECT measurement_id, item, response, source_row_number FROM staging.item_responses "
                      "WHERE concern_id = 'C001' ORDER BY item") == [("M3", i, r, i) for i, r in enumerate(responses, start=1)]


def test_clean_delivery_quarantines_nothing_and_reconciles(clean):
    _, con, _ = clean
    assert _rows(con, "SELECT * FROM audit.quarantine WHERE concern_id = 'C001'") == []
    assert _rows(con, "SELECT file_name, rows_read, rows_loaded, rows_quarantined, reconciled "
                      "FROM audit.reconciliation WHERE concern_id = 'C001' ORDER BY file_name") == [
        ("episodes.csv", 3, 3, 0, True), ("item_responses.csv", 90, 90, 0, True),
        ("locations.csv", 2, 2, 0, True), ("measurements.csv", 5, 5, 0, True),
        ("therapists.csv", 2, 2, 0, True)]


def test_client_pseudonym_is_hmac_sha256_of_the_client_id(clean):
    _, con, _ = clean
    # computed independently: HMAC-SHA256(key, client_id) as lower-case hex
    assert pseudonym("7700123401") == hmac.new(b"test-key-0123456789abcdef", b"7700123401", "sha256").hexdigest()
    assert _rows(con, "SELECT episode_id, client_pseudonym FROM staging.episodes WHERE concern_id = 'C001' "
                      "ORDER BY 1") == [
        ("E1", pseudonym("7700123401")), ("E2", pseudonym("7700123402")), ("E3", pseudonym("7700123401"))]


# --- privacy: no raw client id anywhere ---------------------------------------------------------

def test_no_raw_client_id_anywhere_even_in_rejected_and_quarantined_rows(clean):
    """Client ids in valid rows, invalid rows, unreadable rows and a header-less file: none survives raw."""
    run, con, _ = clean
    assert _rows(con, "SELECT delivery_id, status FROM audit.deliveries ORDER BY 1") == [
        ("C001/2025-06-30", "current"), ("C002/2025-06-30", "current"), ("C003/2025-06-30", "rejected")]
    assert "none of the contract's columns" in _rows(
        con, "SELECT reason FROM audit.deliveries WHERE concern_id = 'C003'")[0][0]
    # the invalid and the malformed row are quarantined, so raw rows did reach the quarantine
    assert _rows(con, "SELECT source_row_number, reason FROM audit.quarantine WHERE concern_id = 'C002' "
                      "ORDER BY 1") == [(2, "invalid_type"), (3, "malformed_row")]
    assert find_text(con, PRIVATE_IDS) == []
    with run.work() as work:
        assert find_text(work, PRIVATE_IDS) == []
        assert _rows(work, "SELECT count(*) FROM raw.episodes") == [(3 + 2,)]   # stored, but pseudonymised
    # nor in anything Dagster recorded (metadata, logs)
    events = "\n".join(str(e) for e in run.result.all_events)
    assert [i for i in PRIVATE_IDS if i in events] == []


# --- rejection keeps the previous delivery; a newer one supersedes -----------------------------

def _basic(root: Path, export_date: str, *, first_episode: str = "E1", **kw) -> Path:
    episodes = [episode(first_episode, f"client-{first_episode}"), episode("E2", "client-2")]
    measurements = [measurement("M1", first_episode, "2025-01-10", 200), measurement("M2", "E2", "2025-03-01", 150)]
    return write_delivery(root, "C001", export_date, {
        "locations": LOCATIONS, "therapists": THERAPISTS, "episodes": episodes, "measurements": measurements}, **kw)


# The run log grows by one run every night by design; everything else published must not change.
RUN_LOG = ("audit.runs", "audit.run_inputs")


def _published(run) -> dict:
    with run.warehouse() as con:
        tables = snapshot(con)
    assert "audit.deliveries" in tables and "staging.episodes" in tables
    return {name: rows for name, rows in tables.items() if name not in RUN_LOG}


def test_rejections_keep_the_previous_delivery_and_a_newer_one_supersedes(pipeline):
    root = pipeline.export_dir
    _basic(root, "2025-06-29")
    first = pipeline.run()
    assert first.success
    before = _published(first)

    # night 2: one delivery with a wrong checksum, one with a wrong row count
    _basic(root, "2025-06-30", first_episode="E7", file_overrides={"episodes": {"sha256": "ab" * 32}})
    _basic(root, "2025-07-01", first_episode="E8", file_overrides={"measurements": {"rows": 3}})
    run = pipeline.run()
    assert run.success
    with run.warehouse() as con:
        rows = _rows(con, "SELECT delivery_id, status, reason FROM audit.deliveries ORDER BY 1")
        assert [r[:2] for r in rows] == [("C001/2025-06-29", "current"), ("C001/2025-06-30", "rejected"),
                                         ("C001/2025-07-01", "rejected")]
        assert rows[0][2] is None
        assert rows[1][2].startswith("episodes.csv: sha256 ") and "does not match" in rows[1][2]
        assert rows[2][2] == "measurements.csv: the manifest says 3 rows, the file has 2"
        assert _rows(con, "SELECT episode_id FROM staging.episodes ORDER BY 1") == [("E1",), ("E2",)]
    after = _published(run)
    # apart from the two rejected rows in audit.deliveries (and the run log), nothing published changed
    after["audit.deliveries"] = [r for r in after["audit.deliveries"] if r[5] != "rejected"]
    assert after == before
    with run.work() as con:
        for table in ("raw.locations", "raw.episodes", "raw.measurements", "audit.delivery_files"):
            assert _rows(con, f"SELECT count(*) FROM {table} WHERE delivery_id <> 'C001/2025-06-29'") == [(0,)]

    # night 3: a good, newer delivery supersedes the current one
    # (the two rejected deliveries stay in the export root: read again, they are rejected again)
    _basic(root, "2025-07-02", first_episode="E5")
    run = pipeline.run()
    assert run.success
    with run.warehouse() as con:
        assert _rows(con, "SELECT delivery_id, status, reason FROM audit.deliveries WHERE status <> 'rejected' "
                          "ORDER BY 1") == [
            ("C001/2025-06-29", "superseded", "superseded by C001/2025-07-02"),
            ("C001/2025-07-02", "current", None)]
        assert _rows(con, "SELECT delivery_id, episode_id FROM staging.episodes ORDER BY 2") == [
            ("C001/2025-07-02", "E2"), ("C001/2025-07-02", "E5")]
        assert _rows(con, "SELECT DISTINCT delivery_id FROM staging.measurement_scores") == [("C001/2025-07-02",)]
        assert _rows(con, "SELECT DISTINCT delivery_id FROM audit.reconciliation") == [("C001/2025-07-02",)]
    with run.work() as con:   # the superseded delivery's rows are not kept (its audit rows are)
        assert _rows(con, "SELECT count(*) FROM raw.episodes WHERE delivery_id = 'C001/2025-06-29'") == [(0,)]

    # night 4: an older export that arrives late never replaces the newer one
    _basic(root, "2025-06-28", first_episode="E0")
    run = pipeline.run()
    assert run.success
    with run.warehouse() as con:
        assert _rows(con, "SELECT delivery_id, status FROM audit.deliveries WHERE status <> 'rejected' "
                          "ORDER BY 1") == [
            ("C001/2025-06-28", "superseded"), ("C001/2025-06-29", "superseded"), ("C001/2025-07-02", "current")]
        assert _rows(con, "SELECT episode_id FROM staging.episodes ORDER BY 1") == [("E2",), ("E5",)]


def test_a_rejected_delivery_is_read_again_once_its_files_are_complete(pipeline):
    """A run that starts while a delivery is still being copied rejects it; the next run must not."""
    folder = _basic(pipeline.export_dir, "2025-06-30")
    kept = folder.parent / "measurements.csv.copying"
    shutil.move(folder / "measurements.csv", kept)
    run = pipeline.run()
    assert run.success
    with run.warehouse() as con:
        assert _rows(con, "SELECT status, reason FROM audit.deliveries") == [
            ("rejected", "file 'measurements.csv' listed in the manifest is missing")]
    shutil.move(kept, folder / "measurements.csv")
    run = pipeline.run()
    assert run.success
    with run.warehouse() as con:
        assert _rows(con, "SELECT status, reason FROM audit.deliveries") == [("current", None)]
        assert _rows(con, "SELECT count(*) FROM staging.measurement_scores") == [(2,)]


def test_previous_delivery_comes_back_with_its_rows_when_the_newer_one_turns_bad(pipeline):
    """The newest delivery is rewritten in place and no longer verifies: the one before is current again."""
    _basic(pipeline.export_dir, "2025-06-29")
    newer = _basic(pipeline.export_dir, "2025-06-30", first_episode="E5")
    assert pipeline.run().success
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["files"]["episodes.csv"]["rows"] = 9
    (newer / "manifest.json").write_text(json.dumps(manifest))
    run = pipeline.run()
    assert run.success
    with run.warehouse() as con:
        assert _rows(con, "SELECT delivery_id, status FROM audit.deliveries ORDER BY 1") == [
            ("C001/2025-06-29", "current"), ("C001/2025-06-30", "rejected")]
        assert _rows(con, "SELECT episode_id FROM staging.episodes ORDER BY 1") == [("E1",), ("E2",)]
        assert _rows(con, "SELECT count(*) FROM audit.reconciliation WHERE NOT reconciled") == [(0,)]


def test_an_unreadable_manifest_is_rejected_not_a_crash(tmp_path):
    """Loader level (the whole run still trips over it elsewhere, see docs/reliability.md)."""
    (tmp_path / "C001" / "broken" / "manifest.json").mkdir(parents=True)     # a directory, not a file
    _basic(tmp_path, "2025-06-30")
    with duckdb.connect() as con:
        summary = ingest_deliveries(con, tmp_path, TEST_KEY.encode(), log=lambda message: None)
        assert summary.rejected == {"C001/broken": "manifest.json cannot be read"}
        assert summary.loaded == ["C001/2025-06-30"]
        assert _rows(con, "SELECT delivery_id, status FROM audit.deliveries ORDER BY 1") == [
            ("C001/2025-06-30", "current"), ("C001/broken", "rejected")]


def test_a_loaded_batch_is_not_held_until_the_delivery_commits(tmp_path, monkeypatch):
    """A delivery loads in one transaction, batch by batch. Each batch's Arrow memory is released
    once inserted: with con.register(), the dropped views stayed in the transaction's catalog until
    commit and held every batch, 2.2 GiB outside DuckDB's memory limit at tier L (issue 11)."""
    import rom_pipeline.defs.ingest.loader as loader
    import rom_pipeline.lib.delivered_files as delivered_files

    monkeypatch.setattr(delivered_files, "CSV_BLOCK_BYTES", 8 << 10)   # many batches from a small file
    measurements = [measurement(f"M{i}", "E1", "2025-01-10", None) for i in range(1000)]
    write_delivery(tmp_path, "C001", "2025-06-30", {
        "locations": LOCATIONS, "therapists": THERAPISTS, "episodes": [episode("E1", "7700123401")],
        "measurements": measurements,
        "item_responses": [row for i in range(1000) for row in items(f"M{i}", scl90_items(180))]})
    batch_bytes, held_after_file = [], {}
    read = loader.read_delivered_file
    before = pa.total_allocated_bytes()   # what the worker's earlier tests hold, if anything

    def watched(path, fmt, columns, stats, restart):
        for batch in read(path, fmt, columns, stats, restart):
            batch_bytes.append(batch.nbytes)
            yield batch
        held_after_file[path.name] = pa.total_allocated_bytes() - before   # every batch of the file inserted

    monkeypatch.setattr(loader, "read_delivered_file", watched)
    with duckdb.connect() as con:
        summary = ingest_deliveries(con, tmp_path, TEST_KEY.encode(), log=lambda message: None)
        assert summary.loaded == ["C001/2025-06-30"]
        assert _rows(con, "SELECT count(*) FROM raw.item_responses") == [(90_000,)]
    assert len(batch_bytes) > 100
    assert held_after_file["item_responses.csv"] < sum(batch_bytes) / 10, (held_after_file, sum(batch_bytes))


# --- idempotence -------------------------------------------------------------------------------

def test_running_twice_or_rereading_a_delivery_changes_nothing(pipeline):
    root = pipeline.export_dir
    _basic(root, "2025-06-29")
    _basic(root, "2025-06-30", first_episode="E5")                                   # supersedes
    _basic(root, "2025-07-01", first_episode="E6", file_overrides={"episodes": {"rows": 5}})   # rejected
    bad = [episode("E1", "client-y"), episode("E1", "client-x", start="2025-13-01"),   # row 2: 2 reasons
           episode("E3", "client-z", therapist_id="T9")]
    write_delivery(root, "C002", "2025-06-30", {
        "locations": LOCATIONS, "therapists": THERAPISTS, "episodes": bad,
        "measurements": [measurement("M1", "E1", "2025-02-01", 500), measurement("M2", "E1", "2025-02-01", None)],
        "item_responses": items("M2", scl90_items(200, blanks=10))})
    first = pipeline.run()
    assert first.success
    one = _published(first)
    # the defects are part of what must not change: E1 twice (once with a bad date), T9 unknown,
    # M1 total 500, M2 with 10 of 90 items blank
    assert [(r[2], r[3], r[5]) for r in one["audit.quarantine"]] == [
        ("episodes.csv", 2, "duplicate_key"), ("episodes.csv", 2, "invalid_type"),
        ("episodes.csv", 3, "unknown_reference"), ("measurements.csv", 1, "out_of_range"),
        ("measurements.csv", 2, "too_many_missing_items")]
    assert sorted(r[5] for r in one["audit.deliveries"]) == ["current", "current", "rejected", "superseded"]

    second = pipeline.run()
    assert second.success
    assert _published(second) == one

    # force a re-read of every delivery (as if its manifest were new): still the same tables
    with duckdb.connect(str(pipeline.workspace.work_db_path)) as con:
        con.execute("UPDATE audit.deliveries SET manifest_sha256 = 'forget me' WHERE delivery_id <> 'reference'")
    third = pipeline.run()
    assert third.success
    assert _published(third) == one


# --- several concerns --------------------------------------------------------------------------

def test_concerns_with_the_same_ids_load_independently(pipeline):
    root = pipeline.export_dir
    write_delivery(root, "C001", "2025-06-30", {
        "locations": LOCATIONS, "therapists": THERAPISTS,
        "episodes": [episode("E1", "a1"), episode("E2", "a2", location_id="L2", therapist_id="T2")],
        "measurements": [measurement("M1", "E1", "2025-01-10", 200), measurement("M2", "E2", "2025-02-10", 300)]})
    write_delivery(root, "C002", "2025-06-29", {
        "locations": [{"location_id": "L1", "location_name": "Groningen", "region": "noord"}],
        "therapists": [{"therapist_id": "T1", "location_id": "L1", "profession": "psychiatrist", "is_trainee": "0"}],
        # E2 names T2 and L2, which exist in C001 only
        "episodes": [episode("E1", "b1", start="2025-03-01", end=None, end_reason=None),
                     episode("E2", "b2", location_id="L2", therapist_id="T2")],
        "measurements": [measurement("M1", "E1", "2025-03-01", None), measurement("M2", "E2", "2025-03-01", 100)],
        "item_responses": items("M1", scl90_items(250))})
    # C003 delivers twice on one day: the later exported_at (compared as instants) is current, not the
    # later folder name
    basic = {"locations": LOCATIONS, "therapists": THERAPISTS, "episodes": [], "measurements": []}
    write_delivery(root, "C003", "2025-06-30", basic, subdir="b-morning", exported_at="2025-06-30T09:00:00+02:00")
    write_delivery(root, "C003", "2025-06-30", basic, subdir="a-evening", exported_at="2025-06-30T08:30:00+00:00")
    run = pipeline.run()
    assert run.success
    with run.warehouse() as con:
        # one concern's delivery never supersedes another's
        assert _rows(con, "SELECT delivery_id, status FROM audit.deliveries ORDER BY 1") == [
            ("C001/2025-06-30", "current"), ("C002/2025-06-29", "current"),
            ("C003/a-evening", "current"), ("C003/b-morning", "superseded")]
        assert _rows(con, "SELECT concern_id, location_id, location_name FROM staging.locations "
                          "WHERE concern_id < 'C003' ORDER BY 1, 2") == [
            ("C001", "L1", "Utrecht"), ("C001", "L2", "Nijmegen"), ("C002", "L1", "Groningen")]
        assert _rows(con, "SELECT concern_id, episode_id, location_id, start_date FROM staging.episodes "
                          "ORDER BY 1, 2") == [
            ("C001", "E1", "L1", D(2025, 1, 10)), ("C001", "E2", "L2", D(2025, 1, 10)),
            ("C002", "E1", "L1", D(2025, 3, 1))]
    with run.work() as work:  # therapist ids are not published in a shared warehouse; they resolve per concern
        assert _rows(work, "SELECT concern_id, episode_id, therapist_id FROM staging.episodes "
                           "WHERE concern_id < 'C003' ORDER BY 1, 2") == [
            ("C001", "E1", "T1"), ("C001", "E2", "T2"), ("C002", "E1", "T1")]
    with run.warehouse() as con:
        assert _rows(con, "SELECT concern_id, file_name, source_row_number, reason, column_name "
                          "FROM audit.quarantine ORDER BY ALL") == [
            ("C002", "episodes.csv", 2, "unknown_reference", "location_id"),
            ("C002", "episodes.csv", 2, "unknown_reference", "therapist_id"),
            ("C002", "measurements.csv", 2, "parent_quarantined", "episode_id")]  # E2 itself quarantined
        # M1 of C002 is scored from C002's items only; M1 of C001 keeps its delivered total
        assert _rows(con, "SELECT concern_id, measurement_id, total_score, score_source "
                          "FROM staging.measurement_scores ORDER BY 1, 2") == [
            ("C001", "M1", 200.0, "delivered"), ("C001", "M2", 300.0, "delivered"),
            ("C002", "M1", 250.0, "items")]
        assert _rows(con, "SELECT count(*) FROM audit.reconciliation WHERE NOT reconciled") == [(0,)]


# --- Parquet -----------------------------------------------------------------------------------

PARQUET_TYPES = {"date": pa.date32(), "int32": pa.int32(), "float64": pa.float64(), "boolean": pa.bool_()}


def write_parquet_delivery(root: Path, concern_id: str, export_date: str, files: dict[str, list[dict]]) -> Path:
    """The same rows as write_delivery, as typed Parquet files (dates, integers, decimals, booleans)."""
    folder = root / concern_id / export_date
    folder.mkdir(parents=True)
    entries = {}
    for logical, rows in files.items():
        schema = FILES[logical]
        arrays, fields = [], []
        for name, col in schema.columns.items():
            kind = str(col.dtype)
            typ = PARQUET_TYPES.get(kind, pa.string())
            values = [r.get(name) or None for r in rows]
            if kind == "date":
                values = [None if v is None else dt.date.fromisoformat(v) for v in values]
            elif kind == "int32":
                values = [None if v is None else int(v) for v in values]
            elif kind == "float64":
                values = [None if v is None else float(v) for v in values]
            elif kind == "boolean":
                values = [None if v is None else v == "1" for v in values]
            arrays.append(pa.array(values, type=typ))
            fields.append(name)
        path = folder / f"{logical}.parquet"
        pq.write_table(pa.Table.from_arrays(arrays, names=fields), path)
        entries[path.name] = {"rows": len(rows), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps({
        "contract_version": "1.0", "export_id": f"{concern_id}-{export_date}", "concern_id": concern_id,
        "exported_at": f"{export_date}T23:00:00+02:00", "files": entries}))
    return folder


def test_parquet_delivery_loads_the_same_as_csv(pipeline):
    files = {
        "locations": LOCATIONS, "therapists": THERAPISTS,
        "episodes": CLEAN_EPISODES + [episode("E4", "7700123404", start="2025-02-30"),       # invalid date (csv)
                                      episode("E5", "7700123405", age_at_start="3")],        # out of range
        "measurements": CLEAN_MEASUREMENTS + [measurement("M6", "E1", "2025-02-01", 451)],
        "item_responses": items("M3", scl90_items(180, blanks=9)),
    }
    write_delivery(pipeline.export_dir, "CSV", "2025-06-30", files)
    parquet_files = dict(files, episodes=CLEAN_EPISODES + [episode("E5", "7700123405", age_at_start="3")])
    write_parquet_delivery(pipeline.export_dir, "PQ", "2025-06-30", parquet_files)   # a date cannot be 02-30
    write_blank_string_parquet(pipeline.export_dir)
    run = pipeline.run()
    assert run.success
    with run.warehouse() as con:
        assert _rows(con, "SELECT file_name, format, read_path FROM audit.delivery_files "
                          "WHERE delivery_id = 'PQ/2025-06-30' ORDER BY 1")[:2] == [
            ("episodes.parquet", "parquet", "parquet"), ("item_responses.parquet", "parquet", "parquet")]
        for table in ("locations", "therapists", "episodes", "measurement_scores", "item_responses"):
            by = {c: _rows(con, f"SELECT * EXCLUDE (concern_id, delivery_id, source_row_number) "
                               f"FROM staging.{table} WHERE concern_id = ? ORDER BY ALL", c)
                  for c in ("CSV", "PQ")}
            assert by["PQ"] == by["CSV"], table
            assert by["PQ"]
        quarantine = {c: _rows(con, "SELECT regexp_replace(file_name, '[.].*', ''), source_row_number, reason, "
                                    "column_name FROM audit.quarantine WHERE concern_id = ? ORDER BY ALL", c)
                      for c in ("CSV", "PQ")}
        assert quarantine["CSV"] == [("episodes", 4, "invalid_type", "start_date"),
                                     ("episodes", 5, "out_of_range", "age_at_start"),
                                     ("measurements", 6, "out_of_range", "total_score")]
        assert quarantine["PQ"] == [("episodes", 4, "out_of_range", "age_at_start"),
                                    ("measurements", 6, "out_of_range", "total_score")]
        # M3: 81 of 90 items answered, sum 171 (180 minus nine 1s): round(171 * 90 / 81) = 190
        assert _rows(con, "SELECT concern_id, total_score, score_source, items_answered "
                          "FROM staging.measurement_scores WHERE measurement_id = 'M3' ORDER BY 1") == [
            ("CSV", 190.0, "items_prorated", 81), ("PQ", 190.0, "items_prorated", 81)]
        assert _rows(con, "SELECT count(*) FROM audit.reconciliation WHERE NOT reconciled") == [(0,)]
        # '' in a Parquet string column is NULL, as an empty CSV field is
        assert _rows(con, "SELECT location_id, region FROM staging.locations WHERE concern_id = 'PQB'") == [
            ("L1", None)]
        assert _rows(con, "SELECT source_row_number, reason, column_name FROM audit.quarantine "
                          "WHERE concern_id = 'PQB'") == [(2, "missing_value", "location_name")]


def write_blank_string_parquet(root: Path) -> None:
    """Concern PQB: locations.parquet written with '' (not NULL) for a blank region and a blank name."""
    rows = {"locations": [], "episodes": [], "measurements": [],
            "therapists": [{"therapist_id": "T1", "location_id": "L1", "profession": "other", "is_trainee": "0"}]}
    folder = write_parquet_delivery(root, "PQB", "2025-06-30", rows)
    pq.write_table(pa.table({"location_id": ["L1", "L2"], "location_name": ["Utrecht", ""], "region": ["", "oost"]}),
                   folder / "locations.parquet")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["locations.parquet"] = {
        "rows": 2, "sha256": hashlib.sha256((folder / "locations.parquet").read_bytes()).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest))
