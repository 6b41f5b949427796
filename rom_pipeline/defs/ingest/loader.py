"""Discover deliveries, verify them against their manifest, and load them as text into ``raw``.

Each delivery loads in one transaction: a checksum, row count or header that
does not match rolls the whole delivery back and records it as rejected, so a
broken delivery never replaces a good one. A delivery whose manifest is
unchanged since it was last read is skipped (re-reading changes nothing).
Client ids are pseudonymised by the INSERT that stores the row (HMAC-SHA256 in SQL):
the raw id is never stored.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
import pyarrow as pa

from rom_pipeline.lib.delivered_files import BadHeader, ReadStats, UnreadableFile, read_delivered_file
from rom_pipeline.lib.manifest import (DeliveredFile, DeliveryRejected, Manifest, discover_manifests,
                                       read_manifest, sha256_of_file)
from rom_pipeline.lib.pseudonym import key_fingerprint, pseudonym_parameters, pseudonym_sql
from schemas.contract import FILES
from schemas.reference import REFERENCE_FILES

REFERENCE_DELIVERY_ID = "reference"
ALL_FILES = {**FILES, **REFERENCE_FILES}
WITHHELD = "(withheld: a malformed episodes row may hold a raw client id)"


def raw_columns(file: str) -> list[str]:
    return list(ALL_FILES[file].columns)


def _has_own_concern_id(file: str) -> bool:
    """Reference files name the concern on every row; delivery files inherit it from the manifest."""
    return "concern_id" in ALL_FILES[file].columns


def ensure_tables(con) -> None:
    for schema in ("raw", "audit"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for file in ALL_FILES:
        cols = ", ".join(f'"{c}" VARCHAR' for c in raw_columns(file))
        concern = "" if _has_own_concern_id(file) else "concern_id VARCHAR, "
        con.execute(f"""CREATE TABLE IF NOT EXISTS raw.{file} (
            delivery_id VARCHAR NOT NULL, {concern}file_name VARCHAR NOT NULL,
            source_row_number BIGINT NOT NULL, {cols})""")
        # The file's checksum is audit.delivery_files.sha256; work databases from before issue 11
        # also stored it on every row (12% of the cost of storing an item response).
        con.execute(f"ALTER TABLE raw.{file} DROP COLUMN IF EXISTS file_sha256")
    con.execute("""CREATE TABLE IF NOT EXISTS raw.rejected_rows (
        delivery_id VARCHAR NOT NULL, concern_id VARCHAR, file_name VARCHAR NOT NULL, logical_file VARCHAR NOT NULL,
        source_row_number BIGINT NOT NULL, reason VARCHAR NOT NULL, detail VARCHAR, raw_text VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS audit.deliveries (
        delivery_id VARCHAR PRIMARY KEY, concern_id VARCHAR, export_id VARCHAR, exported_at TIMESTAMPTZ,
        export_date DATE, status VARCHAR NOT NULL, reason VARCHAR, manifest_sha256 VARCHAR,
        contract_version VARCHAR, concern_name VARCHAR, source_system VARCHAR, rows_read BIGINT,
        key_fingerprint VARCHAR)""")
    # work databases from before the pseudonym-key fingerprint (issue 10, item 6)
    con.execute("ALTER TABLE audit.deliveries ADD COLUMN IF NOT EXISTS key_fingerprint VARCHAR")
    con.execute("""CREATE TABLE IF NOT EXISTS audit.delivery_files (
        delivery_id VARCHAR NOT NULL, file_name VARCHAR NOT NULL, logical_file VARCHAR NOT NULL,
        format VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, rows_in_manifest BIGINT, rows_read BIGINT NOT NULL,
        rows_rejected_at_read BIGINT NOT NULL, read_path VARCHAR, PRIMARY KEY (delivery_id, file_name))""")


@dataclass
class IngestSummary:
    loaded: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    rows_read: int = 0
    # concern -> its current delivery, for concerns with no manifest under the export root any more
    missing_concerns: dict[str, str] = field(default_factory=dict)


def _delete_delivery(con, delivery_id: str) -> None:
    for file in ALL_FILES:
        con.execute(f"DELETE FROM raw.{file} WHERE delivery_id = ?", [delivery_id])
    con.execute("DELETE FROM raw.rejected_rows WHERE delivery_id = ?", [delivery_id])
    con.execute("DELETE FROM audit.delivery_files WHERE delivery_id = ?", [delivery_id])


def _load_file(con, delivery_id: str, concern_id: str | None, f: DeliveredFile, key: bytes | None) -> ReadStats:
    """Store one file's rows as text; ``key``: pseudonymise ``client_id`` in the INSERT that stores it.

    The batch the reader hands over is read in place (DuckDB scans the Arrow memory); the INSERT
    computes the HMAC of every client id as it writes the row, so the raw id is never stored.
    """
    columns = raw_columns(f.logical)
    column_list = ", ".join(f'"{c}"' for c in columns)
    pseudonymised = "client_id" in columns and key is not None
    select_list = ", ".join(pseudonym_sql(f'"{c}"') if pseudonymised and c == "client_id" else f'"{c}"'
                            for c in columns)
    pads = pseudonym_parameters(key) if pseudonymised else []
    stats = ReadStats()

    def restart() -> None:
        con.execute(f"DELETE FROM raw.{f.logical} WHERE delivery_id = ? AND file_name = ?", [delivery_id, f.name])

    if _has_own_concern_id(f.logical):
        insert = (f"INSERT INTO raw.{f.logical} (delivery_id, file_name, source_row_number,"
                  f" {column_list}) SELECT ?, ?, source_row_number, {select_list} FROM incoming_batch")
        parameters = [delivery_id, f.name, *pads]
    else:
        insert = (f"INSERT INTO raw.{f.logical} (delivery_id, concern_id, file_name,"
                  f" source_row_number, {column_list})"
                  f" SELECT ?, ?, ?, source_row_number, {select_list} FROM incoming_batch")
        parameters = [delivery_id, concern_id, f.name, *pads]
    try:
        for incoming_batch in read_delivered_file(f.path, f.format, columns, stats, restart):  # noqa: B007
            # The INSERT reads this local variable through DuckDB's replacement scan. Not
            # con.register(): a view dropped inside the delivery's transaction stays in the catalog
            # until commit, and every batch's Arrow memory with it, outside DuckDB's memory limit
            # (issue 11: 2.2 GiB for the largest delivery of tier L).
            con.execute(insert, parameters)
    except BadHeader as exc:
        raise DeliveryRejected(f"{f.name}: {exc}") from None
    except UnreadableFile as exc:
        raise DeliveryRejected(f"{f.name}: unreadable ({exc})") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise DeliveryRejected(f"{f.name}: unreadable ({exc.__class__.__name__}: {str(exc)[:200]})") from None
    except UnicodeError as exc:  # a reader let text through that cannot be stored: this delivery only
        raise DeliveryRejected(f"{f.name}: unreadable ({exc.__class__.__name__}: {exc.reason})") from None
    withheld = "client_id" in columns
    if stats.rejected:
        try:
            con.executemany(
                "INSERT INTO raw.rejected_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(delivery_id, concern_id, f.name, f.logical, r.source_row_number, r.reason, r.detail,
                  WITHHELD if withheld else r.raw_text) for r in stats.rejected])
        except UnicodeError as exc:
            raise DeliveryRejected(f"{f.name}: a rejected row's text cannot be stored ({exc.reason})") from None
    return stats


def _load_delivery(con, manifest: Manifest, key: bytes) -> int:
    """Load every file of a verified manifest; raises DeliveryRejected, leaving nothing behind."""
    for f in manifest.files:  # checksums first: cheap, and a truncated file fails here
        try:
            actual = sha256_of_file(f.path)
        except OSError as exc:
            raise DeliveryRejected(f"{f.name}: cannot be read ({exc.__class__.__name__})") from None
        if actual != f.sha256:
            raise DeliveryRejected(f"{f.name}: sha256 {actual[:12]}... does not match the manifest's {f.sha256[:12]}...")
    rows = 0
    for f in manifest.files:
        stats = _load_file(con, manifest.delivery_id, manifest.concern_id, f, key)
        if stats.rows_read != f.rows:
            raise DeliveryRejected(f"{f.name}: the manifest says {f.rows} rows, the file has {stats.rows_read}")
        con.execute("INSERT INTO audit.delivery_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [manifest.delivery_id, f.name, f.logical, f.format, f.sha256, f.rows, stats.rows_read,
                     len(stats.rejected), stats.path_taken])
        rows += stats.rows_read
    return rows


def _record(con, delivery_id: str, status: str, reason: str | None, manifest: Manifest | None,
            manifest_sha: str | None, fallback: dict, rows: int | None, fingerprint: str | None = None) -> None:
    con.execute("DELETE FROM audit.deliveries WHERE delivery_id = ?", [delivery_id])
    m = manifest
    con.execute(
        "INSERT INTO audit.deliveries (delivery_id, concern_id, export_id, exported_at, export_date, status, "
        "reason, manifest_sha256, contract_version, concern_name, source_system, rows_read, key_fingerprint) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [delivery_id, m.concern_id if m else fallback.get("concern_id"), m.export_id if m else fallback.get("export_id"),
         m.exported_at if m else None, m.export_date if m else None, status, reason, manifest_sha,
         m.contract_version if m else fallback.get("contract_version"), m.concern_name if m else None,
         m.source_system if m else None, rows, fingerprint])


def _best_effort_fields(path: Path) -> dict:
    """What a rejected manifest says about itself, for the audit row (never trusted otherwise)."""
    try:
        doc = json.loads(path.read_bytes().decode("utf-8-sig"))
        return {k: str(doc[k]) for k in ("concern_id", "export_id", "contract_version") if isinstance(doc, dict) and k in doc}
    except Exception:  # noqa: BLE001 - any unreadable manifest simply has no fields
        return {}


def ingest_deliveries(con, export_root: Path, key: bytes, log=print, reread: frozenset[str] = frozenset()
                      ) -> IngestSummary:
    """Read every new or changed delivery under the export root, then settle which one is current.

    A delivery whose manifest is unchanged is skipped, unless it was rejected: a
    delivery read while its files were still being copied must load once they are
    complete (read again, a delivery that is still broken is rejected again, the same way).
    ``reread``: deliveries read again although unchanged (a rotation of the pseudonym key).
    """
    ensure_tables(con)
    summary = IngestSummary()
    known = {delivery_id: (sha, status) for delivery_id, sha, status in con.execute(
        "SELECT delivery_id, manifest_sha256, status FROM audit.deliveries").fetchall()}
    found = []
    for manifest_path in discover_manifests(export_root):
        delivery_id = manifest_path.parent.relative_to(export_root).as_posix()
        found.append(delivery_id)
        sha, status = known.get(delivery_id, (None, None))
        if (status != "rejected" and delivery_id not in reread and sha is not None
                and sha == _manifest_sha(manifest_path)):
            summary.unchanged.append(delivery_id)
            continue
        _ingest_one(con, export_root, manifest_path, key, summary, log)
    # A superseded delivery's rows are dropped. When the delivery that superseded it is rejected
    # (rewritten in place and broken), it is current again and is read again, until one holds.
    revived = _settle_statuses(con)
    while revived:
        for delivery_id in revived:
            log(f"delivery {delivery_id} is current again: reading it again")
            _ingest_one(con, export_root, export_root / delivery_id / "manifest.json", key, summary, log)
        revived = _settle_statuses(con)
    summary.missing_concerns = missing_concerns(con, found)
    for concern, delivery_id in summary.missing_concerns.items():
        log(f"MISSING: concern {concern} has no delivery under the export root any more; its current "
            f"delivery {delivery_id} stays current and published until a new one arrives")
    return summary


def missing_concerns(con, found: list[str]) -> dict[str, str]:
    """Concerns with a current delivery of which no delivery (no manifest.json) is under the export root now.

    Their data stays current and published: a folder that disappeared (moved, an unmounted sub-share)
    must not delete good data, only be named loudly.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE found_deliveries (delivery_id VARCHAR)")
    if found:
        con.executemany("INSERT INTO found_deliveries VALUES (?)", [(d,) for d in found])
    rows = con.execute("""
        SELECT d.concern_id, d.delivery_id FROM audit.deliveries AS d
        WHERE d.status = 'current' AND d.delivery_id <> ?
          AND d.concern_id NOT IN (SELECT a.concern_id FROM audit.deliveries AS a
                                   JOIN found_deliveries AS f ON f.delivery_id = a.delivery_id
                                   WHERE a.concern_id IS NOT NULL)
        ORDER BY d.concern_id""", [REFERENCE_DELIVERY_ID]).fetchall()
    con.execute("DROP TABLE found_deliveries")
    return dict(rows)


def _manifest_sha(path: Path) -> str | None:
    try:
        return sha256_of_file(path)
    except OSError:
        return None


def _ingest_one(con, export_root: Path, manifest_path: Path, key: bytes, summary: IngestSummary, log) -> None:
    """Load one delivery in one transaction, or record it as rejected with nothing of it kept."""
    delivery_id = manifest_path.parent.relative_to(export_root).as_posix()
    manifest = None
    manifest_sha = _manifest_sha(manifest_path)
    con.begin()
    try:
        _delete_delivery(con, delivery_id)
        if manifest_sha is None:
            raise DeliveryRejected("manifest.json cannot be read")
        manifest = read_manifest(manifest_path, export_root)
        rows = _load_delivery(con, manifest, key)
        _record(con, delivery_id, "verified", None, manifest, manifest_sha, {}, rows, key_fingerprint(key))
        con.commit()
        summary.loaded.append(delivery_id)
        summary.rows_read += rows
        log(f"loaded delivery {delivery_id}: {rows} rows")
    except DeliveryRejected as rejection:
        con.rollback()
        con.begin()
        _delete_delivery(con, delivery_id)
        _record(con, delivery_id, "rejected", rejection.reason, manifest, manifest_sha,
                _best_effort_fields(manifest_path), None)
        con.commit()
        summary.rejected[delivery_id] = rejection.reason
        log(f"REJECTED delivery {delivery_id}: {rejection.reason}")
    except BaseException:
        con.rollback()
        raise


def _settle_statuses(con) -> list[str]:
    """Newest verified delivery per concern is current; older ones are superseded and their rows dropped.

    Returns the deliveries that were superseded (rows dropped) and are current now: they must be read again.
    """
    was_superseded = {r[0] for r in con.execute(
        "SELECT delivery_id FROM audit.deliveries WHERE status = 'superseded'").fetchall()}
    con.begin()
    con.execute("""
        UPDATE audit.deliveries AS d SET status = ranked.status,
               reason = CASE WHEN ranked.status = 'superseded' THEN 'superseded by ' || ranked.newest END
        FROM (
            SELECT delivery_id,
                   CASE WHEN row_number() OVER w = 1 THEN 'current' ELSE 'superseded' END AS status,
                   first_value(delivery_id) OVER w AS newest
            FROM audit.deliveries
            WHERE status IN ('verified', 'current', 'superseded') AND delivery_id <> ?
            WINDOW w AS (PARTITION BY concern_id ORDER BY exported_at DESC, delivery_id DESC)
        ) AS ranked
        WHERE d.delivery_id = ranked.delivery_id""", [REFERENCE_DELIVERY_ID])
    superseded = [r[0] for r in con.execute(
        "SELECT delivery_id FROM audit.deliveries WHERE status = 'superseded'").fetchall()]
    for delivery_id in superseded:
        for file in ALL_FILES:
            con.execute(f"DELETE FROM raw.{file} WHERE delivery_id = ?", [delivery_id])
        con.execute("DELETE FROM raw.rejected_rows WHERE delivery_id = ?", [delivery_id])
    con.commit()
    current = {r[0] for r in con.execute(
        "SELECT delivery_id FROM audit.deliveries WHERE status = 'current'").fetchall()}
    return sorted(was_superseded & current)


def ingest_reference(con, export_root: Path, log=print) -> list[str]:
    """Load ``reference/*.csv`` (no manifest) when their bytes changed; returns the files loaded."""
    ensure_tables(con)
    folder = export_root / "reference"
    loaded = []
    for file in REFERENCE_FILES:
        path = folder / f"{file}.csv"
        name = f"reference/{file}.csv"
        if not path.is_file():
            continue
        sha = sha256_of_file(path)
        known = con.execute("SELECT sha256 FROM audit.delivery_files WHERE delivery_id = ? AND file_name = ?",
                            [REFERENCE_DELIVERY_ID, name]).fetchone()
        if known and known[0] == sha:
            continue
        con.begin()
        try:
            con.execute(f"DELETE FROM raw.{file} WHERE delivery_id = ?", [REFERENCE_DELIVERY_ID])
            con.execute("DELETE FROM raw.rejected_rows WHERE delivery_id = ? AND logical_file = ?",
                        [REFERENCE_DELIVERY_ID, file])
            con.execute("DELETE FROM audit.delivery_files WHERE delivery_id = ? AND file_name = ?",
                        [REFERENCE_DELIVERY_ID, name])
            entry = DeliveredFile(name=name, logical=file, format="csv", path=path, rows=-1, sha256=sha)
            stats = _load_file(con, REFERENCE_DELIVERY_ID, None, entry, None)
            con.execute("INSERT INTO audit.delivery_files VALUES (?, ?, ?, 'csv', ?, NULL, ?, ?, ?)",
                        [REFERENCE_DELIVERY_ID, name, file, sha, stats.rows_read, len(stats.rejected), stats.path_taken])
            con.commit()
            loaded.append(name)
            log(f"loaded {name}: {stats.rows_read} rows")
        except DeliveryRejected as rejection:
            con.rollback()
            log(f"REJECTED {name}: {rejection.reason}")
            con.execute("INSERT OR REPLACE INTO audit.deliveries (delivery_id, status, reason) VALUES (?, 'rejected', ?)",
                        [f"reference/{file}", rejection.reason])
        except BaseException:
            con.rollback()
            raise
    if con.execute("SELECT count(*) FROM audit.delivery_files WHERE delivery_id = ?", [REFERENCE_DELIVERY_ID]).fetchone()[0]:
        con.execute("INSERT OR REPLACE INTO audit.deliveries (delivery_id, status, reason) VALUES (?, 'current', ?)",
                    [REFERENCE_DELIVERY_ID, "public reference inputs (annual reports, quality indicators)"])
    return loaded
