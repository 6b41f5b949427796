"""What the shared warehouse publishes: ``schemas/warehouse.yaml``, read here for every stage.

Publishing copies each table (its ``where`` leaves rows out), the data dictionary describes it, and
the audit trail records the figures some output shows (:mod:`rom_pipeline.lib.audience`). Here, in
lib/, so that the audit stage can read it without importing the publish stage that runs after it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from rom_pipeline.paths import SCHEMAS_DIR

WAREHOUSE_SPEC = SCHEMAS_DIR / "warehouse.yaml"
AUDIENCES = ("analysts", "public")


@dataclass(frozen=True)
class PublishedColumn:
    name: str
    description: str
    publish_as: str | None = None


@dataclass(frozen=True)
class PublishedTable:
    name: str                 # schema.table
    description: str
    columns: tuple[PublishedColumn, ...]
    where: str | None = None
    order_by: str | None = None
    audience: str = "analysts"  # or "public": also exported for spreadsheets and publication


def load_spec(path: Path = WAREHOUSE_SPEC) -> list[PublishedTable]:
    doc = yaml.safe_load(path.read_text())
    tables = []
    for name, spec in doc["tables"].items():
        columns = []
        for col, entry in spec["columns"].items():
            if isinstance(entry, str):
                columns.append(PublishedColumn(col, entry))
            else:
                columns.append(PublishedColumn(col, entry["description"], entry.get("publish_as")))
        audience = spec.get("audience", "analysts")
        if audience not in AUDIENCES:
            raise ValueError(f"{path}: {name}: audience {audience!r} is not one of {', '.join(AUDIENCES)}")
        tables.append(PublishedTable(name, spec["description"].strip(), tuple(columns),
                                     spec.get("where"), spec.get("order_by"), audience))
    return tables
