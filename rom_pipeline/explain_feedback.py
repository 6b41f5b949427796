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

from rom_pipeline.lib.query import has_table, rows as _rows

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


# --- marts.feedback_backtest and marts.expected_course (issue 12: every new figure in explain) -----------------
#
# Neither table is versioned in the audit trail (they are rebuilt every run), so they are explained as the
# latest published run left them: the published row (blanked where suppressed in the warehouse; the full
# counts with --db work), the rule and the parameters that run used, and with --db work the episodes
# (outcomes.feedback_backtest_episodes) or measurements (outcomes.scl90_course) behind the figure, from which
# the figure is recomputed. Episode and measurement ids only, never a client or therapist id.

BACKTEST_TABLE = "marts.feedback_backtest"
COURSE_TABLE = "marts.expected_course"
BACKTEST_FIGURES = ("sensitivity", "precision")
BACKTEST_RULE = (RULE + " Back-test: every closed episode with complete SCL90 scores is replayed at its SCL90s after "
                 "the pre-score and before the post-score's date, against the expected course fitted WITHOUT its own "
                 "fold (backtest_folds; fold = backtest_fold(concern, episode)); flagged = any replayed measurement "
                 "flagged. sensitivity = flagged among ended deteriorated / ended deteriorated * 100; precision = "
                 "ended deteriorated or unchanged among flagged / flagged * 100 (reliable change of the complete "
                 "episode). Suppressed: fewer than min_n episodes in the denominator, or a numerator or complement "
                 "of 1..min_count_published-1.")
COURSE_RULE = ("Per intake band (severity_band of the SCL90 pre-score) and session bin: quantile_cont of the SCL90 "
               "scores of all closed episodes' measurements in the cell (session 0 = the pre-score). A bin with fewer "
               "than expected_course_min_episodes episodes is merged with the preceding bins of its band (never the "
               "intake bin) until it has them (cell_from_bin = where the merged cell starts); when even all of them "
               "do not reach it, the cell has no percentiles (no_course). Suppressed: fewer than min_n episodes.")


def feedback_parameters(tree: dict) -> dict:
    outcomes = tree.get("outcomes", {})
    rc = tree.get("reliable_change", {})
    primary = outcomes.get("primary_instrument", "SCL90")
    primary = primary.get("value", "SCL90") if isinstance(primary, dict) else primary
    return {
        **{name: (outcomes.get(name) or {}).get("value") for name in FEEDBACK_PARAMETERS + ("backtest_folds",)},
        "reliable_change": {"z_critical": rc.get("z_critical", {}).get("value"),
                            **{k: rc.get("instruments", {}).get(primary, {}).get(k) for k in ("s_pre", "r_xx")}},
        **{name: (tree.get("indicators", {}).get(name) or {}).get("value") for name in ("min_n", "min_count_published")},
    }


def _share(numerator: int, denominator: int) -> float | None:
    return 100.0 * numerator / denominator if denominator else None


def explain_backtest(con, tree: dict, concern: str | None, level: str, figure: str | None, error) -> dict:
    """The back-test row of a concern (level concern) or of all concerns (level all), with its episodes when the
    database has them (--db work). ``error`` is the exception class to raise for a bad value."""
    if not has_table(con, *BACKTEST_TABLE.split(".")):
        raise error(f"{BACKTEST_TABLE} is not in this database (has the pipeline published the feedback?)")
    if figure not in (None, *BACKTEST_FIGURES):
        raise error(f"{BACKTEST_TABLE} has the figures {', '.join(BACKTEST_FIGURES)} (or omit --indicator for both); "
                    f"not {figure!r}")
    rows = _rows(con, f"SELECT * FROM {BACKTEST_TABLE} ORDER BY level DESC, concern_id")
    key = "all" if level == "all" else concern
    row = next((r for r in rows if r["unit_id"] == key), None)
    if row is None or level not in ("concern", "all"):
        valid = ", ".join(f"--concern {r['concern_id']}" if r["level"] == "concern" else "--level all" for r in rows)
        raise error(f"{BACKTEST_TABLE} has no row for level {level} {key}; its rows are: {valid or '(none)'}")
    out: dict = {
        "figure": {"table": BACKTEST_TABLE, "level": row["level"], "concern_id": row["concern_id"],
                   "unit_id": row["unit_id"], "indicator": figure or "sensitivity, precision"},
        "published_row": row,
        "formula": BACKTEST_RULE,
        "parameters": feedback_parameters(tree),
        "shares": {},
    }
    for name, num, den in (("sensitivity", "n_deteriorated_flagged", "n_deteriorated"),
                           ("precision", "n_flagged_not_improved", "n_flagged")):
        reason = row[f"{name}_suppression_reason"]
        out["shares"][name] = {"value": row[name], "numerator": row[num], "denominator": row[den],
                               "suppressed": reason is not None, "suppression_reason": reason}
    if not has_table(con, "outcomes", "feedback_backtest_episodes"):
        out["note"] = ("the episodes behind the back-test are in the work database only (outcomes."
                       "feedback_backtest_episodes): add --db work to list them and reproduce the shares")
        return out
    where = "" if row["level"] == "all" else "WHERE concern_id = ?"
    episodes = _rows(con, f"""
        SELECT concern_id, episode_id, location_id, fold, n_replayed, flagged, first_flag_session,
               first_flag_reason, reliable_change, ended_deteriorated, ended_not_improved
        FROM outcomes.feedback_backtest_episodes {where} ORDER BY concern_id, episode_id""",
                     [] if row["level"] == "all" else [row["concern_id"]])
    out["episodes"] = episodes
    deteriorated = [e for e in episodes if e["ended_deteriorated"]]
    flagged = [e for e in episodes if e["flagged"]]
    counts = {"sensitivity": (sum(1 for e in deteriorated if e["flagged"]), len(deteriorated)),
              "precision": (sum(1 for e in flagged if e["ended_not_improved"]), len(flagged))}
    out["reproduced"] = {}
    for name, (num, den) in counts.items():
        published = out["shares"][name]
        value = _share(num, den)
        if published["value"] is None:  # blanked in the published warehouse (the work database keeps it)
            matches = None
        else:
            matches = (num == published["numerator"] and den == published["denominator"]
                       and value is not None and abs(value - published["value"]) <= 1e-9 * max(1.0, value))
        out["reproduced"][name] = {"numerator": num, "denominator": den,
                                   "value": None if matches is None else value, "matches": matches}
    return out


def _bin_labels(con) -> list[tuple[str, str]]:
    return [(r["intake_band"], r["session_bin"]) for r in _rows(con, f"""
        SELECT DISTINCT intake_band, session_bin, session_bin_from FROM {COURSE_TABLE}
        ORDER BY intake_band, session_bin_from""")]


def explain_expected_course(con, tree: dict, band: str | None, session_bin: str | None, percentile: str | None,
                            error) -> dict:
    """A cell (intake band x session bin) of the expected course, with the measurements behind its
    percentiles when the database has them (--db work), recomputed with quantile_cont."""
    if not has_table(con, *COURSE_TABLE.split(".")):
        raise error(f"{COURSE_TABLE} is not in this database (has the pipeline published the feedback?)")
    cells = _bin_labels(con)
    bands = sorted({b for b, _ in cells})
    if band not in bands:
        raise error(f"{COURSE_TABLE}: --unit is the intake band; its bands are: {', '.join(bands)} (not {band!r})")
    bins = [s for b, s in cells if b == band]
    if session_bin not in bins:
        raise error(f"{COURSE_TABLE}: --period is the session bin; band {band} has the bins: {', '.join(bins)} "
                    f"(not {session_bin!r})")
    rows = _rows(con, f"SELECT * FROM {COURSE_TABLE} WHERE intake_band = ? AND session_bin = ? ORDER BY percentile",
                 [band, session_bin])
    if percentile is not None:
        wanted = percentile.lower().lstrip("p")
        chosen = [r for r in rows if str(r["percentile"]) == wanted]
        if not chosen:
            raise error(f"{COURSE_TABLE}: --indicator is a percentile; the percentiles are: "
                        f"{', '.join(str(r['percentile']) for r in rows)} (not {percentile!r})")
        rows = chosen
    first = rows[0]
    parameters = feedback_parameters(tree)
    merged = first["cell_from_bin"] != first["session_bin"]
    out: dict = {
        "figure": {"table": COURSE_TABLE, "intake_band": band, "session_bin": session_bin,
                   "indicator": ", ".join(f"p{r['percentile']}" for r in rows)},
        "published_rows": rows,
        "formula": COURSE_RULE,
        "parameters": parameters,
        "cell": {k: first[k] for k in ("session_bin_from", "session_bin_to", "cell_from_bin", "n_episodes",
                                       "n_measurements", "suppressed", "suppression_reason")},
        "merged": merged,
        "merged_because": (f"bin {session_bin} alone had fewer than expected_course_min_episodes = "
                           f"{parameters['expected_course_min_episodes']} closed episodes: merged with the preceding "
                           f"bins from {first['cell_from_bin']}") if merged else None,
    }
    if not has_table(con, "outcomes", "scl90_course"):
        out["note"] = ("the measurements behind the expected course are in the work database only (outcomes."
                       "scl90_course): add --db work to list them and recompute the percentiles")
        return out
    measurements = _cell_measurements(con, band, first["cell_from_bin"], first["session_bin_from"])
    out["measurements"] = measurements
    scores = [m["score"] for m in measurements]
    reproduced = {"n_episodes": len({(m["concern_id"], m["episode_id"]) for m in measurements}),
                  "n_measurements": len(scores), "percentiles": {}}
    for r in rows:
        value = con.execute("SELECT quantile_cont(s, ?) FROM unnest(?::DOUBLE[]) AS t(s)",
                            [r["percentile"] / 100, scores]).fetchone()[0] if scores else None
        published = r["score"]
        if published is None:
            matches = None
        else:
            matches = value is not None and abs(value - published) <= 1e-9 * max(1.0, abs(published))
        reproduced["percentiles"][r["percentile"]] = {"value": None if matches is None else value,
                                                      "matches": matches}
    reproduced["counts_match"] = (first["n_episodes"] is None or first["n_episodes"] == reproduced["n_episodes"]) and (
        first["n_measurements"] is None or first["n_measurements"] == reproduced["n_measurements"])
    out["reproduced"] = reproduced
    return out


def _cell_measurements(con, band: str, cell_from_label: str, bin_from: int) -> list[dict]:
    """The closed episodes' measurements of a cell: the band's bins from the cell's first bin to this one."""
    start = con.execute(f"SELECT min(session_bin_from) FROM {COURSE_TABLE} WHERE intake_band = ? AND session_bin = ?",
                        [band, cell_from_label]).fetchone()[0]
    return _rows(con, """
        SELECT concern_id, episode_id, measurement_id, administered_on, session, session_bin_from, score
        FROM outcomes.scl90_course
        WHERE is_closed AND intake_band = ? AND session_bin_from BETWEEN ? AND ?
        ORDER BY session, score, concern_id, episode_id, measurement_id""", [band, start, bin_from])


MATCH = {True: "matches the published figure", False: "DOES NOT MATCH the published figure",
         None: "not comparable (the published figure is suppressed)"}


def render_backtest_text(doc: dict, fmt) -> str:
    f, row = doc["figure"], doc["published_row"]
    lines = [f"Figure   {f['table']}: {f['indicator']} for "
             f"{'all concerns' if f['level'] == 'all' else 'concern ' + str(f['concern_id'])}",
             f"Run      {doc['run']['run_id']} (run {doc['run']['run_seq']}, code {doc['run']['code_version']})", "",
             f"Episodes: {fmt(row['n_episodes'])} closed with complete SCL90 scores; {fmt(row['n_replayed'])} "
             "replayed (an SCL90 between pre and post)"]
    for name, share in doc["shares"].items():
        value = f"suppressed ({share['suppression_reason']})" if share["suppressed"] else fmt(share["value"])
        what = ("deteriorated episodes, of which flagged before their last session" if name == "sensitivity"
                else "flagged episodes, of which ended deteriorated or unchanged")
        lines.append(f"{name:<12} {value}: {fmt(share['denominator'])} {what}: {fmt(share['numerator'])}")
    lines += ["", f"Rule     {doc['formula']}", "Parameters (as this run used them):"]
    lines += [f"  {k} = {json.dumps(v)}" for k, v in doc["parameters"].items()]
    if "note" in doc:
        return "\n".join(lines + ["", doc["note"]])
    lines += ["", f"Episodes of the back-test: {len(doc['episodes'])}",
              "  concern  episode     fold  replayed  flagged  first flag (session: reason)        ended"]
    for e in doc["episodes"]:
        first = f"{fmt(e['first_flag_session'])}: {e['first_flag_reason']}" if e["flagged"] else "-"
        lines.append(f"  {str(e['concern_id']):<8} {e['episode_id']:<11} {fmt(e['fold']):<5} {fmt(e['n_replayed']):<9} "
                     f"{'yes' if e['flagged'] else 'no':<8} {first:<35} {e['reliable_change']}")
    lines.append("")
    for name, rep in doc["reproduced"].items():
        lines.append(f"Reproduced {name}: {rep['numerator']} / {rep['denominator']} = "
                     f"{'(suppressed)' if rep['matches'] is None else fmt(rep['value'])} -> {MATCH[rep['matches']]}")
    return "\n".join(lines)


def render_expected_course_text(doc: dict, fmt) -> str:
    f, cell = doc["figure"], doc["cell"]
    lines = [f"Figure   {f['table']}: {f['indicator']} for intake band {f['intake_band']}, session bin "
             f"{f['session_bin']}",
             f"Run      {doc['run']['run_id']} (run {doc['run']['run_seq']}, code {doc['run']['code_version']})", "",
             f"Cell     from bin {cell['cell_from_bin']}: n episodes {fmt(cell['n_episodes'])}, n measurements "
             f"{fmt(cell['n_measurements'])}; "
             + (f"suppressed ({cell['suppression_reason']})" if cell["suppressed"] else "shown"),
             f"Merged   {doc['merged_because'] or 'no: the bin alone reached expected_course_min_episodes'}"]
    for r in doc["published_rows"]:
        lines.append(f"  p{r['percentile']:<3} {'(suppressed)' if r['suppressed'] else fmt(r['score'])}")
    lines += ["", f"Rule     {doc['formula']}", "Parameters (as this run used them):"]
    lines += [f"  {k} = {json.dumps(v)}" for k, v in doc["parameters"].items()]
    if "note" in doc:
        return "\n".join(lines + ["", doc["note"]])
    lines += ["", f"Measurements of closed episodes in the cell: {len(doc['measurements'])}",
              "  concern  episode     measurement      session  score"]
    for m in doc["measurements"]:
        lines.append(f"  {str(m['concern_id']):<8} {m['episode_id']:<11} {str(m['measurement_id']):<16} "
                     f"{fmt(m['session']):<8} {fmt(m['score'])}")
    rep = doc["reproduced"]
    lines += ["", f"Reproduced: n episodes {rep['n_episodes']}, n measurements {rep['n_measurements']}"
                  f"{'' if rep['counts_match'] else ' (DO NOT MATCH the published counts)'}"]
    for p, r in rep["percentiles"].items():
        lines.append(f"  p{p}: quantile_cont = {'(suppressed)' if r['matches'] is None else fmt(r['value'])} -> "
                     f"{MATCH[r['matches']]}")
    return "\n".join(lines)
