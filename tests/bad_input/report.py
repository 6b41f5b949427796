"""Run the bad-input corpus once and print the table of docs/reliability.md (expected and observed outcome).

    cd tests && ../.venv/bin/python -m bad_input.report > /tmp/corpus.md
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import dagster as dg
import duckdb

from rom_pipeline.definitions import build_definitions
from rom_pipeline.resources import PseudonymKey, Workspace

from .cases import CASES, Case, write_corpus


def _expected(case: Case) -> str:
    if case.status == "rejected":
        return "rejected: reason names " + ", ".join(f"`{w}`" for w in case.reason)
    if not case.quarantine:
        return "loads, nothing quarantined"
    return "loads; quarantined: " + "; ".join(f"{f} row {r} `{reason}`" for f, r, reason in sorted(case.quarantine))


def _observed(con: duckdb.DuckDBPyConnection, case: Case) -> str:
    status, reason = con.execute("SELECT status, reason FROM audit.deliveries WHERE delivery_id = ?",
                                 [case.delivery_id]).fetchone()
    if status == "rejected":
        kept = con.execute("SELECT status FROM audit.deliveries WHERE delivery_id = ?", [case.baseline_id]).fetchone()
        return f"rejected: {reason} (previous delivery: {kept[0] if kept else 'none'})"
    quarantine = con.execute("SELECT file_name, source_row_number, reason FROM audit.quarantine "
                             "WHERE delivery_id = ? ORDER BY ALL", [case.delivery_id]).fetchall()
    loaded, read = con.execute("SELECT sum(rows_loaded), sum(rows_read) FROM audit.reconciliation "
                               "WHERE delivery_id = ?", [case.delivery_id]).fetchone()
    text = f"{status}, {loaded} of {read} rows loaded"
    if quarantine:
        text += "; quarantined: " + "; ".join(f"{f} row {r} `{reason}`" for f, r, reason in quarantine)
    return text


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_corpus(root / "exports")
        workspace = Workspace(data_dir=str(root / "data"), export_dir=str(root / "exports"), threads=2,
                              memory_limit="2GB")
        defs = build_definitions({"workspace": workspace, "pseudonym_key": PseudonymKey(key="report-key-0123456789")})
        with dg.DagsterInstance.ephemeral() as instance:
            result = defs.resolve_job_def("nightly").execute_in_process(instance=instance, raise_on_error=False)
        print(f"Run succeeded: {result.success}\n")
        print("| case | bad input | expected | observed |")
        print("|---|---|---|---|")
        with duckdb.connect(str(workspace.warehouse_path), read_only=True) as con:
            for case in CASES:
                cells = [f"`{case.name}`", case.description, _expected(case), _observed(con, case)]
                print("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
