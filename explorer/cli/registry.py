"""The subcommand registry and the output helpers every `explorer` command shares.

A module under `explorer/cli/` registers its subcommand with `@command(name, help, arguments)`;
`explorer.cli` builds the parser from `COMMANDS`. Nothing here imports `explorer.cli`, so the
command modules and `explorer.cli` itself can all import it without a cycle.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from explorer.progress import Job, Result

Arguments = Callable[[argparse.ArgumentParser], None]
Handler = Callable[[argparse.Namespace], int]

# Subcommand -> (help, function(parser) adding its arguments, function(args) -> exit code).
COMMANDS: dict[str, tuple[str, Arguments, Handler]] = {}


def command(name: str, help_text: str, arguments: Arguments) -> Callable[[Handler], Handler]:
    """Register the decorated function as subcommand `name` (parser order = registration order)."""

    def register(function: Handler) -> Handler:
        COMMANDS[name] = (help_text, arguments, function)
        return function

    return register


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """`--device`, the same for every command that runs a model."""
    parser.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="auto, cpu, cuda or cuda:N (default auto)",
    )


def emit_json(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value, allow_nan=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def drive(job: Job[Result], quiet: bool = False) -> Result:
    """Run a job with a progress bar on stderr; returns the job's result.

    The bar appears with the first progress report, so input errors found before any work
    print only their one line; it is off when stderr is not a terminal (tqdm's disable=None).
    """
    from tqdm import tqdm

    bar = None
    try:
        while True:
            progress = next(job)
            if quiet:
                continue
            if bar is None:
                bar = tqdm(
                    total=1.0,
                    file=sys.stderr,
                    disable=None,
                    leave=False,
                    bar_format="{desc:<40.40} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
                )
            bar.set_description_str(progress.message, refresh=False)
            bar.n = round(progress.fraction, 4)
            bar.refresh()
    except StopIteration as stop:
        return stop.value
    finally:
        if bar is not None:
            bar.close()
        job.close()
