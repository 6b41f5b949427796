"""Issue 11: client ids are pseudonymised by DuckDB in the INSERT that stores them (HMAC-SHA256 in SQL).

The pseudonyms must stay what they were (same key, same id, same pseudonym), or every client
would look new after the change: known answers of HMAC-SHA256 (RFC 4231) and a pseudonym
pinned from before the change (Python's hmac, the function that made the stored pseudonyms).
"""
from __future__ import annotations

import duckdb
import pytest

from deliveries import LOCATIONS, THERAPISTS, episode, write_delivery
from rom_pipeline.defs.ingest.loader import ingest_deliveries
from rom_pipeline.lib.pseudonym import pseudonym_parameters, pseudonym_sql, pseudonymise

# RFC 4231, test cases 2 (a key shorter than the block), 6 (a key longer than the block: hashed first)
# and 7 (longer key, longer message); the HMAC-SHA256 line of each.
RFC4231 = [
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than block-size data. "
                    b"The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]
# Made before the change by rom_pipeline.lib.pseudonym.pseudonymise (hmac.new(key, id, sha256)).
PINNED_KEY = "test-pseudonym-key-0123456789"
PINNED = {"CLIENT-000042": "7c85ac0d74acb3610be5e34d9975a0e5e92a3bee8807e7434f02b93048d7da0f"}


def sql_pseudonyms(key: bytes, values: list[str | None]) -> list[str | None]:
    con = duckdb.connect()
    return [r[0] for r in con.execute(f"SELECT {pseudonym_sql('v')} FROM unnest(?) WITH ORDINALITY AS t(v, i) "
                                      "ORDER BY i", [*pseudonym_parameters(key), values]).fetchall()]


@pytest.mark.parametrize("key, message, expected", RFC4231)
def test_the_sql_expression_is_hmac_sha256(key, message, expected):
    assert sql_pseudonyms(key, [message.decode()]) == [expected]


def test_pseudonyms_are_the_same_as_before_the_change():
    key = PINNED_KEY.encode()
    assert sql_pseudonyms(key, [*PINNED, None]) == [*PINNED.values(), None]
    assert {i: pseudonymise(i, key) for i in PINNED} == PINNED


def test_text_that_is_not_ascii_is_hashed_as_utf8():
    key = PINNED_KEY.encode()
    ids = ["cliënt-ü-€-7", "客户-1"]
    assert sql_pseudonyms(key, ids) == [pseudonymise(i, key) for i in ids]


def test_a_loaded_delivery_stores_the_pinned_pseudonym_and_never_the_id(tmp_path):
    root = tmp_path / "export"
    write_delivery(root, "C1", "2025-06-30", {"locations": LOCATIONS, "therapists": THERAPISTS,
                                              "episodes": [episode("E1", "CLIENT-000042")],
                                              "measurements": []})
    con = duckdb.connect(str(tmp_path / "work.duckdb"))
    summary = ingest_deliveries(con, root, PINNED_KEY.encode(), log=lambda message: None)
    assert summary.loaded == ["C1/2025-06-30"]
    assert con.execute("SELECT episode_id, client_id FROM raw.episodes").fetchall() == [
        ("E1", PINNED["CLIENT-000042"])]
