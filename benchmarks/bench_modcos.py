"""Mod-cos autoencoder at the paper's size (C=800, L=2048, S=384): encode+decode throughput as
a multiple of real time, one training step, achieved FLOP/s against a bare conv1d of the same
shape timed in the same run, and `decode_frames` for a 1-second edit inside a 3-minute track
against a full decode. On the GPU too when one is there."""

from __future__ import annotations

import time

import torch
from torch.nn import functional

from explorer.models import modcos
from explorer.training import modcos_task

TITLE = "Mod-cos autoencoder (EUSIPCO 2020): throughput, training step, FLOP/s, decode_frames"
RATE = 44100


def best_time(function, repeats: int = 3, device: torch.device | None = None) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        function()
        _sync(device)
        times.append(time.perf_counter() - started)
    return min(times)


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def flops(config: modcos.ModCosConfig, frames: int, batch: int = 1) -> dict[str, float]:
    """Multiply-adds x 2 of each stage for `frames` frames."""
    C, L = config.components, config.kernel_length
    return {
        "strided conv": 2.0 * batch * frames * C * L,
        "dilated conv": 2.0 * batch * frames * C * C * config.dilated_kernel,
        "transposed conv": 2.0 * batch * frames * C * L,
    }


def throughput(device: torch.device, seconds: float) -> list[str]:
    config = modcos.ModCosConfig()
    model = modcos.ModCosAutoencoder(config).to(device).eval()
    wave = (0.1 * torch.randn(1, int(seconds * RATE))).to(device)
    frames = model.frames_for(wave.shape[-1])
    with torch.inference_mode():
        model(wave)  # warm up
        total = best_time(lambda: model(wave), device=device)
        hidden = torch.rand(1, config.components, frames, device=device)
        padded = functional.pad(wave[:, None, :], (config.padding, config.kernel_length))
        strided = best_time(
            lambda: functional.conv1d(padded, model.encoder.first.weight, stride=config.hop_length),
            device=device,
        )
        dilated = best_time(lambda: model.encoder.dilated(hidden), device=device)
        kernels = model.sorted_kernels()[:, None, :]
        transposed = best_time(
            lambda: functional.conv_transpose1d(hidden, kernels, stride=config.hop_length),
            device=device,
        )
    work = flops(config, frames)
    bare = strided + dilated + transposed
    rows = [
        f"| {device.type} | encode + decode of {seconds:g} s | {seconds / total:.1f}x real time | "
        f"{sum(work.values()) / total / 1e9:.1f} GFLOP/s | bare convs of the same shapes: "
        f"{sum(work.values()) / bare / 1e9:.1f} GFLOP/s (model at {bare / total:.0%} of it) |"
    ]
    for (name, amount), elapsed in zip(work.items(), (strided, dilated, transposed), strict=True):
        rows.append(
            f"| {device.type} | bare {name} alone | | {amount / elapsed / 1e9:.1f} GFLOP/s | {1000 * elapsed:.0f} ms |"
        )
    return rows


def training_step(device: torch.device) -> str:
    """One Adam step of the paper's loss on a batch of 8 one-second segments."""
    config = modcos.ModCosConfig()
    model = modcos.ModCosAutoencoder(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = [0.1 * torch.randn(modcos_task.PAPER_BATCH, RATE, device=device) for _ in range(2)]
    noise = 1e-4 * torch.randn_like(batch[0])

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        modcos.training_loss(model, batch[0], batch[1], noise).backward()
        optimizer.step()

    step()
    elapsed = best_time(step, repeats=2, device=device)
    return f"| {device.type} | one training step (batch 8 x 1 s, C=800) | {elapsed:.2f} s |"


def edit(device: torch.device) -> str:
    """A 1-second mask edit inside a 3-minute track: decode_frames against the full decode."""
    config = modcos.ModCosConfig()
    model = modcos.ModCosAutoencoder(config).to(device).eval()
    length = 180 * RATE
    representation = torch.rand(1, config.components, model.frames_for(length), device=device)
    start = model.frames_for(90 * RATE)
    stop = start + model.frames_for(RATE)
    with torch.inference_mode():
        full_time = best_time(
            lambda: model.decode(representation, length), repeats=2, device=device
        )
        part_time = best_time(
            lambda: model.decode_frames(representation, start, stop, length), device=device
        )
        wave, first = model.decode_frames(representation, start, stop, length)
        error = float(
            (wave - model.decode(representation, length)[:, first : first + wave.shape[-1]])
            .abs()
            .max()
        )
    return (
        f"| {device.type} | 1 s edit in a 3 min track | full decode {1000 * full_time:.0f} ms | "
        f"decode_frames {1000 * part_time:.1f} ms | **{full_time / part_time:.0f}x cheaper** | "
        f"max difference {error:.1e} |"
    )


def run() -> str:
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    # One thread: the CPU is shared, and a second OpenMP thread that waits on a busy core
    # makes timings meaningless; the multiple of real time is per core.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _tables(devices)
    finally:
        torch.set_num_threads(previous)


def _tables(devices: list[torch.device]) -> str:
    threads = torch.get_num_threads()
    parts = [
        f"Paper size C=800, L=2048, S=384, L'=5, D=10; torch threads: {threads}. FLOPs count "
        "multiply-adds twice; the bare convs run the model's three convolutions alone on the "
        "same shapes in the same run, so the ratio says what the model's glue (sorting, "
        "padding, ReLU, residual) costs.",
        "",
        "| device | what | speed | achieved | compared |",
        "|---|---|---|---|---|",
    ]
    for device in devices:
        parts += throughput(device, 10.0 if device.type == "cpu" else 60.0)
    parts += ["", "| device | what | time |", "|---|---|---|"]
    parts += [training_step(device) for device in devices]
    parts += [
        "",
        "| device | edit | full | partial | ratio | exactness |",
        "|---|---|---|---|---|---|",
    ]
    parts += [edit(device) for device in devices]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(run())
