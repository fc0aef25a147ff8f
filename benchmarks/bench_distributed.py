"""Distributed training on CPU: training-step throughput with 1 and 2 gloo processes under
torchrun (the same global batch, so 2 processes each take half), the scaling efficiency, and the
streaming loader's throughput against what one training step consumes.

Each process uses one thread (torchrun's default OMP_NUM_THREADS=1), so 2 processes use 2 cores.
The step is timed after warm-up on pre-built batches (data loading excluded); rank 0 reports.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TITLE = "Distributed training (DDP, gloo on CPU) and streaming data"
ROOT = Path(__file__).resolve().parent.parent
FRONTEND = "taslp2020-quick"
GLOBAL_BATCHES = (64, 512)
LOADER_BATCH = 64
WARMUP_STEPS = 3
TIMED_STEPS = 20
ROUNDS = 3

# Started by torchrun: times TIMED_STEPS training steps of the DAE through the same wrappers
# `explorer train` uses (DistributedTask around the family's task), after warm-up.
STEP_SCRIPT = """
import itertools, json, os, sys, time, argparse
import torch
from explorer.training import distributed, tasks
from explorer.training.data import resolve_data
from explorer.training.loop import TrainingConfig, seed_everything

data, batch, warmup, timed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
args = argparse.Namespace(device="cpu", resume=None, model="dae", out=None, stream=False)
with distributed.session(args) as device:
    seed_everything(0)
    task = tasks.build_task("dae", {"kind": "dae", "frontend": "FRONTEND_NAME"}, resolve_data(data))
    for _ in task.prepare():
        pass
    config = TrainingConfig(batch_size=batch)
    task = distributed.wrap(task, config, args)
    module = task.module()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    epochs = itertools.chain.from_iterable(task.train_batches(0, e, batch) for e in itertools.count())
    batches = [tuple(torch.from_numpy(part) for part in b)
               for b in itertools.islice(epochs, warmup + timed)]
    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss(batch)
        loss.backward()
        optimizer.step()
    for b in batches[:warmup]:
        step(b)
    if distributed.current():
        torch.distributed.barrier()
    start = time.perf_counter()
    for b in batches[warmup:]:
        step(b)
    if distributed.current():
        torch.distributed.barrier()
    seconds = time.perf_counter() - start
    if distributed.is_main():
        print(json.dumps({"seconds": seconds, "samples": timed * batch}))
""".replace("FRONTEND_NAME", FRONTEND)


def _data(folder: Path) -> Path:
    """A folder of 4 track folders (noise stems, 10 s each): 3 train, 1 validates."""
    from tests.training.conftest import write_tracks

    root = folder / "data"
    if not root.exists():
        write_tracks(root, count=4, seconds=10.0)
    return root


def _step_rate(processes: int, batch: int, data: Path, script: Path) -> float:
    """Training samples per second (global) with `processes` gloo ranks."""
    environment = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", str(processes), str(script), str(data)]
    command += [str(batch), str(WARMUP_STEPS), str(TIMED_STEPS)]
    if processes == 1:
        # One process: no torchrun, the plain single-process path (no DDP).
        command = [sys.executable, str(script), str(data)]
        command += [str(batch), str(WARMUP_STEPS), str(TIMED_STEPS)]
    output = subprocess.run(
        command, env=environment, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if output.returncode != 0:
        raise RuntimeError(output.stderr[-2000:])
    result = json.loads(output.stdout.strip().splitlines()[-1])
    return result["samples"] / result["seconds"]


def _loader_rate(data: Path, cache: Path, workers: int) -> tuple[float, int]:
    """Examples per second the streaming DataLoader delivers (one epoch, batches of 64)."""
    import torch

    from explorer.training import tasks
    from explorer.training.cache import ArrayCache
    from explorer.training.data import resolve_data
    from explorer.training.streaming import StreamingTask

    torch.set_num_threads(1)
    task = tasks.build_task("dae", {"kind": "dae", "frontend": FRONTEND}, resolve_data(str(data)))
    streaming = StreamingTask(task, ArrayCache(cache), workers=workers)
    streaming.dataset()  # fill the cache first: steady-state reading is what is measured
    start = time.perf_counter()
    count = 0
    for epoch in range(3):
        for batch in streaming.train_batches(0, epoch, LOADER_BATCH):
            count += len(batch[0])
    return count / (time.perf_counter() - start), len(streaming.dataset())


def run() -> str:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        folder_path = Path(folder)
        data = _data(folder_path)
        script = folder_path / "step.py"
        script.write_text(STEP_SCRIPT)
        rates: dict[int, tuple[list[float], list[float]]] = {}
        for batch in GLOBAL_BATCHES:
            one, two = [], []
            for _round in range(ROUNDS):  # interleaved, so both see the same machine load
                one.append(_step_rate(1, batch, data, script))
                two.append(_step_rate(2, batch, data, script))
            rates[batch] = (one, two)
        loaders = {w: _loader_rate(data, folder_path / "cache", w) for w in (0, 1, 2)}
    examples = loaders[0][1]
    lines = [
        "No GPU was available to this task: the single-GPU and NCCL measurements are not made "
        "(the code path is the same, with `--device cuda` and one GPU per process).",
        "",
        f"DAE `{FRONTEND}` (513 bins, 2 layers of 513 x 513: 0.5 M parameters, 2 MB of "
        f"gradients all-reduced per step), {TIMED_STEPS} timed steps after {WARMUP_STEPS} "
        f"warm-up, median of {ROUNDS} interleaved rounds; one thread per process; load "
        f"average at start {load:.1f} on {os.cpu_count()} cores (a shared machine: absolute "
        "numbers are noisy).",
        "",
        "| global batch | processes | samples/s (global) | speed-up | scaling efficiency |",
        "|---|---|---|---|---|",
    ]
    for batch, (one, two) in rates.items():
        single, double = statistics.median(one), statistics.median(two)
        lines += [
            f"| {batch} | 1 (plain loop, no DDP) | {single:.0f} | 1.00 | 100 % |",
            f"| {batch} | 2 (torchrun, gloo, DDP) | {double:.0f} | {double / single:.2f} | "
            f"{50 * double / single:.0f} % |",
        ]
    lines.append("")
    for batch, (one, two) in rates.items():
        lines.append(
            f"Rounds at batch {batch}, samples/s: 1 process "
            f"{', '.join(f'{v:.0f}' for v in one)}; 2 processes {', '.join(f'{v:.0f}' for v in two)}."
        )
    single = statistics.median(rates[LOADER_BATCH][0])
    lines += [
        "",
        f"Streaming loader (`--stream`: cached features, FrameDataset, DistributedSampler, "
        f"batches of {LOADER_BATCH}, {examples} examples per epoch, 3 epochs, persistent "
        f"workers) against the demand of the 1-process training step at batch {LOADER_BATCH} "
        f"({single:.0f} samples/s):",
        "",
        "| DataLoader workers | examples/s | x step demand |",
        "|---|---|---|",
    ]
    for workers, (rate, _count) in loaders.items():
        lines.append(f"| {workers} | {rate:.0f} | {rate / single:.1f} |")
    bottleneck = min(rate for rate, _ in loaders.values()) / single
    verdict = "so it is not the bottleneck" if bottleneck >= 1 else "so it IS the bottleneck"
    lines += [
        "",
        f"The slowest loader setting delivers {bottleneck:.1f} times what the step consumes, "
        f"{verdict} (persistent worker processes start once per run).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
