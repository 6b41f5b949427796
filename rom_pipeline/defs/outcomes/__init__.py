"""Per-episode outcomes and indicator aggregates (issue 3): assets and blocking checks.

``ASSETS`` and ``CHECKS`` in :mod:`rom_pipeline.defs.outcomes.assets` go into
the project's ``Definitions``. The rules are in ``sql/outcomes``, ``sql/marts``
and ``sql/checks``; ``docs/outcome-rules.md`` explains them.
"""
