"""`rom-pipeline explain` for the concern benchmark tables (seed 001): every z recomputed in view.

For ``marts.financial_ratios`` the formula is the ratio's own expression in
``sql/marts/financial_ratios.sql`` (read with sqlglot, so it cannot drift from the rule), its
inputs are evaluated by the model's own CTEs for that concern and year and filled in, and the
annual-report rows they come from are named. For ``marts.concern_benchmark`` the input is the
supplied quality indicator's row or the pipeline's own concern figure. For both, the peer group
(all concerns that year, or the size group) is listed with its members, mean, sample sd and
the z-score worked out. ``marts.concern_summary`` lists the oriented z-scores it averages.

Peer values come from the audit trail as the run published them; inputs from the warehouse's
staging tables (the latest published state: for an earlier run, say so).
"""
from __future__ import annotations

import json
import math
from functools import lru_cache

from rom_pipeline.lib.sqltext import literal
from rom_pipeline.paths import SQL_DIR
from rom_pipeline.lib.query import rows as _rows

Z_NOISE = 1e-9  # a spread below 1e-9 of the mean is rounding noise: no z (as the SQL models)


def _published(con, run_seq: int, table: str, figure: str, year: str, aggregation: str | None) -> list[dict]:
    """Every concern's version of one figure as of a run: the peer group as it was published."""
    rows = _rows(con, """
        SELECT DISTINCT ON (f.concern_id) f.concern_id, f.value, f.figure_json, f.change
        FROM audit.published_figures AS f JOIN audit.runs AS r USING (run_id)
        WHERE r.status = 'published' AND r.run_seq <= ? AND f.table_name = ? AND f.figure = ?
          AND f.period = ? AND f.aggregation IS NOT DISTINCT FROM ?
        ORDER BY f.concern_id, r.run_seq DESC""", [run_seq, table, figure, year, aggregation])
    return [{**r, "row": json.loads(r["figure_json"]) if r["figure_json"] else {}}
            for r in rows if r["change"] != "removed"]


def peer_group(members: list[dict], concern: str, value: float | None, published_z: float | None) -> dict:
    """Mean, sample sd and z of ``value`` among ``members`` (concern_id, value), worked out."""
    values = [m["value"] for m in members if m["value"] is not None]
    out: dict = {"members": [{"concern_id": m["concern_id"], "value": m["value"]} for m in members],
                 "n_peers": len(values)}
    if len(values) >= 1:
        out["mean"] = sum(values) / len(values)
    if len(values) >= 2:
        out["sd"] = math.sqrt(sum((v - out["mean"]) ** 2 for v in values) / (len(values) - 1))
    spread = out.get("sd")
    if value is not None and spread is not None and spread > Z_NOISE * max(1.0, abs(out["mean"])):
        out["z"] = (value - out["mean"]) / spread
        out["z_formula"] = f"({value:.6g} - {out['mean']:.6g}) / {spread:.6g} = {out['z']:.4f}"
    else:
        out["z"] = None
        out["z_formula"] = "no z: fewer than two peers with a value, or no spread"
    out["matches"] = ((out["z"] is None and published_z is None) or (
        out["z"] is not None and published_z is not None and abs(out["z"] - published_z) < 1e-6))
    return out


# --- financial ratios: the rule read from the model itself --------------------------------------

@lru_cache(maxsize=1)
def _ratio_model():
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one((SQL_DIR / "marts" / "financial_ratios.sql").read_text(), dialect="duckdb")
    wide = next(c for c in tree.find_all(exp.CTE) if c.alias == "ratios_wide").this
    expressions = {e.alias: e.this for e in wide.expressions if e.alias}
    return tree, wide, expressions


def ratio_formula(ratio: str) -> str | None:
    from sqlglot import exp  # noqa: F401

    expressions = _ratio_model()[2]
    found = expressions.get(ratio)
    return found.sql(dialect="duckdb", comments=False) if found is not None else None


def ratio_inputs(con, ratio: str, concern: str, year: int) -> tuple[list[dict], str | None]:
    """The ratio's inputs (the columns its expression reads) for one concern and year, evaluated by
    the model's own CTEs, and the formula with the numbers filled in."""
    from sqlglot import exp

    tree, wide, expressions = _ratio_model()
    expression = expressions.get(ratio)
    if expression is None:
        return [], None
    columns = sorted({c.sql(dialect="duckdb") for c in expression.find_all(exp.Column)})
    probe = wide.copy()
    probe.set("expressions", [exp.alias_(exp.column(*reversed(c.split("."))), c.replace(".", "__"))
                              for c in columns])
    probe = probe.where(f"a.concern_id = {literal(concern)} AND a.year = {int(year)}")
    probe.set("with_", tree.args["with_"].copy())
    found = _rows(con, probe.sql(dialect="duckdb"))
    values = found[0] if found else {}
    inputs = [{"input": c, "value": values.get(c.replace(".", "__"))} for c in columns]
    filled = expression.copy()
    for column in list(filled.find_all(exp.Column)):
        value = values.get(column.sql(dialect="duckdb").replace(".", "__"))
        column.replace(exp.Null() if value is None else exp.Literal.number(value))
    return inputs, filled.sql(dialect="duckdb", comments=False)


def _source_rows(con, table: str, where: str, params: list) -> list[dict]:
    try:
        return _rows(con, f"SELECT * FROM {table} WHERE {where}", params)
    except Exception:  # an older warehouse without the table: nothing to show
        return []


def explain_benchmark(con, out: dict, run: dict, table: str, concern: str, year: str, figure: str,
                      aggregation: str | None) -> dict:
    """Fill ``out`` (explain's document) for a figure of a concern benchmark table."""
    seq = run["run_seq"]
    row = out.get("published_row") or {}
    value = out["value"]
    latest = _rows(con, "SELECT max(run_seq) AS seq FROM audit.runs WHERE status = 'published'")[0]["seq"]
    out["inputs_note"] = ("inputs as in this warehouse (the latest published state)"
                          + ("" if latest == seq else f"; the figure is of run {seq}, an earlier run"))
    members = _published(con, seq, table, figure, year, aggregation)
    if table == "marts.financial_ratios":
        out["formula"] = ratio_formula(figure) or "see docs/benchmark-rules.md"
        out["formula_source"] = "sql/marts/financial_ratios.sql (CTE ratios_wide)"
        out["inputs"], out["formula_filled_in"] = ratio_inputs(con, figure, concern, int(year))
        out["source_rows"] = _source_rows(
            con, "staging.annual_reports", "concern_id = ? AND year IN (?, ?) ORDER BY year",
            [concern, int(year) - 1, int(year)])
        out["peers_all"] = peer_group(members, concern, value, row.get("z"))
        size_group = row.get("size_group")
        if size_group is not None:
            groups = {r["concern_id"]: r["size_group"] for r in _source_rows(
                con, "marts.concern_size_groups", "year = ?", [int(year)])}
            same = [m for m in members if groups.get(m["concern_id"]) == size_group]
            out["peers_size_group"] = {"size_group": size_group,
                                       **peer_group(same, concern, value, row.get("z_size_group"))}
    elif table == "marts.concern_benchmark":
        out["formula"] = ("z = (value - peer_mean) / peer_sd over the concerns of the peer group with a value "
                          "that year (sample sd); z_oriented = z, sign-flipped where lower is better")
        if row.get("source") == "rom_pipeline":
            out["inputs"] = [{"input": "marts.indicators (level concern, year, mean_of_locations)",
                              "indicator": figure.removeprefix("rom_"), "value": value, "n": row.get("n")}]
            out["follow"] = (f"rom-pipeline explain --concern {concern} --level concern --period-type year "
                             f"--period {year} --indicator {figure.removeprefix('rom_')} "
                             "--aggregation mean_of_locations")
        else:
            out["source_rows"] = _source_rows(con, "staging.quality_indicators",
                                              "concern_id = ? AND year = ? AND indicator_id = ?",
                                              [concern, int(year), figure])
        out["peers"] = {"peer_group": aggregation, **peer_group(members, concern, value, row.get("z"))}
        out["direction"] = {"higher_is_better": row.get("higher_is_better"), "z_oriented": row.get("z_oriented")}
    elif table == "marts.concern_summary":
        cluster = figure.removeprefix("summary_z:")
        parts = [r for r in _rows(con, """
            SELECT DISTINCT ON (f.figure) f.figure AS indicator_id, f.figure_json
            FROM audit.published_figures AS f JOIN audit.runs AS r USING (run_id)
            WHERE r.status = 'published' AND r.run_seq <= ? AND f.table_name = 'marts.concern_benchmark'
              AND f.concern_id = ? AND f.period = ? AND f.aggregation IS NOT DISTINCT FROM ?
              AND f.change <> 'removed'
            ORDER BY f.figure, r.run_seq DESC""", [seq, concern, year, aggregation])]
        oriented = []
        for p in parts:
            bench = json.loads(p["figure_json"])
            if (cluster == "all" or bench.get("cluster") == cluster) and bench.get("z_oriented") is not None:
                oriented.append({"indicator_id": p["indicator_id"], "cluster": bench.get("cluster"),
                                 "z_oriented": bench["z_oriented"]})
        mean = sum(p["z_oriented"] for p in oriented) / len(oriented) if oriented else None
        out["formula"] = "summary_z = mean of the concern's oriented z-scores (positive = above average)"
        out["inputs"] = oriented
        out["reproduced"] = {"n": len(oriented), "value": mean,
                             "matches": (mean is None and value is None) or (
                                 mean is not None and value is not None and abs(mean - value) < 1e-6)}
    return out


def render_benchmark_text(doc: dict) -> list[str]:
    def fmt(v) -> str:
        if isinstance(v, float):
            return f"{v:.2f}" if abs(v) >= 1e5 else f"{v:.6g}"
        return "-" if v is None else str(v)

    lines = ["", f"Formula  {doc['formula']}"]
    if doc.get("formula_source"):
        lines.append(f"         (the rule itself: {doc['formula_source']})")
    if doc.get("formula_filled_in"):
        lines.append(f"         = {doc['formula_filled_in']} = {fmt(doc['value'])}")
    if doc.get("inputs"):
        lines += ["", "Inputs (" + doc.get("inputs_note", "") + "):"]
        lines += ["  " + ", ".join(f"{k} {fmt(v)}" for k, v in i.items()) for i in doc["inputs"]]
    if doc.get("follow"):
        lines.append(f"  follow it: {doc['follow']}")
    for source in doc.get("source_rows") or []:
        lines.append(f"  source row: {source.get('delivery_id')} row {source.get('source_row_number')} "
                     f"({source.get('concern_id')}, {source.get('year')})")
    for key, title in (("peers_all", "Peers: all concerns"), ("peers_size_group", "Peers: size group"),
                       ("peers", "Peers")):
        group = doc.get(key)
        if not group:
            continue
        label = f"{title} {group.get('size_group') or group.get('peer_group') or ''}".strip()
        lines += ["", f"{label}: {group['n_peers']} with a value, mean {fmt(group.get('mean'))}, "
                      f"sd {fmt(group.get('sd'))}"]
        lines += [f"  {m['concern_id']:<10} {fmt(m['value'])}" for m in group["members"]]
        lines.append(f"  z = {group['z_formula']}"
                     + (" -> matches the published z" if group["matches"] else " -> DOES NOT MATCH the published z"))
    if doc.get("direction"):
        lines.append(f"  higher is better: {doc['direction']['higher_is_better']}, "
                     f"z_oriented {fmt(doc['direction']['z_oriented'])}")
    if doc.get("reproduced"):
        rep = doc["reproduced"]
        lines.append(f"\nReproduced: mean of {rep['n']} oriented z-scores = {fmt(rep['value'])}"
                     + (" -> matches the published figure" if rep["matches"] else " -> DOES NOT MATCH"))
    return lines
