"""Machine-readable schemas: the export contract (pandera) and the published warehouse (YAML)."""
