"""Where the project's own files are (SQL, schemas, bundled sample)."""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
SQL_DIR = PROJECT_DIR / "sql"
SCHEMAS_DIR = PROJECT_DIR / "schemas"
SAMPLE_EXPORT_DIR = PACKAGE_DIR / "sample_data" / "exports"
DEFAULT_DATA_DIR = PROJECT_DIR / "data"
DAGSTER_HOME_NAME = "dagster_home"
CSV_DIR_NAME = "csv"  # $ROM_DATA_DIR/csv: the CSV exports (rom_pipeline.defs.publish.exports)


def data_dir_from_env() -> Path:
    """$ROM_DATA_DIR (absolute), or the checkout's ./data."""
    import os

    return Path(os.environ.get("ROM_DATA_DIR") or DEFAULT_DATA_DIR).resolve()


def dagster_home() -> Path:
    """The Dagster instance of CLI runs and of `./dev dagster dev`: $DAGSTER_HOME if set, else
    $ROM_DATA_DIR/dagster_home, so a run from either shows in the other (docs/operations.md)."""
    import os

    return Path(os.environ.get("DAGSTER_HOME") or data_dir_from_env() / DAGSTER_HOME_NAME).resolve()


if __name__ == "__main__":  # `./dev dagster ...` asks for the default home this way
    print(dagster_home())
