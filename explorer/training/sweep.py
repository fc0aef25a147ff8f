"""A sweep: train a grid of configs times seeds, and collect the results in one table.

The `explorer sweep` command over it is `explorer/cli/sweep.py`, which hands `execute` the way
to train one run in this process (`TrainHere`), so this module needs no command-line parser.

A grid KEY is a training setting (`learning_rate`, `batch_size`, `epochs`, ... of
`TrainingConfig`) or a model config key (what `--set` sets, e.g. `hidden`, `frontend`); values
are JSON where they parse (`--grid hidden=256,513 --grid learning_rate=1e-4,3e-4`).

Every run is one `explorer train` with its own checkpoint under `DIR/runs/<config hash>-seed<S>/`
(the hash covers kind, data, model config and training settings, not the seed). A run is
finished when its `result.json` exists (written atomically last); re-running the sweep skips
finished runs, and resumes a run whose in-progress checkpoint survived an interruption. Runs go
one at a time in this process (`--jobs 1`), or N at a time as child processes, handed the
`--devices` in turn (on CPU, each child gets an equal share of the cores as its thread count).
Children run `explorer train` through `CHILD`, a string executed in a fresh interpreter.
The table `DIR/results.csv` and `DIR/results.md` lists every run, and the Markdown adds the mean
and spread over seeds per config.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from explorer.audio.io import atomic_output
from explorer.errors import InputError

TRAINING_KEYS = {
    "epochs",
    "batch_size",
    "learning_rate",
    "halve_patience",
    "stop_patience",
    "factor",
    "max_steps_per_epoch",
}
COLUMNS = ("run", "seed", "epochs", "best_epoch", "final_loss", "stopped", "seconds", "checkpoint")
CHILD = "import sys; from explorer.cli import main; sys.exit(main(sys.argv[1:]))"

# Trains one run in this process from its `explorer train` arguments, seed and device; returns
# the train result (epochs, best_epoch, final_loss, stopped, ...).
TrainHere = Callable[[list[str], int, str], dict[str, Any]]


@dataclass(frozen=True)
class Run:
    """One cell of the sweep: the settings that vary, the seed, and the full `train` options."""

    key: str
    seed: int
    varied: dict[str, Any]
    model: dict[str, Any]
    training: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.key}-seed{self.seed}"


# ---------------------------------------------------------------- planning
def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def model_overrides(frontend: str | None, settings: Sequence[str]) -> dict[str, Any]:
    """Model-config entries from `--frontend` and `--set KEY=VALUE` items (VALUE as JSON
    when it parses, else a string)."""
    config: dict[str, Any] = {"frontend": frontend} if frontend else {}
    for item in settings:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise InputError(f"--set expects KEY=VALUE, got '{item}'")
        config[key] = _value(value)
    return config


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, separator, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not separator or not key or not values:
            raise InputError(f"--grid expects KEY=V1,V2,..., got '{item}'")
        if key in grid:
            raise InputError(f"--grid names '{key}' twice")
        grid[key] = [_value(value.strip()) for value in values.split(",")]
    return grid


def plan(args: argparse.Namespace) -> list[Run]:
    """The runs of the sweep, in a stable order (grid product, then seeds)."""
    from explorer.training.loop import TrainingConfig

    if args.seeds < 1:
        raise InputError("--seeds must be at least 1")
    known = {field.name for field in fields(TrainingConfig)}
    base_model = model_overrides(args.frontend, args.set)
    base_training: dict[str, Any] = {"max_steps_per_epoch": args.steps_per_epoch}
    for name in ("epochs", "batch_size", "learning_rate"):
        if getattr(args, name):
            base_training[name] = getattr(args, name)
    grid = parse_grid(args.grid)
    if "seed" in grid:
        raise InputError("use --seeds/--seed for seeds, not --grid seed=...")
    runs = []
    for values in itertools.product(*grid.values()):
        varied = dict(zip(grid, values, strict=True))
        model, training = dict(base_model), dict(base_training)
        for key, value in varied.items():
            if key in known:
                training[key] = value
            else:
                model[key] = value
        TrainingConfig(**training)  # bad values fail before anything runs
        key = config_hash(args.model, args.data, model, training)
        for seed in range(args.seed, args.seed + args.seeds):
            runs.append(Run(key, seed, varied, model, training))
    return runs


def config_hash(kind: str, data: str, model: dict[str, Any], training: dict[str, Any]) -> str:
    text = json.dumps(
        {"kind": kind, "data": data, "model": model, "training": training}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def train_arguments(run: Run, args: argparse.Namespace, folder: Path, device: str) -> list[str]:
    """The `explorer train` command line of one run (resuming a checkpoint left in progress)."""
    checkpoint = folder / "checkpoint.pt"
    argv = ["train", "--model", args.model, "--data", args.data, "--seed", str(run.seed)]
    argv += ["--out", str(checkpoint), "--device", device, "--json"]
    training = run.training
    flags = {"epochs": "--epochs", "batch_size": "--batch-size", "learning_rate": "--learning-rate"}
    for key, flag in flags.items():
        if key in training:
            argv += [flag, json.dumps(training[key])]
    argv += ["--steps-per-epoch", str(training.get("max_steps_per_epoch", 0))]
    for key, value in run.model.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    extra = {key for key in training if key not in flags and key != "max_steps_per_epoch"}
    if extra:
        raise InputError(
            f"sweep can vary {', '.join(sorted(flags))} among training settings, not {', '.join(sorted(extra))}"
        )
    if _resumable(checkpoint, args.model):
        argv += ["--resume", str(checkpoint)]
    return argv


def _resumable(path: Path, kind: str) -> bool:
    if not path.exists():
        return False
    from explorer.training.checkpoints import read_resume

    try:
        read_resume(path, kind)
        return True
    except InputError:
        return False


# ---------------------------------------------------------------- running
def execute(
    runs: list[Run],
    args: argparse.Namespace,
    folder: Path,
    devices: list[str],
    train_here: TrainHere,
) -> dict[str, dict[str, Any]]:
    """Train every unfinished run; `{run name: result row}` for all runs.

    With `--jobs 1` each run goes through `train_here`, else through `explorer train` children.
    """
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for run in runs:
        done = _finished(folder / "runs" / run.name)
        if done is not None:
            results[run.name] = done
        else:
            pending.append(run)
    if pending:
        print(
            f"explorer: sweep: {len(pending)} run(s) to train, {len(results)} already finished",
            file=sys.stderr,
        )
    if args.jobs == 1:
        for index, run in enumerate(pending):
            device = devices[index % len(devices)]
            results[run.name] = _run_here(run, args, folder, device, train_here)
    else:
        results.update(_run_children(pending, args, folder, devices))
    return {run.name: results[run.name] for run in runs}


def _finished(folder: Path) -> dict[str, Any] | None:
    path = folder / "result.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: train it again


def _record(run: Run, folder: Path, result: dict[str, Any], seconds: float) -> dict[str, Any]:
    row = {
        "run": run.name,
        "config": run.key,
        "seed": run.seed,
        "varied": run.varied,
        "model": run.model,
        "training": run.training,
        "epochs": result["epochs"],
        "best_epoch": result["best_epoch"],
        "final_loss": result["final_loss"],
        "stopped": result["stopped"],
        "seconds": round(seconds, 2),
        "checkpoint": str(folder / "checkpoint.pt"),
    }
    with atomic_output(folder / "result.json") as temporary:
        temporary.write_text(json.dumps(row, indent=1))
    return row


def _run_here(
    run: Run, args: argparse.Namespace, root: Path, device: str, train_here: TrainHere
) -> dict[str, Any]:
    folder = root / "runs" / run.name
    folder.mkdir(parents=True, exist_ok=True)
    argv = train_arguments(run, args, folder, device)
    print(f"explorer: sweep: training {run.name} {run.varied or ''}", file=sys.stderr)
    start = time.monotonic()
    result = train_here(argv, run.seed, device)
    return _record(run, folder, result, time.monotonic() - start)


def _run_children(
    runs: list[Run], args: argparse.Namespace, root: Path, devices: list[str]
) -> dict[str, dict[str, Any]]:
    """At most `args.jobs` runs at once, each an `explorer train` child process."""
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    waiting = list(enumerate(runs))
    active: list[tuple[Run, subprocess.Popen, float, Path]] = []
    results: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    while waiting or active:
        while waiting and len(active) < args.jobs:
            index, run = waiting.pop(0)
            device = devices[index % len(devices)]
            folder = root / "runs" / run.name
            folder.mkdir(parents=True, exist_ok=True)
            environment = dict(os.environ)
            if device == "cpu":
                environment["OMP_NUM_THREADS"] = str(threads)
            log = open(folder / "train.log", "w")
            process = subprocess.Popen(
                [sys.executable, "-c", CHILD, *train_arguments(run, args, folder, device)],
                stdout=subprocess.PIPE,
                stderr=log,
                env=environment,
                text=True,
            )
            log.close()
            print(f"explorer: sweep: started {run.name} on {device}", file=sys.stderr)
            active.append((run, process, time.monotonic(), folder))
        time.sleep(0.1)
        for entry in list(active):
            run, process, start, folder = entry
            if process.poll() is None:
                continue
            active.remove(entry)
            output = process.stdout.read() if process.stdout else ""
            if process.returncode != 0:
                tail = (folder / "train.log").read_text().strip().splitlines()[-1:]
                failures.append(f"{run.name}: {tail[0] if tail else f'exit {process.returncode}'}")
                continue
            result = json.loads(output.strip().splitlines()[-1])["runs"][0]
            results[run.name] = _record(run, folder, result, time.monotonic() - start)
    if failures:
        raise InputError(f"{len(failures)} sweep run(s) failed: " + "; ".join(failures[:3]))
    return results


# ---------------------------------------------------------------- the table
def write_tables(runs: list[Run], results: dict[str, dict[str, Any]], folder: Path) -> Path:
    """`results.csv` (one row per run) and `results.md` (runs, then mean/spread per config)."""
    varied = list(dict.fromkeys(key for run in runs for key in run.varied))
    header = ["run", "seed", *varied, *COLUMNS[2:]]
    rows = [
        [row["run"], row["seed"], *[row["varied"].get(key) for key in varied]]
        + [row[column] for column in COLUMNS[2:]]
        for row in results.values()
    ]
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / "results.csv") as temporary:
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(_cell(value) for value in row) + " |" for row in rows),
        "",
        "| config | " + " | ".join(varied) + " | seeds | mean final loss | std |",
        "|---|" + "---|" * len(varied) + "---|---|---|",
    ]
    by_config: dict[str, list[dict[str, Any]]] = {}
    for row in results.values():
        by_config.setdefault(row["config"], []).append(row)
    for config, group in by_config.items():
        losses = [row["final_loss"] for row in group if row["final_loss"] is not None]
        mean = statistics.fmean(losses) if losses else None
        spread = statistics.stdev(losses) if len(losses) > 1 else None
        cells = [config, *[group[0]["varied"].get(key) for key in varied], len(group), mean, spread]
        lines.append("| " + " | ".join(_cell(value) for value in cells) + " |")
    path = folder / "results.md"
    with atomic_output(path) as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    return path


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)
