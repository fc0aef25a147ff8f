"""`explorer reproduce PAPER --data D [--out DIR] [--quick] [--seeds K]`: re-run a paper's
experiments and write its tables and figures.

Papers live in `explorer/reproduce/<module>.py` and are imported only when asked for. Each module
provides `reproduce_job(options: ReproduceOptions) -> Job[dict]` returning a summary (what was
written, and the headline numbers). A paper whose module is not there yet is an InputError.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from explorer.cli import command, drive, emit_json
from explorer.errors import InputError

# paper name -> module under explorer.reproduce
PAPERS = {
    "taslp2020": "taslp2020",
    "eusipco2020": "eusipco2020",
    "drdnn": "drdnn",
    "naive-ae": "naive_ae",
}


@dataclass(frozen=True)
class ReproduceOptions:
    """`seeds` None means the paper's default; `pretrained` uses the shipped demo weights
    instead of training, where the paper's models have them."""

    data: str
    out: Path
    quick: bool = False
    seeds: int | None = None
    device: str = "auto"
    pretrained: bool = False


def load_paper(name: str):
    """The module reproducing paper `name`; InputError if unknown or not implemented yet."""
    if name not in PAPERS:
        raise InputError(f"unknown paper '{name}' (known: {', '.join(PAPERS)})")
    module_name = f"explorer.reproduce.{PAPERS[name]}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise InputError(f"reproducing '{name}' is not implemented yet") from None
        raise


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
    parser.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="auto, cpu, cuda or cuda:N (default auto)",
    )
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
