"""DRDNN (deep representation-decoupling network, AAAI 2018) and its baselines MLP, DCNN, DRNN.

FACTS.md section 3. Four sources (vocals, drums, bass, other) from a mono mixture:

1. The `drdnn` STFT front-end: Blackman-Harris 1024, 1024-point FFT, hop 256, 513 bins.
2. The magnitude spectrogram, divided per band by a scale fitted on the training mixtures (what
   the network reads; masks apply to the raw magnitudes X, and the losses compare raw
   magnitudes divided by one number, `loss_scale`), is cut into batches of M = 50 frames with
   30 % overlap (a step of 35 frames; the last batch is zero-padded, and so is a track shorter
   than one batch).
3. Feature extraction. Frequency-reducing convolutions with (K/2 x 1) filters, stride 1, no
   pooling. Our reading of FACTS: K is the frequency size of the layer's *input*, the filter spans
   K // 2 bins and one frame, and the convolution is "valid" (no padding), so each layer's output
   has K - K // 2 + 1 bins, about half: 513 -> 258 -> 130 -> 66 -> 34. A filter one frame wide
   makes the convolutions frame-wise, so we run them as `conv1d` over frequency with the frames
   in the batch axis. Then a bidirectional LSTM over the 50 frames. "Its last hidden state is
   the batch's feature" is [open]; `feature="sequence"` (default) takes the last layer's hidden
   state at every frame (what the restoration LSTMs and the per-frame probes need), and
   `feature="final"` takes the final forward and backward states of the batch, repeated over
   its frames (the literal reading: the whole batch coded in one vector).
4. Decoupling: one MLP per source (ReLU layers), frame-wise.
5. Restoration per source: an LSTM over the frames, a linear map to the reduced size, then
   transposed convolutions that mirror the convolutions exactly back to 513 bins (ReLU between,
   none after the last), giving Y^_s; its magnitude |Y^_s| enters the soft masks
   `M_s = |Y^_s| / sum_i |Y^_i|` (a small epsilon is added to every |Y^_i|, so the masks
   always sum to 1), and `Y~_s = M_s * X`.
6. Batches are overlap-added with complementary linear cross-fades over the 15 shared frames,
   normalised by the summed weights (so an identity model gives back its input exactly), and
   each source is resynthesised with the mixture phase. `accompaniment` = drums + bass + other.

Ablations by config: `decoupling=False` (DRDNN-wDCP: no per-source MLPs; the restoration LSTMs
read the shared feature), `reduction=False` (DRDNN-wDR: no convolutions or deconvolutions; the
LSTMs read and the restoration writes the 513 bins), `masking=False` (DRDNN-noMask: Y~_s = |Y^_s|
is the estimate). Baselines with the same front-end, batches and masks:
- `mlp`: frame-wise fully connected ReLU layers, bins -> hidden ... -> sources x bins;
- `dcnn`: the same frequency-reducing convolutions, then mirrored deconvolutions whose last layer
  has one output channel per source (no recurrence, no decoupling);
- `drnn`: stacked bidirectional LSTMs over the batch, then a linear map to sources x bins.

Sizes are [open] (no public code): `preset="small"` (default; the shipped demo weights and
`--quick`), `"tiny"` (unit tests), and `"paper-scale"` (our guess at a full-size network).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer.audio.frontends import PRESETS, make_frontend
from explorer.data.track import ACCOMPANIMENT, STEM_NAMES, Track
from explorer.errors import InputError
from explorer.models import probes, registry
from explorer.models.base import NetworkSeparator

KINDS = ("drdnn", "mlp", "dcnn", "drnn")
SOURCES = STEM_NAMES
FEATURES = ("sequence", "final")
OBJECTIVES = ("mse", "discriminative")
MASK_EPSILON = 1e-6

# Sizes [open]. "small" trains in minutes on a CPU; "paper-scale" is a guess at the paper's size.
SIZE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "conv_channels": (2, 2),
        "lstm_hidden": 8,
        "decoupling_hidden": 16,
        "restoration_hidden": 16,
        "mlp_hidden": 32,
    },
    "small": {
        "conv_channels": (2, 4, 4, 4),
        "lstm_hidden": 64,
        "decoupling_hidden": 128,
        "restoration_hidden": 128,
        "mlp_hidden": 512,
    },
    "paper-scale": {
        "conv_channels": (16, 32, 64, 64),
        "lstm_hidden": 256,
        "decoupling_hidden": 512,
        "restoration_hidden": 512,
        "mlp_hidden": 2048,
    },
}
SIZE_KEYS = (
    "conv_channels",
    "lstm_hidden",
    "decoupling_hidden",
    "restoration_hidden",
    "mlp_hidden",
)


@dataclass(frozen=True)
class DRDNNConfig:
    """A DRDNN-family model. Size fields left as None come from `preset` (SIZE_PRESETS).

    - `batch_frames` M = 50 and `batch_overlap` 0.3 (FACTS 3); `lstm_layers` BLSTM layers in the
      feature extractor (also DRNN's depth), `decoupling_layers` ReLU layers per decoupling MLP
      (also the MLP baseline's hidden layers) [open].
    - `objective`: `mse` (summed over sources) or `discriminative`, with `beta` (FACTS: 0 < beta
      < 1). Default beta 0.05 [open]: with S = 4 sources each estimate is pulled towards its
      target with weight 1 and pushed from 3 others with weight beta, so beta < 1/3 keeps the
      objective bounded below even without masks; 0.05 is in the range Huang et al. used for
      their discriminative DRNN.
    """

    kind: str = "drdnn"
    frontend: str = "drdnn"
    preset: str = "small"
    batch_frames: int = 50
    batch_overlap: float = 0.3
    conv_channels: tuple[int, ...] | None = None
    lstm_hidden: int | None = None
    lstm_layers: int = 1
    decoupling_hidden: int | None = None
    decoupling_layers: int = 2
    restoration_hidden: int | None = None
    mlp_hidden: int | None = None
    feature: str = "sequence"
    decoupling: bool = True
    reduction: bool = True
    masking: bool = True
    objective: str = "mse"
    beta: float = 0.05

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown DRDNN-family kind '{self.kind}' (known: {', '.join(KINDS)})")
        if self.frontend not in PRESETS:
            raise InputError(f"unknown front-end '{self.frontend}' (known: {', '.join(PRESETS)})")
        if self.preset not in SIZE_PRESETS:
            raise InputError(
                f"unknown DRDNN size preset '{self.preset}' (known: {', '.join(SIZE_PRESETS)})"
            )
        for key in SIZE_KEYS:
            value = getattr(self, key)
            if value is None:
                value = SIZE_PRESETS[self.preset][key]
            if key == "conv_channels":
                value = tuple(int(channel) for channel in value)
            object.__setattr__(self, key, value)
        self._check()

    def _check(self) -> None:
        if self.batch_frames < 2:
            raise InputError(f"batch_frames must be at least 2, got {self.batch_frames}")
        if not 0.0 <= self.batch_overlap < 1.0:
            raise InputError(f"batch_overlap must be in [0, 1), got {self.batch_overlap}")
        if not self.conv_channels or min(self.conv_channels) < 1:
            raise InputError(
                f"conv_channels must be positive channel counts, got {self.conv_channels}"
            )
        if len(self.conv_channels) > 6:
            raise InputError("at most 6 frequency-reducing convolutions (the bins run out)")
        sizes = (self.lstm_hidden, self.decoupling_hidden, self.restoration_hidden, self.mlp_hidden)
        if min(sizes) < 1 or self.lstm_layers < 1 or self.decoupling_layers < 1:
            raise InputError("hidden sizes and layer counts must be positive")
        if self.feature not in FEATURES:
            raise InputError(f"unknown feature '{self.feature}' (known: {', '.join(FEATURES)})")
        if self.objective not in OBJECTIVES:
            raise InputError(
                f"unknown objective '{self.objective}' (known: {', '.join(OBJECTIVES)})"
            )
        if not 0.0 <= self.beta < 1.0:
            raise InputError(f"beta must be in [0, 1) (FACTS 3: 0 < beta < 1), got {self.beta}")
        if self.kind != "drdnn" and not (
            self.decoupling and self.reduction and self.feature == "sequence"
        ):
            raise InputError(
                f"decoupling, reduction and feature are DRDNN ablations; '{self.kind}' has none of them"
            )

    @property
    def bins(self) -> int:
        return PRESETS[self.frontend].bins

    @property
    def batch_step(self) -> int:
        """Frames between batch starts: 35 for M = 50 with 30 % overlap."""
        return max(1, round(self.batch_frames * (1.0 - self.batch_overlap)))

    @property
    def variant(self) -> str:
        """A readable name: `drdnn`, `drdnn-wDCP`, `drdnn-wDR-noMask`, `mlp`, ..."""
        parts = [self.kind]
        if not self.decoupling:
            parts.append("wDCP")
        if not self.reduction:
            parts.append("wDR")
        if not self.masking:
            parts.append("noMask")
        if self.feature != "sequence":
            parts.append(self.feature)
        return "-".join(parts)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["conv_channels"] = list(self.conv_channels)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DRDNNConfig:
        known = {field.name for field in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"unknown DRDNN config keys: {', '.join(sorted(unknown))}")
        chosen = dict(values)
        if chosen.get("conv_channels") is not None:
            if isinstance(chosen["conv_channels"], int):
                chosen["conv_channels"] = [chosen["conv_channels"]]
            chosen["conv_channels"] = tuple(chosen["conv_channels"])
        try:
            return cls(**chosen)
        except TypeError as error:
            raise InputError(f"bad DRDNN config: {error}") from None


def reduction_sizes(bins: int, layers: int) -> list[tuple[int, int]]:
    """`[(kernel, output bins), ...]` of the (K/2 x 1) valid convolutions: K = input bins,
    kernel K // 2, output K - K // 2 + 1. For 513 bins: (256, 258), (129, 130), (65, 66), (33, 34)."""
    result, size = [], bins
    for _ in range(layers):
        kernel = size // 2
        if kernel < 2:
            raise InputError(f"too many convolutions for {bins} bins")
        size = size - kernel + 1
        result.append((kernel, size))
    return result


# ---------------------------------------------------------------- batches of frames
def batch_starts(frames: int, batch_frames: int, step: int) -> list[int]:
    """First frame of each batch; the last batch may run past the end (zero-padded)."""
    if frames <= batch_frames:
        return [0]
    return [index * step for index in range(math.ceil((frames - batch_frames) / step) + 1)]


def split_batches(frames: torch.Tensor, batch_frames: int, step: int) -> torch.Tensor:
    """`(..., frames, units)` -> `(batches, ..., batch_frames, units)`, zero-padded at the end."""
    count = frames.shape[-2]
    starts = batch_starts(count, batch_frames, step)
    padded_length = starts[-1] + batch_frames
    padded = nn.functional.pad(frames, (0, 0, 0, padded_length - count))
    return torch.stack([padded[..., start : start + batch_frames, :] for start in starts])


def crossfade_weights(
    batch_frames: int, step: int, device: torch.device | None = None
) -> torch.Tensor:
    """`(batch_frames,)`: linear ramps over the `batch_frames - step` frames a batch shares with
    each neighbour, complementary so two overlapping batches sum to 1; 1 in the middle. Frames
    near a batch edge (short LSTM context) count less."""
    overlap = max(0, batch_frames - step)
    weights = torch.ones(batch_frames, device=device, dtype=torch.float64)
    if overlap:
        ramp = (torch.arange(overlap, device=device, dtype=torch.float64) + 0.5) / overlap
        weights[:overlap] = torch.minimum(weights[:overlap], ramp)
        weights[-overlap:] = torch.minimum(weights[-overlap:], ramp.flip(0))
    return weights


def overlap_add(batches: torch.Tensor, frames: int, step: int) -> torch.Tensor:
    """`(batches, ..., batch_frames, units)` -> `(..., frames, units)`: weighted overlap-add,
    divided by the summed weights (exact for any per-frame quantity an identity model passes)."""
    count, batch_frames = batches.shape[0], batches.shape[-2]
    starts = batch_starts(frames, batch_frames, step)
    if len(starts) != count:
        raise ValueError(f"{count} batches do not tile {frames} frames")
    weights = crossfade_weights(batch_frames, step, batches.device).to(batches.dtype)
    length = starts[-1] + batch_frames
    total = batches.new_zeros((*batches.shape[1:-2], length, batches.shape[-1]))
    norm = batches.new_zeros(length)
    for start, batch in zip(starts, batches, strict=True):
        total[..., start : start + batch_frames, :] += batch * weights[:, None]
        norm[start : start + batch_frames] += weights
    return (total / norm[:, None])[..., :frames, :]


# ---------------------------------------------------------------- building blocks
def banded_matrix(weight: torch.Tensor, length: int) -> torch.Tensor:
    """The valid `conv1d` with `weight (out, in, kernel)` on `(in, length)` inputs as one matrix
    `(out * reduced, in * length)`, `reduced = length - kernel + 1`: row `(o, l)` holds
    `weight[o, c, j - l]` at column `(c, j)` for `0 <= j - l < kernel`. Its transpose is the
    matching transposed convolution. One matrix product is several times faster on a CPU than
    PyTorch's convolutions with these very long (K/2) kernels, the transposed ones above all."""
    out, inputs, kernel = weight.shape
    reduced = length - kernel + 1
    offsets = (
        torch.arange(length, device=weight.device)[None, :]
        - torch.arange(reduced, device=weight.device)[:, None]
    )
    inside = (offsets >= 0) & (offsets < kernel)
    bands = weight[:, :, offsets.clamp(0, kernel - 1)] * inside  # (out, in, reduced, length)
    return bands.permute(0, 2, 1, 3).reshape(out * reduced, inputs * length)


class FrequencyReduction(nn.Module):
    """The (K/2 x 1) convolutions: `(batch, frames, bins)` -> `(batch, frames, channels, reduced)`,
    ReLU after each layer. `layers[i]` are `nn.Conv1d` (they hold the weights and define the
    operation; `forward` computes the same valid convolution as one banded matrix product)."""

    def __init__(self, bins: int, channels: tuple[int, ...]):
        super().__init__()
        sizes = reduction_sizes(bins, len(channels))
        inputs = (1, *channels[:-1])
        self.layers = nn.ModuleList(
            nn.Conv1d(inputs[i], channels[i], sizes[i][0]) for i in range(len(channels))
        )
        self.lengths = [bins] + [size for _, size in sizes[:-1]]
        self.channels, self.reduced = channels[-1], sizes[-1][1]

    @property
    def size(self) -> int:
        return self.channels * self.reduced

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch, count, _ = frames.shape
        value = frames.reshape(batch * count, -1)
        for layer, length in zip(self.layers, self.lengths, strict=True):
            matrix = banded_matrix(layer.weight, length)
            bias = layer.bias.repeat_interleave(matrix.shape[0] // layer.out_channels)
            value = torch.relu(torch.addmm(bias, value, matrix.T))
        return value.reshape(batch, count, self.channels, self.reduced)


class FrequencyRestoration(nn.Module):
    """Transposed convolutions mirroring `FrequencyReduction` (same kernels, reversed):
    `(batch, frames, channels, reduced)` -> `(batch, frames, outputs, bins)`, ReLU between
    layers, none after the last. `layers` are `nn.ConvTranspose1d`, computed as products with
    the transposed banded matrices."""

    def __init__(self, bins: int, channels: tuple[int, ...], outputs: int = 1):
        super().__init__()
        sizes = reduction_sizes(bins, len(channels))
        targets = (outputs, *channels[:-1])
        lengths = [bins] + [size for _, size in sizes[:-1]]
        order = list(reversed(range(len(channels))))
        self.layers = nn.ModuleList(
            nn.ConvTranspose1d(channels[i], targets[i], sizes[i][0]) for i in order
        )
        self.lengths = [lengths[i] for i in order]
        self.bins = bins

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, count, _, _ = features.shape
        value = features.reshape(batch * count, -1)
        last = len(self.layers) - 1
        for index, (layer, length) in enumerate(zip(self.layers, self.lengths, strict=True)):
            # ConvTranspose1d weight (in, out, kernel) is the weight of the mirrored conv.
            matrix = banded_matrix(layer.weight, length)
            bias = layer.bias.repeat_interleave(length)
            value = torch.addmm(bias, value, matrix)
            if index < last:
                value = torch.relu(value)
        return value.reshape(batch, count, -1, self.bins)


def relu_mlp(inputs: int, hidden: int, layers: int) -> nn.Sequential:
    """`layers` Linear+ReLU layers, `inputs -> hidden -> ... -> hidden`."""
    modules: list[nn.Module] = []
    for index in range(layers):
        modules += [nn.Linear(inputs if index == 0 else hidden, hidden), nn.ReLU()]
    return nn.Sequential(*modules)


class SourceRestoration(nn.Module):
    """One source's restoration: LSTM over frames, linear to the reduced size, deconvolutions
    (or, without reduction, linear straight to the bins)."""

    def __init__(self, inputs: int, config: DRDNNConfig):
        super().__init__()
        self.lstm = nn.LSTM(inputs, config.restoration_hidden, batch_first=True)
        if config.reduction:
            self.deconvolution: FrequencyRestoration | None = FrequencyRestoration(
                config.bins, config.conv_channels
            )
            sizes = reduction_sizes(config.bins, len(config.conv_channels))
            self.shape = (config.conv_channels[-1], sizes[-1][1])
        else:
            self.deconvolution = None
            self.shape = (1, config.bins)
        self.project = nn.Linear(config.restoration_hidden, self.shape[0] * self.shape[1])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """`(batch, frames, inputs)` -> `(batch, frames, bins)` (Y^_s, any sign)."""
        hidden, _ = self.lstm(features)
        value = self.project(hidden)
        if self.deconvolution is None:
            return value
        batch, count, _ = value.shape
        return self.deconvolution(torch.relu(value).reshape(batch, count, *self.shape))[:, :, 0]


# ---------------------------------------------------------------- the networks
class DRDNNNetwork(nn.Module):
    """Every kind of the family. `stages(x)` returns each stage's per-frame features;
    `forward(x)` returns the raw source outputs Y^ `(batch, sources, frames, bins)`.

    Input `x (batch, frames, bins)`: normalised mixture magnitudes (divided by `scale`).
    Buffer `scale (bins,)`: per-band scale of the training mixtures.
    """

    def __init__(self, config: DRDNNConfig):
        super().__init__()
        self.config = config
        bins, sources = config.bins, len(SOURCES)
        self.register_buffer("scale", torch.ones(bins))
        if config.kind == "mlp":
            self.hidden = relu_mlp(bins, config.mlp_hidden, config.decoupling_layers)
            self.output = nn.Linear(config.mlp_hidden, sources * bins)
        elif config.kind == "dcnn":
            self.reduction = FrequencyReduction(bins, config.conv_channels)
            self.restoration = FrequencyRestoration(bins, config.conv_channels, sources)
        elif config.kind == "drnn":
            self.lstm = nn.LSTM(
                bins,
                config.lstm_hidden,
                config.lstm_layers + 1,
                batch_first=True,
                bidirectional=True,
            )
            self.output = nn.Linear(2 * config.lstm_hidden, sources * bins)
        else:
            self._build_drdnn(config)

    def _build_drdnn(self, config: DRDNNConfig) -> None:
        bins = config.bins
        if config.reduction:
            self.reduction = FrequencyReduction(bins, config.conv_channels)
            lstm_inputs = self.reduction.size
        else:
            lstm_inputs = bins
        self.lstm = nn.LSTM(
            lstm_inputs,
            config.lstm_hidden,
            config.lstm_layers,
            batch_first=True,
            bidirectional=True,
        )
        feature = 2 * config.lstm_hidden
        if config.decoupling:
            self.decoupling = nn.ModuleList(
                relu_mlp(feature, config.decoupling_hidden, config.decoupling_layers)
                for _ in SOURCES
            )
            feature = config.decoupling_hidden
        self.restoration = nn.ModuleList(SourceRestoration(feature, config) for _ in SOURCES)

    def stages(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """`frames (batch, M, bins)` normalised -> named features, each `(batch, M, units)`
        (per source: `(batch, sources, M, units)`). Always contains `input` and `output`
        (Y^, `(batch, sources, M, bins)`)."""
        kind, sources = self.config.kind, len(SOURCES)
        batch, count, bins = frames.shape
        result = {"input": frames}
        if kind == "mlp":
            hidden = self.hidden(frames)
            result["hidden"] = hidden
            result["output"] = (
                self.output(hidden).reshape(batch, count, sources, bins).transpose(1, 2)
            )
        elif kind == "dcnn":
            reduced = self.reduction(frames)
            result["convolutions"] = reduced.flatten(2)
            result["output"] = self.restoration(reduced).transpose(1, 2)
        elif kind == "drnn":
            hidden, _ = self.lstm(frames)
            result["lstm"] = hidden
            result["output"] = (
                self.output(hidden).reshape(batch, count, sources, bins).transpose(1, 2)
            )
        else:
            self._drdnn_stages(frames, result)
        return result

    def _drdnn_stages(self, frames: torch.Tensor, result: dict[str, torch.Tensor]) -> None:
        value = frames
        if self.config.reduction:
            value = self.reduction(frames).flatten(2)
            result["convolutions"] = value
        hidden, (final, _) = self.lstm(value)
        if self.config.feature == "final":
            # The last layer's final forward and backward states code the whole batch.
            feature = torch.cat([final[-2], final[-1]], dim=-1)
            hidden = feature[:, None, :].expand(-1, frames.shape[1], -1)
        result["lstm"] = hidden
        if self.config.decoupling:
            decoupled = [mlp(hidden) for mlp in self.decoupling]
            result["decoupling"] = torch.stack(decoupled, dim=1)
        else:
            decoupled = [hidden] * len(SOURCES)
        outputs = [restore(part) for restore, part in zip(self.restoration, decoupled, strict=True)]
        result["output"] = torch.stack(outputs, dim=1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """`(batch, M, bins)` -> Y^ `(batch, sources, M, bins)`."""
        return self.stages(frames)["output"]

    @property
    def loss_scale(self) -> torch.Tensor:
        """One number that brings raw magnitudes to about unit size for the losses: the mean
        per-band scale. Losses compare raw magnitudes (the paper's MSE on spectrograms) divided
        by it; the per-band `scale` only normalises what the network reads."""
        return self.scale.mean()

    def apply_output(
        self, output: torch.Tensor, magnitude: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Y^ `(batch, sources, M, bins)` and the raw mixture magnitude `(batch, M, bins)` ->
        (Y~ raw `(batch, sources, M, bins)`, soft masks of that shape, or None without masks:
        then Y~ = |Y^| brought back to raw units by `scale`)."""
        if not self.config.masking:
            return output.abs() * self.scale, None
        masks = soft_masks(output)
        return masks * magnitude[:, None], masks

    def estimates(self, magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw mixture magnitude `(batch, M, bins)` -> `apply_output(...)`."""
        return self.apply_output(self(magnitude / self.scale), magnitude)


def soft_masks(output: torch.Tensor) -> torch.Tensor:
    """`M_s = |Y^_s| / sum_i |Y^_i|` over axis 1 (sources); epsilon keeps silence defined
    (every mask 1/S there) and the sum exactly 1."""
    magnitude = output.abs() + MASK_EPSILON
    return magnitude / magnitude.sum(dim=1, keepdim=True)


def mse_loss(estimates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum over sources of the per-source mean squared error; `(batch, sources, ...)` each."""
    return ((estimates - targets) ** 2).flatten(2).mean(dim=2).sum(dim=1).mean()


def discriminative_loss(
    estimates: torch.Tensor, targets: torch.Tensor, beta: float
) -> torch.Tensor:
    """`sum_s ||Y~_s - Y_s||^2 - beta sum_{i != j} ||Y~_i - Y_j||^2`, each squared norm taken as a
    mean over the batch's elements (so beta weighs like-for-like terms): `(batch, sources, ...)`."""
    estimates, targets = estimates.flatten(2), targets.flatten(2)
    # pairwise[b, i, j] = mean over elements of (Y~_i - Y_j)^2
    pairwise = ((estimates[:, :, None] - targets[:, None, :]) ** 2).mean(dim=3)
    own = torch.diagonal(pairwise, dim1=1, dim2=2).sum(dim=1)
    cross = pairwise.sum(dim=(1, 2)) - own
    return (own - beta * cross).mean()


# ---------------------------------------------------------------- the separator
class DRDNNSeparator(NetworkSeparator):
    """A trained DRDNN-family network as a separator: mono mixture in (the paper is mono; stereo
    is downmixed), vocals, drums, bass, other and accompaniment out.

    Not frame-local: an output frame depends on every frame of the 50-frame batches containing it.
    Chunks therefore start on the batch grid (alignment = hop x 35 frames), so a chunk's batches
    are the whole track's batches; the margin (more than one batch plus the STFT reach) keeps the
    batches touched by a chunk's zero-padded edges out of the kept part. Chunked output then
    equals whole-track output up to float rounding.
    """

    mono = True
    chunk_seconds = 30.0

    def __init__(
        self, network: DRDNNNetwork, name: str | None = None, device: torch.device | None = None
    ):
        super().__init__(network, make_frontend(network.config.frontend), name, device)
        hop, step = self.frontend.hop_length, self.config.batch_step
        self.alignment = hop * step
        reach = self.config.batch_frames + math.ceil(self.frontend.config.n_fft / hop) + 1
        self.margin_seconds = math.ceil(reach / step) * self.alignment / self.sample_rate

    def output_stems(self, track: Track) -> tuple[str, ...]:
        return (*SOURCES, ACCOMPANIMENT)

    def run_batches(
        self,
        magnitude: torch.Tensor,
        keep: tuple[str, ...] | None = None,
        batch_size: int = 128,
    ) -> dict[str, torch.Tensor]:
        """`magnitude (frames, bins)` raw -> every stage overlap-added back to frames:
        `{stage: (frames, units) or (sources, frames, units)}` (stages of `DRDNNNetwork.stages`,
        `input` normalised), plus `estimate` (Y~, raw magnitudes) and `mask` (when masking).
        `keep` names the stages to return (default all)."""
        config, network = self.config, self.network
        batches = split_batches(magnitude, config.batch_frames, config.batch_step)
        collected: dict[str, list[torch.Tensor]] = {}
        for first in range(0, len(batches), batch_size):
            part = batches[first : first + batch_size]
            stages = network.stages(part / network.scale)
            stages["estimate"], masks = network.apply_output(stages["output"], part)
            if masks is not None:
                stages["mask"] = masks
            for key, value in stages.items():
                if keep is None or key in keep:
                    collected.setdefault(key, []).append(value)
        return {
            key: overlap_add(torch.cat(values), magnitude.shape[0], config.batch_step)
            for key, values in collected.items()
        }

    def process(
        self, mixture: torch.Tensor, references: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        spectrum = self.frontend.encode(mixture)
        length = mixture.shape[-1]
        magnitude = spectrum.abs()
        phase = spectrum / magnitude.clamp_min(1e-12)
        result: dict[str, list[torch.Tensor]] = {}
        for channel in range(mixture.shape[0]):
            frames = magnitude[channel].transpose(0, 1)
            estimate = self.run_batches(frames, ("estimate",))[
                "estimate"
            ]  # (sources, frames, bins)
            waves = self.frontend.decode(estimate.transpose(-2, -1) * phase[channel], length)
            for index, source in enumerate(SOURCES):
                result.setdefault(source, []).append(waves[index])
        stems = {source: torch.stack(waves) for source, waves in result.items()}
        stems[ACCOMPANIMENT] = stems["drums"] + stems["bass"] + stems["other"]
        return stems

    def probes(
        self, track: Track, start_seconds: float = 0.0, seconds: float = 5.0
    ) -> dict[str, probes.Probe]:
        """Stage features as Activations `(units, frames)` (input, convolutions, LSTM, decoupling
        per source, restoration |Y^_s| per source) and the soft masks as Mask `(bins, frames)`."""
        excerpt = self.prepare(track).excerpt(start_seconds, seconds)
        if excerpt.mixture.shape[-1] == 0:
            raise InputError(
                f"no audio at {start_seconds:.2f} s in '{track.name}' ({track.seconds:.2f} s long)"
            )
        mixture = torch.from_numpy(np.ascontiguousarray(excerpt.mixture)).to(self.device)
        with torch.inference_mode():
            magnitude = self.frontend.encode(mixture)[0].abs().transpose(0, 1)
            stages = self.run_batches(magnitude)
        hop, rate, name = self.frontend.hop_length, self.sample_rate, self.config.variant
        result: dict[str, probes.Probe] = {}

        def add(key: str, label: str, values: torch.Tensor, unit: str) -> None:
            result[key] = probes.Activations(label, values.T.cpu().numpy(), hop, rate, unit)

        add(
            "activations/1-input",
            f"{name} input batch (normalised magnitude)",
            stages["input"],
            "bin",
        )
        shared = (
            ("convolutions", "after the convolutions", "channel x bin"),
            ("hidden", "hidden layers", "unit"),
            ("lstm", "after the BLSTM", "unit"),
        )
        for index, (key, text, unit) in enumerate(shared):
            if key in stages:
                add(f"activations/{index + 2}-{key}", f"{name} {text}", stages[key], unit)
        for index, source in enumerate(SOURCES):
            if "decoupling" in stages:
                add(
                    f"activations/5-decoupling-{source}",
                    f"{name} after decoupling: {source}",
                    stages["decoupling"][index],
                    "unit",
                )
            add(
                f"activations/6-restoration-{source}",
                f"{name} restoration |Y^|: {source}",
                stages["output"][index].abs(),
                "bin",
            )
            if "mask" in stages:
                result[f"mask/{source}"] = probes.Mask(
                    f"{name} soft mask: {source}",
                    source,
                    stages["mask"][index].T.cpu().numpy(),
                    hop,
                    rate,
                    self.config.frontend,
                )
        return result


# ---------------------------------------------------------------- loading and registration
def build_network(
    config: DRDNNConfig, state_dict: Mapping[str, torch.Tensor] | None = None
) -> DRDNNNetwork:
    """A network from its config, with weights when given (fp16 weights are cast to float32).
    Weights that do not fit the config are an InputError."""
    network = DRDNNNetwork(config)
    if state_dict is None:
        return network
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise InputError(
            f"weights do not fit a '{config.variant}' model (missing: {', '.join(missing[:4]) or 'none'}; "
            f"unexpected: {', '.join(unexpected[:4]) or 'none'})"
        )
    for key, value in state_dict.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise InputError(
                f"weights '{key}' have shape {tuple(value.shape)}, but this '{config.variant}' model "
                f"needs {tuple(expected[key].shape)}"
            )
    network.load_state_dict({key: value.float() for key, value in state_dict.items()})
    return network


def load(config: dict, state_dict: dict, name: str, device: torch.device) -> DRDNNSeparator:
    """The registry loader for the kinds drdnn, mlp, dcnn, drnn."""
    return DRDNNSeparator(build_network(DRDNNConfig.from_dict(config), state_dict), name, device)


def builtin(name: str, device: torch.device) -> DRDNNSeparator:
    """The shipped demo weights `resources/<name>.pt`."""
    payload = registry.shipped_checkpoint(
        f"{name}.pt", name, f"explorer train --model {name} --data synth"
    )
    return load(payload["config"], payload["state_dict"], name, device)


for _kind in KINDS:
    registry.register_kind(_kind, load)
    registry.register_builtin(_kind, builtin)
