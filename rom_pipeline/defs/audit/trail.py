"""The auditor's trail in the work database: runs, their inputs, published figures and their episodes.

These tables are never rebuilt: each run appends to them, so they hold the history
of every publish. A figure is a row of ``audit.published_figures`` when it first
appears, each time its value (or any other published column) changes, and when it
disappears (``change = 'removed'``): unchanged figures are not repeated night after
night. Values are compared at ``COMPARE_DIGITS`` significant digits (floating-point
noise of parallel sums is not a change); the stored value is the exact one. The figure a run published is therefore the latest row of its key from that
run or an earlier published one (``run_seq``). ``audit.figure_episodes`` and
``audit.quarantine_log`` are versioned the same way, per unit and period and per
delivery. ``audit.run_inputs`` lists every run's current delivery files in full.

Rows of a run that did not publish are deleted by the next run (they never
described a published warehouse); ``audit.runs`` keeps the run itself with its status.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from rom_pipeline.lib.audience import published_somewhere_sql
from rom_pipeline.lib.concern_batches import batched, in_batch
from rom_pipeline.lib.concern_scope import PENDING_DDL, clear_pending, read_scope
from rom_pipeline.lib.sqlfiles import SqlModel, render_macro
from rom_pipeline.lib.sqltext import in_list, literal

FIGURE_EPISODES_MODEL = SqlModel("audit", "figure_episodes")

DDL = [
    """CREATE TABLE IF NOT EXISTS audit.runs (
        run_id VARCHAR PRIMARY KEY, run_seq BIGINT NOT NULL, started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ, status VARCHAR NOT NULL, trigger VARCHAR, code_version VARCHAR NOT NULL,
        git_commit VARCHAR, source_sha256 VARCHAR NOT NULL, parameters_json VARCHAR NOT NULL,
        parameters_sha256 VARCHAR NOT NULL, sql_files_json VARCHAR NOT NULL, inputs_fingerprint VARCHAR NOT NULL,
        manifests_fingerprint VARCHAR NOT NULL, refresh VARCHAR, concerns_recomputed VARCHAR,
        figures_new BIGINT, figures_changed BIGINT, figures_removed BIGINT, missing_concerns VARCHAR,
        key_fingerprint VARCHAR)""",
    # set by ingest (issue 10, items 6 and 7); added to work databases from before
    "ALTER TABLE audit.runs ADD COLUMN IF NOT EXISTS missing_concerns VARCHAR",
    "ALTER TABLE audit.runs ADD COLUMN IF NOT EXISTS key_fingerprint VARCHAR",
    # set by publish: what an incremental publish must find unchanged (rom_pipeline.lib.fingerprint.publish_settings)
    "ALTER TABLE audit.runs ADD COLUMN IF NOT EXISTS publish_settings VARCHAR",
    """CREATE TABLE IF NOT EXISTS audit.run_inputs (
        run_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, concern_id VARCHAR, delivery_id VARCHAR NOT NULL,
        export_id VARCHAR, exported_at TIMESTAMPTZ, manifest_sha256 VARCHAR, file_name VARCHAR NOT NULL,
        sha256 VARCHAR NOT NULL, rows_read BIGINT)""",
    """CREATE TABLE IF NOT EXISTS audit.published_figures (
        run_id VARCHAR NOT NULL, table_name VARCHAR NOT NULL, figure_key VARCHAR NOT NULL,
        concern_id VARCHAR, level VARCHAR, unit_id VARCHAR, period_type VARCHAR, period VARCHAR,
        figure VARCHAR NOT NULL, aggregation VARCHAR, value DOUBLE, n BIGINT, suppressed BOOLEAN,
        figure_json VARCHAR, figure_sha256 VARCHAR NOT NULL, change VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit.figure_episodes (
        run_id VARCHAR NOT NULL, unit_period_key VARCHAR NOT NULL, concern_id VARCHAR, level VARCHAR,
        unit_id VARCHAR, period_type VARCHAR, period VARCHAR, episode_id VARCHAR, delivery_id VARCHAR,
        location_id VARCHAR, therapist_id VARCHAR, end_date DATE, end_reason VARCHAR,
        pre_measurement_id VARCHAR, pre_score DOUBLE, post_measurement_id VARCHAR, post_score DOUBLE,
        has_complete_scores BOOLEAN, pct_improvement DOUBLE, improvement_rule VARCHAR, reliable_change VARCHAR,
        satisfaction_measurement_id VARCHAR, satisfaction_post DOUBLE, working_at_start BOOLEAN,
        working_at_end BOOLEAN, contributions MAP(VARCHAR, DOUBLE), cell_sha256 VARCHAR NOT NULL,
        scl90_administrations INTEGER, expected_administrations INTEGER,
        secondary_outcomes MAP(VARCHAR, STRUCT(n_measurements BIGINT, pre_measurement_id VARCHAR, pre_score DOUBLE,
                                               post_measurement_id VARCHAR, post_score DOUBLE,
                                               has_complete_scores BOOLEAN, reliable_change VARCHAR)))""",
    # ROM adherence and the secondary instruments (issue 12); added to work databases from before
    "ALTER TABLE audit.figure_episodes ADD COLUMN IF NOT EXISTS scl90_administrations INTEGER",
    "ALTER TABLE audit.figure_episodes ADD COLUMN IF NOT EXISTS expected_administrations INTEGER",
    """ALTER TABLE audit.figure_episodes ADD COLUMN IF NOT EXISTS secondary_outcomes MAP(VARCHAR, STRUCT(
        n_measurements BIGINT, pre_measurement_id VARCHAR, pre_score DOUBLE, post_measurement_id VARCHAR,
        post_score DOUBLE, has_complete_scores BOOLEAN, reliable_change VARCHAR))""",
    """CREATE TABLE IF NOT EXISTS audit.quarantine_log (
        run_id VARCHAR NOT NULL, delivery_id VARCHAR NOT NULL, concern_id VARCHAR, file_name VARCHAR,
        source_row_number BIGINT, stage VARCHAR, reason VARCHAR, column_name VARCHAR, detail VARCHAR,
        raw_row VARCHAR, delivery_sha256 VARCHAR NOT NULL)""",
    PENDING_DDL,
]

# Tables whose rows belong to one run each (cleaned of runs that did not publish).
VERSIONED = ["run_inputs", "published_figures", "figure_episodes", "quarantine_log"]


@dataclass(frozen=True)
class FigureSource:
    """How the rows of one published table become figures: SQL expressions over its columns.

    Only the rows some output publishes are figures of the trail (:attr:`published`).
    """

    table: str
    figure: str
    aggregation: str = "NULL"
    level: str = "'concern'"
    unit_id: str = "concern_id"
    period_type: str = "'year'"
    period: str = "year::VARCHAR"
    value: str = "value"
    n: str = "NULL"
    suppressed: str = "false"

    @property
    def published(self) -> str:
        """SQL condition: the rows some output shows (the warehouse's ``where``, the manager packages)."""
        return published_somewhere_sql(self.table)


FIGURE_SOURCES = [
    FigureSource("marts.indicators", figure="indicator", aggregation="aggregation", level="level",
                 unit_id="unit_id", period_type="period_type", period="period", n="n", suppressed="suppressed"),
    FigureSource("marts.internal_benchmark", figure="indicator", aggregation="'internal_benchmark'", level="level",
                 unit_id="unit_id", period_type="period_type", period="period", n="n", suppressed="suppressed"),
    FigureSource("marts.concern_benchmark", figure="indicator_id", aggregation="peer_group", n="n"),
    FigureSource("marts.concern_summary", figure="'summary_z:' || cluster", aggregation="peer_group",
                 value="summary_z", n="n_indicators"),
    FigureSource("marts.financial_ratios", figure="ratio"),
    # Open episodes not on track, as at the export date (docs/feedback.md): recorded under the year of the
    # export date, one figure per location and concern (n = the open episodes judged).
    FigureSource("marts.not_on_track_counts", figure="'n_flagged'", level="level", unit_id="unit_id",
                 period="year(as_of)::VARCHAR", value="n_flagged", n="n_judged", suppressed="suppressed"),
    # Case-mix adjusted figures (value = observed - expected), and the models behind them: every
    # run's coefficients stay in the trail although marts.casemix_models is rebuilt each run.
    FigureSource("marts.casemix_adjusted", figure="indicator", aggregation="'casemix_adjusted'", level="level",
                 unit_id="unit_id", period_type="period_type", period="period", value="difference", n="n",
                 suppressed="suppressed"),
    FigureSource("marts.casemix_models", figure="model || ':' || coalesce(equation, '') || ':' || term",
                 aggregation="model_id", level="left_out_level",
                 unit_id="coalesce(left_out_location_id, left_out_concerns)", period_type="NULL", period="NULL",
                 value="estimate", n="n_obs"),
]


def ensure_tables(con) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS audit")
    for ddl in DDL:
        con.execute(ddl)


def _exists(con, table: str) -> bool:
    schema, name = table.split(".")
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                       "AND schema_name = ? AND table_name = ?", [schema, name]).fetchone()[0] > 0


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    trigger: str
    code_version: str
    git_commit: str | None
    source_sha256: str
    parameters_json: str
    parameters_sha256: str
    sql_files: dict
    inputs_fingerprint: str
    manifests_fingerprint: str


def start_run(con, info: RunInfo) -> int:
    """Record the run (status 'running'); an earlier run still 'running' never finished. Returns run_seq."""
    ensure_tables(con)
    con.execute("UPDATE audit.runs SET status = 'incomplete' WHERE status = 'running' AND run_id <> ?", [info.run_id])
    existing = con.execute("SELECT run_seq FROM audit.runs WHERE run_id = ?", [info.run_id]).fetchone()
    if existing:  # a re-executed step of the same run
        return existing[0]
    seq = con.execute("SELECT coalesce(max(run_seq), 0) + 1 FROM audit.runs").fetchone()[0]
    con.execute(
        """INSERT INTO audit.runs (run_id, run_seq, started_at, status, trigger, code_version, git_commit,
               source_sha256, parameters_json, parameters_sha256, sql_files_json, inputs_fingerprint,
               manifests_fingerprint)
           VALUES (?, ?, now(), 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [info.run_id, seq, info.trigger, info.code_version, info.git_commit, info.source_sha256,
         info.parameters_json, info.parameters_sha256, json.dumps(info.sql_files, sort_keys=True),
         info.inputs_fingerprint, info.manifests_fingerprint])
    return seq


def _run_seq(con, run_id: str) -> int:
    row = con.execute("SELECT run_seq FROM audit.runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise LookupError(f"run {run_id} is not in audit.runs (the audit/runs asset did not run)")
    return row[0]


def collect_garbage(con, run_id: str) -> int:
    """Delete the trail rows of runs that did not publish (and of an earlier attempt of this run)."""
    deleted = 0
    for table in VERSIONED:
        deleted += con.execute(
            f"DELETE FROM audit.{table} WHERE run_id = ? OR run_id IN "
            f"(SELECT run_id FROM audit.runs WHERE status <> 'published')", [run_id]).fetchone()[0]
    return deleted


def record_run_inputs(con, run_id: str) -> int:
    """Every file of every current delivery (and the reference files) this run computed from."""
    return con.execute("""
        INSERT INTO audit.run_inputs
        SELECT ?, CASE WHEN d.delivery_id = 'reference' THEN 'reference' ELSE 'delivery' END, d.concern_id,
               d.delivery_id, d.export_id, d.exported_at, d.manifest_sha256, f.file_name, f.sha256, f.rows_read
        FROM audit.deliveries AS d
        JOIN audit.delivery_files AS f ON f.delivery_id = d.delivery_id
        WHERE d.status = 'current'
        ORDER BY d.concern_id, d.delivery_id, f.file_name""", [run_id]).fetchone()[0]


def _latest(table: str, key: str, columns: str, condition: str = "true") -> str:
    """The latest version of each key of ``audit.<table>`` among published runs and the current one
    (``$run_id``), of the rows meeting ``condition`` (on ``v``): the macro ``latest_versions`` of
    ``sql/macros/history.jinja``, which the checks on the trail read too."""
    return render_macro("macros/history.jinja", "latest_versions", table=f"audit.{table}", key=key,
                        columns=columns, run_id="$run_id", condition=condition)


# Decimals at which two versions of a figure count as the same value. The last bits of a
# sum of doubles depend on how DuckDB's threads split the work, so a figure recomputed from
# unchanged data can differ in its 16th digit; that is not a change. Fixed decimals, not
# significant digits or a relative tolerance: near zero (a deviation or z of 1.4e-15 one night,
# -7.1e-15 the next) both would see a change. Six decimals is finer than anything a report or
# export shows (one or two) and coarser than any noise on these magnitudes.
COMPARE_DECIMALS = 6


def _canonical_hash(con, table: str) -> str:
    """SHA-256 of the row's values, floating-point columns at COMPARE_DECIMALS decimals (-0 as 0, NULL as NULL).

    Values joined by a unit separator (NULL as a NUL character) rather than JSON: three times
    faster on the hundreds of thousands of figures a night publishes.
    """
    schema, name = table.split(".")
    cols = con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
                       "AND schema_name = ? AND table_name = ? ORDER BY column_index", [schema, name]).fetchall()
    fields = []
    for col, typ in cols:
        if col == "run_id":  # the run that made the row (marts.casemix_models), not part of the figure
            continue
        value = f't."{col}"'
        if typ in ("DOUBLE", "FLOAT", "REAL") or typ.startswith("DECIMAL"):
            rounded = f"round({value}::DOUBLE, {COMPARE_DECIMALS})"
            value = f"printf('%.{COMPARE_DECIMALS}f', CASE WHEN {rounded} = 0 THEN 0.0 ELSE {rounded} END)"
        else:
            value = f"{value}::VARCHAR"
        fields.append(f"coalesce({value}, chr(0))")
    return f"sha256(concat_ws(chr(31), {', '.join(fields)}))"


def _figures_select(con) -> str:
    parts = []
    for s in FIGURE_SOURCES:
        if not _exists(con, s.table):
            continue
        parts.append(f"""
            SELECT '{s.table}' AS table_name, concern_id, {s.level} AS level, {s.unit_id}::VARCHAR AS unit_id,
                   {s.period_type} AS period_type, {s.period} AS period, ({s.figure})::VARCHAR AS figure,
                   ({s.aggregation})::VARCHAR AS aggregation, ({s.value})::DOUBLE AS value, ({s.n})::BIGINT AS n,
                   coalesce(({s.suppressed})::BOOLEAN, false) AS suppressed, t.rowid AS source_rowid,
                   {_canonical_hash(con, s.table)} AS figure_sha256
            FROM {s.table} AS t WHERE {s.published}""")
    return " UNION ALL ".join(parts)


# Figures are compared a batch of concerns at a time, of about this many figures: at tier L the
# figures of every concern at once (with their keys and digests, copied for the changed ones) spilled
# more than 23 GB of temporary tables (issue 11). A figure's key holds its concern, so a batch's
# comparison needs only that batch's figures and history.
FIGURE_BATCH_ROWS = 2_000_000


def _concern_batches(con, select: str) -> list[list[str | None]]:
    """The concerns of tonight's figures and of the recorded ones (NULL: figures of no concern), in
    batches of about FIGURE_BATCH_ROWS current figures; each concern is in exactly one batch."""
    sizes = dict(con.execute(f"SELECT concern_id, count(*) FROM ({select}) AS f GROUP BY ALL").fetchall())
    for (concern,) in con.execute("SELECT DISTINCT concern_id FROM audit.published_figures").fetchall():
        sizes.setdefault(concern, 0)
    return batched(sizes, FIGURE_BATCH_ROWS)


def record_published_figures(con, run_id: str) -> dict[str, int]:
    """Append the figures that are new, changed or gone since the last publish.

    One transaction per batch: DuckDB keeps a temporary table dropped inside a transaction until it
    commits, so batches in one transaction held every batch's tables at once (tier L: the whole step
    spilled 16.5 GiB in 639 s; the figures alone, a transaction per batch, 4.9 GiB in 137 s). A run
    that dies between batches leaves rows of a run that did not publish: no reader counts them, and
    the next attempt or run deletes them (:func:`collect_garbage`).
    """
    counts = {"figures_new": 0, "figures_changed": 0, "figures_removed": 0, "figures_published": 0}
    select = _figures_select(con)
    if not select:
        return counts
    return _record_by_batch(con, _concern_batches(con, select),
                            lambda batch: _record_figures_of(con, run_id, select, batch), counts)


def _record_by_batch(con, batches: list[list[str | None]], record: Callable[[list[str | None]], dict[str, int]],
                     counts: dict[str, int]) -> dict[str, int]:
    """``record`` each batch of concerns in a transaction of its own, adding its counts to ``counts``.

    DuckDB keeps a temporary table dropped inside a transaction until the transaction commits, so
    batches sharing one transaction would hold every batch's tables at once.
    """
    for batch in batches:
        con.begin()
        try:
            for name, count in record(batch).items():
                counts[name] += count
            con.commit()
        except BaseException:
            con.rollback()
            raise
    return counts


def _record_figures_of(con, run_id: str, select: str, batch: list[str | None]) -> dict[str, int]:
    """record_published_figures for the figures of the concerns of ``batch``."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE current_figures AS
        SELECT concat_ws('|', table_name, coalesce(concern_id, '*'), coalesce(level, '*'), coalesce(unit_id, '*'),
                         coalesce(period_type, '*'), coalesce(period, '*'), figure, coalesce(aggregation, '*'))
                   AS figure_key,
               *
        FROM ({select}) AS f
        WHERE {in_batch('f.concern_id', batch)}""")
    duplicates = con.execute("SELECT figure_key FROM current_figures GROUP BY ALL HAVING count(*) > 1 LIMIT 3").fetchall()
    if duplicates:
        raise ValueError(f"published figures are not unique by key, e.g. {duplicates}")
    # The latest version of every figure (arg_max: a hash aggregate, faster than a window over the history).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE last_figures AS
        SELECT v.figure_key, max(r.run_seq) AS run_seq, arg_max(v.figure_sha256, r.run_seq) AS figure_sha256,
               arg_max(v.change, r.run_seq) AS change
        FROM audit.published_figures AS v JOIN audit.runs AS r ON r.run_id = v.run_id
        WHERE (r.status = 'published' OR r.run_id = ?) AND {in_batch('v.concern_id', batch)}
        GROUP BY v.figure_key""", [run_id])
    # The figures to record: new ones and changed ones. Their published row as JSON is made for these
    # only, from the source rows (rowid, within this transaction): most figures of a night are unchanged.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE appended_figures AS
        SELECT c.*, CASE WHEN l.figure_key IS NULL THEN 'new' ELSE 'changed' END AS change
        FROM current_figures AS c LEFT JOIN last_figures AS l ON l.figure_key = c.figure_key AND l.change <> 'removed'
        WHERE l.figure_key IS NULL OR l.figure_sha256 <> c.figure_sha256""")
    rows_as_json = " UNION ALL ".join(
        f"SELECT '{s.table}' AS table_name, t.rowid AS source_rowid, to_json(t)::VARCHAR AS figure_json "
        f"FROM {s.table} AS t WHERE t.rowid IN "
        f"(SELECT source_rowid FROM appended_figures WHERE table_name = '{s.table}')"
        for s in FIGURE_SOURCES if _exists(con, s.table))
    columns = ("table_name, figure_key, concern_id, level, unit_id, period_type, period, figure, aggregation, "
               "value, n, suppressed")
    counts = {}
    con.execute(f"""
        INSERT INTO audit.published_figures
        SELECT ?, {', '.join('a.' + x.strip() for x in columns.split(','))}, j.figure_json, a.figure_sha256, a.change
        FROM appended_figures AS a JOIN ({rows_as_json}) AS j USING (table_name, source_rowid)""", [run_id])
    appended = dict(con.execute("SELECT change, count(*) FROM appended_figures GROUP BY change").fetchall())
    counts["figures_new"] = appended.get("new", 0)
    counts["figures_changed"] = appended.get("changed", 0)
    con.execute("DROP TABLE appended_figures")
    # The figures gone since the last publish, found among the keys first: joined to the history
    # before the NOT EXISTS, every batch scanned the whole history for none (tier L, a night with
    # nothing gone: 22.9 of the comparison's 79.4 s).
    con.execute("""
        CREATE OR REPLACE TEMP TABLE gone_figures AS
        SELECT l.figure_key, l.run_seq FROM last_figures AS l
        WHERE l.change <> 'removed' AND NOT EXISTS (SELECT 1 FROM current_figures AS c WHERE c.figure_key = l.figure_key)""")
    counts["figures_removed"] = 0
    if con.execute("SELECT count(*) FROM gone_figures").fetchone()[0]:
        counts["figures_removed"] = con.execute(f"""
            INSERT INTO audit.published_figures
            SELECT ?, v.table_name, v.figure_key, v.concern_id, v.level, v.unit_id, v.period_type, v.period,
                   v.figure, v.aggregation, NULL, NULL, NULL, NULL, sha256('removed'), 'removed'
            FROM gone_figures AS l
            JOIN audit.runs AS r ON r.run_seq = l.run_seq
            JOIN audit.published_figures AS v ON v.run_id = r.run_id AND v.figure_key = l.figure_key
            WHERE {in_batch('v.concern_id', batch)}""", [run_id]).fetchone()[0]
    counts["figures_published"] = con.execute("SELECT count(*) FROM current_figures").fetchone()[0]
    con.execute("DROP TABLE current_figures")
    con.execute("DROP TABLE last_figures")
    con.execute("DROP TABLE gone_figures")
    return counts


REMOVED_CELL_SHA256 = "sha256('removed')"


def _set_digest(rows: str) -> str:
    """SQL aggregate: a digest of a group of rows that does not depend on their order.

    The sum of the rows' 64-bit hashes (plus their count) streams in constant memory, where an
    ordered string_agg of every row's JSON held whole groups in memory and ran a national-scale
    night out of memory. It only tells whether a group changed between runs (DuckDB's hash is
    stable within a DuckDB version; an upgrade re-records every group once).
    """
    return f"sha256(sum(hash(to_json({rows})))::VARCHAR || '/' || count(*)::VARCHAR)"


# The episodes behind the figures are compared a batch of concerns at a time, of about this many
# rows (an episode has a row per level and period: nine): at tier L every concern's at once spilled
# 7.1 GiB, 1.8 times the input (issue 11), and a national deployment only adds concerns.
FIGURE_EPISODE_BATCH_ROWS = 2_000_000


def record_figure_episodes(con, run_id: str, concerns: Sequence[str] | None = None,
                           sql_context: dict | None = None) -> dict[str, int]:
    """Append the episodes of every unit and period whose episodes (or their scores) changed.

    Units and periods belong to one concern, and a concern's episodes change only when it is
    pending: on an incremental night (``concerns``) only the pending concerns' are compared; on a
    full night every concern with closed episodes or recorded ones (a concern gone from the
    deliveries gets its cells marked removed). A batch of concerns at a time
    (``FIGURE_EPISODE_BATCH_ROWS``), each in a transaction of its own, like the figures
    (:func:`record_published_figures`).
    ``sql_context``: what the model is rendered with (the run's parameters; default: the defaults).
    """
    counts = {"cells_changed": 0, "cells_removed": 0, "episode_rows_appended": 0}
    if not _exists(con, "marts.episode_outcomes"):
        return counts
    rows_per_episode = 9  # three levels, three periods
    sizes = {c: rows_per_episode * n for c, n in con.execute(
        "SELECT concern_id, count(*) FROM marts.episode_outcomes WHERE is_closed GROUP BY ALL").fetchall()}
    if concerns is None:
        for (concern,) in con.execute("SELECT DISTINCT concern_id FROM audit.figure_episodes").fetchall():
            sizes.setdefault(concern, 0)
    else:
        sizes = {c: sizes.get(c, 0) for c in concerns}
    _record_by_batch(con, batched(sizes, FIGURE_EPISODE_BATCH_ROWS),
                     lambda batch: _record_episodes_of(con, run_id, batch, sql_context), counts)
    counts["cells_changed"] = con.execute(
        "SELECT count(DISTINCT unit_period_key) FROM audit.figure_episodes WHERE run_id = ?", [run_id]).fetchone()[0]
    return counts


def _record_episodes_of(con, run_id: str, batch: list[str | None], sql_context: dict | None) -> dict[str, int]:
    """record_figure_episodes for the concerns of ``batch``."""
    in_concerns = in_batch("concern_id", batch)
    model = FIGURE_EPISODES_MODEL.render_for(sql_context, in_concerns)
    con.execute(f"CREATE OR REPLACE TEMP TABLE cell_rows AS SELECT * FROM (\n{model}\n) AS cells WHERE {in_concerns}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE cell_hashes AS
        SELECT unit_period_key, {_set_digest('cell_rows')} AS cell_sha256
        FROM cell_rows GROUP BY unit_period_key""")
    # The rows with their cell's digest are joined where they are inserted, not copied into a table
    # of their own: DuckDB keeps a dropped temporary table until the transaction commits, so a copy
    # doubled what this step holds (issue 11: 8.6 GiB of spill at tier L).
    current_cells = "(SELECT c.*, h.cell_sha256 FROM cell_rows AS c JOIN cell_hashes AS h USING (unit_period_key))"
    run_literal = literal(run_id)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE last_cells AS
        SELECT DISTINCT unit_period_key, concern_id, level, unit_id, period_type, period, cell_sha256 FROM (
            {_latest('figure_episodes', 'unit_period_key',
                     'v.unit_period_key, v.concern_id, v.level, v.unit_id, v.period_type, v.period, v.cell_sha256',
                     in_batch('v.concern_id', batch))}
        )""".replace("$run_id", run_literal))
    appended = con.execute(f"""
        INSERT INTO audit.figure_episodes BY NAME
        SELECT ? AS run_id, c.* FROM {current_cells} AS c
        WHERE NOT EXISTS (SELECT 1 FROM last_cells AS l
                          WHERE l.unit_period_key = c.unit_period_key AND l.cell_sha256 = c.cell_sha256)""",
                           [run_id]).fetchone()[0]
    # A unit and period without closed episodes any more (e.g. a newer delivery moved them) gets one
    # row without an episode: its latest version must not keep the episodes of a figure that is gone.
    removed = con.execute(f"""
        INSERT INTO audit.figure_episodes BY NAME
        SELECT ? AS run_id, unit_period_key, concern_id, level, unit_id, period_type, period,
               {REMOVED_CELL_SHA256} AS cell_sha256
        FROM last_cells AS l
        WHERE l.cell_sha256 <> {REMOVED_CELL_SHA256}
          AND NOT EXISTS (SELECT 1 FROM cell_hashes AS c WHERE c.unit_period_key = l.unit_period_key)""",
                         [run_id]).fetchone()[0]
    con.execute("DROP TABLE cell_rows")
    con.execute("DROP TABLE cell_hashes")
    con.execute("DROP TABLE last_cells")
    return {"cells_removed": removed, "episode_rows_appended": appended}


def record_quarantine_log(con, run_id: str) -> dict[str, int]:
    """Append the quarantined rows of every current delivery whose quarantine changed."""
    if not _exists(con, "audit.quarantine"):
        return {"deliveries_logged": 0, "quarantine_rows_appended": 0}
    run_literal = literal(run_id)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE quarantine_rows AS
        SELECT d.delivery_id, coalesce(q.concern_id, d.concern_id) AS concern_id, q.file_name,
               q.source_row_number, q.stage, q.reason, q.column_name, q.detail, q.raw_row
        FROM audit.deliveries AS d
        LEFT JOIN audit.quarantine AS q ON q.delivery_id = d.delivery_id
        WHERE d.status = 'current'""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE quarantine_hashes AS
        SELECT delivery_id, {_set_digest('quarantine_rows')} AS delivery_sha256
        FROM quarantine_rows GROUP BY delivery_id""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE current_quarantine AS
        SELECT q.*, h.delivery_sha256 FROM quarantine_rows AS q
        JOIN quarantine_hashes AS h ON h.delivery_id = q.delivery_id""")
    con.execute("DROP TABLE quarantine_hashes")
    con.execute("DROP TABLE quarantine_rows")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE last_quarantine AS
        SELECT DISTINCT delivery_id, delivery_sha256 FROM (
            {_latest('quarantine_log', 'delivery_id', 'v.delivery_id, v.delivery_sha256')}
        )""".replace("$run_id", run_literal))
    # A delivery without quarantined rows is logged as one row with reason NULL, so that
    # "nothing was quarantined" is a version too.
    appended = con.execute("""
        INSERT INTO audit.quarantine_log BY NAME
        SELECT ? AS run_id, c.* FROM current_quarantine AS c
        WHERE NOT EXISTS (SELECT 1 FROM last_quarantine AS l
                          WHERE l.delivery_id = c.delivery_id AND l.delivery_sha256 = c.delivery_sha256)""",
                           [run_id]).fetchone()[0]
    deliveries = con.execute("SELECT count(DISTINCT delivery_id) FROM audit.quarantine_log WHERE run_id = ?",
                             [run_id]).fetchone()[0]
    con.execute("DROP TABLE current_quarantine")
    con.execute("DROP TABLE last_quarantine")
    return {"deliveries_logged": deliveries, "quarantine_rows_appended": appended}


def record_trail(con, run_id: str, sql_context: dict | None = None) -> dict[str, int]:
    """Everything a publish leaves behind for the auditor.

    In transactions of their own: the run's inputs, each batch of figures, each batch of their
    episodes, the rest. Rows of this run are read by nobody until it publishes
    (``audit.runs.status``); a run that dies halfway leaves rows that the next attempt or run
    deletes (:func:`collect_garbage`).
    """
    ensure_tables(con)
    _run_seq(con, run_id)
    scope = read_scope(con)
    con.begin()
    try:
        counts = {"garbage_rows_deleted": collect_garbage(con, run_id),
                  "run_input_files": record_run_inputs(con, run_id)}
        con.commit()
    except BaseException:
        con.rollback()
        raise
    counts.update(record_published_figures(con, run_id))
    counts.update(record_figure_episodes(con, run_id, None if scope.full else scope.concerns, sql_context))
    con.begin()
    try:
        counts.update(record_quarantine_log(con, run_id))
        con.execute("UPDATE audit.runs SET figures_new = ?, figures_changed = ?, figures_removed = ? WHERE run_id = ?",
                    [counts["figures_new"], counts["figures_changed"], counts["figures_removed"], run_id])
        counts["episode_provenance_compared"] = "all concerns" if scope.full else (", ".join(scope.concerns) or "none")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return counts


@contextmanager
def publishing(con, run_id: str, refresh: str | None = None, concerns: list[str] | None = None,
               sql_context: dict | None = None) -> Iterator[Callable[..., None]]:
    """Around the warehouse swap: the run is 'published' in the copy and, after the swap, here.

    The block gets ``mark_published(connection, database)``: publishing calls it on the
    copy (``database="pub"``) before closing it, so the published ``audit.runs`` says
    'published'. The work database says so only once the block has swapped the file in:
    a run killed before the swap stays 'running' here, the next run marks it
    'incomplete' (its trail rows are collected) and recomputes what it had pending.
    'failed' if the block raises. On success the pending concerns are cleared: the next
    night compares with this publish.
    """
    ensure_tables(con)
    _run_seq(con, run_id)
    if con.execute("SELECT figures_new IS NULL FROM audit.runs WHERE run_id = ?", [run_id]).fetchone()[0]:
        record_trail(con, run_id, sql_context)  # a partial run that skipped the audit-trail step: nothing published untraced
    from rom_pipeline.lib.fingerprint import publish_settings

    finished_at = con.execute("SELECT now()").fetchone()[0]
    values = [finished_at, refresh, json.dumps(concerns) if concerns is not None else None,
              json.dumps(publish_settings(), sort_keys=True), run_id]

    def mark_published(connection, database: str | None = None) -> None:
        table = f"{database}.audit.runs" if database else "audit.runs"
        connection.execute(f"UPDATE {table} SET status = 'published', finished_at = ?, refresh = ?, "
                           "concerns_recomputed = ?, publish_settings = ? WHERE run_id = ?", values)

    try:
        yield mark_published
    except BaseException:
        try:
            con.execute("UPDATE audit.runs SET status = 'failed', finished_at = now() WHERE run_id = ?", [run_id])
        except Exception:  # noqa: BLE001 - e.g. the disk is full: the first error is the one to report
            pass
        raise
    mark_published(con)
    clear_pending(con)


def settle_interrupted_publish(con, published_run_id: str | None) -> bool:
    """A run killed between the swap and its own record: the published warehouse says it published.

    Called before :func:`start_run` marks unfinished runs 'incomplete'. True if a run was settled.
    """
    if not published_run_id or not _exists(con, "audit.runs"):
        return False
    return con.execute("UPDATE audit.runs SET status = 'published', finished_at = coalesce(finished_at, now()) "
                       "WHERE run_id = ? AND status = 'running'", [published_run_id]).fetchone()[0] > 0
