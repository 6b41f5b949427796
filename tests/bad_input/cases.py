"""The bad-input corpus (issue 6): each case changes a clean delivery the way a broken export would.

A case is a function that edits a :class:`Draft` plus the outcome the contract
demands, worked out by hand:

- ``status``: ``current`` (the delivery loads; its bad rows are quarantined) or
  ``rejected`` (the delivery as a whole breaks the contract);
- ``reason``: words the rejection reason must contain (the file and what is wrong);
- ``quarantine``: exactly the (file_name, source_row_number, reason) rows it must leave in audit.quarantine;
- ``loaded``: rows per file that must reach staging (for a rejected case: the
  concern's previous delivery, which must stay current with all its rows);
- ``check``: optional extra assertions on the published warehouse.

Rejected cases are written beside an older, clean delivery of the same concern
(the "baseline"), so every case also proves that a rejection leaves the previous
delivery current.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .writer import (BASE_LOADED, BASELINE_EXPORTED_AT, CLIENT_PREFIX, COLUMNS, Draft, csv_text, episode, item_rows,
                     measurement)

WITHHELD = "(withheld: a malformed episodes row may hold a raw client id)"


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    edit: Callable[[Draft], None]
    status: str
    reason: tuple[str, ...] = ()
    quarantine: frozenset[tuple[str, int, str]] = frozenset()
    loaded: dict[str, int] = field(default_factory=lambda: dict(BASE_LOADED))
    check: Callable | None = None   # check(warehouse_connection, delivery_id)

    @property
    def concern_id(self) -> str:
        return f"BAD-{self.name}"

    @property
    def delivery_id(self) -> str:
        return f"{self.name}/case"

    @property
    def baseline_id(self) -> str:
        return f"{self.name}/baseline"


def q(file: str, *rows_and_reason) -> set[tuple[str, int, str]]:
    """q("episodes.csv", 3, 4, "invalid_type") -> {("episodes.csv", 3, "invalid_type"), (..., 4, ...)}."""
    *rows, reason = rows_and_reason
    return {(file, r, reason) for r in rows}


def loaded(**changes: int) -> dict[str, int]:
    out = dict(BASE_LOADED)
    out.update({f"{k}.csv": v for k, v in changes.items()})
    return out


def _header(logical: str, sep: str = ";") -> str:
    return sep.join(COLUMNS[logical]) + "\n"


# --- hooks that run after the delivery is written ---------------------------------------------

def _truncate(name: str) -> Callable[[Path], None]:
    def hook(folder: Path) -> None:
        path = folder / name
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])   # cut mid-file, as an interrupted copy leaves it
    return hook


def _remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _relist(name: str, listed_as: Callable[[Path, Path], str]) -> Callable[[Path], None]:
    """Move ``name`` out of the delivery and list it in the manifest under ``listed_as(folder, new_path)``."""
    def hook(folder: Path) -> None:
        target = folder.parent / f"outside-{name}"
        shutil.move(folder / name, target)
        manifest_path = folder / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["files"][listed_as(folder, target)] = manifest["files"].pop(name)
        manifest_path.write_text(json.dumps(manifest, indent=2))
    return hook


def _symlink_outside(name: str) -> Callable[[Path], None]:
    def hook(folder: Path) -> None:
        target = folder.parent / f"outside-{name}"
        shutil.move(folder / name, target)
        (folder / name).symlink_to(target)      # same bytes, so the checksum still matches
    return hook


# --- edits --------------------------------------------------------------------------------------

def truncated_file(d: Draft) -> None:
    d.after_write.append(_truncate("episodes.csv"))


def wrong_checksum(d: Draft) -> None:
    d.entry_overrides["locations.csv"] = {"sha256": "0123456789abcdef" * 4}


def wrong_row_count(d: Draft) -> None:
    d.entry_overrides["therapists.csv"] = {"rows": 3}


def missing_file(d: Draft) -> None:
    d.after_write.append(_remove("measurements.csv"))


def missing_required_file(d: Draft) -> None:
    del d.rows["therapists"]


def unknown_file_listed(d: Draft) -> None:
    d.raw["notes"] = (b"free text\n", 1)


def unknown_contract_version(d: Draft) -> None:
    d.manifest_overrides["contract_version"] = "2.0"


def exported_at_without_offset(d: Draft) -> None:
    d.manifest_overrides["exported_at"] = "2025-06-30T23:05:00"


def malformed_manifest_json(d: Draft) -> None:
    text = json.dumps({"contract_version": "1.0", "concern_id": d.concern_id, "files": {}})
    d.manifest_bytes = text[:-5].encode()      # cut off: not JSON any more


def missing_column(d: Draft) -> None:
    columns = [c for c in COLUMNS["episodes"] if c != "sex"]
    d.raw["episodes"] = (csv_text(d.rows.pop("episodes"), columns).encode(), 2)


def extra_column(d: Draft) -> None:
    rows = [{**r, "phone": "030-1234567"} for r in d.rows.pop("locations")]
    d.raw["locations"] = (csv_text(rows, COLUMNS["locations"] + ["phone"]).encode(), 2)


def wrong_delimiter(d: Draft) -> None:
    d.raw["locations"] = (csv_text(d.rows.pop("locations"), COLUMNS["locations"], delimiter=",").encode(), 2)


def header_is_a_data_row(d: Draft) -> None:
    """episodes.csv without its header: the first data row (with a raw client id) is read as the header."""
    text = csv_text(d.rows.pop("episodes"), COLUMNS["episodes"])
    d.raw["episodes"] = (text.split("\n", 1)[1].encode(), 1)


def empty_file(d: Draft) -> None:
    d.rows.pop("locations")
    d.raw["locations"] = (b"", 0)


def corrupt_parquet(d: Draft) -> None:
    d.rows.pop("locations")
    d.names["locations"] = "locations.parquet"
    d.raw["locations"] = (b"PAR1 this is not a parquet file PAR1", 2)


def unterminated_quote(d: Draft) -> None:
    d.rows.pop("locations")
    d.raw["locations"] = ((_header("locations") + 'L1;"Utrecht;midden\nL2;Nijmegen;\n').encode(), 2)


def path_traversal(d: Draft) -> None:
    d.after_write.append(_relist("locations.csv", lambda folder, target: "../" + target.name))


def absolute_path(d: Draft) -> None:
    d.after_write.append(_relist("locations.csv", lambda folder, target: str(target.resolve())))


def symlink_outside(d: Draft) -> None:
    d.after_write.append(_symlink_outside("locations.csv"))


def latin1_bytes(d: Draft) -> None:
    text = csv_text(d.rows.pop("locations"), COLUMNS["locations"]).encode("utf-8")
    d.raw["locations"] = (text + "L3;Zürich;zuid\n".encode("latin-1") + b"L4;Delft;west\n", 4)


def check_latin1(con, delivery_id: str) -> None:
    raw_row, = con.execute("SELECT raw_row FROM audit.quarantine WHERE delivery_id = ?", [delivery_id]).fetchone()
    assert "Z\ufffdrich" in raw_row        # the undecodable byte shown as U+FFFD, the rest as delivered
    assert con.execute("SELECT source_row_number FROM staging.locations WHERE delivery_id = ? "
                       "AND location_id = 'L4'", [delivery_id]).fetchone() == (4,)


def byte_order_mark(d: Draft) -> None:
    d.bom = True


def check_bom(con, delivery_id: str) -> None:
    assert con.execute("SELECT location_id FROM staging.locations WHERE delivery_id = ? ORDER BY 1",
                       [delivery_id]).fetchall() == [("L1",), ("L2",)]


def crlf_line_endings(d: Draft) -> None:
    d.newline = "\r\n"
    d.rows["locations"][0]["location_name"] = "Utrecht\r\nCentrum"   # a quoted CRLF inside a field


def check_crlf(con, delivery_id: str) -> None:
    names = con.execute("SELECT location_name, region FROM staging.locations WHERE delivery_id = ? ORDER BY 1",
                        [delivery_id]).fetchall()
    assert names == [("Nijmegen", None), ("Utrecht\r\nCentrum", "midden")]   # no stray \r at line ends


def blank_lines(d: Draft) -> None:
    d.rows.pop("locations")
    d.raw["locations"] = ((_header("locations") + "\nL1;Utrecht;midden\n\n\nL2;Nijmegen;\n\n").encode(), 2)


def check_blank_lines(con, delivery_id: str) -> None:
    assert con.execute("SELECT location_id, source_row_number FROM staging.locations WHERE delivery_id = ? "
                       "ORDER BY 2", [delivery_id]).fetchall() == [("L1", 1), ("L2", 2)]


def header_only(d: Draft) -> None:
    d.rows.pop("item_responses")
    d.raw["item_responses"] = (_header("item_responses").encode(), 0)
    d.rows["measurements"][2]["total_score"] = "180"    # M3 now needs its total: no items any more


def check_header_only(con, delivery_id: str) -> None:
    assert con.execute("SELECT rows_in_manifest, rows_read, rows_rejected_at_read FROM audit.delivery_files "
                       "WHERE delivery_id = ? AND file_name = 'item_responses.csv'",
                       [delivery_id]).fetchone() == (0, 0, 0)
    assert con.execute("SELECT total_score, score_source FROM staging.measurement_scores "
                       "WHERE delivery_id = ? AND measurement_id = 'M3'", [delivery_id]).fetchone() == (180, "delivered")


def quoted_delimiters_and_newlines(d: Draft) -> None:
    locations = d.rows["locations"]
    locations[0].update(location_name="Utrecht; Centrum", region="midden\nnoord")
    locations[1].update(location_name='De "Oase"; Nijmegen', region="oost\n\nwest")
    locations.append({"location_id": "L3", "location_name": "", "region": "zuid"})   # row 3: name missing


def check_quoted(con, delivery_id: str) -> None:
    assert con.execute("SELECT location_id, location_name, region, source_row_number FROM staging.locations "
                       "WHERE delivery_id = ? ORDER BY 1", [delivery_id]).fetchall() == [
        ("L1", "Utrecht; Centrum", "midden\nnoord", 1), ("L2", 'De "Oase"; Nijmegen', "oost\n\nwest", 2)]


def too_many_and_too_few_fields(d: Draft) -> None:
    d.rows.pop("locations")
    text = (_header("locations")
            + 'L1;"Utrecht\nCentrum";midden\n'   # row 1 spans two lines
            + "L9;Extra;noord;overbodig\n"        # row 2: 4 fields
            + "L2;Nijmegen;\n"                    # row 3
            + "L8;Alleen\n"                       # row 4: 2 fields
            + "L3;Delft;west\n")                  # row 5
    d.raw["locations"] = (text.encode(), 5)


def check_malformed(con, delivery_id: str) -> None:
    assert con.execute("SELECT location_id, source_row_number FROM staging.locations WHERE delivery_id = ? "
                       "ORDER BY 2", [delivery_id]).fetchall() == [("L1", 1), ("L2", 3), ("L3", 5)]
    assert con.execute("SELECT raw_row, detail FROM audit.quarantine WHERE delivery_id = ? "
                       "AND source_row_number = 2", [delivery_id]).fetchone() == (
        "L9;Extra;noord;overbodig", "expected 3 fields, found 4")
    assert con.execute("SELECT read_path, rows_read, rows_rejected_at_read FROM audit.delivery_files "
                       "WHERE delivery_id = ? AND file_name = 'locations.csv'",
                       [delivery_id]).fetchone() == ("python-csv", 5, 2)


def long_field_and_malformed_row(d: Draft) -> None:
    """A 200 kB field (beyond Python csv's default 128 kB field limit) in a file the exact reader must read."""
    d.rows["locations"][0]["location_name"] = "x" * 200_000
    text = csv_text(d.rows.pop("locations"), COLUMNS["locations"]) + "L9;kapot\n"
    d.raw["locations"] = (text.encode(), 3)


def check_long_field(con, delivery_id: str) -> None:
    assert con.execute("SELECT length(location_name) FROM staging.locations WHERE delivery_id = ? "
                       "AND location_id = 'L1'", [delivery_id]).fetchone() == (200_000,)


def malformed_episodes_rows(d: Draft) -> None:
    text = csv_text(d.rows.pop("episodes"), COLUMNS["episodes"]).encode()
    row3 = f"E3;{d.client(3)};L1;T1;basic;anxiety;gp;2025-01-10;;;8;35;male;extra\n".encode()
    row4 = f"E4;{d.client(4)}".encode() + "ë".encode("latin-1") + b";L1;T1;basic;anxiety;gp;2025-01-10;;;8;35;male\n"
    d.raw["episodes"] = (text + row3 + row4, 4)


def check_withheld(con, delivery_id: str) -> None:
    rows = con.execute("SELECT raw_row FROM audit.quarantine WHERE delivery_id = ?", [delivery_id]).fetchall()
    assert rows == [(WITHHELD,), (WITHHELD,)]


def dates_in_other_formats(d: Draft) -> None:
    for n, start in enumerate(["21-03-2025", "2025/03/21", "20250321", "2025-3-21"], start=3):
        d.rows["episodes"].append(episode(f"E{n}", d.client(n), start=start))
    d.rows["measurements"].append(measurement("M5", "E1", "10-01-2025", "190"))


def impossible_dates(d: Draft) -> None:
    d.rows["episodes"] += [
        episode("E3", d.client(3), start="2025-02-30"),
        episode("E4", d.client(4), start="2025-13-45"),
        # only invalid_type: the delivered end_date is unreadable, not missing
        episode("E5", d.client(5), start="2025-01-10", end="2025-04-31", end_reason="completed"),
    ]


def scores_out_of_range(d: Draft) -> None:
    on = "2025-02-01"
    d.rows["measurements"] += [
        measurement("M5", "E1", on, "89"),                      # row 5: SCL90 below 90
        measurement("M6", "E1", on, "451"),                     # row 6: SCL90 above 450
        measurement("M7", "E1", on, "90"),                      # row 7: lower bound, fine
        measurement("M8", "E1", on, "450"),                     # row 8: upper bound, fine
        measurement("M9", "E1", on, "-1", instrument="HDRS"),   # row 9
        measurement("M10", "E1", on, "11", instrument="CQI"),   # row 10
        measurement("M11", "E1", on, "6.5", instrument="UBOS"),  # row 11
        measurement("M12", "E1", on, "80", instrument="WORK"),  # row 12: upper bound, fine
        measurement("M13", "E1", on, "8", instrument="CQI"),    # row 13: fine; its one item is not
    ]
    d.rows["item_responses"] += item_rows("M13", [11])          # item row 91: CQI item range 0..10


def check_scores(con, delivery_id: str) -> None:
    assert con.execute("SELECT measurement_id, total_score, score_source FROM staging.measurement_scores "
                       "WHERE delivery_id = ? AND measurement_id IN ('M7', 'M8', 'M12', 'M13') ORDER BY 1",
                       [delivery_id]).fetchall() == [
        ("M12", 80, "delivered"), ("M13", 8, "delivered"), ("M7", 90, "delivered"), ("M8", 450, "delivered")]


def duplicate_ids(d: Draft) -> None:
    d.rows["locations"].append({"location_id": "L1", "location_name": "Dubbel", "region": ""})
    d.rows["therapists"].append({"therapist_id": "T1", "location_id": "L2", "profession": "psychiatrist",
                                 "is_trainee": "0"})
    d.rows["episodes"].append(episode("E1", d.client(3), start="2025-05-05"))
    d.rows["measurements"].append(measurement("M1", "E1", "2025-05-05", "300"))
    d.rows["item_responses"] += item_rows("M3", [2])            # (M3, 1) again, row 91


def check_first_kept(con, delivery_id: str) -> None:
    one = lambda sql: con.execute(sql + " AND delivery_id = ?", [delivery_id]).fetchone()  # noqa: E731
    assert one("SELECT location_name FROM staging.locations WHERE location_id = 'L1'") == ("Utrecht",)
    assert one("SELECT location_id FROM staging.therapists WHERE therapist_id = 'T1'") == ("L1",)
    assert one("SELECT start_date::VARCHAR FROM staging.episodes WHERE episode_id = 'E1'") == ("2025-01-10",)
    assert one("SELECT total_score FROM staging.measurement_scores WHERE measurement_id = 'M1'") == (200,)
    assert one("SELECT response FROM staging.item_responses WHERE measurement_id = 'M3' AND item = 1") == (5,)
    assert one("SELECT total_score FROM staging.measurement_scores WHERE measurement_id = 'M3'") == (180,)


def dangling_references(d: Draft) -> None:
    d.rows["therapists"].append({"therapist_id": "T3", "location_id": "L9", "profession": "other",
                                 "is_trainee": "0"})                                     # therapists row 3
    d.rows["episodes"] += [episode("E3", d.client(3), therapist_id="T9"),               # episodes row 3
                           episode("E4", d.client(4), location_id="L9"),                # row 4
                           episode("E5", d.client(5), therapist_id="T3")]               # row 5: T3 quarantined
    d.rows["measurements"].append(measurement("M5", "E9", "2025-02-01", "120"))         # measurements row 5
    d.rows["item_responses"] += item_rows("M9", [3])                                   # item row 91


def end_before_start(d: Draft) -> None:
    d.rows["episodes"] += [
        episode("E3", d.client(3), start="2025-03-01", end="2025-02-28", end_reason="completed"),
        episode("E4", d.client(4), start="2025-03-01", end="2025-03-01", end_reason="dropout"),  # same day: fine
    ]


CASES: list[Case] = [
    # --- the delivery as a whole breaks the contract: rejected, previous delivery stays current ---
    Case("truncated_file", "episodes.csv cut in half after the manifest was written (interrupted copy)",
         truncated_file, "rejected", ("episodes.csv", "sha256")),
    Case("wrong_checksum", "manifest sha256 of locations.csv does not match its bytes",
         wrong_checksum, "rejected", ("locations.csv", "sha256")),
    Case("wrong_row_count", "manifest says therapists.csv has 3 rows, it has 2",
         wrong_row_count, "rejected", ("therapists.csv", "3 rows", "has 2")),
    Case("missing_file", "measurements.csv listed in the manifest but absent",
         missing_file, "rejected", ("measurements.csv", "missing")),
    Case("missing_required_file", "manifest does not list therapists.csv",
         missing_required_file, "rejected", ("therapists",)),
    Case("unknown_file_listed", "manifest lists notes.csv, which the contract does not have",
         unknown_file_listed, "rejected", ("notes.csv", "unknown file")),
    Case("unknown_contract_version", "contract_version 2.0",
         unknown_contract_version, "rejected", ("contract_version", "2.0")),
    Case("exported_at_without_offset", "exported_at without a UTC offset",
         exported_at_without_offset, "rejected", ("exported_at", "offset")),
    Case("malformed_manifest_json", "manifest.json cut off: not JSON",
         malformed_manifest_json, "rejected", ("manifest.json", "JSON")),
    Case("missing_column", "episodes.csv has no sex column",
         missing_column, "rejected", ("episodes.csv", "missing column", "sex")),
    Case("extra_column", "locations.csv has an extra phone column",
         extra_column, "rejected", ("locations.csv", "unexpected column", "phone")),
    Case("wrong_delimiter", "locations.csv written with ',' instead of ';'",
         wrong_delimiter, "rejected", ("locations.csv", "location_name", "';'")),
    Case("header_is_a_data_row", "episodes.csv without header: its first row (with a client id) is read as header",
         header_is_a_data_row, "rejected", ("episodes.csv", "header")),
    Case("empty_file", "locations.csv is 0 bytes (no header)",
         empty_file, "rejected", ("locations.csv", "empty")),
    Case("corrupt_parquet", "locations.parquet is not Parquet",
         corrupt_parquet, "rejected", ("locations.parquet", "unreadable")),
    Case("unterminated_quote", "a quote in locations.csv is never closed: the rest of the file is one field",
         unterminated_quote, "rejected", ("locations.csv", "2 rows", "has 1")),
    Case("path_traversal", "manifest lists ../outside-locations.csv",
         path_traversal, "rejected", ("../outside-locations.csv", "not a plain file name")),
    Case("absolute_path", "manifest lists an absolute path outside the delivery",
         absolute_path, "rejected", ("outside-locations.csv", "not a plain file name")),
    Case("symlink_outside", "locations.csv is a symlink to a file outside the delivery",
         symlink_outside, "rejected", ("locations.csv", "outside the delivery")),
    # --- the delivery loads; the bad rows are quarantined with their reason, the rest loads ---
    Case("byte_order_mark", "every file starts with a UTF-8 byte order mark", byte_order_mark, "current",
         check=check_bom),
    Case("crlf_line_endings", "every file uses \\r\\n line endings (and one field holds a quoted \\r\\n)",
         crlf_line_endings, "current", check=check_crlf),
    Case("blank_lines", "blank lines between and after the rows of locations.csv", blank_lines, "current",
         check=check_blank_lines),
    Case("header_only", "item_responses.csv has a header and no rows (manifest rows 0)", header_only, "current",
         loaded=loaded(item_responses=0), check=check_header_only),
    Case("quoted_delimiters_and_newlines", "quoted fields hold ';', '\"' and line breaks; row 3 lacks its name",
         quoted_delimiters_and_newlines, "current", quarantine=frozenset(q("locations.csv", 3, "missing_value")),
         check=check_quoted),
    Case("too_many_and_too_few_fields", "locations.csv rows 2 (4 fields) and 4 (2 fields), after a 2-line row 1",
         too_many_and_too_few_fields, "current",
         quarantine=frozenset(q("locations.csv", 2, 4, "malformed_row")), loaded=loaded(locations=3),
         check=check_malformed),
    Case("long_field_and_malformed_row", "a 200 kB field plus a malformed row (exact reader, big fields)",
         long_field_and_malformed_row, "current", quarantine=frozenset(q("locations.csv", 3, "malformed_row")),
         check=check_long_field),
    Case("latin1_bytes", "locations.csv row 3 written in latin-1 inside a UTF-8 file", latin1_bytes, "current",
         quarantine=frozenset(q("locations.csv", 3, "invalid_encoding")), loaded=loaded(locations=3),
         check=check_latin1),
    Case("malformed_episodes_rows", "episodes.csv row 3 has 14 fields, row 4 a latin-1 byte in its client id",
         malformed_episodes_rows, "current",
         quarantine=frozenset(q("episodes.csv", 3, "malformed_row") | q("episodes.csv", 4, "invalid_encoding")),
         check=check_withheld),
    Case("dates_in_other_formats", "start dates 21-03-2025, 2025/03/21, 20250321, 2025-3-21; "
         "administered_on 10-01-2025", dates_in_other_formats, "current",
         quarantine=frozenset(q("episodes.csv", 3, 4, 5, 6, "invalid_type") | q("measurements.csv", 5, "invalid_type"))),
    Case("impossible_dates", "2025-02-30, 2025-13-45 as start, 2025-04-31 as end", impossible_dates, "current",
         quarantine=frozenset(q("episodes.csv", 3, 4, 5, "invalid_type"))),
    Case("scores_out_of_range", "totals outside the instrument range (and the bounds themselves), an item out of "
         "range", scores_out_of_range, "current",
         quarantine=frozenset(q("measurements.csv", 5, 6, 9, 10, 11, "out_of_range")
                              | q("item_responses.csv", 91, "out_of_range")),
         loaded=loaded(measurements=8), check=check_scores),
    Case("duplicate_ids", "L1, T1, E1, M1 and item (M3, 1) delivered twice", duplicate_ids, "current",
         quarantine=frozenset(q("locations.csv", 3, "duplicate_key") | q("therapists.csv", 3, "duplicate_key")
                              | q("episodes.csv", 3, "duplicate_key") | q("measurements.csv", 5, "duplicate_key")
                              | q("item_responses.csv", 91, "duplicate_key")),
         check=check_first_kept),
    Case("dangling_references", "references to L9, T9, E9, M9 that do not exist, and to T3 that was quarantined",
         dangling_references, "current",
         quarantine=frozenset(q("therapists.csv", 3, "unknown_reference") | q("episodes.csv", 3, 4, "unknown_reference")
                              | q("episodes.csv", 5, "parent_quarantined")
                              | q("measurements.csv", 5, "unknown_reference")
                              | q("item_responses.csv", 91, "unknown_reference"))),
    Case("end_before_start", "episode E3 ends the day before it starts (E4 ends the day it starts: fine)",
         end_before_start, "current", quarantine=frozenset(q("episodes.csv", 3, "end_before_start")),
         loaded=loaded(episodes=3)),
]

CASES_BY_NAME = {case.name: case for case in CASES}
assert len(CASES_BY_NAME) == len(CASES)


def write_corpus(root: Path, cases: list[Case] = CASES) -> list[Case]:
    """Write every case under ``root/<case>/case`` (and, for rejected ones, ``root/<case>/baseline``)."""
    for case in cases:
        if case.status == "rejected":
            Draft.clean(case.concern_id, BASELINE_EXPORTED_AT).write(root / case.baseline_id)
        draft = Draft.clean(case.concern_id)
        case.edit(draft)
        draft.write(root / case.delivery_id)
    return cases


__all__ = ["CASES", "CASES_BY_NAME", "CLIENT_PREFIX", "Case", "WITHHELD", "write_corpus"]
