"""A clean hand-written delivery goes all the way to the published warehouse."""
from deliveries import basic_delivery


def test_clean_delivery_loads_completely_and_publishes(pipeline):
    basic_delivery(pipeline.export_dir)
    run = pipeline.run()
    assert run.success
    con = run.warehouse()
    assert con.execute("SELECT status FROM audit.deliveries").fetchall() == [("current",)]
    counts = dict(con.execute("SELECT file_name, rows_loaded FROM audit.reconciliation").fetchall())
    assert counts == {"locations.csv": 2, "therapists.csv": 2, "episodes.csv": 2,
                      "measurements.csv": 4, "item_responses.csv": 90}
    assert con.execute("SELECT count(*) FROM audit.quarantine").fetchone()[0] == 0
    # M3 was delivered without a total: its 90 items sum to 180
    assert con.execute("SELECT total_score, score_source FROM staging.measurement_scores "
                       "WHERE measurement_id = 'M3'").fetchone() == (180.0, "items")


def test_a_manifest_that_cannot_be_read_rejects_its_delivery_not_the_run(pipeline):
    """A folder named manifest.json (unreadable as a file) rejects that delivery; the others publish."""
    basic_delivery(pipeline.export_dir)
    (pipeline.export_dir / "C002" / "2025-06-30" / "manifest.json").mkdir(parents=True)
    run = pipeline.run()
    assert run.success
    con = run.warehouse()
    statuses = dict(con.execute("SELECT delivery_id, status FROM audit.deliveries").fetchall())
    assert statuses == {"C001/2025-06-30": "current", "C002/2025-06-30": "rejected"}
