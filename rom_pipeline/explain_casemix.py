"""`rom-pipeline explain --table marts.casemix_adjusted`: a case-mix adjusted figure, for an auditor.

Shows the observed and expected value, their difference, n and the interval with its formula;
the model(s) behind the expected value as the run recorded them in the audit trail (n, R² or
pseudo-R², deviance, software and version, the coefficients); and the episodes behind the
figure (``audit.figure_episodes``: pre/post, rule codes, contribution), from which n and the
observed value are reproduced. Each episode's own expected value is in the work database only
(``outcomes.casemix_expected``, the latest run): with ``--db work`` it is listed and the expected
value reproduced too. Rules: docs/outcome-rules.md s12.
"""
from __future__ import annotations

import json
from rom_pipeline.lib.query import rows as _rows, has_table as _has_table

INTERVAL_FORMULA = ("difference = observed - expected; se = sqrt(sum(var_i) / n^2 + mean(se_i)^2) with var_i the "
                    "spread of episode i around its expectation (OLS residual variance; 100^2 p_i (1 - p_i) for a "
                    "share) and se_i the model's own se of that expectation (OLS; 0 for a share); 95% interval "
                    "difference +- 1.96 se; funnel limits 0 +- 1.96 se and 0 +- 3.09 se (outside_95, outside_998)")
EXPECTED_COLUMN = {"mean_improvement": ("expected_improvement", 1.0), "pct_recovered": ("p_recovered", 100.0),
                   "pct_improved": ("p_improved", 100.0), "pct_unchanged": ("p_unchanged", 100.0),
                   "pct_deteriorated": ("p_deteriorated", 100.0)}


def _models(con, run_seq: int, model_ids: list[str]) -> list[dict]:
    """The models as the run published them (audit.published_figures of marts.casemix_models)."""
    if not model_ids:
        return []
    placeholders = ", ".join("?" for _ in model_ids)
    terms = _rows(con, f"""
        SELECT DISTINCT ON (f.figure_key) f.aggregation AS model_id, f.figure, f.figure_json, f.change
        FROM audit.published_figures AS f JOIN audit.runs AS r USING (run_id)
        WHERE r.status = 'published' AND r.run_seq <= ? AND f.table_name = 'marts.casemix_models'
          AND f.aggregation IN ({placeholders})
        ORDER BY f.figure_key, r.run_seq DESC""", [run_seq, *model_ids])
    models: dict[tuple, dict] = {}
    for t in terms:
        if t["change"] == "removed":
            continue
        row = json.loads(t["figure_json"])
        key = (row["model_id"], row["model"])
        model = models.setdefault(key, {k: row.get(k) for k in (
            "model_id", "model", "left_out_level", "left_out_concerns", "left_out_location_id", "n_obs",
            "r_squared", "residual_variance", "deviance", "null_deviance", "pseudo_r_squared", "converged",
            "software", "software_version", "method", "predictors", "reference_levels", "terms_left_out",
            "age_bands", "run_id")} | {"terms": []})
        model["terms"].append({k: row.get(k) for k in ("equation", "term", "estimate", "std_error")})
    for model in models.values():
        model["terms"].sort(key=lambda t: (t["equation"] or "", t["term"] != "Intercept", t["term"] != "pre_score",
                                           t["term"]))
    return sorted(models.values(), key=lambda m: (m["model_id"], m["model"]))


def explain_casemix(con, out: dict, run: dict, concern: str, level: str, unit: str, period_type: str,
                    period: str, indicator: str, cell_episodes) -> dict:
    row = out["published_row"] or {}
    out["formula"] = INTERVAL_FORMULA
    out["casemix"] = {k: row.get(k) for k in (
        "n", "observed", "expected", "difference", "se", "ci_low", "ci_high", "limit_95", "limit_998",
        "outside_95", "outside_998", "suppressed", "suppression_reason", "model_ids")}
    model_ids = [m.strip() for m in (row.get("model_ids") or "").split(",") if m.strip()]
    # The model that makes this indicator's expectation: OLS for the improvement, the logit for a share.
    wanted = "ols_improvement" if indicator == "mean_improvement" else "mnlogit_reliable_change"
    out["models"] = [m for m in _models(con, run["run_seq"], model_ids) if m["model"] == wanted]
    if level == "therapist" and not out["models"]:
        out["note"] = "therapist-level figures: read the work database (--db work)"
    key = "|".join([concern, level, unit, period_type, period])
    episodes, cell_run = cell_episodes(con, run["run_seq"], key)
    counted = [e for e in episodes if indicator in (e["counts_in"] or [])]
    expected = {}
    column, scale = EXPECTED_COLUMN.get(indicator, (None, 1.0))
    if column and counted and _has_table(con, "outcomes", "casemix_expected"):
        ids = [e["episode_id"] for e in counted]
        placeholders = ", ".join("?" for _ in ids)
        expected = {r["episode_id"]: r for r in _rows(con, f"""
            SELECT episode_id, model_id, {column} * {scale} AS expected
            FROM outcomes.casemix_expected WHERE concern_id = ? AND episode_id IN ({placeholders})""",
                                                     [concern, *ids])}
    out["episodes_recorded_by_run"] = cell_run
    out["episodes"] = [{
        **{k: e[k] for k in ("episode_id", "delivery_id", "location_id", "therapist_id", "end_date",
                             "pre_score", "post_score", "pct_improvement", "improvement_rule", "reliable_change")},
        "observed": (e["contributions"] or {}).get(indicator),
        "expected": expected.get(e["episode_id"], {}).get("expected"),
        "model_id": expected.get(e["episode_id"], {}).get("model_id"),
    } for e in counted]
    xs = [e["observed"] for e in out["episodes"]]
    es = [e["expected"] for e in out["episodes"] if e["expected"] is not None]
    reproduced = {"n": len(xs), "observed": sum(xs) / len(xs) if xs else None,
                  "expected": sum(es) / len(es) if es and len(es) == len(xs) else None,
                  "expected_source": ("outcomes.casemix_expected (work database, latest run)" if expected else
                                      "per-episode expected values are in the work database only (--db work)")}
    if out["suppressed"] or row.get("n") is None:
        reproduced.update(matches=None, observed=None, expected=None)
    else:
        def close(a, b):
            return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(a))
        reproduced["matches"] = (reproduced["n"] == row["n"] and close(row.get("observed"), reproduced["observed"])
                                 and (reproduced["expected"] is None
                                      or close(row.get("expected"), reproduced["expected"])))
    out["reproduced"] = reproduced
    return out


def render_casemix_text(doc: dict, fmt) -> list[str]:
    c = doc["casemix"]
    lines = []
    if c.get("suppressed") or doc["suppressed"]:
        lines.append(f"Suppressed ({c.get('suppression_reason') or 'small numbers'}): observed, expected and "
                     "the difference are not shown")
    else:
        lines += [
            f"Observed {fmt(c['observed'])}    expected {fmt(c['expected'])}    difference {fmt(c['difference'])}"
            f"    n = {fmt(c['n'])}",
            f"95% CI   {fmt(c['ci_low'])} .. {fmt(c['ci_high'])}    se {fmt(c['se'])}",
            f"Funnel   95%: 0 +- {fmt(c['limit_95'])} (outside: {fmt(c['outside_95'])});  99.8%: 0 +- "
            f"{fmt(c['limit_998'])} (outside: {fmt(c['outside_998'])})",
        ]
    lines += ["", f"Formula  {doc['formula']}", "", f"Model(s) {c.get('model_ids') or '-'}:"]
    for m in doc["models"]:
        fit = (f"R2 {fmt(m['r_squared'])}, residual variance {fmt(m['residual_variance'])}"
               if m["model"] == "ols_improvement" else
               f"deviance {fmt(m['deviance'])} (null {fmt(m['null_deviance'])}), pseudo-R2 "
               f"{fmt(m['pseudo_r_squared'])}, converged {fmt(m['converged'])}")
        lines += [f"  {m['model_id']} {m['model']}: fitted on n = {m['n_obs']} episodes outside "
                  f"{m['left_out_location_id'] or m['left_out_concerns']}; {fit}; {m['software']} "
                  f"{m['software_version']} ({m['method']}); run {m['run_id']}",
                  f"    predictors {m['predictors']}; reference levels {m['reference_levels']}; age bands from "
                  f"{m['age_bands']}; counted as reference: {m['terms_left_out'] or 'none'}"]
        for t in m["terms"]:
            lines.append(f"    {(t['equation'] or ''):<28} {t['term']:<36} {t['estimate']:>12.4g}  "
                         f"(se {t['std_error']:.4g})")
    if doc.get("note"):
        lines += ["", doc["note"]]
    eps = doc["episodes"]
    lines += ["", f"Episodes behind the figure: {len(eps)} (recorded by run {doc['episodes_recorded_by_run']})",
              "  episode     pre      post     % impr.  change         observed   expected   model"]
    for e in eps:
        lines.append(f"  {e['episode_id']:<11} {fmt(e['pre_score']):<8} {fmt(e['post_score']):<8} "
                     f"{fmt(e['pct_improvement']):>7}  {str(e['reliable_change'] or '-'):<14} "
                     f"{fmt(e['observed']):>8}   {fmt(e['expected']):>8}   {e['model_id'] or '-'}")
    rep = doc["reproduced"]
    verdict = {True: "matches the published figure", False: "DOES NOT MATCH the published figure",
               None: "not comparable (the published figure is suppressed)"}[rep["matches"]]
    lines += ["", f"Reproduced from these episodes: n = {rep['n']}, observed = {fmt(rep['observed'])}, expected = "
                  f"{fmt(rep['expected'])} -> {verdict}", f"  ({rep['expected_source']})"]
    return lines
