"""Reading delivered files as text (rom_pipeline.lib.delivered_files): fast and exact paths, headers, Parquet."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rom_pipeline.lib import delivered_files as df
from rom_pipeline.lib.delivered_files import BadHeader, ReadStats, UnreadableFile, read_delivered_file

LOC = ["location_id", "location_name", "region"]
HEADER = "location_id;location_name;region"


def write(tmp_path: Path, data: bytes | str, name: str = "locations.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def read(path: Path, columns=LOC, fmt: str = "csv") -> tuple[list[dict], ReadStats, int]:
    """(rows, stats, how often the reader restarted) of read_delivered_file."""
    stats, restarts = ReadStats(), []
    rows = [r for batch in read_delivered_file(path, fmt, columns, stats, lambda: restarts.append(1))
            for r in batch.to_pylist()]
    return rows, stats, len(restarts)


def both_paths(path: Path, columns=LOC) -> tuple[tuple[list[dict], ReadStats], tuple[list[dict], ReadStats]]:
    header = df.read_csv_header(path)
    out = []
    for reader in (df._csv_fast, df._csv_exact):
        stats = ReadStats()
        rows = [r for batch in reader(path, header, columns, stats) for r in batch.to_pylist()]
        out.append((rows, stats))
    return out[0], out[1]


def row(n: int, location_id: str, name: str | None, region: str | None) -> dict:
    return {"source_row_number": n, "location_id": location_id, "location_name": name, "region": region}


TRICKY = (HEADER + "\n"
          'L1;"Utrecht; Centrum";"midden\nnoord"\n'        # delimiter and a line break inside quotes
          'L2;"De ""Oase""";""\n'                          # escaped quotes; a quoted empty field is NULL too
          "L3;;\n"                                         # empty fields are NULL
          'L4;"twee\r\nregels";oost\n'                     # a CRLF inside quotes is kept
          "L5; spaties ;x\n")                              # spaces are data


TRICKY_ROWS = [row(1, "L1", "Utrecht; Centrum", "midden\nnoord"), row(2, "L2", 'De "Oase"', None),
               row(3, "L3", None, None), row(4, "L4", "twee\r\nregels", "oost"), row(5, "L5", " spaties ", "x")]


@pytest.mark.parametrize("variant", ["plain", "bom", "crlf", "bom+crlf", "no final newline", "blank lines"])
def test_fast_and_exact_paths_read_a_clean_file_the_same(tmp_path, variant):
    text = TRICKY
    if "crlf" in variant:
        text = text.replace("\n", "\r\n").replace("\r\r\n", "\r\n").replace('midden\r\nnoord', 'midden\nnoord')
    if variant == "no final newline":
        text = text.rstrip("\n")
    if variant == "blank lines":
        text = text.replace("L3;;\n", "\n\nL3;;\n\n") + "\n\n"
    data = ("\ufeff" if "bom" in variant else "") + text
    path = write(tmp_path, data.encode())
    (fast_rows, fast), (exact_rows, exact) = both_paths(path)
    assert fast_rows == exact_rows
    assert (fast.rows_read, fast.rejected, exact.rows_read, exact.rejected) == (5, [], 5, [])
    assert (fast.path_taken, exact.path_taken) == ("pyarrow", "python-csv")
    assert [r["location_id"] for r in fast_rows] == ["L1", "L2", "L3", "L4", "L5"]
    assert [r["source_row_number"] for r in fast_rows] == [1, 2, 3, 4, 5]
    if variant == "plain":
        assert fast_rows == TRICKY_ROWS
    # and read_delivered_file takes the fast path, without a restart
    rows, stats, restarts = read(path)
    assert (rows, stats.path_taken, restarts) == (fast_rows, "pyarrow", 0)


def test_fast_and_exact_paths_agree_over_many_batches(tmp_path):
    """More than one pyarrow block (8 MiB) and several exact-path batches, with multi-line rows throughout."""
    lines = [HEADER]
    for i in range(1, 400_001):
        lines.append(f'L{i};"naam\n{i}";r' if i % 997 == 0 else f"L{i};naam {i};regio")
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert path.stat().st_size > 8 << 20
    (fast_rows, fast), (exact_rows, exact) = both_paths(path)
    assert fast.rows_read == exact.rows_read == 400_000
    assert fast_rows == exact_rows
    assert fast_rows[996] == row(997, "L997", "naam\n997", "r")
    assert fast_rows[-1] == row(400_000, "L400000", "naam 400000", "regio")
    assert all(r["source_row_number"] == int(r["location_id"][1:]) for r in fast_rows)


def test_columns_in_any_order_come_out_in_contract_order(tmp_path):
    path = write(tmp_path, "region;location_id;location_name\nmidden;L1;Utrecht\n")
    rows, stats, _ = read(path)
    assert rows == [row(1, "L1", "Utrecht", "midden")]
    assert list(rows[0]) == ["source_row_number", *LOC]


def test_malformed_rows_fall_back_to_the_exact_path_with_exact_numbers(tmp_path):
    path = write(tmp_path, HEADER + "\n"
                 'L1;"Utrecht\nCentrum";midden\n'   # row 1 on two lines
                 "L2;a;b;c\n"                       # row 2: too many fields
                 "L3;Delft;west\n"
                 "L4\n"                             # row 4: too few
                 "\n"                               # blank: not a row
                 "L5;Ede;oost\n")
    rows, stats, restarts = read(path)
    assert restarts == 1
    assert stats.path_taken == "python-csv"
    assert stats.rows_read == 5
    assert rows == [row(1, "L1", "Utrecht\nCentrum", "midden"), row(3, "L3", "Delft", "west"),
                    row(5, "L5", "Ede", "oost")]
    assert [(r.source_row_number, r.reason, r.detail, r.raw_text) for r in stats.rejected] == [
        (2, "malformed_row", "expected 3 fields, found 4", "L2;a;b;c"),
        (4, "malformed_row", "expected 3 fields, found 1", "L4")]


def test_bytes_that_are_not_utf8_reject_only_their_row(tmp_path):
    path = write(tmp_path, HEADER.encode() + b"\nL1;Utrecht;midden\nL2;Z\xfcrich;\nL3;Delft;\n")
    rows, stats, restarts = read(path)
    assert (restarts, stats.path_taken, stats.rows_read) == (1, "python-csv", 3)
    assert [r["location_id"] for r in rows] == ["L1", "L3"]
    assert [(r.source_row_number, r.reason, r.raw_text) for r in stats.rejected] == [
        (2, "invalid_encoding", "L2;Z\ufffdrich;")]


def test_a_malformed_row_with_bytes_that_are_not_utf8_is_rejected_as_storable_text(tmp_path):
    """Issue 10, 8b: such a row made pyarrow's invalid-row callback raise UnicodeDecodeError, and its
    text kept lone surrogates, which DuckDB cannot store: the whole night failed."""
    path = write(tmp_path, HEADER.encode() + b"\nL1;Utrecht;midden\nL2;Z\xfcrich;x;\xe9\nL3;Delft;\n")
    rows, stats, restarts = read(path)
    assert (restarts, stats.path_taken, stats.rows_read) == (1, "python-csv", 3)
    assert [r["location_id"] for r in rows] == ["L1", "L3"]
    assert [(r.source_row_number, r.reason, r.detail, r.raw_text) for r in stats.rejected] == [
        (2, "malformed_row", "expected 3 fields, found 4; also bytes that are not UTF-8 (shown as U+FFFD)",
         "L2;Z\ufffdrich;x;\ufffd")]
    stats.rejected[0].raw_text.encode("utf-8")  # storable


def test_a_bare_carriage_return_in_the_header_row_is_read(tmp_path):
    assert df.read_csv_header(write(tmp_path, b"location_id;location_\rname;region\nL1;a;b\n")) == [
        "location_id", "location_"]


def test_a_bom_is_not_part_of_the_first_column_name(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf" + HEADER.encode() + b"\nL1;Utrecht;midden\n")
    assert df.read_csv_header(path) == LOC
    rows, stats, _ = read(path)
    assert rows == [row(1, "L1", "Utrecht", "midden")]


def test_header_only_file_has_no_rows(tmp_path):
    for data in (HEADER + "\n", HEADER, HEADER + "\r\n\r\n"):
        rows, stats, _ = read(write(tmp_path, data))
        assert (rows, stats.rows_read, stats.rejected) == ([], 0, [])


@pytest.mark.parametrize("data, message", [
    (b"", "file is empty: no header row"),
    (b"  \n\n", "file is empty: no header row"),
    (HEADER.replace(";region", "") + "\nL1;Utrecht\n", "missing column(s) region"),
    (HEADER + ";phone\nL1;Utrecht;midden;030\n", "unexpected column(s) 'phone'"),
    (HEADER + ";region\nL1;Utrecht;midden;x\n", "duplicated column(s) region"),
    ("location_id;Location_Name;region\n", "missing column(s) location_name; unexpected column(s) 'Location_Name'"),
])
def test_bad_headers(tmp_path, data, message):
    with pytest.raises(BadHeader) as info:
        read(write(tmp_path, data))
    assert str(info.value) == message


@pytest.mark.parametrize("data", [
    "location_id,location_name,region\nL1,Utrecht,midden\n",      # another delimiter
    "L1;7700123401;midden\nL2;Nijmegen;oost\n",                   # no header: a data row comes first
])
def test_a_row_that_is_no_header_at_all_is_not_repeated(tmp_path, data):
    with pytest.raises(BadHeader) as info:
        read(write(tmp_path, data))
    message = str(info.value)
    assert message.startswith("the header row has none of the contract's columns (location_id, location_name, "
                              "region; found ")
    assert "delimiter ';'" in message
    assert "7700123401" not in message and "Utrecht" not in message


def test_a_field_beyond_pythons_default_limit_reads(tmp_path):
    path = write(tmp_path, f"{HEADER}\nL1;{'x' * 300_000};midden\nL2;kapot\n")
    rows, stats, restarts = read(path)
    assert restarts == 1 and stats.path_taken == "python-csv"
    assert len(rows[0]["location_name"]) == 300_000
    assert [r.source_row_number for r in stats.rejected] == [2]


def test_a_quote_never_closed_makes_a_large_file_unreadable_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setattr(df, "FIELD_SIZE_LIMIT", 1000)     # 64 MiB in production
    body = "".join(f"L{i};naam;regio\n" for i in range(3, 200))
    path = write(tmp_path, f'{HEADER}\nL1;Utrecht;midden\nL2;"nooit gesloten;x\n{body}L9;a;b;c\n')
    try:
        with pytest.raises(UnreadableFile) as info:
            read(path)
    finally:
        df.csv.field_size_limit(64 << 20)
    assert str(info.value) == "row 2 cannot be read (field larger than field limit (1000))"


def test_parquet_is_read_as_contract_text(tmp_path):
    table = pa.table({
        "episode_id": ["E1", "E2"], "start_date": [dt.date(2025, 1, 10), None], "age_at_start": [40, 7],
        "total_score": [200.0, 150.5], "is_trainee": [True, False], "region": ["", None]})
    pq.write_table(table, tmp_path / "f.parquet")
    columns = ["is_trainee", "episode_id", "start_date", "age_at_start", "total_score", "region"]
    rows, stats, _ = read(tmp_path / "f.parquet", columns, fmt="parquet")
    assert (stats.rows_read, stats.path_taken) == (2, "parquet")
    assert rows == [
        {"source_row_number": 1, "is_trainee": "1", "episode_id": "E1", "start_date": "2025-01-10",
         "age_at_start": "40", "total_score": "200", "region": None},    # '' is NULL, as in CSV
        {"source_row_number": 2, "is_trainee": "0", "episode_id": "E2", "start_date": None,
         "age_at_start": "7", "total_score": "150.5", "region": None}]


def test_parquet_header_is_checked(tmp_path):
    pq.write_table(pa.table({"location_id": ["L1"], "location_name": ["U"], "phone": ["0"]}), tmp_path / "f.parquet")
    with pytest.raises(BadHeader) as info:
        read(tmp_path / "f.parquet", fmt="parquet")
    assert str(info.value) == "missing column(s) region; unexpected column(s) 'phone'"
