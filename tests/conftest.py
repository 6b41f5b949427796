"""Shared fixtures: every test gets its own export root and data dir (its own DuckDB files)."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/deliveries.py and other test helpers

from rom_pipeline.definitions import build_definitions  # noqa: E402
from rom_pipeline.resources import PseudonymKey, Workspace  # noqa: E402

TEST_KEY = "test-key-0123456789abcdef"

# Reports are tested in tests/test_reports.py; elsewhere they would only add time (and a PDF per
# concern where Chromium is installed). Subprocesses (CLI tests) inherit this.
os.environ.setdefault("ROM_REPORTS_PDF", "0")
WITHOUT_REPORTS = dg.define_asset_job(
    "nightly_without_reports", selection=dg.AssetSelection.all() - dg.AssetSelection.groups("reports"),
    executor_def=dg.in_process_executor)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` (pyproject.toml): whole files, the longest first (tests/scheduling.py)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from scheduling import LongestFirstScheduling

    return LongestFirstScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Tell each worker whether to put the longest files first (a worker's own --dist is "no")."""
    node.workerinput["longest_first"] = node.config.getvalue("dist") == "loadfile"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """In each xdist worker: the longest files first, as the scheduler above hands them out."""
    if getattr(config, "workerinput", {}).get("longest_first"):
        from scheduling import longest_first

        items[:] = longest_first(items)


@dataclass
class PipelineRun:
    success: bool
    result: dg.ExecuteInProcessResult
    workspace: Workspace

    def warehouse(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.workspace.warehouse_path), read_only=True)

    def work(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.workspace.work_db_path), read_only=True)


class Pipeline:
    """Runs the real nightly job, in process, against real DuckDB files in a temp dir."""

    def __init__(self, export_dir: Path, data_dir: Path, key: str = TEST_KEY):
        self.export_dir, self.data_dir, self.key = export_dir, data_dir, key
        self.export_dir.mkdir(parents=True, exist_ok=True)

    @property
    def workspace(self) -> Workspace:
        return Workspace(data_dir=str(self.data_dir), export_dir=str(self.export_dir), threads=2,
                         memory_limit="2GB")

    def run(self, raise_on_error: bool = False, with_reports: bool = False) -> PipelineRun:
        defs = build_definitions({"workspace": self.workspace, "pseudonym_key": PseudonymKey(key=self.key)})
        if not with_reports:
            defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[WITHOUT_REPORTS]))
        with dg.DagsterInstance.ephemeral() as instance:
            result = defs.resolve_job_def("nightly" if with_reports else WITHOUT_REPORTS.name).execute_in_process(
                instance=instance, raise_on_error=raise_on_error)
        return PipelineRun(result.success, result, self.workspace)


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    return Pipeline(tmp_path / "exports", tmp_path / "data")


@pytest.fixture(scope="session")
def two_nights(tmp_path_factory):
    """Night 1 and night 2 of tests/nights.py, run once per session (per xdist worker) for every module.

    Defined here, not imported into each test module: a fixture imported into a module is that
    module's own fixture, so a session-scoped one would run again for every module that imports it.
    Tests only read it; a test that runs the pipeline further works on ``two_nights.copy(tmp_path)``.
    """
    from nights import TwoNights

    return TwoNights(tmp_path_factory.mktemp("two_nights"))
