"""The paper's plateau protocol: halve the learning rate after `halve_patience` epochs without
improvement, stop after `stop_patience` (FACTS 1: 2 and 4).

The rule, made explicit: an epoch improves when its validation loss is below the best so far by
more than `min_delta`. `bad` counts epochs since the last improvement. The learning rate is
multiplied by `factor` whenever `bad` reaches a positive multiple of `halve_patience` (so after 2
bad epochs, then again after 4, like Keras' ReduceLROnPlateau(patience=2) whose counter restarts
after each reduction), and training stops when `bad` reaches `stop_patience`. With the defaults
torch's ReduceLROnPlateau(factor=0.5, patience=1, threshold=0) halves at the same epochs.
The state is plain JSON, so it travels in checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class PlateauSchedule:
    halve_patience: int = 2
    stop_patience: int = 4
    factor: float = 0.5
    min_delta: float = 0.0
    best: float = math.inf
    best_epoch: int = -1
    bad: int = 0
    epochs: int = 0

    def step(self, loss: float) -> tuple[bool, bool, bool]:
        """Record one epoch's validation loss -> `(improved, halve, stop)`."""
        self.epochs += 1
        improved = math.isfinite(loss) and loss < self.best - self.min_delta
        if improved:
            self.best, self.best_epoch, self.bad = loss, self.epochs, 0
        else:
            self.bad += 1
        stop = self.bad >= self.stop_patience
        halve = not stop and self.bad > 0 and self.bad % self.halve_patience == 0
        return improved, halve, stop

    def state_dict(self) -> dict:
        return {
            "best": None if math.isinf(self.best) else self.best,
            "best_epoch": self.best_epoch,
            "bad": self.bad,
            "epochs": self.epochs,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best = math.inf if state["best"] is None else float(state["best"])
        self.best_epoch, self.bad, self.epochs = (
            int(state["best_epoch"]),
            int(state["bad"]),
            int(state["epochs"]),
        )
