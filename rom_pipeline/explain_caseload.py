"""`rom-pipeline explain --table marts.caseload_review`: a therapist's or location's case mix and "all 100%" flag.

``--concern C --level therapist|location --unit ID --period YEAR`` (``--indicator`` a dimension: diagnosis_group,
baseline_severity, referrer, care_type or total, default all; ``--category`` one of its categories) prints the
rows of ``marts.caseload_review`` with n, share, suppression and its reason, the rules (the macros
``small_number_reason`` / ``small_count_reason`` of ``sql/macros/rules.sql`` and the complementary step, with the
run's ``min_n`` and ``min_count_published``) and, for a therapist, the all-100% flag with its inputs. With
``--db work`` it lists the closed episodes behind the rows (episode ids with their categories and percentage
improvement; never a client id) and recomputes the shares, their suppression and the flag from them.
The table is rebuilt every run and not versioned in the audit trail: it is explained as the latest run left it.
Therapist rows exist only in the work database (the warehouse leaves them out). Rules: docs/outcome-rules.md s13.
"""
from __future__ import annotations

from collections import Counter

from rom_pipeline.config import load_rule_macros
from rom_pipeline.lib.query import rows as _rows, has_table as _has_table

CASELOAD_TABLE = "marts.caseload_review"
DIMENSIONS = ("diagnosis_group", "baseline_severity", "referrer", "care_type", "total")
LEVELS = ("therapist", "location")
# The dimension's column in marts.episode_outcomes ('unknown' when missing, as the model).
EPISODE_COLUMN = {"diagnosis_group": "diagnosis_group", "baseline_severity": "baseline_severity_band",
                  "referrer": "referrer", "care_type": "care_type"}
SHARE_RULE = ("share = n / n_unit x 100 over the unit's closed episodes of the year (by end_date); a missing "
              "attribute is the category 'unknown', so a dimension's shares add up to 100")
SUPPRESSION_RULE = ("small_number_reason(n_unit): n_unit < min_n -> n_below_min_n; else small_count_reason(n, n_unit): "
                    "n or n_unit - n from 1 to min_count_published - 1 -> small_count; then complementary: a dimension "
                    "with exactly one hidden category and its total shown hides its smallest shown category (by n, "
                    "then category) too -> complementary. The total row: small_number_reason(n_unit) only")
FLAG_RULE = ("all_complete_at_100 (therapist rows, dimension total): n_complete >= min_n AND n_complete_at_100 = "
             "n_complete, with n_complete = the closed episodes with complete SCL90 scores in the year and "
             "n_complete_at_100 = those with pct_improvement = 100; NULL on location rows")


def _values(con, column: str, where: str, params: list) -> list[str]:
    return [r[0] for r in con.execute(f"SELECT DISTINCT {column} FROM marts.caseload_review WHERE {where} "
                                      f"ORDER BY 1", params).fetchall()]


def _parameters(con) -> dict:
    """min_n and min_count_published as the latest run applied them (config.parameters)."""
    found = {r["name"]: r["value"] for r in _rows(
        con, "SELECT name, value FROM config.parameters WHERE name IN ('min_n', 'min_count_published')")} \
        if _has_table(con, "config", "parameters") else {}
    return {name: int(float(found[name])) if name in found else None for name in ("min_n", "min_count_published")}


def _own_reasons(con, params: dict, pairs: list[tuple[int, int]]) -> list[str | None]:
    """The macros of sql/macros/rules.sql, loaded on this connection with the run's parameters, for (n, n_unit)."""
    for name, value in params.items():
        con.execute(f"SET VARIABLE {name} = ?", [value])
    load_rule_macros(con)
    return [con.execute("SELECT coalesce(small_number_reason(?::BIGINT), small_count_reason(?::BIGINT, ?::BIGINT))",
                        [n_unit, n, n_unit]).fetchone()[0] for n, n_unit in pairs]


def explain_caseload(con, *, concern: str | None, level: str | None, unit: str | None, period: str | None,
                     dimension: str | None, category: str | None, work: bool, error) -> dict:
    if not _has_table(con, "marts", "caseload_review"):
        raise error(f"{CASELOAD_TABLE} is not in this database (has a run built it?)")
    concerns = _values(con, "concern_id", "TRUE", [])
    if concern not in concerns:
        raise error(f"{CASELOAD_TABLE}: give --concern, one of: {', '.join(concerns) or '(none)'}")
    if level not in LEVELS:
        raise error(f"{CASELOAD_TABLE}: --level must be therapist or location (not {level})")
    params = _parameters(con)
    out = {"figure": {"table": CASELOAD_TABLE, "concern_id": concern, "level": level, "unit_id": unit,
                      "period_type": "year", "period": period, "dimension": dimension, "category": category},
           "parameters": params, "rules": {"share": SHARE_RULE, "suppression": SUPPRESSION_RULE, "flag": FLAG_RULE},
           "rows": [], "flag": None, "episodes": None, "reproduced": None, "note": None}
    units = _values(con, "unit_id", "concern_id = ? AND level = ?", [concern, level])
    if level == "therapist" and not units and not work:
        out["note"] = ("therapist-level rows exist only in the work database: the shared warehouse leaves them out "
                       "(seed 000: a therapist's results are for their location manager only); add --db work")
        return out
    if unit not in units:
        raise error(f"{CASELOAD_TABLE}: {level} {unit} has no rows in concern {concern}; its {level}s are: "
                    f"{', '.join(units) or '(none)'}")
    periods = _values(con, "period", "concern_id = ? AND level = ? AND unit_id = ?", [concern, level, unit])
    if period not in periods:
        raise error(f"{CASELOAD_TABLE}: {level} {unit} has no year {period}; its years (by episode end date) are: "
                    f"{', '.join(periods)}")
    if dimension is not None and dimension not in DIMENSIONS:
        raise error(f"{CASELOAD_TABLE}: --indicator is a dimension, one of: {', '.join(DIMENSIONS)}")
    key = [concern, level, unit, period]
    if category is not None:
        if dimension is None:
            raise error(f"{CASELOAD_TABLE}: --category needs --indicator <dimension> ({', '.join(DIMENSIONS)})")
        categories = _values(con, "category", "concern_id = ? AND level = ? AND unit_id = ? AND period = ? "
                                              "AND dimension = ?", key + [dimension])
        if category not in categories:
            raise error(f"{CASELOAD_TABLE}: {dimension} has no category {category} for {level} {unit} in "
                        f"{period}; its categories are: {', '.join(categories)}")
    all_rows = _rows(con, """
        SELECT dimension, category, n, n_unit, share, suppressed, suppression_reason, n_complete, n_complete_at_100,
               all_complete_at_100, location_id
        FROM marts.caseload_review WHERE concern_id = ? AND level = ? AND unit_id = ? AND period = ?
        ORDER BY dimension = 'total' DESC, dimension, category""", key)
    wanted = [r for r in all_rows if (dimension is None or r["dimension"] == dimension)
              and (category is None or r["category"] == category)]
    out["rows"] = wanted
    total = next(r for r in all_rows if r["dimension"] == "total")
    if level == "therapist":
        out["flag"] = {k: total[k] for k in ("n_complete", "n_complete_at_100", "all_complete_at_100")} | {
            "min_n": params["min_n"]}
    if not work:
        out["note"] = "the episodes behind these rows are in the work database only: add --db work"
        return out
    unit_column = "therapist_id" if level == "therapist" else "location_id"
    episodes = _rows(con, f"""
        SELECT episode_id, location_id, end_date,
               coalesce(diagnosis_group, 'unknown') AS diagnosis_group,
               coalesce(baseline_severity_band, 'unknown') AS baseline_severity,
               coalesce(referrer, 'unknown') AS referrer, coalesce(care_type, 'unknown') AS care_type,
               has_complete_scores, pct_improvement
        FROM marts.episode_outcomes
        WHERE is_closed AND concern_id = ? AND {unit_column} = ? AND period_of('year', end_date) = ?
        ORDER BY episode_id""", [concern, unit, period])
    out["episodes"] = episodes
    out["reproduced"] = _reproduce(con, params, level, episodes, all_rows, wanted)
    return out


def _reproduce(con, params: dict, level: str, episodes: list[dict], all_rows: list[dict], wanted: list[dict]) -> dict:
    n_unit = len(episodes)
    published = {(r["dimension"], r["category"]): r for r in all_rows}
    rows = {("total", "all"): {"n": n_unit, "n_unit": n_unit, "share": 100.0,
                               "suppression_reason": _own_reasons(con, params, [(n_unit, n_unit)])[0]
                               if n_unit < (params["min_n"] or 0) else None}}
    for dim in EPISODE_COLUMN:
        counts = sorted(Counter(e[dim] for e in episodes).items())
        reasons = _own_reasons(con, params, [(n, n_unit) for _, n in counts])
        hidden = [c for (c, _), reason in zip(counts, reasons) if reason]
        shown = sorted((n, c) for (c, n), reason in zip(counts, reasons) if not reason)
        complementary = (shown[0][1] if len(hidden) == 1 and shown and not rows[("total", "all")]["suppression_reason"]
                         else None)
        for (c, n), reason in zip(counts, reasons):
            rows[(dim, c)] = {"n": n, "n_unit": n_unit, "share": 100.0 * n / n_unit,
                              "suppression_reason": reason or ("complementary" if c == complementary else None)}
    result = []
    for r in wanted:
        mine = rows.get((r["dimension"], r["category"]), {"n": 0, "n_unit": n_unit, "share": 0.0,
                                                          "suppression_reason": None})
        # the warehouse would blank n and share when suppressed; the work database keeps them
        matches = (mine["n"] == r["n"] and mine["n_unit"] == r["n_unit"] and abs(mine["share"] - r["share"]) < 1e-9
                   and mine["suppression_reason"] == r["suppression_reason"])
        result.append({"dimension": r["dimension"], "category": r["category"], **mine, "matches": matches})
    missing = sorted(set(rows) - set(published))
    out = {"rows": result, "missing_from_table": [list(k) for k in missing]}
    if level == "therapist":
        complete = [e for e in episodes if e["has_complete_scores"]]
        at_100 = [e for e in complete if e["pct_improvement"] == 100]
        flag = len(complete) >= params["min_n"] and len(at_100) == len(complete)
        total = published[("total", "all")]
        out["flag"] = {"n_complete": len(complete), "n_complete_at_100": len(at_100), "min_n": params["min_n"],
                       "all_complete_at_100": flag,
                       "matches": (len(complete), len(at_100), flag)
                       == (total["n_complete"], total["n_complete_at_100"], total["all_complete_at_100"])}
    out["matches"] = all(r["matches"] for r in result) and not missing and out.get("flag", {}).get("matches", True)
    return out


def render_caseload_text(doc: dict, fmt) -> list[str]:
    f = doc["figure"]
    lines = [f"Table    {f['table']}: {f['level']} {f['unit_id'] or '-'} of concern {f['concern_id']}, year "
             f"{f['period'] or '-'}" + (f", {f['dimension']}" if f["dimension"] else "")
             + (f" = {f['category']}" if f["category"] else ""),
             f"Parameters (the latest run's): min_n = {doc['parameters']['min_n']}, min_count_published = "
             f"{doc['parameters']['min_count_published']}",
             f"Share       {doc['rules']['share']}", f"Suppression {doc['rules']['suppression']}"]
    if doc["rows"]:
        lines += ["", "  dimension          category          n      n_unit  share     shown  reason"]
        for r in doc["rows"]:
            lines.append(f"  {r['dimension']:<18} {str(r['category']):<17} {fmt(r['n']):<6} {fmt(r['n_unit']):<7} "
                         f"{fmt(r['share']):<9} {'no' if r['suppressed'] else 'yes':<6} "
                         f"{r['suppression_reason'] or '-'}")
    if doc["flag"]:
        fl = doc["flag"]
        lines += ["", f"All 100% {doc['rules']['flag']}",
                  f"         n_complete = {fmt(fl['n_complete'])}, n_complete_at_100 = {fmt(fl['n_complete_at_100'])}, "
                  f"min_n = {fl['min_n']} -> all_complete_at_100 = {fmt(fl['all_complete_at_100'])}"]
    if doc["episodes"] is not None:
        wanted = [d for d in EPISODE_COLUMN if d in {r["dimension"] for r in doc["rows"]}] or list(EPISODE_COLUMN)
        lines += ["", f"Closed episodes behind the rows: {len(doc['episodes'])}",
                  "  episode     location  end date    " + "".join(f"{d:<18}" for d in wanted)
                  + "complete  % impr."]
        for e in doc["episodes"]:
            lines.append(f"  {e['episode_id']:<11} {str(e['location_id']):<9} {str(e['end_date']):<11} "
                         + "".join(f"{str(e[d]):<18}" for d in wanted)
                         + f"{'yes' if e['has_complete_scores'] else 'no':<9} {fmt(e['pct_improvement'])}")
        rep = doc["reproduced"]
        lines += ["", "Reproduced from these episodes:"]
        for r in rep["rows"]:
            lines.append(f"  {r['dimension']:<18} {str(r['category']):<17} n = {r['n']} of {r['n_unit']}, share "
                         f"{fmt(r['share'])}, {r['suppression_reason'] or 'shown'} -> "
                         f"{'matches' if r['matches'] else 'DOES NOT MATCH'}")
        if rep.get("flag"):
            fl = rep["flag"]
            lines.append(f"  all 100%: {fl['n_complete_at_100']} of {fl['n_complete']} complete episodes at 100%, "
                         f"min_n {fl['min_n']} -> {fl['all_complete_at_100']} -> "
                         f"{'matches' if fl['matches'] else 'DOES NOT MATCH'}")
        if rep["missing_from_table"]:
            lines.append(f"  categories of the episodes missing from the table: {rep['missing_from_table']}")
    if doc["note"]:
        lines += ["", doc["note"]]
    return lines
