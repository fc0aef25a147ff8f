"""The naive stacked autoencoder on spectrogram patches (FACTS.md section 4).

**Input.** Magnitudes of the mono mixture in the `naive-ae` STFT preset (Hamming window
`m = 1.81 fs / b`, b = 75 Hz: 1064 samples, 533 bins, hop m/4 [open]), scaled to [0, 1], cut
into patches that tile the `(bins, frames)` plane:

- `orientation="time"` (the paper): a patch is every bin by `patch_length` consecutive frames
  (15), one patch per `patch_step` frames. 533 x 15 = 7995 inputs.
- `orientation="transposed"` (the paper's proposed fix, [open] how exactly): time and frequency
  swap roles: a patch is `patch_length` consecutive bins (15) by `context` frames (64, 0.39 s),
  one per `patch_step` bins and `context_step` frames. The network then sees a band's temporal
  course at full time resolution instead of a whole spectrum smeared over 15 frames.

A patch is flattened bins-major: value `(bin, frame)` is input `bin * patch_frames + frame`.
Patches are reassembled by overlap-add (the mean over the patches covering each value), which
inverts patch extraction exactly.

**Scaling to [0, 1]** [open], `scaling` in the config:

- `"log"` (default): `v = clip(log1p(|X| / r) / log1p(c / r), 0, 1)` with `c` the largest
  training-mixture magnitude (buffer `ceiling`, fitted before training) and `r = c * 10^(-60/20)`
  (`dynamic_range_db`): a 60 dB range maps onto [0, 1] roughly logarithmically. Linear
  magnitudes are so sparse that a Bernoulli RBM learns little from them.
- `"max"`: `v = clip(|X| / c, 0, 1)`.

**Network.** Four stacked sigmoid layers of 500 units (`hidden`). Pre-training: greedy
layer-wise Bernoulli-Bernoulli RBMs with CD-k (`RBM`, `cd_gradients`). The first visible layer
is also Bernoulli: the [0, 1] inputs are used as probabilities, as Hinton & Salakhutdinov (2006)
did with grey levels (no Gaussian visible layer). The RBMs are unrolled into an encoder and a
mirrored decoder, then fine-tuned with the cross-entropy between the sigmoid output and the
input patch. `tied=True` shares each decoder weight with the transposed encoder weight (halves
the file: the shipped demo uses it to stay under 10 MB in fp16).

**Separation by surgery.** Encode the mixture's patches, keep the code units of one source
(weight 1, or a soft weight), zero the rest, decode, overlap-add, unscale and invert with the
mixture phase. A source with no units is silence (the decoder's resting output for an all-zero
code belongs to no source). The separator's unit assignment (`unit_sources` buffer, -1 where
not calibrated) comes from k-means on the units' per-source activation profiles; checkpoints
without one are calibrated at load time on synthetic isolated notes (`calibrate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer.audio.frontends import PRESETS, make_frontend
from explorer.data.track import STEM_NAMES, Track
from explorer.errors import InputError
from explorer.models import probes, registry
from explorer.models.base import Separator

KIND = "naive-ae"
INSTRUMENT_SOURCES = ("drums", "flute", "guitar", "violin", "piano")
ORIENTATIONS = ("time", "transposed")
SCALINGS = ("log", "max")
CALIBRATION_SEED = 300_000
CALIBRATION_SECONDS = 8.0
# Patches quieter than this fraction of the loudest patch's mean are silence between notes;
# leaving them out keeps a shared "silence" pattern from dominating every source's map.
ACTIVE_FRACTION = 0.1


@dataclass(frozen=True)
class PatchLayout:
    """How patches tile a `(bins, frames)` plane: patch size and step along each axis."""

    patch_bins: int
    patch_frames: int
    bin_step: int
    frame_step: int

    @property
    def size(self) -> int:
        return self.patch_bins * self.patch_frames


@dataclass(frozen=True)
class NaiveAEConfig:
    """The model and its pre-training. `hidden` lists the layer sizes (the paper: 4 x 500);
    `sources` names what the code units are assigned to (the paper's five instruments, or the
    MUSDB18 stems). `cd_steps` is k of CD-k; RBM training uses SGD with momentum 0.5 in the
    first epoch and `rbm_momentum` after (Hinton's practical guide), L2 `rbm_weight_decay`.
    Training patches are taken every `training_stride` patch steps along the patch axis."""

    kind: str = KIND
    frontend: str = "naive-ae"
    orientation: str = "time"
    patch_length: int = 15
    patch_step: int = 1
    context: int = 64
    context_step: int = 16
    hidden: tuple[int, ...] = (500, 500, 500, 500)
    tied: bool = False
    scaling: str = "log"
    dynamic_range_db: float = 60.0
    sources: tuple[str, ...] = INSTRUMENT_SOURCES
    cd_steps: int = 1
    rbm_epochs: int = 10
    rbm_batch_size: int = 100
    rbm_learning_rate: float = 0.05
    rbm_momentum: float = 0.9
    rbm_weight_decay: float = 2e-4
    training_stride: int = 4

    def __post_init__(self) -> None:
        if self.kind != KIND:
            raise InputError(f"a naive-ae config cannot have kind '{self.kind}'")
        if self.frontend not in PRESETS:
            raise InputError(f"unknown front-end '{self.frontend}' (known: {', '.join(PRESETS)})")
        if self.orientation not in ORIENTATIONS:
            raise InputError(
                f"orientation must be {' or '.join(ORIENTATIONS)}, got '{self.orientation}'"
            )
        if self.scaling not in SCALINGS:
            raise InputError(f"scaling must be {' or '.join(SCALINGS)}, got '{self.scaling}'")
        for name in ("patch_length", "patch_step", "context", "context_step", "cd_steps"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.patch_step > self.patch_length or self.context_step > self.context:
            raise InputError(
                "patch steps must not exceed the patch size (patches must overlap or touch)"
            )
        if not self.hidden or any(int(size) < 1 for size in self.hidden):
            raise InputError(f"hidden layer sizes must be positive, got {list(self.hidden)}")
        if self.orientation == "transposed" and self.patch_length > self.bins:
            raise InputError(
                f"a transposed patch of {self.patch_length} bins exceeds {self.bins} bins"
            )
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise InputError(f"sources must be distinct names, got {list(self.sources)}")
        if self.dynamic_range_db <= 0 or self.training_stride < 1:
            raise InputError("dynamic_range_db and training_stride must be positive")

    @property
    def bins(self) -> int:
        return PRESETS[self.frontend].bins

    def layout(self, training: bool = False) -> PatchLayout:
        """The patch tiling; `training` thins it by `training_stride` along the patch axis."""
        stride = self.training_stride if training else 1
        if self.orientation == "time":
            step = min(self.patch_step * stride, self.patch_length)
            return PatchLayout(self.bins, self.patch_length, self.bins, step)
        step = min(self.patch_step * stride, self.patch_length)
        return PatchLayout(self.patch_length, self.context, step, self.context_step)

    @property
    def input_size(self) -> int:
        return self.layout().size

    @property
    def code_size(self) -> int:
        return int(self.hidden[-1])

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["hidden"] = list(self.hidden)
        values["sources"] = list(self.sources)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> NaiveAEConfig:
        known = {field.name for field in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"unknown naive-ae config keys: {', '.join(sorted(unknown))}")
        chosen = dict(values)
        for key in ("hidden", "sources"):
            if key in chosen:
                chosen[key] = tuple(chosen[key])
        try:
            return cls(**chosen)
        except TypeError as error:
            raise InputError(f"bad naive-ae config: {error}") from None


# ---------------------------------------------------------------- patches
def _padding(length: int, patch: int, step: int) -> tuple[int, int]:
    """Zero padding `(before, after)` so that patches of `patch` every `step` cover `length`
    values and every value is covered by as many patches as an interior one."""
    before = patch - step
    after = patch - step + (-(length + patch)) % step
    return before, after


def extract_patches(plane: torch.Tensor, layout: PatchLayout) -> torch.Tensor:
    """`plane (bins, frames)` -> `patches (count, patch_bins * patch_frames)`, bins-major,
    ordered bin-band first, then time (as `torch.nn.functional.unfold`)."""
    padded = _pad_plane(plane, layout)
    columns = nn.functional.unfold(
        padded[None, None],
        (layout.patch_bins, layout.patch_frames),
        stride=(layout.bin_step, layout.frame_step),
    )
    return columns[0].T.contiguous()


def overlap_add(patches: torch.Tensor, layout: PatchLayout, bins: int, frames: int) -> torch.Tensor:
    """Inverse of `extract_patches`: `(count, size)` -> `(bins, frames)`, each value the mean
    of the patches covering it (exact for patches extracted from one plane)."""
    bins_before, bins_after = _padding(bins, layout.patch_bins, layout.bin_step)
    frames_before, frames_after = _padding(frames, layout.patch_frames, layout.frame_step)
    shape = (bins + bins_before + bins_after, frames + frames_before + frames_after)
    kernel = (layout.patch_bins, layout.patch_frames)
    stride = (layout.bin_step, layout.frame_step)
    total = nn.functional.fold(patches.T[None], shape, kernel, stride=stride)[0, 0]
    # The coverage count is separable: patches per bin times patches per frame.
    count = _coverage(shape[0], layout.patch_bins, layout.bin_step, patches.dtype, patches.device)[
        :, None
    ] * _coverage(shape[1], layout.patch_frames, layout.frame_step, patches.dtype, patches.device)
    plane = total / count.clamp_min(1.0)
    return plane[bins_before : bins_before + bins, frames_before : frames_before + frames]


def _coverage(
    length: int, patch: int, step: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """How many patches cover each index of a padded axis of `length`: `(length,)`."""
    starts = torch.arange(0, length - patch + 1, step, device=device)
    count = torch.zeros(length + 1, dtype=dtype, device=device)
    count.index_add_(0, starts, torch.ones(len(starts), dtype=dtype, device=device))
    count.index_add_(0, starts + patch, -torch.ones(len(starts), dtype=dtype, device=device))
    return torch.cumsum(count, 0)[:length]


def patch_grid(bins: int, frames: int, layout: PatchLayout) -> tuple[int, int]:
    """`(bands, positions)`: patches along frequency and along time (count = bands * positions)."""
    bins_padded = bins + sum(_padding(bins, layout.patch_bins, layout.bin_step))
    frames_padded = frames + sum(_padding(frames, layout.patch_frames, layout.frame_step))
    return (
        (bins_padded - layout.patch_bins) // layout.bin_step + 1,
        (frames_padded - layout.patch_frames) // layout.frame_step + 1,
    )


def _pad_plane(plane: torch.Tensor, layout: PatchLayout) -> torch.Tensor:
    bins, frames = plane.shape
    bins_before, bins_after = _padding(bins, layout.patch_bins, layout.bin_step)
    frames_before, frames_after = _padding(frames, layout.patch_frames, layout.frame_step)
    return nn.functional.pad(plane, (frames_before, frames_after, bins_before, bins_after))


# ---------------------------------------------------------------- scaling
def scale_magnitude(
    magnitude: torch.Tensor, ceiling: torch.Tensor, config: NaiveAEConfig
) -> torch.Tensor:
    """Magnitudes (any shape) -> [0, 1] (see the module docstring)."""
    ceiling = ceiling.clamp_min(1e-8)
    if config.scaling == "max":
        return (magnitude / ceiling).clamp(0.0, 1.0)
    reference = ceiling * 10.0 ** (-config.dynamic_range_db / 20.0)
    return (torch.log1p(magnitude / reference) / torch.log1p(ceiling / reference)).clamp(0.0, 1.0)


def unscale_magnitude(
    values: torch.Tensor, ceiling: torch.Tensor, config: NaiveAEConfig
) -> torch.Tensor:
    """Inverse of `scale_magnitude` on [0, 1]."""
    ceiling = ceiling.clamp_min(1e-8)
    if config.scaling == "max":
        return values * ceiling
    reference = ceiling * 10.0 ** (-config.dynamic_range_db / 20.0)
    return torch.expm1(values * torch.log1p(ceiling / reference)) * reference


# ---------------------------------------------------------------- RBM pre-training
@dataclass
class RBM:
    """A Bernoulli-Bernoulli restricted Boltzmann machine: `weight (visible, hidden)`,
    `visible_bias (visible,)`, `hidden_bias (hidden,)`, with momentum buffers."""

    weight: torch.Tensor
    visible_bias: torch.Tensor
    hidden_bias: torch.Tensor

    @classmethod
    def initial(
        cls,
        visible: int,
        hidden: int,
        generator: torch.Generator,
        device: torch.device | None = None,
        visible_mean: torch.Tensor | None = None,
    ) -> RBM:
        """Weights N(0, 0.01^2), hidden biases 0, visible biases log(p / (1 - p)) of the data's
        mean `visible_mean` when given (Hinton's practical guide)."""
        weight = torch.randn(visible, hidden, generator=generator) * 0.01
        visible_bias = torch.zeros(visible)
        if visible_mean is not None:
            mean = visible_mean.detach().cpu().float().clamp(1e-3, 1 - 1e-3)
            visible_bias = torch.log(mean / (1 - mean))
        return cls(weight.to(device), visible_bias.to(device), torch.zeros(hidden, device=device))

    def hidden_probabilities(self, visible: torch.Tensor) -> torch.Tensor:
        """`(batch, visible)` -> `(batch, hidden)`."""
        return torch.sigmoid(visible @ self.weight + self.hidden_bias)

    def visible_probabilities(self, hidden: torch.Tensor) -> torch.Tensor:
        """`(batch, hidden)` -> `(batch, visible)`."""
        return torch.sigmoid(hidden @ self.weight.T + self.visible_bias)

    def reconstruction_error(self, visible: torch.Tensor) -> float:
        """Mean squared error of one deterministic up-down pass (a progress signal, not the
        objective CD follows)."""
        recon = self.visible_probabilities(self.hidden_probabilities(visible))
        return float(torch.mean((recon - visible) ** 2))


def cd_gradients(
    rbm: RBM, visible: torch.Tensor, uniforms: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CD-k estimates of the log-likelihood gradient, batch means.

    `visible (batch, visible)` in [0, 1]; `uniforms (k, batch, hidden)` are U(0, 1) draws, one
    per Gibbs step, so the chain is reproducible: `h0 = [u0 < p(h | v0)]`; each step
    `v_i = p(v | h_{i-1})` (probabilities, not samples, for the visible units) and
    `p_i = p(h | v_i)`; `h_i = [u_i < p_i]` for `i < k`. Returns
    `(dW = (v0' p(h|v0) - vk' pk) / batch, db = mean(v0 - vk), dc = mean(p(h|v0) - pk))`.
    """
    batch = visible.shape[0]
    positive = rbm.hidden_probabilities(visible)
    hidden = (uniforms[0] < positive).to(visible.dtype)
    steps = uniforms.shape[0]
    for step in range(1, steps + 1):
        negative_visible = rbm.visible_probabilities(hidden)
        negative = rbm.hidden_probabilities(negative_visible)
        if step < steps:
            hidden = (uniforms[step] < negative).to(visible.dtype)
    weight = (visible.T @ positive - negative_visible.T @ negative) / batch
    visible_bias = (visible - negative_visible).mean(dim=0)
    hidden_bias = (positive - negative).mean(dim=0)
    return weight, visible_bias, hidden_bias


class RBMTrainer:
    """SGD with momentum and L2 weight decay on CD-k gradients (ascent on the likelihood)."""

    def __init__(
        self,
        rbm: RBM,
        learning_rate: float,
        weight_decay: float,
        cd_steps: int,
        generator: torch.Generator,
    ):
        self.rbm = rbm
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.cd_steps = cd_steps
        self.generator = generator
        self.velocity = [
            torch.zeros_like(rbm.weight),
            torch.zeros_like(rbm.visible_bias),
            torch.zeros_like(rbm.hidden_bias),
        ]

    def step(self, visible: torch.Tensor, momentum: float) -> None:
        """One update from a batch `(batch, visible)`."""
        rbm = self.rbm
        uniforms = torch.rand(
            (self.cd_steps, visible.shape[0], rbm.hidden_bias.shape[0]),
            generator=self.generator,
            device=self.generator.device,
        ).to(visible.device)
        gradients = cd_gradients(rbm, visible, uniforms)
        parameters = (rbm.weight, rbm.visible_bias, rbm.hidden_bias)
        for index, (parameter, gradient) in enumerate(zip(parameters, gradients, strict=True)):
            if index == 0:
                gradient = gradient - self.weight_decay * parameter
            self.velocity[index].mul_(momentum).add_(gradient, alpha=self.learning_rate)
            parameter.add_(self.velocity[index])


# ---------------------------------------------------------------- the network
class NaiveAutoencoder(nn.Module):
    """Encoder `input -> hidden[0] -> ... -> hidden[-1]` (the code) and the mirrored decoder,
    all sigmoid. Buffers: `ceiling ()` (the scaling's magnitude ceiling) and
    `unit_sources (code,)` (source index per code unit, -1 where not calibrated)."""

    def __init__(self, config: NaiveAEConfig):
        super().__init__()
        self.config = config
        sizes = [config.input_size, *map(int, config.hidden)]
        self.sizes = sizes
        self.encoder = nn.ModuleList(
            nn.Linear(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)
        )
        # decoder_biases[j] / decoder_weights[j] map sizes[L - j] -> sizes[L - j - 1].
        depth = len(sizes) - 1
        self.decoder_biases = nn.ParameterList(
            nn.Parameter(torch.zeros(sizes[depth - j - 1])) for j in range(depth)
        )
        self.decoder_weights = nn.ParameterList(
            []
            if config.tied
            else [
                nn.Parameter(self.encoder[depth - 1 - j].weight.detach().T.clone())
                for j in range(depth)
            ]
        )
        self.register_buffer("ceiling", torch.tensor(1.0))
        self.register_buffer("unit_sources", torch.full((config.code_size,), -1, dtype=torch.long))

    def decoder_weight(self, index: int) -> torch.Tensor:
        """Decoder layer `index`'s weight `(out, in)`."""
        if self.config.tied:
            return self.encoder[len(self.encoder) - 1 - index].weight.T
        return self.decoder_weights[index]

    def encode(self, patches: torch.Tensor) -> torch.Tensor:
        """`(count, input)` in [0, 1] -> code `(count, code units)` in (0, 1)."""
        return self.hidden_states(patches)[-1]

    def hidden_states(self, patches: torch.Tensor) -> list[torch.Tensor]:
        """Every encoder layer's sigmoid output, input side first."""
        states, value = [], patches
        for layer in self.encoder:
            value = torch.sigmoid(layer(value))
            states.append(value)
        return states

    def decode_logits(self, code: torch.Tensor) -> torch.Tensor:
        """`(count, code units)` -> output logits `(count, input)` (sigmoid gives the patch)."""
        value = code
        for index, bias in enumerate(self.decoder_biases):
            value = nn.functional.linear(value, self.decoder_weight(index), bias)
            if index < len(self.decoder_biases) - 1:
                value = torch.sigmoid(value)
        return value

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(code))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Reconstruction logits `(count, input)`; train with BCE-with-logits against the input."""
        return self.decode_logits(self.encode(patches))

    @torch.no_grad()
    def load_rbms(self, rbms: Sequence[RBM]) -> None:
        """Unroll pre-trained RBMs: encoder l = RBM l (W^T, hidden bias); decoder mirrors them
        (W, visible bias)."""
        depth = len(self.encoder)
        if len(rbms) != depth:
            raise InputError(f"need {depth} RBMs to unroll, got {len(rbms)}")
        for index, rbm in enumerate(rbms):
            self.encoder[index].weight.copy_(rbm.weight.T)
            self.encoder[index].bias.copy_(rbm.hidden_bias)
            mirrored = depth - 1 - index
            self.decoder_biases[mirrored].copy_(rbm.visible_bias)
            if not self.config.tied:
                self.decoder_weights[mirrored].copy_(rbm.weight)


# ---------------------------------------------------------------- analysis primitives
class PatchCoder:
    """A trained network with its front-end: mixture -> scaled magnitude -> patches -> code,
    and code -> patches -> magnitude -> wave. The GUI and `explorer.analysis.codelayer` use it."""

    def __init__(self, network: NaiveAutoencoder, device: torch.device | None = None):
        self.network = network.eval()
        self.config = network.config
        self.device = device or torch.device("cpu")
        self.network.to(self.device)
        self.frontend = make_frontend(self.config.frontend).to(self.device)
        self.layout = self.config.layout()

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    def spectrum(self, mono: torch.Tensor) -> torch.Tensor:
        """`(samples,)` -> complex `(bins, frames)`."""
        return self.frontend.encode(mono[None].to(self.device))[0]

    def scaled(self, spectrum: torch.Tensor) -> torch.Tensor:
        """Complex `(bins, frames)` -> scaled magnitude `(bins, frames)` in [0, 1]."""
        return scale_magnitude(spectrum.abs(), self.network.ceiling, self.config)

    def patches(self, scaled: torch.Tensor, layout: PatchLayout | None = None) -> torch.Tensor:
        return extract_patches(scaled, layout or self.layout)

    def code(self, scaled: torch.Tensor, batch: int = 4096) -> torch.Tensor:
        """Scaled magnitude `(bins, frames)` -> code `(patches, units)`."""
        patches = self.patches(scaled)
        return torch.cat(
            [self.network.encode(patches[i : i + batch]) for i in range(0, len(patches), batch)]
        )

    def decode_plane(
        self, code: torch.Tensor, bins: int, frames: int, batch: int = 4096
    ) -> torch.Tensor:
        """Code `(patches, units)` -> scaled magnitude `(bins, frames)` by overlap-add."""
        decoded = torch.cat(
            [self.network.decode(code[i : i + batch]) for i in range(0, len(code), batch)]
        )
        return overlap_add(decoded, self.layout, bins, frames)

    def surgery(
        self, spectrum: torch.Tensor, weights: torch.Tensor, code: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Keep code units with `weights (sources, units)` (1 keep, 0 zero, or soft), decode each
        source: scaled magnitudes `(sources, bins, frames)`. A source with all-zero weights is
        silence (0). `code` may be passed when already computed."""
        bins, frames = spectrum.shape
        code = self.code(self.scaled(spectrum)) if code is None else code
        planes = []
        for row in weights.to(code.device, code.dtype):
            if not bool(torch.any(row != 0)):
                planes.append(torch.zeros(bins, frames, device=code.device))
            else:
                planes.append(self.decode_plane(code * row, bins, frames))
        return torch.stack(planes)

    def invert(
        self,
        scaled: torch.Tensor,
        spectrum: torch.Tensor,
        length: int,
        silent: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scaled magnitudes `(sources, bins, frames)` -> waves `(sources, length)` with the
        mixture phase of `spectrum (bins, frames)`; rows flagged in `silent (sources,)` are 0."""
        magnitude = unscale_magnitude(scaled, self.network.ceiling, self.config)
        if silent is not None:
            magnitude = magnitude * (~silent).to(magnitude.dtype)[:, None, None]
        phase = spectrum / spectrum.abs().clamp_min(1e-12)
        return self.frontend.decode(magnitude * phase[None], length)


def active_patch_mask(patches: torch.Tensor, fraction: float = ACTIVE_FRACTION) -> torch.Tensor:
    """`(count, size)` -> bool `(count,)`: patches whose mean is at least `fraction` of the
    loudest patch's mean (drops the silence between notes)."""
    means = patches.mean(dim=1)
    peak = float(means.max()) if len(means) else 0.0
    return means >= fraction * peak if peak > 0 else torch.zeros_like(means, dtype=torch.bool)


def unit_profiles(maps: np.ndarray) -> np.ndarray:
    """Per-source mean code `maps (sources, units)` -> each unit's share of its activation per
    source `(units, sources)`, rows summing to 1 (uniform for a unit that is never on)."""
    maps = np.asarray(maps, dtype=np.float64)
    totals = maps.sum(axis=0, keepdims=True)
    shares = np.where(totals > 0, maps / np.where(totals > 0, totals, 1.0), 1.0 / len(maps))
    return shares.T


def label_clusters(centroids: np.ndarray) -> np.ndarray:
    """Cluster -> source, one to one where possible: the Hungarian matching that maximises
    the summed share of each cluster's centroid `(clusters, sources)` on its source."""
    from scipy.optimize import linear_sum_assignment

    rows, columns = linear_sum_assignment(-np.asarray(centroids))
    labels = np.argmax(centroids, axis=1)
    labels[rows] = columns
    return labels


def kmeans_assignment(maps: np.ndarray, seed: int = 0) -> np.ndarray:
    """The separator's hard assignment: k-means (scipy's kmeans2, k-means++ init) with one
    cluster per source on the unit profiles, clusters labelled by `label_clusters`.
    `maps (sources, units)` -> `unit_sources (units,)`."""
    from scipy.cluster.vq import kmeans2

    profiles = unit_profiles(maps)
    centroids, labels = kmeans2(profiles, len(maps), minit="++", seed=seed)
    return label_clusters(centroids)[labels]


# ---------------------------------------------------------------- the separator
class NaiveAESeparator(Separator):
    """A trained naive autoencoder: mono mixture in, one stem per configured source out, each
    by code-unit surgery with the stored (or load-time calibrated) k-means assignment."""

    kind = KIND
    mono = True
    chunk_seconds = 10.0

    def __init__(
        self, network: NaiveAutoencoder, name: str | None = None, device: torch.device | None = None
    ):
        super().__init__(name, device)
        self.config = network.config
        self.coder = PatchCoder(network, self.device)
        self.network = self.coder.network
        self.frontend = self.coder.frontend
        self.sample_rate = self.frontend.sample_rate
        layout = self.coder.layout
        self.alignment = self.frontend.hop_length * layout.frame_step
        # An output sample depends on patches up to a patch span away, whose frames' windows
        # reach another n_fft: a larger margin makes chunked output equal the full-length one.
        reach = (layout.patch_frames + layout.frame_step + 1) * self.frontend.hop_length
        self.margin_seconds = (reach + 2 * self.frontend.config.n_fft) / self.sample_rate

    def to(self, device: torch.device) -> NaiveAESeparator:
        super().to(device)
        self.coder.device = device
        self.network.to(device)
        self.frontend.to(device)
        return self

    def output_stems(self, track: Track) -> tuple[str, ...]:
        return tuple(self.config.sources)

    def assignment_weights(self) -> torch.Tensor:
        """`(sources, units)` 0/1 from `unit_sources`, calibrating first when needed."""
        if bool(torch.all(self.network.unit_sources < 0)):
            self.network.unit_sources.copy_(torch.from_numpy(calibrate(self.coder)))
        sources = torch.arange(len(self.config.sources), device=self.network.unit_sources.device)
        return (self.network.unit_sources[None, :] == sources[:, None]).float()

    def process(
        self, mixture: torch.Tensor, references: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        weights = self.assignment_weights()
        spectrum = self.coder.spectrum(mixture[0])
        planes = self.coder.surgery(spectrum, weights)
        silent = ~torch.any(weights != 0, dim=1)
        waves = self.coder.invert(planes, spectrum, mixture.shape[-1], silent)
        return {
            source: waves[index : index + 1] for index, source in enumerate(self.config.sources)
        }

    def probes(
        self, track: Track, start_seconds: float = 0.0, seconds: float = 5.0
    ) -> dict[str, probes.Probe]:
        """The code layer, the input and its reconstruction (scaled magnitudes), and the
        first-layer weights as patch-shaped images."""
        excerpt = self.prepare(track).excerpt(start_seconds, seconds)
        if excerpt.mixture.shape[-1] == 0:
            raise InputError(
                f"no audio at {start_seconds:.2f} s in '{track.name}' ({track.seconds:.2f} s long)"
            )
        mono = torch.from_numpy(np.ascontiguousarray(excerpt.mixture[0]))
        with torch.inference_mode():
            spectrum = self.coder.spectrum(mono)
            scaled = self.coder.scaled(spectrum)
            bins, frames = scaled.shape
            code = self.coder.code(scaled)
            reconstruction = self.coder.decode_plane(code, bins, frames)
        hop, rate = self.frontend.hop_length, self.sample_rate
        code_values, code_hop = code_per_time(code.cpu().numpy(), self.coder.layout, bins, frames)
        result: dict[str, probes.Probe] = {
            "activations/code": probes.Activations(
                f"{self.name} code layer ({self.config.code_size} units, patch {describe_layout(self.config)})",
                code_values,
                hop * code_hop,
                rate,
                "code unit",
            ),
            "activations/input": probes.Activations(
                f"{self.name} input: magnitude scaled to [0, 1] ({self.config.scaling})",
                scaled.cpu().numpy(),
                hop,
                rate,
                "frequency bin",
            ),
            "activations/reconstruction": probes.Activations(
                f"{self.name} reconstruction (overlap-added patches)",
                reconstruction.cpu().numpy(),
                hop,
                rate,
                "frequency bin",
            ),
        }
        result.update(weight_probes(self.network, self.sample_rate))
        return result


def describe_layout(config: NaiveAEConfig) -> str:
    layout = config.layout()
    return f"{layout.patch_bins} bins x {layout.patch_frames} frames"


def code_per_time(
    code: np.ndarray, layout: PatchLayout, bins: int, frames: int
) -> tuple[np.ndarray, int]:
    """Code `(patches, units)` -> `(units, positions)` along time and the position step in
    frames. Time orientation with step 1: position `t` is the patch centred on frame `t`.
    Otherwise the code is averaged over frequency bands, one column per patch position."""
    bands, positions = patch_grid(bins, frames, layout)
    grid = code.reshape(bands, positions, -1).mean(axis=0)
    if layout.frame_step == 1:
        before = layout.patch_frames - 1
        centre = (layout.patch_frames - 1) // 2
        first = before - centre
        return np.ascontiguousarray(grid[first : first + frames].T), 1
    return np.ascontiguousarray(grid.T), layout.frame_step


def weight_probes(
    network: NaiveAutoencoder, sample_rate: int, top: int = 4
) -> dict[str, probes.Probe]:
    """First-layer weights: all units as `Kernels (units, patch values)` with the image shape in
    `extra` (reshape each row to `image_shape` = (bins, frames) to see it), and the `top`
    units with the largest weight norm as `Matrix` images for the generic matrix panel."""
    layout = network.config.layout()
    weight = network.encoder[0].weight.detach().float().cpu().numpy()
    kernels = probes.Kernels(
        "naive-ae first-layer weights (each row is a patch image)",
        weight,
        sample_rate,
        extra={
            "image_shape": [layout.patch_bins, layout.patch_frames],
            "axes": ["frequency bin", "frame"],
            "layout": "bins-major",
        },
    )
    result: dict[str, probes.Probe] = {"kernels/first-layer": kernels}
    for unit in np.argsort(-np.linalg.norm(weight, axis=1))[:top]:
        result[f"weights/unit-{int(unit)}"] = probes.Matrix(
            f"naive-ae first-layer unit {int(unit)} weights",
            weight[unit].reshape(layout.patch_bins, layout.patch_frames),
            "frequency bin",
            "frame",
        )
    return result


# ---------------------------------------------------------------- calibration
def calibration_signals(
    sources: Sequence[str], seconds: float = CALIBRATION_SECONDS
) -> dict[str, np.ndarray]:
    """Mono isolated synthetic signals `{source: (samples,)}` at 44.1 kHz: instrument notes for
    the paper's five instruments, song stems for the MUSDB18 names."""
    from explorer.data import synth

    signals = {}
    for index, source in enumerate(sources):
        if source in INSTRUMENT_SOURCES:
            track = synth.render_instruments(CALIBRATION_SEED + index, seconds, (source,))
        elif source in STEM_NAMES:
            track = synth.render_track(CALIBRATION_SEED + index, seconds)
        else:
            raise InputError(
                f"cannot calibrate the code units for source '{source}': no synthetic signal for it; "
                f"store an assignment with explorer.analysis.codelayer"
            )
        signals[source] = track.stems[source].mean(axis=0)
    return signals


@torch.no_grad()
def source_maps(coder: PatchCoder, signals: Mapping[str, np.ndarray]) -> np.ndarray:
    """Mean code of the active patches of each isolated signal: `(sources, units)`."""
    maps = []
    for source, samples in signals.items():
        scaled = coder.scaled(
            coder.spectrum(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)))
        )
        patches = coder.patches(scaled)
        active = active_patch_mask(patches)
        if not bool(active.any()):
            raise InputError(
                f"the signal for source '{source}' is silent; cannot map its code units"
            )
        code = torch.cat(
            [
                coder.network.encode(patches[active][i : i + 4096])
                for i in range(0, int(active.sum()), 4096)
            ]
        )
        maps.append(code.mean(dim=0).cpu().numpy())
    return np.stack(maps)


def calibrate(coder: PatchCoder) -> np.ndarray:
    """`unit_sources (units,)` from synthetic isolated signals of the configured sources."""
    maps = source_maps(coder, calibration_signals(coder.config.sources))
    return kmeans_assignment(maps).astype(np.int64)


# ---------------------------------------------------------------- loading and registration
def build_network(
    config: NaiveAEConfig, state_dict: Mapping[str, torch.Tensor] | None = None
) -> NaiveAutoencoder:
    """A network from its config, with weights when given (fp16 weights are cast to float32)."""
    network = NaiveAutoencoder(config)
    if state_dict is not None:
        expected = network.state_dict()
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        if missing or unexpected:
            raise InputError(
                f"weights do not fit a naive-ae model (missing: {', '.join(missing) or 'none'}; "
                f"unexpected: {', '.join(unexpected) or 'none'})"
            )
        for key, value in state_dict.items():
            if tuple(value.shape) != tuple(expected[key].shape):
                raise InputError(
                    f"weights '{key}' have shape {tuple(value.shape)}, the config needs "
                    f"{tuple(expected[key].shape)}"
                )
        network.load_state_dict(
            {
                key: value.float() if value.is_floating_point() else value
                for key, value in state_dict.items()
            }
        )
    return network


def load(config: dict, state_dict: dict, name: str, device: torch.device) -> NaiveAESeparator:
    return NaiveAESeparator(
        build_network(NaiveAEConfig.from_dict(config), state_dict), name, device
    )


def builtin(name: str, device: torch.device) -> NaiveAESeparator:
    """The shipped demo weights `resources/naive-ae.pt`."""
    payload = registry.shipped_checkpoint(
        f"{name}.pt", KIND, "explorer train --model naive-ae --data instruments"
    )
    return load(payload["config"], payload["state_dict"], name, device)


def parameter_count(config: NaiveAEConfig) -> int:
    sizes = [config.input_size, *config.hidden]
    weights = sum(sizes[i] * sizes[i + 1] for i in range(len(sizes) - 1))
    return weights * (1 if config.tied else 2) + sum(sizes[1:]) + sum(sizes[:-1])


def expected_bytes_fp16(config: NaiveAEConfig) -> int:
    return 2 * parameter_count(config)


registry.register_kind(KIND, load)
registry.register_builtin(KIND, builtin)
