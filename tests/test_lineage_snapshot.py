"""The asset graph as a reviewed file: any change to lineage is a diff of tests/snapshots/asset_graph.json.

Snapshots, per asset: group, kinds, owners, pool, whether it has a description and a
code_version, its upstream assets, its checks (and whether they block), the keys of its
definition metadata and of the metadata its first-night materialisation records, and the
column lineage it declares (column -> upstream asset.column). Plus the job, schedule and
sensor. Regenerate after an intended change and review the diff:

    ROM_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest -q tests/test_lineage_snapshot.py

In update mode the snapshot test writes the file and is skipped, saying so (it does not
compare the file with itself); the other tests here check the graph against literals
in both modes.
"""
import difflib
import json
import os
from pathlib import Path

import dagster as dg
import pytest

from rom_pipeline.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
UPDATE_ENV = "ROM_UPDATE_SNAPSHOTS"


def _lineage(value) -> dict:
    return {column: sorted(f"{dep.asset_key.to_user_string()}.{dep.column_name}" for dep in deps)
            for column, deps in sorted(value.deps_by_column.items())}


def asset_graph(run_result: dg.ExecuteInProcessResult | None) -> dict:
    graph = defs.resolve_asset_graph()
    materialized = {}
    if run_result is not None:
        for event in run_result.get_asset_materialization_events():
            materialized[event.asset_key] = event.materialization.metadata
    checks: dict[dg.AssetKey, list] = {}
    for check_key in graph.asset_check_keys:
        spec = graph.get_check_spec(check_key)
        checks.setdefault(check_key.asset_key, []).append(
            f"{check_key.name}{' (blocking)' if spec.blocking else ''}")
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        if not node.is_executable:
            continue
        metadata = materialized.get(key, {})
        entry = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "pools": sorted(p for p in node.pools if p),
            "has_description": bool(node.description),
            "has_code_version": bool(node.code_version),
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(checks.get(key, [])),
            "definition_metadata": sorted(node.metadata),
            "materialization_metadata": sorted(metadata),
        }
        if "dagster/column_lineage" in metadata:
            entry["column_lineage"] = _lineage(metadata["dagster/column_lineage"].value)
        assets[key.to_user_string()] = entry
    job = defs.resolve_job_def("nightly")
    return {
        "assets": assets,
        "jobs": {"nightly": {"executor": job.executor_def.name, "tags": dict(sorted(job.tags.items()))}},
        "schedules": {s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone,
                               "default_status": s.default_status.value, "job": s.job_name}
                      for s in defs.schedules},
        "sensors": {s.name: {"minimum_interval_seconds": s.minimum_interval_seconds,
                             "default_status": s.default_status.value, "job": s.job_name}
                    for s in defs.sensors},
    }


def test_asset_graph_matches_the_reviewed_snapshot(two_nights):
    current = json.dumps(asset_graph(two_nights.run1.result), indent=2, sort_keys=True) + "\n"
    expected = SNAPSHOT.read_text() if SNAPSHOT.is_file() else ""
    diff = "".join(difflib.unified_diff(expected.splitlines(True), current.splitlines(True),
                                        "tests/snapshots/asset_graph.json (reviewed)", "current definitions"))
    if os.environ.get(UPDATE_ENV):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current)
        changed = sum(1 for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))
        pytest.skip(f"{UPDATE_ENV} set: rewrote {SNAPSHOT.name} ({changed} line(s) changed), not compared; "
                    "review `git diff tests/snapshots/asset_graph.json` and commit it")
    assert expected, f"no snapshot yet: run with {UPDATE_ENV}=1 and commit {SNAPSHOT}"
    assert current == expected, (f"the asset graph changed; if intended, regenerate with {UPDATE_ENV}=1 and "
                                 f"commit the snapshot:\n{diff}")


def test_every_asset_carries_the_lineage_metadata(two_nights):
    """Groups by layer, descriptions, owners, kinds, code versions; tables record row count and schema."""
    graph = asset_graph(two_nights.run1.result)["assets"]
    for key, entry in graph.items():
        assert entry["group"] == key.split("/")[0], key
        assert entry["has_description"] and entry["owners"] and entry["kinds"] and entry["has_code_version"], key
        if "duckdb" in entry["kinds"] and key.split("/")[0] != "publish":
            assert {"dagster/row_count", "dagster/column_schema"} <= set(entry["materialization_metadata"]), key
        if "sql" in entry["kinds"] and key.split("/")[0] in ("staging", "outcomes", "marts"):
            assert "sql_file" in entry["definition_metadata"], key
    for published in ("marts/episode_outcomes", "marts/indicators"):
        lineage = graph[published]["column_lineage"]
        assert {"concern_id", "value"} & set(lineage), published
    assert graph["marts/indicators"]["column_lineage"]["value"] == ["marts/indicator_aggregates.value"]
    assert "staging/episodes.end_date" in graph["marts/episode_outcomes"]["column_lineage"]["end_date"]


def test_sql_model_deps_are_the_tables_their_sql_reads():
    """Derived from the SQL (rom_pipeline.lib.sqlfiles), not typed by hand: the drift of issue 9 is gone."""
    graph = asset_graph(None)["assets"]
    assert graph["marts/indicator_breakdowns"]["deps"] == ["marts/indicator_aggregates"]
    # indicator_aggregates reads the deliveries' export dates (is_complete_period): a dep no hand-written list had.
    assert graph["marts/indicator_aggregates"]["deps"] == [
        "audit/deliveries", "marts/episode_outcomes", "marts/indicator_cells"]
    assert graph["marts/indicator_cells"]["deps"] == ["marts/episode_outcomes", "outcomes/indicator_contributions"]
    assert graph["marts/concern_summary"]["deps"] == ["marts/concern_benchmark", "marts/concern_size_groups"]
    assert graph["staging/measurement_scores"]["deps"] == ["staging/measurement_scoring"]
    # The generated quarantine union reads every delivered file's rejects (schemas/), plus scoring.
    assert graph["audit/quarantine"]["deps"] == [
        "raw/measurements", "staging/annual_reports_rejects", "staging/episodes_rejects",
        "staging/item_responses_rejects", "staging/locations_rejects", "staging/measurement_scoring",
        "staging/measurements_rejects", "staging/quality_indicators_rejects", "staging/therapists_rejects"]
    # Measurements count as loaded once scored: reconciliation reads measurement_scores, not measurements.
    assert "staging/measurement_scores" in graph["audit/reconciliation"]["deps"]
    assert "staging/measurements" not in graph["audit/reconciliation"]["deps"]
