"""Immutable stereo audio stored in chunks, so a live edit copies only what it touches.

A `ChunkedAudio` never changes after it is built. An edit builds a new one that shares every
untouched chunk with the old one (copy-on-write), and the playback engine swaps the reference.
So the audio callback can read a buffer without a lock while the GUI thread prepares the next.

Layout: each chunk is a C-contiguous float32 array shaped `(CHUNK_FRAMES, 2)`, frames-major,
because that is the device's interleaved layout: a block is copied or scaled straight into the
output buffer without a transpose. The public API speaks `(channels, samples)`, as everywhere
else in the project.
"""

from __future__ import annotations

import numpy as np

from explorer.audio.io import to_stereo

CHUNK_FRAMES = 1 << 15  # 0.74 s at 44.1 kHz: an edit of a few frames copies 256 KiB
CHANNELS = 2


class ChunkedAudio:
    """Stereo float32 audio of `frames` frames, as a tuple of `(CHUNK_FRAMES, 2)` chunks.

    The last chunk is zero-padded to full size, so reads never need a bounds special case
    inside a chunk. Instances are immutable: never write into `chunks`.
    """

    __slots__ = ("chunks", "frames")

    def __init__(self, chunks: tuple[np.ndarray, ...], frames: int) -> None:
        self.chunks = chunks
        self.frames = frames

    @classmethod
    def from_array(cls, samples: np.ndarray) -> ChunkedAudio:
        """Build from `(channels, samples)` audio (mono is duplicated, more channels folded)."""
        stereo = to_stereo(np.atleast_2d(np.asarray(samples, dtype=np.float32)))
        frames = stereo.shape[1]
        chunks = []
        for start in range(0, max(frames, 1), CHUNK_FRAMES):
            chunk = np.zeros((CHUNK_FRAMES, CHANNELS), dtype=np.float32)
            piece = stereo[:, start : start + CHUNK_FRAMES]
            chunk[: piece.shape[1]] = piece.T
            chunk.flags.writeable = False
            chunks.append(chunk)
        return cls(tuple(chunks), frames)

    @classmethod
    def silence(cls, frames: int) -> ChunkedAudio:
        """`frames` frames of zeros; every chunk is the same read-only zero array."""
        zero = np.zeros((CHUNK_FRAMES, CHANNELS), dtype=np.float32)
        zero.flags.writeable = False
        return cls((zero,) * max(1, -(-frames // CHUNK_FRAMES)), frames)

    def to_array(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """A copy of `[start, stop)` as `(2, samples)` float32."""
        stop = self.frames if stop is None else min(stop, self.frames)
        start = max(0, min(start, stop))
        out = np.zeros((stop - start, CHANNELS), dtype=np.float32)
        self.copy_into(start, stop - start, out)
        return np.ascontiguousarray(out.T)

    def padded(self, frames: int) -> ChunkedAudio:
        """The same audio, with zeros after the end up to `frames` frames (never shorter)."""
        if frames <= self.frames:
            return self
        missing = -(-frames // CHUNK_FRAMES) - len(self.chunks)
        zero = np.zeros((CHUNK_FRAMES, CHANNELS), dtype=np.float32)
        zero.flags.writeable = False
        return ChunkedAudio(self.chunks + (zero,) * missing, frames)

    def replaced(self, start: int, samples: np.ndarray) -> tuple[ChunkedAudio, int]:
        """A new buffer with `[start, start + samples)` overwritten by `(channels, samples)`
        audio; only the chunks it touches are copied. Samples beyond the end are dropped.

        Returns the new buffer and how many frames were written.
        """
        stereo = to_stereo(np.atleast_2d(np.asarray(samples, dtype=np.float32)))
        start = max(0, start)
        stop = min(self.frames, start + stereo.shape[1])
        if stop <= start:
            return self, 0
        chunks = list(self.chunks)
        for index in range(start // CHUNK_FRAMES, (stop - 1) // CHUNK_FRAMES + 1):
            chunk_start = index * CHUNK_FRAMES
            low, high = max(start, chunk_start), min(stop, chunk_start + CHUNK_FRAMES)
            chunk = np.array(chunks[index], copy=True)
            chunk[low - chunk_start : high - chunk_start] = stereo[:, low - start : high - start].T
            chunk.flags.writeable = False
            chunks[index] = chunk
        return ChunkedAudio(tuple(chunks), self.frames), stop - start

    # The two methods below run inside the audio callback: no array is allocated (only
    # numpy's small view headers), and every arithmetic result is written with `out=`.

    def copy_into(self, start: int, frames: int, out: np.ndarray) -> None:
        """Write `[start, start + frames)` into `out` `(frames, 2)`; zeros past the end."""
        self._apply(start, frames, out, None, None)

    def add_scaled_into(
        self, start: int, frames: int, gain: float, out: np.ndarray, scratch: np.ndarray
    ) -> None:
        """`out += gain * self[start : start + frames]`, with `out` and `scratch` shaped
        `(frames or more, 2)`; `scratch` is overwritten."""
        self._apply(start, frames, out, gain, scratch)

    def _apply(
        self,
        start: int,
        frames: int,
        out: np.ndarray,
        gain: float | None,
        scratch: np.ndarray | None,
    ) -> None:
        written = 0
        position = start
        end = min(start + frames, self.frames)
        while position < end:
            index, offset = divmod(position, CHUNK_FRAMES)
            count = min(end - position, CHUNK_FRAMES - offset)
            source = self.chunks[index][offset : offset + count]
            target = out[written : written + count]
            if gain is None:
                np.copyto(target, source)
            else:
                part = scratch[written : written + count]
                np.multiply(source, gain, out=part)
                np.add(target, part, out=target)
            written += count
            position += count
        if gain is None and written < frames:
            out[written:frames] = 0.0
