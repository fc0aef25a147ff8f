"""Progress reports yielded by long work (DESIGN.md: long work is a generator).

A job is a generator that yields `Progress` and returns its result. The CLI drives it with a
progress bar on stderr; the GUI drives it in a worker thread. Cancelling means `close()`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

Result = TypeVar("Result")


@dataclass(frozen=True)
class Progress:
    """`done` of `total` units of work; `payload` carries partial results (a loss value, a
    separated stem) for drivers that want them."""

    done: float
    total: float
    message: str = ""
    payload: Any = None

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)


Job = Generator[Progress, None, Result]


def run_job(job: Job[Result], on_progress: Callable[[Progress], None] | None = None) -> Result:
    """Drive a job to the end and return its result (the generator's return value)."""
    try:
        while True:
            progress = next(job)
            if on_progress is not None:
                on_progress(progress)
    except StopIteration as stop:
        return stop.value
