"""Deterministic synthetic multitracks, for experiments that need no downloads.

Two kinds of track, each rendered from `numpy.random.default_rng` streams seeded by one integer:

- `render_track(seed, seconds)`: a short song with the MUSDB18 stems `vocals`, `drums`, `bass`
  and `other`. Tempo, key, scale and a four-bar chord progression are drawn per seed. The bass
  and the chords follow the progression, the drums play a varied pattern on the tempo grid, and
  the vocals sing phrases of syllables: glottal pulses through vowel formants, with portamento,
  delayed vibrato, consonant noise bursts, and pauses between phrases. `plan_song` returns the
  score (notes, chords, hits), which doubles as ground truth, e.g. the sung pitch.
- `render_instruments(seed, seconds, instruments)`: isolated notes of drums, flute, guitar,
  violin and piano, one stem per instrument, for controlled experiments.

`write_synth_dataset` writes tracks in the MUSDB18-HQ folder layout. Every stem is float32
`(channels, samples)` with 2 channels, and the mixture is their exact float32 sum.

Rendering is vectorised: Python loops run over notes and drum hits, never over samples. Songs
longer than SECTION_SECONDS are rendered in sections cut at bar lines inside vocal rests, so
working memory stays bounded and the cost grows linearly with the length; the result holds
the float32 stems, about 40 bytes per stereo sample in all.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft, rfftfreq
from scipy.ndimage import uniform_filter1d
from scipy.signal import butter, lfilter, lfilter_zi, sosfilt

from explorer.audio.io import atomic_output, write_audio
from explorer.data.track import STEM_NAMES, Track
from explorer.errors import InputError
from explorer.progress import Progress

INSTRUMENTS = ("drums", "flute", "guitar", "violin", "piano")
MODES = ("song", "instruments")
MAX_SECONDS = 3600.0
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
PEAK = 0.9
TRAIN_FRACTION = 0.8
WAVETABLE_SIZE = 4096
DATASET_FILES = ("mixture", *STEM_NAMES)

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Four-bar progressions as 0-based scale degrees: I-V-vi-IV, I-IV-V-IV, i-VI-III-VII, ...
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 0, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4)),
}
# Formants F1-F4 in Hz of an adult male voice (after Peterson & Barney 1952), plus a fixed F5
# that keeps some presence above 4 kHz; a high voice scales them by FORMANT_SCALE["high"].
VOWEL_FORMANTS = {
    "a": (730.0, 1090.0, 2440.0, 3400.0, 4500.0),
    "e": (530.0, 1840.0, 2480.0, 3500.0, 4500.0),
    "i": (270.0, 2290.0, 3010.0, 3700.0, 4500.0),
    "o": (570.0, 840.0, 2410.0, 3400.0, 4500.0),
    "u": (300.0, 870.0, 2240.0, 3400.0, 4500.0),
}
VOWELS = tuple(VOWEL_FORMANTS)
FORMANT_BANDWIDTHS = (80.0, 100.0, 120.0, 150.0, 250.0)
# Sung range in MIDI pitch: low voice C3-E4 (131-330 Hz), high voice A3-F5 (220-698 Hz).
VOICE_RANGES = {"low": (48, 64), "high": (57, 77)}
FORMANT_SCALE = {"low": 1.0, "high": 1.15}
BASS_LOWEST, BASS_HIGHEST = 28, 46  # E1 (41 Hz) to A#2 (117 Hz)
INSTRUMENT_RANGES = {"flute": (60, 93), "guitar": (40, 76), "violin": (55, 93), "piano": (36, 84)}
DRUM_TAIL_SECONDS = 2.0  # the longest kit sound (the crash)
SECTION_SECONDS = 20.0  # the shortest section of a long song rendered on its own
DRUM_PEAKS = {"kick": 1.0, "snare": 0.8, "hat": 0.3, "open_hat": 0.3, "crash": 0.35}


@dataclass(frozen=True)
class Consonant:
    """A consonant as a noise burst: pass band in Hz, length in seconds, level relative to the
    voiced sound, and whether it is a plosive (a sharp burst at the onset, after a closure)
    or a fricative (a hiss leading into the vowel)."""

    low: float
    high: float
    seconds: float
    level: float
    plosive: bool


CONSONANTS = {
    "s": Consonant(4000.0, 9000.0, 0.09, 0.35, False),
    "sh": Consonant(1800.0, 6000.0, 0.10, 0.35, False),
    "f": Consonant(1200.0, 8000.0, 0.07, 0.15, False),
    "t": Consonant(2500.0, 7000.0, 0.02, 0.6, True),
    "k": Consonant(1200.0, 4000.0, 0.025, 0.6, True),
}


@dataclass(frozen=True)
class Note:
    """A note: `start` and `duration` in seconds, `pitch` in MIDI semitones (69 is A4, 440 Hz),
    `velocity` in (0, 1]."""

    start: float
    duration: float
    pitch: float
    velocity: float = 1.0

    @property
    def stop(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class Syllable:
    """A sung note with its vowel (two vowels for a diphthong) and an optional consonant."""

    note: Note
    vowels: tuple[str, ...]
    consonant: str | None


@dataclass(frozen=True)
class Chord:
    """Chord tones sounding together; always four voices (a triad doubles its root)."""

    start: float
    duration: float
    pitches: tuple[int, ...]
    velocity: float = 1.0


@dataclass(frozen=True)
class DrumHit:
    """One hit: `time` in seconds, `kind` from DRUM_PEAKS, and which of the kit's recordings
    of that kind (`variant`, taken modulo how many there are)."""

    time: float
    kind: str
    velocity: float
    variant: int = 0


@dataclass(frozen=True)
class SongPlan:
    """The score of one synthetic song, in seconds and MIDI pitch (independent of sample rate)."""

    seed: int
    seconds: float
    tempo_bpm: float
    root: int
    scale: str
    progression: tuple[int, ...]
    voice: str
    vibrato_hz: float
    vibrato_semitones: float
    chord_style: str
    syllables: tuple[Syllable, ...]
    bass: tuple[Note, ...]
    chords: tuple[Chord, ...]
    drums: tuple[DrumHit, ...]

    @property
    def key(self) -> str:
        return f"{PITCH_CLASSES[self.root]} {self.scale}"

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.tempo_bpm


@dataclass(frozen=True)
class _Timeline:
    """Which note of a monophonic line sounds at each sample, all `(samples,)`.

    `playing` is the note index or -1 in rests; `held` is the sounding note, or in a rest the
    next note (so oscillators are already on its pitch); `since`/`until` count samples from the
    held note's start and to its stop.
    """

    playing: np.ndarray
    held: np.ndarray
    since: np.ndarray
    until: np.ndarray


@dataclass(frozen=True)
class _SongSound:
    """The timbre and mix of one song, drawn once so that all its sections sound alike."""

    kit: dict[str, list[np.ndarray]]
    drum_pans: dict[str, float]
    pans: dict[str, float]
    levels_db: dict[str, float]
    bass_brightness: float
    bass_decay: float
    bass_cutoff: float
    chord_detune: float
    drawbars: tuple[float, ...]
    chord_cutoff: float


# --- public API ---------------------------------------------------------------------------


def render_track(seed: int, seconds: float, sample_rate: int = 44100, mode: str = "song") -> Track:
    """Render one synthetic track, identical for identical arguments.

    `mode="song"` gives the stems vocals, drums, bass and other (plus the derived
    accompaniment); `mode="instruments"` plays the combination
    `instrument_combinations()[seed % 25]`, so consecutive seeds cycle through all of them.
    Stems and mixture are float32 `(2, samples)`; the mixture peaks at about 0.9.
    """
    _check_render_arguments(seed, seconds, sample_rate)
    if mode == "instruments":
        combinations = instrument_combinations()
        return render_instruments(
            seed, seconds, combinations[seed % len(combinations)], sample_rate
        )
    if mode != "song":
        raise InputError(f"unknown synth mode '{mode}' (modes: {', '.join(MODES)})")
    rng = np.random.default_rng(seed)
    plan = _plan_song(rng, seed, seconds)
    sound = _draw_sound(rng, sample_rate)
    length = _length(seconds, sample_rate)
    stems = {name: np.zeros((2, length), dtype=np.float32) for name in STEM_NAMES}
    # Sections keep the working memory bounded and the cost linear in the length.
    for start, stop in _sections(plan, sample_rate, length):
        window = _window(plan, start, stop, sample_rate)
        rendered = _render_section(window, sound, stop - start, sample_rate, rng)
        for name, samples in rendered.items():
            stems[name][:, start:stop] = samples
    for name, samples in stems.items():
        _scale_to_rms(samples, sound.levels_db[name])
    return _finish(f"synth-seed{seed}", stems, sample_rate)


def plan_song(seed: int, seconds: float) -> SongPlan:
    """The score `render_track(seed, seconds)` plays: tempo, key, syllables, bass, chords, drums."""
    _check_render_arguments(seed, seconds, MIN_SAMPLE_RATE)
    return _plan_song(np.random.default_rng(seed), seed, seconds)


def render_instruments(
    seed: int, seconds: float, instruments: tuple[str, ...], sample_rate: int = 44100
) -> Track:
    """Isolated notes of each instrument, one stem per instrument, float32 `(2, samples)`.

    Every instrument draws from its own random stream, so an instrument plays the same notes
    (up to the common gain) whichever other instruments share the track.
    """
    _check_render_arguments(seed, seconds, sample_rate)
    instruments = _check_instruments(instruments)
    key_rng = np.random.default_rng(seed)
    root, scale = int(key_rng.integers(12)), str(key_rng.choice(list(SCALES)))
    length = _length(seconds, sample_rate)
    stems = {}
    for name in instruments:
        rng = np.random.default_rng((seed, INSTRUMENTS.index(name) + 1))
        mono = _render_instrument(name, rng, seconds, root, scale, length, sample_rate)
        stems[name] = _pan(mono, rng.uniform(-0.3, 0.3)).astype(np.float32)
        _scale_to_rms(stems[name], rng.uniform(-2.0, 2.0))
    return _finish(f"synth-instruments-seed{seed}", stems, sample_rate)


def instrument_combinations(max_size: int = 3) -> list[tuple[str, ...]]:
    """All combinations of one to `max_size` distinct instruments, smallest first."""
    if not 1 <= max_size <= len(INSTRUMENTS):
        raise InputError(f"max_size must be between 1 and {len(INSTRUMENTS)}, got {max_size}")
    sizes = range(1, max_size + 1)
    return [combo for size in sizes for combo in itertools.combinations(INSTRUMENTS, size)]


def write_synth_dataset(
    out: Path, tracks: int, seconds: float, seed: int, sample_rate: int = 44100
) -> Generator[Progress, None, list[Path]]:
    """Write songs in the MUSDB18-HQ layout: `out/{train,test}/synth-NNNN/<stem>.wav`.

    Track i is `render_track(seed * 1000 + i, seconds)` (so seeds K and K + 1 share no track
    while `tracks` <= 1000); the last ~20% (at least one when there are two or more tracks)
    form the test split. Arguments are checked at call time, before any iteration. Yields one
    Progress per track; returns the track folders.
    """
    if isinstance(tracks, bool) or not isinstance(tracks, int) or tracks < 1:
        raise InputError(f"--tracks must be a whole number of at least 1, got {tracks}")
    _check_render_arguments(seed, seconds, sample_rate)
    return _write_dataset(Path(out), tracks, float(seconds), seed, sample_rate)


# --- arguments and finishing ----------------------------------------------------------------


def _check_render_arguments(seed: int, seconds: float, sample_rate: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"--seed must be a whole number of at least 0, got {seed}")
    if not isinstance(seconds, numbers.Real) or not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"--seconds must be a positive number, got {seconds}")
    if seconds > MAX_SECONDS:
        raise InputError(f"--seconds must be at most {MAX_SECONDS:g} (one hour), got {seconds:g}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise InputError(
            f"sample rate must be {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz, got {sample_rate}"
        )


def _check_instruments(instruments: Iterable[str]) -> tuple[str, ...]:
    if isinstance(instruments, str):
        instruments = (instruments,)
    instruments = tuple(instruments)
    unknown = [name for name in instruments if name not in INSTRUMENTS]
    if unknown or not instruments or len(set(instruments)) != len(instruments):
        raise InputError(
            f"instruments must be distinct names from {', '.join(INSTRUMENTS)}; got "
            f"{', '.join(instruments) or 'none'}"
        )
    return instruments


def _length(seconds: float, sample_rate: int) -> int:
    return max(1, int(round(seconds * sample_rate)))


def _finish(name: str, stems: dict[str, np.ndarray], sample_rate: int) -> Track:
    """Scale the float32 stems in place by one factor so that the mixture peaks at PEAK (and
    no stem clips), then make the mixture the exact float32 sum of the stems."""
    mixture = _sum(stems.values())
    mixture_peak = float(np.abs(mixture).max())
    stem_peak = max(float(np.abs(samples).max()) for samples in stems.values())
    scale = PEAK / mixture_peak if mixture_peak > 0 else 1.0
    if stem_peak * scale > 0.99:
        scale = 0.99 / stem_peak
    for samples in stems.values():
        samples *= np.float32(scale)
    return Track(name, _sum(stems.values()), sample_rate, dict(stems))


def _sum(stems: Iterable[np.ndarray]) -> np.ndarray:
    """Left-to-right float32 sum, the order a reader re-adding the stems would use."""
    stems = list(stems)
    total = stems[0].copy()
    for samples in stems[1:]:
        total += samples
    return total


def _scale_to_rms(samples: np.ndarray, level_db: float) -> None:
    """Scale float32 `samples` in place to an RMS of `level_db` dB."""
    rms = math.sqrt(float(np.mean(np.square(samples), dtype=np.float64)))
    if rms > 0:
        samples *= np.float32(10.0 ** (level_db / 20.0) / rms)


def _pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power panning, position in [-1, 1]. `(samples,) -> (2, samples)`."""
    angle = (position + 1.0) * math.pi / 4.0
    return np.stack([mono * math.cos(angle), mono * math.sin(angle)])


# --- rendering a song in sections ----------------------------------------------------------


def _draw_sound(rng: np.random.Generator, sample_rate: int) -> _SongSound:
    hat_pan = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.4))
    levels_db = {"vocals": 0.0, "drums": -2.0, "bass": -4.0, "other": -7.0}
    return _SongSound(
        kit=_drum_kit(sample_rate, rng),
        drum_pans={
            "kick": 0.0,
            "snare": float(rng.uniform(-0.1, 0.1)),
            "hat": hat_pan,
            "open_hat": hat_pan,
            "crash": -hat_pan,
        },
        pans={name: float(rng.uniform(-0.1, 0.1)) for name in ("vocals", "bass", "other")},
        levels_db={
            name: level + float(rng.uniform(-2.0, 2.0)) for name, level in levels_db.items()
        },
        bass_brightness=float(rng.uniform(0.3, 0.8)),
        bass_decay=float(rng.uniform(0.35, 0.9)),
        bass_cutoff=float(rng.uniform(500.0, 900.0)),
        chord_detune=float(rng.uniform(0.004, 0.008)),  # about 7-14 cents
        drawbars=(1.0, float(rng.uniform(0.3, 0.8)), float(rng.uniform(0.1, 0.5)), 0.2, 0.1, 0.08),
        chord_cutoff=float(rng.uniform(1500.0, 2500.0)),
    )


def _sections(plan: SongPlan, sample_rate: int, length: int) -> list[tuple[int, int]]:
    """`(start, stop)` sample ranges of at least SECTION_SECONDS that cut the song at bar
    starts inside vocal rests. There every stem is silent or starts afresh (bass notes and
    chords end before the bar line and attack from zero after it), so the sections can be
    rendered on their own and joined without a click."""
    bar = 4.0 * plan.beat_seconds
    onsets = np.array([syllable.note.start for syllable in plan.syllables])
    stops = np.array([syllable.note.stop for syllable in plan.syllables])
    cuts = [0]
    for number in range(1, int(plan.seconds / bar) + 1):
        time = number * bar
        upcoming = int(np.searchsorted(onsets, time))
        clear_before = upcoming == 0 or stops[upcoming - 1] < time - 0.1
        clear_after = upcoming == len(onsets) or onsets[upcoming] > time + 0.25
        cut = int(round(time * sample_rate))
        if clear_before and clear_after and cut - cuts[-1] >= SECTION_SECONDS * sample_rate:
            cuts.append(cut)
    return [
        (start, stop) for start, stop in zip(cuts, cuts[1:] + [length], strict=True) if stop > start
    ]


def _window(plan: SongPlan, start: int, stop: int, sample_rate: int) -> SongPlan:
    """The part of the score that sounds in samples `[start, stop)`, with times relative to
    `start`. Drum hits up to DRUM_TAIL_SECONDS earlier are kept for their ringing tails."""
    offset = start / sample_rate

    def inside(time: float, preroll: float = 0.0) -> bool:
        return start - preroll * sample_rate <= round(time * sample_rate) < stop

    return replace(
        plan,
        syllables=tuple(
            replace(s, note=replace(s.note, start=s.note.start - offset))
            for s in plan.syllables
            if inside(s.note.start)
        ),
        bass=tuple(replace(n, start=n.start - offset) for n in plan.bass if inside(n.start)),
        chords=tuple(replace(c, start=c.start - offset) for c in plan.chords if inside(c.start)),
        drums=tuple(
            replace(h, time=h.time - offset)
            for h in plan.drums
            if inside(h.time, DRUM_TAIL_SECONDS)
        ),
    )


def _render_section(
    plan: SongPlan, sound: _SongSound, length: int, sample_rate: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Every stem of one section, `(2, samples)` float64."""
    return {
        "vocals": _pan(_render_vocals(plan, length, sample_rate, rng), sound.pans["vocals"]),
        "drums": _render_drums(plan.drums, sound, length, sample_rate),
        "bass": _pan(_render_bass(plan.bass, sound, length, sample_rate), sound.pans["bass"]),
        "other": _render_chords(plan, sound, length, sample_rate),
    }


# --- planning the song ----------------------------------------------------------------------


def _plan_song(rng: np.random.Generator, seed: int, seconds: float) -> SongPlan:
    tempo = float(rng.uniform(84.0, 132.0))
    root = int(rng.integers(12))
    scale = "major" if rng.random() < 0.6 else "minor"
    options = PROGRESSIONS[scale]
    progression = options[int(rng.integers(len(options)))]
    beat = 60.0 / tempo
    bars = math.ceil(seconds / (4.0 * beat))
    degrees = [progression[bar % len(progression)] for bar in range(bars)]
    voice = "low" if rng.random() < 0.5 else "high"
    chord_style = "pad" if rng.random() < 0.5 else "organ"
    return SongPlan(
        seed=seed,
        seconds=float(seconds),
        tempo_bpm=tempo,
        root=root,
        scale=scale,
        progression=tuple(progression),
        voice=voice,
        vibrato_hz=float(rng.uniform(5.0, 6.2)),
        vibrato_semitones=float(rng.uniform(0.3, 0.5)),
        chord_style=chord_style,
        syllables=_plan_vocals(rng, seconds, beat, root, scale, degrees, voice),
        bass=_plan_bass(rng, seconds, beat, root, scale, degrees),
        chords=_plan_chords(rng, seconds, beat, root, scale, degrees, chord_style),
        drums=_plan_drums(rng, seconds, beat, bars),
    )


def _scale_pitch(root: int, scale: str, degree: int, octave_base: int = 0) -> int:
    """MIDI pitch of a 0-based scale degree (any integer), counted from `octave_base + root`."""
    steps = SCALES[scale]
    return octave_base + root + 12 * (degree // len(steps)) + steps[degree % len(steps)]


def _into_range(pitch: int, low: int) -> int:
    """The pitch moved by octaves into `[low, low + 12)`."""
    return low + (pitch - low) % 12


def _bar_degree(degrees: Sequence[int], time: float, beat: float) -> int:
    return degrees[min(int(time / (4.0 * beat)), len(degrees) - 1)]


def _plan_vocals(
    rng: np.random.Generator,
    seconds: float,
    beat: float,
    root: int,
    scale: str,
    degrees: Sequence[int],
    voice: str,
) -> tuple[Syllable, ...]:
    """Phrases of legato syllables on a half-beat grid, separated by rests of 1-3 beats."""
    low, high = VOICE_RANGES[voice]
    scale_pitches = [p for p in range(low, high + 1) if (p - root) % 12 in SCALES[scale]]
    syllables: list[Syllable] = []
    time = beat * float(rng.choice([1.0, 2.0, 4.0]))
    position = len(scale_pitches) // 2
    while time < seconds:
        phrase_beats = float(rng.choice([4.0, 6.0, 8.0]))
        position = _chord_tone_near(
            scale_pitches, position, _bar_degree(degrees, time, beat), root, scale
        )
        phrase_end = time + phrase_beats * beat
        while time < min(phrase_end, seconds) - 1e-9:
            beats = float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0, 3.0]))
            duration = min(beats * beat, phrase_end - time, seconds - time)
            note = Note(
                time, duration, float(scale_pitches[position]), float(rng.uniform(0.7, 1.0))
            )
            syllables.append(_syllable(rng, note))
            time += duration
            step = int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]))
            position = int(np.clip(position + step, 0, len(scale_pitches) - 1))
        time += beat * float(rng.choice([1.0, 1.5, 2.0, 3.0]))
    return tuple(syllables)


def _chord_tone_near(
    scale_pitches: list[int], position: int, degree: int, root: int, scale: str
) -> int:
    """Index of the chord tone of `degree` closest to `position` (phrases start on the chord)."""
    tones = {_scale_pitch(root, scale, degree + step) % 12 for step in (0, 2, 4)}
    candidates = [i for i, pitch in enumerate(scale_pitches) if pitch % 12 in tones]
    return min(candidates, key=lambda i: abs(i - position)) if candidates else position


def _syllable(rng: np.random.Generator, note: Note) -> Syllable:
    first = str(rng.choice(VOWELS))
    vowels: tuple[str, ...] = (first,)
    if note.duration > 0.3 and rng.random() < 0.2:
        vowels = (first, str(rng.choice([v for v in VOWELS if v != first])))
    consonant = str(rng.choice(list(CONSONANTS))) if rng.random() < 0.55 else None
    return Syllable(note, vowels, consonant)


def _plan_bass(
    rng: np.random.Generator,
    seconds: float,
    beat: float,
    root: int,
    scale: str,
    degrees: Sequence[int],
) -> tuple[Note, ...]:
    """An eighth-note riff on the chord roots (E1-D#2, 41-78 Hz) with octaves and fifths on
    weak steps, kept at or below A#2 (117 Hz); the riff mutates now and then."""
    pattern = _bass_pattern(rng)
    notes: list[Note] = []
    for bar, degree in enumerate(degrees):
        if rng.random() < 0.3:
            pattern = _bass_pattern(rng, pattern)
        bass_root = _into_range(_scale_pitch(root, scale, degree), BASS_LOWEST)
        steps = [i for i, state in enumerate(pattern) if state == "hit"]
        for number, step in enumerate(steps):
            following = [i for i in range(step + 1, 8) if pattern[i] != "tie"]
            stop_step = following[0] if following else 8
            start = (bar * 8 + step) * beat / 2.0
            if start >= seconds:
                break
            pitch = bass_root + (int(rng.choice([0, 0, 0, 12, 7])) if number > 0 else 0)
            if pitch > BASS_HIGHEST:
                pitch -= 12  # an octave jump stays on the root, a fifth goes below it
            duration = min(
                (stop_step - step) * beat / 2.0 * float(rng.uniform(0.8, 0.97)), seconds - start
            )
            notes.append(Note(start, duration, float(pitch), float(rng.uniform(0.75, 1.0))))
    return tuple(notes)


def _bass_pattern(rng: np.random.Generator, previous: list[str] | None = None) -> list[str]:
    """Eight steps of 'hit', 'tie' or 'rest'; with `previous`, one step is redrawn."""
    states = ["hit", "tie", "rest"]
    if previous is not None:
        pattern = list(previous)
        pattern[int(rng.integers(1, 8))] = str(rng.choice(states, p=[0.5, 0.35, 0.15]))
        return pattern
    return ["hit"] + [str(rng.choice(states, p=[0.5, 0.35, 0.15])) for _ in range(7)]


def _plan_chords(
    rng: np.random.Generator,
    seconds: float,
    beat: float,
    root: int,
    scale: str,
    degrees: Sequence[int],
    style: str,
) -> tuple[Chord, ...]:
    """One chord per bar in four voices around E3-D#4: a pad sustains it, an organ sustains it
    or stabs it on an eighth-note comping rhythm."""
    stab_steps = [0] + [step for step in range(1, 8) if rng.random() < 0.4]
    sustained = style == "pad" or rng.random() < 0.4
    chords: list[Chord] = []
    for bar, degree in enumerate(degrees):
        triad = sorted(_into_range(_scale_pitch(root, scale, degree + 2 * k), 52) for k in range(3))
        fourth = (
            _into_range(_scale_pitch(root, scale, degree + 6), 52) if rng.random() < 0.3 else None
        )
        pitches = tuple(triad + [fourth if fourth is not None else triad[0] + 12])
        steps = [0] if sustained else stab_steps
        for number, step in enumerate(steps):
            start = (bar * 8 + step) * beat / 2.0
            next_step = steps[number + 1] if number + 1 < len(steps) else 8
            duration = 4.0 * beat if sustained else (next_step - step) * beat / 2.0 * 0.7
            if start < seconds:
                velocity = float(rng.uniform(0.7, 1.0))
                chords.append(Chord(start, min(duration, seconds - start), pitches, velocity))
    return tuple(chords)


def _plan_drums(
    rng: np.random.Generator, seconds: float, beat: float, bars: int
) -> tuple[DrumHit, ...]:
    """Kick on 1 and 3 plus extra kicks, snare on 2 and 4 with ghost notes, hats on eighths or
    sixteenths with accents, fills before every fourth bar, crashes every eight bars, and
    slightly human timing and velocity."""
    extra_kicks = {step for step in (3, 6, 10, 11, 14) if rng.random() < 0.3}
    hat_step = 1 if rng.random() < 0.4 else 2
    open_hat = rng.random() < 0.5
    hits: list[DrumHit] = []
    for bar in range(bars):
        kicks = {0, 8} | extra_kicks
        if rng.random() < 0.25:
            kicks ^= {int(rng.choice([3, 6, 7, 10, 14, 15]))}
        fill = bar % 4 == 3 and rng.random() < 0.7
        for step in range(16):
            for kind, velocity in _drum_step(rng, step, bar, kicks, hat_step, open_hat, fill):
                time = max(0.0, (bar * 16 + step) * beat / 4.0 + float(rng.normal(0.0, 0.003)))
                if time < seconds:
                    velocity *= float(rng.uniform(0.85, 1.0))
                    hits.append(DrumHit(time, kind, velocity, int(rng.integers(12))))
    return tuple(hits)


def _drum_step(
    rng: np.random.Generator,
    step: int,
    bar: int,
    kicks: set[int],
    hat_step: int,
    open_hat: bool,
    fill: bool,
) -> list[tuple[str, float]]:
    hits: list[tuple[str, float]] = []
    if step in kicks:
        hits.append(("kick", 1.0))
    if step == 0 and bar % 8 == 0:
        hits.append(("crash", 0.8))
    if fill and step >= 12:
        hits.append(("snare", 0.5 + 0.12 * (step - 12)))
        return hits
    if step in (4, 12):
        hits.append(("snare", 1.0))
    elif step % 2 == 1 and rng.random() < 0.08:
        hits.append(("snare", 0.25))
    if step % hat_step == 0:
        if open_hat and step == 14:
            hits.append(("open_hat", 0.7))
        else:
            hits.append(("hat", 0.9 if step % 4 == 0 else 0.55))
    return hits


# --- signal building blocks -----------------------------------------------------------------


def _midi_to_hz(pitch: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def _to_samples(times: Sequence[float] | np.ndarray, sample_rate: int, length: int) -> np.ndarray:
    samples = np.round(np.asarray(times, dtype=np.float64) * sample_rate).astype(np.int64)
    return np.clip(samples, 0, length)


def _timeline(starts: np.ndarray, stops: np.ndarray, length: int) -> _Timeline:
    """Per-sample note bookkeeping for sorted, non-overlapping notes given in samples."""
    positions = np.arange(length)
    playing = np.full(length, -1, dtype=np.int64)
    for number, (start, stop) in enumerate(zip(starts, stops, strict=True)):
        playing[start:stop] = number
    upcoming = np.clip(np.searchsorted(starts, positions, side="left"), 0, len(starts) - 1)
    held = np.where(playing >= 0, playing, upcoming)
    return _Timeline(playing, held, positions - starts[held], stops[held] - positions)


def _note_timeline(notes: Sequence[Note | Chord], sample_rate: int, length: int) -> _Timeline:
    starts = _to_samples([note.start for note in notes], sample_rate, length)
    stops = _to_samples([note.start + note.duration for note in notes], sample_rate, length)
    return _timeline(starts, np.maximum(stops, starts), length)


def _attack_release(line: _Timeline, sample_rate: int, attack: float, release: float) -> np.ndarray:
    """Linear attack and release ramps (seconds) inside each note, 0 in rests. `(samples,)`."""
    rise = np.clip(line.since / (attack * sample_rate), 0.0, 1.0)
    fall = np.clip(line.until / (release * sample_rate), 0.0, 1.0)
    return np.where(line.playing >= 0, rise * fall, 0.0)


def _poly_blep(position: np.ndarray, increment: np.ndarray) -> np.ndarray:
    """PolyBLEP residual for a unit-2 downward step at phase 0, at phase `position` in [0, 1)
    with `increment` cycles per sample; subtracting it band-limits a naive waveform."""
    residual = np.zeros_like(position)
    after = position < increment
    t = position[after] / increment[after]
    residual[after] = 2.0 * t - t * t - 1.0
    before = position > 1.0 - increment
    t = (position[before] - 1.0) / increment[before]
    residual[before] = t * t + 2.0 * t + 1.0
    return residual


def _sawtooth(phase: np.ndarray, increment: np.ndarray) -> np.ndarray:
    """Band-limited sawtooth in [-1, 1] from a running phase in cycles. `(samples,)`."""
    position = phase % 1.0
    return 2.0 * position - 1.0 - _poly_blep(position, increment)


def _glottal_pulse(
    phase: np.ndarray, increment: np.ndarray, opening: float = 0.4, closing: float = 0.16
) -> np.ndarray:
    """Rosenberg glottal-flow derivative, peak 1: a smooth rise while the folds open, a steeper
    fall while they close, and a jump back to zero at closure (band-limited with polyBLEP).
    The jump is what gives the voice its harmonics. `(samples,)`."""
    position = phase % 1.0
    pulse = np.zeros_like(position)
    rising = position < opening
    pulse[rising] = np.sin(np.pi * position[rising] / opening) * closing / opening
    falling = (position >= opening) & (position < opening + closing)
    pulse[falling] = -np.sin(0.5 * np.pi * (position[falling] - opening) / closing)
    at_closure = (position - opening - closing) % 1.0
    return pulse + 0.5 * _poly_blep(at_closure, increment)


def _band_sos(low: float, high: float, sample_rate: int, order: int = 2) -> np.ndarray:
    """Butterworth band-pass; a high-pass when `high` is above the usable band."""
    nyquist = 0.5 * sample_rate
    high = min(high, 0.45 * sample_rate)
    low = min(low, 0.6 * high)
    if high >= 0.45 * sample_rate:
        return butter(order, low / nyquist, btype="highpass", output="sos")
    return butter(order, [low / nyquist, high / nyquist], btype="bandpass", output="sos")


def _lowpass_sos(cutoff: float, sample_rate: int, order: int = 2) -> np.ndarray:
    return butter(order, min(cutoff, 0.45 * sample_rate) / (0.5 * sample_rate), output="sos")


def _highpass_sos(cutoff: float, sample_rate: int, order: int = 2) -> np.ndarray:
    cutoff = min(cutoff, 0.35 * sample_rate)
    return butter(order, cutoff / (0.5 * sample_rate), btype="highpass", output="sos")


def _one_pole(signal: np.ndarray, seconds: float, sample_rate: int) -> np.ndarray:
    """Exponential smoothing with time constant `seconds`, starting settled on `signal[0]`."""
    pole = math.exp(-1.0 / (seconds * sample_rate))
    numerator, denominator = [1.0 - pole], [1.0, -pole]
    initial = lfilter_zi(numerator, denominator) * signal[0]
    return lfilter(numerator, denominator, signal, zi=initial)[0]


def _slow_noise(rng: np.random.Generator, length: int, sample_rate: int, rate: float) -> np.ndarray:
    """Unit-variance noise interpolated from `rate` random points per second. `(samples,)`."""
    points = rng.standard_normal(int(length / sample_rate * rate) + 2)
    return np.interp(np.arange(length) * rate / sample_rate, np.arange(len(points)), points)


def _filtered_noise(rng: np.random.Generator, samples: int, sos: np.ndarray) -> np.ndarray:
    """Filtered white noise scaled to unit RMS. `(samples,)`."""
    noise = sosfilt(sos, rng.standard_normal(samples))
    rms = float(np.sqrt(np.mean(noise**2))) if samples else 0.0
    return noise / rms if rms > 0 else noise


def _harmonics(
    phase: np.ndarray, frequency: np.ndarray, weights: Sequence[float], sample_rate: int
) -> np.ndarray:
    """Sum of sine harmonics `k = 1, 2, ...` with `weights`, read from a one-cycle wavetable
    (one lookup however many harmonics). Harmonics that the highest frequency would push past
    0.45 * sample_rate are left out, so nothing aliases. `(samples,)`."""
    highest = float(np.max(frequency, initial=0.0))
    cycle = np.arange(WAVETABLE_SIZE + 1) / WAVETABLE_SIZE
    table = np.zeros(WAVETABLE_SIZE + 1)
    for number, weight in enumerate(weights, start=1):
        if number * highest < 0.45 * sample_rate:
            table += weight * np.sin(2.0 * np.pi * number * cycle)
    position = (phase % 1.0) * WAVETABLE_SIZE
    index = position.astype(np.int64)
    fraction = position - index
    return table[index] + fraction * (table[index + 1] - table[index])


# --- song stems ---------------------------------------------------------------------------


def _render_vocals(
    plan: SongPlan, length: int, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Glottal source at the sung pitch, through time-varying vowel formants, gated into
    phrases, plus consonant bursts. `(samples,)`."""
    if not plan.syllables:
        return np.zeros(length)
    notes = [syllable.note for syllable in plan.syllables]
    line = _note_timeline(notes, sample_rate, length)
    frequency = _midi_to_hz(_vocal_pitch(plan, notes, line, sample_rate, rng))
    increment = frequency / sample_rate
    phase = np.cumsum(increment)
    # Aspiration noise, strongest while the folds are open, makes the voice a little breathy.
    breath = rng.standard_normal(length) * (0.5 + 0.5 * np.cos(2.0 * np.pi * phase))
    source = _glottal_pulse(phase, increment) + 0.04 * breath
    voiced = _formant_filter(source, plan, line, sample_rate)
    envelope = uniform_filter1d(_gate(notes, line), size=max(1, int(0.03 * sample_rate)))
    envelope *= 1.0 + 0.1 * _slow_noise(rng, length, sample_rate, 3.0)
    consonants, dips = _consonants(plan.syllables, length, sample_rate, rng)
    voiced *= envelope * dips
    active = envelope > 0.1
    rms = float(np.sqrt(np.mean(voiced[active] ** 2))) if active.any() else 0.0
    return (voiced / rms if rms > 0 else voiced) + consonants


def _vocal_pitch(
    plan: SongPlan,
    notes: Sequence[Note],
    line: _Timeline,
    sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sung pitch in MIDI per sample: note steps with ~35 ms exponential portamento, vibrato
    that fades in ~0.2 s after each onset, and a slow drift of a few cents. `(samples,)`."""
    target = np.array([note.pitch for note in notes])[line.held]
    pitch = _one_pole(target, 0.035, sample_rate)
    seconds_in = line.since / sample_rate
    delay = 0.2
    fade_in = np.clip((seconds_in - delay) / 0.25, 0.0, 1.0)
    wobble = np.sin(2.0 * np.pi * plan.vibrato_hz * (seconds_in - delay))
    pitch += plan.vibrato_semitones * fade_in * wobble
    return pitch + 0.06 * _slow_noise(rng, len(target), sample_rate, 4.0)


def _gate(notes: Sequence[Note], line: _Timeline) -> np.ndarray:
    velocities = np.array([note.velocity for note in notes])
    return np.where(line.playing >= 0, velocities[line.held], 0.0)


def _formant_sos(vowel: str, voice: str, sample_rate: int) -> np.ndarray:
    """Cascade of two-pole resonators at the vowel's formants, each with unit gain at 0 Hz
    (as in cascade formant synthesisers), so their relative levels come out naturally."""
    sections = []
    for formant, bandwidth in zip(VOWEL_FORMANTS[vowel], FORMANT_BANDWIDTHS, strict=True):
        frequency = formant * FORMANT_SCALE[voice]
        if frequency >= 0.45 * sample_rate:
            continue  # above the band this sample rate can hold
        radius = math.exp(-math.pi * bandwidth / sample_rate)
        a1 = -2.0 * radius * math.cos(2.0 * math.pi * frequency / sample_rate)
        a2 = radius * radius
        sections.append([1.0 + a1 + a2, 0.0, 0.0, 1.0, a1, a2])
    return np.array(sections)


def _formant_filter(
    source: np.ndarray, plan: SongPlan, line: _Timeline, sample_rate: int
) -> np.ndarray:
    """Filter the source through every vowel used and cross-fade between the outputs with
    ~50 ms smoothed weights, so the formants move from syllable to syllable. `(samples,)`."""
    vowel_index = _vowel_track(plan.syllables, line)
    smoothing = max(1, int(0.05 * sample_rate))
    output = np.zeros_like(source)
    for number, vowel in enumerate(VOWELS):
        selected = vowel_index == number
        if not selected.any():
            continue
        weight = uniform_filter1d(selected.astype(np.float64), size=smoothing)
        output += weight * sosfilt(_formant_sos(vowel, plan.voice, sample_rate), source)
    return output


def _vowel_track(syllables: Sequence[Syllable], line: _Timeline) -> np.ndarray:
    """Index into VOWELS per sample; a diphthong moves to its second vowel at 55% of the note."""
    first = np.array([VOWELS.index(s.vowels[0]) for s in syllables])
    second = np.array([VOWELS.index(s.vowels[-1]) for s in syllables])
    durations = line.since + line.until
    late = line.since > 0.55 * durations
    return np.where(late, second[line.held], first[line.held])


def _consonants(
    syllables: Sequence[Syllable], length: int, sample_rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Noise bursts at syllable onsets and the dips they cut into the voiced sound.

    Returns `(bursts, dips)`, both `(samples,)`: fricatives hiss into the onset, plosives
    burst at it after a short closure.
    """
    bursts = np.zeros(length)
    dips = np.ones(length)
    filters = {name: _band_sos(c.low, c.high, sample_rate) for name, c in CONSONANTS.items()}
    for syllable in syllables:
        if syllable.consonant is None:
            continue
        consonant = CONSONANTS[syllable.consonant]
        onset = int(round(syllable.note.start * sample_rate))
        size = max(2, int(consonant.seconds * sample_rate))
        noise = _filtered_noise(rng, size, filters[syllable.consonant])
        if consonant.plosive:
            start, shape = onset, np.exp(-np.arange(size) / (0.25 * size))
            dip_start, dip_size = onset - int(0.04 * sample_rate), int(0.05 * sample_rate)
        else:
            start, shape = onset - size, np.hanning(size)
            dip_start, dip_size = onset - size, size + int(0.02 * sample_rate)
        _add(bursts, start, consonant.level * shape * noise)
        _multiply(dips, dip_start, 1.0 - 0.85 * np.hanning(dip_size))
    return bursts, dips


def _add(target: np.ndarray, start: int, sound: np.ndarray) -> None:
    """target[start:start + len(sound)] += sound, clipped to the target's bounds."""
    begin, end = max(start, 0), min(start + sound.shape[-1], target.shape[-1])
    if end > begin:
        target[..., begin:end] += sound[..., begin - start : end - start]


def _multiply(target: np.ndarray, start: int, factor: np.ndarray) -> None:
    begin, end = max(start, 0), min(start + len(factor), len(target))
    if end > begin:
        target[begin:end] *= factor[begin - start : end - start]


def _render_bass(
    notes: Sequence[Note], sound: _SongSound, length: int, sample_rate: int
) -> np.ndarray:
    """Plucked synth bass: a sine plus a sawtooth whose brightness dies away faster than the
    note, low-passed. `(samples,)`."""
    if not notes:
        return np.zeros(length)
    line = _note_timeline(notes, sample_rate, length)
    frequency = _midi_to_hz(np.array([note.pitch for note in notes]))[line.held]
    increment = frequency / sample_rate
    phase = np.cumsum(increment)
    seconds_in = np.maximum(line.since, 0) / sample_rate
    brightness = sound.bass_brightness * np.exp(-seconds_in / 0.06)
    tone = np.sin(2.0 * np.pi * phase) + brightness * _sawtooth(phase, increment)
    envelope = _attack_release(line, sample_rate, 0.004, 0.012)
    envelope *= np.exp(-seconds_in / sound.bass_decay) * _gate(notes, line)
    return sosfilt(_lowpass_sos(sound.bass_cutoff, sample_rate), tone * envelope)


def _render_chords(plan: SongPlan, sound: _SongSound, length: int, sample_rate: int) -> np.ndarray:
    """Four chord voices spread across the stereo field: detuned low-passed sawtooths (pad) or
    drawbar-organ harmonics. `(2, samples)`."""
    stereo = np.zeros((2, length))
    if not plan.chords:
        return stereo
    line = _note_timeline(plan.chords, sample_rate, length)
    attack, release = (0.12, 0.1) if plan.chord_style == "pad" else (0.006, 0.03)
    envelope = _attack_release(line, sample_rate, attack, release)
    envelope *= np.array([chord.velocity for chord in plan.chords])[line.held]
    detune, centre = sound.chord_detune, sound.pans["other"]
    for voice in range(4):
        pitches = np.array([chord.pitches[voice] for chord in plan.chords])
        frequency = _midi_to_hz(pitches)[line.held]
        if plan.chord_style == "pad":
            tone = sum(
                _sawtooth(
                    np.cumsum(frequency * ratio / sample_rate), frequency * ratio / sample_rate
                )
                for ratio in (1.0 - detune, 1.0 + detune)
            )
        else:
            phase = np.cumsum(frequency / sample_rate)
            tone = _harmonics(phase, frequency, sound.drawbars, sample_rate)
        stereo += _pan(tone * envelope, centre + 0.3 * (voice - 1.5) / 1.5)
    cutoff = sound.chord_cutoff if plan.chord_style == "pad" else 4000.0
    return sosfilt(_lowpass_sos(cutoff, sample_rate), stereo, axis=-1)


# --- drums --------------------------------------------------------------------------------


def _drum_kit(sample_rate: int, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """A few variants of every drum sound (noise differs), drawn once per track."""
    kick_start, kick_end = float(rng.uniform(130.0, 200.0)), float(rng.uniform(42.0, 60.0))
    kick_decay = float(rng.uniform(0.18, 0.35))
    snare_tone = float(rng.uniform(170.0, 240.0))
    hat_decay = float(rng.uniform(0.025, 0.06))
    kit = {
        "kick": [_kick(sample_rate, rng, kick_start, kick_end, kick_decay) for _ in range(2)],
        "snare": [_snare(sample_rate, rng, snare_tone) for _ in range(3)],
        "hat": [_hat(sample_rate, rng, hat_decay) for _ in range(4)],
        "open_hat": [_hat(sample_rate, rng, 0.25) for _ in range(2)],
        "crash": [_crash(sample_rate, rng)],
    }
    # Noise peaks are random: set each sound's peak, so the balance is the same every time.
    return {
        kind: [sound * (DRUM_PEAKS[kind] / float(np.abs(sound).max())) for sound in sounds]
        for kind, sounds in kit.items()
    }


def _decay_time(seconds: float, sample_rate: int) -> np.ndarray:
    return np.arange(int(seconds * sample_rate)) / sample_rate


def _kick(
    sample_rate: int, rng: np.random.Generator, start_hz: float, end_hz: float, decay: float
) -> np.ndarray:
    """A sine whose pitch sweeps down from `start_hz` to `end_hz`, plus a beater click."""
    time = _decay_time(0.6, sample_rate)
    frequency = end_hz + (start_hz - end_hz) * np.exp(-time / 0.03)
    body = np.sin(2.0 * np.pi * np.cumsum(frequency) / sample_rate) * np.exp(-time / decay)
    click = _filtered_noise(rng, len(time), _lowpass_sos(5000.0, sample_rate)) * np.exp(
        -time / 0.003
    )
    return body + 0.25 * click


def _snare(sample_rate: int, rng: np.random.Generator, tone_hz: float) -> np.ndarray:
    """Two drum-head modes plus band-passed snare-wire noise."""
    time = _decay_time(0.4, sample_rate)
    head = np.sin(2 * np.pi * tone_hz * time) + 0.5 * np.sin(2 * np.pi * 1.6 * tone_hz * time)
    wires = _filtered_noise(rng, len(time), _band_sos(1000.0, 10000.0, sample_rate))
    return 0.6 * head * np.exp(-time / 0.05) + 0.7 * wires * np.exp(-time / 0.12)


def _hat(sample_rate: int, rng: np.random.Generator, decay: float) -> np.ndarray:
    """High-passed noise with a short (closed) or long (open) decay."""
    time = _decay_time(min(6.0 * decay, 1.5), sample_rate)
    return _filtered_noise(rng, len(time), _highpass_sos(7000.0, sample_rate)) * np.exp(
        -time / decay
    )


def _crash(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    time = _decay_time(2.0, sample_rate)
    noise = _filtered_noise(rng, len(time), _highpass_sos(3500.0, sample_rate))
    return 0.8 * noise * np.exp(-time / 0.5) * np.clip(time / 0.002, 0.0, 1.0)


def _render_drums(
    hits: Sequence[DrumHit], sound: _SongSound, length: int, sample_rate: int
) -> np.ndarray:
    """Place every hit from the kit; the kick sits in the centre, the rest are panned.
    `(2, samples)`."""
    stereo = np.zeros((2, length))
    for hit in hits:
        variants = sound.kit[hit.kind]
        samples = variants[hit.variant % len(variants)] * hit.velocity
        _add(stereo, int(round(hit.time * sample_rate)), _pan(samples, sound.drum_pans[hit.kind]))
    return stereo


# --- instruments --------------------------------------------------------------------------


def _render_instrument(
    name: str,
    rng: np.random.Generator,
    seconds: float,
    root: int,
    scale: str,
    length: int,
    sample_rate: int,
) -> np.ndarray:
    """Isolated notes (or drum hits) of one instrument, silence between them. `(samples,)`."""
    if name == "drums":
        return _isolated_drum_hits(rng, seconds, length, sample_rate)
    low, high = INSTRUMENT_RANGES[name]
    pitches = [p for p in range(low, high + 1) if (p - root) % 12 in SCALES[scale]]
    render_note = {
        "flute": _flute_note,
        "guitar": _guitar_note,
        "violin": _violin_note,
        "piano": _piano_note,
    }[name]
    output = np.zeros(length)
    time = float(rng.uniform(0.05, 0.4))
    while time < seconds - 0.1:
        duration = min(float(rng.uniform(0.35, 1.3)), seconds - time)
        frequency = float(_midi_to_hz(float(rng.choice(pitches))))
        samples = int(duration * sample_rate)
        note = render_note(frequency, samples, sample_rate, rng)
        peak = float(np.abs(note).max()) if samples else 0.0
        if peak > 0:
            _add(output, int(time * sample_rate), note * (float(rng.uniform(0.6, 1.0)) / peak))
        time += duration + float(rng.uniform(0.15, 0.6))
    return output


def _isolated_drum_hits(
    rng: np.random.Generator, seconds: float, length: int, sample_rate: int
) -> np.ndarray:
    kit = _drum_kit(sample_rate, rng)
    output = np.zeros(length)
    time = float(rng.uniform(0.05, 0.3))
    while time < seconds:
        kind = str(rng.choice(["kick", "snare", "hat", "open_hat"], p=[0.35, 0.3, 0.25, 0.1]))
        variants = kit[kind]
        sound = variants[int(rng.integers(len(variants)))]
        _add(output, int(time * sample_rate), sound * float(rng.uniform(0.6, 1.0)))
        time += float(rng.uniform(0.25, 0.7))
    return output


def _note_envelope(samples: int, sample_rate: int, attack: float, release: float) -> np.ndarray:
    """Raised-cosine attack and release (seconds) over a note of `samples`. `(samples,)`."""
    position = np.arange(samples)
    rise = np.clip(position / (attack * sample_rate), 0.0, 1.0)
    fall = np.clip((samples - position) / (release * sample_rate), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * rise * fall)


def _vibrato_frequency(
    frequency: float, samples: int, sample_rate: int, rate: float, semitones: float, delay: float
) -> np.ndarray:
    """Per-sample frequency with vibrato fading in after `delay` seconds. `(samples,)`."""
    time = np.arange(samples) / sample_rate
    fade_in = np.clip((time - delay) / 0.3, 0.0, 1.0)
    return frequency * 2.0 ** (semitones * fade_in * np.sin(2.0 * np.pi * rate * time) / 12.0)


def _flute_note(
    frequency: float, samples: int, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Nearly a sine (weak 2nd and 3rd harmonics), gentle vibrato, breath noise and a chiff
    of noise at the onset."""
    wobble = _vibrato_frequency(
        frequency, samples, sample_rate, float(rng.uniform(4.5, 5.5)), 0.1, 0.25
    )
    tone = _harmonics(np.cumsum(wobble) / sample_rate, wobble, (1.0, 0.12, 0.04), sample_rate)
    breath = _filtered_noise(rng, samples, _band_sos(1500.0, 7000.0, sample_rate))
    chiff = np.exp(-np.arange(samples) / (0.03 * sample_rate))
    envelope = _note_envelope(samples, sample_rate, 0.08, 0.1)
    return envelope * (tone + 0.02 * breath) + 0.15 * chiff * breath


def _guitar_note(
    frequency: float, samples: int, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Karplus-Strong plucked string: a noise burst circulating in a delay loop with a gentle
    low-pass, so high partials die first. The feedback comb `1 / (1 - g z^-D (1 + z^-1) / 2)`
    is applied in the frequency domain, which makes the loop delay D fractional (exact tuning)
    and costs two FFTs; the FFT is long enough for the ringing to decay 60 dB before it wraps."""
    period = sample_rate / frequency
    ring_seconds = float(np.clip(2.5 * math.sqrt(110.0 / frequency), 0.5, 4.0))
    loop_gain = 10.0 ** (-3.0 / (frequency * ring_seconds))
    burst = rng.uniform(-1.0, 1.0, int(math.ceil(period)))
    burst = lfilter([0.5], [1.0, -0.5], burst)  # a softer pick: fewer top partials
    pluck_point = max(1, int(period * float(rng.uniform(0.1, 0.25))))
    excitation = burst - np.concatenate([np.zeros(pluck_point), burst[:-pluck_point]])
    size = next_fast_len(samples + int(ring_seconds * sample_rate) + len(excitation))
    omega = 2.0 * np.pi * rfftfreq(size)
    loop = loop_gain * np.exp(-1j * omega * (period - 0.5)) * 0.5 * (1.0 + np.exp(-1j * omega))
    string = irfft(rfft(excitation, size) / (1.0 - loop), size)[:samples]
    return string * _note_envelope(samples, sample_rate, 0.001, 0.05)


def _violin_note(
    frequency: float, samples: int, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Bowed string: a sawtooth with delayed vibrato through body resonances, a slow bowed
    attack with scratch noise, and a little steady bow noise."""
    wobble = _vibrato_frequency(
        frequency, samples, sample_rate, float(rng.uniform(5.5, 6.5)), 0.22, 0.15
    )
    increment = wobble / sample_rate
    string = _sawtooth(np.cumsum(increment), increment)
    body = 0.3 * sosfilt(_lowpass_sos(5000.0, sample_rate), string)
    for resonance in (280.0, 460.0, 1150.0, 2600.0):
        body += sosfilt(_band_sos(resonance / 1.25, resonance * 1.25, sample_rate, order=1), string)
    scratch = _filtered_noise(rng, samples, _band_sos(2000.0, 6000.0, sample_rate))
    onset = np.exp(-np.arange(samples) / (0.05 * sample_rate))
    envelope = _note_envelope(samples, sample_rate, float(rng.uniform(0.1, 0.18)), 0.12)
    return (
        envelope * (body / max(float(np.abs(body).max()), 1e-9) + 0.02 * scratch)
        + 0.15 * onset * scratch
    )


def _piano_note(
    frequency: float, samples: int, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Struck string: stretched (inharmonic) partials `k f sqrt(1 + B k^2)`, a hammer thump,
    and the damper at note end. Each partial decays in two stages, faster the higher it is:
    a prompt sound, then a quieter, long aftersound (as coupled piano strings do)."""
    inharmonicity = float(rng.uniform(1e-4, 4e-4))
    numbers = np.arange(1, 31)
    partials = numbers * frequency * np.sqrt(1.0 + inharmonicity * numbers**2)
    keep = partials < 0.45 * sample_rate
    numbers, partials = numbers[keep], partials[keep]
    # Hammer hardness rolls the spectrum off; striking at 1/7 of the string weakens partial 7.
    amplitudes = (
        np.exp(-(numbers - 1) / 8.0) / numbers * (0.2 + np.abs(np.sin(np.pi * numbers / 7)))
    )
    decays = float(np.clip(3.0 * (261.6 / frequency) ** 0.6, 0.4, 6.0)) / (
        1.0 + 0.3 * (numbers - 1)
    )
    time = np.arange(samples) / sample_rate
    phases = rng.uniform(0.0, 2.0 * np.pi, len(numbers))[:, None]
    stages = 0.7 * np.exp(-time / (0.15 * decays[:, None])) + 0.3 * np.exp(-time / decays[:, None])
    ringing = amplitudes[:, None] * stages
    strings = np.sum(ringing * np.sin(2.0 * np.pi * partials[:, None] * time + phases), axis=0)
    thump = _filtered_noise(rng, samples, _lowpass_sos(1200.0, sample_rate)) * np.exp(-time / 0.005)
    return (strings + 0.1 * thump) * _note_envelope(samples, sample_rate, 0.002, 0.08)


# --- dataset ------------------------------------------------------------------------------


def _split(tracks: int) -> list[str]:
    """Subset per track: about 80% train, then test (at least one test track from two on)."""
    tests = 0 if tracks < 2 else max(1, round(tracks * (1.0 - TRAIN_FRACTION)))
    return ["train"] * (tracks - tests) + ["test"] * tests


def _write_dataset(
    out: Path, tracks: int, seconds: float, seed: int, sample_rate: int
) -> Generator[Progress, None, list[Path]]:
    folders: list[Path] = []
    rows: list[str] = []
    for index, subset in enumerate(_split(tracks)):
        name, track_seed = f"synth-{index:04d}", seed * 1000 + index
        track = render_track(track_seed, seconds, sample_rate)
        folder = out / subset / name
        for stem in DATASET_FILES:
            write_audio(folder / f"{stem}.wav", track.signal(stem), sample_rate)
        folders.append(folder)
        plan = plan_song(track_seed, seconds)
        rows.append(f"{name}  {subset:<5}  {track_seed:>8}  {plan.tempo_bpm:6.1f}  {plan.key}")
        yield Progress(index + 1, tracks, f"wrote {subset}/{name}")
    _write_readme(out, tracks, seconds, seed, sample_rate, rows)
    return folders


def _write_readme(
    out: Path, tracks: int, seconds: float, seed: int, sample_rate: int, rows: list[str]
) -> None:
    text = (
        f"""Synthetic multitracks written by Separation Explorer (explorer.data.synth).

Generated with:
    explorer synth --out {out} --tracks {tracks} --seconds {seconds:g} --seed {seed}
Sample rate: {sample_rate} Hz, stereo, 32-bit float WAV.

Layout (as MUSDB18-HQ): <subset>/<track>/{{{",".join(DATASET_FILES)}}}.wav
Track i is render_track(seed={seed} * 1000 + i, seconds={seconds:g}): a song with a tempo and
key drawn from its seed, sung vocals with pauses, drums, bass and chords. The mixture is the
exact sum of the four stems. About 80% of the tracks are in train/, the rest in test/.

track       subset      seed   tempo  key
"""
        + "\n".join(rows)
        + "\n"
    )
    with atomic_output(out / "README.txt") as temporary:
        temporary.write_text(text, encoding="utf-8")
