"""Case-mix models (issue 12 part 1; docs/outcome-rules.md s12).

One multi-asset fits the leave-unit-out models with statsmodels (``rom_pipeline.lib.casemix``)
and writes ``outcomes.casemix_expected`` (expected outcome per complete episode) and
``marts.casemix_models`` (coefficients, standard errors, n, R² / deviance, software version,
left-out unit, parameters, run id). ``marts.casemix_adjusted`` (SQL) aggregates and suppresses.
"""
from pathlib import Path

import dagster as dg

from rom_pipeline.defs.sql_asset import DUCKDB_POOL, OWNERS, refresh_mode, table_metadata
from rom_pipeline.lib import casemix
from rom_pipeline.resources import Workspace

EXPECTED = dg.AssetKey(["outcomes", "casemix_expected"])
MODELS = dg.AssetKey(["marts", "casemix_models"])
UPSTREAM = [dg.AssetKey(["marts", "episode_outcomes"]), dg.AssetKey(["staging", "episodes"])]


def _code_version() -> str:
    import hashlib

    digest = hashlib.sha256(Path(casemix.__file__).read_bytes() + Path(__file__).read_bytes())
    return digest.hexdigest()[:12]


@dg.multi_asset(
    name="fit_casemix_models",
    specs=[
        dg.AssetSpec(EXPECTED, group_name="outcomes", owners=OWNERS, kinds={"duckdb", "python"},
                     code_version=_code_version(), deps=UPSTREAM,
                     metadata={"module": dg.MetadataValue.path("rom_pipeline/lib/casemix.py"), **refresh_mode(False)},
                     description="Per complete episode: expected percentage improvement (OLS) and expected "
                                 "probability of each reliable-change category (multinomial logit) from the "
                                 "case-mix model fitted without the episode's unit."),
        dg.AssetSpec(MODELS, group_name="marts", owners=OWNERS, kinds={"duckdb", "python"},
                     code_version=_code_version(), deps=UPSTREAM,
                     metadata={"module": dg.MetadataValue.path("rom_pipeline/lib/casemix.py"), **refresh_mode(False)},
                     description="The case-mix models of the run: per model and term the estimate and standard "
                                 "error, with n, R² (OLS) or deviance and pseudo-R² (multinomial logit), the "
                                 "left-out unit, statsmodels' version and the parameters."),
    ],
    pool=DUCKDB_POOL,
)
def fit_casemix_models(context: dg.AssetExecutionContext, workspace: Workspace):
    params = workspace.parameters().scalars
    with workspace.connect() as con:
        counts = casemix.build(con, context.run.run_id, params["casemix_age_bands"],
                               params["casemix_min_training_episodes"], params["casemix_max_models"],
                               log=context.log.info, max_training=params["casemix_max_training_episodes"])
        for key, table in ((EXPECTED, "outcomes.casemix_expected"), (MODELS, "marts.casemix_models")):
            yield dg.MaterializeResult(asset_key=key, metadata={**table_metadata(con, table), **counts,
                                                                 "refresh": "full (cross-concern table)"})


ASSETS = [fit_casemix_models]
