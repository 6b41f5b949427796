"""Issue 6: the generated bad-input corpus, every case in one real pipeline run (each case its own concern)."""
from __future__ import annotations

import pytest

from bad_input import CASES, CLIENT_PREFIX, write_corpus
from bad_input.dbscan import find_text
from conftest import Pipeline


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    pipeline = Pipeline(root / "exports", root / "data")
    write_corpus(pipeline.export_dir)
    run = pipeline.run()
    con = run.warehouse() if run.workspace.warehouse_path.exists() else None
    yield run, con
    if con is not None:
        con.close()


def test_the_run_survives_the_whole_corpus(corpus):
    run, con = corpus
    assert run.success
    statuses = dict(con.execute("SELECT delivery_id, status FROM audit.deliveries").fetchall())
    expected = {c.delivery_id: c.status for c in CASES}
    expected |= {c.baseline_id: "current" for c in CASES if c.status == "rejected"}
    assert statuses == expected


def test_every_current_delivery_reconciles(corpus):
    _, con = corpus
    assert con.execute("SELECT delivery_id, file_name FROM audit.reconciliation WHERE NOT reconciled").fetchall() == []
    assert con.execute("SELECT count(DISTINCT delivery_id) FROM audit.reconciliation").fetchone()[0] == len(CASES)


def test_no_raw_client_id_in_either_database(corpus):
    run, con = corpus
    assert find_text(con, [CLIENT_PREFIX]) == []
    with run.work() as work:
        assert find_text(work, [CLIENT_PREFIX]) == []
        # the scan does find the prefix where it is: the raw files themselves
        assert work.execute("SELECT count(*) FROM raw.episodes").fetchone()[0] > 0


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_outcome(corpus, case):
    run, con = corpus
    status, reason = con.execute("SELECT status, reason FROM audit.deliveries WHERE delivery_id = ?",
                                 [case.delivery_id]).fetchone()
    assert status == case.status, reason
    quarantine = set(con.execute("SELECT file_name, source_row_number, reason FROM audit.quarantine "
                                 "WHERE delivery_id = ?", [case.delivery_id]).fetchall())
    if case.status == "rejected":
        for word in case.reason:
            assert word.lower() in reason.lower(), f"{word!r} not in {reason!r}"
        assert quarantine == set()
        with run.work() as work:   # nothing of a rejected delivery is kept
            assert work.execute("SELECT count(*) FROM raw.locations WHERE delivery_id = ?",
                                [case.delivery_id]).fetchone()[0] == 0
            assert work.execute("SELECT count(*) FROM audit.delivery_files WHERE delivery_id = ?",
                                [case.delivery_id]).fetchone()[0] == 0
        current = case.baseline_id   # the concern's previous delivery stays current, with all its rows
        assert con.execute("SELECT status FROM audit.deliveries WHERE delivery_id = ?", [current]).fetchone() == (
            "current",)
    else:
        assert reason is None
        assert quarantine == set(case.quarantine)
        current = case.delivery_id
    rows_loaded = dict(con.execute("SELECT file_name, rows_loaded FROM audit.reconciliation WHERE delivery_id = ?",
                                   [current]).fetchall())
    assert rows_loaded == case.loaded
    if case.check is not None and case.status == "current":
        case.check(con, case.delivery_id)
