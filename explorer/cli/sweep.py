"""`explorer sweep`: train a grid of configs times seeds, and collect the results in one table.

    explorer sweep --model KIND --data D [--grid KEY=V1,V2,...]... [--seeds K] [--seed S]
                   [--out DIR] [--jobs N] [--devices cpu|cuda:0,cuda:1,...]
                   [--epochs N] [--batch-size B] [--learning-rate LR] [--steps-per-epoch N]
                   [--frontend NAME] [--set KEY=VALUE]... [--json]

The sweep itself (grid, run folders, resuming, child processes, tables) is
`explorer.training.sweep`; see its docstring for what a run and a finished run are.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from explorer.cli import build_parser, train
from explorer.cli.registry import command, emit_json
from explorer.errors import InputError
from explorer.training.sweep import execute, plan, write_tables


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="KIND", help="model kind to train")
    parser.add_argument("--data", required=True, metavar="D", help="training data (as for train)")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a setting and its values (repeatable; the sweep is the product)",
    )
    parser.add_argument("--seeds", type=int, default=1, metavar="K", help="seeds per config")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="first seed (default 0)")
    parser.add_argument("--out", default="sweep", metavar="DIR", help="output folder")
    parser.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="runs at once (child processes if > 1)"
    )
    parser.add_argument(
        "--devices",
        default="cpu",
        metavar="LIST",
        help="devices handed to runs in turn, e.g. cuda:0,cuda:1 (default cpu)",
    )
    parser.add_argument("--epochs", type=int, metavar="N")
    parser.add_argument("--batch-size", type=int, metavar="B")
    parser.add_argument("--learning-rate", type=float, metavar="LR")
    parser.add_argument("--steps-per-epoch", type=int, default=0, metavar="N")
    parser.add_argument("--frontend", metavar="NAME")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


@command("sweep", "train a grid of configs x seeds and tabulate the results", _arguments)
def sweep_command(args: argparse.Namespace) -> int:
    runs = plan(args)
    folder = Path(args.out)
    devices = [device.strip() for device in args.devices.split(",") if device.strip()]
    if args.jobs < 1 or not devices:
        raise InputError("--jobs must be at least 1 and --devices must name a device")
    results = execute(runs, args, folder, devices, _train_here)
    table = write_tables(runs, results, folder)
    if args.json:
        emit_json({"out": str(folder), "table": str(table), "runs": list(results.values())})
    else:
        print(table.read_text(), end="")
    return 0


def _train_here(argv: list[str], seed: int, device: str) -> dict[str, Any]:
    """One run in this process: its `explorer train` command line, parsed as the CLI would."""
    from explorer.device import resolve_device

    arguments = build_parser().parse_args(argv)
    return train.train_run(arguments, seed, resolve_device(device))  # looked up per call: patchable
