"""The mod-cos autoencoder: unsupervised interpretable representation learning (EUSIPCO 2020).

FACTS.md section 2. A waveform `x (batch, samples)` is encoded into a non-negative
representation `A (batch, C, frames)` and decoded back by a bank of C synthesis kernels:

- Encoder E: `h = conv1d(x; C kernels of length L, stride S, no bias)`, then
  `A = relu(dilated_conv1d(h; C -> C, kernel L' = 5, dilation D = 10) + h)` (residual before
  the ReLU). Kaiming-uniform initialisation. With `encoder="sinc"` the first stage is a bank of
  SincNet band-pass kernels (learnable low cut-off and band width, Hamming window).
- Decoder D: a transposed strided convolution of A with the kernels
  `w_c[t] = cos(2 pi f_c^p t + phi_c) * b_c[t]`, `t = 0 .. L-1`, no bias, no output
  non-linearity. `p = 2` is the paper's model, `p = 1` the "linear" ablation. Variants: plain
  cosine (`decoder="cos"`: no learnable envelope), a free conv decoder (`"conv"`), and a free
  conv decoder followed by tanh (`"conv-tanh"`).

Frequencies [open, documented]: FACTS says f_c is initialised to mel-spaced frequencies from
30 Hz to 22050 Hz divided by the sample rate, and the authors' code then uses f_c^2 as the
kernel frequency, so its initial kernels sit at (mel / fs)^2 cycles per sample, all below fs/4.
Our default `frequency_init="mel"` initialises `f_c = (mel_c / fs)^(1/p)` so that the kernel
frequency f_c^p *is* the mel-spaced frequency (30 Hz .. 22.05 kHz) at the start; the code's
literal choice is the named alternative `frequency_init="code"`.

Envelope steps [open]: b_c starts at 1/(C+L) (about 4e-4); if b itself is the parameter, as
in the authors' code, Adam moves it by about the learning rate per step, far more than its
size, and the envelopes turn into free filters at once. By default b = e / (C+L) with a unit
parameter e (`envelope_step="relative"`): the same function, the same initial value, steps
relative to b's size; `envelope_step="absolute"` is the code's behaviour.

Sorting: the paper sorts the kernels by f_c^p after every update and applies the same
permutation to the representation's channels, so the decoded waveform does not change. Like the
authors' code, we apply the sorting permutation at every forward pass (`channel_order()`): the
representation's channels are always in ascending kernel frequency (so the TV term sees
neighbouring frequencies), and Adam's moments stay attached to their parameters. `sort_()`
makes the permutation physical (every encoder parameter that indexes an output channel, the
dilated conv's input channels, and the decoder's f, phi, b), which leaves `decode(encode(x))`
unchanged; loading a checkpoint does it, so stored parameters are in sorted order.

Frames: frame t's kernel covers samples `[t S - P, t S - P + L)` with `P = (L - S) // 2`, so
`T = ceil(N / S)` frames cover N samples (N = 44100, S = 384 gives T = 115). The decoder is a
transposed convolution, hence frame-local: `decode_frames` re-synthesises a frame range exactly.
The encoder is not frame-local (the dilated conv sees +-20 frames); the separator's chunk
margin covers that reach.

The object implements the front-end interface of DESIGN.md (`encode`, `decode`,
`decode_frames`, `sample_span`, `frames_for`), so masks work in this representation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from explorer.audio import masks
from explorer.data.track import ACCOMPANIMENT, Track
from explorer.errors import InputError
from explorer.models import probes, registry
from explorer.models.base import Separator

# kind -> (encoder, decoder, frequency power). "modcos" is the paper's model.
VARIANTS: dict[str, tuple[str, str, int]] = {
    "modcos": ("conv", "mod-cos", 2),
    "modcos-linear": ("conv", "mod-cos", 1),
    "modcos-cos": ("conv", "cos", 2),
    "modcos-cos-linear": ("conv", "cos", 1),
    "modcos-conv": ("conv", "conv", 2),
    "modcos-conv-tanh": ("conv", "conv-tanh", 2),
    "modcos-sinc": ("sinc", "mod-cos", 2),
}
FREQUENCY_INITS = ("mel", "code")
TV_SOURCES = ("mixture", "vocals")
ENVELOPE_STEPS = ("relative", "absolute")
MEL_LOW_HERTZ, MEL_HIGH_HERTZ = 30.0, 22050.0
# Size presets. "paper": C=800, L=2048, S=384 (the default). "code": the shipped code's hop 256.
# "small" [open]: the shipped demo weights and short CPU runs (C=256, L=512, S=128: twice
# overcomplete like the paper's 800 per 384 samples, about a third of its work per second of
# audio; it reconstructed and separated better in equal CPU time than C=128, L=1024, S=256 and
# C=256, L=1024, S=256). "tiny" [open]: unit tests.
PRESETS: dict[str, dict[str, int]] = {
    "paper": {"components": 800, "kernel_length": 2048, "hop_length": 384},
    "code": {"components": 800, "kernel_length": 2048, "hop_length": 256},
    "small": {"components": 256, "kernel_length": 512, "hop_length": 128},
    "tiny": {"components": 16, "kernel_length": 64, "hop_length": 16},
}


@dataclass(frozen=True)
class ModCosConfig:
    """A mod-cos autoencoder. `kind` picks the variant (VARIANTS); `preset` names the sizes it
    started from (explicit sizes override it). Training values live here too, so a checkpoint
    records how its representation was learned: `tv_on` ("mixture": TV on A_m, the paper's
    default; "vocals": on A_v), `tv_weight` (lambda), `noise_std` (sigma of the Gaussian noise
    added to the vocals), `segment_samples` (N), `set_size` (tracks whose segments are re-paired
    at random)."""

    kind: str = "modcos"
    preset: str = "paper"
    components: int = 800
    kernel_length: int = 2048
    hop_length: int = 384
    dilated_kernel: int = 5
    dilation: int = 10
    sample_rate: int = 44100
    frequency_init: str = "mel"
    envelope_step: str = "relative"
    tv_on: str = "mixture"
    tv_weight: float = 0.5
    noise_std: float = 1e-4
    segment_samples: int = 44100
    set_size: int = 4

    def __post_init__(self) -> None:
        if self.kind not in VARIANTS:
            raise InputError(f"unknown mod-cos kind '{self.kind}' (known: {', '.join(VARIANTS)})")
        if self.preset not in PRESETS:
            raise InputError(
                f"unknown mod-cos preset '{self.preset}' (known: {', '.join(PRESETS)})"
            )
        if min(self.components, self.kernel_length, self.hop_length, self.dilation) < 1:
            raise InputError("components, kernel length, hop length and dilation must be positive")
        if self.hop_length > self.kernel_length:
            raise InputError(
                f"hop length {self.hop_length} is longer than the kernel length {self.kernel_length}"
            )
        if self.dilated_kernel < 1 or self.dilated_kernel % 2 == 0:
            raise InputError(f"the dilated kernel length must be odd, got {self.dilated_kernel}")
        if self.frequency_init not in FREQUENCY_INITS:
            raise InputError(f"frequency_init must be one of {', '.join(FREQUENCY_INITS)}")
        if self.envelope_step not in ENVELOPE_STEPS:
            raise InputError(f"envelope_step must be one of {', '.join(ENVELOPE_STEPS)}")
        if self.tv_on not in TV_SOURCES:
            raise InputError(f"tv_on must be one of {', '.join(TV_SOURCES)}")
        if self.segment_samples < self.kernel_length or self.set_size < 1:
            raise InputError("segments must be at least one kernel long, and sets at least 1 track")

    @property
    def encoder(self) -> str:
        return VARIANTS[self.kind][0]

    @property
    def decoder(self) -> str:
        return VARIANTS[self.kind][1]

    @property
    def power(self) -> int:
        return VARIANTS[self.kind][2]

    @property
    def padding(self) -> int:
        """P: frame t's kernel starts at sample `t * S - P`."""
        return (self.kernel_length - self.hop_length) // 2

    @property
    def reach(self) -> int:
        """Frames on each side that the dilated conv sees."""
        return self.dilation * (self.dilated_kernel - 1) // 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModCosConfig:
        """From a checkpoint or `--set` values; a `preset` fills in the sizes not given."""
        known = {field.name for field in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"unknown mod-cos config keys: {', '.join(sorted(unknown))}")
        chosen = dict(values)
        name = chosen.get("preset", "paper")
        if name not in PRESETS:
            raise InputError(f"unknown mod-cos preset '{name}' (known: {', '.join(PRESETS)})")
        try:
            return cls(**{**PRESETS[name], **chosen})
        except TypeError as error:
            raise InputError(f"bad mod-cos config: {error}") from None


def preset_config(name: str, kind: str = "modcos", **overrides: Any) -> ModCosConfig:
    return ModCosConfig.from_dict({"kind": kind, "preset": name, **overrides})


def mel_frequencies(components: int, sample_rate: int) -> np.ndarray:
    """`(components,)` mel-spaced frequencies in Hz from 30 Hz to min(22050 Hz, fs / 2)."""
    to_mel = lambda hertz: 2595.0 * np.log10(1.0 + hertz / 700.0)  # noqa: E731
    high = min(MEL_HIGH_HERTZ, sample_rate / 2.0)
    mel = np.linspace(to_mel(MEL_LOW_HERTZ), to_mel(high), components)
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


# ---------------------------------------------------------------- encoder
class SincStage(nn.Module):
    """SincNet-style band-pass kernels `(C, 1, L)`: learnable low cut-off and band width in
    cycles per sample, mel-spaced at the start, Hamming-windowed [open: the paper names the
    variant only]."""

    def __init__(self, components: int, kernel_length: int, sample_rate: int):
        super().__init__()
        edges = mel_frequencies(components + 1, sample_rate) / sample_rate
        self.low = nn.Parameter(torch.from_numpy(edges[:-1]).float())
        self.band = nn.Parameter(torch.from_numpy(np.diff(edges)).float())
        time = torch.arange(kernel_length, dtype=torch.float64) - (kernel_length - 1) / 2
        self.register_buffer("time", time.float(), persistent=False)
        window = torch.from_numpy(np.hamming(kernel_length)).float()
        self.register_buffer("window", window, persistent=False)

    def kernels(self) -> torch.Tensor:
        """`(C, L)` band-pass impulse responses, `2 f2 sinc(2 f2 t) - 2 f1 sinc(2 f1 t)`."""
        low = self.low.abs()
        high = (low + self.band.abs()).clamp(max=0.5)
        time = self.time.to(low.dtype)

        def low_pass(cutoff: torch.Tensor) -> torch.Tensor:
            return 2 * cutoff[:, None] * torch.sinc(2 * cutoff[:, None] * time[None, :])

        return (low_pass(high) - low_pass(low)) * self.window.to(low.dtype)

    def forward(self, padded: torch.Tensor, hop_length: int) -> torch.Tensor:
        return functional.conv1d(padded, self.kernels()[:, None, :], stride=hop_length)

    def channel_parameters(self) -> list[tuple[nn.Parameter, tuple[int, ...]]]:
        return [(self.low, (0,)), (self.band, (0,))]


class ConvStage(nn.Module):
    """A free strided conv `(C, 1, L)` without bias, Kaiming-uniform initialised."""

    def __init__(self, components: int, kernel_length: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(components, 1, kernel_length))
        nn.init.kaiming_uniform_(self.weight)

    def kernels(self) -> torch.Tensor:
        return self.weight[:, 0, :]

    def forward(self, padded: torch.Tensor, hop_length: int) -> torch.Tensor:
        return functional.conv1d(padded, self.weight, stride=hop_length)

    def channel_parameters(self) -> list[tuple[nn.Parameter, tuple[int, ...]]]:
        return [(self.weight, (0,))]


class Encoder(nn.Module):
    """`(batch, samples) -> (batch, C, frames)`, unsorted channels (see `ModCosAutoencoder`)."""

    def __init__(self, config: ModCosConfig):
        super().__init__()
        self.config = config
        C, L = config.components, config.kernel_length
        self.first = (
            SincStage(C, L, config.sample_rate) if config.encoder == "sinc" else ConvStage(C, L)
        )
        self.dilated = nn.Conv1d(
            C, C, config.dilated_kernel, dilation=config.dilation, padding=config.reach, bias=False
        )
        nn.init.kaiming_uniform_(self.dilated.weight)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        config = self.config
        samples = wave.shape[-1]
        frames = -(-samples // config.hop_length)
        right = (frames - 1) * config.hop_length + config.kernel_length - samples - config.padding
        padded = functional.pad(wave[:, None, :], (config.padding, right))
        hidden = self.first(padded, config.hop_length)
        return torch.relu(self.dilated(hidden) + hidden)

    def permuted_parameters(self) -> list[tuple[nn.Parameter, tuple[int, ...]]]:
        """Parameters and the axes that index the representation's channels."""
        return self.first.channel_parameters() + [(self.dilated.weight, (0, 1))]


# ---------------------------------------------------------------- decoders
class CosineDecoder(nn.Module):
    """Kernels `w_c[t] = cos(2 pi f_c^p t + phi_c) * b_c[t]`. `envelope=False` is the plain
    cosine ablation: b is then a fixed constant 1/(C+L) [open: keeps the initial scale].

    `b = envelope * envelope_scale`. With `envelope_step="relative"` (our default [open]) the
    parameter starts at 1 and the fixed scale is 1/(C+L), so Adam moves b by a fraction of its
    size per step and the envelopes stay envelopes; `"absolute"` (the authors' code) makes b
    itself the parameter, which Adam then moves by the learning rate per step, hundreds of times
    b's initial size: the envelopes become free filters within a few steps."""

    def __init__(self, config: ModCosConfig, envelope: bool = True):
        super().__init__()
        C, L = config.components, config.kernel_length
        self.power = config.power
        initial = mel_frequencies(C, config.sample_rate) / config.sample_rate
        if config.frequency_init == "mel":
            initial = initial ** (1.0 / self.power)
        self.frequency = nn.Parameter(torch.from_numpy(initial).float())
        self.phase = nn.Parameter(torch.randn(C))
        relative = config.envelope_step == "relative" or not envelope
        scale = 1.0 / (C + L)
        values = torch.ones(C, L) if relative else torch.full((C, L), scale)
        if envelope:
            self.envelope = nn.Parameter(values)
        else:
            self.register_buffer("envelope", values)
        self.envelope_scale = scale if relative else 1.0
        self.register_buffer("time", torch.arange(L, dtype=torch.float32), persistent=False)

    def envelopes(self) -> torch.Tensor:
        """`(C, L)` b_c in parameter order."""
        return self.envelope * self.envelope_scale

    def kernel_frequencies(self) -> torch.Tensor:
        """`(C,)` kernel frequencies f_c^p in cycles per sample."""
        return self.frequency**self.power

    def kernels(self) -> torch.Tensor:
        """`(C, L)` in parameter order."""
        time = self.time.to(self.frequency.dtype)
        argument = 2 * math.pi * self.kernel_frequencies()[:, None] * time[None, :]
        return torch.cos(argument + self.phase[:, None]) * self.envelopes()

    def order(self) -> torch.Tensor:
        return torch.argsort(self.kernel_frequencies().detach(), stable=True)

    def permuted_parameters(self) -> list[tuple[nn.Parameter, tuple[int, ...]]]:
        # The plain-cosine envelope is a constant buffer; permuting it keeps that true anyway.
        return [(self.frequency, (0,)), (self.phase, (0,)), (self.envelope, (0,))]

    def finish(self, wave: torch.Tensor) -> torch.Tensor:
        return wave


class ConvDecoder(nn.Module):
    """A free transposed conv `(C, L)` (PyTorch's default initialisation, as the authors'
    ConvTranspose1d), optionally followed by tanh. Its kernels have no frequency to sort by."""

    def __init__(self, config: ModCosConfig, tanh: bool = False):
        super().__init__()
        layer = nn.ConvTranspose1d(config.components, 1, config.kernel_length, bias=False)
        self.weight = nn.Parameter(layer.weight.detach()[:, 0, :].clone())
        self.tanh = tanh

    def kernels(self) -> torch.Tensor:
        return self.weight

    def order(self) -> torch.Tensor:
        return torch.arange(self.weight.shape[0], device=self.weight.device)

    def permuted_parameters(self) -> list[tuple[nn.Parameter, tuple[int, ...]]]:
        return [(self.weight, (0,))]

    def finish(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.tanh(wave) if self.tanh else wave


def make_decoder(config: ModCosConfig) -> nn.Module:
    if config.decoder in ("conv", "conv-tanh"):
        return ConvDecoder(config, tanh=config.decoder == "conv-tanh")
    return CosineDecoder(config, envelope=config.decoder == "mod-cos")


# ---------------------------------------------------------------- the autoencoder
class ModCosAutoencoder(nn.Module):
    """Encoder and decoder, and the front-end interface over them.

    `encode(wave (batch, samples)) -> (batch, C, frames)` with channels sorted by kernel
    frequency; `decode(representation, length) -> (batch, length)`;
    `decode_frames(representation, start, stop, length) -> (wave (batch, span), first_sample)`.
    """

    def __init__(self, config: ModCosConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = make_decoder(config)

    # -- front-end interface
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def bins(self) -> int:
        return self.config.components

    def frames_for(self, length: int) -> int:
        return -(-length // self.config.hop_length)

    def channel_order(self) -> torch.Tensor:
        """`(C,)` parameter indices in ascending kernel frequency (identity for conv decoders)."""
        return self.decoder.order()

    def sorted_kernels(self) -> torch.Tensor:
        """`(C, L)` synthesis kernels in representation order."""
        return self.decoder.kernels()[self.channel_order()]

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """`(batch, samples) -> (batch, C, frames)`, non-negative, frequency-sorted channels."""
        if wave.dim() != 2:
            raise InputError(f"encode expects (batch, samples), got shape {tuple(wave.shape)}")
        if wave.shape[-1] < self.config.kernel_length:
            raise InputError(
                f"input of {wave.shape[-1]} samples is shorter than one mod-cos kernel "
                f"({self.config.kernel_length} samples, {1000 * self.config.kernel_length / self.sample_rate:.0f} ms)"
            )
        return self.encoder(wave)[:, self.channel_order(), :]

    def decode(self, representation: torch.Tensor, length: int) -> torch.Tensor:
        """`(batch, C, frames) -> (batch, length)`."""
        wave, first = self._synthesise(representation, 0, representation.shape[-1], 0, length)
        assert first == 0
        return wave

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(wave), wave.shape[-1])

    def sample_span(self, start: int, stop: int, length: int) -> tuple[int, int]:
        """The samples `[first, last)` that frames `[start, stop)` contribute to."""
        hop, padding = self.config.hop_length, self.config.padding
        first = max(0, start * hop - padding)
        last = min(length, (stop - 1) * hop - padding + self.config.kernel_length)
        return first, max(first, last)

    def decode_frames(
        self, representation: torch.Tensor, start: int, stop: int, length: int
    ) -> tuple[torch.Tensor, int]:
        """Re-synthesise the samples touched by frames `[start, stop)`: returns
        `(wave (batch, last - first), first)`, equal to `decode(...)[:, first:last]`. Only the
        frames overlapping that span are synthesised."""
        frames = representation.shape[-1]
        if not 0 <= start < stop <= frames:
            raise InputError(f"frame range [{start}, {stop}) outside 0..{frames}")
        first, last = self.sample_span(start, stop, length)
        hop, padding, kernel = (
            self.config.hop_length,
            self.config.padding,
            self.config.kernel_length,
        )
        low = max(0, (first + padding - kernel) // hop + 1)
        high = min(frames, -(-(last + padding) // hop))
        return self._synthesise(representation, low, high, first, last)

    def _synthesise(
        self, representation: torch.Tensor, low: int, high: int, first: int, last: int
    ) -> tuple[torch.Tensor, int]:
        """Transposed conv of frames `[low, high)`, cut to samples `[first, last)`."""
        kernels = self.sorted_kernels().to(representation.dtype)
        wave = functional.conv_transpose1d(
            representation[..., low:high], kernels[:, None, :], stride=self.config.hop_length
        )[:, 0, :]
        origin = low * self.config.hop_length - self.config.padding
        begin = first - origin
        wave = wave[:, max(0, begin) : max(0, last - origin)]
        missing = (last - first) - wave.shape[-1]
        if missing > 0 or begin < 0:  # samples no frame reaches stay zero
            wave = functional.pad(wave, (max(0, -begin), max(0, missing - max(0, -begin))))
        return self.decoder.finish(wave), first

    # -- sorting
    @torch.no_grad()
    def sort_(self, optimizer: torch.optim.Optimizer | None = None) -> torch.Tensor:
        """Permute the parameters into ascending kernel frequency (and Adam's moments with them
        when `optimizer` is given). Returns the permutation; `decode(encode(x))` is unchanged."""
        order = self.channel_order()
        items = self.encoder.permuted_parameters() + self.decoder.permuted_parameters()
        for parameter, axes in items:
            tensors = [parameter]
            if optimizer is not None:
                state = optimizer.state.get(parameter, {})
                tensors += [
                    value
                    for value in state.values()
                    if torch.is_tensor(value) and value.shape == parameter.shape
                ]
            for tensor in tensors:
                permuted = tensor
                for axis in axes:
                    permuted = permuted.index_select(axis, order.to(tensor.device))
                tensor.copy_(permuted)
        return order

    # -- descriptions
    @torch.no_grad()
    def kernel_frequencies_hertz(self) -> np.ndarray | None:
        """`(C,)` sorted kernel frequencies in Hz (None for free conv decoders)."""
        if not isinstance(self.decoder, CosineDecoder):
            return None
        values = self.decoder.kernel_frequencies()[self.channel_order()]
        return (values.double() * self.sample_rate).cpu().numpy()

    @torch.no_grad()
    def envelopes(self) -> np.ndarray | None:
        """`(C, L)` envelopes b_c in representation order (None without envelopes)."""
        if not isinstance(self.decoder, CosineDecoder):
            return None
        return self.decoder.envelopes()[self.channel_order()].float().cpu().numpy()


# ---------------------------------------------------------------- losses
def neg_snr(target: torch.Tensor, estimate: torch.Tensor, epsilon: float = 1e-24) -> torch.Tensor:
    """`-10 log10(||x||^2 / ||x - x_hat||^2)` over the whole batch. Like the authors' code, an
    epsilon keeps it finite: a silent target gives a constant `-10 log10(eps)` with zero
    gradient instead of infinity."""
    ratio = target.square().sum() / ((target - estimate).square().sum() + epsilon)
    return -10.0 * torch.log10(ratio + epsilon)


def total_variation(representation: torch.Tensor) -> torch.Tensor:
    """`||A[:, :, 1:] - A[:, :, :-1]|| / T + ||A[:, 1:, :] - A[:, :-1, :]|| / C`: non-squared
    Frobenius norms over the batch (the authors' code), for `(batch, C, T)`."""
    channels, frames = representation.shape[-2], representation.shape[-1]
    over_time = torch.linalg.vector_norm(representation.diff(dim=-1)) / frames
    over_channels = torch.linalg.vector_norm(representation.diff(dim=-2)) / channels
    return over_time + over_channels


def training_loss(
    model: ModCosAutoencoder,
    vocals: torch.Tensor,
    accompaniment: torch.Tensor,
    noise: torch.Tensor,
    parts: dict[str, float] | None = None,
) -> torch.Tensor:
    """`neg-SNR(v, D(E(v + n))) + lambda TV(A)` for `(batch, samples)` segments: the batch means
    of v and of m = v + b are removed first (the authors' code); A is E(m) by default, or
    E(v + n) with `tv_on="vocals"`. `parts` receives the two terms' values."""
    config = model.config
    vocals = vocals - vocals.mean()
    mixture = vocals + accompaniment
    mixture = mixture - mixture.mean()
    noisy = model.encode(vocals + noise)
    reconstruction = neg_snr(vocals, model.decode(noisy, vocals.shape[-1]))
    smoothed = noisy if config.tv_on == "vocals" else model.encode(mixture)
    smoothness = total_variation(smoothed)
    if parts is not None:
        parts["neg_snr"] = float(reconstruction.detach())
        parts["tv"] = float(smoothness.detach())
    return reconstruction + config.tv_weight * smoothness


# ---------------------------------------------------------------- informed separation and metrics
def informed_mask(
    model, vocals: torch.Tensor, accompaniment: torch.Tensor, rule: str = "paper"
) -> masks.Mask:
    """The vocals mask in `model`'s representation (a mod-cos model or an STFT front-end) from
    the true stems, `(batch, samples)` each: `paper` is `1[|E(v)| / |E(b)| > 0.5]`, `ibm`
    is `1[|E(v)| > |E(b)|]`, `irm` is `|E(v)| / (|E(v)| + |E(b)|)`."""
    target, rest = model.encode(vocals), model.encode(accompaniment)
    if rule == "paper":
        return masks.ratio_threshold_mask(target, rest, 0.5)
    if rule == "ibm":
        return masks.binary_mask(target, [rest])
    if rule == "irm":
        return masks.ratio_mask(target, [rest])
    raise InputError(f"unknown mask rule '{rule}' (use paper, ibm or irm)")


def additivity_error(
    model, mixture: torch.Tensor, vocals: torch.Tensor, accompaniment: torch.Tensor
) -> float:
    """`||E(m) - E(v) - E(b)||_1 / ||E(m)||_1` (magnitudes for complex representations)."""
    encoded = [model.encode(signal) for signal in (mixture, vocals, accompaniment)]
    if encoded[0].is_complex():
        encoded = [value.abs() for value in encoded]
    error = (encoded[0] - encoded[1] - encoded[2]).abs().sum()
    return float(error / encoded[0].abs().sum().clamp_min(1e-24))


@torch.inference_mode()
def segment_scores(
    model, track: Track, segment_seconds: float = 1.0, rule: str = "paper"
) -> dict[str, list[float]]:
    """The paper's evaluation of one track in one representation (a `ModCosAutoencoder` or an
    STFT front-end), per non-overlapping 1 s segment whose vocals are not silent
    (`10 log10(||v||_2) < -10` drops it):

    - `reconstruction_si_sdr`: SI-SDR of D(E(v)) against v (empty for STFT: it is exact);
    - `separation_si_sdr`: SI-SDR of D(E(m) * mask) with the informed mask (`rule`);
    - `mixture_si_sdr`: SI-SDR of the mixture itself (the gain's reference);
    - `additivity`: `||E(m) - E(v) - E(b)||_1 / ||E(m)||_1` of the segment.

    The whole track is encoded at once (the authors encode each 1 s segment on its own)."""
    from explorer.audio.metrics import is_silent, segment_values, si_sdr

    track.require_stems("vocals", ACCOMPANIMENT)
    track = track.resampled(model.sample_rate).mono()
    device = (
        next(model.parameters()).device
        if isinstance(model, ModCosAutoencoder)
        else model.window.device
    )
    mixture, vocals, accompaniment = (
        torch.from_numpy(np.ascontiguousarray(track.signal(name))).to(device)
        for name in ("mixture", "vocals", ACCOMPANIMENT)
    )
    length = mixture.shape[-1]
    segment = int(round(segment_seconds * model.sample_rate))
    mask = informed_mask(model, vocals, accompaniment, rule)
    separated = model.decode(mask.apply(model.encode(mixture)), length).cpu().numpy()
    reference = vocals.cpu().numpy()
    scores: dict[str, list[float]] = {
        "separation_si_sdr": segment_values(si_sdr, reference, separated, segment),
        "mixture_si_sdr": segment_values(si_sdr, reference, mixture.cpu().numpy(), segment),
        "reconstruction_si_sdr": [],
    }
    if isinstance(model, ModCosAutoencoder):
        reconstructed = model.decode(model.encode(vocals), length).cpu().numpy()
        scores["reconstruction_si_sdr"] = segment_values(si_sdr, reference, reconstructed, segment)

    # The same segments as `segment_values`: a trailing piece of at least half a segment counts.
    scores["additivity"] = []
    for start in range(0, length - segment // 2, segment):
        piece = slice(start, start + segment)
        if is_silent(reference[:, piece]) or piece_too_short(
            model, min(length, piece.stop) - start
        ):
            continue
        scores["additivity"].append(
            additivity_error(model, mixture[:, piece], vocals[:, piece], accompaniment[:, piece])
        )
    return scores


def piece_too_short(model, samples: int) -> bool:
    return isinstance(model, ModCosAutoencoder) and samples < model.config.kernel_length


def median_scores(scores: dict[str, list[float]]) -> dict[str, float | None]:
    return {key: (float(np.median(values)) if values else None) for key, values in scores.items()}


def paper_metrics(
    model, track: Track, segment_seconds: float = 1.0, rule: str = "paper"
) -> dict[str, float | None]:
    """Medians of `segment_scores` over one track."""
    return median_scores(segment_scores(model, track, segment_seconds, rule))


# ---------------------------------------------------------------- the separator
class ModCosSeparator(Separator):
    """Informed binary-mask separation in the learned representation (the paper's experiment):
    the mask comes from the true vocals and accompaniment (`needs_references`), is applied to
    E(m), and decoded. `rule` "paper" is `1[E(v)/E(b) > 0.5]`; "ibm" / "irm" are the oracle
    masks in this representation (built-ins `modcos-oracle-ibm`, `modcos-oracle-irm`). The
    accompaniment is decoded from the complementary mask."""

    mono = True
    needs_references = True
    chunk_seconds = 30.0

    def __init__(
        self,
        model: ModCosAutoencoder,
        name: str | None = None,
        device: torch.device | None = None,
        rule: str = "paper",
    ):
        self.kind = model.config.kind
        super().__init__(name, device)
        if rule not in ("paper", "ibm", "irm"):
            raise InputError(f"unknown mask rule '{rule}' (use paper, ibm or irm)")
        self.rule = rule
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.sample_rate = self.config.sample_rate
        self.alignment = self.config.hop_length
        # An output sample depends on the frames whose kernels cover it, and each of those on
        # the frames the dilated conv reaches and their kernels: a margin beyond that makes
        # chunked output equal to full-length output.
        reach = self.config.reach * self.config.hop_length + 2 * self.config.kernel_length
        self.margin_seconds = 1.25 * reach / self.sample_rate

    def to(self, device: torch.device) -> ModCosSeparator:
        super().to(device)
        self.model.to(device)
        return self

    def mask_frontend(self, probe: probes.Mask) -> ModCosAutoencoder | None:
        """The front-end its masks live in: the model itself (`encode` gives A = E(m),
        `decode` / `decode_frames` synthesise a masked A), so masks are edited like any other."""
        return self.model if probe.frontend == self.kind else None

    def reference_stems(self, track: Track) -> tuple[str, ...]:
        return ("vocals", ACCOMPANIMENT)

    def output_stems(self, track: Track) -> tuple[str, ...]:
        return ("vocals", ACCOMPANIMENT)

    def prepare(self, track: Track) -> Track:
        prepared = super().prepare(track)
        if prepared.mixture.shape[-1] < self.config.kernel_length:
            raise InputError(
                f"'{track.name}' is {prepared.mixture.shape[-1]} samples long, shorter than one "
                f"mod-cos kernel ({self.config.kernel_length} samples)"
            )
        return prepared

    def process(
        self, mixture: torch.Tensor, references: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        mask = informed_mask(self.model, references["vocals"], references[ACCOMPANIMENT], self.rule)
        encoded = self.model.encode(mixture)
        length = mixture.shape[-1]
        return {
            "vocals": self.model.decode(mask.apply(encoded), length),
            ACCOMPANIMENT: self.model.decode(mask.invert().apply(encoded), length),
        }

    def probes(
        self, track: Track, start_seconds: float = 0.0, seconds: float = 5.0
    ) -> dict[str, probes.Probe]:
        """The representation A of the mixture (and of the stems, with the informed mask), the
        kernels with their frequencies against the mel initialisation, envelopes and magnitude
        responses."""
        excerpt = self.prepare(track).excerpt(start_seconds, seconds)
        if excerpt.mixture.shape[-1] < self.config.kernel_length:
            raise InputError(
                f"no full kernel of audio at {start_seconds:.2f} s in '{track.name}' ({track.seconds:.2f} s long)"
            )
        result: dict[str, probes.Probe] = {}
        hop, rate = self.config.hop_length, self.sample_rate
        with torch.inference_mode():
            for name in ("mixture", "vocals", ACCOMPANIMENT):
                if name != "mixture" and name not in excerpt.stems:
                    continue
                signal = torch.from_numpy(np.ascontiguousarray(excerpt.signal(name))).to(
                    self.device
                )
                result[f"activations/{name}"] = probes.Activations(
                    f"{self.kind} representation A of the {name}",
                    self.model.encode(signal)[0].cpu().numpy(),
                    hop,
                    rate,
                    "component (ascending kernel frequency)",
                )
            if excerpt.has_stems("vocals", ACCOMPANIMENT):
                vocals = torch.from_numpy(np.ascontiguousarray(excerpt.stems["vocals"])).to(
                    self.device
                )
                rest = torch.from_numpy(np.ascontiguousarray(excerpt.stems[ACCOMPANIMENT])).to(
                    self.device
                )
                mask = informed_mask(self.model, vocals, rest, self.rule)
                result["mask/vocals"] = probes.Mask(
                    f"{self.kind} informed mask ({self.rule}): vocals",
                    "vocals",
                    mask.values[0].cpu().numpy(),
                    hop,
                    rate,
                    self.kind,
                )
        result.update(kernel_probes(self.model))
        return result


@torch.no_grad()
def magnitude_responses(
    kernels: np.ndarray, sample_rate: int, n_fft: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`(C, L)` kernels -> (`(C, bins)` magnitude responses in dB re the largest, bin
    frequencies in Hz)."""
    n_fft = n_fft or max(2048, int(2 ** math.ceil(math.log2(kernels.shape[-1]))))
    spectrum = np.abs(np.fft.rfft(kernels, n=n_fft, axis=-1))
    decibels = 20 * np.log10(np.maximum(spectrum, 1e-12) / max(float(spectrum.max()), 1e-12))
    return decibels.astype(np.float32), np.fft.rfftfreq(n_fft, 1.0 / sample_rate)


@torch.no_grad()
def kernel_probes(model: ModCosAutoencoder) -> dict[str, probes.Probe]:
    config = model.config
    kernels = model.sorted_kernels().float().cpu().numpy()
    responses, response_frequencies = magnitude_responses(kernels, config.sample_rate)
    frequencies = model.kernel_frequencies_hertz()
    extra: dict[str, Any] = {
        "magnitude_response_db": responses,
        "response_frequencies": response_frequencies,
        "peak_frequencies": response_frequencies[responses.argmax(axis=-1)],
        "initial_frequencies": mel_frequencies(config.components, config.sample_rate),
    }
    if isinstance(model.decoder, CosineDecoder):
        extra["phases"] = model.decoder.phase[model.channel_order()].float().cpu().numpy()
    result: dict[str, probes.Probe] = {
        "kernels/decoder": probes.Kernels(
            f"{config.kind} synthesis kernels (sorted by frequency)",
            kernels,
            config.sample_rate,
            frequencies,
            model.envelopes(),
            extra,
        ),
        "matrix/magnitude-response": probes.Matrix(
            f"{config.kind} kernel magnitude responses (dB)",
            responses,
            "component",
            "frequency bin",
            {"bin_hertz": float(response_frequencies[1])},
        ),
    }
    if frequencies is not None:
        result["matrix/frequencies"] = probes.Matrix(
            f"{config.kind} kernel frequencies (Hz): learned (row 0) against the mel initialisation (row 1)",
            np.stack([frequencies, extra["initial_frequencies"]]).astype(np.float32),
            "row",
            "component",
        )
    envelopes = model.envelopes()
    if envelopes is not None:
        result["matrix/envelopes"] = probes.Matrix(
            f"{config.kind} envelopes b_c",
            envelopes,
            "component",
            "sample",
        )
    return result


# ---------------------------------------------------------------- loading and registration
def build_model(
    config: ModCosConfig, state_dict: Mapping[str, torch.Tensor] | None = None
) -> ModCosAutoencoder:
    """A model from its config, with weights when given (fp16 weights are cast to float32),
    sorted by frequency. Weights of another variant or size are an InputError."""
    model = ModCosAutoencoder(config)
    if state_dict is not None:
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        if missing or unexpected:
            raise InputError(
                f"these weights are not a '{config.kind}' model ({config.encoder} encoder, "
                f"{config.decoder} decoder): missing {', '.join(missing) or 'none'}; "
                f"unexpected {', '.join(unexpected) or 'none'} (a checkpoint of another variant?)"
            )
        for key, value in state_dict.items():
            if tuple(value.shape) != tuple(expected[key].shape):
                raise InputError(
                    f"weights '{key}' have shape {tuple(value.shape)}, but this '{config.kind}' model "
                    f"(C={config.components}, L={config.kernel_length}) needs {tuple(expected[key].shape)}"
                )
        model.load_state_dict({key: value.float() for key, value in state_dict.items()})
        if not all(torch.isfinite(value).all() for value in model.state_dict().values()):
            raise InputError(f"the '{config.kind}' weights contain NaN or infinity")
    model.sort_()
    return model


def load(
    config: dict, state_dict: dict, name: str, device: torch.device, rule: str = "paper"
) -> ModCosSeparator:
    """The registry loader for every mod-cos kind."""
    return ModCosSeparator(
        build_model(ModCosConfig.from_dict(config), state_dict), name, device, rule
    )


BUILTIN_FILE = "modcos.pt"
BUILTIN_RULES = {"modcos": "paper", "modcos-oracle-ibm": "ibm", "modcos-oracle-irm": "irm"}


def builtin(name: str, device: torch.device) -> ModCosSeparator:
    """The shipped demo weights `resources/modcos.pt`, with the paper's informed mask or an
    oracle mask in the learned representation."""
    payload = registry.shipped_checkpoint(
        BUILTIN_FILE, "modcos", "explorer train --model modcos --data synth --set preset=small"
    )
    return load(payload["config"], payload["state_dict"], name, device, BUILTIN_RULES[name])


def with_config(config: ModCosConfig, **changes: Any) -> ModCosConfig:
    return replace(config, **changes)


for _kind in VARIANTS:
    registry.register_kind(_kind, load)
for _name in BUILTIN_RULES:
    registry.register_builtin(_name, builtin)
