"""The indicator catalogue (issue 9): one definition per indicator, extended by configuration.

A deployment adds ``pct_referred`` in its parameters file; the real nightly job then publishes it at
every level and period, benchmarks it across concerns in its cluster with its direction, and
``rom-pipeline explain`` shows its formula and reproduces it. A bad entry stops the run before
anything is written, naming the entry and the field.

Hand-computed expectations (2025, every episode closed on 2025-04-10):
  C001 L1: E1 referred, E2 completed, E3 referred, E4 completed -> pct_referred 2/4 = 50.0
  C001 L2: E5 referred                                          -> 1/1 = 100.0
  C001 concern: episodes 3/5 = 60.0; mean of locations (50 + 100) / 2 = 75.0
  C002 L1: E1 referred, E2..E4 completed                        -> 1/4 = 25.0 (concern: both 25.0)
Exported 2026-01-15: 2025 is complete; C001's E6 (closed 2026-01-05) makes 2026-01, 2026-Q1 and
2026 running periods, left out of the concern benchmark.
Concern benchmark (peer group all, concern values are the means of locations): 75 and 25,
mean 50, sample sd 35.3553, z = +-0.7071; lower is better, so z_oriented = -+0.7071.
"""
from __future__ import annotations

import json
import subprocess

import pytest
from cli_runs import cli_command, cli_env
from deliveries import LOCATIONS, THERAPISTS, episode, measurement, write_delivery
from nights import NightlyPipeline

from rom_pipeline.config import load_parameters
from rom_pipeline.indicators import CatalogueError, check_against_outcomes, parse_entry

PCT_REFERRED = """
  catalogue:
    pct_referred:
      label_nl: "Doorverwezen"
      label_en: "Referred on"
      population: closed
      value: "end_reason = 'referred'"
      aggregation: percentage
      higher_is_better: false
      cluster: kernset
"""
# A mean whose name does not start with mean_ (the internal benchmark finds means by the catalogue's kind).
AVG_SESSIONS = """
    avg_sessions:
      label_nl: "Gemiddeld aantal sessies"
      label_en: "Mean sessions attended"
      population: closed
      value: sessions_attended
      aggregation: mean
      higher_is_better: false
      cluster: kernset
"""
PARAMETERS = ("indicators:\n  min_n:\n    value: 1\n  min_count_published:\n    value: 1\n" + PCT_REFERRED
              + AVG_SESSIONS.lstrip("\n"))


def _deliveries(root) -> None:
    c001 = [episode("E1", "a1", end_reason="referred", sessions_attended="4"), episode("E2", "a2", sessions_attended="8"),
            episode("E3", "a3", end_reason="referred", sessions_attended="12"), episode("E4", "a4", sessions_attended="16"),
            episode("E5", "a5", location_id="L2", therapist_id="T2", end_reason="referred", sessions_attended="20"),
            episode("E6", "a6", start="2025-10-01", end="2026-01-05")]  # in 2026, still running at export
    c002 = [episode("E1", "b1", end_reason="referred"), episode("E2", "b2"), episode("E3", "b3"), episode("E4", "b4")]
    for concern, episodes in (("C001", c001), ("C002", c002)):
        measurements = [measurement(f"M{e['episode_id']}", e["episode_id"], "2025-01-10", 200) for e in episodes]
        write_delivery(root, concern, "2026-01-15", {"locations": LOCATIONS, "therapists": THERAPISTS,
                                                     "episodes": episodes, "measurements": measurements,
                                                     "item_responses": []})


@pytest.fixture(scope="module")
def referred(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalogue")
    pipeline = NightlyPipeline(root / "exports", root / "data", parameters=PARAMETERS)
    _deliveries(pipeline.export_dir)
    run = pipeline.run()
    assert run.success
    return pipeline, run


def _figures(con, where: str) -> dict:
    rows = con.execute(f"""
        SELECT concern_id, level, unit_id, aggregation, value, n, suppressed
        FROM marts.indicators
        WHERE indicator = 'pct_referred' AND period_type = 'year' AND period = '2025' AND {where}""").fetchall()
    return {(c, level, unit, agg): (value, n, suppressed) for c, level, unit, agg, value, n, suppressed in rows}


def test_an_indicator_added_by_configuration_is_published_at_every_level(referred):
    _, run = referred
    with run.warehouse() as con:
        got = _figures(con, "level <> 'therapist'")
        periods = {r[0] for r in con.execute(
            "SELECT DISTINCT period_type FROM marts.indicators WHERE indicator = 'pct_referred'").fetchall()}
        label, cluster, hib = con.execute(
            "SELECT label_nl, cluster, higher_is_better FROM config.indicator_catalogue "
            "WHERE indicator = 'pct_referred'").fetchone()
    assert got[("C001", "location", "L1", "episodes")] == (50.0, 4, False)
    assert got[("C001", "location", "L2", "episodes")] == (100.0, 1, False)
    assert got[("C001", "concern", "C001", "episodes")] == (60.0, 5, False)
    assert got[("C001", "concern", "C001", "mean_of_locations")][:2] == (75.0, 5)
    assert got[("C002", "concern", "C002", "mean_of_locations")][:2] == (25.0, 4)
    assert got[(None, "all", "all", "episodes")][:2] == (pytest.approx(100 * 4 / 9), 9)
    assert periods == {"month", "quarter", "year"}
    assert (label, cluster, hib) == ("Doorverwezen", "kernset", False)
    with run.work() as con:  # therapist level stays in the work database
        assert _figures(con, "level = 'therapist'")[("C001", "therapist", "T1", "episodes")][:2] == (50.0, 4)


def test_an_indicator_added_by_configuration_is_suppressed_like_every_other(tmp_path):
    pipeline = NightlyPipeline(tmp_path / "exports", tmp_path / "data",
                               parameters="indicators:\n  min_n:\n    value: 5\n" + PCT_REFERRED)
    _deliveries(pipeline.export_dir)
    run = pipeline.run()
    assert run.success
    with run.warehouse() as con:
        got = _figures(con, "level <> 'therapist'")
        reasons = dict(con.execute("""
            SELECT unit_id, suppression_reason FROM marts.indicators
            WHERE indicator = 'pct_referred' AND period = '2025' AND concern_id = 'C001'
              AND aggregation = 'episodes'""").fetchall())
    assert got[("C001", "location", "L2", "episodes")] == (None, None, True)  # n = 1 < min_n, and < 5
    assert got[("C001", "location", "L1", "episodes")] == (None, None, True)  # n = 4
    assert got[("C001", "concern", "C001", "episodes")] == (None, 5, True)    # 3 of 5: counts below 5
    assert reasons == {"L1": "n_below_min_n", "L2": "n_below_min_n", "C001": "small_count"}


def test_running_periods_are_flagged(referred):
    _, run = referred
    with run.warehouse() as con:
        flags = dict(con.execute("""
            SELECT period, is_complete_period FROM marts.indicators
            WHERE concern_id = 'C001' AND level = 'concern' AND indicator = 'n_closed'""").fetchall())
        benchmarked = {r[0] for r in con.execute(
            "SELECT DISTINCT year FROM marts.concern_benchmark WHERE source = 'rom_pipeline'").fetchall()}
    assert flags == {"2025-04": True, "2025-Q2": True, "2025": True,
                     "2026-01": False, "2026-Q1": False, "2026": False}
    assert benchmarked == {2025}


def test_an_indicator_added_by_configuration_joins_the_concern_benchmark(referred):
    _, run = referred
    with run.warehouse() as con:
        rows = con.execute("""
            SELECT concern_id, cluster, value, peer_mean, z, z_oriented, higher_is_better
            FROM marts.concern_benchmark
            WHERE indicator_id = 'rom_pct_referred' AND peer_group = 'all' AND year = 2025
            ORDER BY concern_id""").fetchall()
    assert [(r[0], r[1], r[2], r[3], r[6]) for r in rows] == [("C001", "kernset", 75.0, 50.0, False),
                                                              ("C002", "kernset", 25.0, 50.0, False)]
    assert rows[0][4] == pytest.approx(0.70711, abs=1e-5) and rows[0][5] == pytest.approx(-0.70711, abs=1e-5)
    assert rows[1][4] == pytest.approx(-0.70711, abs=1e-5) and rows[1][5] == pytest.approx(0.70711, abs=1e-5)


def test_a_mean_indicator_added_by_configuration_gets_its_funnel_from_the_episodes_sd(referred):
    """The funnel of a mean is the concern's episode-level sd, found by the catalogue's kind (not by
    a name starting with mean_). C001 2025 sessions 4, 8, 12, 16 (L1) and 20 (L2): sd sqrt(40);
    the location funnel centres on (4 x 10 + 1 x 20) / 5 = 12; L1 (n 4): 12 -+ 1.959964 sqrt(40) / 2."""
    _, run = referred
    with run.warehouse() as con:
        row = con.execute("""
            SELECT value, funnel_centre, funnel_sd, funnel_95_low, funnel_95_high FROM marts.internal_benchmark
            WHERE indicator = 'avg_sessions' AND level = 'location' AND unit_id = 'L1' AND concern_id = 'C001'
              AND period_type = 'year' AND period = '2025'""").fetchone()
    half = 1.959964 * 40 ** 0.5 / 2
    assert row == pytest.approx((10.0, 12.0, 40 ** 0.5, 12 - half, 12 + half), abs=1e-9)


def test_explain_shows_and_reproduces_an_indicator_added_by_configuration(referred):
    pipeline, _ = referred
    env = cli_env(pipeline.export_dir, pipeline.data_dir, ROM_PARAMETERS=str(pipeline.parameters_file))
    args = ["explain", "--concern", "C001", "--level", "location", "--unit", "L1", "--period-type", "year",
            "--period", "2025", "--indicator", "pct_referred"]
    text = subprocess.run(cli_command(*args), env=env, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "closed episodes where end_reason = 'referred' / closed episodes where it is known * 100" in text.stdout
    assert "Reproduced from these episodes: n = 4, value = 50 -> matches the published figure" in text.stdout
    doc = json.loads(subprocess.run(cli_command(*args, "--format", "json"), env=env, capture_output=True,
                                    text=True, timeout=120).stdout)
    assert doc["labels"] == {"nl": "Doorverwezen", "en": "Referred on"}
    assert {e["episode_id"]: e["contribution"] for e in doc["episodes"]} == {"E1": 100.0, "E2": 0.0, "E3": 100.0,
                                                                              "E4": 0.0}
    wrong = subprocess.run(cli_command(*args[:-1], "pct_refered"), env=env, capture_output=True, text=True,
                           timeout=120)
    assert wrong.returncode == 2 and "pct_referred" in wrong.stderr and "pct_dropout" in wrong.stderr


# --- a bad entry stops the run before anything is written ------------------------------------------

BAD_ENTRIES = [
    ("value: \"end_reasn = 'referred'\"", "indicators.catalogue.pct_referred.value", "end_reasn"),
    ("value: \"sessions_attended\"", "indicators.catalogue.pct_referred.value", "BOOLEAN"),
    ("population: \"pre_score\"", "indicators.catalogue.pct_referred.population", "BOOLEAN"),
    ("aggregation: median", "indicators.catalogue.pct_referred.aggregation", "median"),
    ("cluster: quality", "indicators.catalogue.pct_referred.cluster", "quality"),
    ("lable_nl: typo", "indicators.catalogue.pct_referred.lable_nl", "unknown field"),
]


def _override(line: str) -> str:
    field = line.split(":")[0]
    lines = [entry for entry in PCT_REFERRED.strip("\n").splitlines() if not entry.strip().startswith(field + ":")]
    return "indicators:\n" + "\n".join(lines) + f"\n      {line}\n"


@pytest.mark.parametrize("line, where, says", BAD_ENTRIES)
def test_a_bad_entry_is_named_with_its_field(tmp_path, line, where, says):
    path = tmp_path / "parameters.yaml"
    path.write_text(_override(line))
    with pytest.raises(CatalogueError) as raised:
        check_against_outcomes(load_parameters(path))
    assert where in str(raised.value) and says in str(raised.value)


def test_a_missing_field_is_named():
    with pytest.raises(CatalogueError, match=r"indicators\.catalogue\.x\.higher_is_better: required field"):
        parse_entry("x", 1, {"label_nl": "x", "label_en": "x", "population": "closed", "value": "true",
                             "aggregation": "percentage", "cluster": "kernset"})


def test_a_bad_entry_stops_the_cli_run_before_anything_is_written(tmp_path):
    _deliveries(tmp_path / "exports")
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text(_override("value: \"end_reasn = 'referred'\""))
    env = cli_env(tmp_path / "exports", tmp_path / "data", ROM_PARAMETERS=str(parameters))
    result = subprocess.run(cli_command("run", "--no-reports"), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "indicators.catalogue.pct_referred.value" in result.stderr and "end_reasn" in result.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_a_bad_entry_stops_a_dagster_run_before_anything_is_written(tmp_path):
    pipeline = NightlyPipeline(tmp_path / "exports", tmp_path / "data",
                               parameters=_override("population: \"pre_score\""))
    _deliveries(pipeline.export_dir)
    run = pipeline.run()
    assert not run.success
    failures = [e for e in run.result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["audit__runs"]
    assert "indicators.catalogue.pct_referred.population" in str(failures[0].step_failure_data.error)
    assert not (tmp_path / "data" / "work.duckdb").exists()


def test_an_indicator_added_by_configuration_is_in_the_reports(referred, tmp_path):
    """The reports take the indicators from the warehouse's config.indicator_catalogue: the location
    report lists pct_referred by its Dutch label, and the concern data show it too."""
    import shutil

    from rom_pipeline.reports.build import build_reports

    pipeline, _ = referred
    data = tmp_path / "data"
    data.mkdir()
    for name in ("warehouse.duckdb", "work.duckdb"):
        shutil.copy2(pipeline.data_dir / name, data / name)
    build_reports(data / "warehouse.duckdb", data / "work.duckdb", data, pdf=False, log=lambda message: None)
    location = (data / "reports" / "shared" / "locations" / "C001-L1.html").read_text(encoding="utf-8")
    assert "Doorverwezen" in location
