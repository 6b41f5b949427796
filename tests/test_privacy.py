"""Secrets and privacy (issue 6): the pseudonym key, the warehouse encryption key and the raw client ids
never leave the pipeline; published figures are suppressed; therapist-level results stay out of the
shared warehouse; the warehouse can be encrypted at rest.

The scan runs two real nights with recognisable keys on a generated delivery with defects (so rows
are quarantined) plus a malformed episodes row: night 1 through `rom-pipeline run`, night 2 (a newer
delivery) through Dagster's own launcher (`dg launch --job nightly`) with a persistent DAGSTER_HOME,
so the event log, run storage and compute logs are on disk. Then every output is scanned: both
commands' stdout and stderr, every file under DAGSTER_HOME (SQLite tables searched with SQL, other
files as bytes), every file under ROM_DATA_DIR (work.duckdb and warehouse.duckdb searched with SQL in
every text column of every table, and as bytes; CSV exports; reports when present).
"""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from cli_runs import cli_command, cli_env, client_ids, connect_warehouse, generate, run_cli, table_names
from conftest import WITHOUT_REPORTS

from rom_pipeline.defs.publish.warehouse import can_write_encrypted
from rom_pipeline.lib.warehouse_spec import load_spec
from rom_pipeline.lib.pseudonym import DEMO_KEY, pseudonymise
from rom_pipeline.paths import PROJECT_DIR
from rom_pipeline.resources import Workspace

PSEUDONYM_KEY = "CANARY-pseudonym-key-7f3a9c1e5b2d"
ENCRYPTION_KEY = "CANARY-encryption-key-4e8d2a6c"
MALFORMED_CLIENT = "CL7777777"
STATS = {"files": 0, "duckdb_tables": 0, "duckdb_text_columns": 0, "sqlite_tables": 0}  # what the scans covered


# --- scanning ---------------------------------------------------------------------------------------


def _pattern(needles) -> re.Pattern:
    return re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)))


def scan_bytes(path: Path, pattern: re.Pattern) -> set[str]:
    return {m.decode("utf-8", "replace") for m in _as_bytes(pattern).findall(path.read_bytes())}


def _as_bytes(pattern: re.Pattern, _cache: dict = {}) -> re.Pattern:  # noqa: B006 - a deliberate cache
    if pattern.pattern not in _cache:
        _cache[pattern.pattern] = re.compile(pattern.pattern.encode())
    return _cache[pattern.pattern]


def scan_duckdb(path: Path, pattern: re.Pattern, encryption_key: str | None = None) -> dict[str, int]:
    """Rows per table.column whose text (any column with text in its type, cast to text) matches."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{path}' AS s (READ_ONLY)")
    except duckdb.Error:
        if not encryption_key:
            raise
        con.execute(f"ATTACH '{path}' AS s (READ_ONLY, ENCRYPTION_KEY '{encryption_key}')")
    hits, columns_scanned = {}, 0
    regex = pattern.pattern.replace("'", "''")
    for table in table_names(con, "s"):
        schema, name = table.split(".")
        text_columns = [c for c, t in con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 's' AND schema_name = ? "
            "AND table_name = ?", [schema, name]).fetchall() if "VARCHAR" in t or "JSON" in t]
        if not text_columns:
            continue
        columns_scanned += len(text_columns)
        STATS["duckdb_tables"] += 1
        STATS["duckdb_text_columns"] += len(text_columns)
        counts = con.execute("SELECT " + ", ".join(
            f"count(*) FILTER (WHERE regexp_matches(\"{c}\"::VARCHAR, '{regex}'))" for c in text_columns)
            + f" FROM s.{schema}.{name}").fetchone()
        hits.update({f"{table}.{c}": n for c, n in zip(text_columns, counts) if n})
    con.close()
    assert columns_scanned > 0
    return hits


def scan_sqlite(path: Path, pattern: re.Pattern) -> dict[str, int]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    hits = {}
    try:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            STATS["sqlite_tables"] += 1
            for row in con.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                    if isinstance(text, str) and pattern.search(text):
                        hits[table] = hits.get(table, 0) + 1
    finally:
        con.close()
    return hits


def scan_tree(root: Path, pattern: re.Pattern, encryption_key: str | None = None) -> dict[str, object]:
    """Every file under ``root``: DuckDB and SQLite files by SQL and as bytes, everything else as bytes."""
    found: dict[str, object] = {}
    for folder, _, files in os.walk(root):  # reports/ is a symlink into .reports/, walked there
        for name in files:
            path = Path(folder) / name
            STATS["files"] += 1
            relative = str(path.relative_to(root))
            head = path.read_bytes()[:16]
            if name.endswith(".duckdb") and not name.startswith("."):
                hits = scan_duckdb(path, pattern, encryption_key)
                if hits:
                    found[f"{relative} (SQL)"] = hits
            elif head.startswith(b"SQLite format 3"):
                hits = scan_sqlite(path, pattern)
                if hits:
                    found[f"{relative} (SQL)"] = hits
            matched = scan_bytes(path, pattern)
            if matched:
                found[relative] = sorted(matched)[:5]
    return found


# --- the scanned nights -----------------------------------------------------------------------------


def _append_malformed_episode(delivery: Path) -> None:
    """An episodes.csv row with one field too many, holding a raw client id (the path that withholds it)."""
    import hashlib
    import json

    path = delivery / "episodes.csv"
    path.write_bytes(path.read_bytes() + f"E999999;{MALFORMED_CLIENT};L01;T001;basic;other;gp;2025-01-01;;;3;40;female;extra\n".encode())
    manifest = json.loads((delivery / "manifest.json").read_text())
    manifest["files"]["episodes.csv"].update(sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                                             rows=manifest["files"]["episodes.csv"]["rows"] + 1)
    (delivery / "manifest.json").write_text(json.dumps(manifest, indent=2))


@contextmanager
def _dagster_home():
    """A persistent instance on memory-backed storage when there is one (SQLite commits are fsynced)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    home = Path(tempfile.mkdtemp(prefix="rom-dagster-home-", dir=base))
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("tiny") / "exports", concerns=1, episodes=30, seed=5,
                    extra_reference_concerns=1)


@pytest.fixture(scope="module")
def demo_run(tiny_export, tmp_path_factory):
    """`rom-pipeline run --demo` without a key, started in the background (it runs beside the scan's nights)."""
    data = tmp_path_factory.mktemp("demo") / "data"
    process = subprocess.Popen(cli_command("run", "--demo", "--no-reports"), env=cli_env(tiny_export, data, key=None),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield process, data
    if process.poll() is None:
        process.kill()
        process.communicate()


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, demo_run):
    root = tmp_path_factory.mktemp("privacy")
    exports = generate(root / "exports", episodes=120, seed=11, defect_rate=0.05)
    _append_malformed_episode(exports / "C001" / "2026-11-21")
    later = generate(root / "later", episodes=120, seed=11, defect_rate=0.05, export_date="2026-12-19")
    data = root / "data"
    # A set this small has fewer than the default 100 episodes outside a concern: let the case-mix
    # models fit (on at least 20), so that marts.casemix_adjusted has figures to scan.
    parameters = root / "parameters.yaml"
    parameters.write_text("benchmarks:\n  casemix_min_training_episodes:\n    value: 20\n")
    night1 = run_cli(cli_env(exports, data, key=PSEUDONYM_KEY, ROM_PARAMETERS=str(parameters)))
    assert night1.returncode == 0, night1.stdout + night1.stderr
    shutil.copytree(later / "C002" / "2026-12-19", exports / "C002" / "2026-12-19")
    with _dagster_home() as home:
        env = cli_env(exports, data, key=PSEUDONYM_KEY, DAGSTER_HOME=str(home), ROM_PARAMETERS=str(parameters))
        night2 = subprocess.run([str(Path(sys.executable).with_name("dg")), "launch", "--job", "nightly"],
                                cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300)
        assert night2.returncode == 0, night2.stdout[-3000:] + night2.stderr[-3000:]
        ids = client_ids(exports)
        assert MALFORMED_CLIENT in ids and len(ids) > 50
        outputs = {"rom-pipeline run stdout": night1.stdout, "rom-pipeline run stderr": night1.stderr,
                   "dg launch stdout": night2.stdout, "dg launch stderr": night2.stderr}
        secrets = _pattern([PSEUDONYM_KEY])
        raw_ids = _pattern(ids)
        result = {
            "root": root, "exports": exports, "data": data, "ids": ids, "outputs": outputs,
            "home_files": sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()),
            "key_in_home": scan_tree(home, secrets), "ids_in_home": scan_tree(home, raw_ids),
            "key_in_data": scan_tree(data, secrets), "ids_in_data": scan_tree(data, raw_ids),
            "key_in_outputs": {k: v for k, v in outputs.items() if secrets.search(v)},
            "ids_in_outputs": {k: sorted(set(raw_ids.findall(v)))[:5] for k, v in outputs.items() if raw_ids.search(v)},
            "dagster_log_lines": sum(v.count("\n") for v in outputs.values()),
        }
    reports = sorted(str(p.relative_to(data)) for p in (data / ".reports").rglob("*.html")) \
        if (data / ".reports").is_dir() else []
    print(f"\nprivacy scan (for the key, then for the ids): {len(ids)} raw client ids; {STATS['files'] // 2} files "
          f"({STATS['duckdb_tables'] // 2} DuckDB tables / {STATS['duckdb_text_columns'] // 2} text columns, "
          f"{STATS['sqlite_tables'] // 2} SQLite tables), {result['dagster_log_lines']} lines of output, "
          f"{len(result['home_files'])} files in DAGSTER_HOME, {len(reports)} report pages; "
          f"data dir: {sorted(p.name for p in data.iterdir())}")
    return result


def test_the_scan_finds_what_it_looks_for(scanned, tmp_path):
    """Positive controls: the same scanners find the ids in the deliveries and in a database that holds one."""
    ids = scanned["ids"]
    assert scan_tree(scanned["exports"], _pattern(ids))
    con = duckdb.connect(str(tmp_path / "leak.duckdb"))
    con.execute("CREATE SCHEMA s; CREATE TABLE s.t (note VARCHAR, n INTEGER)")
    con.execute("INSERT INTO s.t VALUES (?, 1)", [f"client {sorted(ids)[0]} said"])
    con.close()
    assert scan_duckdb(tmp_path / "leak.duckdb", _pattern(ids)) == {"s.t.note": 1}
    assert "dagster.yaml" in scanned["home_files"] and any(f.startswith("storage/") for f in scanned["home_files"])
    assert any(f.endswith(".db") for f in scanned["home_files"])  # the run's SQLite event log was scanned


def test_the_pseudonym_key_appears_in_no_output(scanned):
    assert scanned["dagster_log_lines"] > 200  # DEBUG logs of every event were scanned
    assert scanned["key_in_outputs"] == {}
    assert scanned["key_in_home"] == {}
    assert scanned["key_in_data"] == {}


def test_no_raw_client_id_appears_in_any_output(scanned):
    assert scanned["ids_in_outputs"] == {}
    assert scanned["ids_in_home"] == {}
    assert scanned["ids_in_data"] == {}


def test_client_ids_are_stored_as_keyed_pseudonyms(scanned):
    con = duckdb.connect(str(scanned["data"] / "work.duckdb"), read_only=True)
    stored = {r[0] for r in con.execute("SELECT client_pseudonym FROM staging.episodes").fetchall()}
    expected = {pseudonymise(i, PSEUDONYM_KEY.encode()) for i in scanned["ids"]}
    assert stored and stored <= expected
    # the malformed row is quarantined with its text withheld
    withheld = con.execute("SELECT raw_text FROM raw.rejected_rows WHERE file_name = 'episodes.csv'").fetchall()
    assert withheld and all("withheld" in r[0] for r in withheld)


def _published_with(con, column: str) -> list[str]:
    return [t for t in table_names(con) if column in
            [r[0] for r in con.execute(f"SELECT * FROM {t} LIMIT 0").description]]


def test_no_figure_on_fewer_than_min_n_episodes_and_no_count_below_5(scanned):
    con = connect_warehouse(scanned["data"] / "warehouse.duckdb")
    min_n = int(float(con.execute("SELECT value FROM config.parameters WHERE name = 'min_n'").fetchone()[0]))
    min_count = int(float(con.execute("SELECT value FROM config.parameters WHERE name = 'min_count_published'")
                          .fetchone()[0]))
    assert (min_n, min_count) == (10, 5)
    spec = {t.name: t for t in load_spec()}
    checked = 0
    for table in _published_with(con, "suppressed"):
        masked = [c.name for c in spec[table].columns if (c.publish_as or "").startswith("CASE WHEN suppressed")]
        assert masked, table
        suppressed = con.execute(f"SELECT count(*) FROM {table} WHERE suppressed").fetchone()[0]
        assert suppressed > 0, f"{table}: no suppressed row: the check would prove nothing"
        for column in masked:
            shown = con.execute(f"SELECT count(*) FROM {table} WHERE suppressed AND {column} IS NOT NULL").fetchone()[0]
            assert shown == 0, f"{table}.{column}: {shown} suppressed rows show a value"
        checked += 1
    assert checked >= 4  # indicators, breakdowns, internal benchmark, published_figures
    for table in ("marts.indicators", "marts.indicator_breakdowns", "marts.internal_benchmark",
                  "marts.casemix_adjusted"):
        small = con.execute(f"SELECT count(*) FROM {table} WHERE NOT suppressed AND (n IS NULL OR n < {min_n})").fetchone()[0]
        assert small == 0, f"{table}: {small} figures shown on fewer than {min_n} episodes"
    for table in _published_with(con, "n"):
        below = con.execute(f"SELECT count(*) FROM {table} WHERE n BETWEEN 1 AND {min_count - 1}").fetchone()[0]
        assert below == 0, f"{table}: {below} counts between 1 and {min_count - 1}"


def test_the_shared_warehouse_has_no_therapist_level_results(scanned):
    con = connect_warehouse(scanned["data"] / "warehouse.duckdb")
    with_level = _published_with(con, "level")
    assert "marts.indicators" in with_level
    for table in with_level:
        assert con.execute(f"SELECT count(*) FROM {table} WHERE level = 'therapist'").fetchone()[0] == 0, table
    for table in ("marts.episode_outcomes", "audit.figure_episodes", "marts.not_on_track"):
        assert con.execute(f"SELECT count(therapist_id) FROM {table}").fetchone()[0] == 0, table
    assert "marts.casemix_adjusted" in with_level
    work = duckdb.connect(str(scanned["data"] / "work.duckdb"), read_only=True)
    assert work.execute("SELECT count(*) FROM marts.indicators WHERE level = 'therapist'").fetchone()[0] > 0
    assert work.execute("SELECT count(*) FROM marts.casemix_adjusted WHERE level = 'therapist'").fetchone()[0] > 0
    # the caseload review (issue 12 part 5): therapist rows and the "all 100%" flag in the work database only
    assert "marts.caseload_review" in with_level
    assert con.execute("SELECT count(all_complete_at_100) FROM marts.caseload_review").fetchone()[0] == 0
    assert work.execute("SELECT count(all_complete_at_100) FROM marts.caseload_review "
                        "WHERE level = 'therapist'").fetchone()[0] > 0
    assert not (scanned["data"] / "csv" / "marts.caseload_review.csv").exists()  # analysts only
    csv = (scanned["data"] / "csv" / "marts.casemix_adjusted.csv").read_text()
    assert csv and ",therapist," not in csv  # the CSV export: no therapist row
    reports = scanned["data"] / "reports"
    if reports.exists():  # manager packages: therapist pages only there
        shared = [p for p in (reports / "shared").rglob("*") if "behandelaar" in p.name]
        assert not shared, shared


# --- the key and demo mode through the command line -------------------------------------------------


@pytest.mark.parametrize("key, message", [(None, "ROM_PSEUDONYM_KEY is not set"),
                                          ("too-short", "ROM_PSEUDONYM_KEY is shorter than 16")])
def test_without_a_proper_key_the_command_line_refuses_to_run(tiny_export, tmp_path, key, message):
    data = tmp_path / "data"
    result = run_cli(cli_env(tiny_export, data, key=key))
    assert result.returncode != 0
    assert message in result.stderr
    if key is None:
        assert "--demo" in result.stderr  # the message names the way out
    assert "NOT started" in result.stderr
    assert not data.exists()  # nothing was written


def test_demo_mode_runs_and_says_so_loudly(tiny_export, demo_run):
    process, data = demo_run
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "DEMO MODE" in stdout and "PUBLIC demo key" in stdout  # before the run (cli.py)
    assert "DEMO MODE" in stderr and "protect nothing" in stderr  # and after it (run.py)
    con = duckdb.connect(str(data / "work.duckdb"), read_only=True)
    stored = {r[0] for r in con.execute("SELECT client_pseudonym FROM staging.episodes").fetchall()}
    assert stored <= {pseudonymise(i, DEMO_KEY.encode()) for i in client_ids(tiny_export)}


# --- encryption at rest -----------------------------------------------------------------------------


def test_an_encryption_key_this_duckdb_cannot_honour_stops_the_run_before_it_starts(tiny_export, tmp_path):
    """DuckDB 2.0 writes encrypted files only with httpfs (OpenSSL); never an unencrypted file instead."""
    data = tmp_path / "data"
    result = run_cli(cli_env(tiny_export, data, key=PSEUDONYM_KEY, ROM_WAREHOUSE_ENCRYPTION_KEY=ENCRYPTION_KEY))
    output = result.stdout + result.stderr
    assert ENCRYPTION_KEY not in output and PSEUDONYM_KEY not in output
    if can_write_encrypted():  # httpfs installed: the run publishes an encrypted warehouse
        assert result.returncode == 0, output
        with pytest.raises(duckdb.Error, match="without a key"):
            duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
        return
    assert result.returncode != 0
    assert "ROM_WAREHOUSE_ENCRYPTION_KEY" in result.stderr and "httpfs" in result.stderr
    assert not data.exists()


class ForcedCryptoWorkspace(Workspace):
    """Test only: DuckDB's built-in (mbedtls) encryption, which DuckDB calls unsafe for production use
    (IV randomness), so that the encrypted publish runs here without the httpfs extension."""

    @contextmanager
    def connect(self):
        with super().connect() as con:
            con.execute("SET force_mbedtls_unsafe = true")
            yield con


def test_an_encrypted_manager_package_deployment(tiny_export, tmp_path, monkeypatch, capfd):
    """ROM_WAREHOUSE_ENCRYPTION_KEY + ROM_PUBLISH_THERAPIST_LEVEL=1 (a location manager's package), in process."""
    from rom_pipeline.definitions import build_definitions
    from rom_pipeline.defs.triggers import last_publish
    from rom_pipeline.resources import PseudonymKey
    from rom_pipeline.run import summarise

    monkeypatch.setenv("ROM_WAREHOUSE_ENCRYPTION_KEY", ENCRYPTION_KEY)
    monkeypatch.setenv("ROM_PUBLISH_THERAPIST_LEVEL", "1")
    data = tmp_path / "data"
    (data / "csv").mkdir(parents=True)
    (data / "csv" / "marts.indicators.csv").write_text("an earlier plain-text export\n")
    workspace = ForcedCryptoWorkspace(data_dir=str(data), export_dir=str(tiny_export))
    defs = build_definitions({"workspace": workspace, "pseudonym_key": PseudonymKey(key=PSEUDONYM_KEY)})
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[WITHOUT_REPORTS]))  # reports: tests/test_reports.py
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(WITHOUT_REPORTS.name).execute_in_process(instance=instance,
                                                                               raise_on_error=False)
    assert result.success
    warehouse = data / "warehouse.duckdb"
    # Not readable without the key, nor with a wrong one; readable with it.
    with pytest.raises(duckdb.Error, match="without a key"):
        duckdb.connect(str(warehouse), read_only=True)
    with pytest.raises(duckdb.Error, match="Wrong encryption key"):
        connect_warehouse(warehouse, "not-the-key-0123456789")
    con = connect_warehouse(warehouse, ENCRYPTION_KEY)
    assert con.execute("SELECT encrypted FROM duckdb_databases() WHERE database_name = 'w'").fetchone() == (True,)
    assert con.execute("SELECT count(*) FROM audit.deliveries").fetchone()[0] > 0
    # A manager package: therapist-level figures are there.
    assert con.execute("SELECT count(*) FROM marts.indicators WHERE level = 'therapist'").fetchone()[0] > 0
    # ... by month too: the deployment publishes them, so they are computed and recorded (lib/audience.py)
    for table in ("marts.indicators", "marts.internal_benchmark", "audit.published_figures"):
        assert con.execute(f"SELECT count(*) FROM {table} WHERE level = 'therapist' "
                           "AND period_type = 'month'").fetchone()[0] > 0, table
    assert con.execute("SELECT count(therapist_id) FROM marts.episode_outcomes").fetchone()[0] > 0
    # The bytes hold neither the key nor readable content.
    blob = warehouse.read_bytes()
    assert ENCRYPTION_KEY.encode() not in blob and b"marts" not in blob and b"mean_improvement" not in blob
    # The run summary, the schedule's last_publish and the CSV exports know the key.
    assert "deliveries:" in summarise(warehouse)
    assert last_publish(workspace).run_id == result.run_id
    assert not list((data / "csv").iterdir())  # no plain-text copy; the earlier one removed
    # Neither key is in any event, log line or file of the run.
    events = "\n".join(dg.serialize_value(e) for e in result.all_events)
    captured = capfd.readouterr()
    for text in (events, captured.out, captured.err):
        assert ENCRYPTION_KEY not in text and PSEUDONYM_KEY not in text
    assert scan_tree(data, _pattern([ENCRYPTION_KEY, PSEUDONYM_KEY]), ENCRYPTION_KEY) == {}
