"""The `slimnorm` command: `main` (the dispatcher and its table of subcommands),
and the subcommands that live here (`train`, `eval`, `demo`, `plot`).

Each subcommand is a `main(argv=None, prog=...)` that checks every flag
before TensorFlow is imported; `slimnorm.cli.common.run_cli` prints a bad
value as one line on stderr with exit code 2. The checkout's `scripts/`
call these same functions under research/slim's script names.
"""
