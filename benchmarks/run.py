"""Run every benchmark and write BENCHMARKS.md.

    .venv/bin/python -m benchmarks.run            # all sections
    .venv/bin/python -m benchmarks.run audio      # only sections whose name contains "audio"

Each module `benchmarks/bench_*.py` exposes `TITLE: str` and `run() -> str`, which returns a
Markdown section body. Ratios are measured side by side in one run; absolute times on a shared
machine are noisy, so each section says what it compares against.
"""

from __future__ import annotations

import importlib
import pkgutil
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "BENCHMARKS.md"
MARKER = "<!-- section: {} -->"


def machine() -> str:
    cores = len(__import__("os").sched_getaffinity(0))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return f"{platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__}, GPU: {gpu}"


def sections() -> list[str]:
    folder = Path(__file__).parent
    return sorted(
        info.name for info in pkgutil.iter_modules([str(folder)]) if info.name.startswith("bench_")
    )


def merge(existing: str, name: str, body: str) -> str:
    """Replace one section in the file, keeping the others (a partial run updates only its part)."""
    marker = MARKER.format(name)
    blocks = existing.split("\n" + "<!-- section: ")
    kept = [blocks[0]] + [
        "<!-- section: " + block for block in blocks[1:] if not block.startswith(name + " ")
    ]
    return "\n".join(kept).rstrip() + f"\n\n{marker}\n{body.strip()}\n"


def main(argv: list[str]) -> int:
    wanted = argv[1:]
    text = (
        OUTPUT.read_text()
        if OUTPUT.exists()
        else "# Benchmarks\n\nWritten by `.venv/bin/python -m benchmarks.run`. Ratios are measured side by side in one run.\n"
    )
    for name in sections():
        if wanted and not any(word in name for word in wanted):
            continue
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"benchmark: {module.TITLE}", file=sys.stderr)
        started = time.perf_counter()
        body = module.run()
        elapsed = time.perf_counter() - started
        section = f"## {module.TITLE}\n\n_Run {time.strftime('%Y-%m-%d')} on {machine()}; took {elapsed:.0f} s._\n\n{body}"
        text = merge(text, name, section)
        OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
