"""Reading and checking a delivery's manifest.json (export contract 1.0). Pure: no database.

A manifest that breaks the contract raises :class:`DeliveryRejected` with a
reason an operator can act on. File checksums and row counts are checked while
the files are read (``rom_pipeline.defs.ingest``), because counting rows means
parsing them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

# schemas.contract (pandera schemas) is imported where a manifest is checked, not at import: finding and
# hashing manifests (the schedule, the sensor, a quiet night's fingerprint) must not pay for pandera.

FORMATS = {".csv": "csv", ".parquet": "parquet"}


class DeliveryRejected(Exception):
    """The delivery as a whole breaks the contract; ``reason`` says how."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DeliveredFile:
    name: str           # as the manifest lists it, e.g. "measurements.csv"
    logical: str        # contract file, e.g. "measurements"
    format: str         # "csv" or "parquet"
    path: Path
    rows: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    delivery_id: str
    directory: Path
    manifest_sha256: str
    contract_version: str
    export_id: str
    concern_id: str
    concern_name: str | None
    source_system: str | None
    exported_at: datetime
    files: tuple[DeliveredFile, ...]

    @property
    def export_date(self) -> date:
        """The calendar date of the export where it was made (its own UTC offset)."""
        return self.exported_at.date()


def sha256_of_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _require_text(doc: dict, field: str) -> str:
    value = doc.get(field)
    if not isinstance(value, str) or not value.strip():
        raise DeliveryRejected(f"manifest field '{field}' is missing or empty")
    return value


def _parse_exported_at(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise DeliveryRejected(f"manifest exported_at {value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise DeliveryRejected(f"manifest exported_at {value!r} has no UTC offset")
    return parsed


def _safe_file_path(directory: Path, name: str) -> Path:
    """The file's path, if ``name`` is a plain file name that stays inside the delivery."""
    if not name or "/" in name or "\\" in name or name in {".", ".."} or Path(name).is_absolute():
        raise DeliveryRejected(f"manifest file name {name!r} is not a plain file name inside the delivery")
    path = directory / name
    if path.is_symlink() or (path.exists() and path.resolve().parent != directory.resolve()):
        raise DeliveryRejected(f"manifest file {name!r} points outside the delivery")
    return path


def _parse_file_entry(directory: Path, name: str, entry: object) -> DeliveredFile:
    from schemas.contract import FILES

    path = _safe_file_path(directory, name)
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    if stem not in FILES or suffix not in FORMATS:
        allowed = ", ".join(f"{f}.csv|.parquet" for f in FILES)
        raise DeliveryRejected(f"manifest lists unknown file {name!r} (the contract has {allowed})")
    if not isinstance(entry, dict):
        raise DeliveryRejected(f"manifest entry for {name!r} is not an object with rows and sha256")
    rows, sha = entry.get("rows"), entry.get("sha256")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise DeliveryRejected(f"manifest rows for {name!r} is not a non-negative integer")
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha):
        raise DeliveryRejected(f"manifest sha256 for {name!r} is not 64 hex digits")
    if not path.is_file():
        raise DeliveryRejected(f"file {name!r} listed in the manifest is missing")
    return DeliveredFile(name=name, logical=stem, format=FORMATS[suffix], path=path, rows=rows, sha256=sha.lower())


def read_manifest(manifest_path: Path, export_root: Path) -> Manifest:
    """Parse and check one manifest; raises DeliveryRejected for anything the contract forbids."""
    from schemas.contract import CONTRACT_VERSION, FILES

    directory = manifest_path.parent
    delivery_id = directory.relative_to(export_root).as_posix()
    raw = manifest_path.read_bytes()
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeliveryRejected(f"manifest.json is not valid UTF-8 JSON ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise DeliveryRejected("manifest.json is not a JSON object")
    version = doc.get("contract_version")
    if version != CONTRACT_VERSION:
        raise DeliveryRejected(f"unknown contract_version {version!r} (this pipeline reads {CONTRACT_VERSION!r})")
    files_doc = doc.get("files")
    if not isinstance(files_doc, dict) or not files_doc:
        raise DeliveryRejected("manifest has no 'files' object")
    files = tuple(_parse_file_entry(directory, name, entry) for name, entry in sorted(files_doc.items()))
    logical = [f.logical for f in files]
    duplicated = sorted({name for name in logical if logical.count(name) > 1})
    if duplicated:
        raise DeliveryRejected(f"manifest lists {', '.join(duplicated)} more than once (csv and parquet)")
    missing = [name for name, schema in FILES.items() if schema.metadata.get("required") and name not in logical]
    if missing:
        raise DeliveryRejected(f"manifest lacks required file(s): {', '.join(missing)}")
    return Manifest(
        delivery_id=delivery_id,
        directory=directory,
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        contract_version=version,
        export_id=_require_text(doc, "export_id"),
        concern_id=_require_text(doc, "concern_id"),
        concern_name=doc.get("concern_name"),
        source_system=doc.get("source_system"),
        exported_at=_parse_exported_at(_require_text(doc, "exported_at")),
        files=files,
    )


def export_root_problem(export_root: Path) -> str | None:
    """Why no run may read this export root (a sentence naming it), or None. Reads nothing but names.

    A root that is missing, not a folder, or without any ``manifest.json`` below it (a wrong path,
    a share that is not mounted) must not let a run republish the work database's old data as if
    it were tonight's (issue 10, item 7).
    """
    if not export_root.is_dir():
        what = "is a file, not a folder" if export_root.exists() else "does not exist"
        return f"the export root {export_root} (ROM_EXPORT_DIR) {what}: no delivery can be read"
    for path in export_root.rglob("manifest.json"):
        if "reference" not in path.relative_to(export_root).parts[:1]:
            return None
    return (f"the export root {export_root} (ROM_EXPORT_DIR) holds no delivery: no manifest.json anywhere "
            "below it. A wrong path or a share that is not mounted? Nothing was read or changed; point "
            "ROM_EXPORT_DIR at the folder with the deliveries (or mount it) and run again")


def discover_manifests(export_root: Path) -> list[Path]:
    """Every ``manifest.json`` under the export root, in a stable order (the reference/ folder excluded)."""
    if not export_root.is_dir():
        raise FileNotFoundError(f"export root {export_root} does not exist or is not a directory")
    found = [p for p in export_root.rglob("manifest.json") if "reference" not in p.relative_to(export_root).parts[:1]]
    return sorted(found)
