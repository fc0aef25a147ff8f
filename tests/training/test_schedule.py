"""The plateau protocol: halve after 2 epochs without improvement, stop after 4 (FACTS 1),
checked against torch's ReduceLROnPlateau as an independent reference."""

from __future__ import annotations

import torch

from explorer.training.schedule import PlateauSchedule


def run(losses: list[float]) -> tuple[list[float], int | None]:
    schedule = PlateauSchedule()
    rate, rates = 1.0, []
    for epoch, loss in enumerate(losses, start=1):
        _improved, halve, stop = schedule.step(loss)
        if halve:
            rate *= 0.5
        rates.append(rate)
        if stop:
            return rates, epoch
    return rates, None


def test_halves_after_two_bad_epochs_and_stops_after_four() -> None:
    rates, stopped = run([5.0, 4.0, 4.5, 4.2, 3.0, 3.1, 3.2, 3.3, 3.4, 2.0])
    # Epochs 3-4 are bad: halve after epoch 4. Epoch 5 improves; 6-9 are bad: halve after 7,
    # stop after 9 (the 4th bad epoch), so epoch 10 never runs.
    assert rates == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    assert stopped == 9


def test_stop_epoch_is_the_fourth_without_improvement() -> None:
    _rates, stopped = run([1.0, 2.0, 2.0, 2.0, 2.0, 0.5])
    assert stopped == 5
    _rates, stopped = run([1.0, 0.9, 0.8, 0.7])
    assert stopped is None


def test_matches_torch_reduce_lr_on_plateau() -> None:
    losses = [3.0, 2.0, 2.5, 2.6, 1.9, 1.9, 2.0, 1.8, 1.7, 1.75, 1.8, 1.6, 1.6, 1.65]
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=0.5, patience=1, threshold=0.0
    )
    schedule, rate = PlateauSchedule(stop_patience=100), 1.0
    for loss in losses:
        reference.step(loss)
        if schedule.step(loss)[1]:
            rate *= 0.5
        assert rate == optimizer.param_groups[0]["lr"]


def test_state_round_trip() -> None:
    schedule = PlateauSchedule()
    for loss in (3.0, 2.0, 2.5):
        schedule.step(loss)
    restored = PlateauSchedule()
    restored.load_state_dict(schedule.state_dict())
    assert restored.step(2.6) == schedule.step(2.6)
    fresh = PlateauSchedule()
    fresh.load_state_dict(PlateauSchedule().state_dict())
    assert fresh.step(1.0)[0]
