"""The `got-data` command: one module per command group (annotate, validate, models, spec, train, world,
demo), wired into one app by `root`; `output` holds the exit codes and the one-line error every command
prints. No other layer imports this package (tests/test_layers.py)."""

from got_data.cli.root import app, main

__all__ = ["app", "main"]
