"""Audio decoding and encoding on real files, every format, and broken input."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from explorer.audio.io import audio_info, read_audio, resample, to_mono, to_stereo, write_audio
from explorer.data.sources import demo_path
from explorer.errors import InputError
from tests.conftest import sine


def error_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum((reference - estimate) ** 2) / np.sum(reference**2)))


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(
        np.fft.rfft(samples.reshape(-1)[:sample_rate] * np.hanning(min(sample_rate, samples.size)))
    )
    return float(np.argmax(spectrum) * sample_rate / min(sample_rate, samples.size))


@pytest.mark.parametrize("suffix, tolerance", [(".wav", 0.0), (".flac", 2.0**-22)])
def test_write_then_read_round_trip(tmp_path: Path, suffix: str, tolerance: float) -> None:
    samples = np.random.default_rng(0).uniform(-0.9, 0.9, (2, 12345)).astype(np.float32)
    path = write_audio(tmp_path / f"x{suffix}", samples, 22050)
    decoded, rate = read_audio(path)
    assert rate == 22050 and decoded.shape == (2, 12345) and decoded.dtype == np.float32
    assert np.max(np.abs(decoded - samples)) <= tolerance
    assert list(tmp_path.iterdir()) == [path], "no temporary file may remain"


@pytest.mark.parametrize("suffix, format_name", [(".ogg", "OGG"), (".mp3", "MP3")])
def test_lossy_soundfile_formats_decode(tmp_path: Path, suffix: str, format_name: str) -> None:
    path = tmp_path / f"tone{suffix}"
    soundfile.write(str(path), sine(440.0, 1.0, 44100, 2).T, 44100, format=format_name)
    decoded, rate = read_audio(path)
    assert rate == 44100 and decoded.shape[0] == 2
    assert abs(decoded.shape[1] - 44100) < 3000  # codec padding only
    assert abs(dominant_frequency(decoded[0], rate) - 440.0) < 2.0


@pytest.mark.parametrize("suffix", [".m4a", ".mp4", ".aac"])
def test_pyav_containers_decode(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"tone{suffix}"
    signal = sine(1000.0, 1.0, 48000, 2)
    with av.open(str(path), "w", format="adts" if suffix == ".aac" else None) as container:
        stream = container.add_stream("aac", rate=48000, layout="stereo")
        frame = av.AudioFrame.from_ndarray(signal, format="fltp", layout="stereo")
        frame.sample_rate = 48000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    decoded, rate = read_audio(path)
    assert rate == 48000 and decoded.shape[0] == 2
    assert abs(dominant_frequency(decoded[0, 4096:], rate) - 1000.0) < 2.0
    assert 0.3 < np.max(np.abs(decoded)) < 0.7


def test_stem_mp4_matches_the_flac_copies(rock_stem_mp4: Path, rock_folder: Path) -> None:
    """The FLAC previews were decoded from the same AAC streams: same length, same samples."""
    info = audio_info(rock_stem_mp4)
    assert info.streams == 5 and info.sample_rate == 44100
    names = ["mixture", "drums", "bass", "other", "vocals"]
    for index, name in enumerate(names):
        decoded, _ = read_audio(rock_stem_mp4, stream=index)
        flac, _ = read_audio(rock_folder / f"{name}.flac")
        # The edit list declares 299880 samples; the FLAC copy kept the decoder's end padding.
        assert decoded.shape == (2, 299880) and flac.shape[1] == 300032
        assert error_db(flac[:, :299880], decoded) < -70


def test_stem_mp4_stems_sum_to_mixture(rock_stem_mp4: Path) -> None:
    streams = [read_audio(rock_stem_mp4, stream=index)[0] for index in range(5)]
    assert error_db(streams[0], sum(streams[1:])) < -30


def test_demo_streams_are_aligned() -> None:
    """The stempeg track has no edit list: every stream starts at pts 0 and no shift of the
    stems by an AAC frame brings them closer to the mixture than no shift at all."""
    streams = [read_audio(demo_path(), stream=index)[0] for index in range(5)]
    mixture, stems = streams[0], sum(streams[1:])
    core = slice(4096, mixture.shape[1] - 4096)
    aligned = error_db(mixture[:, core], stems[:, core])
    for shift in (-2048, -1024, 1024, 2048):
        shifted = np.roll(stems, shift, axis=1)
        assert error_db(mixture[:, core], shifted[:, core]) > aligned + 15
    assert aligned < -20


@pytest.mark.parametrize("rate", [8000, 192000])
def test_odd_sample_rates_resample_exactly_in_frequency(rate: int) -> None:
    signal = sine(997.0, 1.0, rate)
    converted = resample(signal, rate, 44100)
    assert converted.shape == (1, 44100)
    expected = sine(997.0, 1.0, 44100)
    # Away from the edges the polyphase filter reproduces the sine closely.
    assert error_db(expected[:, 2000:-2000], converted[:, 2000:-2000]) < -40


def test_channel_conversion() -> None:
    eight = np.arange(8, dtype=np.float32)[:, None] * np.ones((8, 10), dtype=np.float32)
    assert np.allclose(to_mono(eight), 3.5)
    stereo = to_stereo(eight)
    assert stereo.shape == (2, 10) and np.allclose(stereo[0], 3.0) and np.allclose(stereo[1], 4.0)
    mono = sine(100, 0.01, 1000)
    assert np.array_equal(to_stereo(mono)[1], mono[0])


def test_bad_files_raise_input_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    empty = tmp_path / "empty.flac"
    empty.touch()
    good = write_audio(tmp_path / "good.flac", sine(440, 1.0, 44100, 2), 44100)
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(good.read_bytes()[:200])
    zero = tmp_path / "zero.wav"
    soundfile.write(str(zero), np.zeros((0, 2), dtype=np.float32), 44100)
    nan = tmp_path / "nan.wav"
    values = sine(440, 0.1, 44100)
    values[0, 100] = np.nan
    soundfile.write(str(nan), values.T, 44100, subtype="FLOAT")
    cases = {
        tmp_path / "missing.wav": "no such file",
        tmp_path: "folder",
        text: "cannot",
        empty: "empty",
        truncated: "cannot",
        zero: "zero-length",
        nan: "NaN",
    }
    for path, words in cases.items():
        with pytest.raises(InputError, match=words):
            read_audio(path)


def test_write_to_unwritable_place_fails_cleanly(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write"):
        write_audio(blocker / "sub" / "out.wav", sine(440, 0.1, 8000), 8000)
    with pytest.raises(InputError):
        write_audio(tmp_path / "out.mp3", sine(440, 0.1, 8000), 8000)


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    bad = sine(440, 0.1, 8000)
    bad[0, 3] = np.inf
    with pytest.raises(InputError):
        write_audio(tmp_path / "out.wav", bad, 8000)
    assert list(tmp_path.iterdir()) == []


def test_one_hour_file_decodes_within_two_copies(tmp_path: Path) -> None:
    """A one-hour file (8 kHz mono, to keep the test small) decodes with the peak traced
    allocation under two copies of its float32 samples."""
    path = tmp_path / "hour.wav"
    rate, seconds = 8000, 3600
    with soundfile.SoundFile(str(path), "w", rate, 1, subtype="PCM_16") as handle:
        block = (np.sin(np.arange(rate * 60) * 0.05) * 0.3).astype(np.float32)
        for _ in range(seconds // 60):
            handle.write(block)
    tracemalloc.start()
    samples, _ = read_audio(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert samples.shape == (1, rate * seconds)
    assert peak <= 2 * samples.nbytes, (
        f"peak {peak / 1e6:.0f} MB for {samples.nbytes / 1e6:.0f} MB of samples"
    )
