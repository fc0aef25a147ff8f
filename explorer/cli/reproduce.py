"""`explorer reproduce`: re-run a paper's experiments and write its tables and figures.

    explorer reproduce PAPER --data D [--out DIR] [--quick] [--seeds K] [--device ...]
                       [--pretrained] [--json]

The papers and their jobs are `explorer.reproduce`; this module is the command over them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from explorer.cli.registry import add_device_argument, command, drive, emit_json
from explorer.errors import InputError
from explorer.reproduce import PAPERS, ReproduceOptions, load_paper


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paper", choices=tuple(PAPERS), metavar="PAPER", help=", ".join(PAPERS))
    parser.add_argument(
        "--data",
        required=True,
        metavar="D",
        help="MUSDB18(-HQ) root, folder of track folders, 'demo' or 'synth'",
    )
    parser.add_argument(
        "--out", default=None, metavar="DIR", help="output folder (default ./reproduce-<paper>)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a scaled-down run that takes minutes on a CPU"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        metavar="K",
        help="training repetitions (default: the paper's; 1 with --quick)",
    )
    add_device_argument(parser)
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="analyse the shipped demo weights instead of training",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


@command("reproduce", "re-run a paper's experiments: tables and figures", _arguments)
def reproduce_command(args: argparse.Namespace) -> int:
    module = load_paper(args.paper)
    if args.seeds is not None and args.seeds < 1:
        raise InputError("--seeds must be at least 1")
    options = ReproduceOptions(
        args.data,
        Path(args.out or f"reproduce-{args.paper}"),
        args.quick,
        args.seeds,
        args.device,
        args.pretrained,
    )
    summary = drive(module.reproduce_job(options))
    if args.json:
        emit_json(summary)
    else:
        print(summary.get("report", ""), end="")
        print(f"wrote {options.out}", file=sys.stderr)
    return 0
