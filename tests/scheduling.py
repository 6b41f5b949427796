"""How the suite's test files are handed to the two xdist workers (`--dist loadfile`, see pyproject.toml).

xdist's own loadfile scheduler sends whole files (module fixtures are built once), in the order of
their number of tests, and gives a worker its next file while it still has two tests to go. Here the
wall time is set by a few files whose fixtures run the pipeline many times (tests/test_quiet_night.py
alone is about a third of a worker's share); started last, one of them keeps one worker busy long
after the other has run out of work. So this scheduler, still whole files per worker:

- keeps together, on one worker, the files that share a session fixture (``two_nights`` of
  tests/conftest.py and the command-line ``baseline``/``reader_night`` of tests/cli_runs.py): each is
  built once per worker that uses it, and once is enough;
- hands out the longest files (and that group) first, the short ones last, so both workers finish at
  about the same time (longest processing time first);
- gives a worker its next file only when it is at the last test of the current one.

COST is a rough measure (seconds of one worker on a quiet 2-core machine, from `--durations`); only
the order matters. A file not listed counts as short. When a file becomes long, add it here.
"""
from __future__ import annotations

from pathlib import PurePosixPath

from xdist.scheduler import LoadFileScheduling

# Files sharing a session-wide pipeline run (two_nights; baseline and reader_night): one work unit.
SHARED_NIGHTS = "shared-nights"
GROUPS = {name: SHARED_NIGHTS for name in (
    "test_audit_trail.py", "test_explain.py", "test_incremental.py", "test_lineage_snapshot.py", "test_triggers.py",
    "test_faults.py", "test_readers.py", "test_exports.py")}

COST = {
    SHARED_NIGHTS: 300,
    "test_quiet_night.py": 250,
    "test_ingest.py": 180,
    "test_ingest_trust.py": 120,
    "test_run_ops.py": 100,
    "test_privacy.py": 90,
    "test_casemix.py": 45,
    "test_seed001_report.py": 30,
    "test_reports.py": 30,
    "test_adherence_secondary.py": 25,
    "test_indicator_catalogue.py": 25,
    "test_bad_input_corpus.py": 20,
    "test_ingest_smoke.py": 20,
    "test_bench.py": 18,
    "test_fuzz_deliveries.py": 15,
    "test_feedback.py": 15,
    "test_generate.py": 12,
    "test_indicators.py": 12,
    "test_caseload.py": 12,
    "test_scoring.py": 10,
    "test_validation.py": 10,
    "test_improvement_property.py": 10,
}


def scope_of(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return GROUPS.get(PurePosixPath(module).name, module)


def cost_of(scope: str) -> float:
    return COST.get(PurePosixPath(scope).name, 1)


def longest_first(items: list) -> list:
    """The collected tests, longest files (and groups) first; a file's tests stay together, in order.

    Sorted in each worker's own collection (conftest's pytest_collection_modifyitems): the scheduler
    names tests by their index in it, so the order must come from there, the same in every worker.
    """
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        first.setdefault(scope_of(item.nodeid), i)
    return sorted(items, key=lambda item: (-cost_of(scope_of(item.nodeid)), first[scope_of(item.nodeid)]))


class LongestFirstScheduling(LoadFileScheduling):
    def __init__(self, config, log=None):
        super().__init__(config, log)
        # Keep the collection's order (longest_first); xdist would sort the files by number of tests.
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)

    def _reschedule(self, node) -> None:
        # xdist sends the next file when two tests are left; one is enough (a worker needs the next
        # test before it runs the last one), and the file then goes to whichever worker is free first.
        if not node.shutting_down and self.workqueue and self._pending_of(self.assigned_work[node]) > 1:
            return
        super()._reschedule(node)
