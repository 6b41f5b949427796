"""The 2 GB case of the bad-input corpus, kept out of the test suite: one very large item_responses.csv.

    .venv/bin/python tests/bad_input/big_file.py /tmp/rom_big            # ~2 GB, then one pipeline run
    .venv/bin/python tests/bad_input/big_file.py /tmp/rom_big --gb 0.01  # a quick try of the script itself

Writes one delivery (concern BIG) into ``<dir>/exports`` streaming, hashing each
file while it is written (never more than one measurement's rows in memory), then
runs the pipeline once as its own process (``rom-pipeline run``, like ``./dev bench``)
and prints the wall time, the peak RSS of that process and what was loaded. Every
tenth measurement has one blank item (prorated), every hundredth 10 blanks
(quarantined: too_many_missing_items), so the big file also exercises scoring.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path

ITEMS = 90
ITEM_ROW_BYTES = 13.5          # "M1234567;12;3\n" is 14 bytes, shorter ids less
MEASUREMENTS_PER_EPISODE = 2


class HashingWriter:
    """A file written in large chunks, hashed and counted as it goes."""

    def __init__(self, path: Path, header: str):
        self.path, self.rows = path, 0
        self.handle = open(path, "wb", buffering=8 << 20)
        self.digest = hashlib.sha256()
        self._write(header + "\n")

    def _write(self, text: str) -> None:
        data = text.encode()
        self.handle.write(data)
        self.digest.update(data)

    def rows_text(self, text: str, rows: int) -> None:
        self._write(text)
        self.rows += rows

    def close(self) -> dict:
        self.handle.close()
        return {"rows": self.rows, "sha256": self.digest.hexdigest()}


def generate(folder: Path, target_bytes: int) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    measurements = max(2, int(target_bytes / (ITEMS * ITEM_ROW_BYTES)))
    episodes = (measurements + MEASUREMENTS_PER_EPISODE - 1) // MEASUREMENTS_PER_EPISODE
    files = {}

    locations = HashingWriter(folder / "locations.csv", "location_id;location_name;region")
    locations.rows_text("".join(f"L{i};Locatie {i};regio {i % 4}\n" for i in range(1, 11)), 10)
    files["locations.csv"] = locations.close()

    therapists = HashingWriter(folder / "therapists.csv", "therapist_id;location_id;profession;is_trainee")
    therapists.rows_text("".join(f"T{i};L{1 + i % 10};psychologist;{int(i % 7 == 0)}\n" for i in range(1, 51)), 50)
    files["therapists.csv"] = therapists.close()

    start0 = dt.date(2024, 1, 1)
    ep = HashingWriter(folder / "episodes.csv", "episode_id;client_id;location_id;therapist_id;care_type;"
                       "diagnosis_group;referrer;start_date;end_date;end_reason;sessions_attended;age_at_start;sex")
    me = HashingWriter(folder / "measurements.csv",
                       "measurement_id;episode_id;instrument;administered_on;session_number;occasion;total_score")
    it = HashingWriter(folder / "item_responses.csv", "measurement_id;item;response")
    m = 0
    for e in range(1, episodes + 1):
        t = 1 + e % 50
        start = start0 + dt.timedelta(days=e % 500)
        end = start + dt.timedelta(days=90)
        ep.rows_text(f"E{e};client-{e % (episodes // 2 + 1)};L{1 + t % 10};T{t};basic;depression;gp;"
                     f"{start};{end};completed;12;{18 + e % 60};female\n", 1)
        for k, (on, occasion) in enumerate(((start, "intake"), (end, "discharge"))):
            m += 1
            if m > measurements:
                break
            me.rows_text(f"M{m};E{e};SCL90;{on};{k * 12};{occasion};\n", 1)
            blanks = 10 if m % 100 == 0 else 1 if m % 10 == 0 else 0
            mid = f"M{m}"
            it.rows_text("".join(f"{mid};{i};{'' if i > ITEMS - blanks else 1 + (m + i) % 5}\n"
                                 for i in range(1, ITEMS + 1)), ITEMS)
    files["episodes.csv"], files["measurements.csv"], files["item_responses.csv"] = ep.close(), me.close(), it.close()

    exported_at = "2026-11-21T23:05:00+01:00"
    (folder / "manifest.json").write_text(json.dumps({
        "contract_version": "1.0", "export_id": "BIG-2026-11-21", "concern_id": "BIG", "concern_name": "Big file",
        "source_system": "tests/bad_input/big_file.py", "exported_at": exported_at, "files": files}, indent=2))
    return files


def run_pipeline(exports: Path, data: Path) -> tuple[float, float, int, str]:
    env = {**os.environ, "ROM_EXPORT_DIR": str(exports), "ROM_DATA_DIR": str(data),
           "ROM_PSEUDONYM_KEY": secrets.token_hex(32)}
    env.pop("ROM_DEMO", None)
    command = [str(Path(sys.executable).parent / "rom-pipeline"), "run"]
    started = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024   # Linux: kB
    return elapsed, peak_mb, proc.returncode, proc.stdout[-3000:] + proc.stderr[-3000:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path, help="work directory: exports/ and data/ go here")
    parser.add_argument("--gb", type=float, default=2.0, help="size of item_responses.csv in GB (default 2)")
    parser.add_argument("--no-run", action="store_true", help="only generate")
    args = parser.parse_args(argv)

    exports, data = args.dir / "exports", args.dir / "data"
    folder = exports / "BIG" / "2026-11-21"
    started = time.monotonic()
    files = generate(folder, int(args.gb * 1e9))
    size = (folder / "item_responses.csv").stat().st_size
    print(f"generated in {time.monotonic() - started:.1f} s: item_responses.csv {size / 1e9:.2f} GB, "
          + ", ".join(f"{name} {entry['rows']:,} rows" for name, entry in files.items()))
    if args.no_run:
        return 0
    elapsed, peak_mb, code, output = run_pipeline(exports, data)
    print(f"pipeline run: exit {code}, {elapsed:.1f} s wall, peak RSS {peak_mb:.0f} MB")
    if code != 0:
        print(output)
        return code
    import duckdb

    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        print(con.execute("SELECT status, reason FROM audit.deliveries WHERE concern_id = 'BIG'").fetchall())
        for row in con.execute("SELECT file_name, rows_read, rows_loaded, rows_quarantined, reconciled "
                               "FROM audit.reconciliation WHERE concern_id = 'BIG' ORDER BY 1").fetchall():
            print("  ", row)
        print(con.execute("SELECT reason, count(*) FROM audit.quarantine WHERE concern_id = 'BIG' "
                          "GROUP BY ALL ORDER BY 1").fetchall())
    return 0


if __name__ == "__main__":
    sys.exit(main())
