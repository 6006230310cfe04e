"""How every `got-data` command ends: its exit code and, on failure, one error line on stderr.

CI scripts read the exit code and the first line of stderr, so both are a contract (README,
`got-data --help`): 0 ok, 1 invalid data, 2 usage or input error. Commands raise GotDataError
subclasses; `guarded` turns them into that one line instead of a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from got_data.errors import GotDataError

EXIT_OK = 0
EXIT_INVALID_DATA = 1
EXIT_USAGE = 2
EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 invalid data (validate found a bad sample); "
    "2 usage or input error (one 'error: ...' line on stderr)."
)

# Resolved at print time (rich reads sys.stderr lazily), so test runners that swap stderr see it.
error_console = Console(stderr=True)


def one_line(text: str) -> str:
    """The message with every run of whitespace, newlines included, made one space."""
    return " ".join(text.split())


def print_error(message: str) -> None:
    """`error: MESSAGE` as one line on stderr, however narrow the terminal and whatever the message holds."""
    error_console.print(f"[red]error:[/red] {escape(one_line(message))}", soft_wrap=True, highlight=False)


def fail(exc: GotDataError) -> NoReturn:
    """Report a got-data error as one line and exit with the usage/input code."""
    print_error(str(exc))
    raise typer.Exit(EXIT_USAGE) from exc


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """The command with got-data errors reported by `fail`, not as a traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except GotDataError as exc:
            fail(exc)

    return run
