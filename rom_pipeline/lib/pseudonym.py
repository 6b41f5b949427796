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


def pseudonymise_array(values: pa.Array, key: bytes) -> pa.Array:
    """Pseudonymise a text column, keeping NULL as NULL."""
    return pa.array([None if v is None else pseudonymise(v, key) for v in values.to_pylist()],
                    type=pa.string())
