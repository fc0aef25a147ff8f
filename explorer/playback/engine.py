"""The real-time playback engine: a PortAudio callback stream over the `Mixer`.

Threads and ownership:

- The GUI thread calls the engine's methods (`play`, `pause`, `seek`, `set_loop`, ...), and
  any thread may edit the mix through `engine.mixer`. Those calls publish immutable objects by
  assigning one attribute: `mixer.plan` (what to mix), `_seek_request`, `_loop`,
  `_pause_requested`.
- The audio callback reads each of those references once per block. It takes no lock,
  allocates no arrays (only numpy's small view headers), and writes every result with `out=`
  into buffers allocated when the stream opens.
- Whenever the plan changes (a gain, a mute, an A/B switch, a new stem, an edited range) or
  the playhead jumps (a seek), the callback cross-fades from the old voice to the new one over
  `fade_seconds`, starting at the next block boundary. Where the content did not change the
  old and new signals are equal, and the cross-fade leaves them as they are. Playback also
  fades in on `play` and out on `pause`. A loop wrap is not faded: it is sample-exact.
- A change arriving during a cross-fade waits until that fade ends (at most `fade_seconds`),
  so every transition is one clean fade.

The clock (`position()`) is the stream's own: the count of frames handed to the device, less
the output latency the stream reports, mapped back to the material through the blocks'
history (`transport.Clock`). It is never a wall-clock timer, so the playhead cannot drift
from what is heard.

When no output exists (no PortAudio library, no device, a device index that does not exist),
the engine is created anyway with `available == False` and `reason` saying why. Then `play()`
returns False and nothing advances; loading, editing, seeking and export still work.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from explorer.audio.io import resample, write_audio
from explorer.errors import InputError
from explorer.playback.devices import (
    SAMPLE_FORMAT,
    OutputDevice,
    PlaybackUnavailable,
    choose_sample_rate,
    load_sounddevice,
    resolve_output_device,
)
from explorer.playback.mixer import Mixer, MixPlan, MixSettings, StemInput
from explorer.playback.transport import NO_LOOP, Clock, advance, render_span

SILENT_PLAN = MixPlan(1, 0, (), MixSettings(), 0.0)
MIN_LOOP_SECONDS = 0.01
REALTIME_PRIORITY = 40  # below JACK's and the kernel's audio threads, above everything else
PACE_CHECK_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 2.0
STALL_SECONDS = 2.0  # no block for this long while playing: the device hangs
DEVICE_FAILED = (
    "the output device stopped during playback (disconnected or failed); playback stopped"
)
DEVICE_STALLED = "the output device stopped taking audio (it hangs); playback stopped"


def crossfade_ramps(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Raised-cosine fade-in and fade-out ramps, each `(frames, 1)` float32, summing to one:
    where old and new content are equal, the cross-fade leaves it unchanged."""
    phase = (np.arange(frames) + 0.5) / frames
    ramp_in = (np.sin(0.5 * np.pi * phase) ** 2).astype(np.float32)[:, None]
    return ramp_in, (1.0 - ramp_in).astype(np.float32)


@dataclass(frozen=True)
class PlaybackStatus:
    """One cheap snapshot for a GUI timer: `state` is "playing", "stopped", "error" or
    "unavailable"; `position` is in seconds of the material."""

    state: str
    position: float
    available: bool
    last_error: str | None
    underruns: int

    @property
    def playing(self) -> bool:
        return self.state == "playing"


class Tap:
    """A record of what the callback handed to the device, for tests and benchmarks.

    Preallocated: the callback copies each block into `samples` `(capacity_frames, channels)`
    until it is full, and logs per block the material position of its first frame and whether
    a cross-fade started in it. Cleared by `play()`.
    """

    def __init__(
        self, capacity_frames: int, channels: int = 2, capacity_blocks: int = 65536
    ) -> None:
        self.samples = np.zeros((capacity_frames, channels), dtype=np.float32)
        self.positions = np.zeros(capacity_blocks, dtype=np.int64)
        self.sizes = np.zeros(capacity_blocks, dtype=np.int64)
        self.fade_starts = np.zeros(capacity_blocks, dtype=bool)
        self.frames = 0
        self.blocks = 0
        self.full = False  # set when a block no longer fits

    def reset(self, channels: int) -> None:
        if self.samples.shape[1] != channels:
            self.samples = np.zeros((self.samples.shape[0], channels), dtype=np.float32)
        self.frames = 0
        self.blocks = 0
        self.full = False

    def record(self, block: np.ndarray, position: int, fade_started: bool) -> None:
        frames = block.shape[0]
        if self.frames + frames > self.samples.shape[0] or self.blocks >= self.positions.shape[0]:
            self.full = True
            return
        self.samples[self.frames : self.frames + frames] = block
        self.positions[self.blocks] = position
        self.sizes[self.blocks] = frames
        self.fade_starts[self.blocks] = fade_started
        self.frames += frames
        self.blocks += 1

    def audio(self) -> np.ndarray:
        """The recorded output, `(channels, frames)`."""
        return np.ascontiguousarray(self.samples[: self.frames].T)

    def block_starts(self) -> np.ndarray:
        """Index in `audio()` of each recorded block's first frame, `(blocks,)`."""
        return np.concatenate([[0], np.cumsum(self.sizes[: self.blocks])[:-1]]).astype(np.int64)


class PlaybackEngine:
    """Plays the `mixer`'s material on a PortAudio output (or silently when there is none).

    `device`: index, name, or None for the default output. `blocksize`: frames per callback.
    `latency`: PortAudio's suggested latency ("low", "high" or seconds). `fade_seconds`: the
    cross-fade length for edits, switches, seeks, play and pause. `tap_frames`: when > 0,
    record that many delivered frames in `tap` (tests and benchmarks). `realtime_priority`:
    ask the OS to run the audio thread with real-time (SCHED_FIFO) priority, so CPU-heavy
    work in other threads (training, NCA) cannot delay it. After `PACE_CHECK_SECONDS` of
    audio the engine checks that the device consumes samples at its real rate, and steps the
    thread back down if not: an unpaced device, such as ALSA's null device on a headless
    machine, calls the callback back to back, and at real-time priority that would starve
    every other thread. Where it is not permitted (no root, no RLIMIT_RTPRIO), the thread
    keeps normal priority. `realtime` says what happened: None (not decided yet), True, or
    False.
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        blocksize: int = 512,
        latency: str | float = "high",
        fade_seconds: float = 0.005,
        tap_frames: int = 0,
        realtime_priority: bool = True,
        mixer: Mixer | None = None,
    ) -> None:
        if blocksize < 16:
            raise InputError(f"blocksize must be at least 16 frames, not {blocksize}")
        self.mixer = mixer or Mixer()
        self.blocksize = blocksize
        self.latency = latency
        self.fade_seconds = max(0.0, float(fade_seconds))
        self.tap = Tap(tap_frames) if tap_frames > 0 else None
        self.realtime_priority = realtime_priority
        self.realtime: bool | None = None  # whether the audio thread got it (None: not yet)
        self._priority_pending = False
        self._priority_stage = 0
        self._stall_blocks = -1
        self._stall_since = 0.0
        self._pace_check_frames = 0
        self._started_at = 0.0
        self.device: OutputDevice | None = None
        self.available = False
        self.reason: str | None = None
        self.last_error: str | None = None
        self.underruns = 0
        self.channels = 2
        self.clock = Clock()
        self.last_swap_published_at = 0.0
        self.last_swap_delivered_at = 0.0
        # The thread closing a hung stream; PortAudio cannot shut down (at exit) while it runs.
        self.abandoned: threading.Thread | None = None
        self._sounddevice: ModuleType | None = None
        self._stream = None
        self._state = "unavailable"
        self._finished = threading.Event()
        self._latency_frames = 0
        self._reset_voice(0)
        self._seek_request = (0, 0)
        self._seek_seen = 0
        self._loop = NO_LOOP
        self._loop_source: tuple[int, int] | None = None
        self._connect(device)

    # Device and stream.

    @property
    def messages(self) -> list[str]:
        """Every repair and problem reported so far (the mixer's and the engine's)."""
        return self.mixer.messages

    @property
    def state(self) -> str:
        return self._state

    @property
    def is_playing(self) -> bool:
        return self._state == "playing"

    @property
    def fade_frames(self) -> int:
        """Cross-fade length in frames at the played rate (known once the stream opened)."""
        return self._fade_frames

    @property
    def output_latency(self) -> float:
        """The output latency the stream reports, in seconds (0 before the stream opens)."""
        return self._latency_frames / max(1, self.mixer.plan.sample_rate)

    def set_device(self, device: int | str | None) -> None:
        """Switch output device, keeping position, loop and play state. Raises InputError
        when the device does not exist (the current one keeps playing)."""
        try:
            sounddevice = load_sounddevice()
            chosen = resolve_output_device(device)
        except PlaybackUnavailable as error:
            if self.available:
                raise InputError(str(error)) from None
            self._mark_unavailable(str(error))
            return
        was_playing = self.is_playing
        position, loop = self.position(), self.loop
        self.pause()
        self._close_stream()
        self._use_device(sounddevice, chosen)
        if self.mixer.material is not None:
            self.mixer.set_output_rate(self._output_rate_for(self.mixer.material.sample_rate))
            self.seek(position)
            if loop is not None:
                self.set_loop(*loop)
        if was_playing:
            self.play()

    def close(self) -> None:
        """Stop and release the output stream."""
        self._close_stream()
        if self._state in ("playing", "stopped"):
            self._state = "stopped"

    def __enter__(self) -> PlaybackEngine:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()

    # Material.

    def load(
        self,
        mixture: np.ndarray | None,
        sample_rate: int,
        stems: dict[str, StemInput] | None = None,
    ) -> list[str]:
        """Stop, load new material (see `Mixer.load`), rewind. Returns the repair messages.
        The material is resampled once here if the output device needs another rate."""
        self.pause()
        self.clear_loop()
        output_rate = self._output_rate_for(sample_rate)
        self.mixer.set_output_rate(output_rate)
        messages = self.mixer.load(mixture, sample_rate, stems)
        self.seek_frames(0)
        return messages

    def export(self, path: str | Path, sample_rate: int | None = None) -> Path:
        """Write exactly the current mix (gains, mutes, solo, A/B source, edits) to WAV or
        FLAC, at the material's rate or `sample_rate`."""
        audio = self.mixer.render_all()
        rate = self.mixer.material.sample_rate
        if sample_rate is not None and sample_rate != rate:
            audio, rate = resample(audio, rate, sample_rate), sample_rate
        return write_audio(path, audio, rate)

    # Transport.

    def play(self) -> bool:
        """Start playing from the current position. Returns False when there is no output
        (see `reason` and `last_error`); the app goes on silently."""
        if not self.available:
            return False
        if self.mixer.material is None:
            raise InputError("nothing to play: no audio loaded")
        if self._state == "playing":
            return True
        try:
            self._ensure_stream()
            if not self._stream.stopped:  # finished by the callback: PortAudio wants a stop
                self._stream.stop()
        except (PlaybackUnavailable, self._sounddevice.PortAudioError) as error:
            self._fail(f"cannot open the output device: {error}")
            return False
        length = self.mixer.plan.frames
        position = self._take_pending_seek()
        if position >= length:
            position = max(0, self._loop[0])
        self._reset_voice(position)
        self.clock.reset()
        if self.tap is not None:
            self.tap.reset(self.channels)
        self._finished.clear()
        self._priority_pending = self.realtime_priority  # PortAudio starts a new thread
        self._priority_stage = 0
        self._stall_blocks, self._stall_since = -1, 0.0
        self._started_at = time.perf_counter()
        self._state = "playing"  # before start: an unpaced device can finish at once
        try:
            self._stream.start()
        except self._sounddevice.PortAudioError as error:
            self._fail(f"cannot start the output device: {error}")
            return False
        return True

    def pause(self, wait: bool = True) -> None:
        """Fade out and stop, keeping the position. With `wait`, return once the stream has
        stopped (a fade plus the device's buffer: tens of milliseconds)."""
        if self._state != "playing" or self._stream is None:
            return
        self._pause_requested = True
        if not wait:
            return
        timeout = self.fade_seconds + self.output_latency + STOP_TIMEOUT_SECONDS
        if not self._finished.wait(timeout):
            self._abandon_stream()  # the callback is no longer called: do not hang the GUI
        if self._state == "playing":
            self._state = "stopped"

    def stop(self) -> None:
        """Pause and rewind to the start."""
        self.pause()
        self.seek_frames(0)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until playback stops (the end of the material, a pause, a failure).
        Returns False if `timeout` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._state == "playing":
            if self._finished.wait(0.05):
                return True
            self._check_stall()
            if deadline is not None and time.monotonic() > deadline:
                return False
        return True

    def seek(self, seconds: float) -> None:
        """Jump to `seconds` of the material; while playing, cross-faded at the next block."""
        self._seek_played(round(seconds * max(1, self.mixer.plan.sample_rate)))

    def seek_frames(self, frame: int) -> None:
        """Jump to `frame` (at the material's own sample rate)."""
        self._seek_played(self._to_played(frame))

    def _seek_played(self, frame: int) -> None:
        played = min(max(0, frame), self.mixer.plan.frames)
        self._seek_request = (self._seek_request[0] + 1, played)
        if self._state != "playing":
            self._take_pending_seek()

    def set_loop(self, start: float, end: float) -> None:
        """Loop `[start, end)` seconds while playing through it."""
        rate = self._source_rate()
        self.set_loop_frames(round(start * rate), round(end * rate))

    def set_loop_frames(self, start: int, end: int) -> None:
        """Loop `[start, end)` frames at the material's own rate."""
        length = self.mixer.material.frames if self.mixer.material is not None else 0
        if not 0 <= start < end <= length:
            raise InputError(f"loop [{start}, {end}) is not inside the material (0..{length})")
        if end - start < MIN_LOOP_SECONDS * self._source_rate():
            raise InputError(f"loop is shorter than {MIN_LOOP_SECONDS * 1000:.0f} ms")
        self._loop_source = (start, end)
        self._loop = (self._to_played(start), self._to_played(end))

    def clear_loop(self) -> None:
        self._loop_source = None
        self._loop = NO_LOOP

    @property
    def loop(self) -> tuple[float, float] | None:
        """The loop region in seconds, or None."""
        if self._loop_source is None:
            return None
        rate = self._source_rate()
        return self._loop_source[0] / rate, self._loop_source[1] / rate

    # The clock.

    def position(self) -> float:
        """Seconds of the material being heard now. Cheap: a few attribute reads."""
        return self._position_played() / max(1, self.mixer.plan.sample_rate)

    def position_frames(self) -> int:
        """The frame being heard now, at the material's own sample rate."""
        return self._to_source(self._position_played())

    def status(self) -> PlaybackStatus:
        """State, position and errors in one object, for a GUI timer."""
        return PlaybackStatus(
            self._state, self.position(), self.available, self.last_error, self.underruns
        )

    def _position_played(self) -> int:
        if self._state == "playing":
            self._check_stall()
        serial, frame = self._seek_request
        if serial != self._seek_seen:
            return frame  # a seek not yet taken by the callback: show where it goes
        if self._state != "playing":
            return self._position
        heard = self.clock.heard(self._latency_frames)
        if heard is None or heard[0] < self._seek_heard_from:
            return self._seek_target  # the jump is not audible yet
        return heard[1]

    # The audio callback (runs on PortAudio's thread).

    def _callback(
        self, outdata: np.ndarray, frames: int, time_info: object, status: object
    ) -> None:
        if status.output_underflow:
            self.underruns += 1
        if self._priority_pending and (
            self._priority_stage == 0 or self.clock.delivered >= self._pace_check_frames
        ):
            self._set_priority()
        try:
            self._render_block(outdata, frames)
        except self._callback_stop:
            raise
        except Exception as error:  # a bug must not take the app down: stop with a message
            outdata.fill(0.0)
            self._callback_error = f"{type(error).__name__}: {error}"
            raise self._callback_abort from None

    def _set_priority(self) -> None:
        """On the audio thread, twice per started stream: at its first block, SCHED_FIFO
        where the OS allows it (root, or RLIMIT_RTPRIO as audio groups and rtkit grant); after
        `PACE_CHECK_SECONDS` of audio, back to normal if the device turned out unpaced."""
        if self._priority_stage == 0:
            self._priority_stage = 1
            try:
                priority = min(REALTIME_PRIORITY, os.sched_get_priority_max(os.SCHED_FIFO))
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            except (AttributeError, OSError):  # not Linux, or not permitted
                self._priority_pending = False
                self.realtime = False
            return
        self._priority_pending = False
        elapsed = time.perf_counter() - self._started_at
        if elapsed >= 0.5 * self._pace_check_frames / self.mixer.plan.sample_rate:
            self.realtime = True
            return
        self.realtime = False  # far faster than real time: an unpaced device, step down
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass

    def _render_block(self, outdata: np.ndarray, frames: int) -> None:
        plan = self.mixer.plan
        length = plan.frames
        loop = self._loop
        stereo = outdata if self.channels == 2 else self._stereo[:frames]
        fade_started = self._fade_from is None and self._begin_fade(plan, length)
        start = self._position
        self._position = render_span(
            self._voice, start, frames, stereo, self._scratch, loop, length
        )
        if self._fade_from is not None:
            self._mix_fade(stereo, frames, loop, length)
        if self.channels == 1:
            np.add(stereo[:, 0], stereo[:, 1], out=outdata[:, 0])
            np.multiply(outdata, 0.5, out=outdata)
        self.clock.record(start, frames, loop, length)
        if self.tap is not None:
            self.tap.record(outdata, start, fade_started)
        if fade_started and self._voice is plan:
            self.last_swap_published_at = plan.published_at
            self.last_swap_delivered_at = time.perf_counter()
        if self._fade_from is None:
            if self._voice is SILENT_PLAN:  # the pause fade is complete
                self._position = self._pause_position
                self._stop_reason = "paused"
                raise self._callback_stop
            if self._position >= length:
                self._stop_reason = "ended"
                raise self._callback_stop

    def _begin_fade(self, plan: MixPlan, length: int) -> bool:
        """At a block boundary: start a cross-fade if the plan changed, a seek is pending or
        a pause was asked for. Returns whether one started."""
        target = SILENT_PLAN if self._pause_requested else plan
        seek = self._seek_request
        jump = seek[0] != self._seek_seen
        if target is self._voice and not jump:
            return False
        self._fade_from = self._voice
        self._fade_position = self._position
        self._fade_done = 0
        self._voice = target
        if target is SILENT_PLAN:
            self._pause_position = advance(self._position, self._fade_frames, self._loop, length)
        if jump:
            self._seek_target = min(seek[1], length)
            self._seek_heard_from = self.clock.delivered
            self._position = self._seek_target
            self._seek_seen = seek[0]  # publish last: position() reads it first
        return True

    def _mix_fade(
        self, stereo: np.ndarray, frames: int, loop: tuple[int, int], length: int
    ) -> None:
        """out = new x ramp_in + old x ramp_out over the fade's next frames."""
        old = self._fade_buffer[:frames]
        self._fade_position = render_span(
            self._fade_from, self._fade_position, frames, old, self._scratch, loop, length
        )
        done = self._fade_done
        count = min(frames, self._fade_frames - done)
        head, old_head = stereo[:count], old[:count]
        np.multiply(head, self._ramp_in[done : done + count], out=head)
        np.multiply(old_head, self._ramp_out[done : done + count], out=old_head)
        np.add(head, old_head, out=head)
        self._fade_done = done + count
        if self._fade_done >= self._fade_frames:
            self._fade_from = None

    def _stream_finished(self) -> None:
        """PortAudio's finished callback: the stream stopped, for whatever reason."""
        if self._callback_error is not None:
            self._fail(
                f"playback stopped by an error in the audio callback: {self._callback_error}"
            )
        elif self._stop_reason is None:
            self._fail(DEVICE_FAILED)
        elif self._stop_reason == "stalled":
            pass  # already reported by `_check_stall`
        else:
            self._state = "stopped"
        self._finished.set()

    # Internals.

    def _check_stall(self) -> None:
        """Some drivers hang instead of failing when a device goes away: the stream stays
        active but the callback is no longer called. Polling the clock notices; the stream is
        then abandoned on a daemon thread, since aborting a hung device can block too."""
        blocks, now = self.clock.blocks, time.monotonic()
        if blocks != self._stall_blocks or self._stall_since == 0.0:
            self._stall_blocks, self._stall_since = blocks, now
            return
        if now - self._stall_since >= STALL_SECONDS:
            self._abandon_stream()

    def _abandon_stream(self) -> None:
        stream, self._stream = self._stream, None
        self._stop_reason = "stalled"
        self._fail(DEVICE_STALLED)
        self._finished.set()
        if stream is not None:
            self.abandoned = threading.Thread(target=_abandon, args=(stream,), daemon=True)
            self.abandoned.start()

    def _connect(self, device: int | str | None) -> None:
        try:
            sounddevice = load_sounddevice()
            chosen = resolve_output_device(device)
        except PlaybackUnavailable as error:
            self._mark_unavailable(str(error))
            return
        self._use_device(sounddevice, chosen)

    def _use_device(self, sounddevice: ModuleType, device: OutputDevice) -> None:
        self._sounddevice = sounddevice
        self._callback_stop = sounddevice.CallbackStop
        self._callback_abort = sounddevice.CallbackAbort
        self.device = device
        self.channels = min(2, device.channels)
        self.available, self.reason, self._state = True, None, "stopped"

    def _mark_unavailable(self, reason: str) -> None:
        self.available, self.reason, self._state = False, reason, "unavailable"
        self.mixer.messages.append(reason)

    def _output_rate_for(self, sample_rate: int) -> int | None:
        if not self.available:
            return None
        try:
            rate = choose_sample_rate(self.device, sample_rate, self.channels)
        except PlaybackUnavailable as error:
            self._fail(str(error))
            return None
        if rate != sample_rate:
            self.mixer.messages.append(
                f"the output device does not play {sample_rate} Hz: resampled once to {rate} Hz"
            )
        return rate

    def _ensure_stream(self) -> None:
        rate = self.mixer.plan.sample_rate
        if self._stream is not None and not self._stream.closed and self._stream.samplerate == rate:
            return
        self._close_stream()
        self._stream = self._sounddevice.OutputStream(
            samplerate=rate,
            blocksize=self.blocksize,
            device=self.device.index,
            channels=self.channels,
            dtype=SAMPLE_FORMAT,
            latency=self.latency,
            callback=self._callback,
            finished_callback=self._stream_finished,
        )
        self._latency_frames = int(round(self._stream.latency * rate))
        self._pace_check_frames = round(PACE_CHECK_SECONDS * rate)
        self._allocate(rate)

    def _allocate(self, sample_rate: int) -> None:
        """Every buffer the callback writes, sized for the largest block it can get."""
        frames = 4 * self.blocksize
        self._scratch = np.zeros((frames, 2), dtype=np.float32)
        self._fade_buffer = np.zeros((frames, 2), dtype=np.float32)
        self._stereo = np.zeros((frames, 2), dtype=np.float32)
        self._fade_frames = max(1, round(self.fade_seconds * sample_rate))
        self._ramp_in, self._ramp_out = crossfade_ramps(self._fade_frames)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        self._stop_reason = "closed"
        try:
            stream.abort()
            stream.close()
        except Exception as error:  # a vanished device can fail to close: note and go on
            self.mixer.messages.append(f"closing the output device failed: {error}")

    def _reset_voice(self, position: int) -> None:
        self._voice = SILENT_PLAN  # so playback fades in from silence
        self._position = position
        self._fade_from: MixPlan | None = None
        self._fade_position = 0
        self._fade_done = 0
        self._fade_frames = getattr(self, "_fade_frames", 1)
        self._pause_requested = False
        self._pause_position = position
        self._stop_reason: str | None = None
        self._callback_error: str | None = None
        self._seek_target = position
        self._seek_heard_from = 0

    def _take_pending_seek(self) -> int:
        """Apply a seek made while stopped (the callback is not running)."""
        serial, frame = self._seek_request
        if serial != self._seek_seen:
            self._position = min(frame, self.mixer.plan.frames)
            self._seek_seen = serial
        return self._position

    def _fail(self, message: str) -> None:
        self.last_error = message
        self._state = "error"
        self.mixer.messages.append(message)

    def _source_rate(self) -> int:
        material = self.mixer.material
        return material.sample_rate if material is not None else max(1, self.mixer.plan.sample_rate)

    def _to_played(self, frame: int) -> int:
        source, played = self._source_rate(), self.mixer.plan.sample_rate
        return frame if source == played or played <= 1 else round(frame * played / source)

    def _to_source(self, frame: int) -> int:
        source, played = self._source_rate(), self.mixer.plan.sample_rate
        return frame if source == played or played <= 1 else round(frame * source / played)


def _abandon(stream) -> None:
    try:
        stream.abort()
        stream.close()
    except Exception:  # the device is gone; there is nobody left to tell
        pass
