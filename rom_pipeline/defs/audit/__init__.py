"""The audit stage (issue 5): the run record and the auditor's trail before publishing.

``rom_pipeline.defs.audit.assets`` holds the assets. The infrastructure the other
stages share (the concern scope of an incremental night, the run fingerprints) is in
``rom_pipeline.lib.concern_scope`` and ``rom_pipeline.lib.fingerprint``.
"""
