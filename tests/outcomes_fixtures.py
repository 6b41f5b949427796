"""Hand-built staging tables for the outcome and indicator tests.

The staging tables are created with exactly the columns the staging layer
publishes, in a DuckDB file, with the run parameters applied; the tests then
run the real SQL models on them. Ids are unique only within a concern, so the
helpers always take the concern.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from rom_pipeline.config import apply_parameters, load_parameters
from rom_pipeline.defs.staging.validate import build_empty_staging
from rom_pipeline.lib.sqlfiles import SqlModel

# The staging tables the outcome models read, filled by hand; they are created empty by the
# staging layer's own code (build_empty_staging), so their columns are the real ones.
STAGING_TABLES = ("locations", "therapists", "episodes", "measurement_scores")

# In build order.
OUTCOME_MODELS = [
    SqlModel("outcomes", "instrument_outcomes"),
    SqlModel("marts", "episode_outcomes"),
    SqlModel("outcomes", "indicator_contributions"),
    SqlModel("marts", "indicator_cells"),
    SqlModel("marts", "indicator_aggregates"),
    SqlModel("marts", "indicators"),
    SqlModel("marts", "indicator_breakdowns"),
]


def day(value: str | dt.date) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def connect(path: Path | str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the default parameters applied and empty staging tables."""
    con = duckdb.connect(str(path))
    apply_parameters(con, load_parameters())
    build_empty_staging(con)
    return con


def build_outcomes(con, upto: str = "indicator_breakdowns") -> None:
    """Run the outcome models in order, up to and including the named one."""
    for model in OUTCOME_MODELS:
        model.build(con)
        if model.name == upto:
            return


class Staging:
    """Adds rows to the staging tables; every concern gets delivery ``<concern>-D1``."""

    def __init__(self, con):
        self.con = con
        self._row = 0

    def _next_row(self) -> int:
        self._row += 1
        return self._row

    def location(self, concern: str, location_id: str, name: str | None = None) -> None:
        self.con.execute("INSERT INTO staging.locations (concern_id, delivery_id, source_row_number, location_id, "
                         "location_name, region) VALUES (?, ?, ?, ?, ?, ?)",
                         [concern, f"{concern}-D1", self._next_row(), location_id,
                          name or f"Location {location_id}", None])

    def therapist(self, concern: str, therapist_id: str, location_id: str, *, is_trainee: bool = False) -> None:
        self.con.execute("INSERT INTO staging.therapists (concern_id, delivery_id, source_row_number, therapist_id, "
                         "location_id, profession, is_trainee) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [concern, f"{concern}-D1", self._next_row(), therapist_id, location_id,
                          "psychologist", is_trainee])

    def episode(self, concern: str, episode_id: str, *, location_id: str = "L1", therapist_id: str = "T1",
                start: str = "2025-01-06", end: str | None = "2025-07-01", end_reason: str | None = None,
                sessions: int | None = 18, care_type: str = "basic", diagnosis_group: str = "depression",
                referrer: str = "gp", age: int | None = 40, sex: str | None = "female") -> None:
        if end is not None and end_reason is None:
            end_reason = "completed"
        self.con.execute(
            "INSERT INTO staging.episodes (concern_id, delivery_id, source_row_number, episode_id, client_pseudonym, "
            "location_id, therapist_id, care_type, diagnosis_group, referrer, start_date, end_date, end_reason, "
            "sessions_attended, age_at_start, sex) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [concern, f"{concern}-D1", self._next_row(), episode_id, f"pseudo-{concern}-{episode_id}",
             location_id, therapist_id, care_type, diagnosis_group, referrer, day(start),
             day(end) if end else None, end_reason, sessions, age, sex])

    def measurement(self, concern: str, measurement_id: str, episode_id: str, on: str | dt.date,
                    score: float | None, *, instrument: str = "SCL90", session: int | None = None) -> None:
        self.con.execute(
            "INSERT INTO staging.measurement_scores (concern_id, delivery_id, source_row_number, measurement_id, "
            "episode_id, instrument, administered_on, session_number, occasion, total_score, score_source, "
            "items_answered) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [concern, f"{concern}-D1", self._next_row(), measurement_id, episode_id, instrument, day(on),
             session, None, score, "delivered", None])

    def scored_episode(self, concern: str, episode_id: str, pre: float | None, post: float | None, *,
                       start: str = "2025-01-06", end: str | None = "2025-07-01", **episode) -> None:
        """An episode with an SCL90 on its start date (pre) and on its end date (post)."""
        self.episode(concern, episode_id, start=start, end=end, **episode)
        if pre is not None:
            self.measurement(concern, f"{episode_id}-pre", episode_id, start, pre, session=1)
        if post is not None:
            self.measurement(concern, f"{episode_id}-post", episode_id, end, post, session=18)


def rows(con, sql: str, params: list | None = None) -> list[dict]:
    """Query results as dicts (column name -> value)."""
    result = con.execute(sql, params or [])
    names = [d[0] for d in result.description]
    return [dict(zip(names, row)) for row in result.fetchall()]


def one(con, sql: str, params: list | None = None) -> dict:
    found = rows(con, sql, params)
    assert len(found) == 1, f"expected one row, got {len(found)}: {found}"
    return found[0]
