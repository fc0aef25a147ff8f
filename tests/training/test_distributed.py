"""Distributed data parallel training, for real: two gloo processes on this CPU.

- Under torchrun (`python -m torch.distributed.run`, the documented launcher), rank 1 is
  SIGKILLed in the middle of epoch 2; torchrun restarts both ranks, which resume from rank 0's
  last checkpoint and finish. The weights equal those of one process trained with the same global
  batch for the same steps (to float rounding: the gradient is averaged across ranks instead of
  summed in one batch).
- The streaming path (`--stream`: DataLoader worker, torch DistributedSampler) matches one process
  the same way.
- Bad input fails on every rank, naming the rank and the cause: a world size that does not divide
  the batch, mismatched configs, missing data.

The rank processes without torchrun are forked from the test process with the environment
torchrun would set and the same entry point (`explorer.cli.main`), which saves their import time.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from explorer.cli import main
from explorer.models import registry
from explorer.progress import run_job
from explorer.training import distributed
from explorer.training.loop import TrainingConfig, train
from tests.training.conftest import write_tracks

ROOT = Path(__file__).resolve().parents[2]
COMMON = [
    "train",
    "--model",
    "dae",
    "--frontend",
    "taslp2020-quick",
    "--device",
    "cpu",
    "--batch-size",
    "16",
    "--steps-per-epoch",
    "4",
]

# The entry point torchrun starts: explorer's own `main`, plus a fault for the test: on the first
# attempt (no elastic restart yet) rank KILL_RANK dies by SIGKILL before its optimiser step
# KILL_STEP, after writing a marker file.
ENTRY = textwrap.dedent("""
    import os, signal, sys
    import torch
    from explorer.cli import main

    rank = int(os.environ["RANK"])
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if first_attempt and rank == int(os.environ["KILL_RANK"]):
        step = torch.optim.Adam.step
        count = [0]

        def dying_step(self, *args, **kwargs):
            count[0] += 1
            if count[0] == int(os.environ["KILL_STEP"]):
                open(os.environ["KILL_MARKER"], "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
            return step(self, *args, **kwargs)

        torch.optim.Adam.step = dying_step
    sys.exit(main(sys.argv[1:]))
""")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, job, log: str) -> None:
    """`job`: the `explorer` arguments, or a function returning an exit code."""
    code = 1
    try:
        handle = open(log, "w", buffering=1)
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        sys.stdout = sys.stderr = handle
        faulthandler.dump_traceback_later(90, exit=True, file=handle)  # a hang shows where
        os.environ.update(
            RANK=str(rank),
            WORLD_SIZE=str(world),
            LOCAL_RANK=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            EXPLORER_DIST_TIMEOUT="60",
        )
        torch.set_num_threads(1)
        code = job() if callable(job) else main(job)
    finally:
        sys.stdout.flush()
        os._exit(code)


def run_ranks(argvs: list, folder: Path) -> list[tuple[int, str]]:
    """Fork one process per rank running `main(argv)` (or `argv()`); `[(exit code, output)]`."""
    port = _free_port()
    context = multiprocessing.get_context("fork")
    logs = [folder / f"rank{rank}.log" for rank in range(len(argvs))]
    processes = [
        context.Process(target=_rank_main, args=(rank, len(argvs), port, argv, str(log)))
        for rank, (argv, log) in enumerate(zip(argvs, logs, strict=True))
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        if process.exitcode is None:
            process.kill()
    return [
        (process.exitcode, log.read_text()) for process, log in zip(processes, logs, strict=True)
    ]


def assert_same_weights(first: Path, second: Path) -> None:
    first_state = registry.load_checkpoint(first)["state_dict"]
    second_state = registry.load_checkpoint(second)["state_dict"]
    assert first_state.keys() == second_state.keys()
    for key, value in first_state.items():
        torch.testing.assert_close(second_state[key], value, rtol=1e-4, atol=2e-6)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_tracks(tmp_path_factory.mktemp("distributed") / "data", count=4, seconds=1.0)


def single_process(data: Path, out: Path, capsys, *extra: str) -> dict:
    code = main([*COMMON, "--data", str(data), "--out", str(out), "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)["runs"][0]


def test_a_rank_killed_mid_run_restarts_from_the_checkpoint_and_matches_one_process(
    data: Path, tmp_path: Path, capsys
) -> None:
    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY)
    marker, out = tmp_path / "killed", tmp_path / "two.pt"
    environment = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        KILL_RANK="1",
        KILL_STEP="6",  # epoch 2 of 4-step epochs: after rank 0 wrote epoch 1's checkpoint
        KILL_MARKER=str(marker),
        OMP_NUM_THREADS="1",
    )
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher += ["--nproc_per_node", "2", "--max-restarts", "1", "--monitor-interval", "0.2"]
    process = subprocess.run(
        [*launcher, str(entry), *COMMON, "--data", str(data), "--epochs", "3", "--out", str(out)],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        timeout=240,
        text=True,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert marker.exists(), "rank 1 was never killed"
    assert "resuming every rank from" in process.stderr
    payload = registry.load_checkpoint(out, "dae")
    assert payload["extra"]["finished"] and payload["provenance"]["epochs"] == 3
    reference = single_process(data, tmp_path / "one.pt", capsys, "--epochs", "3")
    history = payload["extra"]["history"]
    assert [record["epoch"] for record in history] == [1, 2, 3]
    for shared, single in zip(history, reference["history"], strict=True):
        # Validation losses are all-reduced over both ranks' validation batches.
        assert shared["validation_loss"] == pytest.approx(single["validation_loss"], rel=1e-5)
        assert shared["train_loss"] == pytest.approx(single["train_loss"], rel=1e-5)
    assert_same_weights(tmp_path / "one.pt", out)


def test_streaming_ranks_match_one_streaming_process(data: Path, tmp_path: Path, capsys) -> None:
    stream = ["--stream", "--workers", "1", "--cache", str(tmp_path / "cache"), "--epochs", "2"]
    reference = single_process(data, tmp_path / "one.pt", capsys, *stream)
    argv = [*COMMON, "--data", str(data), "--out", str(tmp_path / "two.pt"), "--json", *stream]
    (code0, log0), (code1, log1) = run_ranks([argv, argv], tmp_path)
    assert code0 == 0 and code1 == 0, log0[-2000:] + log1[-2000:]
    result = json.loads(log0.strip().splitlines()[-1])["runs"][0]
    assert log1.strip() == ""  # only rank 0 reports
    assert [r["validation_loss"] for r in result["history"]] == pytest.approx(
        [r["validation_loss"] for r in reference["history"]], rel=1e-5
    )
    assert_same_weights(tmp_path / "one.pt", tmp_path / "two.pt")


def test_bad_distributed_input_names_the_rank_and_the_cause(data: Path, tmp_path: Path) -> None:
    base = [*COMMON, "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "x.pt")]
    odd = [arg if arg != "16" else "15" for arg in base]
    results = run_ranks([odd, odd], tmp_path)
    for rank, (code, log) in enumerate(results):
        assert code == 2, log
        assert f"rank {rank} of 2: batch size 15 is not divisible by the world size 2" in log

    mismatched = [*base, "--learning-rate", "0.001"]
    results = run_ranks([base, mismatched], tmp_path)
    for code, log in results:
        assert code == 2, log
        assert "rank 1's configuration differs from rank 0's" in log
        assert "training.learning_rate: 0.001 vs 0.0001" in log

    missing = [*COMMON, "--data", str(tmp_path / "nowhere"), "--epochs", "1"]
    results = run_ranks([missing, missing], tmp_path)
    for rank, (code, log) in enumerate(results):
        assert code == 2 and f"rank {rank} of 2: no such training data" in log, log
    assert not (tmp_path / "x.pt").exists()


# Validation losses per epoch of two validation batches; dealt round-robin, rank 0 sees only the
# first and rank 1 only the second, and each alone would halve and stop at other epochs.
FIRST = [5.0, 4.0, 3.5, 3.7, 3.0, 3.1, 2.7, 2.9, 3.1, 1.0, 1.0, 1.0]
SECOND = [5.0, 4.0, 5.5, 4.7, 3.0, 3.1, 3.7, 3.7, 3.7, 1.0, 1.0, 1.0]


class PlateauTask:
    """A linear regression whose validation batches report scripted losses."""

    kind = "scripted"
    data_description = "scripted"

    def __init__(self) -> None:
        self.network = nn.Linear(3, 1)
        self.epoch = 0

    def model_config(self):
        return {}

    def module(self):
        return self.network

    def prepare(self):
        yield from ()

    def examples_per_epoch(self):
        return 32

    def train_batches(self, seed, epoch, batch_size):
        rng = np.random.default_rng([seed, epoch])
        for _ in range(32 // batch_size):
            x = rng.standard_normal((batch_size, 3)).astype(np.float32)
            yield x, x.sum(axis=1, keepdims=True)

    def validation_batches(self):
        self.epoch += 1
        yield (np.zeros((1, 1), np.float32),)
        yield (np.ones((1, 1), np.float32),)

    def loss(self, batch):
        if len(batch) == 1:
            script = SECOND if float(batch[0][0, 0]) else FIRST
            return torch.tensor(script[self.epoch - 1])
        return nn.functional.mse_loss(self.network(batch[0]), batch[1])


def _plateau_rank() -> int:
    arguments = argparse.Namespace(device="cpu", resume=None, model=None, out=None, seeds=1)
    with distributed.session(arguments) as device:
        config = TrainingConfig(epochs=12, batch_size=8)
        torch.manual_seed(0)
        task = distributed.wrap(PlateauTask(), config, arguments)
        result = run_job(train(task, config, device))
    print(json.dumps({key: result[key] for key in ("epochs", "stopped", "history")}))
    return 0


def test_early_stopping_is_decided_on_the_reduced_loss_on_every_rank(tmp_path: Path) -> None:
    torch.manual_seed(0)
    single = run_job(
        train(PlateauTask(), TrainingConfig(epochs=12, batch_size=8), torch.device("cpu"))
    )
    results = run_ranks([_plateau_rank, _plateau_rank], tmp_path)
    reports = []
    for code, log in results:
        assert code == 0, log
        reports.append(json.loads(log.strip().splitlines()[-1]))
    means = [(a + b) / 2 for a, b in zip(FIRST, SECOND, strict=True)]
    expected = pytest.approx(means[: single["epochs"]], rel=1e-6)
    assert [r["validation_loss"] for r in single["history"]] == expected
    for report in reports:
        assert report["stopped"] == single["stopped"] == "early"
        assert report["epochs"] == single["epochs"]
        assert [r["learning_rate"] for r in report["history"]] == [
            r["learning_rate"] for r in single["history"]
        ]
        assert [r["validation_loss"] for r in report["history"]] == expected
