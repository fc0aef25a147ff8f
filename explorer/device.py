"""The one place where the compute device is chosen (DESIGN.md: `auto` = CUDA if available)."""

from __future__ import annotations

import torch

from explorer.errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | None = "auto") -> torch.device:
    """`auto`, `cpu`, `cuda` or `cuda:N` -> a usable torch.device, or InputError."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(
                f"device '{name}' requested, but CUDA is not available on this machine (use --device cpu)"
            )
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"device '{name}' does not exist ({torch.cuda.device_count()} CUDA device(s))"
            )
        return device
    raise InputError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)")


def describe(device: torch.device) -> str:
    """A short label for the device in use, e.g. `cpu` or `cuda:0 (NVIDIA H100)`."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return "cpu"
