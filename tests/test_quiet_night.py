"""Nights after the first (issue 11): a night with nothing new does almost nothing and says so; every
change a published figure depends on still makes a real run; a one-concern night patches the published
file instead of building it anew, and the patched file is the file a fresh publish would make.

One data dir lives through a sequence of real `rom-pipeline run` processes (tests/cli_runs.py) on
three generated concerns (totals only), each started after what an operator would see change:

 1 first night                                   published (full)
 2 the same again                                QUIET: nothing recomputed, the warehouse file untouched;
                                                 then, in-process on these files, the verdict after a code
                                                 change, other parameters, a full rebuild asked for, a key
                                                 rotation, a new manifest, another publish setting
 3 the same, with reports                        quiet, but the reports were never built: they catch up
 4 the same, with reports                        quiet, nothing to catch up
 5 --full-rebuild, killed before the swap        exit 137, nothing published
 6 C001 delivers again (one field changed)       real run (run 5 did not finish), incremental: the
                                                 warehouse is patched, and equals a fresh publish
 7 C003 moved away                               real run: C003 missing
 8 the same again                                real run: C003 missing at the last publish
 9 a C002 delivery with a wrong checksum         real run: rejected
10 the same again                                real run: the rejected delivery is looked at again
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from cli_runs import cli_env, generate, rewrite_field, run_cli, sha256_file

from rom_pipeline import quiet
from rom_pipeline.lib import fingerprint

QUIET = "QUIET NIGHT: nothing new since run"


@dataclass
class Night:
    args: tuple
    returncode: int
    stdout: str
    stderr: str
    warehouse_sha: str
    warehouse_inode: int
    step_log: str = ""


@dataclass
class History:
    data: Path
    export: Path
    nights: dict[int, Night] = field(default_factory=dict)
    csv_mtimes: dict[int, dict] = field(default_factory=dict)
    verdicts: dict[str, quiet.Verdict] = field(default_factory=dict)
    patched_vs_fresh: dict = field(default_factory=dict)

    def work_runs(self) -> list[tuple]:
        con = duckdb.connect(str(self.data / "work.duckdb"), read_only=True)
        try:
            return con.execute("SELECT run_seq, status, refresh, figures_new, figures_changed, figures_removed "
                               "FROM audit.runs ORDER BY run_seq").fetchall()
        finally:
            con.close()


def _csv_mtimes(data: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in sorted((data / "csv").glob("*.csv"))}


def _step_log(stdout: str) -> str:
    for line in stdout.splitlines():
        if ", step log " in line:
            path = Path(line.rsplit(", step log ", 1)[1].strip())
            return path.read_text() if path.is_file() else ""
    return ""


def _redeliver(export: Path, concern: str, old: str, new: str) -> Path:
    """A newer delivery of ``concern``: a copy with a later export date and a new export id, one field changed."""
    src, dst = export / concern / old, export / concern / new
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["export_id"] = f"{concern}-{new}"
    manifest["exported_at"] = f"{new}T23:05:00+01:00"
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2))
    episode = next(iter((dst / "episodes.csv").read_text().splitlines()[1:])).split(";")[0]
    rewrite_field(dst, "episodes.csv", "episode_id", episode, "sessions_attended", "77")
    return dst


def _table_digests(path: Path) -> dict[str, tuple]:
    """Per table of a published file: rows (order-independent digest), row count, table and column comments."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{path}' AS w (READ_ONLY)")
        out = {}
        for schema, table, comment in con.execute(
                "SELECT schema_name, table_name, comment FROM duckdb_tables() WHERE database_name = 'w' "
                "ORDER BY ALL").fetchall():
            digest, n = con.execute(
                f"SELECT sum(hash(to_json(t)::VARCHAR))::VARCHAR, count(*) FROM w.{schema}.{table} AS t").fetchone()
            columns = con.execute("SELECT column_name, data_type, comment FROM duckdb_columns() WHERE database_name = 'w' "
                                  "AND schema_name = ? AND table_name = ? ORDER BY column_index",
                                  [schema, table]).fetchall()
            out[f"{schema}.{table}"] = (digest, n, comment, tuple(columns))
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> History:
    root = tmp_path_factory.mktemp("quiet")
    export = generate(root / "export", concerns=3, episodes=150, seed=11)
    data = root / "data"
    h = History(data, export)
    env = cli_env(export, data)

    def night(n: int, *args: str, **extra: str) -> Night:
        result = run_cli({**env, **extra}, *(args or ("run", "--no-reports")))
        wh = data / "warehouse.duckdb"
        h.nights[n] = Night(args, result.returncode, result.stdout, result.stderr,
                            sha256_file(wh) if wh.is_file() else "", wh.stat().st_ino if wh.is_file() else 0,
                            _step_log(result.stdout))
        h.csv_mtimes[n] = _csv_mtimes(data)
        return h.nights[n]

    first = night(1)
    assert first.returncode == 0, first.stdout + first.stderr
    night(2)
    # in-process, on the files of a quiet night: the verdict as it is, and after each kind of change
    from rom_pipeline.config import load_parameters

    params_sha = load_parameters().sha256

    def verdict(**kwargs) -> quiet.Verdict:
        return quiet.verdict(export, data, kwargs.pop("params", params_sha), reports=False, **kwargs)

    h.verdicts["as is"] = verdict()
    real_source = fingerprint.source_sha256
    try:
        fingerprint.source_sha256 = lambda: "0" * 64  # as if a source file had changed
        h.verdicts["code"] = verdict()
    finally:
        fingerprint.source_sha256 = real_source
    h.verdicts["parameters"] = verdict(params="1" * 64)
    h.verdicts["full rebuild"] = verdict(full_rebuild=True)
    h.verdicts["rekey"] = verdict(rekey=True)
    os.environ["ROM_PUBLISH_THERAPIST_LEVEL"] = "1"
    try:
        h.verdicts["publish settings"] = verdict()
    finally:
        del os.environ["ROM_PUBLISH_THERAPIST_LEVEL"]
    extra = _redeliver(export, "C002", "2026-11-21", "2026-11-22")
    h.verdicts["new manifest"] = verdict()
    shutil.rmtree(extra)
    h.verdicts["as is, again"] = verdict()
    night(3, "run")
    night(4, "run")
    night(5, "run", "--no-reports", "--full-rebuild", ROM_FAULT_INJECT="before_swap")
    _redeliver(export, "C001", "2026-11-21", "2026-11-28")
    night(6)
    # the patched file against a file built anew from the same work database
    from rom_pipeline.defs.publish.warehouse import publish_warehouse
    from rom_pipeline.lib.warehouse_spec import load_spec
    from rom_pipeline.resources import Workspace

    fresh = root / "fresh" / "warehouse.duckdb"
    fresh.parent.mkdir()
    with Workspace(data_dir=str(data), export_dir=str(export)).connect() as con:
        publish_warehouse(con, fresh, load_spec())
    h.patched_vs_fresh = {"patched": _table_digests(data / "warehouse.duckdb"), "fresh": _table_digests(fresh)}
    shutil.move(export / "C003", root / "C003-moved-away")
    night(7)
    night(8)
    bad = _redeliver(export, "C002", "2026-11-21", "2026-11-29")
    (bad / "locations.csv").write_text((bad / "locations.csv").read_text() + "\n")  # manifest sha256 now wrong
    night(9)
    night(10)
    return h


def test_a_night_with_nothing_new_records_itself_and_touches_nothing(history):
    first, second = history.nights[1], history.nights[2]
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert QUIET in second.stdout and "running the nightly job" not in second.stdout
    assert "since the last run: nothing changed" in second.stdout
    # the published file is the same file, byte for byte; the CSV exports were not written again
    assert (second.warehouse_sha, second.warehouse_inode) == (first.warehouse_sha, first.warehouse_inode)
    assert history.csv_mtimes[2] == history.csv_mtimes[1] and history.csv_mtimes[1]
    runs = history.work_runs()
    assert runs[0][:3] == (1, "published", "full")
    assert runs[1] == (2, "unchanged", "none", 0, 0, 0)
    for name in ("as is", "as is, again"):
        assert history.verdicts[name].quiet and history.verdicts[name].catch_up == (), name


def test_every_change_a_figure_depends_on_is_real_work(history):
    expected = {
        "code": "the code changed since the last publish",
        "parameters": "the parameters changed since the last publish",
        "full rebuild": "a full rebuild was asked for",
        "rekey": "the pseudonym key is being rotated",
        "publish settings": "the reference files or the publish settings changed since the last publish",
        "new manifest": "a manifest.json was added, changed or removed since the last publish",
    }
    got = {name: (history.verdicts[name].quiet, history.verdicts[name].reason) for name in expected}
    assert got == {name: (False, reason) for name, reason in expected.items()}


def test_a_quiet_night_catches_up_reports_the_publishing_run_did_not_build(history):
    third, fourth = history.nights[3], history.nights[4]
    assert third.returncode == 0, third.stderr
    assert QUIET in third.stdout and "catching up   reports" in third.stdout
    assert "reports index" in third.stdout
    assert third.warehouse_sha == history.nights[1].warehouse_sha
    assert fourth.returncode == 0, fourth.stderr
    assert QUIET in fourth.stdout and "catching up" not in fourth.stdout
    assert quiet.reports_built_from(history.data)["run_id"] == history.nights[2].stdout.split(
        "nothing new since run ")[1].split(" ")[0]


def test_a_run_after_one_that_did_not_finish_is_real_work_and_publishes_the_quiet_nights(history):
    killed, after = history.nights[5], history.nights[6]
    assert killed.returncode == 137
    assert killed.warehouse_sha == history.nights[1].warehouse_sha
    assert after.returncode == 0, after.stderr
    assert "did not finish (running): its work is done again: running the nightly job" in after.stdout
    assert after.warehouse_inode != killed.warehouse_inode
    con = duckdb.connect()
    con.execute(f"ATTACH '{history.data / 'warehouse.duckdb'}' AS w (READ_ONLY)")
    statuses = dict(con.execute("SELECT run_seq, status FROM w.audit.runs").fetchall())
    assert [statuses.get(s) for s in range(1, 7)] == ["published", "unchanged", "unchanged", "unchanged",
                                                      "incomplete", "published"]


def test_one_concern_redelivering_patches_the_warehouse_to_what_a_fresh_publish_makes(history):
    sixth = history.nights[6]
    assert "patched: 1 concern(s) replaced" in sixth.step_log
    patched, fresh = history.patched_vs_fresh["patched"], history.patched_vs_fresh["fresh"]
    assert sorted(patched) == sorted(fresh)
    assert [t for t in fresh if patched[t] != fresh[t]] == []
    assert patched["staging.episodes"][1] > 0
    con = duckdb.connect()
    con.execute(f"ATTACH '{history.data / 'warehouse.duckdb'}' AS w (READ_ONLY)")
    # night 6's changed field is published (night 7 moved C003 away, C001 stays)
    assert con.execute("SELECT count(*) FROM w.staging.episodes WHERE sessions_attended = 77").fetchone()[0] == 1


def test_a_missing_concern_is_real_work_every_night(history):
    seventh, eighth = history.nights[7], history.nights[8]
    assert seventh.returncode == 0 and eighth.returncode == 0, (seventh.stderr, eighth.stderr)
    assert "!! MISSING from the export root: 1 concern(s) C003" in seventh.stdout
    assert ("concern(s) C003 missing from the export root at the last publish: running the nightly job"
            in eighth.stdout)
    assert "!! MISSING from the export root: 1 concern(s) C003" in eighth.stdout


def test_a_rejected_delivery_still_there_is_real_work(history):
    ninth, tenth = history.nights[9], history.nights[10]
    assert ninth.returncode == 0 and tenth.returncode == 0, (ninth.stderr, tenth.stderr)
    assert "1 rejected (C002/2026-11-29)" in ninth.stdout
    assert ("rejected delivery C002/2026-11-29 still under the export root: ingest checks them again: "
            "running the nightly job") in tenth.stdout
    assert [r[1] for r in history.work_runs()].count("unchanged") == 3
