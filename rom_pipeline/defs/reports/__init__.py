"""Reports (issue 4 part 5): ``ASSETS`` goes into the project's ``Definitions``."""
from rom_pipeline.defs.reports.assets import ASSETS

__all__ = ["ASSETS"]
