"""The console commands (`slimnorm train`, `slimnorm eval`, `slimnorm demo`, ...).

Each module has `build_parser()` and `main(argv=None)`; `main` checks every
flag before TensorFlow is imported, and `slimnorm.cli.common.run_cli` prints
a bad value as one line on stderr with exit code 2. The scripts in the
checkout's `scripts/` call these same functions.
"""
