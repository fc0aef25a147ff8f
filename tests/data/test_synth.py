"""Tests for the synthetic multitrack generator: determinism, exact mixing, and that each stem
sounds like what it claims (measured from the audio, against the planned score)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from explorer.data.synth import (
    INSTRUMENTS,
    _sections,
    instrument_combinations,
    plan_song,
    render_instruments,
    render_track,
    write_synth_dataset,
)
from explorer.data.track import STEM_NAMES, Track
from explorer.errors import InputError
from explorer.progress import Progress, run_job

SAMPLE_RATE = 22050
SONG_SEED = 7
SONG_SECONDS = 12.0


@pytest.fixture(scope="module")
def song() -> Track:
    return render_track(SONG_SEED, SONG_SECONDS, SAMPLE_RATE)


@pytest.fixture(scope="module")
def instruments() -> Track:
    return render_instruments(11, 8.0, INSTRUMENTS, 16000)


# --- analysis helpers -----------------------------------------------------------------------


def mono(samples: np.ndarray) -> np.ndarray:
    """`(channels, samples) -> (samples,)` float64."""
    return samples.astype(np.float64).mean(axis=0)


def frame_rms(signal: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """RMS of consecutive non-overlapping frames. `(samples,) -> (frames,)`."""
    size = int(seconds * sample_rate)
    frames = signal[: len(signal) // size * size].reshape(-1, size)
    return np.sqrt(np.mean(frames**2, axis=1))


def silent_fraction(signal: np.ndarray, sample_rate: int) -> float:
    """Fraction of 100 ms frames more than 60 dB below the loudest frame."""
    rms = frame_rms(signal, sample_rate, 0.1)
    return float(np.mean(rms < 1e-3 * rms.max()))


def estimate_pitch(
    signal: np.ndarray,
    sample_rate: int,
    centres: np.ndarray,
    lowest: float = 80.0,
    highest: float = 1000.0,
    window: float = 0.04,
) -> np.ndarray:
    """Fundamental frequency in Hz of frames centred at `centres` (seconds): the peak of the
    windowed autocorrelation between the lags of `highest` and `lowest`, refined by parabolic
    interpolation. `(frames,)`."""
    size = int(window * sample_rate)
    starts = np.round(centres * sample_rate).astype(int) - size // 2
    frames = signal[starts[:, None] + np.arange(size)] * np.hanning(size)
    spectrum = np.fft.rfft(frames, 2 * size, axis=1)
    correlation = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :size]
    low_lag, high_lag = int(sample_rate / highest), int(sample_rate / lowest)
    lag = low_lag + np.argmax(correlation[:, low_lag:high_lag], axis=1)
    rows = np.arange(len(lag))
    before, peak, after = (correlation[rows, lag + shift] for shift in (-1, 0, 1))
    offset = 0.5 * (before - after) / (before - 2.0 * peak + after)
    return sample_rate / (lag + offset)


def semitones(frequency: np.ndarray) -> np.ndarray:
    return 69.0 + 12.0 * np.log2(frequency / 440.0)


def power_spectrum(signal: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    return np.fft.rfftfreq(len(signal), 1.0 / sample_rate), np.abs(np.fft.rfft(signal)) ** 2


def spectral_centroid(signal: np.ndarray, sample_rate: int) -> float:
    frequencies, power = power_spectrum(signal, sample_rate)
    return float(np.sum(frequencies * power) / np.sum(power))


def frame_flatness(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """Spectral flatness (geometric / arithmetic mean of the power spectrum) of the 50 ms
    frames within 40 dB of the loudest: ~0 for a pure tone, ~0.5 for white noise. Bins are
    floored 60 dB below each frame's peak, so empty bins cannot drive the geometric mean to
    zero. `(active frames,)`."""
    size = int(0.05 * sample_rate)
    frames = signal[: len(signal) // size * size].reshape(-1, size)
    power = np.abs(np.fft.rfft(frames * np.hanning(size), axis=1)) ** 2
    power += 1e-6 * power.max(axis=1, keepdims=True) + 1e-30
    energy = power.sum(axis=1)
    flatness = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
    return flatness[energy > 1e-4 * energy.max()]


def upper_harmonic_share(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """Share of each loud 40 ms frame's power above 2.5 times its fundamental (150-2100 Hz):
    about 0.2 for a sawtooth, near 0 for a sine. `(loud frames,)`."""
    size = int(0.04 * sample_rate)
    rms = frame_rms(signal, sample_rate, 0.04)
    centres = (np.arange(len(rms)) + 0.5) * 0.04
    loud = (rms > 0.1 * rms.max()) & (centres > 0.03) & (centres < len(signal) / sample_rate - 0.03)
    fundamental = estimate_pitch(signal, sample_rate, centres[loud], 150.0, 2100.0)
    starts = np.round(centres[loud] * sample_rate).astype(int) - size // 2
    power = np.abs(np.fft.rfft(signal[starts[:, None] + np.arange(size)] * np.hanning(size))) ** 2
    frequencies = np.fft.rfftfreq(size, 1.0 / sample_rate)
    upper = frequencies[None, :] > 2.5 * fundamental[:, None]
    return (power * upper).sum(axis=1) / power.sum(axis=1)


# --- determinism and mixing -----------------------------------------------------------------


def test_same_seed_renders_identical_audio_and_other_seeds_differ():
    first = render_track(3, 3.0, 16000)
    again = render_track(3, 3.0, 16000)
    other = render_track(4, 3.0, 16000)
    for name in (*STEM_NAMES, "mixture"):
        assert np.array_equal(first.signal(name), again.signal(name)), name
        assert first.signal(name).shape == other.signal(name).shape
        assert not np.allclose(first.signal(name), other.signal(name), atol=1e-3), name
    assert plan_song(3, 3.0) == plan_song(3, 3.0)
    assert plan_song(3, 3.0).tempo_bpm != plan_song(4, 3.0).tempo_bpm


def test_stems_are_stereo_float32_and_mixture_is_their_exact_sum(song):
    length = int(round(SONG_SECONDS * SAMPLE_RATE))
    assert set(song.stems) == {*STEM_NAMES, "accompaniment"}
    assert song.sample_rate == SAMPLE_RATE
    total = np.zeros((2, length), dtype=np.float32)
    for name in STEM_NAMES:
        stem = song.stems[name]
        assert stem.shape == (2, length) and stem.dtype == np.float32, name
        total += stem
    assert song.mixture.dtype == np.float32
    assert np.array_equal(song.mixture, total)
    np.testing.assert_allclose(song.stems["accompaniment"], total - song.stems["vocals"], atol=1e-6)


def test_audio_is_finite_and_the_mixture_peaks_near_0_9(song):
    for name in ("mixture", *STEM_NAMES):
        signal = song.signal(name)
        assert np.isfinite(signal).all(), name
        assert np.abs(signal).max() <= 1.0, name
        assert frame_rms(mono(signal), SAMPLE_RATE, 1.0).max() > 1e-3, f"{name} is silent"
    assert np.abs(song.mixture).max() == pytest.approx(0.9, abs=0.01)


def test_stems_are_panned_but_not_hard_left_or_right(song):
    for name in STEM_NAMES:
        left, right = (float(np.sqrt(np.mean(channel**2))) for channel in song.stems[name])
        assert 0.4 < left / right < 2.5, name


# --- vocals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_vocals_pause_between_phrases(seed):
    track = render_track(seed, 15.0, 16000)
    fraction = silent_fraction(mono(track.stems["vocals"]), 16000)
    assert 0.1 <= fraction <= 0.45
    assert silent_fraction(mono(track.stems["drums"]), 16000) < 0.1  # the band plays on


def test_vocal_pitch_follows_the_planned_melody_in_a_singing_range(song):
    plan = plan_song(SONG_SEED, SONG_SECONDS)
    centres, expected = [], []
    for syllable in plan.syllables:
        note = syllable.note
        # After the portamento has settled; vibrato keeps within half a semitone.
        times = np.arange(note.start + 0.1, note.stop - 0.05, 0.02)
        centres.extend(times)
        expected.extend([note.pitch] * len(times))
    estimated = estimate_pitch(mono(song.stems["vocals"]), SAMPLE_RATE, np.array(centres))
    assert len(estimated) > 100
    assert np.all((estimated > 80.0) & (estimated < 1000.0))
    error = np.abs(semitones(estimated) - np.array(expected))
    assert np.mean(error < 1.0) > 0.9
    sung = np.round(semitones(estimated))
    assert len(np.unique(sung)) >= 4 and np.ptp(sung) >= 3  # a contour, not a drone


def test_vocals_have_vibrato_at_a_singing_rate_on_long_notes(song):
    plan = plan_song(SONG_SEED, SONG_SECONDS)
    longest = max((syllable.note for syllable in plan.syllables), key=lambda note: note.duration)
    assert longest.duration >= 0.9, "the test song needs a long note"
    # Vibrato fades in 0.2-0.45 s after the onset; analyse the settled part.
    centres = np.arange(longest.start + 0.45, longest.stop - 0.05, 0.004)
    reference = 440.0 * 2.0 ** ((longest.pitch - 69.0) / 12.0)
    pitch = estimate_pitch(
        mono(song.stems["vocals"]), SAMPLE_RATE, centres, reference / 1.2, reference * 1.2
    )
    deviation = semitones(pitch) - np.polyval(np.polyfit(centres, semitones(pitch), 1), centres)
    rates = np.arange(1.0, 15.0, 0.1)
    basis = np.exp(-2j * np.pi * rates[:, None] * centres[None, :])
    amplitude = 2.0 * np.abs(basis @ deviation) / len(centres)
    assert 4.0 <= rates[np.argmax(amplitude)] <= 8.0
    assert 0.15 <= amplitude.max() <= 1.0  # semitones: a few percent of the frequency


def test_vowels_change_the_spectral_envelope(song):
    """The formants move: spectral envelopes of different syllables differ far more than
    those of one syllable's two halves would if only the pitch changed."""
    plan = plan_song(SONG_SEED, SONG_SECONDS)
    vocals = mono(song.stems["vocals"])
    envelopes: dict[str, list[np.ndarray]] = {}
    for syllable in plan.syllables:
        note = syllable.note
        # Skip short notes, and diphthongs that move before the analysed 80-230 ms are over.
        if note.duration >= 0.25 and (len(syllable.vowels) == 1 or note.duration >= 0.45):
            start = int((note.start + 0.08) * SAMPLE_RATE)
            segment = vocals[start : start + int(0.15 * SAMPLE_RATE)]
            frequencies, power = power_spectrum(segment * np.hanning(len(segment)), SAMPLE_RATE)
            bands = np.add.reduceat(power, np.searchsorted(frequencies, np.arange(0, 5000, 250)))
            envelopes.setdefault(syllable.vowels[0], []).append(np.log(bands[:-1] + 1e-12))
    means = {vowel: np.mean(shapes, axis=0) for vowel, shapes in envelopes.items()}
    assert len(means) >= 3
    vowels = sorted(means)
    distances = [np.std(means[a] - means[b]) for i, a in enumerate(vowels) for b in vowels[i + 1 :]]
    assert min(distances) > 0.3


# --- accompaniment --------------------------------------------------------------------------


def test_bass_is_low_and_drums_are_broadband(song):
    bass, drums = mono(song.stems["bass"]), mono(song.stems["drums"])
    assert spectral_centroid(bass, SAMPLE_RATE) < 300.0
    frequencies, power = power_spectrum(bass, SAMPLE_RATE)
    assert 38.0 <= frequencies[np.argmax(power)] <= 130.0
    frequencies, power = power_spectrum(drums, SAMPLE_RATE)
    high = power[frequencies >= 2000].sum() / power.sum()
    assert power[frequencies < 200].sum() / power.sum() > 0.1  # kick
    assert high > 0.01  # snare wires and hats
    frequencies, power = power_spectrum(bass, SAMPLE_RATE)
    assert power[frequencies >= 2000].sum() / power.sum() < 0.1 * high
    noisiest_drums = np.percentile(frame_flatness(drums, SAMPLE_RATE), 90)
    assert noisiest_drums > 0.03
    assert noisiest_drums > 10 * np.percentile(frame_flatness(bass, SAMPLE_RATE), 90)


def test_bass_and_chords_follow_the_same_progression(song):
    plan = plan_song(SONG_SEED, SONG_SECONDS)
    bar = 4.0 * plan.beat_seconds
    harmony = {
        int(chord.start / bar + 1e-6): {p % 12 for p in chord.pitches} for chord in plan.chords
    }
    for note in plan.bass:
        assert int(note.pitch) % 12 in harmony[int(note.start / bar + 1e-6)]
        assert 40.0 <= 440.0 * 2.0 ** ((note.pitch - 69.0) / 12.0) <= 125.0
    assert all(len(chord.pitches) == 4 for chord in plan.chords)
    assert len({frozenset(tones) for tones in harmony.values()}) >= 3


def test_long_songs_are_joined_from_sections_in_vocal_rests():
    seconds, sample_rate = 70.0, 8000
    plan = plan_song(2, seconds)
    sections = _sections(plan, sample_rate, int(seconds * sample_rate))
    assert len(sections) >= 2
    assert sections[0][0] == 0 and sections[-1][1] == int(seconds * sample_rate)
    assert all(
        stop == start for (_, stop), (start, _) in zip(sections[:-1], sections[1:], strict=True)
    )
    track = render_track(2, seconds, sample_rate)
    bar = 4.0 * plan.beat_seconds * sample_rate
    for cut, _ in sections[1:]:
        assert abs(cut / bar - round(cut / bar)) < 1e-3  # on a bar line
        for name in ("vocals", "bass", "other"):  # silent, or starting afresh, at the cut
            assert np.abs(track.stems[name][:, cut - 3 : cut + 1]).max() < 1e-3, name
    assert silent_fraction(mono(track.stems["vocals"]), sample_rate) < 0.45


# --- instruments ----------------------------------------------------------------------------


def test_instrument_stems_sum_to_the_mixture_and_play_isolated_notes(instruments):
    assert list(instruments.stems) == list(INSTRUMENTS)
    total = np.zeros_like(instruments.mixture)
    for name, stem in instruments.stems.items():
        assert stem.shape == instruments.mixture.shape and np.isfinite(stem).all(), name
        total += stem
        silent = silent_fraction(mono(stem), 16000)
        assert 0.02 <= silent <= 0.8, f"{name}: silent fraction {silent:.2f}"
    assert np.array_equal(instruments.mixture, total)
    assert np.abs(instruments.mixture).max() == pytest.approx(0.9, abs=0.01)


def test_instrument_timbres_are_distinct(instruments):
    flatness = {name: frame_flatness(mono(s), 16000) for name, s in instruments.stems.items()}
    # Pitched notes stay peaky; snares and hats make the drums' noisiest frames nearly white.
    assert np.median(flatness["flute"]) < 0.005
    for name in ("flute", "guitar", "piano"):
        assert np.percentile(flatness[name], 90) < 0.02, name
    assert np.percentile(flatness["drums"], 90) > 0.03
    assert np.percentile(flatness["drums"], 90) > 10 * np.percentile(flatness["flute"], 90)
    # A bowed sawtooth is far richer in harmonics than a near-sinusoidal flute.
    assert np.median(upper_harmonic_share(mono(instruments.stems["flute"]), 16000)) < 0.02
    assert np.median(upper_harmonic_share(mono(instruments.stems["violin"]), 16000)) > 0.08


def test_plucked_and_struck_notes_decay_while_blown_and_bowed_notes_sustain(instruments):
    def falling_share(name: str) -> float:
        rms = frame_rms(mono(instruments.stems[name]), 16000, 0.05)
        loud = (rms[:-1] > 0.1 * rms.max()) & (rms[1:] > 0.1 * rms.max())
        return float(np.mean(rms[1:][loud] < rms[:-1][loud]))

    for name in ("guitar", "piano"):
        assert falling_share(name) > 0.75, name
    for name in ("flute", "violin"):
        assert falling_share(name) < 0.65, name


def test_an_instrument_plays_the_same_notes_whatever_it_is_combined_with():
    alone = render_instruments(5, 3.0, ("guitar",), 16000).stems["guitar"]
    paired = render_instruments(5, 3.0, ("flute", "guitar"), 16000).stems["guitar"]
    correlation = np.corrcoef(alone.ravel(), paired.ravel())[0, 1]
    assert correlation > 0.9999


def test_instrument_combinations_list_one_to_three_distinct_instruments():
    combinations = instrument_combinations()
    assert len(combinations) == 5 + 10 + 10
    assert len(set(combinations)) == len(combinations)
    assert all(1 <= len(c) <= 3 and len(set(c)) == len(c) for c in combinations)
    assert all(set(c) <= set(INSTRUMENTS) for c in combinations)
    assert instrument_combinations(1) == [(name,) for name in INSTRUMENTS]


def test_instruments_mode_cycles_through_the_combinations():
    track = render_track(26, 1.0, 16000, mode="instruments")
    assert tuple(track.stems) == instrument_combinations()[26 % 25]


@pytest.mark.parametrize("instruments", [("tuba",), (), ("flute", "flute")])
def test_bad_instruments_are_rejected(instruments):
    with pytest.raises(InputError, match="instruments"):
        render_instruments(0, 1.0, instruments, 16000)


@pytest.mark.parametrize(
    "arguments",
    [
        {"seconds": 0.0},
        {"seconds": -1.0},
        {"seconds": float("nan")},
        {"seconds": 3601.0},
        {"sample_rate": 1000},
        {"seed": -1},
        {"mode": "rock"},
    ],
)
def test_bad_render_arguments_raise_input_error(arguments):
    call = {"seed": 0, "seconds": 1.0, "sample_rate": 16000, "mode": "song", **arguments}
    with pytest.raises(InputError):
        render_track(**call)


# --- dataset --------------------------------------------------------------------------------


def test_write_synth_dataset_writes_the_musdb18_hq_layout(tmp_path):
    out = tmp_path / "synth"
    updates: list[Progress] = []
    folders = run_job(write_synth_dataset(out, 3, 0.5, seed=2, sample_rate=8000), updates.append)
    assert [p.done for p in updates] == [1, 2, 3] and all(p.total == 3 for p in updates)
    assert folders == [
        out / "train" / "synth-0000",
        out / "train" / "synth-0001",
        out / "test" / "synth-0002",
    ]
    for index, folder in enumerate(folders):
        expected = render_track(2000 + index, 0.5, 8000)
        stems = {}
        for name in ("mixture", *STEM_NAMES):
            samples, sample_rate = soundfile.read(folder / f"{name}.wav", dtype="float32")
            assert sample_rate == 8000 and samples.shape == (4000, 2), name
            assert np.array_equal(samples.T, expected.signal(name)), name
            stems[name] = samples
        np.testing.assert_allclose(
            sum(stems[name] for name in STEM_NAMES), stems["mixture"], atol=1e-6
        )
    readme = (out / "README.txt").read_text()
    assert f"explorer synth --out {out} --tracks 3 --seconds 0.5 --seed 2" in readme
    assert "synth-0002" in readme


@pytest.mark.parametrize("tracks, tests", [(1, 0), (2, 1), (5, 1), (10, 2)])
def test_dataset_split_is_about_80_percent_train(tmp_path, tracks, tests):
    folders = run_job(write_synth_dataset(tmp_path, tracks, 0.05, seed=0, sample_rate=8000))
    assert len(folders) == tracks
    assert sum(folder.parent.name == "test" for folder in folders) == tests
    assert [folder.parent.name for folder in folders] == sorted(
        (folder.parent.name for folder in folders), key=lambda subset: subset == "test"
    )


@pytest.mark.parametrize(
    "tracks, seconds",
    [(0, 1.0), (-2, 1.0), (3, 0.0), (3, -5.0), (3, 3601.0), (3, float("inf"))],
)
def test_write_synth_dataset_rejects_bad_arguments_before_writing(tmp_path, tracks, seconds):
    with pytest.raises(InputError):
        write_synth_dataset(tmp_path / "synth", tracks, seconds, seed=0)  # raises on the call
    assert not (tmp_path / "synth").exists()
