"""Incremental nights: which concerns must be recomputed (``audit.pending_concerns``).

The pipeline's "equivalent of partitioning by concern" on one machine (see
docs/operations.md): ingest records the concerns whose current delivery differs
from the one the last successful publish used; per-concern assets rebuild only
those concerns' rows (``DELETE ... WHERE concern_id IN (...)`` + ``INSERT``, in
one transaction, from the same SQL model); cross-concern assets are rebuilt
whole from the per-concern results. Publish clears the table.

Everything is pending (a full rebuild, exactly what a first run does) when there
is no successful publish yet, when the parameters or the code changed since it,
or when asked (run tag ``rom/full_rebuild=true`` or ``ROM_FULL_REBUILD=1``).
The state compared against is what the last publish recorded
(``audit.run_inputs`` and ``audit.runs``), not what the last run did: a run that
failed halfway leaves its concerns pending, and the next run recomputes them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

FULL_REBUILD_TAG = "rom/full_rebuild"
FULL_REBUILD_ENV = "ROM_FULL_REBUILD"
REFERENCE_DELIVERY_ID = "reference"

PENDING_DDL = """
CREATE TABLE IF NOT EXISTS audit.pending_concerns (
    concern_id VARCHAR NOT NULL, reason VARCHAR NOT NULL, full_rebuild BOOLEAN NOT NULL,
    detected_by_run VARCHAR, detected_at TIMESTAMPTZ)"""


@dataclass(frozen=True)
class ConcernScope:
    """What a per-concern asset rebuilds: everything (``full``) or the rows of ``concerns``."""

    full: bool
    concerns: tuple[str, ...] = ()
    reason: str = ""
    detail: dict = field(default_factory=dict)

    def describe(self) -> str:
        if self.full:
            return f"full rebuild ({self.reason})"
        return f"incremental: {len(self.concerns)} concern(s) {', '.join(self.concerns) or '-'}"


def _table_exists(con, schema: str, table: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                       "AND schema_name = ? AND table_name = ?", [schema, table]).fetchone()[0] > 0


def force_full_rebuild(tags: dict | None = None) -> bool:
    value = (tags or {}).get(FULL_REBUILD_TAG) or os.environ.get(FULL_REBUILD_ENV, "")
    return str(value).lower() in ("1", "true", "yes")


def _last_published_run(con) -> tuple | None:
    if not _table_exists(con, "audit", "runs"):
        return None
    return con.execute("""
        SELECT run_id, parameters_sha256, source_sha256 FROM audit.runs
        WHERE status = 'published' ORDER BY run_seq DESC LIMIT 1""").fetchone()


def record_pending_concerns(con, run_id: str | None, parameters_sha256: str, source_sha256: str,
                            force: bool | str = False) -> ConcernScope:
    """Recompute ``audit.pending_concerns`` after ingest has settled which delivery is current.

    ``force``: a full rebuild, with its reason when a string (e.g. a rotated pseudonym key).
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS audit")
    con.execute(PENDING_DDL)
    current = dict(con.execute(
        "SELECT concern_id, delivery_id || ' ' || coalesce(manifest_sha256, '') FROM audit.deliveries "
        "WHERE status = 'current' AND delivery_id <> ?", [REFERENCE_DELIVERY_ID]).fetchall())
    last = _last_published_run(con)
    full_reason = None
    if force:
        full_reason = force if isinstance(force, str) else "full rebuild requested"
    elif last is None:
        full_reason = "no earlier successful publish"
    elif last[1] != parameters_sha256:
        full_reason = "parameters changed since the last publish"
    elif last[2] != source_sha256:
        full_reason = "code changed since the last publish"
    published: dict[str, str] = {}
    if last is not None and _table_exists(con, "audit", "run_inputs"):
        published = dict(con.execute(
            "SELECT DISTINCT concern_id, delivery_id || ' ' || coalesce(manifest_sha256, '') FROM audit.run_inputs "
            "WHERE run_id = ? AND kind = 'delivery'", [last[0]]).fetchall())
    rows = []
    for concern in sorted(set(current) | set(published)):
        if full_reason:
            rows.append((concern, full_reason, True))
        elif concern not in published:
            rows.append((concern, "new concern", False))
        elif concern not in current:
            rows.append((concern, "no current delivery any more", False))
        elif current[concern] != published[concern]:
            rows.append((concern, f"new current delivery {current[concern].split(' ')[0]}", False))
    con.begin()
    con.execute("DELETE FROM audit.pending_concerns")
    if rows:
        con.executemany("INSERT INTO audit.pending_concerns VALUES (?, ?, ?, ?, now())",
                        [(c, r, f, run_id) for c, r, f in rows])
    con.commit()
    return read_scope(con)


def read_scope(con) -> ConcernScope:
    """The scope a per-concern asset rebuilds, from ``audit.pending_concerns``.

    Full when ingest asked for it, when every concern with data is pending (a
    delete-and-insert of everything is a slower full rebuild), or when ingest has
    never recorded a scope in this work database.
    """
    if not _table_exists(con, "audit", "pending_concerns"):
        return ConcernScope(full=True, reason="no pending-concerns record (ingest has not run)")
    rows = con.execute("SELECT concern_id, reason, full_rebuild FROM audit.pending_concerns "
                       "ORDER BY concern_id").fetchall()
    if any(full for _, _, full in rows):
        return ConcernScope(full=True, concerns=tuple(c for c, _, _ in rows), reason=rows[0][1])
    concerns = tuple(c for c, _, _ in rows)
    with_data = set(delivered_concerns(con))
    if concerns and with_data <= set(concerns):
        return ConcernScope(full=True, concerns=concerns, reason="every concern has a new delivery")
    return ConcernScope(full=False, concerns=concerns, reason="incremental",
                        detail={c: r for c, r, _ in rows})


def delivered_concerns(con) -> list[str]:
    """The concerns with a current delivery (the reference files aside), sorted."""
    if not _table_exists(con, "audit", "deliveries"):
        return []
    return [r[0] for r in con.execute(
        "SELECT DISTINCT concern_id FROM audit.deliveries WHERE status = 'current' AND delivery_id <> ? "
        "AND concern_id IS NOT NULL ORDER BY 1", [REFERENCE_DELIVERY_ID]).fetchall()]


def clear_pending(con) -> None:
    if _table_exists(con, "audit", "pending_concerns"):
        con.execute("DELETE FROM audit.pending_concerns")
