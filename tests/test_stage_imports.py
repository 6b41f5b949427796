"""No stage imports a later stage; lib/ imports no stage at all.

The stages in the order the nightly job runs them (rom_pipeline/definitions.py):
ingest -> staging -> (the SQL models, rom_pipeline/defs/models.py; the outcomes stage's Python
assets among them) -> audit -> publish -> reports.
The infrastructure every stage shares (concern scope, fingerprints, SQL files, the warehouse
reader) is in rom_pipeline/lib/ and must not reach back into a stage.
"""
from __future__ import annotations

import ast
from pathlib import Path

from rom_pipeline.paths import PACKAGE_DIR

STAGES = ["ingest", "staging", "outcomes", "audit", "publish", "reports"]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _stage_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] == ["rom_pipeline", "defs"] and len(parts) > 2 and parts[2] in STAGES:
        return parts[2]
    return None


def test_the_stage_packages_are_the_ones_listed():
    packages = {p.name for p in (PACKAGE_DIR / "defs").iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(STAGES)


def test_no_stage_imports_a_later_stage():
    offences = []
    for stage in STAGES:
        for path in sorted((PACKAGE_DIR / "defs" / stage).glob("*.py")):
            for module in _imports(path):
                imported = _stage_of(module)
                if imported and STAGES.index(imported) > STAGES.index(stage):
                    offences.append(f"{path.relative_to(PACKAGE_DIR)} imports {module}")
    assert offences == []


def test_lib_and_the_shared_factories_import_no_stage():
    shared = [*sorted((PACKAGE_DIR / "lib").glob("*.py")),
              *(PACKAGE_DIR / "defs" / name for name in ("sql_asset.py", "checks.py", "models.py"))]
    offences = [f"{path.relative_to(PACKAGE_DIR)} imports {module}"
                for path in shared for module in _imports(path) if _stage_of(module)]
    assert offences == []
