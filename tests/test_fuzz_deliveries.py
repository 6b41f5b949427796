"""Issue 10, item 8b: damaged deliveries never stop another concern's night (seeded fuzzing).

Three fixed seeds, twelve damaged copies of the clean corpus delivery each (``bad_input/fuzz.py``),
all under one export root, each its own concern, and one clean concern beside them. One real
run of the nightly job must succeed and account for every delivery: either current, with
every file reconciled (rows read = loaded + quarantined), or rejected with a reason.
"""
from __future__ import annotations

import pytest

from bad_input import CLIENT_PREFIX, Draft
from bad_input.dbscan import find_text
from bad_input.fuzz import write_fuzzed
from conftest import Pipeline

SEEDS = (3, 5, 8)
PER_SEED = 12


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    pipeline = Pipeline(root / "exports", root / "data")
    deliveries = [d for seed in SEEDS for d in write_fuzzed(pipeline.export_dir, seed, PER_SEED)]
    Draft.clean("CLEAN").write(pipeline.export_dir / "CLEAN" / "2025-06-30")
    run = pipeline.run()
    con = run.warehouse() if run.workspace.warehouse_path.exists() else None
    yield run, con, deliveries
    if con is not None:
        con.close()


def _failures(run) -> list[str]:
    return [f"{e.step_key}: {e.step_failure_data.error.message[:300]}" for e in run.result.all_events
            if e.event_type_value == "STEP_FAILURE"]


def test_the_run_publishes_despite_every_damaged_delivery(fuzzed):
    run, con, deliveries = fuzzed
    assert run.success, _failures(run)
    statuses = dict(con.execute("SELECT delivery_id, status FROM audit.deliveries").fetchall())
    assert statuses["CLEAN/2025-06-30"] == "current"
    assert con.execute("SELECT count(*) FROM marts.episode_outcomes WHERE concern_id = 'CLEAN'").fetchone()[0] == 2
    # both kinds occur: deliveries that verify (their damage is read row by row) and deliveries rejected whole
    kinds = {statuses[d.delivery_id] for d in deliveries}
    assert kinds == {"current", "rejected"}, kinds


def test_every_damaged_delivery_is_reconciled_or_rejected_with_a_reason(fuzzed):
    run, con, deliveries = fuzzed
    assert run.success, _failures(run)
    for d in deliveries:
        status, reason = con.execute("SELECT status, reason FROM audit.deliveries WHERE delivery_id = ?",
                                     [d.delivery_id]).fetchone()
        if status == "rejected":
            assert reason, d
            continue
        assert status == "current", (d, status, reason)
        files = con.execute("SELECT file_name, rows_read, rows_loaded, rows_quarantined, reconciled "
                            "FROM audit.reconciliation WHERE delivery_id = ?", [d.delivery_id]).fetchall()
        assert len(files) == 5, (d, files)
        assert all(reconciled for *_, reconciled in files), (d, files)


def test_no_raw_client_id_survives_the_damage(fuzzed):
    run, con, _ = fuzzed
    assert run.success, _failures(run)
    assert find_text(con, [CLIENT_PREFIX]) == []
