"""The Neural Couplings Algorithm (NCA) for DAE, MSS-DAE and SF (FACTS.md section 1).

The NCA finds a matrix `C (N, N)` such that `y_hat = C x` approximates the model's last hidden
variable `y` (the output after the last ReLU: the vocal estimate of DAE and MSS-DAE, the mask of
SF) on a block of T adjacent frames. Inputs `x` are the model's normalised mixture magnitudes.
The loss is the L1 norm summed over the block, `||Y - X C^T||_1`, minimised by Adam (lr 1e-4,
betas (0.9, 0.999)) for 600 iterations on the full block.

Strategies:
- `student`: C free, Xavier-normal initialised. The gradient is written out as in the authors'
  code, `sum_t sign(C x_t - y_t) x_t^T`, i.e. `sign(X C^T - Y)^T X` for the block.
- `compositional`: per layer `l` (weight `W_l (out, in)`, bias `b_l`), learn `P_l (in, in)`; the
  masked weight is `W~_l = relu((W_l + b_l) P_l^T) * W_l` where `W_l + b_l` adds the bias vector
  to every column; `C = W~_L ... W~_1`. Only the `P_l` are trained, same loss and optimiser.
  Their initialisation is [open]: Xavier-normal like the student's C.
- `linear`: the linear composition `W_L ... W_1` (biases and ReLUs ignored).
- `identity`: `C = I`.

Everything is batched over blocks: `X, Y (blocks, T, N)`, `C (blocks, N, N)`; independent blocks
share nothing but the call (Adam is elementwise, so summing their losses optimises each alone).

Metrics:
- TOD-R (trace to off-diagonal ratio), with the element-count scaling made explicit:
  `TOD-R(C) = mean_i |C_ii| / mean_{i != j} |C_ij| = (sum_i |C_ii| / N) / (sum_{i != j} |C_ij| / (N^2 - N))`.
  1 means the diagonal is no stronger than the rest; small values mean more inter-frequency
  structure.
- SNRs in dB on raw (denormalised) magnitude spectrograms of the block, `10 log10(||ref||^2 /
  ||ref - est||^2)` [open: the paper does not say which domain]. The NCA's estimate of the vocals
  is `scale * (X C^T)` for DAE and MSS-DAE and `|mixture| * (X C^T)` for SF (its mask applied to
  the mixture, like the model's own mask). `snr_to_model_db` compares it with the model's output,
  `snr_to_true_db` with the true vocal magnitude, beside `model_snr_to_true_db`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from explorer.audio.metrics import snr
from explorer.data.track import Track
from explorer.errors import InputError
from explorer.models.dae import DAESeparator, MappingNetwork
from explorer.progress import Job, Progress

STRATEGIES = ("student", "compositional", "linear", "identity")
LEARNED = ("student", "compositional")
DEFAULT_FRAMES = 360  # about 3.1 s at hop 384 (FACTS: T is open)
ACTIVITY_DB = -40.0  # [open] a source is active in a block when its RMS is above this (dBFS)


@dataclass(frozen=True)
class NCAConfig:
    iterations: int = 600
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise InputError(f"iterations must be non-negative, got {self.iterations}")


@dataclass
class Blocks:
    """B blocks of T frames: `inputs (B, T, N)` normalised mixture magnitudes, `targets (B, T, N)`
    the model's last hidden variable, `mixture`/`vocals`/`model_output (B, T, N)` raw magnitudes
    (`vocals` None without stems), `starts` the first frame of each block."""

    inputs: torch.Tensor
    targets: torch.Tensor
    mixture: torch.Tensor
    model_output: torch.Tensor
    vocals: torch.Tensor | None
    starts: list[int]
    hop_length: int
    sample_rate: int

    @property
    def start_seconds(self) -> list[float]:
        return [start * self.hop_length / self.sample_rate for start in self.starts]


@dataclass
class StrategyResult:
    """`matrices (B, N, N)` and per-block metrics."""

    name: str
    matrices: np.ndarray
    tod_r: list[float]
    snr_to_model_db: list[float | None]
    snr_to_true_db: list[float | None]
    seconds: float
    losses: list[float] = field(default_factory=list)


# ---------------------------------------------------------------- metrics
def tod_r(matrix: torch.Tensor | np.ndarray) -> float:
    """`mean_i |C_ii| / mean_{i != j} |C_ij|` for a square `(N, N)` matrix (see module doc)."""
    values = torch.as_tensor(matrix).double().abs()
    size = values.shape[-1]
    diagonal = values.diagonal().sum()
    off_diagonal = values.sum() - diagonal
    if size < 2 or off_diagonal == 0:
        return math.inf
    return float((diagonal / size) / (off_diagonal / (size * size - size)))


# ---------------------------------------------------------------- strategies
def student_gradient(
    matrices: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """`d/dC sum |X C^T - Y|` = `sign(X C^T - Y)^T X`: `(B, N, N)` from `C (B, N, N)`,
    `X, Y (B, T, N)`."""
    error = torch.baddbmm(targets, inputs, matrices.transpose(1, 2), beta=-1.0)
    return torch.bmm(error.sign_().transpose(1, 2), inputs)


def student(
    inputs: torch.Tensor, targets: torch.Tensor, config: NCAConfig = NCAConfig()
) -> Job[torch.Tensor]:
    """Student strategy: `C (B, N, N)`, optimised with the closed-form gradient."""
    blocks, _frames, size = inputs.shape
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    initial = torch.randn(blocks, size, size, generator=generator, dtype=inputs.dtype) * math.sqrt(
        2.0 / (size + size)
    )
    matrices = initial.to(inputs.device).requires_grad_(True)
    optimizer = _adam([matrices], config)
    for iteration in range(config.iterations):
        matrices.grad = student_gradient(matrices.detach(), inputs, targets)
        optimizer.step()
        if _report(iteration, config.iterations):
            yield Progress(
                iteration + 1, config.iterations, f"student NCA {iteration + 1}/{config.iterations}"
            )
    return matrices.detach()


def masked_weights(
    weights: Sequence[tuple[torch.Tensor, torch.Tensor]], couplings: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """`W~_l = relu((W_l + b_l) P_l^T) * W_l` for each layer: `(B, out, in)` from `P_l (B, in, in)`."""
    masked = []
    for (weight, bias), coupling in zip(weights, couplings, strict=True):
        shifted = weight + bias[:, None]  # the bias added to every column
        masked.append(torch.relu(torch.matmul(shifted, coupling.transpose(-1, -2))) * weight)
    return masked


def compose(matrices: Sequence[torch.Tensor]) -> torch.Tensor:
    """`M_L ... M_1` from `[M_1, ..., M_L]`."""
    result = matrices[0]
    for matrix in matrices[1:]:
        result = torch.matmul(matrix, result)
    return result


def compositional(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weights: Sequence[tuple[torch.Tensor, torch.Tensor]],
    config: NCAConfig = NCAConfig(),
) -> Job[torch.Tensor]:
    """Compositional strategy: `C (B, N, N)` from learned `P_l` (autograd). The block output is
    computed layer by layer, `((X W~_1^T) W~_2^T) ...`, which costs T N^2 per layer instead of
    forming C (N^3) in every iteration."""
    blocks = inputs.shape[0]
    weights = [
        (weight.detach().to(inputs.device), bias.detach().to(inputs.device))
        for weight, bias in weights
    ]
    for weight, _bias in weights:
        if weight.shape[0] != weight.shape[1]:
            raise InputError(
                f"the compositional NCA needs square layers; this model has a {tuple(weight.shape)} layer"
            )
    generator = torch.Generator(device="cpu").manual_seed(config.seed + 1)
    couplings = []
    for weight, _bias in weights:
        size = weight.shape[1]
        initial = torch.randn(blocks, size, size, generator=generator) * math.sqrt(
            2.0 / (size + size)
        )
        couplings.append(initial.to(inputs.device).requires_grad_(True))
    optimizer = _adam(couplings, config)
    for iteration in range(config.iterations):
        optimizer.zero_grad(set_to_none=True)
        hidden = inputs
        for matrix in masked_weights(weights, couplings):
            hidden = torch.bmm(hidden, matrix.transpose(1, 2))
        (hidden - targets).abs().sum().backward()
        optimizer.step()
        if _report(iteration, config.iterations):
            yield Progress(
                iteration + 1,
                config.iterations,
                f"compositional NCA {iteration + 1}/{config.iterations}",
            )
    with torch.no_grad():
        return compose(masked_weights(weights, couplings))


def linear_composition(network: MappingNetwork) -> torch.Tensor:
    """`W_L ... W_1`: `(N, N)`."""
    return compose([weight.detach() for weight, _bias in network.weights()])


def _adam(parameters: list[torch.Tensor], config: NCAConfig) -> torch.optim.Optimizer:
    # One fused kernel per step where the build supports it: the update touches every element
    # of C (or of every P_l), so it is memory-bound and worth fusing.
    try:
        return torch.optim.Adam(parameters, lr=config.learning_rate, betas=config.betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(parameters, lr=config.learning_rate, betas=config.betas)


def _report(iteration: int, iterations: int) -> bool:
    return iteration + 1 == iterations or (iteration + 1) % max(1, iterations // 50) == 0


# ---------------------------------------------------------------- blocks
def track_frames(separator: DAESeparator, samples: int) -> int:
    return separator.frontend.frames_for(samples)


def active_block_starts(
    mixture: np.ndarray,
    vocals: np.ndarray | None,
    accompaniment: np.ndarray | None,
    hop_length: int,
    frames: int,
    activity_db: float = ACTIVITY_DB,
) -> list[int]:
    """First frames of non-overlapping blocks of `frames` frames where every source is active
    (RMS above `activity_db` dBFS over the block's samples): `(samples,)` mono signals. Without
    stems, blocks where the mixture is active."""
    total = mixture.shape[-1] // hop_length + 1
    sources = [signal for signal in (vocals, accompaniment) if signal is not None] or [mixture]
    starts = []
    for start in range(0, total - frames + 1, frames):
        span = slice(start * hop_length, (start + frames) * hop_length)
        if all(_rms_db(signal[span]) > activity_db for signal in sources):
            starts.append(start)
    return starts


def _rms_db(samples: np.ndarray) -> float:
    if samples.size == 0:
        return -math.inf
    energy = float(np.mean(np.square(samples, dtype=np.float64)))
    return 10.0 * math.log10(energy) if energy > 0 else -math.inf


@torch.no_grad()  # not inference_mode: the compositional strategy backpropagates through these
def extract_blocks(
    separator: DAESeparator,
    mixture: np.ndarray,
    vocals: np.ndarray | None,
    starts: Sequence[int],
    frames: int,
) -> Blocks:
    """The model's view of blocks `[start, start + frames)` of a mono track `(samples,)`."""
    frontend, network = separator.frontend, separator.network
    hop, length = frontend.hop_length, mixture.shape[-1]
    total = frontend.frames_for(length)
    reach = -(-frontend.config.n_fft // (2 * hop)) + 1  # frames of context that make them exact
    signals = [mixture] + ([vocals] if vocals is not None else [])
    cut_mixture, cut_vocals = [], []
    for start in starts:
        if start < 0 or start + frames > total:
            raise InputError(
                f"NCA block of {frames} frames at frame {start} does not fit the track ({total} frames, "
                f"{length / frontend.sample_rate:.2f} s)"
            )
        first = max(0, start - reach)
        low, high = first * hop, min(length, (start + frames + reach) * hop)
        piece = torch.from_numpy(
            np.ascontiguousarray(np.stack([signal[low:high] for signal in signals]))
        ).to(separator.device)
        magnitude = (
            frontend.encode(piece)
            .abs()[:, :, start - first : start - first + frames]
            .transpose(1, 2)
        )
        cut_mixture.append(magnitude[0])
        if vocals is not None:
            cut_vocals.append(magnitude[1])
    mixture_frames = torch.stack(cut_mixture)
    scale = network.normalizer.scale
    inputs = mixture_frames / scale
    targets = network.hidden_states(inputs)[-1]
    model_output = network(inputs) * scale
    return Blocks(
        inputs,
        targets,
        mixture_frames,
        model_output,
        torch.stack(cut_vocals) if cut_vocals else None,
        list(starts),
        hop,
        frontend.sample_rate,
    )


# ---------------------------------------------------------------- running
def estimate(separator: DAESeparator, blocks: Blocks, matrices: torch.Tensor) -> torch.Tensor:
    """The NCA's vocal magnitude estimate `(B, T, N)` from `C (B, N, N)` (or `(N, N)`)."""
    if matrices.dim() == 2:
        matrices = matrices.expand(blocks.inputs.shape[0], -1, -1)
    approximation = torch.bmm(blocks.inputs, matrices.transpose(1, 2))
    if separator.network.skip_filtering:
        return blocks.mixture * approximation
    return approximation * separator.network.normalizer.scale


def run_strategies(
    separator: DAESeparator,
    blocks: Blocks,
    strategies: Sequence[str] = STRATEGIES,
    config: NCAConfig = NCAConfig(),
) -> Job[dict[str, StrategyResult]]:
    """Every requested strategy on every block, with its metrics."""
    unknown = [name for name in strategies if name not in STRATEGIES]
    if unknown:
        raise InputError(
            f"unknown NCA strategy '{unknown[0]}' (known: {', '.join(STRATEGIES)}, all)"
        )
    _require_active(blocks)
    network, results = separator.network, {}
    for index, name in enumerate(strategies):
        started = time.perf_counter()
        if name == "student":
            matrices = yield from _scaled(
                student(blocks.inputs, blocks.targets, config), index, len(strategies)
            )
        elif name == "compositional":
            job = compositional(blocks.inputs, blocks.targets, network.weights(), config)
            matrices = yield from _scaled(job, index, len(strategies))
        elif name == "linear":
            matrices = linear_composition(network)
        else:
            matrices = torch.eye(blocks.inputs.shape[-1], device=blocks.inputs.device)
        if blocks.inputs.device.type == "cuda":
            torch.cuda.synchronize(blocks.inputs.device)
        seconds = time.perf_counter() - started
        results[name] = _evaluate(separator, blocks, name, matrices, seconds)
        yield Progress(index + 1, len(strategies), f"{name} done")
    return results


def _scaled(job: Job[torch.Tensor], index: int, count: int) -> Job[torch.Tensor]:
    """Re-express a strategy's progress as a fraction of all strategies."""
    try:
        while True:
            progress = next(job)
            yield Progress(index + progress.fraction, count, progress.message)
    except StopIteration as stop:
        return stop.value


def _require_active(blocks: Blocks) -> None:
    energy = blocks.mixture.flatten(1).square().sum(dim=1)
    for start, value in zip(blocks.start_seconds, energy.tolist(), strict=True):
        if value <= 0.0 or not math.isfinite(value):
            raise InputError(f"the NCA block at {start:.2f} s is silent; choose another --start")
    silent_inputs = blocks.inputs.flatten(1).abs().amax(dim=1) < 1e-6
    if bool(silent_inputs.any()):
        start = blocks.start_seconds[int(silent_inputs.nonzero()[0])]
        raise InputError(f"the NCA block at {start:.2f} s is silent; choose another --start")


@torch.no_grad()
def _evaluate(
    separator: DAESeparator, blocks: Blocks, name: str, matrices: torch.Tensor, seconds: float
) -> StrategyResult:
    approximations = estimate(separator, blocks, matrices)
    count = blocks.inputs.shape[0]
    full = matrices if matrices.dim() == 3 else matrices.expand(count, -1, -1)
    snr_model, snr_true = [], []
    for index in range(count):
        approximation = approximations[index].cpu().numpy()
        snr_model.append(snr(blocks.model_output[index].cpu().numpy(), approximation))
        snr_true.append(
            None
            if blocks.vocals is None
            else snr(blocks.vocals[index].cpu().numpy(), approximation)
        )
    losses = (
        (torch.bmm(blocks.inputs, full.transpose(1, 2)) - blocks.targets)
        .abs()
        .flatten(1)
        .sum(1)
        .tolist()
    )
    return StrategyResult(
        name,
        full.cpu().numpy(),
        [tod_r(matrix) for matrix in full],
        snr_model,
        snr_true,
        seconds,
        losses,
    )


def model_snr_to_true(blocks: Blocks) -> list[float | None]:
    """The model's own SNR to the true vocal magnitude, per block."""
    if blocks.vocals is None:
        return [None] * blocks.inputs.shape[0]
    return [
        snr(blocks.vocals[index].cpu().numpy(), blocks.model_output[index].cpu().numpy())
        for index in range(blocks.inputs.shape[0])
    ]


# ---------------------------------------------------------------- one track
def choose_starts(
    separator: DAESeparator,
    track: Track,
    frames: int,
    start_seconds: float | None = None,
    blocks: int = 1,
) -> list[int]:
    """Block starts: the frame at `start_seconds`, or the first `blocks` blocks where vocals and
    accompaniment are both active (the mixture alone for tracks without stems)."""
    prepared = separator.prepare(track)
    hop, rate = separator.frontend.hop_length, separator.sample_rate
    total = separator.frontend.frames_for(prepared.mixture.shape[-1])
    if frames < 1:
        raise InputError(f"--frames must be positive, got {frames}")
    if frames > total:
        raise InputError(
            f"NCA asked for {frames} frames, but '{track.name}' has only {total} "
            f"({track.seconds:.2f} s at hop {hop}); use --frames {total} or fewer"
        )
    if start_seconds is not None:
        start = int(round(start_seconds * rate / hop))
        if start < 0 or start + frames > total:
            raise InputError(
                f"NCA block of {frames} frames at {start_seconds:.2f} s runs past the end of '{track.name}' "
                f"({track.seconds:.2f} s); the latest start is {(total - frames) * hop / rate:.2f} s"
            )
        return [start]
    vocals = prepared.stems["vocals"][0] if "vocals" in prepared.stems else None
    accompaniment = (
        prepared.stems["accompaniment"][0] if "accompaniment" in prepared.stems else None
    )
    starts = active_block_starts(prepared.mixture[0], vocals, accompaniment, hop, frames)
    if not starts:
        raise InputError(
            f"no block of {frames} frames in '{track.name}' where all sources are active "
            f"(RMS above {ACTIVITY_DB:g} dBFS); give --start or fewer --frames"
        )
    return starts[:blocks]


def nca_job(
    separator: DAESeparator,
    track: Track,
    strategies: Sequence[str] = STRATEGIES,
    frames: int = DEFAULT_FRAMES,
    start_seconds: float | None = None,
    config: NCAConfig = NCAConfig(),
) -> Job[dict]:
    """One block of a track: the `nca --json` shape, plus `"matrices"` `{strategy: (N, N)}`."""
    starts = choose_starts(separator, track, frames, start_seconds)
    prepared = separator.prepare(track)
    vocals = prepared.stems["vocals"][0] if "vocals" in prepared.stems else None
    blocks = extract_blocks(separator, prepared.mixture[0], vocals, starts, frames)
    results = yield from run_strategies(separator, blocks, strategies, config)
    from explorer.device import describe

    return {
        "model": separator.name,
        "start": blocks.start_seconds[0],
        "frames": frames,
        "device": describe(separator.device),
        "model_snr_to_true_db": model_snr_to_true(blocks)[0],
        "strategies": {
            name: {
                "tod_r": result.tod_r[0],
                "snr_to_model_db": result.snr_to_model_db[0],
                "snr_to_true_db": result.snr_to_true_db[0],
                "seconds": result.seconds,
                "loss": result.losses[0],
            }
            for name, result in results.items()
        },
        "matrices": {name: result.matrices[0] for name, result in results.items()},
    }
