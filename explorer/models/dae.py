"""DAE, MSS-DAE and SF: the frame-wise denoising autoencoders of the mapping-functions paper.

FACTS.md section 1. Each model maps one normalised magnitude frame `x (bins,)` of the mono mixture
to one frame:

- `dae`: `h = relu(We x + be)`, `y = relu(Wd h + bd)`.
- `mss-dae`: three encoder layers `N->H, H->H, H->H` and one decoder `H->N`, all with ReLU.
- `sf` (skip-filtering): `mask = relu(Wd relu(We x + be) + bd)`, `y = x * mask`.

H equals N (square layers, as the compositional NCA needs). Magnitudes are divided per band by a
`BandNormalizer` scale fitted on the training mixtures; the target vocals use the same scale, so
SF's `x * mask` means the same in normalised and raw units. Vocals are resynthesised with the
mixture phase; the accompaniment is `mixture - vocals` in the time domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer.audio.frontends import PRESETS, BandNormalizer, make_frontend
from explorer.data.track import ACCOMPANIMENT, Track
from explorer.errors import InputError
from explorer.models import probes, registry
from explorer.models.base import NetworkSeparator

KINDS = ("dae", "mss-dae", "sf")
ENCODER_LAYERS = {"dae": 1, "mss-dae": 3, "sf": 1}
DEFAULT_FRONTEND = "taslp2020"


@dataclass(frozen=True)
class DAEConfig:
    """A DAE-family model. `hidden` 0 means H = N (the paper's choice, required by the
    compositional NCA). `frontend` names an STFT preset of the taslp2020 family: `taslp2020`
    (2049 bins, the paper), or the smaller [open] variants `taslp2020-small` (1025 bins, the
    shipped demo weights) and `taslp2020-quick` (513 bins, `--quick` runs and tests)."""

    kind: str = "dae"
    frontend: str = DEFAULT_FRONTEND
    hidden: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown DAE kind '{self.kind}' (known: {', '.join(KINDS)})")
        if self.frontend not in PRESETS:
            raise InputError(f"unknown front-end '{self.frontend}' (known: {', '.join(PRESETS)})")
        if self.hidden < 0:
            raise InputError(f"hidden size must be positive, got {self.hidden}")

    @property
    def bins(self) -> int:
        return PRESETS[self.frontend].bins

    @property
    def hidden_size(self) -> int:
        return self.hidden or self.bins

    @property
    def layer_count(self) -> int:
        return ENCODER_LAYERS[self.kind] + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DAEConfig:
        known = {field.name for field in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"unknown DAE config keys: {', '.join(sorted(unknown))}")
        return cls(**dict(values))


class MappingNetwork(nn.Module):
    """The fully connected stack: `layers[l]` is `nn.Linear`, each followed by a ReLU.

    Buffers: `normalizer.scale (bins,)`. Inputs and outputs are normalised magnitudes.
    """

    def __init__(self, config: DAEConfig):
        super().__init__()
        self.config = config
        bins, hidden = config.bins, config.hidden_size
        sizes = [bins] + [hidden] * ENCODER_LAYERS[config.kind] + [bins]
        self.layers = nn.ModuleList(
            nn.Linear(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)
        )
        self.normalizer = BandNormalizer(bins)
        self.reset_parameters()

    @property
    def skip_filtering(self) -> bool:
        return self.config.kind == "sf"

    def reset_parameters(self) -> None:
        """Glorot/Xavier-normal weights and zero biases (FACTS 1)."""
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def hidden_states(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """`frames (..., bins)` normalised -> every layer's output after its ReLU, `(..., units)`.

        The last entry is the model's last hidden variable: the vocal estimate (DAE, MSS-DAE)
        or the mask (SF), which is what the NCA approximates."""
        states = []
        value = frames
        for layer in self.layers:
            value = torch.relu(layer(value))
            states.append(value)
        return states

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """`(..., bins)` normalised mixture magnitude -> `(..., bins)` normalised vocal magnitude."""
        last = self.hidden_states(frames)[-1]
        return frames * last if self.skip_filtering else last

    def weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """`[(W_l (out, in), b_l (out,)), ...]` from input to output."""
        return [(layer.weight, layer.bias) for layer in self.layers]


class DAESeparator(NetworkSeparator):
    """A trained DAE-family network as a separator: mono mixture in, `vocals` and
    `accompaniment` out. Frame-local, so chunks aligned to the hop give exactly the
    full-length result."""

    mono = True
    chunk_seconds = 20.0
    margin_seconds = 0.1

    def __init__(
        self, network: MappingNetwork, name: str | None = None, device: torch.device | None = None
    ):
        super().__init__(network, make_frontend(network.config.frontend), name, device)
        self.alignment = self.frontend.hop_length
        # An output sample depends on frames up to n_fft / 2 away, whose windows reach another
        # n_fft / 2: a margin of more than n_fft makes chunked output equal the full-length one.
        self.margin_seconds = max(
            self.margin_seconds, 1.25 * self.frontend.config.n_fft / self.sample_rate
        )

    def output_stems(self, track: Track) -> tuple[str, ...]:
        return ("vocals", ACCOMPANIMENT)

    def magnitude_frames(self, mixture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`mixture (channels, samples)` -> `(spectrum (channels, bins, frames) complex,
        normalised magnitude frames (channels, frames, bins))`."""
        spectrum = self.frontend.encode(mixture)
        frames = self.network.normalizer.normalize(spectrum.abs()).transpose(-2, -1)
        return spectrum, frames

    def process(
        self, mixture: torch.Tensor, references: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        spectrum, frames = self.magnitude_frames(mixture)
        estimate = self.network.normalizer.denormalize(self.network(frames).transpose(-2, -1))
        phase = spectrum / spectrum.abs().clamp_min(1e-12)
        vocals = self.frontend.decode(estimate * phase, mixture.shape[-1])
        return {"vocals": vocals, ACCOMPANIMENT: mixture - vocals}

    def probes(
        self, track: Track, start_seconds: float = 0.0, seconds: float = 5.0
    ) -> dict[str, probes.Probe]:
        """Every layer's activations `(units, frames)`, SF's mask, and the weight matrices."""
        excerpt = self.prepare(track).excerpt(start_seconds, seconds)
        if excerpt.mixture.shape[-1] == 0:
            raise InputError(
                f"no audio at {start_seconds:.2f} s in '{track.name}' ({track.seconds:.2f} s long)"
            )
        mixture = torch.from_numpy(np.ascontiguousarray(excerpt.mixture)).to(self.device)
        hop, rate = self.frontend.hop_length, self.sample_rate
        with torch.inference_mode():
            _, frames = self.magnitude_frames(mixture)
            states = self.network.hidden_states(frames[0])
        names = layer_names(self.config.kind)
        result: dict[str, probes.Probe] = {}
        for index, (name, state) in enumerate(zip(names, states, strict=True)):
            result[f"activations/{index + 1}-{name}"] = probes.Activations(
                f"{self.kind} layer {index + 1} ({name}) after ReLU",
                state.T.cpu().numpy(),
                hop,
                rate,
            )
        if self.network.skip_filtering:
            result["mask/vocals"] = probes.Mask(
                f"{self.kind} mask: vocals",
                "vocals",
                states[-1].T.cpu().numpy(),
                hop,
                rate,
                self.config.frontend,
            )
        for index, (name, (weight, _bias)) in enumerate(
            zip(names, self.network.weights(), strict=True)
        ):
            result[f"weights/{index + 1}-{name}"] = probes.Matrix(
                f"{self.kind} W{index + 1} ({name})",
                weight.detach().cpu().numpy(),
                "output unit",
                "input unit",
            )
        composition = linear_composition(self.network).cpu().numpy()
        result["matrix/linear-composition"] = probes.Matrix(
            f"{self.kind} linear composition (product of all weights)",
            composition,
            "output bin",
            "input bin",
        )
        return result


def layer_names(kind: str) -> list[str]:
    encoders = ENCODER_LAYERS[kind]
    return [f"encoder {i + 1}" if encoders > 1 else "encoder" for i in range(encoders)] + [
        "decoder"
    ]


@torch.no_grad()
def linear_composition(network: MappingNetwork) -> torch.Tensor:
    """The NCA baseline `W_L ... W_1` (ReLUs and biases ignored): `(bins, bins)`."""
    result = network.layers[0].weight.detach()
    for layer in network.layers[1:]:
        result = layer.weight.detach() @ result
    return result


# ---------------------------------------------------------------- loading and registration
def build_network(
    config: DAEConfig, state_dict: Mapping[str, torch.Tensor] | None = None
) -> MappingNetwork:
    """A network from its config, with weights when given. Shipped weights may be fp16: they are
    cast to float32. Mismatched shapes (another front-end size) are an InputError."""
    network = MappingNetwork(config)
    if state_dict is not None:
        expected = network.state_dict()
        for key, value in state_dict.items():
            if key in expected and tuple(value.shape) != tuple(expected[key].shape):
                raise InputError(
                    f"weights '{key}' have shape {tuple(value.shape)}, but a '{config.kind}' model on front-end "
                    f"'{config.frontend}' ({config.bins} bins) needs {tuple(expected[key].shape)}"
                )
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        if missing or unexpected:
            raise InputError(
                f"weights do not fit a '{config.kind}' model (missing: {', '.join(missing) or 'none'}; "
                f"unexpected: {', '.join(unexpected) or 'none'})"
            )
        network.load_state_dict({key: value.float() for key, value in state_dict.items()})
    return network


def load(config: dict, state_dict: dict, name: str, device: torch.device) -> DAESeparator:
    """The registry loader for the kinds `dae`, `mss-dae`, `sf`."""
    parsed = DAEConfig.from_dict(config)
    return DAESeparator(build_network(parsed, state_dict), name, device)


def builtin(name: str, device: torch.device) -> DAESeparator:
    """The shipped demo weights `resources/<name>.pt`."""
    payload = registry.shipped_checkpoint(
        f"{name}.pt", name, f"explorer train --model {name} --data synth"
    )
    return load(payload["config"], payload["state_dict"], name, device)


for _kind in KINDS:
    registry.register_kind(_kind, load)
    registry.register_builtin(_kind, builtin)
