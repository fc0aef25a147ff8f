"""Audio core: decoding and STFT/iSTFT throughput as multiples of real time, against SciPy's
ShortTimeFFT measured side by side, and peak memory for a 10-minute stereo file."""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import soundfile
import torch
from scipy.signal import ShortTimeFFT, get_window

from explorer.audio.frontends import PRESETS, make_frontend
from explorer.audio.io import read_audio
from explorer.data.sources import demo_path
from explorer.data.track import Track
from explorer.models.oracle import OracleConfig, OracleSeparator

TITLE = "Audio core: decoding, STFT and memory"
RATE = 44100


def best_time(function, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def music(seconds: float) -> np.ndarray:
    """Real music (the demo's mixture) tiled to `seconds`, stereo float32."""
    samples, _ = read_audio(demo_path())
    repeats = int(np.ceil(seconds * RATE / samples.shape[1]))
    return np.tile(samples, repeats)[:, : int(seconds * RATE)]


def write_in_blocks(path: Path, signal: np.ndarray, subtype: str) -> None:
    """libsndfile's Vorbis encoder crashes on one very large write; blocks avoid that."""
    with soundfile.SoundFile(str(path), "w", RATE, signal.shape[0], subtype=subtype) as handle:
        for start in range(0, signal.shape[1], 1 << 15):
            handle.write(np.ascontiguousarray(signal[:, start : start + (1 << 15)].T))


def decoding(folder: Path) -> str:
    signal = music(60.0)
    rows = ["| format | seconds of audio per second of decoding (x real time) |", "|---|---|"]
    for suffix, subtype in (
        (".wav", "PCM_16"),
        (".flac", "PCM_16"),
        (".ogg", "VORBIS"),
        (".mp3", "MPEG_LAYER_III"),
    ):
        path = folder / f"minute{suffix}"
        write_in_blocks(path, signal, subtype)
        rows.append(
            f"| {suffix[1:].upper()} (soundfile) | {60.0 / best_time(lambda p=path: read_audio(p)):.0f} |"
        )
    demo_seconds = read_audio(demo_path())[0].shape[1] / RATE
    per_stream = best_time(lambda: read_audio(demo_path(), 0))
    rows.append(f"| MUSDB18 .stem.mp4, one AAC stream (PyAV) | {demo_seconds / per_stream:.0f} |")
    return "\n".join(rows)


def stft_throughput() -> str:
    wave = torch.from_numpy(music(30.0)[:1].copy())
    seconds = wave.shape[1] / RATE
    rows = [
        "| preset | encode (x real time) | decode (x real time) | SciPy ShortTimeFFT forward (x real time) | ours / SciPy | round-trip max error |",
        "|---|---|---|---|---|---|",
    ]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for name in ("taslp2020", "eusipco2020", "drdnn", "naive-ae"):
        frontend = make_frontend(name)
        config = PRESETS[name]
        spectrum = frontend.encode(wave)
        encode = best_time(lambda f=frontend: f.encode(wave))
        decode = best_time(lambda f=frontend, s=spectrum: f.decode(s, wave.shape[1]))
        window = get_window(config.window, config.win_length)
        reference = ShortTimeFFT(window, config.hop_length, RATE, mfft=config.n_fft)
        scipy_time = best_time(lambda r=reference: r.stft(wave[0].numpy()))
        error = float((frontend.decode(spectrum, wave.shape[1]) - wave).abs().max())
        rows.append(
            f"| {name} | {seconds / encode:.0f} | {seconds / decode:.0f} | {seconds / scipy_time:.0f} | "
            f"{scipy_time / encode:.1f}x | {error:.1e} |"
        )
    return "\n".join(rows)


def decode_frames_ratio() -> str:
    frontend = make_frontend("eusipco2020")
    length = 180 * RATE
    spectrum = frontend.encode(torch.from_numpy(music(180.0)[:1].copy()))
    frames_per_second = RATE // frontend.hop_length
    middle = spectrum.shape[-1] // 2
    full = best_time(lambda: frontend.decode(spectrum, length))
    part = best_time(
        lambda: frontend.decode_frames(spectrum, middle, middle + frames_per_second, length),
        repeats=10,
    )
    return (
        f"`decode_frames` of a 1 s edit inside a 3-minute track: {part * 1e3:.2f} ms against "
        f"{full * 1e3:.0f} ms for the full decode ({full / part:.0f}x cheaper)."
    )


def peak_memory(folder: Path) -> str:
    signal = music(600.0)
    path = folder / "ten-minutes.flac"
    write_in_blocks(path, signal, "PCM_16")
    array_megabytes = signal.nbytes / 1e6
    del signal
    tracemalloc.start()
    samples, _ = read_audio(path)
    _, decode_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stems = {
        name: samples * weight
        for name, weight in (("vocals", 0.4), ("drums", 0.3), ("bass", 0.2), ("other", 0.1))
    }
    track = Track("ten minutes", samples, RATE, stems)
    inputs_megabytes = sum(array.nbytes for array in (samples, *track.stems.values())) / 1e6
    tracemalloc.start()
    outputs = OracleSeparator(OracleConfig()).separate(track)
    _, separate_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    outputs_megabytes = sum(array.nbytes for array in outputs.values()) / 1e6
    return "\n".join(
        [
            "| 10-minute stereo file | samples (MB) | peak allocated during the step (MB) | ratio |",
            "|---|---|---|---|",
            f"| decode FLAC | {array_megabytes:.0f} | {decode_peak / 1e6:.0f} | {decode_peak / 1e6 / array_megabytes:.2f} x the decoded array |",
            f"| oracle-irm separation (30 s chunks) | outputs {outputs_megabytes:.0f} | {separate_peak / 1e6:.0f} | "
            f"{(separate_peak / 1e6 - outputs_megabytes):.0f} MB above the outputs (inputs already held: {inputs_megabytes:.0f} MB) |",
        ]
    )


def run() -> str:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        return "\n\n".join(
            [
                "### Decoding\n\n" + decoding(folder),
                "### STFT front-ends (30 s of mono music, best of 3)\n\n" + stft_throughput(),
                "### Frame-range resynthesis\n\n" + decode_frames_ratio(),
                "### Peak memory\n\n" + peak_memory(folder),
            ]
        )
