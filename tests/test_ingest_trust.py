"""Issue 10, items 6 and 7: a changed pseudonym key and an export root without deliveries are refused.

Real `rom-pipeline run` / `rom-pipeline rekey` processes (tests/cli_runs.py) and the Dagster job in
process (tests/conftest.py), on two tiny concerns A and B (the bad-input corpus's clean delivery).
Fingerprints below are HMAC-SHA256 of the label "rom-pipeline/pseudonym-key-fingerprint/v1" under
the key, first 16 hex digits, computed once by hand.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from pathlib import Path

import pytest

from bad_input import Draft
from cli_runs import cli_env, connect_warehouse, run_cli, sha256_file
from conftest import Pipeline

KEY_ONE, FP_ONE = "key-one-0123456789abcdef", "ce86423d8be686cf"
KEY_TWO, FP_TWO = "key-two-0123456789abcdef", "87cf7ff7137ca5fe"
FP_DEMO = "3962a05745ffa0ef"
CLIENTS = ["CLIENT-A-1", "CLIENT-A-2", "CLIENT-B-1", "CLIENT-B-2"]


def hmac_hex(key: str, value: str) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def write_root(root: Path, concerns=("A", "B")) -> Path:
    for concern in concerns:
        Draft.clean(concern).write(root / concern / "2025-06-30")
    return root


def file_hashes(data: Path) -> dict[str, str]:
    return {name: sha256_file(data / name) for name in ("work.duckdb", "warehouse.duckdb")}


@pytest.fixture(scope="module")
def first_night(tmp_path_factory):
    """Concerns A and B published once with KEY_ONE (copy the data dir before running on it)."""
    base = tmp_path_factory.mktemp("trust")
    root = write_root(base / "exports")
    data = base / "data"
    result = run_cli(cli_env(root, data, key=KEY_ONE))
    assert result.returncode == 0, result.stdout + result.stderr
    return root, data


def copy_night(first_night, tmp_path: Path) -> tuple[Path, Path]:
    root, data = first_night
    shutil.copytree(root, tmp_path / "exports")
    shutil.copytree(data, tmp_path / "data", symlinks=True)
    return tmp_path / "exports", tmp_path / "data"


def published_pseudonyms(data: Path) -> set[str]:
    con = connect_warehouse(data / "warehouse.duckdb")
    try:
        return {r[0] for r in con.execute("SELECT client_pseudonym FROM staging.episodes").fetchall()}
    finally:
        con.close()


# --- item 6: the pseudonym key --------------------------------------------------------------------


def test_the_first_night_records_its_key_fingerprint_with_the_data(first_night):
    _, data = first_night
    assert published_pseudonyms(data) == {hmac_hex(KEY_ONE, c) for c in CLIENTS}
    con = connect_warehouse(data / "warehouse.duckdb")
    try:
        assert con.execute("SELECT delivery_id, key_fingerprint FROM audit.deliveries ORDER BY 1").fetchall() == [
            ("A/2025-06-30", FP_ONE), ("B/2025-06-30", FP_ONE)]
        assert con.execute("SELECT key_fingerprint, missing_concerns FROM audit.runs").fetchall() == [(FP_ONE, "[]")]
        assert con.execute("SELECT event, key_fingerprint, previous_fingerprint FROM audit.pseudonym_keys"
                           ).fetchall() == [("first_use", FP_ONE, None)]
    finally:
        con.close()
    # the key itself is nowhere in either database
    for name in ("work.duckdb", "warehouse.duckdb"):
        assert KEY_ONE.encode() not in (data / name).read_bytes()


def test_a_run_with_another_key_is_refused_before_anything_is_written(first_night, tmp_path):
    root, data = copy_night(first_night, tmp_path)
    Draft.clean("A").write(root / "A" / "2025-07-31")  # a re-delivery that would be pseudonymised with the new key
    before = file_hashes(data)
    result = run_cli(cli_env(root, data, key=KEY_TWO))
    assert result.returncode == 4, result.stdout + result.stderr
    assert "NOT started" in result.stderr
    assert f"fingerprint {FP_ONE} for 2 deliveries" in result.stderr
    assert f"this run's key: fingerprint {FP_TWO}" in result.stderr
    assert "rom-pipeline rekey" in result.stderr and "set the previous key again" in result.stderr
    assert KEY_TWO not in result.stdout + result.stderr and KEY_ONE not in result.stdout + result.stderr
    assert file_hashes(data) == before


def test_the_demo_key_then_a_real_key_on_one_data_dir_is_refused(tmp_path):
    root = write_root(tmp_path / "exports", concerns=("A",))
    data = tmp_path / "data"
    demo = run_cli(cli_env(root, data, key=None), "run", "--demo", "--no-reports")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    before = file_hashes(data)
    real = run_cli(cli_env(root, data, key=KEY_ONE))
    assert real.returncode == 4, real.stdout + real.stderr
    assert f"fingerprint {FP_DEMO} (the public demo key) for 1 delivery" in real.stderr
    assert file_hashes(data) == before


def test_rekey_reads_every_delivery_again_under_the_new_key_and_records_the_rotation(first_night, tmp_path):
    root, data = copy_night(first_night, tmp_path)
    result = run_cli(cli_env(root, data, key=KEY_TWO), "rekey", "--no-reports")
    assert result.returncode == 0, result.stdout + result.stderr
    assert published_pseudonyms(data) == {hmac_hex(KEY_TWO, c) for c in CLIENTS}   # none of KEY_ONE's left
    con = connect_warehouse(data / "warehouse.duckdb")
    try:
        runs = con.execute("SELECT run_id, key_fingerprint, refresh FROM audit.runs ORDER BY run_seq").fetchall()
        assert [(fp, refresh) for _, fp, refresh in runs] == [(FP_ONE, "full"), (FP_TWO, "full")]
        rotation = con.execute("SELECT event, previous_fingerprint, key_fingerprint, run_id, deliveries, recorded_at "
                               "FROM audit.pseudonym_keys ORDER BY recorded_at").fetchall()
        assert [r[:4] for r in rotation] == [("first_use", None, FP_ONE, runs[0][0]),
                                             ("rotation", FP_ONE, FP_TWO, runs[1][0])]
        assert json.loads(rotation[1][4]) == ["A/2025-06-30", "B/2025-06-30"]
        assert con.execute("SELECT DISTINCT key_fingerprint FROM audit.deliveries").fetchall() == [(FP_TWO,)]
    finally:
        con.close()
    # from now on the new key is the data's key: the old one is refused, the new one runs
    old = run_cli(cli_env(root, data, key=KEY_ONE))
    assert old.returncode == 4 and f"fingerprint {FP_TWO} for 2 deliveries" in old.stderr


def test_rekey_is_refused_when_a_delivery_cannot_be_read_again(first_night, tmp_path):
    root, data = copy_night(first_night, tmp_path)
    shutil.rmtree(root / "B")
    before = file_hashes(data)
    result = run_cli(cli_env(root, data, key=KEY_TWO), "rekey", "--no-reports")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "cannot rotate the pseudonym key: 1 current delivery is no longer under the export root" in result.stderr
    assert "B/2025-06-30" in result.stderr
    assert file_hashes(data) == before


def test_the_dagster_job_refuses_another_key_in_its_ingest_step(tmp_path):
    first = Pipeline(tmp_path / "exports", tmp_path / "data", key=KEY_ONE)
    write_root(first.export_dir, concerns=("A",))
    night = first.run()
    assert night.success
    with night.work() as con:
        raw_before = con.execute("SELECT count(*), min(client_id) FROM raw.episodes").fetchone()
    second = Pipeline(first.export_dir, first.data_dir, key=KEY_TWO).run()
    assert not second.success
    failures = [e for e in second.result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["ingest_deliveries"]
    message = failures[0].step_failure_data.user_failure_data.description
    assert f"fingerprint {FP_ONE} for 1 delivery" in message and "rom-pipeline rekey" in message
    with second.work() as con:
        assert con.execute("SELECT count(*), min(client_id) FROM raw.episodes").fetchone() == raw_before
        assert raw_before[1] in {hmac_hex(KEY_ONE, c) for c in CLIENTS}


# --- item 7: an export root without deliveries ----------------------------------------------------


def test_an_export_root_without_any_manifest_is_refused(first_night, tmp_path):
    _, data = copy_night(first_night, tmp_path)
    empty = tmp_path / "unmounted"
    (empty / "reference").mkdir(parents=True)       # a reference folder is not a delivery
    (empty / "reference" / "annual_reports.csv").write_text("concern_id\n")
    before = file_hashes(data)
    result = run_cli(cli_env(empty, data, key=KEY_ONE))
    assert result.returncode == 2, result.stdout + result.stderr
    assert (f"NOT started: the export root {empty} (ROM_EXPORT_DIR) holds no delivery: no manifest.json "
            "anywhere below it") in result.stderr
    assert file_hashes(data) == before


def test_the_dagster_job_fails_on_an_export_root_without_deliveries(tmp_path):
    pipeline = Pipeline(tmp_path / "exports", tmp_path / "data")   # exists, holds nothing
    run = pipeline.run()
    assert not run.success
    failures = [e for e in run.result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["ingest_deliveries"]
    assert "holds no delivery: no manifest.json anywhere below it" in \
        failures[0].step_failure_data.user_failure_data.description
    assert not pipeline.workspace.warehouse_path.exists()


def test_a_concern_whose_deliveries_disappeared_is_named_and_stays_published(first_night, tmp_path):
    root, data = copy_night(first_night, tmp_path)
    shutil.rmtree(root / "B")
    result = run_cli(cli_env(root, data, key=KEY_ONE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "!! MISSING from the export root: 1 concern(s) B: no manifest.json of theirs any more" in result.stdout
    con = connect_warehouse(data / "warehouse.duckdb")
    try:
        assert con.execute("SELECT missing_concerns FROM audit.runs ORDER BY run_seq").fetchall() == [("[]",), ('["B"]',)]
        assert con.execute("SELECT delivery_id, status FROM audit.deliveries ORDER BY 1").fetchall() == [
            ("A/2025-06-30", "current"), ("B/2025-06-30", "current")]
        assert con.execute("SELECT concern_id, count(*) FROM marts.episode_outcomes GROUP BY 1 ORDER BY 1"
                           ).fetchall() == [("A", 2), ("B", 2)]
    finally:
        con.close()
