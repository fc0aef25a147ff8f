"""Audio input and output.

Decoding: soundfile for WAV/FLAC/OGG/MP3/AIFF, PyAV for MP4/M4A/AAC and the MUSDB18
`.stem.mp4` container (one AAC stream per stem). Samples are always float32 arrays shaped
`(channels, samples)`. Decoders fill one preallocated array, so a file never needs more than
two copies of its samples in memory (the decoded array, plus one more while resampling or
changing channels).

Writing is atomic: a temporary file in the target folder, then `os.replace`.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from explorer.errors import InputError

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif"}
PYAV_SUFFIXES = {".mp4", ".m4a", ".aac"}
WRITE_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24")}
READ_BLOCK_FRAMES = 1 << 16


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header without decoding."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    streams: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def is_audio_path(path: Path) -> bool:
    suffix = path.suffix.lower()
    return suffix in SOUNDFILE_SUFFIXES or suffix in PYAV_SUFFIXES


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"expected an audio file, got a folder: {path}")
    if not is_audio_path(path):
        raise InputError(f"not a supported audio format ({path.suffix or 'no suffix'}): {path}")
    if path.stat().st_size == 0:
        raise InputError(f"empty file: {path}")


def audio_info(path: str | Path) -> AudioInfo:
    """Read sample rate, channels, length and stream count from the header."""
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in PYAV_SUFFIXES:
        return _pyav_info(path)
    try:
        info = soundfile.info(str(path))
    except Exception as error:  # soundfile raises several types for bad headers
        raise InputError(
            f"cannot read {path.name}: not a valid audio file ({_short(error)})"
        ) from None
    return AudioInfo(str(path), int(info.samplerate), int(info.channels), int(info.frames), 1)


def read_audio(path: str | Path, stream: int = 0) -> tuple[np.ndarray, int]:
    """Decode one audio stream. Returns `(samples (channels, samples) float32, sample_rate)`.

    Raises InputError for a missing, corrupt, empty or non-finite file.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in PYAV_SUFFIXES:
        samples, sample_rate = _pyav_read(path, stream)
    else:
        if stream != 0:
            raise InputError(f"{path.name} has one audio stream; stream {stream} requested")
        samples, sample_rate = _soundfile_read(path)
    check_samples(samples, path.name)
    return samples, sample_rate


def check_samples(samples: np.ndarray, name: str) -> None:
    """Reject audio that no model or player can use: empty, or with NaN/Inf samples."""
    if samples.size == 0:
        raise InputError(f"{name} holds no samples (zero-length audio)")
    finite = np.isfinite(samples)
    if not finite.all():
        bad = int(samples.size - np.count_nonzero(finite))
        first = int(np.argmin(finite.all(axis=0)))
        raise InputError(f"{name} has {bad} NaN or Inf samples (first at sample {first})")


def _short(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__


def _soundfile_read(path: Path) -> tuple[np.ndarray, int]:
    try:
        with soundfile.SoundFile(str(path)) as handle:
            frames, channels = handle.frames, handle.channels
            samples = np.empty((channels, frames), dtype=np.float32)
            position = 0
            for block in handle.blocks(
                blocksize=READ_BLOCK_FRAMES, dtype="float32", always_2d=True
            ):
                count = min(len(block), frames - position)
                samples[:, position : position + count] = block[:count].T
                position += count
            return samples[:, :position], int(handle.samplerate)
    except InputError:
        raise
    except Exception as error:
        raise InputError(
            f"cannot decode {path.name}: corrupt or unsupported ({_short(error)})"
        ) from None


def _open_container(path: Path):
    import av

    try:
        return av.open(str(path))
    except Exception as error:
        raise InputError(
            f"cannot open {path.name}: corrupt or unsupported ({_short(error)})"
        ) from None


def _stream_frames(stream) -> int:
    """The declared length in samples, honouring the edit list (end padding excluded)."""
    if stream.duration is not None and stream.time_base is not None:
        return int(round(stream.duration * stream.time_base * stream.sample_rate))
    return 0


def _pyav_info(path: Path) -> AudioInfo:
    container = _open_container(path)
    try:
        streams = list(container.streams.audio)
        if not streams:
            raise InputError(f"{path.name} has no audio stream")
        first = streams[0]
        frames = _stream_frames(first)
        if frames == 0 and container.duration:
            frames = int(container.duration * first.sample_rate / 1_000_000)
        return AudioInfo(
            str(path), int(first.sample_rate), int(first.channels), frames, len(streams)
        )
    finally:
        container.close()


def _pyav_read(path: Path, stream_index: int) -> tuple[np.ndarray, int]:
    """Decode one AAC/MP4 stream, placing each frame by its timestamp.

    AAC priming: where the MP4 edit list declares encoder delay, FFmpeg's demuxer gives the
    priming packets negative timestamps and the decoder drops them; we also trim the decoder's
    end padding to the declared duration. Placing frames by timestamp keeps all streams of a
    `.stem.mp4` on one common time axis.
    """
    container = _open_container(path)
    try:
        streams = list(container.streams.audio)
        if stream_index >= len(streams):
            raise InputError(
                f"{path.name} has {len(streams)} audio stream(s); stream {stream_index} requested"
            )
        stream = streams[stream_index]
        sample_rate, channels = int(stream.sample_rate), int(stream.channels)
        declared = _stream_frames(stream)
        samples = np.zeros((channels, max(declared, 1)), dtype=np.float32)
        end = 0
        for frame in container.decode(stream):
            block = _frame_to_planar(frame)
            start = (
                end
                if frame.pts is None
                else int(Fraction(frame.pts) * frame.time_base * sample_rate)
            )
            skip = max(0, -start)
            start = max(0, start)
            stop = start + block.shape[1] - skip
            if stop > samples.shape[1]:
                samples = _grow(samples, stop)
            samples[:, start:stop] = block[:channels, skip:]
            end = max(end, stop)
    except InputError:
        raise
    except Exception as error:
        raise InputError(
            f"cannot decode {path.name}: corrupt or truncated ({_short(error)})"
        ) from None
    finally:
        container.close()
    length = min(end, declared) if declared else end
    return samples[:, :length], sample_rate


def _frame_to_planar(frame) -> np.ndarray:
    """An AudioFrame as float32 `(channels, samples)`, whatever its sample format."""
    array = frame.to_ndarray()
    if not frame.format.is_planar:
        array = array.reshape(-1, len(frame.layout.channels)).T
    if array.dtype.kind == "i":
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    return array.astype(np.float32, copy=False)


def _grow(samples: np.ndarray, needed: int) -> np.ndarray:
    grown = np.zeros((samples.shape[0], max(needed, 2 * samples.shape[1])), dtype=samples.dtype)
    grown[:, : samples.shape[1]] = samples
    return grown


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling along the last axis. `(..., samples) -> (..., samples')`."""
    if from_rate == to_rate:
        return samples
    if from_rate <= 0 or to_rate <= 0:
        raise InputError(f"invalid sample rate {from_rate} -> {to_rate}")
    divisor = math.gcd(from_rate, to_rate)
    return resample_poly(samples, to_rate // divisor, from_rate // divisor, axis=-1).astype(
        np.float32, copy=False
    )


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average all channels, as the papers do. `(channels, samples) -> (1, samples)`."""
    if samples.shape[0] == 1:
        return samples
    return samples.mean(axis=0, keepdims=True, dtype=np.float32)


def to_stereo(samples: np.ndarray) -> np.ndarray:
    """For listening: mono is duplicated; more than two channels fold even channels to the
    left and odd channels to the right. `(channels, samples) -> (2, samples)`."""
    channels = samples.shape[0]
    if channels == 2:
        return samples
    if channels == 1:
        return np.repeat(samples, 2, axis=0)
    left = samples[0::2].mean(axis=0, dtype=np.float32)
    right = samples[1::2].mean(axis=0, dtype=np.float32)
    return np.stack([left, right])


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write `(channels, samples)` audio to WAV (float) or FLAC (24-bit), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise InputError(f"can only write .wav or .flac, not {suffix or 'no suffix'}: {path}")
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    check_samples(samples, path.name)
    audio_format, subtype = WRITE_FORMATS[suffix]
    if suffix == ".flac":
        samples = np.clip(samples, -1.0, 1.0)
    with atomic_output(path) as temporary:
        soundfile.write(
            str(temporary), samples.T, sample_rate, format=audio_format, subtype=subtype
        )
    return path


class atomic_output:
    """Context manager yielding a temporary path beside `path`; on success it is renamed over
    `path` with `os.replace`, on failure it is removed. A crash never leaves a partial file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.temporary: Path | None = None

    def __enter__(self) -> Path:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp" + self.path.suffix, dir=folder
            )
            os.close(handle)
            # mkstemp creates 0600 files; give the result the permissions of a normal write.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(name, 0o666 & ~umask)
        except OSError as error:
            raise InputError(f"cannot write to {folder}: {error.strerror or error}") from None
        self.temporary = Path(name)
        return self.temporary

    def __exit__(self, kind, value, traceback) -> bool:
        assert self.temporary is not None
        if kind is None:
            try:
                os.replace(self.temporary, self.path)
                return False
            except OSError as error:
                self.temporary.unlink(missing_ok=True)
                raise InputError(f"cannot write {self.path}: {error.strerror or error}") from None
        self.temporary.unlink(missing_ok=True)
        return False
