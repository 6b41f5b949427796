"""`python -m rom_pipeline.bench ...` = `rom-pipeline bench ...`."""
import sys

from .cli import main

sys.exit(main())
