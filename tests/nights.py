"""Two nights of deliveries for the orchestration and audit-trail tests, and a pipeline that keeps its parameters.

Night 1: C001 and C002 deliver (same ids in both concerns). Night 2: only C001 delivers
again, with E2's post-score changed, E4's broken post-score fixed and a new episode E6,
so C001's figures at L1 change and C002's must not. min_n is lowered so that the small
units' figures are published (not suppressed) and can be compared.

Expected SCL90 percentage improvements at C001 L1 in 2025 (norm 118):
  night 1: E1 200->150 = 60.98, E2 198->158 = 50.00, E3 250->119 = 99.24, E4 no valid post
           (its 999 is quarantined): mean_improvement = 70.07 over n = 3
  night 2: E1 60.98, E2 198->130 = 85.00, E3 99.24, E4 160->140 = 47.62, E6 180->120 = 96.77:
           mean_improvement = 77.92 over n = 5
"""
from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
from conftest import TEST_KEY, WITHOUT_REPORTS, Pipeline, PipelineRun
from deliveries import LOCATIONS, THERAPISTS, episode, measurement, write_delivery

from rom_pipeline.definitions import build_definitions
from rom_pipeline.resources import PseudonymKey, Workspace

PARAMETERS = """
indicators:
  min_n:
    value: 1
  min_count_published:
    value: 1
"""

def improvement(pre: float, post: float, norm: float = 118) -> float:
    return (pre - post) / (pre - norm) * 100


NIGHT1_L1 = {"E1": improvement(200, 150), "E2": improvement(198, 158), "E3": improvement(250, 119)}
NIGHT2_L1 = {**NIGHT1_L1, "E2": improvement(198, 130), "E4": improvement(160, 140), "E6": improvement(180, 120)}
NIGHT1_L1_MEAN = sum(NIGHT1_L1.values()) / len(NIGHT1_L1)
NIGHT2_L1_MEAN = sum(NIGHT2_L1.values()) / len(NIGHT2_L1)


class NightlyPipeline(Pipeline):
    """The real nightly job with a parameters file, run tags and a settable Dagster instance."""

    def __init__(self, export_dir: Path, data_dir: Path, parameters: str = PARAMETERS, key: str = TEST_KEY):
        super().__init__(export_dir, data_dir, key)
        self.parameters_file = data_dir.parent / "parameters.yaml"
        self.parameters_file.write_text(parameters)

    @property
    def workspace(self) -> Workspace:
        return Workspace(data_dir=str(self.data_dir), export_dir=str(self.export_dir), threads=2,
                         memory_limit="2GB", parameters_file=str(self.parameters_file))

    def definitions(self) -> dg.Definitions:
        return build_definitions({"workspace": self.workspace, "pseudonym_key": PseudonymKey(key=self.key)})

    def run(self, raise_on_error: bool = False, tags: dict | None = None, with_reports: bool = False) -> PipelineRun:
        """The nightly job (without the reports, as in conftest, unless asked)."""
        defs = dg.Definitions.merge(self.definitions(), dg.Definitions(jobs=[WITHOUT_REPORTS]))
        job = "nightly" if with_reports else WITHOUT_REPORTS.name
        with dg.DagsterInstance.ephemeral() as instance:
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, raise_on_error=raise_on_error, tags=tags)
        return PipelineRun(result.success, result, self.workspace)


def materialization(run: PipelineRun, *key: str) -> dict:
    """The metadata of an asset's materialisation in a run, as plain values."""
    found = [e for e in run.result.get_asset_materialization_events()
             if e.asset_key == dg.AssetKey(list(key))]
    assert found, f"{'/'.join(key)} was not materialised"
    return {k: getattr(v, "value", v) for k, v in found[-1].materialization.metadata.items()}


def _concern(root: Path, concern: str, export_date: str, episodes: list[dict], measurements: list[dict]) -> Path:
    return write_delivery(root, concern, export_date, {
        "locations": LOCATIONS, "therapists": THERAPISTS, "episodes": episodes,
        "measurements": measurements, "item_responses": []})


def night1(root: Path) -> None:
    c001_episodes = [episode("E1", "a1"), episode("E2", "a2"), episode("E3", "a3"), episode("E4", "a4"),
                     episode("E5", "a5", location_id="L2", therapist_id="T2")]
    c001_measurements = [
        measurement("M1", "E1", "2025-01-10", 200), measurement("M2", "E1", "2025-04-10", 150),
        measurement("M3", "E2", "2025-01-10", 198), measurement("M4", "E2", "2025-04-10", 158),
        measurement("M5", "E3", "2025-01-10", 250), measurement("M6", "E3", "2025-04-10", 119),
        measurement("M7", "E4", "2025-01-10", 160), measurement("M8", "E4", "2025-04-10", 999),  # out of range
        measurement("M9", "E5", "2025-01-10", 140), measurement("M10", "E5", "2025-04-10", 160),
    ]
    _concern(root, "C001", "2025-06-30", c001_episodes, c001_measurements)
    c002_episodes = [episode("E1", "b1"), episode("E2", "b2", end_reason="dropout"),
                     episode("E3", "b3", location_id="L2", therapist_id="T2")]
    c002_measurements = [
        measurement("M1", "E1", "2025-01-10", 230), measurement("M2", "E1", "2025-04-10", 170),
        measurement("M3", "E2", "2025-01-10", 190), measurement("M4", "E2", "2025-04-10", 185),
        measurement("M5", "E3", "2025-01-10", 210), measurement("M6", "E3", "2025-04-10", 110),
    ]
    _concern(root, "C002", "2025-06-30", c002_episodes, c002_measurements)


def night2(root: Path) -> None:
    """C001 only: E2 improves further, E4's post-score is fixed, E6 is new."""
    c001_episodes = [episode("E1", "a1"), episode("E2", "a2"), episode("E3", "a3"), episode("E4", "a4"),
                     episode("E5", "a5", location_id="L2", therapist_id="T2"),
                     episode("E6", "a6", start="2025-02-01", end="2025-06-30")]
    c001_measurements = [
        measurement("M1", "E1", "2025-01-10", 200), measurement("M2", "E1", "2025-04-10", 150),
        measurement("M3", "E2", "2025-01-10", 198), measurement("M4", "E2", "2025-04-10", 130),
        measurement("M5", "E3", "2025-01-10", 250), measurement("M6", "E3", "2025-04-10", 119),
        measurement("M7", "E4", "2025-01-10", 160), measurement("M8", "E4", "2025-04-10", 140),
        measurement("M9", "E5", "2025-01-10", 140), measurement("M10", "E5", "2025-04-10", 160),
        measurement("M11", "E6", "2025-02-01", 180), measurement("M12", "E6", "2025-06-30", 120),
    ]
    _concern(root, "C001", "2025-07-31", c001_episodes, c001_measurements)


class TwoNights:
    """Night 1 and night 2 run once per test session (per xdist worker; the fixture ``two_nights`` is in
    tests/conftest.py); tests read them or work on copies."""

    def __init__(self, root: Path):
        self.root = root
        self.pipeline = NightlyPipeline(root / "exports", root / "data")
        night1(self.pipeline.export_dir)
        self.run1 = self.pipeline.run(with_reports=True)  # the whole job once: the lineage snapshot reads it
        assert self.run1.success
        self.night1_dir = root / "after_night1"
        self.snapshot(self.night1_dir)
        night2(self.pipeline.export_dir)
        self.run2 = self.pipeline.run()
        assert self.run2.success
        with self.run2.work() as con:
            self.run_ids = [r[0] for r in con.execute("SELECT run_id FROM audit.runs ORDER BY run_seq").fetchall()]

    def snapshot(self, target: Path) -> None:
        """Copy the export root and the data dir as they are now."""
        shutil.copytree(self.pipeline.export_dir, target / "exports")
        (target / "data").mkdir(parents=True)
        for name in ("work.duckdb", "warehouse.duckdb"):
            shutil.copy2(self.pipeline.data_dir / name, target / "data" / name)

    def copy(self, target: Path, after_night: int = 2) -> NightlyPipeline:
        """A pipeline on a private copy of the state after night 1 or 2 (with its own parameters file)."""
        if after_night == 1:
            shutil.copytree(self.night1_dir, target, dirs_exist_ok=True)
        else:
            self.snapshot(target)
        return NightlyPipeline(target / "exports", target / "data")
