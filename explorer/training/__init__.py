"""Training for every model family.

- `loop.train(task, TrainingConfig, device, checkpoint, resume) -> Job`: the generic loop (Adam,
  plateau halving and early stopping, seeds, device, per-epoch atomic resumable checkpoints).
- `tasks`: `register_task(kind, factory)`; a factory builds a `TrainingTask` (module, batches,
  loss) from a model config and `TrainingData`. The DAE family registers itself there.
- `data.resolve_data(D)`: training and validation tracks for any `--data`; `frames.ExamplePool`:
  shuffled batches of per-track examples in bounded memory.
- `checkpoints`: in-progress (resumable) and finished checkpoints; `schedule.PlateauSchedule`.
- `sweep`: a grid of configs times seeds, each run one training, tabulated.

The `explorer train` and `explorer sweep` commands over these are `explorer/cli/train.py` and
`explorer/cli/sweep.py`.
"""
