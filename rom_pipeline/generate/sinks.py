"""Writing one delivery file: CSV rows in, UTF-8 bytes out, hashed while they are written.

Hashing on the way out means the manifest's sha256 costs no second read of
files that can be gigabytes; rows are counted as they are added, so the
manifest's row counts are right by construction.
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

# Contract 1.0 dialect: ';' delimiter, '"' quote (doubled inside quoted fields),
# quotes only where needed (a field holding ';', '"' or a line break), '\n' line ends.
CSV_DIALECT = dict(delimiter=";", quotechar='"', doublequote=True,
                   quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
FLUSH_PARTS = 4096  # buffered row texts before they go to disk: bounds memory


class CsvSink:
    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.rows = 0
        self._file = open(path, "wb")
        self._hash = hashlib.sha256()
        self._parts: list[str] = []
        self.write = self._parts.append  # the csv writer's target: rows are buffered as text
        self._csv = csv.writer(self, **CSV_DIALECT)
        self._csv.writerow(header)

    def add_row(self, row: list[str]) -> None:
        self._csv.writerow(row)
        self.rows += 1

    def add_rows(self, rows: list[list[str]]) -> None:
        self._csv.writerows(rows)
        self.rows += len(rows)

    def add_text(self, text: str, n_rows: int) -> None:
        """Rows already formatted as CSV text (the fast path for item responses)."""
        self._parts.append(text)
        self.rows += n_rows

    def flush_if_full(self) -> None:
        if len(self._parts) >= FLUSH_PARTS:
            self._flush()

    def close(self) -> dict:
        """Finish the file; returns its manifest entry ``{"rows", "sha256"}``."""
        self._flush()
        self._file.close()
        return {"rows": self.rows, "sha256": self._hash.hexdigest()}

    def _flush(self) -> None:
        data = "".join(self._parts).encode("utf-8")
        self._parts.clear()
        self._hash.update(data)
        self._file.write(data)
