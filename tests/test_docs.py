"""Documentation generated from the code stays true to it."""
from rom_pipeline import dictionary


def test_data_dictionary_is_generated_from_current_schemas():
    assert dictionary.is_current(), "docs/data-dictionary.md is stale: run `rom-pipeline dictionary`"
