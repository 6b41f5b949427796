"""ROM adherence and the secondary outcomes (issue 12, parts 3 and 4), all catalogue entries.

A real nightly job on one hand-built delivery (C001, exported 2026-01-15, every closed episode
closed on 2025-04-10, so year 2025), with min_n 1 so that the figures are published, then
``rom-pipeline explain`` on one new figure of each kind. Hand-computed expectations:

ROM adherence (rom_interval_sessions 5: expected = 1 + ceil(sessions / 5); administrations = days
with a valid SCL90 from start - 90 days to end + 28 days):
  L1 A0  sessions 10 -> expected 3, no SCL90            -> 0 administrations: not adherent, 0%
  L1 A1  sessions 10 -> expected 3, 3 days              -> adherent (exactly at expected), 100%
  L1 A2  sessions 12 -> expected 4, 4 SCL90 on 3 days   -> one short, 75%
  L1 A3  sessions not delivered                         -> no expected count: not in the population
  L2 A4  sessions 18 -> expected 5 (the seed's "zo'n vijf maal"), 6 SCL90 of which one a follow-up
         on 2025-07-01 (after end + 28 days)            -> 5: adherent, 100%
  L2 A5  open (sessions 5)                              -> no expected count
  pct_rom_adherent: L1 1/3 = 33.33, L2 1/1 = 100, C001 2/4 = 50;
  mean_rom_adherence: L1 (0 + 100 + 75) / 3 = 58.33, L2 100, C001 275 / 4 = 68.75.

WAV (higher is better; s_pre 7, r_xx 0.90, cut-off 45: threshold 1.96 * sqrt(2) * 7 * sqrt(0.1) = 6.136),
episodes W1..W6 at L1, sessions not delivered (so outside the adherence population):
  W1 30 -> 40  +10, post not above 45    -> improved
  W2 40 -> 50  +10, post above 45        -> recovered
  W3 45 -> 35  -10                       -> deteriorated (on a higher-is-worse scale this would improve)
  W4 40 -> 43  +3                        -> unchanged
  W5 40, no post                         -> incomplete
  W6 30 -> 45  +15, post 45 is not above the cut-off -> improved
  pct_complete_wav 5/6 = 83.33; recovered 1/5 = 20, improved 2/5 = 40, unchanged 20, deteriorated 20.
HDRS (higher is worse; threshold 1.96 * sqrt(2) * 6 * sqrt(0.2) = 7.438): W1 20 -> 10 improved (10 is not
below the cut-off 8), W3 10 -> 20 deteriorated: pct_improved_hdrs 50, pct_deteriorated_hdrs 50.
WORK (hours a week): W1 0 -> 20, W2 10 -> 0, W3 20 -> 30, W4 0 -> 8, W5 0 and no post (left out):
  pct_working_start 2/4 = 50 (W2, W3), pct_working_end 3/4 = 75 (W1, W3, W4).
"""
from __future__ import annotations

import json
import subprocess

import pytest
from cli_runs import cli_command, cli_env
from deliveries import LOCATIONS, THERAPISTS, episode, measurement, write_delivery
from nights import NightlyPipeline

PARAMETERS = "indicators:\n  min_n:\n    value: 1\n  min_count_published:\n    value: 1\n"
START, END = "2025-01-10", "2025-04-10"


def _deliveries(root) -> None:
    episodes = [
        episode("A0", "a0", sessions_attended="10"),
        episode("A1", "a1", sessions_attended="10"),
        episode("A2", "a2", sessions_attended="12"),
        episode("A3", "a3", sessions_attended=""),
        episode("A4", "a4", location_id="L2", therapist_id="T2", sessions_attended="18"),
        episode("A5", "a5", location_id="L2", therapist_id="T2", end=None, end_reason=None, sessions_attended="5"),
        *[episode(f"W{i}", f"w{i}", sessions_attended="") for i in range(1, 7)],
    ]
    m = []
    for day, score in (("2025-01-10", 200), ("2025-02-20", 180), ("2025-04-10", 150)):
        m.append(measurement(f"A1-{day}", "A1", day, score))
    for n, (day, score) in enumerate((("2025-01-10", 200), ("2025-02-20", 180), ("2025-02-20", 181),
                                      ("2025-04-10", 150))):
        m.append(measurement(f"A2-{n}", "A2", day, score))
    m += [measurement("A3-pre", "A3", START, 200), measurement("A3-post", "A3", END, 150)]
    for n, day in enumerate(("2025-01-10", "2025-02-01", "2025-02-20", "2025-03-15", "2025-04-10", "2025-07-01")):
        m.append(measurement(f"A4-{n}", "A4", day, 200 - 10 * n))
    m.append(measurement("A5-pre", "A5", START, 200))
    wav = {"W1": (30, 40), "W2": (40, 50), "W3": (45, 35), "W4": (40, 43), "W5": (40, None), "W6": (30, 45)}
    hdrs = {"W1": (20, 10), "W3": (10, 20)}
    work = {"W1": (0, 20), "W2": (10, 0), "W3": (20, 30), "W4": (0, 8), "W5": (0, None)}
    for instrument, pairs in (("WAV", wav), ("HDRS", hdrs), ("WORK", work)):
        for ep, (pre, post) in pairs.items():
            m.append(measurement(f"{ep}-{instrument}-pre", ep, START, pre, instrument=instrument))
            if post is not None:
                m.append(measurement(f"{ep}-{instrument}-post", ep, END, post, instrument=instrument))
    write_delivery(root, "C001", "2026-01-15", {"locations": LOCATIONS, "therapists": THERAPISTS,
                                                 "episodes": episodes, "measurements": m, "item_responses": []})


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("secondary")
    pipeline = NightlyPipeline(root / "exports", root / "data", parameters=PARAMETERS)
    _deliveries(pipeline.export_dir)
    run = pipeline.run()
    assert run.success
    return pipeline, run


def _figures(con, indicator: str) -> dict:
    rows = con.execute("""
        SELECT level, unit_id, aggregation, value, n FROM marts.indicators
        WHERE indicator = ? AND period_type = 'year' AND period = '2025' AND concern_id = 'C001'""",
                       [indicator]).fetchall()
    return {(level, unit, agg): (value, n) for level, unit, agg, value, n in rows}


def test_adherence_per_episode(published):
    _, run = published
    with run.warehouse() as con:
        got = {r[0]: r[1:] for r in con.execute("""
            SELECT episode_id, scl90_administrations, expected_administrations FROM marts.episode_outcomes
            WHERE episode_id LIKE 'A%'""").fetchall()}
    assert got == {"A0": (0, 3), "A1": (3, 3), "A2": (3, 4), "A3": (2, None), "A4": (5, 5), "A5": (1, None)}


def test_adherence_indicators_per_unit(published):
    _, run = published
    with run.warehouse() as con:
        adherent, ratio = _figures(con, "pct_rom_adherent"), _figures(con, "mean_rom_adherence")
    assert adherent[("location", "L1", "episodes")] == (pytest.approx(100 / 3), 3)
    assert adherent[("location", "L2", "episodes")] == (100.0, 1)
    assert adherent[("concern", "C001", "episodes")] == (50.0, 4)
    assert ratio[("location", "L1", "episodes")] == (pytest.approx(175 / 3), 3)
    assert ratio[("location", "L2", "episodes")] == (100.0, 1)
    assert ratio[("concern", "C001", "episodes")] == (68.75, 4)
    assert ratio[("concern", "C001", "mean_of_locations")] == (pytest.approx((175 / 3 + 100) / 2), 4)
    with run.work() as con:  # therapist level: the manager's package only
        assert _figures(con, "pct_rom_adherent")[("therapist", "T1", "episodes")] == (pytest.approx(100 / 3), 3)


def test_reliable_change_of_a_secondary_instrument_follows_its_direction(published):
    _, run = published
    with run.warehouse() as con:
        categories = dict(con.execute("""
            SELECT episode_id, secondary_outcomes.WAV.reliable_change FROM marts.episode_outcomes
            WHERE episode_id LIKE 'W%'""").fetchall())
        hdrs = dict(con.execute("""
            SELECT episode_id, secondary_outcomes.HDRS.reliable_change FROM marts.episode_outcomes
            WHERE episode_id IN ('W1', 'W3')""").fetchall())
        figures = {code: _figures(con, code)[("location", "L1", "episodes")] for code in (
            "pct_complete_wav", "pct_recovered_wav", "pct_improved_wav", "pct_unchanged_wav",
            "pct_deteriorated_wav", "pct_improved_hdrs", "pct_deteriorated_hdrs", "pct_complete_cqi")}
    assert categories == {"W1": "improved", "W2": "recovered", "W3": "deteriorated", "W4": "unchanged",
                          "W5": None, "W6": "improved"}
    assert hdrs == {"W1": "improved", "W3": "deteriorated"}
    assert figures["pct_complete_wav"] == (pytest.approx(500 / 6), 6)
    assert figures["pct_recovered_wav"] == (20.0, 5)
    assert figures["pct_improved_wav"] == (40.0, 5)
    assert figures["pct_unchanged_wav"] == (20.0, 5)
    assert figures["pct_deteriorated_wav"] == (20.0, 5)
    assert figures["pct_improved_hdrs"] == (50.0, 2) and figures["pct_deteriorated_hdrs"] == (50.0, 2)
    assert figures["pct_complete_cqi"] == (None, None)  # no CQI measured: n = 0, blanked like any n below 1


def test_working_at_the_start_beside_working_at_the_end(published):
    _, run = published
    with run.warehouse() as con:
        start, end = _figures(con, "pct_working_start"), _figures(con, "pct_working_end")
    assert start[("location", "L1", "episodes")] == (50.0, 4)
    assert end[("location", "L1", "episodes")] == (75.0, 4)


def test_the_new_figures_are_suppressed_like_every_other(tmp_path):
    """With the default min_n (10) every figure above rests on too few episodes: blank, with the reason."""
    pipeline = NightlyPipeline(tmp_path / "exports", tmp_path / "data",
                               parameters="indicators:\n  min_n:\n    value: 10\n  min_count_published:\n    value: 5\n")
    _deliveries(pipeline.export_dir)
    run = pipeline.run()
    assert run.success
    with run.warehouse() as con:
        rows = con.execute("""
            SELECT DISTINCT value, ci_low, suppressed, suppression_reason FROM marts.indicators
            WHERE indicator IN ('pct_rom_adherent', 'mean_rom_adherence', 'pct_recovered_wav', 'pct_working_start')
              AND level IN ('location', 'concern') AND n > 0""").fetchall()
    assert rows == [(None, None, True, "n_below_min_n")]
    # The location report names the secondary indicators without a single shown figure once, under the
    # table, instead of a row of dashes each; the core ones (with a target or a chart) keep their rows.
    from rom_pipeline.reports.build import build_reports

    build_reports(pipeline.data_dir / "warehouse.duckdb", pipeline.data_dir / "work.duckdb", pipeline.data_dir,
                  pdf=False, log=lambda message: None)
    html = (pipeline.data_dir / "reports" / "shared" / "locations" / "C001-L1.html").read_text(encoding="utf-8")
    table, note = html.split("Niet in de tabel, omdat geen enkel cijfer", 1)
    assert "WAV (werkalliantie): verslechterd" in note and "ROM volgens protocol" in note
    assert "WAV (werkalliantie)" not in table and "Complete scores SCL-90" in table


def _explain(pipeline, indicator: str, unit: str = "L1") -> tuple[str, dict]:
    env = cli_env(pipeline.export_dir, pipeline.data_dir, ROM_PARAMETERS=str(pipeline.parameters_file))
    args = ["explain", "--concern", "C001", "--level", "location", "--unit", unit, "--period-type", "year",
            "--period", "2025", "--indicator", indicator]
    text = subprocess.run(cli_command(*args), env=env, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    doc = subprocess.run(cli_command(*args, "--format", "json"), env=env, capture_output=True, text=True,
                         timeout=120)
    return text.stdout, json.loads(doc.stdout)


def test_explain_an_adherence_figure(published):
    pipeline, _ = published
    text, doc = _explain(pipeline, "pct_rom_adherent")
    assert "Reproduced from these episodes: n = 3, value = 33.3333 -> matches the published figure" in text
    assert "rom_interval_sessions = 5" in text and "SCL90 adm./expected" in text
    by_id = {e["episode_id"]: e for e in doc["episodes"]}
    assert (by_id["A2"]["scl90_administrations"], by_id["A2"]["expected_administrations"]) == (3, 4)
    assert by_id["A2"]["contribution"] == 0.0 and by_id["A1"]["contribution"] == 100.0
    assert by_id["A3"]["left_out_because"] == "no expected SCL90 administrations (sessions_attended not delivered)"


def test_explain_a_secondary_outcome_figure_shows_that_instruments_scores(published):
    pipeline, _ = published
    text, doc = _explain(pipeline, "pct_deteriorated_wav")
    assert "Reproduced from these episodes: n = 5, value = 20 -> matches the published figure" in text
    assert "the episode's WAV measurements" in text
    assert doc["instrument"] == "WAV"
    assert doc["parameters"]["reliable_change"] == {"z_critical": 1.96, "s_pre": 7.0, "r_xx": 0.9, "cutoff": 45}
    by_id = {e["episode_id"]: e for e in doc["episodes"]}
    assert by_id["W3"]["instrument_outcome"]["pre_score"] == 45 and by_id["W3"]["instrument_outcome"]["post_score"] == 35
    assert by_id["W3"]["contribution"] == 100.0
    assert by_id["W5"]["left_out_because"] == "no WAV post-score"
    assert by_id["A0"]["left_out_because"] == "no valid WAV measurement"


def test_explain_working_at_the_start(published):
    pipeline, _ = published
    text, doc = _explain(pipeline, "pct_working_start")
    assert "Reproduced from these episodes: n = 4, value = 50 -> matches the published figure" in text
    assert {e["episode_id"]: e["contribution"] for e in doc["episodes"] if e["counts"]} == {
        "W1": 0.0, "W2": 100.0, "W3": 100.0, "W4": 0.0}
