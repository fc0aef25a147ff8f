"""`explorer nca`: the Neural Couplings Algorithm on one block of a track.

    explorer nca --model M --input INPUT [--strategy student|compositional|linear|identity|all]
                 [--start SECONDS] [--frames T] [--iterations N] [--device ...] [--json] [--out DIR]

`--json` prints the DESIGN.md shape; `--out` saves each matrix as `<strategy>.npy` and `.png`.
The algorithm is `explorer.analysis.nca`; the figure is `explorer.analysis.figures.plot_matrix`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from explorer.cli.registry import add_device_argument, command, drive, emit_json
from explorer.errors import InputError


def _arguments(parser: argparse.ArgumentParser) -> None:
    from explorer.analysis.nca import DEFAULT_FRAMES, STRATEGIES

    parser.add_argument(
        "--model", required=True, metavar="M", help="dae, mss-dae, sf, or a checkpoint of one"
    )
    parser.add_argument(
        "--input",
        required=True,
        metavar="INPUT",
        help="audio file, .stem.mp4, track folder or 'demo'",
    )
    parser.add_argument(
        "--strategy",
        default="all",
        choices=(*STRATEGIES, "all"),
        help="which C to compute (default all)",
    )
    parser.add_argument(
        "--start",
        type=float,
        metavar="SECONDS",
        help="block start (default: the first block where all sources are active)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=DEFAULT_FRAMES,
        metavar="T",
        help=f"block length in frames (default {DEFAULT_FRAMES})",
    )
    parser.add_argument(
        "--iterations", type=int, default=600, metavar="N", help="Adam iterations (default 600)"
    )
    add_device_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--out", metavar="DIR", help="save the matrices as .npy and .png here")


@command("nca", "neural couplings of a DAE, MSS-DAE or SF on a block of frames", _arguments)
def nca_command(args: argparse.Namespace) -> int:
    from explorer.analysis import nca
    from explorer.data.sources import open_track
    from explorer.device import resolve_device
    from explorer.jobs import check_writable
    from explorer.models.dae import DAESeparator
    from explorer.models.registry import load_separator

    separator = load_separator(args.model, resolve_device(args.device))
    if not isinstance(separator, DAESeparator):
        raise InputError(
            f"NCA works on dae, mss-dae and sf models; '{args.model}' is a {separator.kind}"
        )
    out = Path(args.out) if args.out else None
    if out is not None:
        check_writable(out)
    track = open_track(args.input)
    strategies = nca.STRATEGIES if args.strategy == "all" else (args.strategy,)
    result = drive(
        nca.nca_job(
            separator,
            track,
            strategies,
            args.frames,
            args.start,
            nca.NCAConfig(iterations=args.iterations),
        )
    )
    matrices = result.pop("matrices")
    if out is not None:
        result["outputs"] = save_matrices(out, matrices, result)
    result = json_safe(result)
    if args.json:
        emit_json(result)
    else:
        print_result(result)
    return 0


def json_safe(value: Any) -> Any:
    """Infinite or NaN floats (the identity's TOD-R) become null, as DESIGN.md's JSON wants."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_result(result: dict[str, Any]) -> None:
    model_snr = result["model_snr_to_true_db"]
    print(
        f"{result['model']} on {result['device']}: block at {result['start']:.2f} s, {result['frames']} frames; "
        f"model SNR to true vocals {'-' if model_snr is None else format(model_snr, '.2f')} dB"
    )
    print(f"  {'strategy':<15}{'TOD-R':>9}{'SNR to model':>14}{'SNR to true':>13}{'seconds':>9}")
    for name, values in result["strategies"].items():
        cells = [
            values["tod_r"],
            values["snr_to_model_db"],
            values["snr_to_true_db"],
            values["seconds"],
        ]
        text = [
            "-" if cell is None else format(cell, ".3g" if index == 0 else ".2f")
            for index, cell in enumerate(cells)
        ]
        print(f"  {name:<15}{text[0]:>9}{text[1]:>14}{text[2]:>13}{text[3]:>9}")


def save_matrices(
    out: Path, matrices: dict[str, np.ndarray], result: dict[str, Any]
) -> dict[str, str]:
    from explorer.analysis.figures import plot_matrix
    from explorer.audio.io import atomic_output

    outputs = {}
    for name, matrix in matrices.items():
        path = out / f"{name}.npy"
        with atomic_output(path) as temporary, open(temporary, "wb") as handle:
            np.save(handle, matrix)
        outputs[f"{name}.npy"] = str(path)
        figure = out / f"{name}.png"
        metrics = result["strategies"][name]
        plot_matrix(figure, matrix, f"{result['model']}: {name} C (TOD-R {metrics['tod_r']:.3g})")
        outputs[f"{name}.png"] = str(figure)
    return outputs
