"""The manager's caseload review (issue 12 part 5; docs/reports.md, docs/outcome-rules.md s13), through the real SQL.

A hand-built concern: location L1 with therapist T1, whose 10 complete episodes all score 100% improvement
(pre 200, post 100 <= norm 118 -> 100), T2, whose 10 complete episodes score 50% each (pre 258, post 188:
(258 - 188) / (258 - 118) * 100 = 50, a mean under the catalogue's target of 85), and T3 with 9 episodes at
100% (fewer than min_n = 10: no flag). The pages are rendered by the same functions build_reports uses, from
the work database through ManagerSource.
"""
from __future__ import annotations

import pytest

from html_tables import html_tables
from outcomes_fixtures import OUTCOME_MODELS, Staging, connect, rows
from rom_pipeline.lib.sqlfiles import SqlModel
from rom_pipeline.reports import labels, views
from rom_pipeline.reports.data import ManagerSource, RunInfo
from rom_pipeline.reports.render import render

MODELS = OUTCOME_MODELS + [
    SqlModel("marts", "internal_benchmark"),
    SqlModel("outcomes", "scl90_course"),
    SqlModel("outcomes", "expected_course_fits"),
    SqlModel("marts", "expected_course"),
    SqlModel("marts", "not_on_track"),
    SqlModel("marts", "caseload_review"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    path = tmp_path_factory.mktemp("caseload") / "work.duckdb"
    con = connect(path)
    s = Staging(con)
    s.location("C1", "L1")
    for t in ("T1", "T2", "T3"):
        s.therapist("C1", t, "L1")
    for i in range(10):  # T1: all at 100%; depression, GP
        s.scored_episode("C1", f"A{i}", 200, 100, therapist_id="T1")
    for i in range(10):  # T2: all at 50%; 5 anxiety + 5 depression, 7 GP + 3 specialist, 6 specialised + 4 unknown
        s.scored_episode("C1", f"B{i}", 258, 188, therapist_id="T2",
                         diagnosis_group="anxiety" if i < 5 else "depression",
                         referrer="gp" if i < 7 else "specialist",
                         care_type="specialised" if i < 6 else None)
    for i in range(9):  # T3: all at 100% but one episode short of min_n
        s.scored_episode("C1", f"C{i}", 200, 100, therapist_id="T3")
    for model in MODELS:
        model.build(con)
    con.close()
    return path


def test_the_all_100_flag_in_sql(work):
    source = ManagerSource(work)
    try:
        found = {r["unit_id"]: r for r in source.caseload_review("C1")
                 if r["dimension"] == "total" and r["level"] == "therapist"}
        location = [r for r in source.caseload_review("C1") if r["level"] == "location" and r["dimension"] == "total"]
    finally:
        source.close()
    assert (found["T1"]["n_complete"], found["T1"]["n_complete_at_100"], found["T1"]["all_complete_at_100"]) == (10, 10, True)
    assert (found["T2"]["n_complete"], found["T2"]["n_complete_at_100"], found["T2"]["all_complete_at_100"]) == (10, 0, False)
    assert (found["T3"]["n_complete"], found["T3"]["all_complete_at_100"]) == (9, False)  # below min_n
    assert location[0]["n"] == 29 and location[0]["all_complete_at_100"] is None


def test_case_mix_shares_by_hand(work):
    source = ManagerSource(work)
    try:
        index = {(r["level"], r["unit_id"], r["dimension"], r["category"]): r for r in source.caseload_review("C1")}
    finally:
        source.close()
    t2 = index[("therapist", "T2", "diagnosis_group", "anxiety")]
    assert (t2["n"], t2["n_unit"], t2["share"], t2["suppressed"]) == (5, 10, 50.0, False)
    # 3 of 10: a count of 3 < 5 gives itself away: small_count (the therapist's own view still shows it)
    spec = index[("therapist", "T2", "referrer", "specialist")]
    assert (spec["share"], spec["suppression_reason"]) == (30.0, "small_count")
    assert index[("location", "L1", "diagnosis_group", "depression")]["share"] == pytest.approx(100 * 24 / 29)
    assert index[("location", "L1", "baseline_severity", ">=250")]["share"] == pytest.approx(100 * 10 / 29)
    # L1's referrers: gp 26, specialist 3 of 29: 3 is a small count, and its complement 26 hides gp too
    assert [index[("location", "L1", "referrer", c)]["suppression_reason"] for c in ("gp", "specialist")] \
        == ["small_count", "small_count"]
    # L1's severity bands: 200-249 19, >=250 10: both shown; diagnosis depression 24, anxiety 5: shown
    assert not any(index[("location", "L1", d, c)]["suppressed"] for d, c in (
        ("baseline_severity", "200-249"), ("baseline_severity", ">=250"), ("diagnosis_group", "anxiety")))
    # L1's care types: basic 19, specialised 6, unknown 4: 4 is a small count; with the total shown it would
    # follow from 29 - 19 - 6, so the smallest shown category (specialised, 6) is hidden too
    assert {c: index[("location", "L1", "care_type", c)]["suppression_reason"]
            for c in ("basic", "specialised", "unknown")} == {"basic": None, "specialised": "complementary",
                                                              "unknown": "small_count"}
    # T3 rests on 9 closed episodes: every share suppressed by the small-number rule
    assert index[("therapist", "T3", "diagnosis_group", "depression")]["suppression_reason"] == "n_below_min_n"


RUN = views.as_run(RunInfo(None, None, None))


@pytest.fixture(scope="module")
def pages(work):
    source = ManagerSource(work)
    try:
        catalogue = rows(source.con, "SELECT * FROM src.config.indicator_catalogue ORDER BY position")
        rules = views.Rules(min_n=10, min_count=5,
                            targets={r["indicator"]: r for r in catalogue if r["target"] is not None},
                            indicators=labels.IndicatorCatalogue.from_rows(catalogue))
        therapists = source.therapists("C1")
        bench = {(r["unit_id"], r["period_type"], r["period"], r["indicator"]): r
                 for r in source.therapist_benchmark("C1")}
        review = source.caseload_review("C1")
        out, flags = {}, {}
        for t in therapists:
            r = views.caseload_review(t, review, source.therapist_casemix("C1"), bench, "2025", rules, 0)
            flags[t["therapist_id"]] = views.caseload_flags(r)
            page = views.therapist_context(t, therapists, bench, {}, views.ConcernUnits("C1", []), ["2025"], [],
                                           "2025", rules, {"id": "L1", "name": "L1"}, {"id": "C1", "name": "C1"},
                                           None, RUN)
            out[t["therapist_id"]] = render("therapist.html", **page, review=r)
        out["index"] = render("manager_index.html", title="i", location={"id": "L1", "name": "L1"},
                              concern={"id": "C1", "name": "C1"}, year="2025", rules={"min_n": 10}, run=RUN,
                              therapists=views.manager_overview(therapists, bench, {}, "2025", rules, [], flags),
                              n_flagged=0)
    finally:
        source.close()
    return out


def test_the_rendered_package_shows_both_flags(pages):
    t1, t2, t3 = pages["T1"], pages["T2"], pages["T3"]
    assert "gesprek: caseload mogelijk te licht" in t1 and "bespreken: hele caseload doornemen" not in t1
    assert "alle 10 trajecten met" in t1
    assert "bespreken: hele caseload doornemen" in t2 and "gesprek: caseload mogelijk te licht" not in t2
    # the seed's checklist, with the missing transfer field said out loud; the target read from the catalogue
    for item in ("diagnoses", "protocol", "overgedragen", "geen veld voor een overdracht", "supervisie"):
        assert item in t2
    assert "Gemiddeld percentage verbetering SCL-90 50,0" in t2 and "target ≥ 85" in t2
    assert "caseload mogelijk te licht" not in t3 and "hele caseload doornemen" not in t3  # 9 < min_n; 100% meets 85
    # case mix beside the location's: T2's diagnosis table (anxiety 5 of 10 vs the location's 5 of 29)
    mix = [t for t in html_tables(t2) if t[0][0][0] == dict(labels.BREAKDOWN_DIMENSIONS)["diagnosis_group"]]
    assert mix, "no diagnosis table"
    cells = {r[0][0]: (r[1][0], r[2][0]) for r in mix[0][1:]}
    anxiety = labels.label(labels.CATEGORIES, "anxiety")
    assert cells[anxiety] == ("50,0%", "17,2%")
    bands = [t for t in html_tables(t2) if t[0][0][0].startswith("Ernst bij aanvang")][0]
    assert {r[0][0]: r[1][0] for r in bands[1:]} == {"200-249": "0,0%", ">=250": "100,0%"}  # none of T2's: 0%
    # 3 of T2's 10 from a specialist: shown to the manager, marked as a count that shared figures hide
    assert "30,0%*" in t2 and "onderdrukt: het cijfer zou een aantal kleiner dan 5 prijsgeven (in gedeelde cijfers)" in t2
    # the index: a flags column linking to the review section
    index = html_tables(pages["index"])[0]
    assert index[0][-1][0] == "caseloadbespreking"
    flags = {r[0][0].split(" ")[1]: r[-1][0] for r in index[1:]}
    assert flags == {"T1": "gesprek: caseload mogelijk te licht", "T2": "bespreken: hele caseload doornemen", "T3": ""}


# --- rom-pipeline explain --table marts.caseload_review, on the same concern (work database) ---

def _explain_caseload(work, **figure):
    from rom_pipeline.explain import explain, open_database

    con = open_database(str(work), work.parent)
    try:
        return explain(con, table="marts.caseload_review", concern="C1", period_type="year",
                       **{"level": "therapist", "period": "2025", "indicator": None, **figure})
    finally:
        con.close()


def test_explain_reproduces_t1s_flag_and_t2s_shares_from_the_episodes(work):
    t1 = _explain_caseload(work, unit="T1", indicator="total")
    # T1: 10 closed episodes A0..A9, all complete at 100% (pre 200, post 100 <= norm 118), min_n 10 -> TRUE
    assert [e["episode_id"] for e in t1["episodes"]] == [f"A{i}" for i in range(10)]
    assert {e["pct_improvement"] for e in t1["episodes"]} == {100}
    assert t1["flag"] == {"n_complete": 10, "n_complete_at_100": 10, "all_complete_at_100": True, "min_n": 10}
    assert t1["reproduced"]["flag"] == {"n_complete": 10, "n_complete_at_100": 10, "min_n": 10,
                                        "all_complete_at_100": True, "matches": True}
    assert t1["parameters"] == {"min_n": 10, "min_count_published": 5}
    assert "client" not in str(t1["episodes"][0].keys())
    # T2's referrers: gp 7 (70%), specialist 3 (30%): 3 < 5 is a small count, and gp's complement 10 - 7 = 3 too
    t2 = _explain_caseload(work, unit="T2", indicator="referrer")
    rows = {r["category"]: (r["n"], r["n_unit"], r["share"], r["suppression_reason"]) for r in t2["reproduced"]["rows"]}
    assert rows == {"gp": (7, 10, 70.0, "small_count"), "specialist": (3, 10, 30.0, "small_count")}
    assert t2["reproduced"]["matches"] is True
    assert t2["reproduced"]["flag"]["all_complete_at_100"] is False  # 0 of 10 at 100%
    one = _explain_caseload(work, unit="T2", indicator="diagnosis_group", category="anxiety")
    assert [(r["n"], r["share"], r["suppressed"]) for r in one["rows"]] == [(5, 50.0, False)]
    # L1's care types: basic 19, specialised 6, unknown 4 of 29: unknown small, specialised complementary
    loc = _explain_caseload(work, level="location", unit="L1", indicator="care_type")
    assert {r["category"]: r["suppression_reason"] for r in loc["reproduced"]["rows"]} == {
        "basic": None, "specialised": "complementary", "unknown": "small_count"}
    assert len(loc["episodes"]) == 29 and loc["flag"] is None and loc["reproduced"]["matches"] is True


def test_explain_caseload_errors_list_the_valid_values(work, capsys):
    from rom_pipeline.cli import main
    from rom_pipeline.explain import ExplainError

    with pytest.raises(ExplainError, match="its therapists are: T1, T2, T3"):
        _explain_caseload(work, unit="T9")
    with pytest.raises(ExplainError, match="its years .* are: 2025"):
        _explain_caseload(work, unit="T1", period="2024")
    with pytest.raises(ExplainError, match="one of: diagnosis_group, baseline_severity, referrer, care_type, total"):
        _explain_caseload(work, unit="T1", indicator="age")
    assert main(["explain", "--table", "marts.caseload_review", "--concern", "C1", "--level", "therapist",
                 "--unit", "T1", "--period", "2025", "--db", str(work), "--data-dir", str(work.parent)]) == 0
    text = capsys.readouterr().out
    assert "all_complete_at_100 = True" in text and "A9" in text and "DOES NOT MATCH" not in text
