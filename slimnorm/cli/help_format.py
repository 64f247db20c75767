"""``--help`` that shows each flag's default: the one formatter of every command.

`slimnorm.cli.common.ArgumentParser` uses it by default; parsers built on
plain argparse (the benchmarks' and experiments') name it as their
``formatter_class``. The description keeps its line breaks.
"""
from slimnorm.cli.common import DefaultsHelpFormatter as DefaultsFormatter

__all__ = ['DefaultsFormatter']
