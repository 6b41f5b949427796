"""`rom-pipeline explain --table marts.not_on_track_counts`: how a count of open episodes not on track was made.

For a location or concern (``--period``: the year of the export date) it prints the published count with its
suppression, the rule (the macro ``not_on_track_reason`` of ``sql/macros/rules.sql`` with the parameter values
the run used), and, for the latest run, every open episode of the unit that was judged, with its intake and
latest SCL90, its cell of the expected course and the reason it was flagged or not; then the count reproduced
from those episodes. ``marts.not_on_track`` holds the latest night only (the audit trail versions the count, not
the episodes), so an earlier run's count is shown without its episodes. Episode ids, never a client or
therapist id (docs/feedback.md).
"""
from __future__ import annotations

import json

RULE = ("not_on_track_reason(latest, pre, expected, rc): latest - pre > rc -> reliably_worse; else "
        "latest - expected > rc -> above_expected_course; else on track (strictly: exactly at the margin is on "
        "track). expected = the not_on_track_percentile of the expected course (marts.expected_course) for the "
        "episode's intake band at the session bin of its latest SCL90; rc = reliable_change z * sqrt(2) * s_pre * "
        "sqrt(1 - r_xx) of SCL90. Judged: an open episode with an SCL90 pre-score and a later SCL90.")
FEEDBACK_PARAMETERS = ("intake_severity_band_edges", "expected_course_session_bins", "expected_course_percentiles",
                       "expected_course_min_episodes", "not_on_track_percentile")


def explain_not_on_track(con, out: dict, the_run: dict, latest_run: bool, concern: str | None, level: str,
                         unit: str | None) -> dict:
    tree = json.loads(the_run["parameters_json"]).get("parameters", {})
    outcomes = tree.get("outcomes", {})
    rc = tree.get("reliable_change", {})
    primary = outcomes.get("primary_instrument", "SCL90")
    out["formula"] = RULE
    out["aggregation_rule"] = "count of the judged open episodes flagged not on track"
    out["parameters"] = {
        **{name: (outcomes.get(name) or {}).get("value") for name in FEEDBACK_PARAMETERS},
        "reliable_change": {"z_critical": rc.get("z_critical", {}).get("value"),
                            **{k: rc.get("instruments", {}).get(primary, {}).get(k) for k in ("s_pre", "r_xx")}},
        **{name: (tree.get("indicators", {}).get(name) or {}).get("value") for name in ("min_n", "min_count_published")},
    }
    if not latest_run:
        out["note"] = ("marts.not_on_track holds the latest night's open episodes only: the episodes behind an "
                       "earlier run's count are not kept (the count itself is, in audit.published_figures)")
        return out
    where = "concern_id = ?" + (" AND location_id = ?" if level == "location" else "")
    cur = con.execute(f"""
        SELECT episode_id, location_id, pre_measurement_id, pre_score, intake_band, latest_measurement_id,
               latest_administered_on, latest_session, session_bin, latest_score, expected_score, rc_threshold,
               not_on_track, not_on_track_reason
        FROM marts.not_on_track WHERE {where} ORDER BY episode_id""",
                      [concern] + ([unit] if level == "location" else []))
    cols = [d[0] for d in cur.description]
    episodes = [dict(zip(cols, r)) for r in cur.fetchall()]
    out["episodes"] = episodes
    flagged = sum(1 for e in episodes if e["not_on_track"])
    reproduced = {"n": len(episodes), "value": float(flagged)}
    if out["suppressed"] or out["n"] is None:
        reproduced["matches"], reproduced["value"] = None, None
    else:
        reproduced["matches"] = reproduced["n"] == out["n"] and reproduced["value"] == out["value"]
    out["reproduced"] = reproduced
    return out


def render_not_on_track_text(doc: dict, fmt) -> list[str]:
    lines = ["", f"Rule     {doc['formula']}", "Parameters (as this run used them):"]
    for name, value in doc["parameters"].items():
        lines.append(f"  {name} = {json.dumps(value)}")
    if "note" in doc:
        return lines + ["", doc["note"]]
    episodes = doc["episodes"]
    lines += ["", f"Open episodes judged: {len(episodes)}; not on track: "
                  f"{sum(1 for e in episodes if e['not_on_track'])}",
              "  episode     location  pre (id: score)        band      latest (id: score, session)      "
              "bin     expected  reason"]
    for e in episodes:
        lines.append(
            f"  {e['episode_id']:<11} {str(e['location_id']):<9} "
            f"{str(e['pre_measurement_id']) + ': ' + fmt(e['pre_score']):<22} {str(e['intake_band']):<9} "
            f"{str(e['latest_measurement_id']) + ': ' + fmt(e['latest_score']) + ', s' + fmt(e['latest_session']):<32} "
            f"{str(e['session_bin'] or '-'):<7} {fmt(e['expected_score']):<9} "
            f"{e['not_on_track_reason'] or 'on track'}")
    rep = doc["reproduced"]
    match = {True: "matches the published figure", False: "DOES NOT MATCH the published figure",
             None: "not comparable (the published figure is suppressed)"}[rep["matches"]]
    lines += ["", f"Reproduced from these episodes: n = {rep['n']}, value = "
                  f"{'(suppressed)' if doc['suppressed'] else fmt(rep['value'])} -> {match}"]
    return lines
