"""Byte-exact delivery writer for the bad-input corpus.

A :class:`Draft` starts as a small, contract-true delivery (2 locations, 2
therapists, 2 episodes, 4 measurements, the 90 SCL90 items of one of them); a
case changes the rows, replaces a file by bytes as some broken exporter would
write them, or breaks the manifest, and then :meth:`Draft.write` puts it on disk.
Stdlib only (plus pyarrow for Parquet), so the generator runs anywhere the
pipeline does.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from schemas.contract import FILES

COLUMNS = {name: list(schema.columns) for name, schema in FILES.items()}

EXPORT_DATE = "2025-06-30"
EXPORTED_AT = "2025-06-30T23:05:00+02:00"
BASELINE_EXPORTED_AT = "2025-06-29T23:05:00+02:00"

# Raw client ids all start with this prefix, so a privacy scan can look for the prefix alone.
CLIENT_PREFIX = "CLIENT-"


def scl90_responses(total: int, blanks: int = 0) -> list[int | None]:
    """90 responses in 1..5 summing to ``total``; then the last ``blanks`` answered ones left blank."""
    assert 90 <= total <= 450
    extra, out = total - 90, []
    for _ in range(90):
        step = min(4, extra)
        out.append(1 + step)
        extra -= step
    return out[: 90 - blanks] + [None] * blanks


def item_rows(measurement_id: str, responses: list[int | None], first_item: int = 1) -> list[dict]:
    return [{"measurement_id": measurement_id, "item": str(i), "response": "" if r is None else str(r)}
            for i, r in enumerate(responses, start=first_item)]


def base_rows(concern_id: str) -> dict[str, list[dict]]:
    """The clean delivery every case starts from (hand-checkable: 2/2/2/4/90 rows)."""
    client = f"{CLIENT_PREFIX}{concern_id}-"
    return {
        "locations": [
            {"location_id": "L1", "location_name": "Utrecht", "region": "midden"},
            {"location_id": "L2", "location_name": "Nijmegen", "region": ""},
        ],
        "therapists": [
            {"therapist_id": "T1", "location_id": "L1", "profession": "psychologist", "is_trainee": "0"},
            {"therapist_id": "T2", "location_id": "L2", "profession": "nurse_specialist", "is_trainee": "1"},
        ],
        "episodes": [
            episode("E1", client + "1", start="2025-01-10", end="2025-04-10", end_reason="completed"),
            episode("E2", client + "2", location_id="L2", therapist_id="T2", start="2025-02-01"),
        ],
        "measurements": [
            measurement("M1", "E1", "2025-01-10", "200", occasion="intake"),
            measurement("M2", "E1", "2025-04-10", "150", occasion="discharge"),
            measurement("M3", "E2", "2025-02-01", ""),
            measurement("M4", "E2", "2025-03-01", "20", instrument="HDRS"),
        ],
        "item_responses": item_rows("M3", scl90_responses(180)),
    }


BASE_LOADED = {"locations.csv": 2, "therapists.csv": 2, "episodes.csv": 2, "measurements.csv": 4,
               "item_responses.csv": 90}


def episode(episode_id: str, client_id: str, *, location_id="L1", therapist_id="T1", start="2025-01-10",
            end="", end_reason="", **overrides) -> dict:
    row = {"episode_id": episode_id, "client_id": client_id, "location_id": location_id,
           "therapist_id": therapist_id, "care_type": "basic", "diagnosis_group": "anxiety",
           "referrer": "gp", "start_date": start, "end_date": end, "end_reason": end_reason,
           "sessions_attended": "8", "age_at_start": "35", "sex": "male"}
    row.update(overrides)
    return row


def measurement(measurement_id: str, episode_id: str, on: str, total: str, *, instrument="SCL90",
                occasion="", session="") -> dict:
    return {"measurement_id": measurement_id, "episode_id": episode_id, "instrument": instrument,
            "administered_on": on, "session_number": session, "occasion": occasion, "total_score": total}


def csv_text(rows: list[dict], columns: list[str], *, delimiter: str = ";", newline: str = "\n") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quotechar='"', lineterminator=newline)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return out.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Draft:
    """One delivery before it is written; every field may be changed by a case."""

    concern_id: str
    exported_at: str = EXPORTED_AT
    rows: dict[str, list[dict]] = field(default_factory=dict)
    # logical file -> exact bytes (replaces the rows) and the data-row count the manifest states
    raw: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    # logical file -> name listed in the manifest (default "<logical>.csv")
    names: dict[str, str] = field(default_factory=dict)
    # CSV dialect used for files written from rows
    delimiter: str = ";"
    newline: str = "\n"
    bom: bool = False
    manifest_overrides: dict = field(default_factory=dict)
    entry_overrides: dict[str, dict] = field(default_factory=dict)   # manifest file name -> rows/sha256
    manifest_bytes: bytes | None = None                                # replaces manifest.json entirely
    after_write: list[Callable[[Path], None]] = field(default_factory=list)

    @classmethod
    def clean(cls, concern_id: str, exported_at: str = EXPORTED_AT) -> "Draft":
        return cls(concern_id=concern_id, exported_at=exported_at, rows=copy.deepcopy(base_rows(concern_id)))

    def client(self, n: int) -> str:
        return f"{CLIENT_PREFIX}{self.concern_id}-{n}"

    def file_name(self, logical: str) -> str:
        return self.names.get(logical, f"{logical}.csv")

    def encode(self, logical: str) -> tuple[bytes, int]:
        if logical in self.raw:
            return self.raw[logical]
        rows = self.rows[logical]
        text = csv_text(rows, COLUMNS[logical], delimiter=self.delimiter, newline=self.newline)
        data = text.encode("utf-8")
        return (b"\xef\xbb\xbf" + data if self.bom else data), len(rows)

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        entries = {}
        for logical in [*self.rows, *[k for k in self.raw if k not in self.rows]]:
            name = self.file_name(logical)
            if name.endswith(".parquet"):
                data, count = self.raw[logical]
            else:
                data, count = self.encode(logical)
            (folder / name).write_bytes(data)
            entries[name] = {"rows": count, "sha256": sha256(data)}
        for name, override in self.entry_overrides.items():
            entries.setdefault(name, {}).update(override)
        manifest = {"contract_version": "1.0", "export_id": f"{self.concern_id}-{self.exported_at[:10]}",
                    "concern_id": self.concern_id, "concern_name": f"Concern {self.concern_id}",
                    "source_system": "bad-input corpus", "exported_at": self.exported_at, "files": entries}
        manifest.update(self.manifest_overrides)
        data = self.manifest_bytes if self.manifest_bytes is not None else json.dumps(manifest, indent=2).encode()
        (folder / "manifest.json").write_bytes(data)
        for hook in self.after_write:
            hook(folder)
        return folder
