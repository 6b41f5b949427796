"""Reading a delivered file as text, row by row, without losing any row.

Every record becomes either a *row* (all fields as text, NULL for an empty
field, numbered from 1 after the header: ``source_row_number``) or a *rejected
row* (wrong number of fields, bytes that are not UTF-8) with its reason and its
text. Together they are the rows read, which the manifest's count must match.

CSV takes a fast path (pyarrow's multi-threaded reader, in order) and falls
back to Python's csv module for a file that has a malformed record, because
only a record-by-record reader can number rows exactly around such a record
(pyarrow reports line numbers, which differ from row numbers when a quoted
field holds a line break).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

BATCH_ROWS = 200_000
CSV_OPTIONS = {"delimiter": ";", "quotechar": '"'}
# Largest field the exact reader accepts (Python's csv default is 128 kB, less than a long free-text
# field may be). Bounded, so a quote that is never closed cannot pull a whole large file into memory.
FIELD_SIZE_LIMIT = 64 << 20


class BadHeader(Exception):
    """The file's header is not the contract's columns: the delivery cannot be read."""


class UnreadableFile(Exception):
    """The file cannot be split into records at all (e.g. a field beyond FIELD_SIZE_LIMIT)."""


@dataclass
class RejectedRow:
    source_row_number: int
    reason: str          # malformed_row | invalid_encoding
    detail: str
    raw_text: str | None


@dataclass
class ReadStats:
    rows_read: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    path_taken: str = ""


Transform = Callable[[pa.RecordBatch], pa.RecordBatch]


def check_header(found: list[str], expected: list[str]) -> None:
    if not any(c in found for c in expected):
        # Not a header at all (a data row, or another delimiter): never echo it, it may hold a client id.
        raise BadHeader(f"the header row has none of the contract's columns ({', '.join(expected)}; "
                        f"found {len(found)} field(s)): the first row must be the header and the "
                        "delimiter ';'")
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    duplicated = sorted({c for c in found if found.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected column(s) {', '.join(repr(c) for c in extra)}")
    if duplicated:
        problems.append(f"duplicated column(s) {', '.join(duplicated)}")
    if problems:
        raise BadHeader("; ".join(problems))


def read_csv_header(path: Path) -> list[str]:
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if not head.strip():
        raise BadHeader("file is empty: no header row")
    text = head.decode("utf-8-sig", errors="replace")
    try:
        first = next(csv.reader(io.StringIO(text, newline=""), **CSV_OPTIONS), None)
    except csv.Error as exc:
        raise BadHeader(f"the header row cannot be read ({exc})") from None
    if not first:
        raise BadHeader("file has no header row")
    return first


# The bytes of CSV text pyarrow parses into one batch: the unit ingest inserts (and holds) at a time.
CSV_BLOCK_BYTES = 8 << 20


def _numbered(batch: pa.RecordBatch, first_row: int, columns: list[str]) -> pa.RecordBatch:
    # first_row, first_row + 1, ... built by Arrow (a Python range is a Python int per row)
    numbers = pc.add(pc.indices_nonzero(pa.repeat(True, batch.num_rows)).cast(pa.int64()), first_row)
    arrays = [numbers] + [batch.column(batch.schema.get_field_index(c)) for c in columns]
    return pa.RecordBatch.from_arrays(arrays, names=["source_row_number", *columns])


def _csv_fast(path: Path, header: list[str], columns: list[str], stats: ReadStats) -> Iterator[pa.RecordBatch]:
    # No invalid-row handler: pyarrow raises ArrowInvalid at a malformed record and the caller falls
    # back to the exact reader. (A handler is handed the record decoded as UTF-8, so a malformed
    # record with bytes that are not UTF-8 made pyarrow's own decoding raise inside the callback.)
    reader = pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(column_names=header, skip_rows=1, block_size=CSV_BLOCK_BYTES),
        parse_options=pa_csv.ParseOptions(delimiter=";", quote_char='"', double_quote=True,
                                          newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types={c: pa.string() for c in header}, null_values=[""],
            strings_can_be_null=True, quoted_strings_can_be_null=True, check_utf8=True),
    )
    next_row = 1
    for batch in reader:
        yield _numbered(batch, next_row, columns)
        next_row += batch.num_rows
    stats.rows_read = next_row - 1
    stats.path_taken = "pyarrow"


# A byte that is not UTF-8, as the exact reader's ``surrogateescape`` decoding keeps it.
_SURROGATE = re.compile("[\udc80-\udcff]")


def _has_surrogates(value: str) -> bool:
    return _SURROGATE.search(value) is not None


def _as_text(record: list[str]) -> tuple[str, bool]:
    """A record as storable text (every byte that is not UTF-8 as U+FFFD), and whether it held one.

    The exact reader decodes with ``surrogateescape``, so no byte is lost while splitting; a
    lone surrogate cannot be stored as UTF-8, so a rejected row's text never keeps one.
    """
    joined = ";".join(record)
    if not _has_surrogates(joined):
        return joined, False
    return joined.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), True


def _csv_exact(path: Path, header: list[str], columns: list[str], stats: ReadStats) -> Iterator[pa.RecordBatch]:
    positions = [header.index(c) for c in columns]
    buffers: list[list[str | None]] = [[] for _ in columns]
    numbers: list[int] = []
    row_number = 0
    csv.field_size_limit(FIELD_SIZE_LIMIT)
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        records = csv.reader(handle, **CSV_OPTIONS, strict=False)
        next(records, None)  # header, checked before
        for record in _records(records, lambda: row_number + 1):
            if not record:
                continue  # a blank line is not a row (pyarrow skips them too)
            row_number += 1
            if len(record) != len(header):
                text, bad_bytes = _as_text(record)
                stats.rejected.append(RejectedRow(
                    row_number, "malformed_row", f"expected {len(header)} fields, found {len(record)}"
                    + ("; also bytes that are not UTF-8 (shown as U+FFFD)" if bad_bytes else ""), text))
                continue
            if _has_surrogates("".join(record)):
                stats.rejected.append(RejectedRow(row_number, "invalid_encoding",
                                                  "bytes that are not UTF-8", _as_text(record)[0]))
                continue
            numbers.append(row_number)
            for buffer, pos in zip(buffers, positions):
                buffer.append(record[pos] or None)
            if len(numbers) >= BATCH_ROWS:
                yield _to_batch(numbers, buffers, columns)
                numbers, buffers = [], [[] for _ in columns]
    if numbers:
        yield _to_batch(numbers, buffers, columns)
    stats.rows_read = row_number
    stats.path_taken = "python-csv"


def _records(reader, next_row: Callable[[], int]) -> Iterator[list[str]]:
    """The reader's records; a record the csv module cannot split makes the whole file unreadable."""
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UnreadableFile(f"row {next_row()} cannot be read ({exc})") from None
        yield record


def _to_batch(numbers: list[int], buffers: list[list[str | None]], columns: list[str]) -> pa.RecordBatch:
    arrays = [pa.array(numbers, type=pa.int64())] + [pa.array(b, type=pa.string()) for b in buffers]
    return pa.RecordBatch.from_arrays(arrays, names=["source_row_number", *columns])


def _parquet_as_text(path: Path, columns: list[str], stats: ReadStats) -> Iterator[pa.RecordBatch]:
    parquet = pq.ParquetFile(path)
    check_header(parquet.schema_arrow.names, columns)
    next_row = 1
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        arrays = []
        for name in columns:
            column = batch.column(batch.schema.get_field_index(name))
            if pa.types.is_boolean(column.type):
                column = column.cast(pa.int8())  # the contract's 0/1
            text = column.cast(pa.string())
            # as in CSV, an empty field is NULL
            arrays.append(pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text))
        yield _numbered(pa.RecordBatch.from_arrays(arrays, names=columns), next_row, columns)
        next_row += batch.num_rows
    stats.rows_read = next_row - 1
    stats.path_taken = "parquet"


def read_delivered_file(path: Path, fmt: str, columns: list[str], stats: ReadStats,
                        restart: Callable[[], None]) -> Iterator[pa.RecordBatch]:
    """Yield text batches (``source_row_number`` + ``columns``) of one delivered file.

    ``restart`` is called before the exact CSV path replays a file from the
    start, so the caller can drop what the fast path already stored.
    Raises BadHeader when the header is not the contract's, UnreadableFile when
    the file cannot be split into records.
    """
    if fmt == "parquet":
        yield from _parquet_as_text(path, columns, stats)
        return
    header = read_csv_header(path)
    check_header(header, columns)
    try:
        yield from _csv_fast(path, header, columns, stats)
    except pa.ArrowInvalid:
        restart()
        stats.rejected.clear()
        yield from _csv_exact(path, header, columns, stats)
