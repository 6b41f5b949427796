"""Where the project's own files are (SQL, schemas, bundled sample)."""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
SQL_DIR = PROJECT_DIR / "sql"
SCHEMAS_DIR = PROJECT_DIR / "schemas"
SAMPLE_EXPORT_DIR = PACKAGE_DIR / "sample_data" / "exports"
DEFAULT_DATA_DIR = PROJECT_DIR / "data"
