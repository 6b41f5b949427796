"""What a run's results depend on, as fingerprints: the inputs on disk, the parameters, the code.

Pure functions of files (no database, no Dagster), so the schedule and the sensor
can call them from the daemon without touching the work database, and every run
records the same values in ``audit.runs``:

- ``manifests``: (path relative to the export root, sha256) of every ``manifest.json``;
  a manifest carries the sha256 of each data file, so it stands for the delivery.
- ``reference``: (path, sha256) of every ``reference/*.csv`` (annual reports, quality indicators).
- ``parameters_sha256``: the rule parameters in effect (``rom_pipeline.config``).
- ``source_sha256``: every file that decides what the pipeline computes (``sql/`` models and sidecars,
  ``schemas/``, the package's Python and YAML); a code change means a full rebuild.
- ``code_version``: ``<package version>+g<git commit>`` or ``<package version>+unknown``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

from rom_pipeline.lib.manifest import discover_manifests, sha256_of_file
from rom_pipeline.paths import PACKAGE_DIR, PROJECT_DIR, SCHEMAS_DIR, SQL_DIR

PACKAGE_NAME = "rom_pipeline"
REFERENCE_FOLDER = "reference"
# Source files that cannot change a result (the synthetic-data generator, the bundled sample, the
# benchmark, which only measures runs: editing it while it runs must not make its nights full rebuilds).
_NOT_SOURCE = ("generate", "sample_data", "bench")


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256_or_unreadable(path: Path) -> str:
    """A file's sha256, or a marker when it cannot be read: ingest rejects that delivery with the reason."""
    try:
        return sha256_of_file(path)
    except OSError as exc:
        return f"unreadable:{exc.__class__.__name__}"


def manifest_entries(export_root: Path) -> list[tuple[str, str]]:
    """(relative path, sha256) of every manifest under the export root, sorted."""
    return [(p.relative_to(export_root).as_posix(), _sha256_or_unreadable(p)) for p in discover_manifests(export_root)]


def reference_entries(export_root: Path) -> list[tuple[str, str]]:
    folder = export_root / REFERENCE_FOLDER
    if not folder.is_dir():
        return []
    return [(p.relative_to(export_root).as_posix(), _sha256_or_unreadable(p)) for p in sorted(folder.glob("*.csv"))]


def manifests_fingerprint(export_root: Path) -> str:
    """What the delivery sensor watches: changes when a manifest is added, removed or changed."""
    return _sha256_text(json.dumps(manifest_entries(export_root)))


def sql_files() -> list[Path]:
    """Every file under sql/: the models and checks, their sidecars and the macros they import
    (``sql/macros/*.sql`` and ``*.jinja``: a rule changed there changes what is computed)."""
    return sorted(p for p in SQL_DIR.rglob("*") if p.is_file() and p.suffix in (".sql", ".yml", ".jinja"))


@functools.cache
def sql_file_hashes() -> dict[str, str]:
    """sha256 of every SQL model, check and macro file, by path relative to the project."""
    return {p.relative_to(PROJECT_DIR).as_posix(): sha256_of_file(p) for p in sql_files() if p.suffix != ".yml"}


@functools.cache
def source_sha256() -> str:
    """One hash over every file that decides what the pipeline computes.

    Computed once per process (a Dagster code server reloads on a code change), so a
    colleague editing a file halfway through a test session cannot change it.
    """
    files = [*sql_files(), *sorted(SCHEMAS_DIR.rglob("*.py")), *sorted(SCHEMAS_DIR.rglob("*.yaml"))]
    for pattern in ("*.py", "*.yaml"):
        files += sorted(p for p in PACKAGE_DIR.rglob(pattern)
                        if not set(p.relative_to(PACKAGE_DIR).parts[:1]) & set(_NOT_SOURCE))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(PROJECT_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def git_commit() -> str | None:
    """The checkout's commit, or None outside a git checkout (e.g. an installed wheel)."""
    if os.environ.get("ROM_GIT_COMMIT"):  # set by a deployment that ships without .git
        return os.environ["ROM_GIT_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


def package_version() -> str:
    try:
        return metadata.version(PACKAGE_NAME)
    except metadata.PackageNotFoundError:
        return "unknown"


def code_version() -> str:
    commit = git_commit()
    return f"{package_version()}+g{commit[:12]}" if commit else f"{package_version()}+unknown"


def publish_settings() -> dict:
    """The deployment settings that change what is published from the same work tables.

    ``ROM_PUBLISH_THERAPIST_LEVEL`` (therapist rows in the warehouse or not) and the warehouse's
    encryption key (an HMAC of a fixed label under the key, never the key: a new key must
    write the file again).
    """
    import hmac

    from rom_pipeline.config import publish_therapist_level
    from rom_pipeline.lib.warehouse_reader import encryption_key

    key = encryption_key()
    return {"therapist_level": publish_therapist_level(),
            "encryption": hmac.new(key.encode(), b"rom-warehouse-encryption", hashlib.sha256).hexdigest()[:16]
            if key else None}


def inputs_fingerprint(export_root: Path, parameters_sha256: str) -> str:
    """What the nightly schedule and a quiet night compare with the last publish: equal means nothing to do."""
    return _sha256_text(json.dumps({
        "manifests": manifest_entries(export_root),
        "reference": reference_entries(export_root),
        "parameters_sha256": parameters_sha256,
        "source_sha256": source_sha256(),
        "publish": publish_settings(),
    }, sort_keys=True))
