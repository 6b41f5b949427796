"""Every SQL model as an asset, found from the files: ``sql/<layer>/<table>.sql`` + ``<table>.yml``.

Adding a model is adding those two files (docs/conventions.md): its asset's upstream
assets come from the tables its SQL reads, its description, refresh mode, column
lineage and checks from the sidecar. A model whose sidecar says ``built_by`` is not an
asset of its own (``audit.figure_episodes``: the audit trail appends its rows; its
checks are wired here all the same).
"""
from __future__ import annotations

from typing import Sequence

import dagster as dg

from rom_pipeline.defs.checks import asset_check
from rom_pipeline.defs.sql_asset import sql_model_asset
from rom_pipeline.lib.model_checks import CheckSpec, model_checks
from rom_pipeline.lib.sqlfiles import discover_models, in_build_order

ALL_MODELS = discover_models()
# Models that are assets, each after the models it reads.
MODELS = in_build_order([m for m in ALL_MODELS if not m.spec.get("built_by")])
CHECK_SPECS: list[CheckSpec] = [spec for m in ALL_MODELS for spec in model_checks(m)]

ASSETS = [sql_model_asset(m) for m in MODELS]
CHECKS = [asset_check(spec) for spec in CHECK_SPECS]


def select(tables: Sequence[str]) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    """The assets and checks of the models named ``schema.table`` (for tests that build a part of the graph)."""
    chosen = {m.table for m in MODELS} & set(tables)
    if chosen != set(tables):
        raise KeyError(f"no model for {sorted(set(tables) - chosen)}")
    assets = [a for m, a in zip(MODELS, ASSETS) if m.table in chosen]
    checks = [c for s, c in zip(CHECK_SPECS, CHECKS) if s.table in chosen]
    return assets, checks
