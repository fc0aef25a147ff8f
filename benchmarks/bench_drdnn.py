"""DRDNN: separation speed of a 3-minute track as a multiple of real time, peak memory for a
10-minute file (bounded by 30 s chunks), and training throughput with and without decoupling,
measured side by side (interleaved rounds, median)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from explorer.data.track import Track
from explorer.models import drdnn, registry

TITLE = "DRDNN: separation speed, memory and training throughput"
RATE = 44100
TRAINING_BATCH = 16
ROUNDS = 5
STEPS_PER_ROUND = 3

# Runs in a fresh process. The kernel's peak-RSS mark (VmHWM) is reset just before separating
# (writing 5 to /proc/self/clear_refs), so the peak belongs to the separation alone.
MEMORY_SCRIPT = """
import json, sys, numpy as np, torch
torch.set_num_threads(1)
from explorer.data.track import Track
from benchmarks.bench_drdnn import separator
minutes = float(sys.argv[1])
model = separator()
rng = np.random.default_rng(0)
mixture = (0.1 * rng.standard_normal((2, int(minutes * 60 * 44100)))).astype(np.float32)
track = Track("noise", mixture, 44100)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS")
outputs = model.separate(track)
after = status("VmHWM")
print(json.dumps({"before_mb": before, "after_mb": after,
                  "input_mb": mixture.nbytes / 1e6,
                  "outputs_mb": sum(v.nbytes for v in outputs.values()) / 1e6}))
"""


def separator() -> drdnn.DRDNNSeparator:
    """The shipped `drdnn` when it is there, else an untrained one of the same (small) size:
    the speed does not depend on the weights."""
    try:
        return registry.load_separator("drdnn", torch.device("cpu"))
    except Exception:  # noqa: BLE001 - any problem with shipped weights: measure the architecture
        return drdnn.DRDNNSeparator(drdnn.DRDNNNetwork(drdnn.DRDNNConfig()))


def separation_speed() -> str:
    model = separator()
    seconds = 180.0
    rng = np.random.default_rng(1)
    mixture = (0.1 * rng.standard_normal((2, int(seconds * RATE)))).astype(np.float32)
    track = Track("three minutes", mixture, RATE)
    model.separate(track.excerpt(0.0, 5.0))  # warm-up
    started = time.perf_counter()
    model.separate(track)
    elapsed = time.perf_counter() - started
    config = model.config
    return "\n".join([
        "| model | audio | wall time (s) | multiple of real time |", "|---|---|---|---|",
        f"| `{model.name}` ({config.preset} sizes, {config.variant}), CPU, {torch.get_num_threads()} "
        f"thread(s) | 3:00 stereo, separated as mono | {elapsed:.1f} | {seconds / elapsed:.1f} x |",
        "",
        "No GPU was lent to the session that wrote this section, so there is no GPU row.",
    ])  # fmt: skip


def peak_memory() -> str:
    rows = ["| file | input (MB) | outputs (MB) | RSS before / peak RSS while separating (MB) | growth minus outputs (MB) |",
            "|---|---|---|---|---|"]  # fmt: skip
    for minutes in (1.0, 10.0):
        found = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, str(minutes)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        values = json.loads(found.stdout.strip().splitlines()[-1])
        growth = values["after_mb"] - values["before_mb"] - values["outputs_mb"]
        rows.append(
            f"| {minutes:g} min stereo noise | {values['input_mb']:.0f} | {values['outputs_mb']:.0f} | "
            f"{values['before_mb']:.0f} / {values['after_mb']:.0f} | {growth:.0f} |"
        )
    rows += ["", "Outputs are five mono stems (the model works on the downmix). With 30 s chunks the "
             "growth beyond the outputs should not depend on the file's length."]  # fmt: skip
    return "\n".join(rows)


def training_throughput() -> str:
    """Frames per second of optimisation steps (forward, backward, Adam) on batches of 16 x 50
    frames, the two models alternating round by round; the best round of each (the least
    disturbed by other work on a shared machine)."""
    variants = {"DRDNN": drdnn.DRDNNConfig(), "DRDNN-wDCP": drdnn.DRDNNConfig(decoupling=False)}
    models, optimizers = {}, {}
    for name, config in variants.items():
        torch.manual_seed(0)
        models[name] = drdnn.DRDNNNetwork(config)
        optimizers[name] = torch.optim.Adam(models[name].parameters(), lr=1e-3)
    magnitude = torch.rand(TRAINING_BATCH, 50, 513)
    targets = torch.rand(TRAINING_BATCH, 4, 50, 513)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(ROUNDS + 1):
        for name, model in models.items():
            started = time.perf_counter()
            for _ in range(STEPS_PER_ROUND):
                estimates, _ = model.estimates(magnitude)
                loss = drdnn.mse_loss(estimates, targets)
                optimizers[name].zero_grad()
                loss.backward()
                optimizers[name].step()
            if round_index:  # the first round warms up
                rates[name].append(
                    STEPS_PER_ROUND * TRAINING_BATCH * 50 / (time.perf_counter() - started)
                )
    rows = ["| model | parameters | training frames/s (best / median of rounds) |", "|---|---|---|"]
    for name, model in models.items():
        parameters = sum(p.numel() for p in model.parameters())
        best, median = max(rates[name]), statistics.median(rates[name])
        rows.append(f"| {name} | {parameters:,} | {best:.0f} / {median:.0f} |")
    ratio = max(rates["DRDNN-wDCP"]) / max(rates["DRDNN"])
    rows += ["", f"Without decoupling: {ratio:.2f} x the throughput with it "
             f"({torch.get_num_threads()} thread(s), small sizes, 1 frame = 5.8 ms of audio)."]  # fmt: skip
    return "\n".join(rows)


def run() -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: stable numbers on a shared machine
    try:
        return _sections()
    finally:
        torch.set_num_threads(threads)


def _sections() -> str:
    return "\n\n".join([
        "### Separation of a 3-minute track\n\n" + separation_speed(),
        "### Peak memory (separate processes)\n\n" + peak_memory(),
        "### Training throughput, with and without decoupling\n\n" + training_throughput(),
    ])  # fmt: skip
