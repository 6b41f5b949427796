"""`rom-pipeline bench` (issue 11): its instruments and its baseline are honest.

- The process-tree sampler sees memory, CPU and temporary disk of a child and a grandchild whose
  amounts the test chooses.
- The baseline (rom_pipeline/bench/baseline.sql) is the pipeline's computation: on the same files its
  figures equal the ones a real pipeline run publishes.
- The re-delivery is a newer delivery of one concern, made by the generator byte for byte.
- The progress lines of `rom-pipeline run --verbose` become seconds and counts per stage.

No timed test: nothing here asserts how fast anything is.
"""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from rom_pipeline.bench.baseline import current_deliveries, run_baseline
from rom_pipeline.bench.sampling import measure
from rom_pipeline.bench.scenarios import stage_timings
from rom_pipeline.generate import generate_deliveries

MIB = 2**20

# A child that holds 200 MiB, forks a grandchild that holds 150 MiB more (both alive at once), writes
# a 40 MiB file into the temp folder and removes it again, and burns 0.6 CPU-s itself and 0.4 in
# the grandchild. Each state is held for a second, so a 0.2 s poll cannot miss it.
CHILD = textwrap.dedent("""
    import os, sys, time
    def burn(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass
    def hold(mib):
        block = bytearray(mib * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1            # touch every page: resident, not just reserved
        return block
    mine = hold(200)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        theirs = hold(150)
        burn(0.4)
        os.write(write, b"x")
        time.sleep(1.5)
        os._exit(0)
    os.read(read, 1)                # the grandchild holds its 150 MiB now
    time.sleep(1.0)
    os.waitpid(pid, 0)
    spill = os.path.join(sys.argv[1], "spill.bin")
    with open(spill, "wb") as f:
        f.write(b"\\0" * (40 * 2**20))
    time.sleep(1.0)
    os.remove(spill)
    burn(0.6)
""")


def test_the_sampler_sees_the_whole_process_tree(tmp_path):
    spill = tmp_path / "spill"
    spill.mkdir()
    m = measure([sys.executable, "-c", CHILD, str(spill)], temp_paths=[spill])
    assert m.returncode == 0, m.stderr
    # 350 MiB held by two processes at once, plus the interpreter (about 10-40 MiB). The forked
    # grandchild maps its parent's 200 MiB too (shared until written): the sum of RSS counts them
    # twice, the sum of PSS once.
    assert 350 * MIB <= m.peak_pss_bytes <= 420 * MIB
    assert 550 * MIB <= m.peak_rss_bytes <= 650 * MIB
    assert m.peak_processes == 2
    # the grandchild's CPU counts (its parent reaped it); interpreter start-up adds a little
    assert 1.0 <= m.cpu_s <= 2.5
    assert m.cpu_s == pytest.approx(m.user_s + m.system_s)
    # the spill file existed for a second: its peak is seen although it is gone at the end
    assert m.peak_temp_bytes == 40 * MIB
    assert not any(spill.iterdir())


def test_the_baseline_computes_the_figures_the_pipeline_publishes(tmp_path, pipeline):
    generate_deliveries(pipeline.export_dir, concerns=2, episodes=600, seed=11, extra_reference_concerns=2)
    run = pipeline.run()
    assert run.success
    con = run_baseline(pipeline.export_dir)
    con.execute(f"ATTACH '{run.workspace.work_db_path}' AS work (READ_ONLY)")
    con.execute(f"ATTACH '{run.workspace.warehouse_path}' AS published (READ_ONLY)")
    keys = "level, concern_id, unit_id, period_type, period, indicator"
    join = " AND ".join(f"b.{k} = p.{k}" for k in keys.split(", "))

    def compare(source: str) -> tuple:
        return con.execute(f"""
            SELECT count(*), count(b.indicator), count(p.indicator),
                   count(*) FILTER (WHERE b.n IS DISTINCT FROM p.n AND p.n IS NOT NULL),
                   max(abs(b.value - p.value)),
                   count(p.value),
                   count(*) FILTER (WHERE p.value IS NOT NULL AND b.value IS NULL)
            FROM indicators AS b
            FULL JOIN (SELECT * FROM {source} WHERE aggregation = 'episodes' AND level IN ('location', 'concern')
                       AND indicator IN (SELECT DISTINCT indicator FROM indicators)) AS p
              ON {join}""").fetchone()

    # the baseline's indicators are catalogue entries (the ten of issue 11's baseline; later entries,
    # e.g. issue 12's secondary outcomes, are not in it)
    baseline_indicators = {r[0] for r in con.execute("SELECT DISTINCT indicator FROM indicators").fetchall()}
    catalogue = {r[0] for r in con.execute("SELECT indicator FROM work.config.indicator_catalogue").fetchall()}
    assert len(baseline_indicators) == 10 and baseline_indicators <= catalogue

    # every figure of the work database (suppressed ones still have their value there) ...
    rows, in_baseline, in_pipeline, n_differ, max_difference, values, missing = compare("work.marts.indicators")
    assert rows == in_baseline == in_pipeline > 1000
    assert n_differ == 0 and missing == 0
    assert max_difference <= 1e-9
    # ... and every figure published in the warehouse (n below 5 and suppressed values blanked)
    rows, in_baseline, in_pipeline, n_differ, max_difference, values, missing = compare("published.marts.indicators")
    assert rows == in_baseline == in_pipeline and n_differ == 0 and missing == 0
    assert values > 100 and max_difference <= 1e-9
    # the headline: per concern and year, the complete episodes and their mean improvement
    headline = con.execute("""
        SELECT b.concern_id, b.period, b.n, b.value, p.n, p.value
        FROM indicators AS b
        JOIN published.marts.indicators AS p
          ON p.level = 'concern' AND p.aggregation = 'episodes' AND p.concern_id = b.concern_id
         AND p.period_type = 'year' AND p.period = b.period AND p.indicator = b.indicator
        WHERE b.level = 'concern' AND b.period_type = 'year' AND b.indicator = 'mean_improvement'
          AND p.value IS NOT NULL""").fetchall()
    assert len(headline) >= 4
    for concern, period, n, value, published_n, published_value in headline:
        assert n == published_n and abs(value - published_value) <= 1e-9, (concern, period)


def test_the_redelivery_is_the_generators_own_delivery_of_a_later_night(tmp_path):
    full = generate_deliveries(tmp_path / "full", concerns=2, episodes=300, seed=4, export_date="2026-11-22")
    only = generate_deliveries(tmp_path / "only", concerns=2, episodes=300, seed=4, export_date="2026-11-22",
                               only_concerns=frozenset({"C001"}))
    assert [d["concern_id"] for d in only["concerns"]] == ["C001"]
    assert not (tmp_path / "only" / "C002").exists()
    for name in ("manifest.json", "episodes.csv", "measurements.csv", "item_responses.csv"):
        assert (tmp_path / "only/C001/2026-11-22" / name).read_bytes() == \
            (tmp_path / "full/C001/2026-11-22" / name).read_bytes()
    earlier = generate_deliveries(tmp_path / "root", concerns=2, episodes=300, seed=4, export_date="2026-11-21")
    generate_deliveries(tmp_path / "root", concerns=2, episodes=300, seed=4, export_date="2026-11-22",
                        only_concerns=frozenset({"C001"}))
    newer = json.loads((tmp_path / "root/C001/2026-11-22/manifest.json").read_text())
    older = json.loads((tmp_path / "root/C001/2026-11-21/manifest.json").read_text())
    assert newer["exported_at"] > older["exported_at"] and newer["export_id"] != older["export_id"]
    assert earlier["concerns"][0]["files"]["episodes.csv"]["sha256"] != newer["files"]["episodes.csv"]["sha256"]
    # the baseline, like the pipeline, takes each concern's newest delivery
    assert current_deliveries(tmp_path / "root") == {"C001": tmp_path / "root/C001/2026-11-22",
                                                     "C002": tmp_path / "root/C002/2026-11-21"}
    with pytest.raises(ValueError, match="C009"):
        generate_deliveries(tmp_path / "x", concerns=2, episodes=10, seed=4, only_concerns=frozenset({"C009"}))


def test_progress_lines_become_seconds_and_counts_per_stage():
    output = textwrap.dedent("""\
        rom-pipeline run: deliveries from /x
        [    2.0s] done   audit__runs
        [   12.0s] done   ingest_deliveries
        [   12.0s] ingest       deliveries: 10 loaded, 0 unchanged, 0 rejected; 1,000,000 rows in raw; full refresh, 10 concern(s) to recompute
        [   15.0s] done   validate_episodes
        [   15.5s] done   marts__concern_size_groups
        [   20.0s] done   validate_item_responses
        [   20.0s] validate     16 tables, 2,000,000 rows; 8 checks passed
        [   21.0s] validate: something running for 11 s (3 of 5 steps done)
        [   30.0s] done   record_audit_trail
        [   30.0s] audit trail  figures: 600 new, 30 changed, 10 removed; 3 checks passed
        [   34.0s] done   publish__warehouse
        [   34.0s] publish      warehouse 14.5 MB, 29 tables; 8 CSV files (99,701 rows)
        """)
    stages = {"audit__runs": "audit trail", "ingest_deliveries": "ingest", "validate_episodes": "validate",
              "marts__concern_size_groups": "indicators", "validate_item_responses": "validate",
              "record_audit_trail": "audit trail", "publish__warehouse": "publish"}
    labels = ["ingest", "validate", "outcomes", "indicators", "audit trail", "publish", "reports"]
    got = {s.stage: (round(s.seconds, 1), s.count, s.unit) for s in stage_timings(output, stages, labels)}
    assert got == {"ingest": (10.0, 1_000_000, "rows"), "validate": (7.5, 2_000_000, "rows"),
                   "indicators": (0.5, None, "rows"), "audit trail": (12.0, 640, "figures"),
                   "publish": (4.0, 99_701, "CSV rows")}
