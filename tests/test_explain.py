"""`rom-pipeline explain`: a figure of night 1, changed in night 2, is explained correctly for both."""
import hashlib
import json

import pytest
from nights import NIGHT1_L1, NIGHT1_L1_MEAN, NIGHT2_L1, NIGHT2_L1_MEAN

from rom_pipeline.cli import main
from rom_pipeline.explain import ExplainError, explain, open_database, render_text

FIGURE = dict(table="marts.indicators", concern="C001", level="location", unit="L1", period_type="year",
              period="2025", indicator="mean_improvement")


def _explain(two_nights, db="warehouse", **overrides) -> dict:
    con = open_database(db, two_nights.pipeline.data_dir)
    try:
        return explain(con, **{**FIGURE, **overrides})
    finally:
        con.close()


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_latest_figure_is_explained_by_its_episodes(two_nights):
    doc = _explain(two_nights)
    assert doc["run"]["run_id"] == two_nights.run_ids[1]
    assert doc["value"] == pytest.approx(NIGHT2_L1_MEAN) and doc["n"] == 5
    counted = {e["episode_id"]: e for e in doc["episodes"] if e["counts"]}
    assert set(counted) == set(NIGHT2_L1)
    for episode_id, expected in NIGHT2_L1.items():
        assert counted[episode_id]["pct_improvement"] == pytest.approx(expected)
        assert counted[episode_id]["contribution"] == pytest.approx(expected)
    # the contributing episodes give the figure back
    assert sum(e["contribution"] for e in counted.values()) / len(counted) == pytest.approx(doc["value"], rel=1e-12)
    assert doc["reproduced"] == {"n": 5, "value": pytest.approx(NIGHT2_L1_MEAN), "matches": True}
    assert counted["E2"]["pre_measurement_id"] == "M3" and counted["E2"]["post_score"] == 130
    assert counted["E3"]["improvement_rule"] == "formula"
    assert doc["parameters"]["norm_score"] == 118 and doc["parameters"]["min_n"] == 1
    assert "pct_improvement" in doc["formula"] and doc["run"]["code_version"]
    files = {d["file_name"]: d for d in doc["deliveries"]}
    assert {d["delivery_id"] for d in doc["deliveries"]} == {"C001/2025-07-31"}
    assert files["episodes.csv"]["sha256"] == _sha(two_nights.pipeline.export_dir / "C001/2025-07-31/episodes.csv")
    assert doc["quarantined_rows"] == []  # night 2's delivery is clean


def test_night_1_figure_is_explained_as_published_then_after_night_2_changed_it(two_nights):
    doc = _explain(two_nights, run=two_nights.run_ids[0][:8])  # a run-id prefix, as Dagster shows it
    assert doc["run"]["run_id"] == two_nights.run_ids[0]
    assert doc["value"] == pytest.approx(NIGHT1_L1_MEAN) and doc["n"] == 3
    counted = [e for e in doc["episodes"] if e["counts"]]
    assert {e["episode_id"] for e in counted} == set(NIGHT1_L1)
    assert sum(e["contribution"] for e in counted) / len(counted) == pytest.approx(doc["value"], rel=1e-12)
    assert doc["reproduced"]["matches"] is True
    e4 = next(e for e in doc["episodes"] if e["episode_id"] == "E4")
    assert not e4["counts"] and e4["left_out_because"] == "incomplete: no post-score"
    assert e4["pre_measurement_id"] == "M7" and e4["post_measurement_id"] is None
    # it came from night 1's delivery, which night 2 superseded
    assert {d["delivery_id"] for d in doc["deliveries"]} == {"C001/2025-06-30"}
    night1_files = two_nights.night1_dir / "exports" / "C001" / "2025-06-30"
    for d in doc["deliveries"]:
        assert d["sha256"] == _sha(night1_files / d["file_name"])
    # E4's post-score was quarantined: left out, and why
    assert [(q["file_name"], q["source_row_number"], q["reason"], q["raw_row"]["measurement_id"])
            for q in doc["quarantined_rows"]] == [("measurements.csv", 8, "out_of_range", "M8")]


def test_other_aggregations_levels_and_the_work_database(two_nights):
    by_locations = _explain(two_nights, level="concern", unit="C001", aggregation="mean_of_locations")
    assert by_locations["reproduced"]["matches"] is True
    averaged = [loc for loc in by_locations["locations"] if loc["averaged"]]
    assert [loc["location_id"] for loc in averaged] == ["L1", "L2"]
    assert by_locations["value"] == pytest.approx(sum(loc["value"] for loc in averaged) / len(averaged))
    everyone = _explain(two_nights, level="all", concern=None, unit="all", indicator="n_closed")
    assert everyone["value"] == 9 and {p["concern_id"] for p in everyone["parts"]} == {"C001", "C002"}
    assert "n_closed (episodes) for all concerns, year 2025" in render_text(everyone)
    # therapist level is only in the work database (the shared warehouse leaves it out)
    with pytest.raises(ExplainError, match="has no figure"):
        _explain(two_nights, level="therapist", unit="T1")
    therapist = _explain(two_nights, db="work", level="therapist", unit="T1")
    assert therapist["value"] == pytest.approx(NIGHT2_L1_MEAN) and therapist["reproduced"]["matches"] is True
    # a therapist's month figure is published nowhere by default (lib/audience.py): not computed, said why
    with pytest.raises(ExplainError, match="a therapist's month figure is published nowhere .* so it is not computed"):
        _explain(two_nights, db="work", level="therapist", unit="T1", period_type="month", period="2025-07")


def test_cli_prints_text_and_json(two_nights, capsys):
    args = ["explain", "--data-dir", str(two_nights.pipeline.data_dir), "--concern", "C001", "--level", "location",
            "--unit", "L1", "--period-type", "year", "--period", "2025", "--indicator", "mean_improvement",
            "--aggregation", "episodes"]
    assert main([*args, "--run", two_nights.run_ids[0]]) == 0
    text = capsys.readouterr().out
    assert two_nights.run_ids[0] in text and "matches the published figure" in text
    assert "M8" in text and "out_of_range" in text and "C001/2025-06-30" in text
    assert main([*args, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n"] == 5 and doc["value"] == pytest.approx(NIGHT2_L1_MEAN)
    assert main([*args[:-4], "--indicator", "no_such_indicator"]) == 2
    err = capsys.readouterr().err
    assert "'no_such_indicator' is not an indicator" in err and "pct_complete" in err and "mean_improvement" in err


def test_the_organisation_value_can_be_recomputed_from_the_text(two_nights, capsys):
    """Every location averaged is listed with its value and n, so the mean can be redone by hand:
    C001 2025 mean_improvement: L1 (60.98 + 85 + 99.24 + 47.62 + 96.77) / 5 = 77.92 (n 5),
    L2 140 -> 160 = -90.91 (n 1); (77.9222 - 90.9091) / 2 = -6.4934."""
    args = ["explain", "--data-dir", str(two_nights.pipeline.data_dir), "--concern", "C001", "--level", "concern",
            "--period-type", "year", "--period", "2025", "--indicator", "mean_improvement",
            "--aggregation", "mean_of_locations"]
    assert main(args) == 0
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  L")}
    assert rows["L1"][1:4] == ["77.9223", "5", "yes"] and rows["L2"][1:4] == ["-90.9091", "1", "yes"]
    assert "Value    -6.4934" in text and "matches the published figure" in text


def test_errors_say_what_would_be_valid(two_nights, capsys):
    base = ["explain", "--data-dir", str(two_nights.pipeline.data_dir), "--concern", "C001", "--level", "location",
            "--indicator", "mean_improvement"]
    assert main([*base, "--unit", "L1", "--period-type", "quarter", "--period", "2025-3"]) == 2
    assert "a quarter is written YYYY-Qn, e.g. 2025-Q3" in capsys.readouterr().err
    assert main([*base, "--unit", "L9", "--period-type", "year", "--period", "2025"]) == 2
    assert "location units of concern C001 are: L1, L2" in capsys.readouterr().err
    assert main([*base[:-4], "--level", "therapist", "--unit", "T1", "--period", "2025", "--indicator",
                 "mean_improvement"]) == 2
    assert "manager packages" in capsys.readouterr().err


def test_json_into_a_closed_pipe_ends_quietly(two_nights):
    import subprocess
    import sys

    command = (f"{sys.executable} -m rom_pipeline.cli explain --data-dir {two_nights.pipeline.data_dir} "
               "--concern C001 --level location --unit L1 --period 2025 --indicator mean_improvement "
               "--format json | head -n 1")
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120)
    assert result.stdout == "{\n" and "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_a_financial_ratio_and_its_z_can_be_recomputed(tmp_path_factory):
    """explain on marts.financial_ratios (solvency = equity / total assets * 100): the formula is the
    model's own, its inputs are the annual report's, and the z is worked out over the peers."""
    from cli_runs import baseline, connect_warehouse

    from rom_pipeline.explain import explain, open_database

    base = baseline(tmp_path_factory)
    with connect_warehouse(base.data_dir / "warehouse.duckdb") as con:
        year = con.execute("SELECT max(year) FROM marts.financial_ratios WHERE concern_id = 'C001' "
                           "AND ratio = 'solvency' AND value IS NOT NULL").fetchone()[0]
        equity, assets = con.execute("SELECT equity, total_assets FROM staging.annual_reports "
                                     "WHERE concern_id = 'C001' AND year = ?", [year]).fetchone()
        peers = [r[0] for r in con.execute("SELECT value FROM marts.financial_ratios WHERE ratio = 'solvency' "
                                           "AND year = ? AND value IS NOT NULL", [year]).fetchall()]
        published_z = con.execute("SELECT z FROM marts.financial_ratios WHERE concern_id = 'C001' AND year = ? "
                                  "AND ratio = 'solvency'", [year]).fetchone()[0]
    con = open_database("warehouse", base.data_dir)
    try:
        doc = explain(con, table="marts.financial_ratios", concern="C001", level="concern", unit="C001",
                      period_type="year", period=str(year), indicator="solvency")
    finally:
        con.close()
    assert doc["formula"] == "a.equity / NULLIF(a.total_assets, 0) * 100"
    assert {i["input"]: i["value"] for i in doc["inputs"]} == {"a.equity": equity, "a.total_assets": assets}
    assert doc["value"] == pytest.approx(equity / assets * 100)
    assert doc["formula_filled_in"].startswith(f"{float(equity)} / NULLIF({float(assets)}, 0) * 100")
    mean = sum(peers) / len(peers)
    sd = (sum((p - mean) ** 2 for p in peers) / (len(peers) - 1)) ** 0.5
    group = doc["peers_all"]
    assert group["n_peers"] == len(peers) and group["mean"] == pytest.approx(mean)
    assert group["z"] == pytest.approx((equity / assets * 100 - mean) / sd) == pytest.approx(published_z)
    assert group["matches"] is True
    assert "SCL90" not in str(doc["parameters"]) and "norm_score" not in doc["parameters"]


def test_caseload_review_on_the_warehouse_and_the_work_database(two_nights):
    # C001 L1 after night 2: closed episodes E1, E2, E3, E4, E6 in 2025 (tests/nights.py); min_n and
    # min_count_published are 1 there, so the total is shown
    shared = _explain(two_nights, table="marts.caseload_review", indicator="total", unit="L1")
    assert shared["parameters"] == {"min_n": 1, "min_count_published": 1}
    assert [(r["n"], r["n_unit"], r["suppressed"]) for r in shared["rows"]] == [(5, 5, False)]
    assert shared["episodes"] is None and "--db work" in shared["note"]
    assert shared["run"]["run_id"] == two_nights.run_ids[1]
    # therapist rows are not in the shared warehouse: said so, not an error
    hidden = _explain(two_nights, table="marts.caseload_review", level="therapist", unit="T1", indicator=None)
    assert hidden["rows"] == [] and "only in the work database" in hidden["note"]
    work = _explain(two_nights, db="work", table="marts.caseload_review", indicator="total", unit="L1")
    assert [e["episode_id"] for e in work["episodes"]] == ["E1", "E2", "E3", "E4", "E6"]
    assert work["reproduced"]["matches"] is True
    with pytest.raises(ExplainError, match="only the latest published run"):
        _explain(two_nights, table="marts.caseload_review", unit="L1", run=two_nights.run_ids[0])
