"""`rom-pipeline explain`: how one published figure was derived, for an auditor.

For a figure (table, concern, level, unit, period, indicator, aggregation) and a run
(default: the latest that published) it prints the formula and the parameter values
that run used, the figure's value and n, the episodes behind it with their pre/post
measurements, scores and rule codes (and which of them count), the deliveries and file
checksums they came from, the quarantined rows of that unit that were left out and why,
and the run and code version.

Everything is read from the audit trail (``audit.runs``, ``audit.published_figures``,
``audit.figure_episodes``, ``audit.run_inputs``, ``audit.quarantine_log``), which keeps
every run's version, so a figure of an earlier night is explained as it was published
then, even after later deliveries changed it. By default it reads the published
warehouse (read-only, safe while the pipeline runs); ``--db work`` reads the pipeline's
work database instead (all levels, but only when no run is writing it).

``--table marts.caseload_review`` (``--concern C --level therapist|location --unit ID --period YEAR``, optionally
``--indicator <dimension>`` and ``--category``) explains the caseload review's case-mix shares and "all 100%" flag
as the latest run left them; with ``--db work`` from the episodes behind them (rom_pipeline/explain_caseload.py).
``--table marts.feedback_backtest`` (``--concern C`` or ``--level all``) and ``--table marts.expected_course``
(``--unit <intake band> --period <session bin>``) explain the back-test and the expected course of the
not-on-track feedback as the latest run left them (rom_pipeline/explain_feedback.py; docs/feedback.md).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import duckdb

from rom_pipeline.config import load_rule_macros
from rom_pipeline.explain_benchmarks import explain_benchmark, render_benchmark_text
from rom_pipeline.explain_caseload import CASELOAD_TABLE, explain_caseload, render_caseload_text
from rom_pipeline.explain_feedback import (BACKTEST_TABLE, COURSE_TABLE, explain_backtest, explain_expected_course,
                                           explain_not_on_track, render_backtest_text, render_expected_course_text,
                                           render_not_on_track_text)
from rom_pipeline.explain_casemix import explain_casemix, render_casemix_text
from rom_pipeline.indicators import CatalogueError, Indicator, parse_catalogue
from rom_pipeline.lib.audience import MANAGER_PACKAGE_PERIOD_TYPES
from rom_pipeline.lib.query import has_table, rows as _rows

BENCHMARK_TABLES = ("marts.financial_ratios", "marts.concern_benchmark", "marts.concern_summary")
CASEMIX_TABLE = "marts.casemix_adjusted"

AGGREGATIONS = {
    "episodes": "every episode weighs the same",
    "mean_of_locations": "mean of the shown locations' values (every location weighs the same; seed 000; a suppressed location takes no part)",
}
RELEVANT_PARAMETERS = {
    "outcomes": ["primary_instrument", "norm_score", "improvement_cap", "pre_window_days_before_start",
                 "pre_window_days_after_start", "post_window_days_before_end", "post_window_days_after_end"],
    "indicators": ["min_n", "min_count_published", "confidence_level"],
}
UNIT_COLUMN = {"therapist": "therapist_id", "location": "location_id"}
MATCH_TEXT = {True: "matches the published figure", False: "DOES NOT MATCH the published figure",
              None: "not comparable (the published figure is suppressed)"}


class ExplainError(Exception):
    pass


def open_database(db: str | None, data_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """The published warehouse (default), ``work`` (the work database) or a path; always read-only."""
    if data_dir is None:
        from rom_pipeline.resources import resolved_paths

        data_dir = resolved_paths()[1]
    path = Path(db) if db not in (None, "warehouse", "work") else data_dir / (
        "work.duckdb" if db == "work" else "warehouse.duckdb")
    if not path.is_file():
        raise ExplainError(f"{path} does not exist (has the pipeline published? see --db and ROM_DATA_DIR)")
    from rom_pipeline.lib.warehouse_reader import encryption_key, open_read_only

    try:
        return open_read_only(path, encryption_key() if db in (None, "warehouse") else None, alias="source")
    except duckdb.IOException as exc:
        raise ExplainError(f"cannot open {path}: {exc} (a pipeline run may be writing it; "
                           "read the published warehouse instead)") from None


def _one(con, sql: str, params: list | None = None) -> dict | None:
    rows = _rows(con, sql, params)
    return rows[0] if rows else None


def resolve_run(con, run: str | None) -> dict:
    if run is None:
        found = _one(con, "SELECT * FROM audit.runs WHERE status = 'published' ORDER BY run_seq DESC LIMIT 1")
        if found is None:
            raise ExplainError("no published run in this database")
        return found
    found = _rows(con, "SELECT * FROM audit.runs WHERE run_id LIKE ? || '%' ORDER BY run_seq", [run])
    if not found:
        raise ExplainError(f"no run {run!r} in audit.runs")
    if len(found) > 1:
        raise ExplainError(f"run id prefix {run!r} is ambiguous: {', '.join(r['run_id'] for r in found)}")
    if found[0]["status"] != "published":
        raise ExplainError(f"run {found[0]['run_id']} did not publish (status {found[0]['status']}): "
                           "it has no published figures")
    return found[0]


PERIOD_FORMATS = {"month": "YYYY-MM, e.g. 2025-07", "quarter": "YYYY-Qn, e.g. 2025-Q3", "year": "YYYY, e.g. 2025"}


def _no_figure_message(con, run: dict, table: str, concern: str | None, level: str | None, unit: str | None,
                       period_type: str | None, period: str | None, indicator: str, aggregation: str | None) -> str:
    """Why there is no such figure, with what would have been valid."""
    what = (f"{table} has no figure {indicator} ({aggregation}) for concern {concern}, {level} {unit}, "
            f"{period_type} {period} in run {run['run_id']} (run {run['run_seq']})")
    in_work_database = has_table(con, "raw", "episodes")  # the warehouse has no raw tables
    if level == "therapist" and not in_work_database:
        return (what + ": therapist-level results are not in the shared warehouse (seed 000: a therapist's "
                "results are for their location manager only); they are in the manager packages "
                "($ROM_DATA_DIR/reports/managers/) and in the work database: add --db work")
    if level == "therapist" and period_type not in MANAGER_PACKAGE_PERIOD_TYPES:
        return (what + f": a therapist's {period_type} figure is published nowhere unless the deployment "
                "publishes therapist level (ROM_PUBLISH_THERAPIST_LEVEL; manager packages show "
                f"{' and '.join(MANAGER_PACKAGE_PERIOD_TYPES)}), so it is not computed and the audit trail "
                "has nothing to record (docs/operations.md); its sums are in marts.indicator_cells of the "
                "work database")
    if period_type in PERIOD_FORMATS and period and not _period_matches(period_type, period):
        return what + f": a {period_type} is written {PERIOD_FORMATS[period_type]}"
    units = [r["unit_id"] for r in _rows(con, """
        SELECT DISTINCT f.unit_id FROM audit.published_figures AS f
        WHERE f.table_name = ? AND f.concern_id IS NOT DISTINCT FROM ? AND f.level IS NOT DISTINCT FROM ?
        ORDER BY 1 LIMIT 30""", [table, concern, level])]
    if units and unit not in units:
        return what + f": {level} units of concern {concern} are: {', '.join(str(u) for u in units)}"
    periods = [r["period"] for r in _rows(con, """
        SELECT DISTINCT f.period FROM audit.published_figures AS f
        WHERE f.table_name = ? AND f.concern_id IS NOT DISTINCT FROM ? AND f.unit_id IS NOT DISTINCT FROM ?
          AND f.period_type IS NOT DISTINCT FROM ? ORDER BY 1""", [table, concern, unit, period_type])]
    if periods:
        return what + f": its {period_type}s with figures are {', '.join(str(p) for p in periods)}"
    return what


def _period_matches(period_type: str, period: str) -> bool:
    import re

    pattern = {"month": r"\d{4}-(0[1-9]|1[0-2])", "quarter": r"\d{4}-Q[1-4]", "year": r"\d{4}"}[period_type]
    return re.fullmatch(pattern, period) is not None


def _figure_version(con, run_seq: int, table: str, concern: str | None, level: str | None, unit: str | None,
                    period_type: str | None, period: str | None, figure: str, aggregation: str | None) -> dict | None:
    return _one(con, """
        SELECT f.*, r.run_seq AS recorded_run_seq, r.started_at AS recorded_run_started_at
        FROM audit.published_figures AS f JOIN audit.runs AS r ON r.run_id = f.run_id
        WHERE r.status = 'published' AND r.run_seq <= ?
          AND f.table_name = ? AND f.concern_id IS NOT DISTINCT FROM ? AND f.level IS NOT DISTINCT FROM ?
          AND f.unit_id IS NOT DISTINCT FROM ? AND f.period_type IS NOT DISTINCT FROM ?
          AND f.period IS NOT DISTINCT FROM ? AND f.figure = ? AND f.aggregation IS NOT DISTINCT FROM ?
        ORDER BY r.run_seq DESC LIMIT 1""",
                [run_seq, table, concern, level, unit, period_type, period, figure, aggregation])


def _cell_episodes(con, run_seq: int, unit_period_key: str) -> tuple[list[dict], str | None]:
    rows = _rows(con, """
        WITH version AS (
            SELECT max(r.run_seq) AS run_seq FROM audit.figure_episodes AS v JOIN audit.runs AS r USING (run_id)
            WHERE v.unit_period_key = ? AND r.status = 'published' AND r.run_seq <= ?
        )
        SELECT v.*, map_keys(v.contributions) AS counts_in FROM audit.figure_episodes AS v
        JOIN audit.runs AS r USING (run_id) JOIN version ON version.run_seq = r.run_seq
        WHERE v.unit_period_key = ? AND v.episode_id IS NOT NULL  -- not the marker of a unit without episodes
        ORDER BY v.episode_id""", [unit_period_key, run_seq, unit_period_key])
    return rows, (rows[0]["run_id"] if rows else None)


def run_catalogue(run: dict) -> dict[str, Indicator]:
    """The indicator catalogue as that run used it (its recorded parameters); runs recorded
    before the catalogue existed fall back to today's default entries."""
    tree = json.loads(run["parameters_json"] or "{}").get("parameters", {})
    try:
        entries = parse_catalogue(tree)
    except CatalogueError:
        from rom_pipeline.config import load_parameters

        entries = load_parameters().catalogue
    return {ind.code: ind for ind in entries}


def indicator_instrument(indicator: Indicator | None) -> str | None:
    """The secondary instrument an indicator reads (``secondary_outcomes.<CODE>.<field>`` in its SQL), if any:
    explain then shows that instrument's pre/post of every episode instead of the SCL90's."""
    if indicator is None:
        return None
    found = re.search(r"secondary_outcomes\.\"?([A-Za-z0-9_]+)\"?\.", f"{indicator.population} {indicator.value}")
    return found.group(1) if found else None


def reads_adherence(indicator: Indicator | None) -> bool:
    return indicator is not None and "administrations" in f"{indicator.population} {indicator.value}"


def _why_not(episode: dict, indicator: Indicator | None) -> str:
    if indicator is None:
        return "not in this indicator's denominator"
    instrument = indicator_instrument(indicator)
    if instrument is not None:
        outcome = episode.get("instrument_outcome")
        if not outcome or not outcome.get("n_measurements"):
            return f"no valid {instrument} measurement"
        missing = [name for name, key in (("pre-score", "pre_measurement_id"), ("post-score", "post_measurement_id"))
                   if outcome.get(key) is None]
        if missing:
            return f"no {instrument} " + " and no ".join(missing)
        return f"outside its population ({indicator.population_text})"
    if reads_adherence(indicator) and episode.get("expected_administrations") is None:
        return "no expected SCL90 administrations (sessions_attended not delivered)"
    needs_complete = "complete" in indicator.population or "has_complete_scores" in indicator.population
    if needs_complete and not episode["has_complete_scores"]:
        missing = [name for name, key in (("pre-score", "pre_measurement_id"), ("post-score", "post_measurement_id"))
                   if episode[key] is None]
        return "incomplete: no " + " and no ".join(missing) if missing else "incomplete"
    reason = f"outside its population ({indicator.population_text})"
    return reason + (f" or no value for {indicator.value}" if indicator.value else "")


def _period_of(con, day, period_type: str) -> str | None:
    """The period of a delivered date by the pipeline's own rule (``period_of``); None if it is no date."""
    return con.execute("SELECT period_of(?, TRY_CAST(? AS DATE))", [period_type, day]).fetchone()[0]


def _quarantine_for_unit(con, run_seq: int, deliveries: list[str], level: str, unit: str, period_type: str,
                         period: str, episodes: list[dict]) -> tuple[list[dict], int]:
    """Quarantined rows of these deliveries (as logged at the run) that concern the unit and period."""
    if not deliveries:
        return [], 0
    placeholders = ", ".join("?" for _ in deliveries)
    logged = _rows(con, f"""
        WITH versions AS (
            SELECT v.delivery_id, max(r.run_seq) AS run_seq FROM audit.quarantine_log AS v
            JOIN audit.runs AS r USING (run_id)
            WHERE v.delivery_id IN ({placeholders}) AND r.status = 'published' AND r.run_seq <= ?
            GROUP BY v.delivery_id
        )
        SELECT v.* FROM audit.quarantine_log AS v JOIN audit.runs AS r USING (run_id)
        JOIN versions ON versions.delivery_id = v.delivery_id AND versions.run_seq = r.run_seq
        WHERE v.reason IS NOT NULL
        ORDER BY v.delivery_id, v.file_name, v.source_row_number, v.reason""", [*deliveries, run_seq])
    episode_ids = {e["episode_id"] for e in episodes}
    measurement_ids = {e[k] for e in episodes for k in ("pre_measurement_id", "post_measurement_id",
                                                           "satisfaction_measurement_id") if e[k]}
    unit_column = UNIT_COLUMN.get(level)
    matched, unattributable = [], 0
    parsed = []
    for row in logged:
        try:
            raw = json.loads(row["raw_row"]) if row["raw_row"] else None
        except json.JSONDecodeError:
            raw = None
        if not isinstance(raw, dict):
            unattributable += 1
            continue
        parsed.append((row, raw))
    # measurements first: their ids let item responses of a quarantined measurement match too
    for row, raw in parsed:
        if row["file_name"].startswith("measurements") and raw.get("episode_id") in episode_ids:
            measurement_ids.add(raw.get("measurement_id"))
    for row, raw in parsed:
        file = row["file_name"].split(".")[0]
        if file == "measurements":
            hit = raw.get("episode_id") in episode_ids
        elif file == "item_responses":
            hit = raw.get("measurement_id") in measurement_ids
        elif file == "episodes":
            in_unit = unit_column is None or raw.get(unit_column) == unit
            end = _period_of(con, raw.get("end_date"), period_type)
            hit = in_unit and (end == period or end is None or raw.get("episode_id") in episode_ids)
        elif file in ("locations", "therapists"):
            hit = unit_column is None or raw.get(unit_column) == unit
        else:
            hit = False
        if hit:
            matched.append({**{k: row[k] for k in ("delivery_id", "file_name", "source_row_number", "stage",
                                                   "reason", "column_name", "detail")}, "raw_row": raw})
    return matched, unattributable


def _parameters(run: dict, indicator: Indicator | None) -> dict:
    doc = json.loads(run["parameters_json"])
    tree = doc.get("parameters", {})
    out = {}
    for section, names in RELEVANT_PARAMETERS.items():
        for name in names:
            entry = tree.get(section, {}).get(name)
            if entry is not None:
                out[name] = entry.get("value") if isinstance(entry, dict) else entry
    if indicator is None:
        return out
    out["catalogue_entry"] = {"population": indicator.population, "value": indicator.value,
                              "aggregation": indicator.aggregation, "bounds": list(indicator.bounds_sql),
                              "higher_is_better": indicator.higher_is_better, "cluster": indicator.cluster}
    if indicator.target is not None:
        out["target"] = f"{indicator.comparator} {indicator.target:g}"
    if reads_adherence(indicator):
        interval = tree.get("outcomes", {}).get("rom_interval_sessions")
        out["rom_interval_sessions"] = interval.get("value") if isinstance(interval, dict) else interval
    if "reliable_change" in f"{indicator.population} {indicator.value}":
        primary = indicator_instrument(indicator) or tree.get("outcomes", {}).get("primary_instrument", "SCL90")
        out["reliable_change_instrument"] = primary
        rc = tree.get("reliable_change", {})
        constants = rc.get("instruments", {}).get(primary, {})
        out["reliable_change"] = {"z_critical": rc.get("z_critical", {}).get("value"),
                                  **{k: constants.get(k) for k in ("s_pre", "r_xx", "cutoff")}}
    return out


def explain(con, *, table: str, concern: str | None, level: str | None, unit: str | None,
            period_type: str | None, period: str | None, indicator: str, aggregation: str | None = None,
            run: str | None = None, category: str | None = None) -> dict:
    """Everything an auditor needs about one published figure, as a dict (see the module doc)."""
    load_rule_macros(con)  # the rules a figure is recomputed by (period_of, the suppression reasons)
    if table == CASELOAD_TABLE:
        return explain_caseload_table(con, concern=concern, level=level, unit=unit, period=period,
                                      dimension=indicator, category=category, run=run)
    if table in (BACKTEST_TABLE, COURSE_TABLE):
        return explain_feedback_table(con, table=table, concern=concern, level=level, unit=unit, period=period,
                                      indicator=indicator, run=run)
    if table == "marts.indicators" and aggregation is None:
        aggregation = "episodes"
    if table in ("marts.concern_benchmark", "marts.concern_summary") and aggregation is None:
        aggregation = "all"  # the peer group
    if table == CASEMIX_TABLE and aggregation is None:
        aggregation = "casemix_adjusted"
    if table == "marts.concern_summary" and not indicator.startswith("summary_z:"):
        indicator = f"summary_z:{indicator}"  # the cluster: all, CQ, kernset, FP
    if level == "all":
        concern, unit = None, unit or "all"
    the_run = resolve_run(con, run)
    seq = the_run["run_seq"]
    catalogue = run_catalogue(the_run)
    entry = catalogue.get(indicator) if table in ("marts.indicators", CASEMIX_TABLE) else None
    if table == "marts.indicators" and entry is None:
        raise ExplainError(f"{indicator!r} is not an indicator of run {the_run['run_id']}; its indicators are: "
                           f"{', '.join(catalogue)}")
    version = _figure_version(con, seq, table, concern, level, unit, period_type, period, indicator, aggregation)
    if version is None or version["change"] == "removed":
        raise ExplainError(_no_figure_message(con, the_run, table, concern, level, unit, period_type, period,
                                              indicator, aggregation))
    recorded_by = _one(con, "SELECT run_id, run_seq, code_version, started_at FROM audit.runs WHERE run_id = ?",
                       [version["run_id"]])
    out: dict = {
        "figure": {"table": table, "concern_id": concern, "level": level, "unit_id": unit,
                   "period_type": period_type, "period": period, "indicator": indicator,
                   "aggregation": aggregation},
        "run": {k: the_run[k] for k in ("run_id", "run_seq", "status", "trigger", "started_at", "finished_at",
                                        "code_version", "git_commit", "source_sha256", "parameters_sha256")},
        "value": version["value"], "n": version["n"], "suppressed": version["suppressed"],
        "published_row": json.loads(version["figure_json"]) if version["figure_json"] else None,
        "value_recorded_by_run": {**recorded_by, "change": version["change"]},
        "formula": entry.formula if entry else "see docs/benchmark-rules.md",
        "labels": {"nl": entry.label_nl, "en": entry.label_en} if entry else None,
        "aggregation_rule": AGGREGATIONS.get(aggregation or "", aggregation),
        "parameters": _parameters(the_run, entry),
        "parameters_sha256": the_run["parameters_sha256"],
    }
    if table == "marts.not_on_track_counts":
        latest = resolve_run(con, None)["run_seq"] == seq
        return explain_not_on_track(con, out, the_run, latest, concern, level, unit)
    if table in BENCHMARK_TABLES:
        out["parameters"] = {k: v for k, v in json.loads(the_run["parameters_json"]).get("parameters", {})
                             .get("benchmarks", {}).items()}
        return explain_benchmark(con, out, the_run, table, concern, period, indicator, aggregation)
    if table == CASEMIX_TABLE:
        return explain_casemix(con, out, the_run, concern, level, unit, period_type, period, indicator,
                               _cell_episodes)
    if table != "marts.indicators" or level not in ("therapist", "location", "concern"):
        out["note"] = ("episode provenance is recorded for marts.indicators at therapist, location and concern "
                       "level; explain those figures to follow this one to its episodes")
        if table == "marts.indicators" and level == "all":
            out["parts"] = _rows(con, """
                SELECT DISTINCT ON (f.concern_id) f.concern_id, f.value, f.n, f.suppressed
                FROM audit.published_figures AS f JOIN audit.runs AS r USING (run_id)
                WHERE r.status = 'published' AND r.run_seq <= ? AND f.table_name = 'marts.indicators'
                  AND f.level = 'concern' AND f.period_type = ? AND f.period = ? AND f.figure = ?
                  AND f.aggregation = ?
                ORDER BY f.concern_id, r.run_seq DESC""", [seq, period_type, period, indicator, aggregation])
            out["parts"] = [p for p in out["parts"] if p["value"] is not None or p["n"] is not None]
        return out
    key = "|".join([concern, level, unit, period_type, period])
    episodes, cell_run = _cell_episodes(con, seq, key)
    instrument = indicator_instrument(entry)
    for e in episodes:  # the instrument this indicator reads (issue 12): its pre/post, not the SCL90's
        e["instrument_outcome"] = (e.get("secondary_outcomes") or {}).get(instrument) if instrument else None
    out["instrument"] = instrument or "SCL90"
    out["shows_adherence"] = reads_adherence(entry)
    contributing = [e for e in episodes if indicator in (e["counts_in"] or [])]
    for e in episodes:
        e["counts"] = indicator in (e["counts_in"] or [])
        e["contribution"] = (e["contributions"] or {}).get(indicator) if e["counts"] else None
        e["left_out_because"] = None if e["counts"] else _why_not(e, entry)
    xs = [e["contribution"] for e in contributing]
    out["episodes_recorded_by_run"] = cell_run
    out["episodes"] = [{k: e[k] for k in (
        "episode_id", "delivery_id", "location_id", "therapist_id", "end_date", "end_reason", "pre_measurement_id",
        "pre_score", "post_measurement_id", "post_score", "has_complete_scores", "pct_improvement",
        "improvement_rule", "reliable_change", "satisfaction_measurement_id", "satisfaction_post",
        "scl90_administrations", "expected_administrations", "instrument_outcome",
        "counts", "contribution", "left_out_because")} for e in episodes]
    if aggregation == "mean_of_locations":
        locations = _rows(con, """
            SELECT DISTINCT ON (f.unit_id) f.unit_id AS location_id, f.value, f.n, f.suppressed,
                   json_extract_string(f.figure_json, '$.suppression_reason') AS suppression_reason
            FROM audit.published_figures AS f JOIN audit.runs AS r USING (run_id)
            WHERE r.status = 'published' AND r.run_seq <= ? AND f.table_name = 'marts.indicators'
              AND f.concern_id = ? AND f.level = 'location' AND f.period_type = ? AND f.period = ?
              AND f.figure = ? AND f.aggregation = 'episodes' AND f.change <> 'removed'
            ORDER BY f.unit_id, r.run_seq DESC""", [seq, concern, period_type, period, indicator])
        # The mean is over the locations whose own figure is shown (docs/outcome-rules.md s7).
        for loc in locations:
            loc["averaged"] = not loc["suppressed"] and loc["value"] is not None
        shown = {loc["location_id"] for loc in locations if loc["averaged"]}
        by_location: dict[str, list[float]] = {}
        for e in contributing:
            if e["location_id"] in shown:
                by_location.setdefault(e["location_id"], []).append(e["contribution"])
        means = [sum(v) / len(v) for v in by_location.values() if v]
        out["locations"] = locations
        out["reproduced"] = {"n": sum(len(v) for v in by_location.values()),
                             "value": sum(means) / len(means) if means else None, "n_locations": len(means)}
    else:
        is_count = entry is not None and entry.aggregation == "count"
        value = float(len(xs)) if is_count else (sum(xs) / len(xs) if xs else None)
        out["reproduced"] = {"n": len(xs), "value": value}
    published_value = version["value"]
    rv = out["reproduced"]["value"]
    if version["suppressed"] or version["n"] is None:
        # blanked in the published warehouse (small numbers): nothing to compare, nothing to show
        out["reproduced"]["matches"] = None
        out["reproduced"]["value"] = None
    else:
        out["reproduced"]["matches"] = (
            out["reproduced"]["n"] == version["n"]
            and ((published_value is None and rv is None) or (
                published_value is not None and rv is not None
                and abs(published_value - rv) <= 1e-9 * max(1.0, abs(published_value)))))
    deliveries = sorted({e["delivery_id"] for e in episodes if e["delivery_id"]})
    if not deliveries:  # no episodes: the unit's concern's current delivery at that run
        deliveries = [r["delivery_id"] for r in _rows(con, "SELECT DISTINCT delivery_id FROM audit.run_inputs "
                                                            "WHERE run_id = ? AND concern_id = ?",
                                                      [the_run["run_id"], concern])]
    placeholders = ", ".join("?" for _ in deliveries) or "NULL"
    out["deliveries"] = _rows(con, f"""
        SELECT delivery_id, export_id, exported_at, manifest_sha256, file_name, sha256, rows_read
        FROM audit.run_inputs WHERE run_id = ? AND delivery_id IN ({placeholders})
        ORDER BY delivery_id, file_name""", [the_run["run_id"], *deliveries])
    quarantined, unattributable = _quarantine_for_unit(con, seq, deliveries, level, unit, period_type, period,
                                                       episodes)
    out["quarantined_rows"] = quarantined
    out["quarantined_unattributable_rows"] = unattributable
    return out


def explain_caseload_table(con, *, concern: str | None, level: str | None, unit: str | None, period: str | None,
                           dimension: str | None, category: str | None, run: str | None) -> dict:
    """marts.caseload_review: rebuilt every run and not versioned in the audit trail, so only the latest run's
    rows are explained. The work database (it holds config.applied_parameters, which is never published) has
    the therapist rows and the episodes behind them."""
    has_runs = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'audit' "
                           "AND table_name = 'runs'").fetchone()[0] > 0
    latest = resolve_run(con, None) if has_runs else None
    if run is not None and (latest is None or resolve_run(con, run)["run_id"] != latest["run_id"]):
        raise ExplainError(f"{CASELOAD_TABLE} is rebuilt every run and not kept in the audit trail: only the latest "
                           f"published run{' (' + latest['run_id'] + ')' if latest else ''} can be explained")
    work = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'config' "
                       "AND table_name = 'applied_parameters'").fetchone()[0] > 0
    doc = explain_caseload(con, concern=concern, level=level, unit=unit, period=period, dimension=dimension,
                           category=category, work=work, error=ExplainError)
    doc["run"] = {k: latest[k] for k in ("run_id", "run_seq", "status", "trigger", "started_at", "finished_at",
                                         "code_version", "git_commit")} if latest else None
    return doc


def explain_feedback_table(con, *, table: str, concern: str | None, level: str | None, unit: str | None,
                           period: str | None, indicator: str | None, run: str | None) -> dict:
    """marts.feedback_backtest (--concern C or --level all; --indicator sensitivity|precision, default both) or
    marts.expected_course (--unit <intake band>, --period <session bin>, --indicator <percentile>, default all).
    Both are rebuilt every run and not versioned in the audit trail: only the latest published run is explained."""
    latest = resolve_run(con, None)
    if run is not None and resolve_run(con, run)["run_id"] != latest["run_id"]:
        raise ExplainError(f"{table} is rebuilt every run and not kept in the audit trail: only the latest "
                           f"published run ({latest['run_id']}) can be explained")
    tree = json.loads(latest["parameters_json"] or "{}").get("parameters", {})
    if table == BACKTEST_TABLE:
        doc = explain_backtest(con, tree, concern, level or "concern", indicator, ExplainError)
    else:
        doc = explain_expected_course(con, tree, unit, period, indicator, ExplainError)
    doc["run"] = {k: latest[k] for k in ("run_id", "run_seq", "status", "trigger", "started_at", "finished_at",
                                         "code_version", "git_commit", "source_sha256", "parameters_sha256")}
    return doc


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.6g}"
    return str(value)


def _grouped(rows: list[dict]) -> list[list[dict]]:
    """Item-response rows of one measurement with the same reason, as one group (for reading)."""
    groups: list[list[dict]] = []
    for row in rows:
        last = groups[-1][-1] if groups else None
        if (last is not None and row["file_name"].startswith("item_responses") and last["file_name"] == row["file_name"]
                and last["delivery_id"] == row["delivery_id"] and last["reason"] == row["reason"]
                and last["raw_row"].get("measurement_id") == row["raw_row"].get("measurement_id")):
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def _suppressed_text(doc: dict) -> str:
    reason = (doc.get("published_row") or {}).get("suppression_reason")
    return f"suppressed ({reason})" if reason else "suppressed"


def _unit_text(figure: dict) -> str:
    """'therapist T1 of concern C001', 'concern C001', or 'all concerns' (level all: its unit is 'all')."""
    if figure["level"] == "all":
        return "all concerns"
    of_concern = figure["concern_id"] and figure["level"] != "concern"
    return f"{figure['level']} {figure['unit_id']}" + (f" of concern {figure['concern_id']}" if of_concern else "")


def render_text(doc: dict) -> str:
    f, run = doc["figure"], doc["run"]
    if f["table"] == CASELOAD_TABLE:
        lines = render_caseload_text(doc, _fmt)
        if run:
            lines.insert(1, f"Run      {run['run_id']} (run {run['run_seq']}, {run['status']}, finished "
                            f"{run['finished_at']}; code {run['code_version']})")
        return "\n".join(lines)
    if f["table"] == BACKTEST_TABLE:
        return render_backtest_text(doc, _fmt)
    if f["table"] == COURSE_TABLE:
        return render_expected_course_text(doc, _fmt)
    lines = [
        f"Figure   {f['table']}: {f['indicator']} ({f['aggregation'] or '-'}) for {_unit_text(f)}, "
        f"{f['period_type']} {f['period']}",
        f"Run      {run['run_id']} (run {run['run_seq']}, {run['trigger']}, published {run['finished_at']})",
        f"Code     {run['code_version']} (source sha256 {str(run['source_sha256'])[:12]}...)",
        "",
        f"Value    {_suppressed_text(doc) if doc['suppressed'] else _fmt(doc['value'])}"
        f"    n = {_fmt(doc['n'])}",
    ]
    row = doc.get("published_row") or {}
    if row.get("ci_low") is not None:
        lines.append(f"95% CI   {_fmt(row.get('ci_low'))} .. {_fmt(row.get('ci_high'))}"
                     f"    target {_fmt(row.get('target'))}, met: {_fmt(row.get('target_met'))}")
    rec = doc["value_recorded_by_run"]
    if rec["run_id"] != run["run_id"]:
        lines.append(f"         unchanged since run {rec['run_seq']} ({rec['run_id']}, code {rec['code_version']})")
    if f["table"] in BENCHMARK_TABLES:
        return "\n".join(lines + render_benchmark_text(doc))
    if f["table"] == "marts.not_on_track_counts":
        return "\n".join(lines + render_not_on_track_text(doc, _fmt))
    if f["table"] == CASEMIX_TABLE:
        return "\n".join(lines[:4] + render_casemix_text(doc, _fmt))
    lines += ["", f"Formula  {doc['formula']}", f"         aggregation: {doc['aggregation_rule']}",
              "Parameters (as this run used them; sha256 " + str(doc["parameters_sha256"])[:12] + "...):"]
    for name, value in doc["parameters"].items():
        lines.append(f"  {name} = {json.dumps(value)}")
    if "note" in doc:
        lines += ["", doc["note"]]
        for part in doc.get("parts", []):
            lines.append(f"  concern {part['concern_id']}: value {_fmt(part['value'])}, n {_fmt(part['n'])}")
        return "\n".join(lines)
    if "locations" in doc:
        lines += ["", "Locations (the value is the mean of the shown ones; a suppressed location takes no part):",
                  "  location     value        n       averaged"]
        for loc in doc["locations"]:
            why = "yes" if loc["averaged"] else f"no: suppressed ({loc['suppression_reason'] or 'no value'})"
            lines.append(f"  {loc['location_id']:<12} {_fmt(None if not loc['averaged'] else loc['value']):<12} "
                         f"{_fmt(loc['n']):<7} {why}")
    episodes = doc["episodes"]
    counted = [e for e in episodes if e["counts"]]
    instrument = doc.get("instrument", "SCL90")
    adherence = doc.get("shows_adherence", False)
    lines += ["", f"Episodes closed in the period: {len(episodes)}; counted in {f['indicator']}: {len(counted)}"
                  f" (recorded by run {doc['episodes_recorded_by_run']})"]
    if instrument != "SCL90":
        lines.append(f"  (pre, post and change are the episode's {instrument} measurements, the instrument of this "
                     "indicator; % improvement is SCL90 only)")
    lines.append("  episode     delivery             pre (id: score)        post (id: score)       % impr.  rule"
                 "                    change        " + ("SCL90 adm./expected  " if adherence else "") + "counts")
    for e in episodes:
        scores = e["instrument_outcome"] or {} if instrument != "SCL90" else e
        lines.append(
            f"  {e['episode_id']:<11} {str(e['delivery_id']):<20} "
            f"{str(scores.get('pre_measurement_id')) + ': ' + _fmt(scores.get('pre_score')):<22} "
            f"{str(scores.get('post_measurement_id')) + ': ' + _fmt(scores.get('post_score')):<22} "
            f"{_fmt(e['pct_improvement'] if instrument == 'SCL90' else None):>7}  "
            f"{str((e['improvement_rule'] if instrument == 'SCL90' else None) or '-'):<23} "
            f"{str(scores.get('reliable_change') or '-'):<13} "
            + (f"{_fmt(e['scl90_administrations']) + '/' + _fmt(e['expected_administrations']):<20} "
               if adherence else "")
            + (f"yes ({_fmt(e['contribution'])})" if e["counts"] else f"no: {e['left_out_because']}"))
    rep = doc["reproduced"]
    lines += ["", f"Reproduced from these episodes: n = {rep['n']}, value = "
                  f"{'(suppressed)' if doc['suppressed'] else _fmt(rep['value'])}"
                  f" -> {MATCH_TEXT[rep['matches']]}"]
    lines += ["", "Source deliveries and file checksums:"]
    for d in doc["deliveries"]:
        lines.append(f"  {d['delivery_id']}  {d['file_name']:<22} sha256 {d['sha256']}  rows {d['rows_read']}"
                     f"  (manifest {str(d['manifest_sha256'])[:12]}..., exported {d['exported_at']})")
    lines += ["", f"Quarantined rows of this unit and period, left out: {len(doc['quarantined_rows'])}"]
    for group in _grouped(doc["quarantined_rows"]):
        q = group[0]
        if len(group) == 1:
            lines.append(f"  {q['delivery_id']} {q['file_name']} row {q['source_row_number']}: {q['reason']}"
                         f" ({q['column_name'] or '-'}: {q['detail'] or '-'}) {json.dumps(q['raw_row'])}")
        else:  # the item responses of one measurement, typically
            lines.append(f"  {q['delivery_id']} {q['file_name']} rows {q['source_row_number']}.."
                         f"{group[-1]['source_row_number']} ({len(group)} rows of measurement "
                         f"{q['raw_row'].get('measurement_id')}): {q['reason']} ({q['column_name'] or '-'}: "
                         f"{q['detail'] or '-'})")
    if doc["quarantined_unattributable_rows"]:
        lines.append(f"  plus {doc['quarantined_unattributable_rows']} unreadable row(s) of these deliveries that "
                     "cannot be attributed to a unit")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", default="marts.indicators",
                        help="published table (default marts.indicators; also marts.internal_benchmark, "
                             "marts.financial_ratios, marts.concern_benchmark, marts.concern_summary, "
                             "marts.casemix_adjusted, marts.not_on_track_counts, marts.feedback_backtest, "
                             "marts.expected_course, marts.caseload_review)")
    parser.add_argument("--concern", help="concern id (omit for level all)")
    parser.add_argument("--level", choices=["therapist", "location", "concern", "all"], default="concern")
    parser.add_argument("--unit", help="therapist, location or concern id (default: the concern); "
                                       "marts.expected_course: the intake band, e.g. 200-249")
    parser.add_argument("--period-type", choices=["month", "quarter", "year"], default="year")
    parser.add_argument("--period", help="e.g. 2025-07, 2025-Q3, 2025 (marts.not_on_track_counts: the year of the "
                                         "export date; marts.caseload_review: the year by episode end date; "
                                         "marts.expected_course: the session bin, e.g. 1-5; "
                                         "not for marts.feedback_backtest)")
    parser.add_argument("--indicator", help="indicator (or ratio / benchmark indicator id); marts.feedback_backtest: "
                                            "sensitivity or precision (default both); marts.expected_course: a "
                                            "percentile, e.g. 50 (default all); marts.caseload_review: a "
                                            "dimension: diagnosis_group, baseline_severity, referrer, care_type or "
                                            "total (default all)")
    parser.add_argument("--category", help="marts.caseload_review: one category of the --indicator dimension, "
                                           "e.g. depression")
    parser.add_argument("--aggregation", help="episodes (default for indicators) or mean_of_locations; the peer "
                                              "group for benchmarks")
    parser.add_argument("--run", help="run id (or a unique prefix); default: the latest published run")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--db", default="warehouse",
                        help="warehouse (default: the published file), work (the pipeline's work database) or a path")
    parser.add_argument("--data-dir", help="default: $ROM_DATA_DIR or ./data")


def run(args: argparse.Namespace) -> int:
    unit = args.unit or (args.concern if args.level == "concern" else None)
    if args.table == COURSE_TABLE:
        unit = args.unit
    missing = [name for name, value, needed in (
        ("--period", args.period, args.table != BACKTEST_TABLE),
        ("--indicator", args.indicator, args.table not in (BACKTEST_TABLE, COURSE_TABLE, CASELOAD_TABLE))) if needed and not value]
    if missing:
        print(f"rom-pipeline explain: {' and '.join(missing)} required for --table {args.table}", file=sys.stderr)
        return 2
    try:
        con = open_database(args.db, Path(args.data_dir) if args.data_dir else None)
        try:
            doc = explain(con, table=args.table, concern=args.concern, level=args.level, unit=unit,
                          period_type=args.period_type, period=args.period, indicator=args.indicator,
                          aggregation=args.aggregation, run=args.run, category=args.category)
        finally:
            con.close()
    except ExplainError as exc:
        print(f"rom-pipeline explain: {exc}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(doc, indent=2, default=str) if args.format == "json" else render_text(doc))
        sys.stdout.flush()
    except BrokenPipeError:  # `explain ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("explain", help="how one published figure was derived (for an auditor)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run)
