"""Case-mix adjusted outcomes (issue 12 part 1; docs/outcome-rules.md s12).

The pure model code (rom_pipeline/lib/casemix.py) against independent oracles (numpy.polyfit,
the score equations of a multinomial logit), and the assets end to end: real staging tables in
a DuckDB file, the real SQL models and the statsmodels asset materialised by Dagster.
"""
from __future__ import annotations

import duckdb
import dagster as dg
import numpy as np
import pandas as pd
import pytest

from outcomes_fixtures import Staging, connect, rows
from rom_pipeline.defs import models
from rom_pipeline.defs.outcomes.assets import ASSETS as CASEMIX_ASSETS
from rom_pipeline.lib import casemix as cm
from rom_pipeline.resources import Workspace

SQL_MODELS = ["outcomes.instrument_outcomes", "marts.episode_outcomes", "outcomes.indicator_contributions",
              "marts.indicator_cells", "marts.indicator_aggregates", "marts.indicators", "marts.casemix_adjusted"]
ASSETS, CHECKS = models.select(SQL_MODELS)
AGES = [25, 35, 45, 55, 65]


# --- pure functions ------------------------------------------------------------------------------

@pytest.mark.parametrize("age, band", [(18, "<25"), (24, "<25"), (25, "25-34"), (34, "25-34"), (64, "55-64"),
                                       (65, ">=65"), (90, ">=65"), (None, "unknown"), (float("nan"), "unknown")])
def test_age_bands(age, band):
    assert cm.age_band(age, AGES) == band


def test_age_bands_must_increase():
    with pytest.raises(ValueError, match="increasing"):
        cm.age_band(30, [35, 25])


def _frame(concern, pre, y, *, location="L1", referrer="gp", category=None):
    n = len(pre)
    return pd.DataFrame({
        "concern_id": concern, "episode_id": [f"{concern}-{location}-{i}" for i in range(n)], "location_id": location,
        "pre_score": np.asarray(pre, dtype=float), "pct_improvement": np.asarray(y, dtype=float),
        "reliable_change": category if category is not None else [cm.CATEGORIES[i % 4] for i in range(n)],
        "diagnosis_group": "depression", "referrer": referrer, "care_type": "basic", "age_at_start": 40,
        "sex": "female"})


def test_expected_improvement_is_the_other_concerns_regression_line():
    """One varying predictor: the expected value of A's episodes is B's least-squares line (numpy.polyfit)."""
    rng = np.random.default_rng(7)
    pre_b = rng.integers(150, 330, 120)
    y_b = 95 - 0.3 * (pre_b - 150) + rng.normal(0, 8, 120)
    pre_a = np.array([160, 200, 250, 300])
    frame = cm.prepare(pd.concat([_frame("A", pre_a, [0, 0, 0, 0]), _frame("B", pre_b, y_b)]), AGES)
    expected, fitted = cm.judge(frame, cm.Design.of(frame), min_training=100, max_models=25)
    slope, intercept = np.polyfit(pre_b, y_b, 1)
    a = expected[expected.concern_id == "A"].sort_values("episode_id")
    assert a["model_id"].unique().tolist() == ["concern:A"]
    np.testing.assert_allclose(a["expected_improvement"], intercept + slope * pre_a, rtol=1e-10)
    residuals = y_b - (intercept + slope * pre_b)
    assert a["improvement_variance"].iloc[0] == pytest.approx(residuals @ residuals / (120 - 2))
    # B has only 4 episodes outside it (< min_training): no model for B
    assert set(expected.concern_id) == {"A"}
    assert {m.model for _, m in fitted} == {cm.OLS_MODEL, cm.MNLOGIT_MODEL}


def test_a_capped_fit_is_the_regression_line_of_a_stable_sample():
    """casemix_max_training_episodes (issue 11): past the cap a model is fitted on the episodes first
    by a hash of concern and episode id: exactly that many (n_obs), the same ones every night and
    whatever order the episodes come in, and its line is numpy.polyfit's on those episodes."""
    rng = np.random.default_rng(5)
    pre_b = rng.integers(150, 330, 400)
    y_b = 95 - 0.3 * (pre_b - 150) + rng.normal(0, 8, 400)
    pre_a = np.array([160, 200, 250, 300])
    raw = pd.concat([_frame("A", pre_a, [0, 0, 0, 0]), _frame("B", pre_b, y_b)])
    frame = cm.prepare(raw, AGES)
    expected, fitted = cm.judge(frame, cm.Design.of(frame), min_training=100, max_models=25, max_training=150)
    ols = [m for _, m in fitted if m.model == cm.OLS_MODEL]
    assert [m.n_obs for m in ols] == [150]
    b = frame[frame.concern_id == "B"]
    order = cm.stable_order(b)
    chosen = b.iloc[np.sort(np.argsort(order, kind="stable")[:150])]
    slope, intercept = np.polyfit(chosen["pre_score"].to_numpy(float), chosen["pct_improvement"].to_numpy(float), 1)
    a = expected[expected.concern_id == "A"].sort_values("episode_id")
    np.testing.assert_allclose(a["expected_improvement"], intercept + slope * pre_a, rtol=1e-10)
    shuffled = cm.prepare(raw.sample(frac=1, random_state=1), AGES)
    again, _ = cm.judge(shuffled, cm.Design.of(shuffled), min_training=100, max_models=25, max_training=150)
    np.testing.assert_allclose(again[again.concern_id == "A"].sort_values("episode_id")["expected_improvement"],
                               a["expected_improvement"], rtol=1e-10)
    uncapped, _ = cm.judge(frame, cm.Design.of(frame), min_training=100, max_models=25, max_training=1000)
    full_slope, full_intercept = np.polyfit(pre_b, y_b, 1)
    np.testing.assert_allclose(uncapped[uncapped.concern_id == "A"].sort_values("episode_id")["expected_improvement"],
                               full_intercept + full_slope * pre_a, rtol=1e-10)


def test_a_level_seen_only_in_the_left_out_unit_counts_as_the_reference():
    """A's referrer 'self' occurs nowhere else: left out of A's model, A predicted as the reference (gp)."""
    rng = np.random.default_rng(3)
    pre_b = rng.integers(150, 330, 150)
    y_b = 80 - 0.2 * (pre_b - 150) + rng.normal(0, 5, 150)
    frame = cm.prepare(pd.concat([_frame("A", [200, 260], [10, 10], referrer="self"),
                                  _frame("B", pre_b, y_b)]), AGES)
    design = cm.Design.of(frame)
    assert design.reference["referrer"] == "gp" and "referrer[self]" in design.terms
    expected, fitted = cm.judge(frame, design, min_training=100, max_models=25)
    slope, intercept = np.polyfit(pre_b, y_b, 1)
    a = expected.sort_values("episode_id")
    np.testing.assert_allclose(a["expected_improvement"], intercept + slope * np.array([200, 260]), rtol=1e-10)
    ols_rows = [r for r in cm.model_rows(fitted, design, "x") if r["model"] == cm.OLS_MODEL]
    assert {r["term"] for r in ols_rows} == {"Intercept", "pre_score"}
    assert ols_rows[0]["terms_left_out"] == "referrer[self]"


def test_multinomial_probabilities_reproduce_the_category_shares():
    """The score equation of the intercept: on its own training episodes the fitted probabilities
    average to the observed share of each category (a property of the maximum-likelihood fit)."""
    rng = np.random.default_rng(11)
    pre = rng.integers(150, 330, 400)
    category = np.where(pre + rng.normal(0, 40, 400) > 260, "improved",
                        rng.choice(["recovered", "unchanged", "deteriorated"], 400, p=[0.5, 0.35, 0.15]))
    frame = cm.prepare(_frame("B", pre, np.zeros(400), category=list(category)), AGES)
    design = cm.Design.of(frame)
    x = design.matrix(frame)
    fitted = cm.fit_mnlogit(x, category)
    assert fitted.statistics["converged"]
    p = fitted.predict(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    for j, c in enumerate(cm.CATEGORIES):
        assert p[:, j].mean() == pytest.approx((category == c).mean(), abs=1e-6)
    # the improved share rises with the pre-score (the way the data were made)
    assert p[np.argmax(pre), 1] > p[np.argmin(pre), 1]


def test_null_deviance_is_the_intercept_only_model_in_closed_form():
    """Categories 2, 1, 1 of 4 episodes: the intercept-only model gives them 1/2, 1/4, 1/4, so the
    null log-likelihood is 2 ln(1/2) + 2 ln(1/4) = -4.15888 (by hand); the fitted model's null
    deviance agrees with statsmodels' numerical fit of that model, and McFadden's pseudo-R2 reads it."""
    assert cm.null_log_likelihood(np.array([0, 0, 1, 2])) == pytest.approx(2 * np.log(0.5) + 2 * np.log(0.25))
    assert cm.null_log_likelihood(np.array([0, 0, 1, 2])) == pytest.approx(-4.158883, abs=1e-6)
    rng = np.random.default_rng(3)
    pre = rng.integers(150, 330, 300)
    category = rng.choice(["recovered", "improved", "unchanged"], 300, p=[0.2, 0.5, 0.3])
    frame = cm.prepare(_frame("B", pre, np.zeros(300), category=list(category)), AGES)
    x = cm.Design.of(frame).matrix(frame)
    fitted = cm.fit_mnlogit(x, category)
    import statsmodels.api as sm
    codes = np.searchsorted(np.array([0, 1, 2]), np.array([cm.CATEGORIES.index(c) for c in category]))
    by_statsmodels = sm.MNLogit(codes, x[:, fitted.columns]).fit(method="newton", disp=0)
    assert fitted.statistics["null_deviance"] == pytest.approx(-2 * by_statsmodels.llnull, rel=1e-6)
    assert fitted.statistics["pseudo_r_squared"] == pytest.approx(by_statsmodels.prsquared, rel=1e-4, abs=1e-8)
    assert fitted.statistics["pseudo_r_squared"] == pytest.approx(
        1 - fitted.statistics["deviance"] / fitted.statistics["null_deviance"])


def test_a_rare_level_with_an_empty_category_is_not_estimated():
    """sex 'other' has no deteriorated episode: its estimate would diverge; it counts as the reference."""
    rng = np.random.default_rng(5)
    pre = rng.integers(150, 330, 300)
    category = rng.choice(list(cm.CATEGORIES), 300)
    frame = _frame("B", pre, np.zeros(300), category=list(category))
    frame.loc[:2, "sex"] = "other"
    frame.loc[:2, "reliable_change"] = "recovered"
    frame = cm.prepare(frame, AGES)
    design = cm.Design.of(frame)
    fitted = cm.fit_mnlogit(design.matrix(frame), frame["reliable_change"].to_numpy(object))
    assert fitted.statistics["converged"]
    assert "sex[other]" not in [design.terms[i] for i in fitted.columns]


def test_plan_groups_concerns_beyond_max_models():
    frame = pd.DataFrame({"concern_id": [f"C{i:02d}" for i in range(30) for _ in range(10)],
                          "location_id": "L1"})
    steps = cm.plan(frame, min_training=100, max_models=5)
    assert len(steps) <= 5 and all(s.level == "concern_group" for s in steps)
    assert sorted(c for s in steps for c in s.concerns) == [f"C{i:02d}" for i in range(30)]
    assert cm.concern_group("C07", 5) == cm.concern_group("C07", 5)  # stable
    single = cm.plan(frame[frame.concern_id == "C00"], min_training=5, max_models=5)
    assert single == []  # one concern, one location: nothing outside it to learn from


# --- end to end: staging tables -> SQL models -> statsmodels asset -> marts.casemix_adjusted -----

def _post_for(pre: float, pct: float) -> float:
    """The post-score that gives percentage improvement ``pct`` by the formula (pre > norm 118)."""
    return pre - pct / 100 * (pre - 118)


def _same_effect_two_severities(staging: Staging, concern: str = "C1", n: int = 150, seed: int = 1) -> None:
    """Two locations where the improvement depends on the pre-score in the same way (plus noise);
    L_mild takes mild clients (pre 155-215), L_severe severe ones (pre 235-325)."""
    rng = np.random.default_rng(seed)
    for location, low, high in (("L_mild", 155, 215), ("L_severe", 235, 325)):
        staging.location(concern, location)
        staging.therapist(concern, f"T_{location}", location)
        for i in range(n):
            pre = float(rng.integers(low, high + 1))
            pct = 80 - 0.35 * (pre - 150) + rng.normal(0, 6)  # below 100: no truncation
            staging.scored_episode(concern, f"{location}-{i:03d}", pre, round(_post_for(pre, pct), 1),
                                   location_id=location, therapist_id=f"T_{location}",
                                   start="2025-01-06", end="2025-07-01")


def _materialise(tmp_path):
    result = dg.materialize([*ASSETS, *CASEMIX_ASSETS, *CHECKS],
                            resources={"workspace": Workspace(data_dir=str(tmp_path))})
    assert result.success
    failed = [e.check_name for e in result.get_asset_check_evaluations()
              if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    assert failed == []  # (no_single_hidden_part, a WARN of the breakdowns, may list totals)
    return duckdb.connect(str(tmp_path / "work.duckdb"), read_only=True)


def test_same_effect_different_severity_adjusted_difference_is_near_zero(tmp_path):
    """Issue 12, done when: the raw difference is large, the adjusted difference near zero and inside
    its interval, for both locations."""
    con = connect(tmp_path / "work.duckdb")
    _same_effect_two_severities(Staging(con))
    con.close()
    con = _materialise(tmp_path)
    figures = {r["unit_id"]: r for r in rows(con, """
        SELECT * FROM marts.casemix_adjusted
        WHERE level = 'location' AND period_type = 'year' AND indicator = 'mean_improvement'""")}
    assert set(figures) == {"L_mild", "L_severe"}
    raw = figures["L_mild"]["observed"] - figures["L_severe"]["observed"]
    assert raw > 25  # 0.35 x (185 - 280) = 33 points apart
    for unit, f in figures.items():
        assert f["n"] == 150 and not f["suppressed"]
        assert abs(f["difference"]) < 3, unit
        assert f["ci_low"] < 0 < f["ci_high"] and f["outside_95"] is False
        assert f["model_ids"] == f"location:C1/{unit}"  # one concern: each location judged without itself
    # observed is exactly the published indicator
    observed = con.execute("""SELECT value FROM marts.indicators WHERE level = 'location' AND unit_id = 'L_mild'
                              AND period_type = 'year' AND indicator = 'mean_improvement'""").fetchone()[0]
    assert figures["L_mild"]["observed"] == pytest.approx(observed, rel=1e-12)
    # one concern: nothing outside it to compare with, so no concern-level figure
    assert con.execute("SELECT count(*) FROM marts.casemix_adjusted WHERE level = 'concern'").fetchone()[0] == 0
    # the models are stored with the run
    model = rows(con, """SELECT * FROM marts.casemix_models WHERE model_id = 'location:C1/L_mild'
                         AND model = 'ols_improvement' AND term = 'pre_score'""")[0]
    assert model["n_obs"] == 150 and model["software"] == "statsmodels"
    assert model["software_version"].startswith("0.15") and 0.5 < model["r_squared"] < 1
    assert model["estimate"] == pytest.approx(-0.35, abs=0.05)
    assert model["run_id"] is not None and model["left_out_location_id"] == "L_mild"
    con.close()


def test_suppression_and_interval_formula(tmp_path):
    """Two concerns: each judged by the other's model. A location under min_n shows no figure
    (the indicator's own suppression); the interval is difference +- 1.96 sqrt(sum var) / n."""
    con = connect(tmp_path / "work.duckdb")
    staging = Staging(con)
    _same_effect_two_severities(staging, "C1", n=60, seed=2)
    _same_effect_two_severities(staging, "C2", n=60, seed=3)
    staging.location("C2", "L_small")
    staging.therapist("C2", "T_small", "L_small")
    for i in range(6):
        staging.scored_episode("C2", f"S{i}", 200 + 5 * i, 150, location_id="L_small", therapist_id="T_small")
    con.close()
    con = _materialise(tmp_path)
    small = rows(con, """SELECT * FROM marts.casemix_adjusted WHERE unit_id = 'L_small' AND period_type = 'year'
                         AND indicator = 'mean_improvement'""")[0]
    assert small["suppressed"] and small["suppression_reason"] == "n_below_min_n" and small["n"] == 6
    concern = rows(con, """SELECT * FROM marts.casemix_adjusted WHERE level = 'concern' AND unit_id = 'C1'
                           AND period_type = 'year' AND indicator = 'mean_improvement'""")[0]
    assert concern["model_ids"] == "concern:C1" and concern["n"] == 120
    # the interval by hand from the per-episode table
    var, n, model_se = con.execute("""SELECT sum(improvement_variance), count(*), avg(expected_improvement_se)
                                      FROM outcomes.casemix_expected WHERE concern_id = 'C1'""").fetchone()
    se = np.sqrt(var / n**2 + model_se**2)
    assert concern["ci_high"] - concern["difference"] == pytest.approx(1.959964 * se, rel=1e-9)
    assert concern["limit_998"] == pytest.approx(3.090232 * se, rel=1e-9)
    # a category share: se = 100 sqrt(sum p(1 - p)) / n
    share = rows(con, """SELECT * FROM marts.casemix_adjusted WHERE level = 'concern' AND unit_id = 'C1'
                         AND period_type = 'year' AND indicator = 'pct_recovered'""")[0]
    p = np.array([r[0] for r in con.execute(
        "SELECT p_recovered FROM outcomes.casemix_expected WHERE concern_id = 'C1'").fetchall()])
    assert share["expected"] == pytest.approx(100 * p.mean(), rel=1e-9)
    assert share["se"] == pytest.approx(100 * np.sqrt((p * (1 - p)).sum()) / len(p), rel=1e-9)
    # therapists are judged by their concern's model too (kept in the work database)
    assert con.execute("SELECT count(*) FROM marts.casemix_adjusted WHERE level = 'therapist'").fetchone()[0] > 0
    con.close()


def test_prediction_se_matches_statsmodels():
    """The model's own uncertainty about an expectation: statsmodels' get_prediction().se_mean."""
    import statsmodels.api as sm

    rng = np.random.default_rng(2)
    pre = rng.integers(150, 330, 200).astype(float)
    y = 70 - 0.3 * (pre - 150) + rng.normal(0, 7, 200)
    x = np.column_stack([np.ones(200), pre])
    fitted = cm.fit_ols(x, y)
    new = np.array([[1.0, 160.0], [1.0, 320.0]])
    oracle = sm.OLS(y, x).fit().get_prediction(new).se_mean
    np.testing.assert_allclose(fitted.prediction_se(new), oracle, rtol=1e-10)


# --- explain, on a published run of the command line ---------------------------------------------

def test_explain_a_casemix_figure(tmp_path, capsys):
    """`rom-pipeline explain --table marts.casemix_adjusted`: observed, expected, difference, n, interval,
    the model (n, R², statsmodels version) and the episodes, reproduced from the audit trail."""
    from cli_runs import RUN, cli_env, generate, run_cli
    from rom_pipeline.cli import main
    from rom_pipeline.explain import explain, open_database

    exports = generate(tmp_path / "exports", concerns=2, episodes=400, seed=3)
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text("benchmarks:\n  casemix_min_training_episodes:\n    value: 50\n")
    data = tmp_path / "data"
    done = run_cli(cli_env(exports, data, ROM_PARAMETERS=str(parameters)))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    figure = rows(con, """SELECT * FROM marts.casemix_adjusted WHERE level = 'location' AND NOT suppressed
                          AND period_type = 'year' AND indicator = 'mean_improvement' ORDER BY n DESC LIMIT 1""")[0]
    model = rows(con, f"""SELECT DISTINCT n_obs, r_squared, software_version FROM marts.casemix_models
                          WHERE model_id = '{figure["model_ids"]}' AND model = 'ols_improvement'""")[0]
    con.close()
    query = dict(table="marts.casemix_adjusted", concern=figure["concern_id"], level="location",
                 unit=figure["unit_id"], period_type="year", period=figure["period"], indicator="mean_improvement")
    wh = open_database("warehouse", data)
    doc = explain(wh, **query)
    wh.close()
    c = doc["casemix"]
    assert (c["n"], c["observed"], c["expected"], c["difference"]) == (
        figure["n"], figure["observed"], figure["expected"], figure["difference"])
    assert c["ci_low"] == figure["ci_low"] and c["outside_95"] == figure["outside_95"]
    [m] = doc["models"]
    assert (m["n_obs"], m["r_squared"], m["software"], m["software_version"]) == (
        model["n_obs"], model["r_squared"], "statsmodels", model["software_version"])
    assert m["left_out_concerns"] == figure["concern_id"] and {t["term"] for t in m["terms"]} >= {"Intercept", "pre_score"}
    # the episodes of the trail give n and the observed value back (their mean, computed here)
    assert len(doc["episodes"]) == figure["n"]
    assert sum(e["observed"] for e in doc["episodes"]) / figure["n"] == pytest.approx(figure["observed"], rel=1e-12)
    assert doc["reproduced"]["matches"] is True and doc["reproduced"]["expected"] is None  # warehouse: no per-episode
    # the work database has each episode's expected value: the expected figure is reproduced too
    work = open_database("work", data)
    doc = explain(work, **query)
    work.close()
    assert all(e["expected"] is not None and e["model_id"] == figure["model_ids"] for e in doc["episodes"])
    assert doc["reproduced"]["expected"] == pytest.approx(figure["expected"], rel=1e-9)
    assert doc["reproduced"]["matches"] is True
    # the command line prints it
    assert main(["explain", "--data-dir", str(data), "--table", "marts.casemix_adjusted", "--concern",
                 figure["concern_id"], "--level", "location", "--unit", figure["unit_id"], "--period",
                 figure["period"], "--indicator", "mean_improvement"]) == 0
    out = capsys.readouterr().out
    assert "Observed" in out and "expected" in out and "difference" in out and "statsmodels" in out
    assert f"n = {figure['n']}" in out and "matches the published figure" in out
    # a second night on the same deliveries, refitted (--full-rebuild: without it, a night with nothing
    # new runs nothing): the models are the same figures, not 'changed' (run_id aside)
    again = run_cli(cli_env(exports, data, ROM_PARAMETERS=str(parameters)), *RUN, "--full-rebuild")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    work = duckdb.connect(str(data / "work.duckdb"), read_only=True)
    changes = work.execute("""SELECT f.change, count(*) FROM audit.published_figures AS f
                              JOIN audit.runs AS r USING (run_id)
                              WHERE f.table_name LIKE 'marts.casemix%' GROUP BY ALL ORDER BY 1""").fetchall()
    statuses = [r[0] for r in work.execute("SELECT status FROM audit.runs ORDER BY run_seq").fetchall()]
    work.close()
    assert statuses == ["published", "published"]  # both nights fitted the models (no quiet night)
    assert [c for c, _ in changes] == ["new"]  # recorded once, by the first night


def test_without_two_categories_outside_the_unit_no_shares_are_expected():
    """B's episodes are all 'unchanged': no multinomial model for A (probabilities NaN, stored as NULL),
    the improvement model still judges A."""
    rng = np.random.default_rng(4)
    pre_b = rng.integers(150, 330, 120)
    frame = cm.prepare(pd.concat([_frame("A", [200, 250], [10, 20]),
                                  _frame("B", pre_b, 50 + rng.normal(0, 5, 120), category=["unchanged"] * 120)]),
                       AGES)
    messages = []
    expected, fitted = cm.judge(frame, cm.Design.of(frame), min_training=100, max_models=25, log=messages.append)
    assert expected["expected_improvement"].notna().all() and expected["p_recovered"].isna().all()
    assert [m.model for _, m in fitted] == [cm.OLS_MODEL]
    assert any("no multinomial model" in m for m in messages)
