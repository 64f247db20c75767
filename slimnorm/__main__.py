"""`python -m slimnorm ...`: the `slimnorm` command (slimnorm/cli/main.py)."""
import sys

from slimnorm.cli.main import main

sys.exit(main())
