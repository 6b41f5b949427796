"""Keyed pseudonyms for client ids: HMAC-SHA256 under ROM_PSEUDONYM_KEY, as lower-case hex.

The same key gives the same pseudonym for the same client in every delivery
and every night, so clients can be followed over time without their id; without
the key a pseudonym cannot be turned back or recomputed from a guessed id.
"""
from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa

# Used only in the explicit demo mode (`rom-pipeline run --demo`): it is public,
# so pseudonyms made with it protect nothing.
DEMO_KEY = "rom-pipeline-demo-key-NOT-SECRET"
MIN_KEY_LENGTH = 16


class MissingKey(RuntimeError):
    pass


def check_key(key: str | None) -> bytes:
    if not key:
        raise MissingKey(
            "ROM_PSEUDONYM_KEY is not set: the pipeline will not store client data without a secret key. "
            "Set it (e.g. `export ROM_PSEUDONYM_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')`) "
            "or run the explicit demo mode (`rom-pipeline run --demo`) on sample data.")
    if len(key) < MIN_KEY_LENGTH:
        raise MissingKey(f"ROM_PSEUDONYM_KEY is shorter than {MIN_KEY_LENGTH} characters")
    return key.encode("utf-8")


# The key's fingerprint (issue 10, item 6): HMAC-SHA256 under the key of this fixed label, first 16 hex
# digits. It tells two keys apart (a chance of 2^-64 that two keys share one) and is stored with the data
# and in audit.runs; it is not the key and gives nothing towards it or towards any pseudonym: HMAC is a
# one-way keyed function, and the label is no client id. A salted hash of the key would do the same but
# needs a second primitive and a stored salt. 16 digits, so a fingerprint is never mistaken for a
# (64-digit) pseudonym.
FINGERPRINT_LABEL = b"rom-pipeline/pseudonym-key-fingerprint/v1"
FINGERPRINT_LENGTH = 16


def key_fingerprint(key: bytes) -> str:
    return hmac.new(key, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:FINGERPRINT_LENGTH]


DEMO_FINGERPRINT = key_fingerprint(DEMO_KEY.encode())


def describe_fingerprint(fingerprint: str) -> str:
    return f"{fingerprint} (the public demo key)" if fingerprint == DEMO_FINGERPRINT else fingerprint


def pseudonymise(value: str, key: bytes) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


# HMAC-SHA256 (RFC 2104) spelt out: H((K ^ opad) || H((K ^ ipad) || message)), K the key padded
# with zeros to SHA-256's 64-byte block (a longer key is hashed first). DuckDB has sha256 but no
# hmac; with the two padded keys as parameters, one expression pseudonymises a whole column inside
# the INSERT that stores it, vectorised, instead of a Python call per row.
SHA256_BLOCK = 64


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """(K ^ ipad, K ^ opad) of HMAC-SHA256 under ``key``."""
    block = hashlib.sha256(key).digest() if len(key) > SHA256_BLOCK else key
    block = block.ljust(SHA256_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def pseudonym_sql(column: str) -> str:
    """DuckDB expression of :func:`pseudonymise` of a text column (NULL stays NULL).

    It takes two bound parameters, :func:`pseudonym_parameters` (never spliced into the text:
    the pads give the key back). ``encode`` gives the text's UTF-8 bytes, as
    ``str.encode("utf-8")`` does; ``sha256`` gives lower-case hex, as ``hexdigest``.
    """
    return f"CASE WHEN {column} IS NOT NULL THEN sha256(?::BLOB || unhex(sha256(?::BLOB || encode({column})))) END"


def pseudonym_parameters(key: bytes) -> list[bytes]:
    """The parameters of :func:`pseudonym_sql`, in the order the expression takes them (outer pad first)."""
    inner, outer = hmac_pads(key)
    return [outer, inner]
