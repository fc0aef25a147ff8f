"""Training the naive stacked autoencoder (FACTS 4) through the shared loop.

- `prepare()` (a fresh run only) fits the scaling ceiling (the largest training-mixture
  magnitude) and runs the greedy layer-wise RBM pre-training with CD-k, yielding Progress with
  payload `{"phase": "pretraining", "layer", "epoch", "reconstruction_error"}`; then it unrolls
  the RBMs into the network.
- The loop's epochs fine-tune the unrolled encoder-decoder with the cross-entropy between the
  reconstruction and the input patch (`binary_cross_entropy_with_logits`, mean per value).

Examples are raw magnitude patches of the mono mixture (float16 in memory, scaled per batch).
Pre-training is not resumable mid-way: a run killed during it restarts from scratch; fine-tuning
resumes per epoch like every task.

`instrument_data` is the paper's controlled data (`--data instruments[:NxS]`): synthetic isolated
notes of drums, flute, guitar, violin and piano, the 25 combinations of one to three
instruments cycled over the tracks (`explorer.data.synth.render_track(seed, S, mode="instruments")`).
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer.data.track import Track
from explorer.errors import InputError
from explorer.models import naive_ae
from explorer.models.naive_ae import RBM, NaiveAEConfig, RBMTrainer
from explorer.progress import Job, Progress
from explorer.training.data import TrackSource, TrainingData
from explorer.training.frames import PooledTask
from explorer.training.tasks import register_task

VALIDATION_BATCH = 1024
INSTRUMENT_TRACKS, INSTRUMENT_SECONDS = 25, 10.0
INSTRUMENT_VALIDATION_SEED = 100_000
INSTRUMENT_TEST_SEED = 200_000
FIRST_EPOCH_MOMENTUM = 0.5


class NaiveAETask(PooledTask):
    validation_batch = VALIDATION_BATCH

    def __init__(self, config: NaiveAEConfig, data: TrainingData):
        self.kind = naive_ae.KIND
        self.config = config
        self.data_description = data.description
        self.network = naive_ae.NaiveAutoencoder(config)
        self.frontend = naive_ae.make_frontend(config.frontend)
        self.training_layout = config.layout(training=True)
        self._make_pools(data)
        self.pretraining_history: list[dict[str, Any]] = []

    def model_config(self) -> dict[str, Any]:
        return self.config.to_dict()

    def module(self) -> nn.Module:
        return self.network

    @torch.inference_mode()
    def features(self, track: Track) -> tuple[np.ndarray]:
        """Raw magnitude patches of the mono mixture, `(patches, patch size)` float16."""
        track = track.resampled(self.frontend.sample_rate).mono()
        magnitude = self.frontend.encode(torch.from_numpy(track.mixture))[0].abs()
        patches = naive_ae.extract_patches(magnitude, self.training_layout)
        return (patches.clamp_max(60000.0).half().numpy(),)

    def scaled(self, patches: torch.Tensor) -> torch.Tensor:
        return naive_ae.scale_magnitude(patches.float(), self.network.ceiling, self.config)

    def prepare(self) -> Job[None]:
        ceiling = 0.0
        for (patches,) in self.train_pool.all_examples():
            ceiling = max(ceiling, float(np.max(patches, initial=0.0)))
        if ceiling <= 0:
            raise InputError(f"the training mixtures in {self.data_description} are silent")
        self.network.ceiling.fill_(ceiling)
        rbms = yield from self.pretrain()
        self.network.load_rbms(rbms)

    def pretrain(self) -> Job[list[RBM]]:
        """Greedy layer-wise CD-k; each RBM learns the previous one's hidden probabilities."""
        config = self.config
        device = self.network.ceiling.device
        generator = torch.Generator(device=device)
        generator.manual_seed(int(torch.randint(0, 2**62, (1,))))
        shuffle_seed = int(np.random.randint(0, 2**31 - 1))
        sizes = self.network.sizes
        steps = -(-self.train_pool.example_count() // config.rbm_batch_size)
        total = (len(sizes) - 1) * config.rbm_epochs * steps
        rbms: list[RBM] = []
        done, last_report = 0, time.monotonic()
        for layer in range(len(sizes) - 1):
            mean = self._layer_input_mean(rbms, device, shuffle_seed)
            rbm = RBM.initial(
                sizes[layer], sizes[layer + 1], generator_for_init(generator), device, mean
            )
            trainer = RBMTrainer(
                rbm, config.rbm_learning_rate, config.rbm_weight_decay, config.cd_steps, generator
            )
            for epoch in range(config.rbm_epochs):
                momentum = FIRST_EPOCH_MOMENTUM if epoch == 0 else config.rbm_momentum
                error_sum, count = 0.0, 0
                for (batch,) in self.train_pool.batches(
                    shuffle_seed + layer, epoch, config.rbm_batch_size
                ):
                    visible = self._propagate(rbms, torch.from_numpy(batch).to(device))
                    trainer.step(visible, momentum)
                    error_sum += rbm.reconstruction_error(visible) * len(visible)
                    count += len(visible)
                    done += 1
                    if time.monotonic() - last_report > 0.25:
                        last_report = time.monotonic()
                        yield Progress(
                            done,
                            total,
                            f"RBM {layer + 1} epoch {epoch + 1}",
                            {
                                "phase": "pretraining",
                                "layer": layer + 1,
                                "epoch": epoch + 1,
                                "reconstruction_error": error_sum / count,
                            },
                        )
                record = {
                    "phase": "pretraining",
                    "layer": layer + 1,
                    "epoch": epoch + 1,
                    "reconstruction_error": error_sum / max(count, 1),
                }
                self.pretraining_history.append(record)
                yield Progress(
                    done,
                    total,
                    f"RBM {layer + 1} epoch {epoch + 1}: reconstruction error "
                    f"{record['reconstruction_error']:.4g}",
                    record,
                )
            rbms.append(rbm)
        return rbms

    @torch.no_grad()
    def _propagate(self, rbms: list[RBM], batch: torch.Tensor) -> torch.Tensor:
        """Raw patches -> the input of the next RBM (hidden probabilities of the trained ones)."""
        value = self.scaled(batch)
        for rbm in rbms:
            value = rbm.hidden_probabilities(value)
        return value

    @torch.no_grad()
    def _layer_input_mean(self, rbms: list[RBM], device: torch.device, seed: int) -> torch.Tensor:
        """Mean input of the next RBM over (at most) 20 batches, for its visible biases."""
        total, count = None, 0
        for index, (batch,) in enumerate(self.train_pool.batches(seed, 0, 256)):
            if index >= 20:
                break
            value = self._propagate(rbms, torch.from_numpy(batch).to(device))
            total = value.sum(dim=0) if total is None else total + value.sum(dim=0)
            count += len(value)
        if total is None:
            raise InputError(f"no training examples in {self.data_description}")
        return total / count

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        target = self.scaled(batch[0])
        return nn.functional.binary_cross_entropy_with_logits(self.network(target), target)


def generator_for_init(generator: torch.Generator) -> torch.Generator:
    """A CPU generator for weight initialisation, seeded from `generator` (so CPU and CUDA runs
    start from the same weights)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- the instrument data
def instrument_source(seed: int, seconds: float) -> TrackSource:
    def load() -> Track:
        from explorer.data.synth import render_track

        return render_track(seed, seconds, mode="instruments")

    return TrackSource(f"instruments-{seed}", load)


def instrument_data(
    tracks: int = INSTRUMENT_TRACKS, seconds: float = INSTRUMENT_SECONDS
) -> TrainingData:
    """Train on seeds 0..tracks-1 (every combination once per 25 tracks), validate on a fifth
    as many (at least 2) from seed 100000."""
    train = tuple(instrument_source(seed, seconds) for seed in range(tracks))
    validation = tuple(
        instrument_source(INSTRUMENT_VALIDATION_SEED + index, seconds)
        for index in range(max(2, tracks // 5))
    )
    return TrainingData(f"instruments:{tracks}x{seconds:g}", train, validation)


def instrument_test_tracks(tracks: int, seconds: float) -> list[TrackSource]:
    return [instrument_source(INSTRUMENT_TEST_SEED + index, seconds) for index in range(tracks)]


def parse_instrument_spec(spec: str) -> tuple[int, float]:
    """`instruments`, `instruments:N` or `instruments:NxS` -> (N, S)."""
    if spec == "instruments":
        return INSTRUMENT_TRACKS, INSTRUMENT_SECONDS
    match = re.fullmatch(r"instruments:(\d+)(?:x(\d+(?:\.\d+)?))?", spec)
    if not match or int(match.group(1)) < 1:
        raise InputError(
            f"bad instrument data spec '{spec}' (use instruments, instruments:N or instruments:NxSECONDS)"
        )
    return int(match.group(1)), float(match.group(2) or INSTRUMENT_SECONDS)


def is_instrument_spec(spec: str) -> bool:
    return spec == "instruments" or spec.startswith("instruments:")


def _task(model_config: dict[str, Any], data: TrainingData) -> NaiveAETask:
    return NaiveAETask(NaiveAEConfig.from_dict(model_config), data)


register_task(naive_ae.KIND, _task)


def store_calibration(path: str) -> list[int]:
    """Calibrate a checkpoint's code units on synthetic isolated notes (k-means, as the
    separator does at load time) and store the assignment in it, so loading is instant.
    Returns the number of units per source."""
    from explorer.models import registry

    payload = registry.load_checkpoint(path, naive_ae.KIND)
    config = NaiveAEConfig.from_dict(payload["config"])
    network = naive_ae.build_network(config, payload["state_dict"])
    labels = naive_ae.calibrate(naive_ae.PatchCoder(network))
    state = dict(payload["state_dict"])
    state["unit_sources"] = torch.from_numpy(labels)
    registry.save_checkpoint(
        path, naive_ae.KIND, payload["config"], state, payload["provenance"], payload.get("extra")
    )
    return [int(np.sum(labels == index)) for index in range(len(config.sources))]


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "calibrate":
        sys.exit("usage: python -m explorer.training.naive_ae_task calibrate CHECKPOINT")
    print("units per source:", store_calibration(sys.argv[2]))
