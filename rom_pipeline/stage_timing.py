"""Time ingest, each validation step and each pandera check alone, on a work DuckDB file.

    ./dev python -m rom_pipeline.stage_timing EXPORT_DIR WORK_DB STAGE [--profile]

STAGE: ``ingest`` (into WORK_DB, then every concern pending, as a first night),
``validate:<file>``, ``check:<file>`` (the blocking pandera check), or ``all``.
Run one stage per process under ``/usr/bin/time -v`` for its own peak RSS and CPU seconds
(docs/benchmarks.md, "Ingest and validation"). ``--profile``: cProfile on CPU time (DuckDB's
threads included, charged to the Python frame that waits for them). The DuckDB bounds are the
pipeline's (``ROM_DUCKDB_MEMORY_LIMIT``, ``ROM_DUCKDB_THREADS``, ``ROM_DUCKDB_MAX_TEMP_SIZE``).
Not a test: a measuring tool for one machine.
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import duckdb

from rom_pipeline.config import apply_parameters, load_parameters
from rom_pipeline.resources import workspace_from_env

TIMING_KEY = b"stage-timing-key-not-secret-0123"


def _run(name: str, fn, profile: bool):
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.process_time)
        out = profiler.runcall(fn)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    else:
        out = fn()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    print(f"{name}: wall {time.perf_counter() - t0:.1f} s, cpu {cpu:.1f} s, "
          f"peak RSS so far {r1.ru_maxrss / 1024:.0f} MB -> {out}", flush=True)


def main(argv: list[str]) -> None:
    from rom_pipeline.defs.ingest.loader import ingest_deliveries, ingest_reference
    from rom_pipeline.defs.staging.checks import check_staging_table
    from rom_pipeline.defs.staging.validate import validate_file
    from rom_pipeline.lib.concern_scope import record_pending_concerns
    from schemas.contract import FILES
    from schemas.reference import REFERENCE_FILES

    args = [a for a in argv if a != "--profile"]
    if len(args) != 3:
        sys.exit(__doc__)
    export, db, stage = Path(args[0]), args[1], args[2]
    profile = "--profile" in argv
    workspace = workspace_from_env()
    config = {"memory_limit": workspace.memory_limit, "temp_directory": db + ".tmp",
              **({"threads": workspace.threads} if workspace.threads else {}),
              **({"max_temp_directory_size": workspace.max_temp_size} if workspace.max_temp_size else {})}
    con = duckdb.connect(db, config=config)
    apply_parameters(con, load_parameters())
    schemas = {**FILES, **REFERENCE_FILES}
    if stage in ("ingest", "all"):
        _run("ingest", lambda: (len(ingest_deliveries(con, export, TIMING_KEY, log=lambda m: None).loaded),
                                ingest_reference(con, export, log=lambda m: None)), profile)
        record_pending_concerns(con, None, "stage-timing", "stage-timing", force=True)
    for file, schema in schemas.items():
        if stage in ("all", f"validate:{file}"):
            _run(f"validate {file}", lambda schema=schema: validate_file(con, schema), profile)
    for file, schema in schemas.items():
        if stage in ("all", f"check:{file}"):
            _run(f"check {file}", lambda schema=schema: check_staging_table(con, schema)[1:], profile)
    con.close()


if __name__ == "__main__":
    main(sys.argv[1:])
