"""manifest.json parsing (rom_pipeline.lib.manifest): every way a manifest can be rejected, and what it yields."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from rom_pipeline.lib.manifest import DeliveryRejected, discover_manifests, read_manifest, sha256_of_file

REQUIRED = ["locations", "therapists", "episodes", "measurements"]
SHA = "a" * 64


def make(root: Path, doc: dict | None = None, *, files: list[str] | None = None, raw: bytes | None = None,
         folder: str = "C001/2025-06-30", **changes) -> Path:
    """A delivery folder with empty data files and a manifest (``changes`` replace top-level fields)."""
    directory = root / folder
    directory.mkdir(parents=True, exist_ok=True)
    names = files if files is not None else [f"{f}.csv" for f in REQUIRED]
    for name in names:
        (directory / name).write_bytes(b"")
    if doc is None:
        doc = {"contract_version": "1.0", "export_id": "C001-2025-06-30", "concern_id": "C001",
               "concern_name": "Voorbeeld GGZ", "source_system": "EPD", "exported_at": "2025-06-30T23:05:00+02:00",
               "files": {name: {"rows": 3, "sha256": SHA} for name in names}}
    doc.update(changes)
    path = directory / "manifest.json"
    path.write_bytes(raw if raw is not None else json.dumps(doc).encode())
    return path


def rejected(path: Path, root: Path) -> str:
    with pytest.raises(DeliveryRejected) as info:
        read_manifest(path, root)
    return info.value.reason


def test_a_valid_manifest(tmp_path):
    path = make(tmp_path, files=[f"{f}.csv" for f in REQUIRED] + ["item_responses.parquet"])
    m = read_manifest(path, tmp_path)
    assert (m.delivery_id, m.concern_id, m.export_id, m.concern_name, m.source_system, m.contract_version) == (
        "C001/2025-06-30", "C001", "C001-2025-06-30", "Voorbeeld GGZ", "EPD", "1.0")
    assert m.exported_at == dt.datetime(2025, 6, 30, 21, 5, tzinfo=dt.timezone.utc)
    assert m.manifest_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [(f.name, f.logical, f.format, f.rows, f.sha256, f.path) for f in m.files] == [
        (name, name.split(".")[0], name.split(".")[1], 3, SHA, path.parent / name)
        for name in sorted([f"{f}.csv" for f in REQUIRED] + ["item_responses.parquet"])]


def test_export_date_is_the_date_where_the_export_was_made(tmp_path):
    # 23:30 at UTC-2 is already 1 July in UTC; the export date is 30 June
    m = read_manifest(make(tmp_path, exported_at="2025-06-30T23:30:00-02:00"), tmp_path)
    assert m.export_date == dt.date(2025, 6, 30)
    assert m.exported_at.astimezone(dt.timezone.utc).date() == dt.date(2025, 7, 1)


def test_optional_fields_and_tolerated_forms(tmp_path):
    doc = {"contract_version": "1.0", "export_id": "X", "concern_id": "C9", "exported_at": "2025-06-30T21:05:00Z",
           "files": {"locations.csv": {"rows": 0, "sha256": "ABCDEF" + "0" * 58}, "therapists.csv": {"rows": 1, "sha256": SHA},
                     "episodes.PARQUET": {"rows": 1, "sha256": SHA}, "measurements.csv": {"rows": 1, "sha256": SHA}}}
    path = make(tmp_path, doc, files=["locations.csv", "therapists.csv", "episodes.PARQUET", "measurements.csv"],
                raw=b"\xef\xbb\xbf" + json.dumps(doc).encode())     # a byte order mark before the JSON
    m = read_manifest(path, tmp_path)
    assert (m.concern_name, m.source_system) == (None, None)
    assert m.exported_at.utcoffset() == dt.timedelta(0)
    by_name = {f.name: f for f in m.files}
    assert by_name["locations.csv"].sha256 == "abcdef" + "0" * 58       # hex compared in lower case
    assert by_name["locations.csv"].rows == 0
    assert by_name["episodes.PARQUET"].format == "parquet"


@pytest.mark.parametrize("raw, reason", [
    (b"\xff\xfe{}", "manifest.json is not valid UTF-8 JSON (UnicodeDecodeError)"),
    (b'{"contract_version": "1.0",', "manifest.json is not valid UTF-8 JSON (JSONDecodeError)"),
    (b"", "manifest.json is not valid UTF-8 JSON (JSONDecodeError)"),
    (b'["contract_version", "1.0"]', "manifest.json is not a JSON object"),
])
def test_unreadable_manifest(tmp_path, raw, reason):
    assert rejected(make(tmp_path, raw=raw), tmp_path) == reason


@pytest.mark.parametrize("version", ["2.0", "1", 1.0, None])
def test_unknown_contract_version(tmp_path, version):
    assert rejected(make(tmp_path, contract_version=version), tmp_path) == (
        f"unknown contract_version {version!r} (this pipeline reads '1.0')")


@pytest.mark.parametrize("files_value", [None, {}, [], "locations.csv"])
def test_no_files_object(tmp_path, files_value):
    path = make(tmp_path)
    doc = json.loads(path.read_text())
    doc["files"] = files_value
    path.write_text(json.dumps(doc))
    assert rejected(path, tmp_path) == "manifest has no 'files' object"


@pytest.mark.parametrize("name", ["../locations.csv", "sub/locations.csv", "sub\\locations.csv", "/etc/locations.csv",
                                  "..", ".", ""])
def test_file_names_that_leave_the_delivery(tmp_path, name):
    path = make(tmp_path)
    doc = json.loads(path.read_text())
    doc["files"][name] = doc["files"].pop("locations.csv")
    path.write_text(json.dumps(doc))
    assert rejected(path, tmp_path) == f"manifest file name {name!r} is not a plain file name inside the delivery"


def test_symlink_out_of_the_delivery(tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("location_id;location_name;region\n")
    path = make(tmp_path)
    (path.parent / "locations.csv").unlink()
    (path.parent / "locations.csv").symlink_to(outside)
    assert rejected(path, tmp_path) == "manifest file 'locations.csv' points outside the delivery"


@pytest.mark.parametrize("name", ["notes.csv", "episodes.txt", "Episodes.csv", "episodes"])
def test_unknown_file(tmp_path, name):
    path = make(tmp_path, files=[f"{f}.csv" for f in REQUIRED] + [name])
    assert rejected(path, tmp_path).startswith(f"manifest lists unknown file {name!r} (the contract has locations.csv")


@pytest.mark.parametrize("entry, reason", [
    ([3, SHA], "manifest entry for 'locations.csv' is not an object with rows and sha256"),
    ({"sha256": SHA}, "manifest rows for 'locations.csv' is not a non-negative integer"),
    ({"rows": -1, "sha256": SHA}, "manifest rows for 'locations.csv' is not a non-negative integer"),
    ({"rows": 2.0, "sha256": SHA}, "manifest rows for 'locations.csv' is not a non-negative integer"),
    ({"rows": "2", "sha256": SHA}, "manifest rows for 'locations.csv' is not a non-negative integer"),
    ({"rows": True, "sha256": SHA}, "manifest rows for 'locations.csv' is not a non-negative integer"),
    ({"rows": 2}, "manifest sha256 for 'locations.csv' is not 64 hex digits"),
    ({"rows": 2, "sha256": SHA[:-1]}, "manifest sha256 for 'locations.csv' is not 64 hex digits"),
    ({"rows": 2, "sha256": "g" * 64}, "manifest sha256 for 'locations.csv' is not 64 hex digits"),
    ({"rows": 2, "sha256": 12}, "manifest sha256 for 'locations.csv' is not 64 hex digits"),
])
def test_bad_file_entry(tmp_path, entry, reason):
    path = make(tmp_path)
    doc = json.loads(path.read_text())
    doc["files"]["locations.csv"] = entry
    path.write_text(json.dumps(doc))
    assert rejected(path, tmp_path) == reason


def test_listed_file_missing(tmp_path):
    path = make(tmp_path)
    (path.parent / "episodes.csv").unlink()
    assert rejected(path, tmp_path) == "file 'episodes.csv' listed in the manifest is missing"


def test_a_directory_is_not_a_file(tmp_path):
    path = make(tmp_path)
    (path.parent / "episodes.csv").unlink()
    (path.parent / "episodes.csv").mkdir()
    assert rejected(path, tmp_path) == "file 'episodes.csv' listed in the manifest is missing"


def test_same_file_as_csv_and_parquet(tmp_path):
    path = make(tmp_path, files=[f"{f}.csv" for f in REQUIRED] + ["episodes.parquet"])
    assert rejected(path, tmp_path) == "manifest lists episodes more than once (csv and parquet)"


@pytest.mark.parametrize("left_out, reason", [
    (["therapists"], "manifest lacks required file(s): therapists"),
    (["locations", "measurements"], "manifest lacks required file(s): locations, measurements"),
])
def test_required_file_not_listed(tmp_path, left_out, reason):
    path = make(tmp_path, files=[f"{f}.csv" for f in REQUIRED if f not in left_out] + ["item_responses.csv"])
    assert rejected(path, tmp_path) == reason


@pytest.mark.parametrize("field", ["export_id", "concern_id", "exported_at"])
@pytest.mark.parametrize("value", [None, "", "   ", 17])
def test_required_text_fields(tmp_path, field, value):
    assert rejected(make(tmp_path, **{field: value}), tmp_path) == f"manifest field '{field}' is missing or empty"


@pytest.mark.parametrize("value, reason", [
    ("30-06-2025 23:05", "manifest exported_at '30-06-2025 23:05' is not an ISO 8601 timestamp"),
    ("2025-06-30T23:05:00", "manifest exported_at '2025-06-30T23:05:00' has no UTC offset"),
    ("2025-06-30", "manifest exported_at '2025-06-30' has no UTC offset"),
])
def test_exported_at(tmp_path, value, reason):
    assert rejected(make(tmp_path, exported_at=value), tmp_path) == reason


def test_discover_manifests(tmp_path):
    for folder in ["C002/2025-06-30", "C001/nightly/2025-06-30", "C001/2025-06-29", "reference/old"]:
        make(tmp_path, folder=folder)
    (tmp_path / "C003").mkdir()                      # a folder without manifest is no delivery
    found = [p.parent.relative_to(tmp_path).as_posix() for p in discover_manifests(tmp_path)]
    assert found == ["C001/2025-06-29", "C001/nightly/2025-06-30", "C002/2025-06-30"]
    with pytest.raises(FileNotFoundError):
        discover_manifests(tmp_path / "nope")


def test_sha256_of_file_streams_in_chunks(tmp_path):
    data = bytes(range(256)) * 5000
    (tmp_path / "f").write_bytes(data)
    assert sha256_of_file(tmp_path / "f", chunk_size=1000) == hashlib.sha256(data).hexdigest()
