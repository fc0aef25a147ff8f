"""Where playback is in the material: moving through it (with a loop), and the clock.

Positions here are frames at the played (device) sample rate. `advance` and `render_span`
apply the same rule, so the clock maps delivered frames back to material positions exactly as
the callback produced them:

- A loop `(start, end)` wraps playback from `end` back to `start`, but only for a playhead
  that reaches `end` from before it; a playhead placed after the loop plays on to the end of
  the material (as in a DAW).
- Past the end of the material there is silence, and the position stays at the end.

The clock is a ring of the blocks handed to the device: for each, the count of frames handed
before it (the stream's own frame counter) and the material position of its first frame. The
frame being heard now is the count handed so far minus the device's reported output latency;
the ring maps it back to a material position, across loop wraps and seeks. The callback
writes the ring; a GUI timer reads it without a lock (see `Clock.heard`).
"""

from __future__ import annotations

import numpy as np

from explorer.playback.mixer import MixPlan

NO_LOOP = (-1, -1)
CLOCK_BLOCKS = 1024  # blocks remembered: more than any output latency spans


def advance(position: int, frames: int, loop: tuple[int, int], length: int) -> int:
    """The position `frames` frames after `position`, as `render_span` moves."""
    loop_start, loop_end = loop
    if loop_start >= 0 and position < loop_end:
        if position + frames < loop_end:
            return position + frames
        period = loop_end - loop_start
        return loop_start + (position + frames - loop_end) % period
    return min(position + frames, max(length, position))


def render_span(
    plan: MixPlan,
    position: int,
    frames: int,
    out: np.ndarray,
    scratch: np.ndarray,
    loop: tuple[int, int],
    length: int,
) -> int:
    """Render `frames` frames of `plan` from `position` into `out[:frames]` `(frames, 2)`,
    wrapping at the loop and writing silence past `length`. Returns the next position.
    Runs in the audio callback: allocates no arrays."""
    loop_start, loop_end = loop
    written = 0
    while written < frames:
        looping = loop_start >= 0 and position < loop_end
        boundary = loop_end if looping else length
        take = min(frames - written, boundary - position)
        if take <= 0:
            out[written:frames] = 0.0
            break
        plan.render(position, take, out[written : written + take], scratch)
        written += take
        position += take
        if looping and position == loop_end:
            position = loop_start
    return position


class Clock:
    """The ring of delivered blocks, written by the callback and read by any thread.

    The callback fills entry `blocks % CLOCK_BLOCKS` and only then increments `blocks`; a
    reader only reads entries below the `blocks` it saw first, which the callback will not
    overwrite for hundreds of blocks. So neither side takes a lock.
    """

    def __init__(self) -> None:
        self.stream_starts = np.zeros(CLOCK_BLOCKS, dtype=np.int64)
        self.sizes = np.zeros(CLOCK_BLOCKS, dtype=np.int64)
        self.positions = np.zeros(CLOCK_BLOCKS, dtype=np.int64)
        self.loop_starts = np.full(CLOCK_BLOCKS, -1, dtype=np.int64)
        self.loop_ends = np.full(CLOCK_BLOCKS, -1, dtype=np.int64)
        self.lengths = np.zeros(CLOCK_BLOCKS, dtype=np.int64)
        self.blocks = 0
        self.delivered = 0  # frames handed to the device since `reset`

    def reset(self) -> None:
        """Forget the history; only while no stream is running."""
        self.blocks = 0
        self.delivered = 0

    def record(self, position: int, frames: int, loop: tuple[int, int], length: int) -> None:
        """Called by the audio callback once per block: the block of `frames` frames that
        starts at material `position` was handed to the device."""
        index = self.blocks % CLOCK_BLOCKS
        self.stream_starts[index] = self.delivered
        self.sizes[index] = frames
        self.positions[index] = position
        self.loop_starts[index] = loop[0]
        self.loop_ends[index] = loop[1]
        self.lengths[index] = length
        self.delivered += frames
        self.blocks += 1  # publish the entry last

    def heard(self, latency_frames: int) -> tuple[int, int] | None:
        """`(stream_frame, material_position)` of the frame leaving the device now: the one
        handed over `latency_frames` before the newest. None before the first block."""
        blocks = self.blocks
        if blocks == 0:
            return None
        newest = (blocks - 1) % CLOCK_BLOCKS
        end = int(self.stream_starts[newest]) + int(self.sizes[newest])
        stream_frame = max(0, end - latency_frames)
        oldest = max(0, blocks - CLOCK_BLOCKS // 2)  # stay clear of entries being rewritten
        for block in range(blocks - 1, oldest - 1, -1):
            index = block % CLOCK_BLOCKS
            start = int(self.stream_starts[index])
            if start <= stream_frame:
                loop = (int(self.loop_starts[index]), int(self.loop_ends[index]))
                length = int(self.lengths[index])
                position = advance(int(self.positions[index]), stream_frame - start, loop, length)
                return stream_frame, position
        index = oldest % CLOCK_BLOCKS
        return int(self.stream_starts[index]), int(self.positions[index])
