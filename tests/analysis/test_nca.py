"""NCA: the closed-form gradient against autograd, the student against a per-frame reference loop
written as the paper describes, the compositional mapping's algebra, TOD-R's closed form, block
choice and bad input, and the `nca --json` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from explorer.analysis import nca
from explorer.cli import main
from explorer.data.track import Track
from explorer.errors import InputError
from explorer.models import dae, registry
from explorer.progress import run_job

QUICK = "taslp2020-quick"


def problem(blocks: int = 2, frames: int = 12, size: int = 6, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(blocks, frames, size, generator=generator, dtype=torch.float64)
    targets = torch.rand(blocks, frames, size, generator=generator, dtype=torch.float64)
    return inputs, targets


def test_student_gradient_matches_autograd() -> None:
    inputs, targets = problem()
    matrices = torch.randn(2, 6, 6, dtype=torch.float64, requires_grad=True)
    (inputs @ matrices.transpose(1, 2) - targets).abs().sum().backward()
    torch.testing.assert_close(
        nca.student_gradient(matrices.detach(), inputs, targets), matrices.grad
    )


def test_student_gradient_is_the_sum_over_frames_of_sign_cx_minus_y_times_x() -> None:
    inputs, targets = problem(blocks=1)
    matrix = torch.randn(6, 6, dtype=torch.float64)
    expected = sum(
        torch.outer(torch.sign(matrix @ x - y), x)
        for x, y in zip(inputs[0], targets[0], strict=True)
    )
    torch.testing.assert_close(nca.student_gradient(matrix[None], inputs, targets)[0], expected)


def reference_student(
    matrix: np.ndarray,
    inputs: np.ndarray,
    targets: np.ndarray,
    iterations: int,
    rate: float = 1e-4,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
) -> np.ndarray:
    """The paper's loop, frame by frame, with Adam written out (Kingma & Ba, Algorithm 1)."""
    matrix = matrix.copy()
    first, second = np.zeros_like(matrix), np.zeros_like(matrix)
    for step in range(1, iterations + 1):
        gradient = np.zeros_like(matrix)
        for x, y in zip(inputs, targets, strict=True):
            gradient += np.outer(np.sign(matrix @ x - y), x)
        first = beta1 * first + (1 - beta1) * gradient
        second = beta2 * second + (1 - beta2) * gradient**2
        corrected_first = first / (1 - beta1**step)
        corrected_second = second / (1 - beta2**step)
        matrix -= rate * corrected_first / (np.sqrt(corrected_second) + epsilon)
    return matrix


def test_student_equals_the_reference_loop_and_blocks_are_independent() -> None:
    inputs, targets = problem(blocks=2, frames=9, size=5)
    config = nca.NCAConfig(iterations=25, learning_rate=1e-2)
    initial = run_job(nca.student(inputs, targets, nca.NCAConfig(iterations=0)))
    result = run_job(nca.student(inputs, targets, config))
    for block in range(2):
        expected = reference_student(
            initial[block].numpy(), inputs[block].numpy(), targets[block].numpy(), 25, 1e-2
        )
        np.testing.assert_allclose(result[block].numpy(), expected, rtol=1e-6, atol=1e-9)


def test_student_initialisation_is_xavier_normal() -> None:
    inputs = torch.zeros(1, 2, 400)
    initial = run_job(nca.student(inputs, inputs, nca.NCAConfig(iterations=0)))
    assert initial.std().item() == pytest.approx(math.sqrt(1 / 400), rel=0.02)


def test_student_recovers_a_linear_map() -> None:
    generator = torch.Generator().manual_seed(1)
    truth = torch.randn(8, 8, generator=generator)
    inputs = torch.rand(1, 200, 8, generator=generator)
    targets = inputs @ truth.T
    result = run_job(
        nca.student(inputs, targets, nca.NCAConfig(iterations=400, learning_rate=5e-2))
    )
    assert torch.allclose(result[0], truth, atol=0.1)


def test_compositional_c_is_the_plain_product_when_every_relu_passes_ones() -> None:
    """With `P_l^T = (W_l + b_l)^-1 J` the masks `relu((W_l + b_l) P_l^T)` are all ones, so
    `W~_l = W_l` and `C = W_L ... W_1`, the linear composition."""
    generator = torch.Generator().manual_seed(2)
    weights = [
        (
            torch.randn(5, 5, generator=generator, dtype=torch.float64),
            torch.randn(5, generator=generator, dtype=torch.float64),
        )
        for _ in range(3)
    ]
    ones = torch.ones(5, 5, dtype=torch.float64)
    couplings = [
        torch.linalg.solve(weight + bias[:, None], ones).T[None] for weight, bias in weights
    ]
    masked = nca.masked_weights(weights, couplings)
    for matrix, (weight, _bias) in zip(masked, weights, strict=True):
        torch.testing.assert_close(matrix[0], weight)
    product = weights[2][0] @ weights[1][0] @ weights[0][0]
    torch.testing.assert_close(nca.compose(masked)[0], product)


def test_compositional_mask_adds_the_bias_to_every_column() -> None:
    weight = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    bias = torch.tensor([10.0, -10.0])
    coupling = torch.eye(2)[None]
    expected = torch.relu(torch.tensor([[11.0, 8.0], [-7.0, -6.0]])) * weight
    torch.testing.assert_close(nca.masked_weights([(weight, bias)], [coupling])[0][0], expected)


def test_compositional_lowers_the_loss() -> None:
    torch.manual_seed(0)
    network = dae.MappingNetwork(dae.DAEConfig("dae", QUICK))
    inputs = torch.rand(1, 20, 513)
    targets = network.hidden_states(inputs)[-1].detach()
    weights = network.weights()
    config = nca.NCAConfig(iterations=0)
    before = run_job(nca.compositional(inputs, targets, weights, config))
    after = run_job(
        nca.compositional(inputs, targets, weights, nca.NCAConfig(iterations=4, learning_rate=1e-2))
    )
    loss = lambda matrix: (inputs @ matrix.transpose(1, 2) - targets).abs().sum().item()  # noqa: E731
    assert loss(after) < loss(before)


def test_tod_r_closed_form() -> None:
    matrix = np.full((4, 4), -0.5) + np.diag([2.5] * 4)  # diagonal 2, off-diagonal -0.5
    assert nca.tod_r(matrix) == pytest.approx(2.0 / 0.5)
    assert nca.tod_r(np.eye(3)) == math.inf


# ---------------------------------------------------------------- on tracks
def quick_separator(kind: str = "sf") -> dae.DAESeparator:
    torch.manual_seed(0)
    network = dae.MappingNetwork(dae.DAEConfig(kind, QUICK))
    with torch.no_grad():
        for _weight, bias in network.weights():
            bias.fill_(0.05)
    return dae.DAESeparator(network, kind)


def track(seconds: float = 2.0, silent_from: float | None = None) -> Track:
    rng = np.random.default_rng(0)
    samples = int(seconds * 44100)
    vocals = (0.1 * rng.standard_normal((1, samples))).astype(np.float32)
    drums = (0.1 * rng.standard_normal((1, samples))).astype(np.float32)
    if silent_from is not None:
        vocals[:, int(silent_from * 44100) :] = 0
        drums[:, int(silent_from * 44100) :] = 0
    return Track("noise", vocals + drums, 44100, {"vocals": vocals, "drums": drums})


def test_blocks_equal_the_full_track_frames() -> None:
    separator = quick_separator()
    signal = track(3.0)
    blocks = nca.extract_blocks(
        separator, signal.mixture[0], signal.stems["vocals"][0], [0, 200], 100
    )
    full = separator.frontend.encode(torch.from_numpy(signal.mixture)).abs()[0].T
    torch.testing.assert_close(blocks.mixture[0], full[0:100])
    torch.testing.assert_close(blocks.mixture[1], full[200:300], atol=1e-5, rtol=1e-5)


def test_automatic_choice_skips_blocks_with_an_inactive_source() -> None:
    separator = quick_separator()
    signal = track(3.0)
    signal.stems["vocals"][:, :44100] = 0  # vocals silent during the first second
    signal.stems["accompaniment"] = signal.stems["drums"]
    starts = nca.choose_starts(separator, signal, 50, blocks=10)
    hop = separator.frontend.hop_length
    # Blocks wholly inside the first second (vocals silent) are skipped; later ones are kept.
    assert starts[0] == 150 and all((start + 50) * hop > 44100 for start in starts)


def test_more_frames_than_the_track_and_silent_blocks_are_input_errors() -> None:
    separator = quick_separator()
    with pytest.raises(InputError, match="has only"):
        run_job(nca.nca_job(separator, track(1.0), ("linear",), frames=1000))
    with pytest.raises(InputError, match="runs past the end"):
        run_job(nca.nca_job(separator, track(1.0), ("linear",), frames=100, start_seconds=0.9))
    with pytest.raises(InputError, match="silent"):
        run_job(
            nca.nca_job(
                separator, track(3.0, silent_from=1.0), ("linear",), frames=100, start_seconds=1.8
            )
        )
    with pytest.raises(InputError, match="all sources are active"):
        run_job(nca.nca_job(separator, track(3.0, silent_from=0.0), ("linear",), frames=100))


def test_sf_approximation_goes_through_the_mixture() -> None:
    """The SF estimate is |mixture| times C x; with C from targets that are exactly linear, the
    approximation equals the model's output."""
    separator = quick_separator("sf")
    signal = track(1.5)
    blocks = nca.extract_blocks(separator, signal.mixture[0], signal.stems["vocals"][0], [0], 60)
    matrix = torch.randn(513, 513) * 0.01
    blocks.targets = blocks.inputs @ matrix.T
    blocks.model_output = blocks.mixture * blocks.targets
    torch.testing.assert_close(nca.estimate(separator, blocks, matrix), blocks.model_output)
    result = nca._evaluate(separator, blocks, "given", matrix, 0.0)
    assert result.snr_to_model_db[0] is None or result.snr_to_model_db[0] > 100


def test_nca_command_json_and_files(tmp_path, capsys) -> None:
    checkpoint = tmp_path / "sf.pt"
    separator = quick_separator("sf")
    registry.save_checkpoint(
        checkpoint,
        "sf",
        separator.config.to_dict(),
        separator.network.state_dict(),
        {"data": "test"},
    )
    folder = tmp_path / "track"
    folder.mkdir()
    from explorer.audio.io import write_audio

    signal = track(1.5)
    for name, samples in (
        ("mixture", signal.mixture),
        ("vocals", signal.stems["vocals"]),
        ("drums", signal.stems["drums"]),
    ):
        write_audio(folder / f"{name}.wav", samples, 44100)
    out = tmp_path / "matrices"
    code = main(
        [
            "nca",
            "--model",
            str(checkpoint),
            "--input",
            str(folder),
            "--frames",
            "40",
            "--iterations",
            "2",
            "--device",
            "cpu",
            "--json",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {
        "model",
        "start",
        "frames",
        "device",
        "model_snr_to_true_db",
        "strategies",
    }
    assert result["frames"] == 40 and result["device"] == "cpu"
    assert set(result["strategies"]) == set(nca.STRATEGIES)
    for name, values in result["strategies"].items():
        assert set(values) >= {"tod_r", "snr_to_model_db", "snr_to_true_db", "seconds"}
        assert np.load(out / f"{name}.npy").shape == (513, 513)
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert result["strategies"]["identity"]["tod_r"] is None  # infinite: no off-diagonal part
    code = main(
        [
            "nca",
            "--model",
            str(checkpoint),
            "--input",
            str(folder),
            "--frames",
            "4000",
            "--device",
            "cpu",
        ]
    )
    assert code == 2
    assert "has only" in capsys.readouterr().err
