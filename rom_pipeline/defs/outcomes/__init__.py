"""The outcomes stage: per-episode results that SQL cannot compute (between the SQL models of
``outcomes``/``marts`` and the audit trail). ``rom_pipeline.defs.outcomes.assets`` fits the
case-mix models (statsmodels); the rules are in ``rom_pipeline.lib.casemix``."""
