"""Export contract 1.0 as pandera schemas: the single source of every row rule.

Each schema describes one delivered file *after typing* (the staging table).
pandera's own vocabulary carries the column rules (dtype, nullable, unique,
isin, in_range); column ``metadata`` carries what pandera has no word for:

- ``references``: (file, column) the value must exist in (same delivery);
- ``lookups``: extra joins the row rules need (SQL, aliases as named; ``{delivery_id}``
  stands for the delivery being validated, so a join reads that delivery's rows only);
- schema ``metadata["row_rules"]``: (reason, column, SQL predicate that is TRUE
  when the row breaks the rule), over the typed row ``t`` (its columns and
  ``export_date``) and the lookups' aliases.

``rom_pipeline.lib.validation_sql`` turns these schemas into one DuckDB query
per file (so validation runs inside DuckDB at any scale), and the blocking
asset checks run the same schemas with pandera's ibis backend on the staging
tables. Nothing here is written twice.
"""
from __future__ import annotations

import ibis.expr.datatypes as dt
from pandera.ibis import Check, Column, DataFrameSchema

CONTRACT_VERSION = "1.0"

PROFESSIONS = ["psychologist", "psychotherapist", "psychiatrist", "nurse_specialist", "other"]
CARE_TYPES = ["basic", "specialised"]
DIAGNOSIS_GROUPS = ["depression", "dysthymia", "anxiety", "somatoform", "substance_use",
                    "impulse_control", "stress_burnout", "other"]
REFERRERS = ["gp", "occupational_physician", "medical_specialist", "self", "other"]
END_REASONS = ["completed", "dropout", "referred", "other"]
SEXES = ["female", "male", "other", "unknown"]
OCCASIONS = ["intake", "progress", "discharge", "followup"]
INSTRUMENTS = ["SCL90", "HDRS", "UBOS", "WAV", "CQI", "SF36", "WORK"]

TEXT, DATE, INT, DECIMAL, BOOL = dt.String(), dt.Date(), dt.Int32(), dt.Float64(), dt.Boolean()


def _text(*, required: bool = True, allowed: list[str] | None = None, **meta) -> Column:
    checks = [Check.isin(allowed)] if allowed else []
    return Column(TEXT, checks=checks, nullable=not required, metadata=meta or None)


def _key(**meta) -> Column:
    return Column(TEXT, nullable=False, unique=True, metadata={"key": True, **meta})


LOCATIONS = DataFrameSchema(
    name="locations",
    columns={
        "location_id": _key(),
        "location_name": _text(),
        "region": _text(required=False),
    },
    metadata={"required": True},
)

THERAPISTS = DataFrameSchema(
    name="therapists",
    columns={
        "therapist_id": _key(),
        "location_id": _text(references=("locations", "location_id")),
        "profession": _text(allowed=PROFESSIONS),
        "is_trainee": Column(BOOL, nullable=False),
    },
    metadata={"required": True},
)

EPISODES = DataFrameSchema(
    name="episodes",
    columns={
        "episode_id": _key(),
        # Replaced by its keyed hash (client_pseudonym) before anything is stored.
        "client_id": _text(pseudonymise=True),
        "location_id": _text(references=("locations", "location_id")),
        "therapist_id": _text(references=("therapists", "therapist_id")),
        "care_type": _text(allowed=CARE_TYPES),
        "diagnosis_group": _text(allowed=DIAGNOSIS_GROUPS),
        "referrer": _text(allowed=REFERRERS),
        "start_date": Column(DATE, nullable=False),
        "end_date": Column(DATE, nullable=True),
        "end_reason": _text(required=False, allowed=END_REASONS),
        "sessions_attended": Column(INT, Check.in_range(0, 500), nullable=True),
        "age_at_start": Column(INT, Check.in_range(4, 120), nullable=False),
        "sex": _text(allowed=SEXES),
    },
    metadata={
        "required": True,
        "row_rules": [
            ("end_before_start", "end_date", "t.end_date < t.start_date"),
            ("end_after_export", "end_date", "t.end_date > t.export_date"),
            ("end_reason_without_end_date", "end_reason", "t.end_date IS NULL AND t.end_reason IS NOT NULL"),
            ("end_date_without_end_reason", "end_reason", "t.end_date IS NOT NULL AND t.end_reason IS NULL"),
        ],
    },
)

MEASUREMENTS = DataFrameSchema(
    name="measurements",
    columns={
        "measurement_id": _key(),
        "episode_id": _text(references=("episodes", "episode_id")),
        "instrument": _text(allowed=INSTRUMENTS),
        "administered_on": Column(DATE, nullable=False),
        "session_number": Column(INT, Check.ge(0), nullable=True),
        "occasion": _text(required=False, allowed=OCCASIONS),
        # Required unless item responses are delivered: decided when scoring.
        "total_score": Column(DECIMAL, nullable=True),
    },
    metadata={
        "required": True,
        "lookups": ["LEFT JOIN config.instruments AS inst ON inst.code = t.instrument"],
        "row_rules": [
            ("administered_after_export", "administered_on", "t.administered_on > t.export_date"),
            ("out_of_range", "total_score", "t.total_score < inst.total_min OR t.total_score > inst.total_max"),
        ],
    },
)

ITEM_RESPONSES = DataFrameSchema(
    name="item_responses",
    columns={
        "measurement_id": _text(references=("measurements", "measurement_id")),
        "item": Column(INT, Check.ge(1), nullable=False),
        "response": Column(INT, nullable=True),
    },
    unique=["measurement_id", "item"],
    metadata={
        "required": False,
        "lookups": [
            "LEFT JOIN staging.measurements AS parent ON parent.delivery_id = {delivery_id}"
            " AND parent.delivery_id = t.delivery_id AND parent.measurement_id = t.measurement_id",
            "LEFT JOIN config.instruments AS inst ON inst.code = parent.instrument",
        ],
        "row_rules": [
            ("item_not_in_instrument", "item", "inst.code IS NOT NULL AND (inst.items IS NULL OR t.item > inst.items)"),
            ("out_of_range", "response", "t.response < inst.item_min OR t.response > inst.item_max"),
        ],
    },
)

# In dependency order: a file's references point only to files before it.
FILES: dict[str, DataFrameSchema] = {
    s.name: s for s in (LOCATIONS, THERAPISTS, EPISODES, MEASUREMENTS, ITEM_RESPONSES)
}
