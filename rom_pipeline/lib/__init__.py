"""Pure logic with unit tests of its own: no Dagster in here."""
