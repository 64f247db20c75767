"""``--help`` that shows each flag's default, for the parsers of the benchmarks,
experiments and tools (the train/eval parsers use `slimnorm.cli.common`).

Like argparse's ArgumentDefaultsHelpFormatter, but it keeps the description's
line breaks and leaves out what would mislead: a default of None (the help
then says what happens), False of a switch, and flags whose help already
names its default.
"""
import argparse
import copy


class DefaultsFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to a flag's help where X tells the reader something."""

    @staticmethod
    def _shows_default(action):
        return bool(action.option_strings) and action.default not in (
            None, False, argparse.SUPPRESS) and 'default' not in (action.help or '')

    def _format_action(self, action):
        if action.help is None and self._shows_default(action):
            action = copy.copy(action)  # a flag without help still shows its default
            action.help = '(default: %(default)s)'
        return super()._format_action(action)

    def _get_help_string(self, action):
        if self._shows_default(action):
            return action.help + ' (default: %(default)s)'
        return action.help
