"""Seeded fuzzing of deliveries (issue 10, item 8b): random damage to copies of one valid delivery.

Each damaged delivery is its own concern under one export root, so one run reads them all
and one delivery's bytes must never stop another concern's night. The damage is what a
broken copy, a wrong export setting or a hand edit leaves: flipped bytes, stray quotes,
delimiters and line breaks, NUL bytes, a row with bytes that are not UTF-8 (also in a row
with the wrong number of fields), a file re-encoded as latin-1 or UTF-16, very long
fields, a file cut short. Half of the manifests are recomputed (sha256 and row count as
the writer thinks it is), so the delivery verifies and its rows are read; the others keep
the clean delivery's checksums and are rejected as a whole.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from .writer import Draft

FILES = ["locations", "therapists", "episodes", "measurements", "item_responses"]


def _flip_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(out))
        out[i] ^= rng.randint(1, 255)
    return bytes(out), "flipped bytes"


def _insert(data: bytes, rng: random.Random, piece: bytes, times: int) -> bytes:
    out = data
    for _ in range(times):
        i = rng.randrange(len(out) + 1)
        out = out[:i] + piece + out[i:]
    return out


def _stray_quotes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    return _insert(data, rng, b'"', rng.randint(1, 3)), "stray quotes"


def _stray_delimiters(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    return _insert(data, rng, b";", rng.randint(1, 3)), "stray delimiters"


def _stray_line_breaks(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    return _insert(data, rng, rng.choice([b"\n", b"\r", b"\r\n"]), rng.randint(1, 2)), "stray line breaks"


def _nul_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    return _insert(data, rng, b"\x00", rng.randint(1, 3)), "NUL bytes"


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _malformed_latin1_row(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A data row with a latin-1 byte and one field too many: the case that stopped every night."""
    lines = _lines(data)
    if len(lines) < 3:
        return data + b"Z\xe9rich;x;\xe9\n", "malformed row with latin-1 bytes"
    i = rng.randrange(1, len(lines) - 1)
    lines[i] = lines[i] + b";Z\xfcrich \xe9\xe8"
    return b"\n".join(lines), "malformed row with latin-1 bytes"


def _latin1_row(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    lines = _lines(data)
    i = rng.randrange(1, max(len(lines) - 1, 2))
    if i < len(lines):
        lines[i] = lines[i].replace(b";", b"\xe9;", 1)
    return b"\n".join(lines), "latin-1 byte in a row"


def _whole_file_latin1(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    i = rng.randrange(1, max(len(lines) - 1, 2))
    if i < len(lines):
        lines[i] = lines[i].replace(";", "Ã©ü;", 1)
    return "\n".join(lines).encode("latin-1", "replace"), "file in latin-1"


def _utf16(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    return data.decode("utf-8", "replace").encode(rng.choice(["utf-16", "utf-16-le"])), "file in UTF-16"


def _long_field(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    lines = _lines(data)
    i = rng.randrange(1, max(len(lines) - 1, 2))
    size = rng.choice([70_000, 200_000, 1_500_000])
    if i < len(lines):
        cut = lines[i].find(b";")
        lines[i] = lines[i][:cut + 1] + b"x" * size + lines[i][cut + 1:] if cut >= 0 else lines[i] + b"x" * size
    return b"\n".join(lines), f"a {size:,}-byte field"


def _unclosed_long_quote(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    lines = _lines(data)
    i = rng.randrange(1, max(len(lines) - 1, 2))
    if i < len(lines):
        lines[i] = lines[i] + b';"' + b"y" * 300_000
    return b"\n".join(lines), "a long field whose quote never closes"


def _truncate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    return data[: rng.randrange(0, max(len(data), 1))], "cut short"


DAMAGE = [_flip_bytes, _stray_quotes, _stray_delimiters, _stray_line_breaks, _nul_bytes, _malformed_latin1_row,
          _latin1_row, _whole_file_latin1, _utf16, _long_field, _unclosed_long_quote, _truncate]


@dataclass(frozen=True)
class FuzzedDelivery:
    concern_id: str
    delivery_id: str
    damage: tuple[str, ...]       # "<file>: <what>" per damage applied
    manifest_recomputed: bool


def write_fuzzed(root: Path, seed: int, count: int) -> list[FuzzedDelivery]:
    """``count`` damaged copies of the clean delivery under ``root``, each its own concern; reproducible by seed."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        concern = f"FUZZ-{seed}-{n:02d}"
        folder = root / concern / "2025-06-30"
        Draft.clean(concern).write(folder)
        manifest_path = folder / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        damage = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            file = rng.choice(FILES)
            path = folder / f"{file}.csv"
            data, what = rng.choice(DAMAGE)(path.read_bytes(), rng)
            path.write_bytes(data)
            damage.append(f"{file}.csv: {what}")
        recompute = rng.random() < 0.5
        if recompute:
            for name, entry in manifest["files"].items():
                data = (folder / name).read_bytes()
                entry["sha256"] = hashlib.sha256(data).hexdigest()
                if rng.random() < 0.8:  # as a naive writer counts them: lines after the header
                    entry["rows"] = max(data.count(b"\n") - 1 + (0 if data.endswith(b"\n") else 1), 0)
            manifest_path.write_text(json.dumps(manifest, indent=2))
        out.append(FuzzedDelivery(concern, f"{concern}/2025-06-30", tuple(damage), recompute))
    return out
