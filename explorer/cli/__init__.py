"""The `explorer` command (DESIGN.md: the command-line contract).

Exit codes: 0 success, 2 bad input or usage (one line, no traceback), 1 internal error.
`--json` prints exactly one JSON object on stdout; progress goes to stderr.

This package is the CLI layer: it imports the layers below it, never the other way round.
The built-in commands (info, separate, evaluate, synth, gui) live here; the heavier ones live in
`train.py`, `sweep.py`, `nca.py` and `reproduce.py` beside it and are imported only when a
command line is parsed. `registry.py` holds `command`, `COMMANDS`, `drive` and `emit_json`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from pathlib import Path

from explorer.cli.registry import COMMANDS, add_device_argument, command, drive, emit_json
from explorer.errors import CancelledError, InputError

__all__ = ["COMMANDS", "build_parser", "command", "drive", "emit_json", "main", "parse"]

# Registered in this order, after the built-ins: the order of `explorer --help`.
COMMAND_MODULES = (
    "explorer.cli.train",
    "explorer.cli.sweep",
    "explorer.cli.nca",
    "explorer.cli.reproduce",
)


# ---------------------------------------------------------------- arguments
def _input_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input",
        metavar="INPUT",
        help="audio file, .stem.mp4, track folder, dataset root (info), or 'demo'",
    )


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, metavar="M", help="built-in model name or checkpoint path"
    )
    add_device_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _info_arguments(parser: argparse.ArgumentParser) -> None:
    _input_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _separate_arguments(parser: argparse.ArgumentParser) -> None:
    _input_argument(parser)
    _model_arguments(parser)
    parser.add_argument(
        "--out", default="separated", metavar="DIR", help="output folder (default ./separated)"
    )
    parser.add_argument("--format", default="wav", choices=("wav", "flac"), help="stem file format")


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    _input_argument(parser)
    _model_arguments(parser)


def _synth_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--tracks", type=int, default=8, metavar="N")
    parser.add_argument("--seconds", type=float, default=20.0, metavar="S")
    parser.add_argument("--seed", type=int, default=0, metavar="K")


def _gui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input",
        metavar="INPUT",
        nargs="?",
        default="demo",
        help="track to open (default: the demo)",
    )
    parser.add_argument(
        "--latency",
        default="low",
        metavar="L",
        help="audio output latency: low (default, edits heard soonest), high, or seconds",
    )
    parser.add_argument(
        "--blocksize", type=int, default=512, metavar="N", help="audio frames per callback (512)"
    )


# ---------------------------------------------------------------- commands
@command("info", "describe an audio file, track or dataset root", _info_arguments)
def info_command(args: argparse.Namespace) -> int:
    from explorer.data import sources
    from explorer.jobs import track_summary

    path = Path(args.input)
    if args.input != "demo" and path.is_dir() and not sources._is_track_folder(path):
        references = sources.list_dataset(path)
        summary = {
            "path": str(path),
            "sample_rate": None,
            "channels": None,
            "seconds": None,
            "stems": [],
            "tracks": [
                {"name": ref.name, "subset": ref.subset, "path": str(ref.path)}
                for ref in references
            ],
        }
    else:
        summary = track_summary(sources.open_track(args.input))
    if args.json:
        emit_json(summary)
    elif "tracks" in summary:
        print(f"{summary['path']}: {len(summary['tracks'])} tracks")
        for track in summary["tracks"]:
            print(f"  [{track['subset'] or '-'}] {track['name']}")
    else:
        print(
            f"{summary['path']}\n  {summary['sample_rate']} Hz, {summary['channels']} channel(s), "
            f"{summary['seconds']:.2f} s\n  stems: {', '.join(summary['stems']) or 'none'}"
        )
    return 0


@command("separate", "separate a track into stems", _separate_arguments)
def separate_command(args: argparse.Namespace) -> int:
    from explorer.data.sources import open_track
    from explorer.jobs import is_silent_track, separate_job

    track = open_track(args.input)
    if is_silent_track(track):
        print(
            f"explorer: warning: '{track.name}' is all silence; the stems will be silent",
            file=sys.stderr,
        )
    result = drive(
        separate_job(track, args.model, Path(args.out), args.device, args.format), quiet=False
    )
    result.pop("stems")
    if args.json:
        emit_json(result)
    else:
        print(f"{result['model']} on {result['device']}: {result['seconds']:.2f} s")
        for stem, path in result["outputs"].items():
            print(f"  {stem}: {path}")
    return 0


@command("evaluate", "separate a track with stems and score it", _evaluate_arguments)
def evaluate_command(args: argparse.Namespace) -> int:
    from explorer.data.sources import open_track
    from explorer.jobs import evaluate_job

    result = drive(evaluate_job(open_track(args.input), args.model, args.device))
    if args.json:
        emit_json(result)
    else:
        print(
            f"{result['track']} | {result['model']} on {result['device']} ({result['seconds']:.2f} s)"
        )
        print(f"  {'stem':<14}{'SI-SDR':>8}{'SDR':>8}{'SIR':>8}{'SAR':>8}")
        for stem, values in result["stems"].items():
            cells = "".join(
                f"{'-' if values[key] is None else format(values[key], '.2f'):>8}"
                for key in ("si_sdr", "sdr", "sir", "sar")
            )
            print(f"  {stem:<14}{cells}")
    return 0


@command("synth", "render a synthetic multitrack dataset", _synth_arguments)
def synth_command(args: argparse.Namespace) -> int:
    from explorer.data.synth import write_synth_dataset

    folders = drive(write_synth_dataset(Path(args.out), args.tracks, args.seconds, args.seed))
    print(f"wrote {len(folders)} tracks to {args.out}", file=sys.stderr)
    return 0


@command("gui", "open the desktop app", _gui_arguments)
def gui_command(args: argparse.Namespace) -> int:
    from explorer.gui.app import run_app

    latency = args.latency
    if latency not in ("low", "high"):
        try:
            latency = float(latency)
        except ValueError:
            raise InputError(f"--latency must be low, high or seconds, not {latency!r}") from None
    return run_app(args.input, latency=latency, blocksize=args.blocksize)


# ---------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="explorer",
        description="Separation Explorer: see and hear what separation models learn.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, arguments, _function) in COMMANDS.items():
        arguments(subparsers.add_parser(name, help=help_text, description=help_text))
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line's arguments; no command means `gui` with its defaults (the demo)."""
    _load_command_modules()
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.command is None:
        arguments = parser.parse_args(["gui"])
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse(argv)
    try:
        return COMMANDS[arguments.command][2](arguments)
    except InputError as error:
        print(f"explorer: error: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, CancelledError):
        print("explorer: cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as error:  # an internal error: one line, the traceback on request
        if os.environ.get("EXPLORER_DEBUG"):
            traceback.print_exc()
        print(
            f"explorer: internal error: {type(error).__name__}: {error} (set EXPLORER_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def _load_command_modules() -> None:
    """Import the command modules, which register themselves (cheap to repeat)."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)
