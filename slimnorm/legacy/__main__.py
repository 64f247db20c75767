"""`python -m slimnorm.legacy script.py args...`: see `slimnorm.legacy.runner`."""
import sys

from slimnorm.legacy.runner import main

sys.exit(main(prog="python -m slimnorm.legacy"))
