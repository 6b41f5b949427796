"""Small hand-written deliveries for tests: rows as dicts in, a contract-true delivery folder out."""
from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

from schemas.contract import FILES

LOCATIONS = [{"location_id": "L1", "location_name": "Utrecht", "region": "midden"},
             {"location_id": "L2", "location_name": "Nijmegen", "region": "oost"}]
THERAPISTS = [{"therapist_id": "T1", "location_id": "L1", "profession": "psychologist", "is_trainee": "0"},
              {"therapist_id": "T2", "location_id": "L2", "profession": "psychotherapist", "is_trainee": "1"}]


def episode(episode_id: str, client_id: str, *, location_id="L1", therapist_id="T1", start="2025-01-10",
            end: str | None = "2025-04-10", end_reason: str | None = "completed", **overrides) -> dict:
    row = {"episode_id": episode_id, "client_id": client_id, "location_id": location_id,
           "therapist_id": therapist_id, "care_type": "basic", "diagnosis_group": "depression",
           "referrer": "gp", "start_date": start, "end_date": end or "", "end_reason": end_reason or "",
           "sessions_attended": "12", "age_at_start": "40", "sex": "female"}
    row.update(overrides)
    return row


def measurement(measurement_id: str, episode_id: str, on: str, total: float | str | None, *,
                instrument="SCL90", occasion="", session="") -> dict:
    return {"measurement_id": measurement_id, "episode_id": episode_id, "instrument": instrument,
            "administered_on": on, "session_number": session, "occasion": occasion,
            "total_score": "" if total is None else str(total)}


def items(measurement_id: str, responses: list[int | None]) -> list[dict]:
    return [{"measurement_id": measurement_id, "item": str(i), "response": "" if r is None else str(r)}
            for i, r in enumerate(responses, start=1)]


def csv_bytes(rows: list[dict], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", quotechar='"', lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return out.getvalue().encode("utf-8")


def write_delivery(root: Path, concern_id: str, export_date: str, files: dict[str, list[dict] | bytes], *,
                   exported_at: str | None = None, manifest_overrides: dict | None = None,
                   file_overrides: dict[str, dict] | None = None, subdir: str | None = None) -> Path:
    """Write a delivery; ``files`` maps a contract file ("episodes") to rows, or to raw bytes as delivered."""
    folder = root / concern_id / (subdir or export_date)
    folder.mkdir(parents=True, exist_ok=True)
    entries = {}
    for logical, content in files.items():
        data = content if isinstance(content, bytes) else csv_bytes(content, list(FILES[logical].columns))
        name = f"{logical}.csv"
        (folder / name).write_bytes(data)
        rows = len(content) if not isinstance(content, bytes) else max(data.count(b"\n") - 1, 0)
        entries[name] = {"rows": rows, "sha256": hashlib.sha256(data).hexdigest()}
        entries[name].update((file_overrides or {}).get(logical, {}))
    manifest = {"contract_version": "1.0", "export_id": f"{concern_id}-{export_date}", "concern_id": concern_id,
                "concern_name": f"Concern {concern_id}", "source_system": "tests",
                "exported_at": exported_at or f"{export_date}T23:05:00+01:00", "files": entries}
    manifest.update(manifest_overrides or {})
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def scl90_items(total: int, blanks: int = 0) -> list[int | None]:
    """90 responses in 1..5 that sum to ``total`` (before blanks), then ``blanks`` of them left blank."""
    assert 90 <= total <= 450
    extra, responses = total - 90, []
    for _ in range(90):
        step = min(4, extra)
        responses.append(1 + step)
        extra -= step
    return responses[: 90 - blanks] + [None] * blanks


def basic_delivery(root: Path, concern_id: str = "C001", export_date: str = "2025-06-30", **kw) -> Path:
    episodes = [episode("E1", "client-a"), episode("E2", "client-b", location_id="L2", therapist_id="T2")]
    measurements = [measurement("M1", "E1", "2025-01-10", 200), measurement("M2", "E1", "2025-04-10", 150),
                    measurement("M3", "E2", "2025-01-12", None), measurement("M4", "E2", "2025-04-08", 140)]
    return write_delivery(root, concern_id, export_date, {
        "locations": LOCATIONS, "therapists": THERAPISTS, "episodes": episodes,
        "measurements": measurements, "item_responses": items("M3", scl90_items(180))}, **kw)
