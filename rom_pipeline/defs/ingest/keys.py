"""The pseudonym key's fingerprint with the data (issue 10, item 6): one key per work database, rotations on record.

Every delivery with rows records the fingerprint of the key its client ids were pseudonymised
with (``audit.deliveries.key_fingerprint``); every run records its key's fingerprint in
``audit.runs``. A run whose key differs from the one the data was made with refuses before
it reads anything: the warehouse would otherwise hold pseudonyms of two keys (a concern that
delivered again under the new key, the others under the old), and one client would become two.

A deliberate rotation (``rom-pipeline rekey``, or the run tag ``rom/rekey=true``) reads every
delivery made with another key again from the export root under the new key, in one run: the
raw client ids are never kept, so re-reading the delivered files is the only way, and it keeps
nothing raw. ``audit.pseudonym_keys`` records the first key, the rotations (old and new
fingerprint, time, run) and the adoption of data read before fingerprints were kept.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from rom_pipeline.lib.pseudonym import describe_fingerprint

REKEY_TAG = "rom/rekey"
REKEY_ENV = "ROM_REKEY"  # set by `rom-pipeline rekey` for its own run only
KEY_EXIT_STATUS = 4  # `rom-pipeline run` refused: the key differs from the data's (or a rekey cannot re-read)
HOLDS_ROWS = ("current", "verified")  # deliveries whose pseudonyms are in raw (superseded: rows dropped)

DDL = """CREATE TABLE IF NOT EXISTS audit.pseudonym_keys (
    recorded_at TIMESTAMPTZ NOT NULL, run_id VARCHAR, event VARCHAR NOT NULL, key_fingerprint VARCHAR NOT NULL,
    previous_fingerprint VARCHAR, deliveries VARCHAR)"""


class KeyProblem(RuntimeError):
    """This run's key cannot be used on this work database; the message says what to do."""


def rekey_requested(tags: dict | None = None) -> bool:
    value = (tags or {}).get(REKEY_TAG) or os.environ.get(REKEY_ENV, "")
    return str(value).lower() in ("1", "true", "yes")


def _has_column(con, schema: str, table: str, column: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
                       "AND schema_name = ? AND table_name = ? AND column_name = ?",
                       [schema, table, column]).fetchone()[0] > 0


def keys_in_data(con) -> dict[str, list[str]]:
    """Fingerprint -> the deliveries whose stored rows were pseudonymised with that key."""
    if not _has_column(con, "audit", "deliveries", "key_fingerprint"):
        return {}
    out: dict[str, list[str]] = {}
    for fingerprint, delivery_id in con.execute(
            f"SELECT key_fingerprint, delivery_id FROM audit.deliveries WHERE key_fingerprint IS NOT NULL "
            f"AND status IN {HOLDS_ROWS} ORDER BY delivery_id").fetchall():
        out.setdefault(fingerprint, []).append(delivery_id)
    return out


@dataclass(frozen=True)
class KeyCheck:
    fingerprint: str
    others: dict[str, list[str]]   # other fingerprints in the data -> their deliveries (to re-read)

    @property
    def reread(self) -> frozenset[str]:
        return frozenset(d for ids in self.others.values() for d in ids)


def check_key(con, export_root: Path, fingerprint: str, rekey: bool, work_db: Path | str = "work.duckdb") -> KeyCheck:
    """Raise KeyProblem when this key must not touch the data; what a rekey re-reads otherwise."""
    others = {f: ids for f, ids in keys_in_data(con).items() if f != fingerprint}
    if not others:
        return KeyCheck(fingerprint, {})
    held = "; ".join(f"fingerprint {describe_fingerprint(f)} for {len(ids)} deliver{'y' if len(ids) == 1 else 'ies'}"
                     for f, ids in sorted(others.items()))
    if not rekey:
        raise KeyProblem(
            f"ROM_PSEUDONYM_KEY is not the key the data in {work_db} was pseudonymised with ({held}; this "
            f"run's key: fingerprint {describe_fingerprint(fingerprint)}). A run now would mix pseudonyms of "
            "two keys, so nothing was read or changed. If the key changed by mistake, set the previous key "
            "again. To rotate it deliberately, run `rom-pipeline rekey` (reads every delivery again from the "
            "export root under the new key, in one run, on record in audit.pseudonym_keys). To start afresh "
            "instead (e.g. after `./dev demo` on this data dir), move the data dir aside.")
    gone = sorted(d for ids in others.values() for d in ids if not (export_root / d / "manifest.json").is_file())
    if gone:
        raise KeyProblem(
            f"cannot rotate the pseudonym key: {len(gone)} current deliver{'y is' if len(gone) == 1 else 'ies are'} "
            f"no longer under the export root {export_root} ({', '.join(gone[:5])}{', ...' if len(gone) > 5 else ''}), "
            "so their rows cannot be read again under the new key and would keep the old key's pseudonyms. "
            "Nothing was read or changed. Put the folders back (or mount the share) and run `rom-pipeline rekey` "
            "again, or keep the previous key.")
    return KeyCheck(fingerprint, others)


def preflight_key_problem(work_db: Path, export_root: Path, key: bytes, rekey: bool) -> str | None:
    """For `rom-pipeline run` before anything starts: the KeyProblem message, or None. Opens read-only.

    A work database that cannot be opened now (e.g. another run writes it) is checked again by the
    ingest step, which refuses the same way.
    """
    import duckdb

    from rom_pipeline.lib.pseudonym import key_fingerprint

    if not work_db.is_file():
        return None
    try:
        con = duckdb.connect(str(work_db), read_only=True)
    except duckdb.Error:
        return None
    try:
        check_key(con, export_root, key_fingerprint(key), rekey, work_db)
    except KeyProblem as exc:
        return str(exc)
    finally:
        con.close()
    return None


def last_published_fingerprint(con) -> str | None:
    if not _has_column(con, "audit", "runs", "key_fingerprint"):
        return None
    row = con.execute("SELECT key_fingerprint FROM audit.runs WHERE status = 'published' "
                      "ORDER BY run_seq DESC LIMIT 1").fetchone()
    return row[0] if row else None


def record_key_use(con, run_id: str | None, check: KeyCheck, log=print) -> None:
    """After ingest: adopt deliveries read before fingerprints were kept, record a first key or a rotation."""
    con.execute(DDL)
    adopted = [r[0] for r in con.execute(
        f"UPDATE audit.deliveries SET key_fingerprint = ? WHERE key_fingerprint IS NULL AND status IN {HOLDS_ROWS} "
        f"AND delivery_id <> 'reference' RETURNING delivery_id", [check.fingerprint]).fetchall()]
    events = []
    if adopted:
        log(f"{len(adopted)} deliveries were read before key fingerprints were kept: recorded as made with "
            f"this run's key (fingerprint {check.fingerprint})")
        events.append(("adopted", None, sorted(adopted)))
    if check.others:
        for previous, ids in sorted(check.others.items()):
            events.append(("rotation", previous, ids))
            log(f"pseudonym key rotated: {len(ids)} deliveries read again under fingerprint {check.fingerprint} "
                f"(were {describe_fingerprint(previous)})")
    elif not adopted and keys_in_data(con) and not con.execute("SELECT count(*) FROM audit.pseudonym_keys").fetchone()[0]:
        events.append(("first_use", None, None))
    if not events:
        return
    con.executemany("INSERT INTO audit.pseudonym_keys VALUES (now(), ?, ?, ?, ?, ?)",
                    [(run_id, event, check.fingerprint, previous, json.dumps(ids) if ids is not None else None)
                     for event, previous, ids in events])
