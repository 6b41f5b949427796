"""Benchmarks (issue 4): financial ratios, the concern benchmark and its summary, the
internal benchmark, and the size groups they share. Wire ``ASSETS`` and ``CHECKS``
into the ``Definitions``.
"""
from rom_pipeline.defs.benchmarks.assets import ASSETS, CHECKS

__all__ = ["ASSETS", "CHECKS"]
