"""What the reports read, and from where.

Two sources, kept apart on purpose (docs/reports.md, architecture.md "Privacy"):

- :class:`SharedSource`: the PUBLISHED warehouse, opened read-only. Everything in
  ``reports/shared`` comes from here. Its queries never select therapist-level rows
  (``level = 'therapist'``), even if a deployment were to publish them.
- :class:`ManagerSource`: the work database, opened read-only, for the per-location
  manager packages only: therapist-level indicators and benchmark rows, which are
  not in the shared warehouse.

Suppression is read, never decided here: each figure's ``suppressed`` flag (and its
``suppression_reason`` where the table has one) as the SQL published it.

Plain selections only: the rules that made the figures live in ``sql/marts``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import duckdb

from rom_pipeline.lib import warehouse_reader
from rom_pipeline.lib.audience import period_types_sql

# The periods a manager package shows of its therapists (rom_pipeline/lib/audience.py).
MANAGER_PERIODS = period_types_sql()

REQUIRED_SHARED_TABLES = [
    "staging.annual_reports", "staging.locations", "marts.financial_ratios", "marts.concern_benchmark",
    "marts.concern_summary", "marts.concern_size_groups", "marts.indicators", "marts.indicator_breakdowns",
    "marts.internal_benchmark", "config.parameters", "config.indicator_targets", "config.indicator_catalogue",
    "audit.deliveries", "marts.not_on_track_counts",
]
REQUIRED_WORK_TABLES = ["staging.therapists", "marts.internal_benchmark", "marts.indicators",
                        "marts.episode_outcomes", "marts.not_on_track", "outcomes.scl90_course",
                        "outcomes.expected_course_fits"]


class MissingTables(RuntimeError):
    pass


def open_read_only(path: Path, encryption_key: str | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a DuckDB file (attached, so an encrypted warehouse opens too)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist: publish the warehouse first")
    return warehouse_reader.open_read_only(path, encryption_key, alias="src")


# Fingerprints of the results read (see :func:`recording_reads`); the innermost recording gets them.
_RECORDINGS: list[list[str]] = []


@contextmanager
def recording_reads() -> Iterator[list[str]]:
    """Collect a fingerprint of every query result read inside the block, in order (the reports' "render
    only what changed": a task's pages are kept when the fingerprints of what it read are the same)."""
    found: list[str] = []
    _RECORDINGS.append(found)
    try:
        yield found
    finally:
        _RECORDINGS.pop()


def _rows(con, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cur = con.cursor()  # a cursor starts in the default catalog: point it at the attached file again
    try:
        cur.execute("USE src")
        result = cur.execute(sql, params or [])
        names = [d[0] for d in result.description]
        types = [str(d[1]) for d in result.description]
        rows = [dict(zip(names, row)) for row in result.fetchall()]
        if _RECORDINGS:
            _RECORDINGS[-1].append(_result_fingerprint(cur, sql, params or [], types))
        return rows
    finally:
        cur.close()


def _result_fingerprint(cur, sql: str, params: list, types: list[str]) -> str:
    """An order-independent fingerprint of a query's result, computed by DuckDB (the query runs once more,
    aggregated: hashing a tier M build's million therapist rows in Python cost 5 CPU-s, a sixth of the build).

    The sum of the rows' hashes, so that rows returned in another order give the same fingerprint; floating
    point values rounded to 9 significant digits, so that a summation-order wobble in their last bits is not
    a change. With the query's text and parameters (a warehouse without ``suppression_reason`` is asked
    another query) and the row count. DuckDB's ``hash`` is not cryptographic: it tells a change from none,
    it guards nothing against someone who forges data (who could change the pages themselves)."""
    columns = [f"c{i}" for i in range(len(types))]
    if columns:
        values = ", ".join(f"printf('%.9g', {c})" if t in ("DOUBLE", "FLOAT") else c for c, t in zip(columns, types))
        row_hash = f"coalesce(sum(hash({values})::HUGEINT), 0)"
    else:
        row_hash = "0"
    count, total = cur.execute(f"SELECT count(*), {row_hash} FROM ({sql}) AS q({', '.join(columns)})",
                               params).fetchone()
    text = hashlib.sha256(repr((sql, [repr(p) for p in params])).encode()).hexdigest()[:16]
    return f"{text}:{count}:{int(total) % (1 << 64):016x}"


def _check_tables(con, tables: list[str], where: str) -> None:
    present = {f"{s}.{t}" for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'src'").fetchall()}
    missing = [t for t in tables if t not in present]
    if missing:
        raise MissingTables(f"{where} lacks {', '.join(missing)}: the reports need them "
                            "(for the warehouse: list them in schemas/warehouse.yaml)")


@dataclass(frozen=True)
class RunInfo:
    run_id: str | None
    run_seq: int | None
    finished_at: dt.datetime | None


def _reason_column(con, table: str) -> str:
    """``suppression_reason`` of ``schema.table`` when it has one, else NULL (a warehouse from before it)."""
    schema, name = table.split(".")
    present = con.execute("SELECT count(*) FROM duckdb_columns() WHERE database_name = 'src' AND schema_name = ? "
                          "AND table_name = ? AND column_name = 'suppression_reason'", [schema, name]).fetchone()[0]
    return "suppression_reason" if present else "NULL::VARCHAR AS suppression_reason"


class SharedSource:
    """The published warehouse (read-only). Shared reports read nothing else."""

    def __init__(self, path: Path, encryption_key: str | None = None):
        self.path = Path(path)
        self.con = open_read_only(self.path, encryption_key)
        _check_tables(self.con, REQUIRED_SHARED_TABLES, f"the warehouse {self.path}")
        self._reason = {t: _reason_column(self.con, t) for t in
                        ("marts.indicators", "marts.internal_benchmark", "marts.indicator_breakdowns")}

    def close(self) -> None:
        self.con.close()

    # --- run, parameters --------------------------------------------------------------------------
    def run_info(self) -> RunInfo:
        try:
            rows = _rows(self.con, "SELECT run_id, run_seq, finished_at FROM audit.runs "
                                   "WHERE status = 'published' ORDER BY run_seq DESC LIMIT 1")
        except duckdb.CatalogException:
            rows = []
        if not rows:
            return RunInfo(None, None, None)
        return RunInfo(rows[0]["run_id"], rows[0]["run_seq"], rows[0]["finished_at"])

    def parameters(self) -> dict[str, str]:
        return {r["name"]: r["value"] for r in _rows(self.con, "SELECT name, value FROM config.parameters")}

    def indicator_catalogue(self) -> list[dict]:
        return _rows(self.con, "SELECT * FROM config.indicator_catalogue ORDER BY position")

    def targets(self) -> dict[str, dict]:
        return {r["indicator"]: r for r in _rows(
            self.con, "SELECT indicator, comparator, target FROM config.indicator_targets")}

    # --- concern reports ----------------------------------------------------------------------------
    def concern_years(self) -> list[tuple[str, int]]:
        """Every concern and year known to the benchmark: an annual report or a benchmark row."""
        return [(r["concern_id"], r["year"]) for r in _rows(self.con, """
            SELECT concern_id, year FROM staging.annual_reports WHERE concern_id IS NOT NULL AND year IS NOT NULL
            UNION
            SELECT concern_id, year FROM marts.concern_summary
            ORDER BY concern_id, year""")]

    def concern_names(self) -> dict[str, str]:
        names = {r["concern_id"]: r["concern_name"] for r in _rows(self.con, """
            SELECT concern_id, concern_name FROM audit.deliveries
            WHERE status = 'current' AND concern_id IS NOT NULL AND concern_name IS NOT NULL""")}
        # The annual report's name (latest year) wins: it is the legal name the seed prints.
        names.update({r["concern_id"]: r["concern_name"] for r in _rows(self.con, """
            SELECT concern_id, arg_max(concern_name, year) AS concern_name FROM staging.annual_reports
            WHERE concern_name IS NOT NULL GROUP BY concern_id""")})
        return names

    def annual_reports(self, concern_id: str) -> dict[int, dict]:
        return {r["year"]: r for r in _rows(
            self.con, "SELECT * FROM staging.annual_reports WHERE concern_id = ? ORDER BY year", [concern_id])}

    def size_groups(self, concern_id: str) -> dict[int, dict]:
        return {r["year"]: r for r in _rows(self.con, """
            SELECT year, size_group, size_group_min_eur, size_group_max_eur, n_group_concerns
            FROM marts.concern_size_groups WHERE concern_id = ?""", [concern_id])}

    def financial_ratios(self, concern_id: str) -> dict[tuple[int, str], dict]:
        return {(r["year"], r["ratio"]): r for r in _rows(self.con, """
            SELECT year, ratio, value, z, unit, peer_mean, n_peers, z_size_group, n_size_peers
            FROM marts.financial_ratios WHERE concern_id = ?""", [concern_id])}

    def ratio_peer_means(self, year: int) -> dict[str, float]:
        return {r["ratio"]: r["peer_mean"] for r in _rows(self.con, """
            SELECT ratio, any_value(peer_mean) AS peer_mean FROM marts.financial_ratios
            WHERE year = ? GROUP BY ratio""", [year])}

    def concern_summary(self, concern_id: str) -> dict[tuple[int, str, str], dict]:
        return {(r["year"], r["peer_group"], r["cluster"]): r for r in _rows(self.con, """
            SELECT year, peer_group, cluster, summary_z, n_indicators FROM marts.concern_summary
            WHERE concern_id = ?""", [concern_id])}

    def benchmark_indicators(self, year: int) -> list[dict]:
        """Every indicator measured in ``year`` (any concern), with the mean over all concerns."""
        return _rows(self.con, """
            SELECT indicator_id, any_value(indicator_name) AS indicator_name, any_value(cluster) AS cluster,
                   bool_and(higher_is_better) AS higher_is_better, any_value(peer_mean) AS peer_mean,
                   any_value(source) AS source
            FROM marts.concern_benchmark
            WHERE year = ? AND peer_group = 'all'
            GROUP BY indicator_id""", [year])

    def concern_benchmark(self, concern_id: str, year: int) -> dict[str, dict]:
        """Per indicator the row against all concerns, with the size-group z and peer count beside it."""
        return {r["indicator_id"]: r for r in _rows(self.con, """
            SELECT a.indicator_id, a.value, a.z, a.z_oriented, a.peer_mean,
                   g.z AS z_size_group, g.n_peers AS n_size_peers
            FROM marts.concern_benchmark AS a
            LEFT JOIN marts.concern_benchmark AS g
              ON g.concern_id = a.concern_id AND g.year = a.year AND g.indicator_id = a.indicator_id
             AND g.peer_group = 'size_group'
            WHERE a.concern_id = ? AND a.year = ? AND a.peer_group = 'all'""", [concern_id, year])}

    def n_indicators_by_year(self) -> dict[int, int]:
        return {r["year"]: r["n"] for r in _rows(self.con, """
            SELECT year, count(DISTINCT indicator_id) AS n FROM marts.concern_benchmark GROUP BY year""")}

    # --- location reports ---------------------------------------------------------------------------
    def locations(self) -> list[dict]:
        return _rows(self.con, """
            SELECT concern_id, location_id, location_name, region FROM staging.locations
            ORDER BY concern_id, location_name, location_id""")

    def export_dates(self) -> dict[str, dt.date]:
        return {r["concern_id"]: r["export_date"] for r in _rows(self.con, """
            SELECT concern_id, max(export_date) AS export_date FROM audit.deliveries
            WHERE status = 'current' AND concern_id IS NOT NULL GROUP BY concern_id""")}

    def unit_indicators(self, concern_id: str) -> list[dict]:
        """Location figures and the organisation's (mean of locations; episodes for a count), year + quarter."""
        return _rows(self.con, f"""
            SELECT level, unit_id, period_type, period, indicator, aggregation, value, n, ci_low, ci_high,
                   target, target_met, coalesce(suppressed, false) AS suppressed, {self._reason["marts.indicators"]}
            FROM marts.indicators
            WHERE concern_id = ? AND period_type IN ('year', 'quarter')
              AND (level = 'location'
                   OR (level = 'concern' AND (aggregation = 'mean_of_locations'
                                              OR (aggregation = 'episodes' AND indicator IN (
                                                  SELECT indicator FROM config.indicator_catalogue
                                                  WHERE kind = 'count')))))
              AND level <> 'therapist'""", [concern_id])

    def location_benchmark(self, concern_id: str, period: str) -> list[dict]:
        return _rows(self.con, f"""
            SELECT unit_id, indicator, value, n, coalesce(suppressed, false) AS suppressed,
                   {self._reason["marts.internal_benchmark"]}, value_type,
                   organisation_value, deviation, z, funnel_centre, funnel_sd, funnel_95_low, funnel_95_high,
                   funnel_998_low, funnel_998_high, outside_funnel_95, outside_funnel_998
            FROM marts.internal_benchmark
            WHERE concern_id = ? AND level = 'location' AND period_type = 'year' AND period = ?""",
                     [concern_id, period])

    def not_on_track_counts(self, concern_id: str) -> dict[tuple[str, str], dict]:
        """Open episodes judged and flagged not on track, per (level, unit) of the concern, as published
        (location and concern only; suppressed counts are NULL, with the flag and the reason)."""
        return {(r["level"], r["unit_id"]): r for r in _rows(self.con, """
            SELECT level, unit_id, as_of, n_judged, n_flagged, pct_flagged, n_reliably_worse,
                   n_above_expected_course, coalesce(suppressed, false) AS suppressed, suppression_reason
            FROM marts.not_on_track_counts
            WHERE concern_id = ? AND level IN ('location', 'concern')""", [concern_id])}

    def casemix(self, concern_id: str, period: str) -> list[dict]:
        """Case-mix adjusted figures (observed, expected, difference) of the concern and its locations for a
        year; none from a warehouse published before marts.casemix_adjusted existed."""
        if not _has_table(self.con, "marts.casemix_adjusted"):
            return []
        return _rows(self.con, f"""
            SELECT {CASEMIX_COLUMNS} FROM marts.casemix_adjusted
            WHERE concern_id = ? AND period_type = 'year' AND period = ? AND level IN ('location', 'concern')""",
                     [concern_id, period])

    def breakdowns(self, concern_id: str, period: str) -> list[dict]:
        return _rows(self.con, f"""
            SELECT level, unit_id, dimension, category, indicator, value, n,
                   coalesce(suppressed, false) AS suppressed, {self._reason["marts.indicator_breakdowns"]}
            FROM marts.indicator_breakdowns
            WHERE concern_id = ? AND period_type = 'year' AND period = ? AND level IN ('location', 'concern')""",
                     [concern_id, period])


def _has_table(con, table: str) -> bool:
    schema, name = table.split(".")
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'src' AND schema_name = ? "
                       "AND table_name = ?", [schema, name]).fetchone()[0] > 0


CASEMIX_COLUMNS = ("level, unit_id, period_type, period, indicator, n, observed, expected, difference, ci_low, ci_high, "
                   "limit_95, limit_998, outside_95, outside_998, coalesce(suppressed, false) AS suppressed, "
                   "suppression_reason, model_ids")


class ManagerSource:
    """The work database (read-only): therapist-level figures, for manager packages only."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.con = open_read_only(self.path)
        _check_tables(self.con, REQUIRED_WORK_TABLES, f"the work database {self.path}")

    def close(self) -> None:
        self.con.close()

    def latest_run_id(self) -> str | None:
        """The newest run that touched the work database's tables, whatever its status (a quiet night, status
        ``unchanged``, touched nothing but its own row in audit.runs)."""
        try:
            rows = _rows(self.con, "SELECT run_id FROM audit.runs WHERE status <> 'unchanged' "
                                   "ORDER BY run_seq DESC LIMIT 1")
        except duckdb.CatalogException:
            return None
        return rows[0]["run_id"] if rows else None

    def therapists(self, concern_id: str) -> list[dict]:
        return _rows(self.con, """
            SELECT therapist_id, location_id, profession, is_trainee FROM staging.therapists
            WHERE concern_id = ? ORDER BY therapist_id""", [concern_id])

    def therapist_benchmark(self, concern_id: str, *quarter_indicators: str) -> list[dict]:
        """Every therapist of the concern, year and quarter (values kept when suppressed: flagged, not hidden).
        With ``quarter_indicators``: the quarter rows of those indicators only (a therapist page charts two
        indicators per quarter; the other quarter rows were three quarters of a tier M build's rows)."""
        only = "AND (period_type <> 'quarter' OR list_contains(?, indicator))" if quarter_indicators else ""
        return _rows(self.con, f"""
            SELECT unit_id, period_type, period, indicator, value, n, ci_low, ci_high,
                   coalesce(suppressed, false) AS suppressed, value_type, organisation_value, deviation, z,
                   target, target_met, funnel_centre, funnel_sd, funnel_95_low, funnel_95_high,
                   funnel_998_low, funnel_998_high, outside_funnel_95, outside_funnel_998
            FROM marts.internal_benchmark
            WHERE concern_id = ? AND level = 'therapist' AND period_type IN {MANAGER_PERIODS} {only}""",
                     [concern_id] + ([list(quarter_indicators)] if quarter_indicators else []))

    def therapist_counts(self, concern_id: str) -> list[dict]:
        """n_closed per therapist and period (the benchmark leaves this volume out)."""
        return _rows(self.con, f"""
            SELECT unit_id, period_type, period, n FROM marts.indicators
            WHERE concern_id = ? AND level = 'therapist' AND indicator = 'n_closed'
              AND period_type IN {MANAGER_PERIODS} AND aggregation = 'episodes'""", [concern_id])

    # --- not-on-track feedback (docs/feedback.md): episode rows, for the manager packages only ---------
    def flagged_episodes(self, concern_id: str) -> list[dict]:
        """The concern's open episodes flagged not on track (marts.not_on_track), with their therapist and
        location: each manager package takes its own location's. Episode ids, never a client id."""
        return _rows(self.con, """
            SELECT location_id, therapist_id, episode_id, start_date, diagnosis_group, sessions_attended,
                   pre_score, intake_band, latest_administered_on, latest_session, session_bin, latest_score,
                   expected_score, expected_low, expected_high, rc_threshold, not_on_track_reason
            FROM marts.not_on_track
            WHERE concern_id = ? AND not_on_track
            ORDER BY location_id, therapist_id, episode_id""", [concern_id])

    def flagged_courses(self, concern_id: str) -> list[dict]:
        """The SCL90 scores by session of the concern's flagged open episodes (for their trajectory charts)."""
        return _rows(self.con, """
            SELECT c.episode_id, c.session, c.score
            FROM outcomes.scl90_course AS c
            JOIN marts.not_on_track AS n ON n.concern_id = c.concern_id AND n.episode_id = c.episode_id
            WHERE c.concern_id = ? AND n.not_on_track
            ORDER BY c.episode_id, c.session, c.administered_on""", [concern_id])

    def expected_course(self) -> list[dict]:
        """The expected course the nightly flag used (fit 'all'), per intake band, session bin and percentile."""
        return _rows(self.con, """
            SELECT intake_band, session_bin_from, session_bin_to, session_bin, percentile, score
            FROM outcomes.expected_course_fits
            WHERE fit = 'all'
            ORDER BY intake_band, session_bin_from, percentile""")

    def therapist_casemix(self, concern_id: str, year: str | None = None) -> list[dict]:
        """Case-mix adjusted figures per therapist of the concern, year and quarter (values kept when
        suppressed: the manager's own view flags them). For the manager package only (issue 12 parts 1, 5).
        With ``year``: that year's rows only (what the caseload review shows)."""
        if not _has_table(self.con, "marts.casemix_adjusted"):
            return []
        only = "AND period_type = 'year' AND period = ?" if year is not None else ""
        return _rows(self.con, f"""
            SELECT {CASEMIX_COLUMNS} FROM marts.casemix_adjusted
            WHERE concern_id = ? AND level = 'therapist' AND period_type IN {MANAGER_PERIODS} {only}""",
                     [concern_id] + ([year] if year is not None else []))

    def caseload_review(self, concern_id: str) -> list[dict]:
        """The caseload review (marts.caseload_review, docs/reports.md): per therapist and location and year,
        case-mix shares and, per therapist, the "all complete episodes at 100%" flag. Manager package only."""
        if not _has_table(self.con, "marts.caseload_review"):
            return []
        return _rows(self.con, """
            SELECT level, unit_id, location_id, period, dimension, category, n, n_unit, share,
                   coalesce(suppressed, false) AS suppressed, suppression_reason, n_complete, n_complete_at_100,
                   all_complete_at_100
            FROM marts.caseload_review
            WHERE concern_id = ? AND period_type = 'year'""", [concern_id])
