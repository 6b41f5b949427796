"""``rom-pipeline generate``: realistic synthetic deliveries under export contract 1.0.

Python API: :func:`generate_deliveries`; command line: :mod:`rom_pipeline.generate.cli`
(``python -m rom_pipeline.generate --help``). Standard library only.
"""
from .deliveries import DEFAULT_EXPORT_DATE, generate_deliveries

__all__ = ["DEFAULT_EXPORT_DATE", "generate_deliveries"]
