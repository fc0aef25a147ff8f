"""`explorer train`: train a model on a data source, with a progress bar on stderr.

    explorer train --model KIND --data D [--epochs N] [--out CKPT] [--resume CKPT]
                   [--device ...] [--seeds K] [--seed S] [--frontend NAME] [--set KEY=VALUE]
                   [--half] [--json]

With `--seeds K`, K runs with seeds S, S+1, ... write `CKPT` with `-seed<S>` before the suffix.
`train_run` (one run from parsed arguments) is also what `explorer sweep` calls for a run it
trains in its own process. The training itself is `explorer.training.loop.train`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from explorer.cli.registry import add_device_argument, command, drive, emit_json
from explorer.errors import InputError
from explorer.training.sweep import model_overrides


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="KIND",
        help="model kind: dae, mss-dae, sf, ... (default: the resumed one)",
    )
    parser.add_argument(
        "--data",
        metavar="D",
        help="MUSDB18(-HQ) root, folder of track folders, 'demo', 'synth' or 'synth:NxS'",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="most epochs (default 100; early stopping usually ends sooner)",
    )
    parser.add_argument(
        "--out",
        metavar="CKPT",
        help="checkpoint to write (default <kind>.pt; rewritten after every epoch)",
    )
    parser.add_argument(
        "--resume", metavar="CKPT", help="continue a stopped run from its checkpoint"
    )
    add_device_argument(parser)
    parser.add_argument(
        "--seeds", type=int, default=1, metavar="K", help="train K runs with consecutive seeds"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="first seed (default 0)")
    parser.add_argument(
        "--frontend",
        metavar="NAME",
        help="front-end preset for models that take one (e.g. taslp2020-small)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model config value (repeatable; JSON values)",
    )
    parser.add_argument(
        "--batch-size", type=int, metavar="B", help="examples per batch (default 16)"
    )
    parser.add_argument(
        "--learning-rate", type=float, metavar="LR", help="Adam learning rate (default 1e-4)"
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=0,
        metavar="N",
        help="cap the batches per epoch (quick runs)",
    )
    parser.add_argument("--half", action="store_true", help="store the finished weights in fp16")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    from explorer.training.streaming import add_arguments

    add_arguments(parser)  # --stream, --workers, --cache


@command("train", "train a model (DAE, MSS-DAE, SF, ...) on a data source", _arguments)
def train_command(args: argparse.Namespace) -> int:
    from explorer.device import describe
    from explorer.training import distributed

    with distributed.session(args) as device:  # under torchrun: DDP, one rank per process
        runs = [train_run(args, seed, device) for seed in _seeds(args)]
        if not distributed.is_main():
            return 0
    if args.json:
        emit_json({"device": describe(device), "runs": runs})
    else:
        for run in runs:
            print(
                f"{run['kind']} seed {run['seed']}: {run['epochs']} epochs ({run['stopped']}), best validation "
                f"loss {run['final_loss']:.5g} at epoch {run['best_epoch']} -> {run['checkpoint']}"
            )
    return 0


def _seeds(args: argparse.Namespace) -> list[int]:
    if args.seeds < 1:
        raise InputError("--seeds must be at least 1")
    if args.resume and args.seeds > 1:
        raise InputError("--resume continues one run; drop --seeds")
    return [args.seed + index for index in range(args.seeds)]


def train_run(args: argparse.Namespace, seed: int, device) -> dict[str, Any]:
    from explorer.training import checkpoints, distributed, tasks
    from explorer.training.data import resolve_data
    from explorer.training.loop import TrainingConfig, seed_everything, train

    resume = None
    if args.resume:
        resume = checkpoints.read_resume(args.resume, args.model)
        kind, model_config = resume["kind"], resume["config"]
        saved = resume["extra"]["training"]["config"]
        config = TrainingConfig.from_dict(
            dict(saved, **({"epochs": args.epochs} if args.epochs else {}))
        )
        data_spec = args.data or resume["provenance"].get("data")
        out = Path(args.out or args.resume)
    else:
        if not args.model or not args.data:
            raise InputError("train needs --model KIND and --data D (or --resume CKPT)")
        kind, model_config = args.model, _model_config(args)
        config = TrainingConfig(**_training_overrides(args), seed=seed)
        data_spec = args.data
        out = _output_path(args, kind, seed)
    data = resolve_data(data_spec, tasks.data_target(kind))
    seed_everything(config.seed)  # the model's initial weights depend on the seed
    task = distributed.wrap(tasks.build_task(kind, model_config, data), config, args)
    checkpoint = out if distributed.is_main() else None  # only rank 0 writes
    job = train(task, config, device, checkpoint, resume, half=args.half)
    result = drive(job, quiet=not distributed.is_main())
    result["seed"] = config.seed
    return result


def _model_config(args: argparse.Namespace) -> dict[str, Any]:
    return {"kind": args.model, **model_overrides(args.frontend, args.set)}


def _training_overrides(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {"max_steps_per_epoch": args.steps_per_epoch}
    if args.epochs:
        values["epochs"] = args.epochs
    if args.batch_size:
        values["batch_size"] = args.batch_size
    if args.learning_rate:
        values["learning_rate"] = args.learning_rate
    return values


def _output_path(args: argparse.Namespace, kind: str, seed: int) -> Path:
    path = Path(args.out or f"{kind}.pt")
    if args.seeds > 1:
        path = path.with_name(f"{path.stem}-seed{seed}{path.suffix or '.pt'}")
    if path.exists() and not args.resume:
        print(f"explorer: note: overwriting {path}", file=sys.stderr)
    return path
