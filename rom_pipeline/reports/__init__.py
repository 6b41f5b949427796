"""The reports (issue 4 part 5): benchmark report per concern and year (seed 001), quality report per
location (seed 000), and per-location manager packages with therapist pages.

Pure rendering lives here (formatting, colours, charts, templates); the Dagster asset that runs it is
:mod:`rom_pipeline.defs.reports`. What is produced and who may see it: docs/reports.md.
"""
from rom_pipeline.reports.build import BuildResult, build_reports
from rom_pipeline.reports.formatting import z_colour_class

__all__ = ["BuildResult", "build_reports", "z_colour_class"]
